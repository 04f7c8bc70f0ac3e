//! The WeCom calls: success shapes and each documented error code.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn gettoken_table() {
    let h = start().await;
    // (query, expected errcode)
    let cases = [
        (format!("corpid={CORP}&corpsecret={AGENT_SECRET}"), 0),
        (format!("corpid={CORP}&corpsecret={CONTACT_SECRET}"), 0),
        (format!("corpsecret={AGENT_SECRET}"), 41002),
        (format!("corpid={CORP}"), 41004),
        (format!("corpid=wwother&corpsecret={AGENT_SECRET}"), 40013),
        (format!("corpid={CORP}&corpsecret=wrong"), 40001),
    ];
    for (query, want) in cases {
        let v = h.get(&format!("/cgi-bin/gettoken?{query}")).await;
        if want == 0 {
            assert_eq!(v["errcode"], 0, "{query}: {v}");
            assert_eq!(v["errmsg"], "ok");
            assert!(
                v["access_token"].as_str().is_some_and(|t| t.len() > 16),
                "{v}"
            );
            assert_eq!(v["expires_in"], 7200);
        } else {
            assert_err(&v, want, &query);
        }
    }
}

#[tokio::test]
async fn same_token_within_validity_new_after_expiry() {
    let h = start_with(scenario_with(&[("token_ttl", "\"60s\"")])).await;
    let first = h.agent_token().await;
    h.advance("30s").await;
    let again = h
        .get(&format!(
            "/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}"
        ))
        .await;
    assert_eq!(
        again["access_token"],
        json!(first),
        "same token within validity"
    );
    assert_eq!(again["expires_in"], 30, "expires_in counts down");
    assert_ne!(h.contact_token().await, first, "tokens are per secret");

    h.advance("31s").await;
    let v = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={first}"))
        .await;
    assert_err(&v, 42001, "expired token");
    let renewed = h.agent_token().await;
    assert_ne!(renewed, first, "a new token after expiry");
    assert_eq!(
        h.get(&format!("/cgi-bin/get_jsapi_ticket?access_token={renewed}"))
            .await["errcode"],
        0
    );
}

#[tokio::test]
async fn token_expires_on_the_real_clock() {
    let h = start_with(scenario_with(&[("token_ttl", "\"1s\"")])).await;
    let token = h.agent_token().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let v = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={token}"))
        .await;
    assert_err(&v, 42001, "token past a 1s token_ttl");
}

#[tokio::test]
async fn token_errors_table() {
    let h = start().await;
    let agent = h.agent_token().await;
    let contact = h.contact_token().await;
    let mp = h.mp_token().await;
    let ec = "external_userid=wmEmuCustomer001";
    // (path, expected errcode)
    let cases = [
        ("/cgi-bin/get_jsapi_ticket".to_string(), 41001),
        ("/cgi-bin/get_jsapi_ticket?access_token=".to_string(), 41001),
        (
            "/cgi-bin/get_jsapi_ticket?access_token=nonsense".to_string(),
            40014,
        ),
        (
            format!("/cgi-bin/get_jsapi_ticket?access_token={mp}"),
            40014,
        ),
        (
            format!("/cgi-bin/get_jsapi_ticket?access_token={contact}"),
            48002,
        ),
        (
            format!("/cgi-bin/externalcontact/get?access_token={agent}&{ec}"),
            48002,
        ),
        (
            format!("/cgi-bin/externalcontact/get?access_token={contact}&{ec}"),
            0,
        ),
        (
            format!("/cgi-bin/user/get?access_token={agent}&userid=zhangsan"),
            0,
        ),
        (
            format!("/cgi-bin/user/get?access_token={contact}&userid=zhangsan"),
            0,
        ),
    ];
    for (path, want) in cases {
        let v = h.get(&path).await;
        if want == 0 {
            assert_eq!(v["errcode"], 0, "{path}: {v}");
        } else {
            assert_err(&v, want, &path);
        }
    }
    h.control("expire-tokens", json!({})).await;
    let v = h
        .get(&format!(
            "/cgi-bin/user/get?access_token={agent}&userid=zhangsan"
        ))
        .await;
    assert_err(&v, 42001, "after expire-tokens");
    assert_ne!(
        h.agent_token().await,
        agent,
        "gettoken after expire-tokens issues a new token"
    );
}

#[tokio::test]
async fn errmsg_looks_like_wecom() {
    let h = start().await;
    let v = h
        .get("/cgi-bin/get_jsapi_ticket?access_token=nonsense")
        .await;
    let msg = v["errmsg"].as_str().unwrap();
    assert!(msg.starts_with("invalid access_token, hint: ["), "{msg}");
    assert!(msg.contains("from ip: 127.0.0.1"), "{msg}");
    assert!(msg.ends_with("devtool/query?e=40014"), "{msg}");
}

