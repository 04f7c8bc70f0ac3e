//! The Official Account calls: bare successes, the 5-minute overlap, 40163 on code reuse.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn token_table() {
    let h = start().await;
    let cases = [
        (
            format!("grant_type=client_credential&appid={MP}&secret={MP_SECRET}"),
            0,
        ),
        (
            format!("grant_type=password&appid={MP}&secret={MP_SECRET}"),
            40002,
        ),
        (
            format!("grant_type=client_credential&secret={MP_SECRET}"),
            41002,
        ),
        (format!("grant_type=client_credential&appid={MP}"), 41004),
        (
            format!("grant_type=client_credential&appid=wxother&secret={MP_SECRET}"),
            40013,
        ),
        (
            format!("grant_type=client_credential&appid={MP}&secret=wrong"),
            40125,
        ),
    ];
    for (query, want) in cases {
        let v = h.get(&format!("/cgi-bin/token?{query}")).await;
        if want == 0 {
            assert!(
                v.get("errcode").is_none(),
                "WeChat success carries no errcode: {v}"
            );
            assert!(v["access_token"].is_string());
            assert_eq!(v["expires_in"], 7200);
        } else {
            assert_err(&v, want, &query);
            assert!(v["errmsg"].as_str().unwrap().contains(" rid: "), "{v}");
        }
    }
}