#[tokio::test]
async fn tickets_same_within_validity_and_per_kind() {
    let h = start().await;
    let t = h.agent_token().await;
    let corp1 = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={t}"))
        .await;
    let corp2 = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={t}"))
        .await;
    let agent = h
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={t}&type=agent_config"
        ))
        .await;
    assert_eq!(corp1["errcode"], 0);
    assert_eq!(corp1["expires_in"], 7200);
    assert_eq!(
        corp1["ticket"], corp2["ticket"],
        "same ticket within validity"
    );
    assert_eq!(agent["errcode"], 0);
    assert_ne!(
        agent["ticket"], corp1["ticket"],
        "agent ticket differs from corp ticket"
    );
    let v = h
        .get(&format!("/cgi-bin/ticket/get?access_token={t}&type=jsapi"))
        .await;
    assert_err(&v, 40058, "ticket/get without type=agent_config");
}

#[tokio::test]
async fn getuserinfo_and_code_reuse() {
    let h = start().await;
    let t = h.agent_token().await;
    let code = h.wecom_code("snsapi_base").await;
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_eq!(
        v,
        json!({"errcode": 0, "errmsg": "ok", "userid": "zhangsan"})
    );
    let again = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_err(&again, 40029, "reused code");
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code=bogus"
        ))
        .await;
    assert_err(&v, 40029, "unknown code");
    let v = h
        .get(&format!("/cgi-bin/auth/getuserinfo?access_token={t}"))
        .await;
    assert_err(&v, 41008, "missing code");
}

#[tokio::test]
async fn legacy_user_getuserinfo_capitalises_fields() {
    let h = start().await;
    let t = h.agent_token().await;
    let code = h.wecom_code("snsapi_base").await;
    let v = h
        .get(&format!(
            "/cgi-bin/user/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_eq!(
        v,
        json!({"errcode": 0, "errmsg": "ok", "UserId": "zhangsan", "DeviceId": ""})
    );
    let v = h
        .get(&format!(
            "/cgi-bin/user/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_err(&v, 40029, "reused code on the old endpoint");
}

#[tokio::test]
async fn code_expires_after_code_ttl() {
    let h = start_with(scenario_with(&[("code_ttl", "\"2s\"")])).await;
    let t = h.agent_token().await;
    let code = h.wecom_code("snsapi_base").await;
    h.advance("2s").await;
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_err(&v, 40029, "expired code");
}

#[tokio::test]
async fn privateinfo_gives_a_user_ticket_for_getuserdetail() {
    let h = start().await;
    let t = h.agent_token().await;
    let code = h.wecom_code("snsapi_privateinfo").await;
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_eq!(v["userid"], "zhangsan");
    let ticket = v["user_ticket"]
        .as_str()
        .expect("user_ticket with snsapi_privateinfo")
        .to_string();
    let detail = h
        .post(
            &format!("/cgi-bin/auth/getuserdetail?access_token={t}"),
            json!({"user_ticket": ticket}),
        )
        .await;
    assert_eq!(detail["errcode"], 0);
    assert_eq!(detail["userid"], "zhangsan");
    for key in [
        "gender", "avatar", "qr_code", "mobile", "email", "biz_mail", "address",
    ] {
        assert!(
            detail.get(key).is_some(),
            "getuserdetail lacks {key}: {detail}"
        );
    }
    let bad = h
        .post(
            &format!("/cgi-bin/auth/getuserdetail?access_token={t}"),
            json!({"user_ticket": "x"}),
        )
        .await;
    assert_err(&bad, 40058, "unknown user_ticket");
    let r = h
        .http
        .post(h.url(&format!("/cgi-bin/auth/getuserdetail?access_token={t}")))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_err(&r.json().await.unwrap(), 47001, "malformed JSON");
}

#[tokio::test]
async fn user_get_table() {
    let h = start().await;
    let t = h.agent_token().await;
    let v = h
        .get(&format!(
            "/cgi-bin/user/get?access_token={t}&userid=zhangsan"
        ))
        .await;
    assert_eq!(v["name"], "张三");
    assert_eq!(
        v["department"],
        json!([3]),
        "the default scenario's 华东销售组"
    );
    assert_eq!(v["main_department"], 3);
    assert_err(
        &h.get(&format!("/cgi-bin/user/get?access_token={t}&userid=nobody"))
            .await,
        60111,
        "unknown userid",
    );
    assert_err(
        &h.get(&format!("/cgi-bin/user/get?access_token={t}")).await,
        41009,
        "missing userid",
    );
}

#[tokio::test]
async fn externalcontact_shape_and_errors() {
    let h = start().await;
    let t = h.contact_token().await;
    let v = h
        .get(&format!(
            "/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmEmuCustomer001"
        ))
        .await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(v["external_contact"]["name"], "王小明");
    assert_eq!(v["external_contact"]["type"], 1);
    assert_eq!(v["external_contact"]["unionid"], "oEmuUnion001");
    assert_eq!(v["follow_user"][0]["userid"], "zhangsan");
    assert_eq!(v["next_cursor"], "");
    let v = h
        .get(&format!(
            "/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmNobody"
        ))
        .await;
    assert_err(&v, 40096, "unknown external_userid");
}

#[tokio::test]
async fn externalcontact_pages_follow_user() {
    let mut text = emulator::Scenario::default_toml().replace(
        "allowed_ips = []",
        "allowed_ips = []\nfollow_user_page_size = 2",
    );
    for u in ["lisi", "wangwu", "zhaoliu", "sunqi"] {
        text.push_str(&format!(
            "\n[[members]]\nuserid = \"{u}\"\nname = \"{u}\"\n"
        ));
    }
    let text = text.replace(
        "follow_user = [\"zhangsan\"]",
        "follow_user = [\"zhangsan\", \"lisi\", \"wangwu\", \"zhaoliu\", \"sunqi\"]",
    );
    let h = start_with(emulator::Scenario::from_toml(&text).unwrap()).await;
    let t = h.contact_token().await;
    let mut cursor = String::new();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let v = h
            .get(&format!("/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmEmuCustomer001&cursor={cursor}"))
            .await;
        assert_eq!(v["errcode"], 0, "{v}");
        pages += 1;
        seen.extend(
            v["follow_user"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["userid"].as_str().unwrap().to_string()),
        );
        cursor = v["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi"]);
    let v = h
        .get(&format!("/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmEmuCustomer001&cursor=garbage"))
        .await;
    assert_err(&v, 40058, "bad cursor");
}

#[tokio::test]
async fn message_send_table() {
    let h = start().await;
    let t = h.agent_token().await;
    let path = format!("/cgi-bin/message/send?access_token={t}");
    let text = json!({"content": "hi"});
    let cases = [
        (
            json!({"touser": "zhangsan", "msgtype": "text", "agentid": AGENT, "text": text}),
            0,
            "",
        ),
        (
            json!({"touser": "zhangsan|ghost", "msgtype": "text", "agentid": AGENT, "text": text}),
            0,
            "ghost",
        ),
        (
            json!({"touser": "ghost", "msgtype": "text", "agentid": AGENT, "text": text}),
            81013,
            "",
        ),
        (
            json!({"touser": "zhangsan", "msgtype": "text", "agentid": 1000003, "text": text}),
            301002,
            "",
        ),
        (
            json!({"touser": "zhangsan", "msgtype": "text", "text": text}),
            40056,
            "",
        ),
    ];
    for (body, want, invalid) in cases {
        let v = h.post(&path, body.clone()).await;
        if want == 0 {
            assert_eq!(v["errcode"], 0, "{body}: {v}");
            assert_eq!(v["invaliduser"], invalid, "{body}");
            assert!(v["msgid"].as_str().is_some_and(|m| !m.is_empty()));
        } else {
            assert_err(&v, want, &body.to_string());
        }
    }
}

#[tokio::test]
async fn media_upload_multipart() {
    let h = start().await;
    let t = h.agent_token().await;
    let form = || {
        reqwest::multipart::Form::new().part(
            "media",
            reqwest::multipart::Part::bytes(b"PNG".to_vec()).file_name("a.png"),
        )
    };
    let r = h
        .http
        .post(h.url(&format!(
            "/cgi-bin/media/upload?access_token={t}&type=image"
        )))
        .multipart(form())
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["type"], "image");
    assert!(v["media_id"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        v["created_at"].is_string(),
        "created_at is a string at WeCom"
    );
    let r = h
        .http
        .post(h.url(&format!(
            "/cgi-bin/media/upload?access_token={t}&type=movie"
        )))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_err(&r.json().await.unwrap(), 40004, "bad media type");
    let empty = reqwest::multipart::Form::new().text("other", "x");
    let r = h
        .http
        .post(h.url(&format!("/cgi-bin/media/upload?access_token={t}&type=file")))
        .multipart(empty)
        .send()
        .await
        .unwrap();
    assert_err(&r.json().await.unwrap(), 44001, "no media field");
}