#[tokio::test]
async fn every_token_call_issues_a_new_token_and_the_old_one_lives_the_overlap() {
    let h = start_with(scenario_with(&[("wechat_token_overlap", "\"300s\"")])).await;
    let first = h.mp_token().await;
    let ticket = |t: &str| format!("/cgi-bin/ticket/getticket?access_token={t}&type=jsapi");
    assert_eq!(h.get(&ticket(&first)).await["errcode"], 0);
    let second = h.mp_token().await;
    assert_ne!(first, second, "cgi-bin/token always issues a new token");
    h.advance("299s").await;
    assert_eq!(
        h.get(&ticket(&first)).await["errcode"],
        0,
        "previous token works during the overlap"
    );
    h.advance("1s").await;
    let v = h.get(&ticket(&first)).await;
    assert_err(&v, 40001, "previous token after the overlap");
    assert!(v["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("invalid credential, access_token is invalid or not latest"));
    assert_eq!(
        h.get(&ticket(&second)).await["errcode"],
        0,
        "latest token still works"
    );
}

#[tokio::test]
async fn basic_token_errors() {
    let h = start_with(scenario_with(&[("token_ttl", "\"60s\"")])).await;
    let t = h.mp_token().await;
    let cases = [
        ("/cgi-bin/ticket/getticket?type=jsapi".to_string(), 41001),
        (
            "/cgi-bin/ticket/getticket?access_token=nonsense&type=jsapi".to_string(),
            40001,
        ),
        (
            format!("/cgi-bin/ticket/getticket?access_token={t}&type=bogus"),
            40097,
        ),
    ];
    for (path, want) in cases {
        assert_err(&h.get(&path).await, want, &path);
    }
    let v = h
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await;
    assert_eq!(
        v["errcode"], 0,
        "getticket is the WeChat success that carries errcode"
    );
    assert_eq!(v["errmsg"], "ok");
    assert!(v["ticket"].is_string());
    h.advance("60s").await;
    let v = h
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await;
    assert_err(&v, 42001, "expired basic token");
}

#[tokio::test]
async fn web_oauth_and_code_reuse() {
    let h = start().await;
    let code = h.wechat_code("snsapi_userinfo").await;
    let path = |c: &str| {
        format!("/sns/oauth2/access_token?appid={MP}&secret={MP_SECRET}&code={c}&grant_type=authorization_code")
    };
    let v = h.get(&path(&code)).await;
    assert!(v.get("errcode").is_none(), "{v}");
    assert_eq!(v["openid"], "oEmuOpenId001");
    assert_eq!(v["unionid"], "oEmuUnion001");
    assert_eq!(v["scope"], "snsapi_userinfo");
    assert!(
        v.get("is_snapshotuser").is_none(),
        "an ordinary user is no snapshot user"
    );
    for key in ["access_token", "expires_in", "refresh_token"] {
        assert!(v.get(key).is_some(), "lacks {key}: {v}");
    }
    assert_err(&h.get(&path(&code)).await, 40163, "reused code");
    assert_err(&h.get(&path("bogus")).await, 40029, "unknown code");
    let wecom_code = h.wecom_code("snsapi_base").await;
    assert_err(
        &h.get(&path(&wecom_code)).await,
        40029,
        "a WeCom code at WeChat",
    );

    let web = v["access_token"].as_str().unwrap();
    let info = h
        .get(&format!(
            "/sns/userinfo?access_token={web}&openid=oEmuOpenId001&lang=zh_CN"
        ))
        .await;
    assert!(info.get("errcode").is_none(), "{info}");
    assert_eq!(info["nickname"], "小明");
    assert_eq!(info["unionid"], "oEmuUnion001");
    assert_eq!(info["privilege"], json!([]));
    let v = h
        .get(&format!("/sns/userinfo?access_token={web}&openid=oOther"))
        .await;
    assert_err(&v, 40003, "openid of another user");
    let basic = h.mp_token().await;
    let v = h
        .get(&format!(
            "/sns/userinfo?access_token={basic}&openid=oEmuOpenId001"
        ))
        .await;
    assert_err(&v, 40001, "the basic token is not a web token");
}

#[tokio::test]
async fn snsapi_base_cannot_read_userinfo() {
    let h = start().await;
    let code = h.wechat_code("snsapi_base").await;
    let v = h
        .get(&format!("/sns/oauth2/access_token?appid={MP}&secret={MP_SECRET}&code={code}&grant_type=authorization_code"))
        .await;
    let web = v["access_token"].as_str().unwrap();
    let v = h
        .get(&format!(
            "/sns/userinfo?access_token={web}&openid=oEmuOpenId001"
        ))
        .await;
    assert_err(&v, 48001, "userinfo with snsapi_base");
}

#[tokio::test]
async fn oauth_checks_credentials() {
    let h = start().await;
    let code = h.wechat_code("snsapi_base").await;
    let cases = [
        (
            format!("appid=wxother&secret={MP_SECRET}&code={code}&grant_type=authorization_code"),
            40013,
        ),
        (
            format!("appid={MP}&secret=wrong&code={code}&grant_type=authorization_code"),
            40125,
        ),
        (format!("appid={MP}&secret={MP_SECRET}&code={code}"), 40002),
        (
            format!("appid={MP}&secret={MP_SECRET}&grant_type=authorization_code"),
            41008,
        ),
    ];
    for (query, want) in cases {
        assert_err(
            &h.get(&format!("/sns/oauth2/access_token?{query}")).await,
            want,
            &query,
        );
    }
}

/// `cgi-bin/stable_token`: the same token again without `force_refresh` (asking ends nothing,
/// and `cgi-bin/token`'s is another), a new one with it, the previous working through the
/// overlap; the credentials' errors as `cgi-bin/token`'s.
#[tokio::test]
async fn a_stable_token_comes_back_the_same_until_a_refresh_is_forced() {
    let h = start_with(scenario_with(&[("wechat_token_overlap", "\"300s\"")])).await;
    let ask = |force: bool| {
        json!({"grant_type": "client_credential", "appid": MP, "secret": MP_SECRET,
               "force_refresh": force})
    };
    let first = h.post("/cgi-bin/stable_token", ask(false)).await;
    assert!(first.get("errcode").is_none(), "{first}");
    let first = first["access_token"].as_str().unwrap().to_owned();
    let again = h.post("/cgi-bin/stable_token", ask(false)).await;
    assert_eq!(again["access_token"], first.as_str());
    let plain = h.mp_token().await;
    assert_ne!(plain, first, "cgi-bin/token's is another token");
    let ticket = |t: &str| format!("/cgi-bin/ticket/getticket?access_token={t}&type=jsapi");
    assert_eq!(h.get(&ticket(&first)).await["errcode"], 0, "both work");
    let forced = h.post("/cgi-bin/stable_token", ask(true)).await;
    let forced = forced["access_token"].as_str().unwrap().to_owned();
    assert_ne!(forced, first);
    h.advance("299s").await;
    assert_eq!(
        h.get(&ticket(&first)).await["errcode"],
        0,
        "within the overlap"
    );
    h.advance("2s").await;
    assert_ne!(
        h.get(&ticket(&first)).await["errcode"],
        0,
        "past the overlap"
    );
    assert_eq!(h.get(&ticket(&forced)).await["errcode"], 0);
    for (body, want) in [
        (
            json!({"grant_type": "client_credential", "appid": MP, "secret": "wrong"}),
            40125,
        ),
        (
            json!({"grant_type": "client_credential", "appid": "wxother", "secret": MP_SECRET}),
            40013,
        ),
        (
            json!({"grant_type": "password", "appid": MP, "secret": MP_SECRET}),
            40002,
        ),
    ] {
        let v = h.post("/cgi-bin/stable_token", body.clone()).await;
        assert_err(&v, want, &body.to_string());
    }
}
