//! The provider side (issue 20): suite tickets pushed to the instruction URL, suite tokens,
//! installs by AuthCode, permanent codes, corp tokens, third-party logins, 代开发 apps, and the
//! error codes of each; every corp keeps its own members, tokens and tickets.

mod common;

use common::receiver::Receiver;
use common::*;
use serde_json::{json, Value};

/// The default scenario with fast callbacks and no timed ticket pushes.
fn scenario() -> emulator::Scenario {
    let text = Scenario::default_toml()
        .replace("callback_timeout = \"5s\"", "callback_timeout = \"2s\"")
        .replace(
            "suite_ticket_interval = \"600s\"",
            "suite_ticket_interval = \"0s\"",
        );
    Scenario::from_toml(&text).unwrap()
}

use emulator::Scenario;

struct Provider {
    h: Harness,
    instructions: Receiver,
}

async fn provider() -> Provider {
    let h = start_with(scenario()).await;
    // The instruction URL: verified with the provider's corp id, messages carry the suite id.
    let instructions = Receiver::start(&[PROVIDER_CORP, SUITE, CUSTOM_SUITE]).await;
    for (app, suite) in [("saas", SUITE), ("custom", CUSTOM_SUITE)] {
        h.register(
            app,
            &instructions.url,
            json!({"kind": "instruction", "suite_id": suite}),
        )
        .await;
    }
    Provider { h, instructions }
}

async fn post(h: &Harness, path: &str, body: Value) -> Value {
    h.post(path, body).await
}

impl Provider {
    async fn ticket(&self, suite: &str) -> String {
        let r = self
            .h
            .control("suites/push-ticket", json!({"suite_id": suite}))
            .await;
        self.h.callbacks().await;
        r["suite_ticket"].as_str().unwrap().to_string()
    }

    async fn suite_token(&self, suite: &str, secret: &str) -> String {
        let ticket = self.ticket(suite).await;
        let v = post(
            &self.h,
            "/cgi-bin/service/get_suite_token",
            json!({"suite_id": suite, "suite_secret": secret, "suite_ticket": ticket}),
        )
        .await;
        v["suite_access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    }

    /// Installs `suite` in `corp` through `create_auth` and returns (suite token, permanent code).
    async fn install(&self, suite: &str, secret: &str, corp: &str) -> (String, String) {
        let token = self.suite_token(suite, secret).await;
        self.h
            .control(
                "suites/install",
                json!({"suite_id": suite, "corp_id": corp, "state": "s1"}),
            )
            .await;
        self.h.callbacks().await;
        let m = self
            .instructions
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.get("InfoType") == Some("create_auth"))
            .unwrap();
        let code = m.get("AuthCode").unwrap().to_string();
        let v = post(
            &self.h,
            &format!("/cgi-bin/service/v2/get_permanent_code?suite_access_token={token}"),
            json!({"auth_code": code}),
        )
        .await;
        (
            token,
            v["permanent_code"]
                .as_str()
                .unwrap_or_else(|| panic!("{v}"))
                .to_string(),
        )
    }

    async fn corp_token(&self, suite_token: &str, corp: &str, permanent: &str) -> Value {
        post(
            &self.h,
            &format!("/cgi-bin/service/get_corp_token?suite_access_token={suite_token}"),
            json!({"auth_corpid": corp, "permanent_code": permanent}),
        )
        .await
    }
}

#[tokio::test]
async fn suite_ticket_push_then_suite_token() {
    let p = provider().await;
    let h = &p.h;
    let token = |ticket: &str| json!({"suite_id": SUITE, "suite_secret": SUITE_SECRET, "suite_ticket": ticket});
    assert_err(
        &post(h, "/cgi-bin/service/get_suite_token", token("")).await,
        41023,
        "no ticket yet",
    );
    assert_err(
        &post(h, "/cgi-bin/service/get_suite_token", token("guess")).await,
        40085,
        "a guessed ticket",
    );
    let ticket = p.ticket(SUITE).await;
    let got = p.instructions.received();
    assert!(
        p.instructions.refused().is_empty(),
        "{:?}",
        p.instructions.refused()
    );
    assert_eq!(got[0].kind, "verify");
    let m = &p.instructions.messages()[0];
    assert_eq!(m.get("SuiteId"), Some(SUITE));
    assert_eq!(m.get("InfoType"), Some("suite_ticket"));
    assert_eq!(m.get("SuiteTicket"), Some(ticket.as_str()));
    assert_eq!(got[1].to_user, SUITE);
    let v = post(h, "/cgi-bin/service/get_suite_token", token(&ticket)).await;
    assert!(v.get("errcode").is_none(), "no errcode on success: {v}");
    assert_eq!(v["expires_in"], 7200);
    let again = post(h, "/cgi-bin/service/get_suite_token", token(&ticket)).await;
    assert_eq!(
        again["suite_access_token"], v["suite_access_token"],
        "the same token within its validity"
    );
    let cases = [
        (
            json!({"suite_id": "wwnope", "suite_secret": SUITE_SECRET, "suite_ticket": ticket}),
            40083,
        ),
        (
            json!({"suite_id": SUITE, "suite_secret": "wrong", "suite_ticket": ticket}),
            40080,
        ),
        (
            json!({"suite_id": CUSTOM_SUITE, "suite_secret": CUSTOM_SUITE_SECRET, "suite_ticket": ticket}),
            40085,
        ),
    ];
    for (body, code) in cases {
        assert_err(
            &post(h, "/cgi-bin/service/get_suite_token", body.clone()).await,
            code,
            &body.to_string(),
        );
    }
    // A ticket is good for 30 minutes.
    h.advance("1801s").await;
    assert_err(
        &post(h, "/cgi-bin/service/get_suite_token", token(&ticket)).await,
        40085,
        "ticket older than 30 minutes",
    );
    let st = v["suite_access_token"].as_str().unwrap();
    let pre = format!("/cgi-bin/service/get_pre_auth_code?suite_access_token={st}");
    assert_eq!(h.get(&pre).await["errcode"], 0);
    h.control("expire-tokens", json!({})).await;
    assert_err(&h.get(&pre).await, 42009, "suite token expired");
    assert_err(
        &h.get("/cgi-bin/service/get_pre_auth_code?suite_access_token=nope")
            .await,
        40082,
        "unknown suite token",
    );
    assert_err(
        &h.get("/cgi-bin/service/get_pre_auth_code").await,
        41022,
        "no suite token",
    );
}

#[tokio::test]
async fn tickets_are_pushed_every_interval() {
    let text = Scenario::default_toml().replace(
        "suite_ticket_interval = \"600s\"",
        "suite_ticket_interval = \"100ms\"",
    );
    let h = start_with(Scenario::from_toml(&text).unwrap()).await;
    let r = Receiver::start(&[PROVIDER_CORP, SUITE]).await;
    h.register(
        "saas",
        &r.url,
        json!({"kind": "instruction", "suite_id": SUITE}),
    )
    .await;
    // Observed, not slept for: the log until three pushes have been delivered.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let delivered = h
            .callbacks()
            .await
            .iter()
            .filter(|l| l["kind"] == "message" && l["result"] == "delivered")
            .count();
        if delivered >= 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "pushes did not come");
        tokio::task::yield_now().await;
    }
    let tickets: Vec<String> = r
        .messages()
        .iter()
        .map(|m| m.get("SuiteTicket").unwrap().to_string())
        .collect();
    assert!(
        tickets.windows(2).all(|w| w[0] != w[1]),
        "a new ticket each time"
    );
}

#[tokio::test]
async fn install_permanent_code_auth_info_and_corp_token() {
    let p = provider().await;
    let h = &p.h;
    let st = p.suite_token(SUITE, SUITE_SECRET).await;
    let installed = h
        .control(
            "suites/install",
            json!({"suite_id": SUITE, "corp_id": CORP_B, "state": "from-market"}),
        )
        .await;
    h.callbacks().await;
    let m = p
        .instructions
        .messages()
        .into_iter()
        .find(|m| m.get("InfoType") == Some("create_auth"))
        .unwrap();
    let code = m.get("AuthCode").unwrap().to_string();
    assert_eq!(code, installed["auth_code"]);
    assert_eq!(m.get("State"), Some("from-market"));
    let v1 = format!("/cgi-bin/service/get_permanent_code?suite_access_token={st}");
    let v2 = format!("/cgi-bin/service/v2/get_permanent_code?suite_access_token={st}");
    let v = post(h, &v2, json!({"auth_code": code})).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(
        v["auth_corp_info"],
        json!({"corpid": CORP_B, "corp_name": "模拟客户甲"})
    );
    assert_eq!(v["auth_user_info"]["userid"], "zhangsan");
    assert!(v["auth_user_info"]["open_userid"]
        .as_str()
        .unwrap()
        .starts_with("wo"));
    assert_eq!(v["state"], "from-market");
    let permanent = v["permanent_code"].as_str().unwrap().to_string();
    assert_err(
        &post(h, &v2, json!({"auth_code": code})).await,
        40078,
        "an AuthCode is single use",
    );
    assert_err(
        &post(h, &v1, json!({"auth_code": "nope"})).await,
        40078,
        "unknown AuthCode",
    );
    // Auth info: the suite's agent in that corp.
    let info = post(
        h,
        &format!("/cgi-bin/service/v2/get_auth_info?suite_access_token={st}"),
        json!({"auth_corpid": CORP_B, "permanent_code": permanent}),
    )
    .await;
    assert_eq!(info["auth_corp_info"]["corpid"], CORP_B);
    assert_eq!(info["auth_info"]["agent"][0]["agentid"], SUITE_AGENT);
    // The corp token reads corp B, not the home corp: zhangsan there is another person.
    let t = p.corp_token(&st, CORP_B, &permanent).await;
    assert!(t.get("errcode").is_none(), "no errcode on success: {t}");
    let ct = t["access_token"].as_str().unwrap();
    let user = h
        .get(&format!(
            "/cgi-bin/user/get?access_token={ct}&userid=zhangsan"
        ))
        .await;
    assert_eq!(user["name"], "张三（甲）");
    assert_err(
        &h.get(&format!(
            "/cgi-bin/user/get?access_token={ct}&userid=qianqi"
        ))
        .await,
        60111,
        "corp C's member",
    );
    // JS-SDK tickets need the corp token; the suite token is no access token.
    let ticket_b = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={ct}"))
        .await;
    assert_eq!(ticket_b["errcode"], 0);
    assert_err(
        &h.get(&format!("/cgi-bin/get_jsapi_ticket?access_token={st}"))
            .await,
        40014,
        "suite token on a corp API",
    );
    let agent_b = h
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={ct}&type=agent_config"
        ))
        .await;
    let home_ticket = h
        .get(&format!(
            "/cgi-bin/get_jsapi_ticket?access_token={}",
            h.agent_token().await
        ))
        .await;
    assert_ne!(
        home_ticket["ticket"], ticket_b["ticket"],
        "each corp its own ticket"
    );
    // The fake JS-SDK checks corp B's signature with corp B's tickets.
    for (kind, ticket, extra) in [
        ("config", &ticket_b["ticket"], json!({"appId": CORP_B})),
        (
            "agentConfig",
            &agent_b["ticket"],
            json!({"corpid": CORP_B, "agentid": SUITE_AGENT}),
        ),
    ] {
        let url = "https://crm.test/sidebar/";
        let sig = emulator::jsapi_signature(ticket.as_str().unwrap(), "n1", "1700000000", url);
        let mut body = json!({"kind": kind, "timestamp": 1700000000, "nonceStr": "n1", "signature": sig, "url": url});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_eq!(
            h.post("/_emulator/jssdk/verify", body.clone()).await["errMsg"],
            format!("{kind}:ok")
        );
        body["signature"] = json!(emulator::jsapi_signature(
            home_ticket["ticket"].as_str().unwrap(),
            "n1",
            "1700000000",
            url
        ));
        assert_eq!(
            h.post("/_emulator/jssdk/verify", body).await["errMsg"],
            format!("{kind}:invalid signature")
        );
    }
    let corp_token = format!("/cgi-bin/service/get_corp_token?suite_access_token={st}");
    let cases = [
        (json!({"auth_corpid": CORP_B}), 41025),
        (
            json!({"auth_corpid": CORP_B, "permanent_code": "wrong"}),
            40084,
        ),
        (
            json!({"auth_corpid": CORP_C, "permanent_code": permanent}),
            40084,
        ),
    ];
    for (body, code) in cases {
        assert_err(
            &post(h, &corp_token, body.clone()).await,
            code,
            &body.to_string(),
        );
    }
    assert_eq!(
        h.control_status(
            "suites/install",
            json!({"suite_id": SUITE, "corp_id": CORP_B})
        )
        .await,
        409
    );
}

#[tokio::test]
async fn auth_changes_must_be_answered_within_a_second_tickets_within_the_timeout() {
    let p = provider().await; // callback_timeout 2s
    let slow = common::receiver::Answer {
        status: 200,
        body: "success",
        delay: std::time::Duration::from_millis(1300),
    };
    p.instructions.script([slow.clone()]);
    p.ticket(SUITE).await;
    p.instructions.script([slow]);
    p.h.control(
        "suites/install",
        json!({"suite_id": SUITE, "corp_id": CORP_B}),
    )
    .await;
    let log = p.h.callbacks().await;
    let tries = |info: &str| -> Vec<Value> {
        let line = log
            .iter()
            .find(|l| l["message"].as_str().unwrap().contains(info))
            .unwrap();
        line["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["error"].clone())
            .collect()
    };
    assert_eq!(
        tries("suite_ticket"),
        [Value::Null],
        "1.3 s is within the 2 s timeout"
    );
    assert_eq!(
        tries("create_auth"),
        [json!("timeout"), Value::Null],
        "but not within create_auth's 1000 ms"
    );
}

#[tokio::test]
async fn an_auth_code_lives_ten_minutes() {
    let p = provider().await;
    let st = p.suite_token(SUITE, SUITE_SECRET).await;
    let r =
        p.h.control(
            "suites/install",
            json!({"suite_id": SUITE, "corp_id": CORP_C}),
        )
        .await;
    p.h.advance("601s").await;
    let v = post(
        &p.h,
        &format!("/cgi-bin/service/v2/get_permanent_code?suite_access_token={st}"),
        json!({"auth_code": r["auth_code"]}),
    )
    .await;
    assert_err(&v, 40078, "AuthCode past 10 minutes");
}

#[tokio::test]
async fn cancel_auth_ends_the_permanent_code_and_its_tokens() {
    let p = provider().await;
    let h = &p.h;
    let (st, permanent) = p.install(SUITE, SUITE_SECRET, CORP_B).await;
    let ct = p.corp_token(&st, CORP_B, &permanent).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    h.control(
        "suites/change-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_B}),
    )
    .await;
    h.control(
        "suites/cancel-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_B}),
    )
    .await;
    h.callbacks().await;
    let infos: Vec<(String, String)> = p
        .instructions
        .messages()
        .iter()
        .filter(|m| m.get("AuthCorpId").is_some())
        .map(|m| {
            (
                m.get("InfoType").unwrap().to_string(),
                m.get("AuthCorpId").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        infos,
        [
            ("change_auth".into(), CORP_B.into()),
            ("cancel_auth".into(), CORP_B.into())
        ]
    );
    assert_err(
        &h.get(&format!(
            "/cgi-bin/user/get?access_token={ct}&userid=zhangsan"
        ))
        .await,
        40014,
        "the corp token died",
    );
    assert_err(
        &p.corp_token(&st, CORP_B, &permanent).await,
        40084,
        "the permanent code died",
    );
    assert_eq!(
        h.control_status(
            "suites/cancel-auth",
            json!({"suite_id": SUITE, "corp_id": CORP_B})
        )
        .await,
        404
    );
}

#[tokio::test]
async fn third_party_login_by_authorize_and_by_service_app_qr() {
    let p = provider().await;
    let h = &p.h;
    let (st, permanent) = p.install(SUITE, SUITE_SECRET, CORP_B).await;
    h.control(
        "current-user",
        json!({"userid": "zhaoliu", "corp_id": CORP_B}),
    )
    .await;
    let loc = h
        .authorize(&format!(
            "appid={SUITE}&redirect_uri={}&response_type=code&scope=snsapi_privateinfo&state=s1",
            enc(CALLBACK)
        ))
        .await;
    let code = code_of(&loc);
    let ct = p.corp_token(&st, CORP_B, &permanent).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_err(
        &h.get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={ct}&code={code}"
        ))
        .await,
        40029,
        "a third-party code is not a corp app's",
    );
    let info = |code: &str| {
        format!("/cgi-bin/service/auth/getuserinfo3rd?suite_access_token={st}&code={code}")
    };
    let v = h.get(&info(&code)).await;
    assert_eq!(
        (
            v["errcode"].as_i64(),
            v["corpid"].as_str(),
            v["userid"].as_str()
        ),
        (Some(0), Some(CORP_B), Some("zhaoliu"))
    );
    assert!(
        v["user_ticket"].is_string(),
        "privateinfo in an installed corp: {v}"
    );
    let open_zhaoliu = v["open_userid"].as_str().unwrap().to_string();
    assert_err(&h.get(&info(&code)).await, 40029, "code reuse");
    // The QR page of a third-party app lists members of every corp; zhangsan of A and of B are
    // two people with two open_userids.
    let page = h
        .http
        .get(h.url(&format!(
            "/wwlogin/sso/login?login_type=ServiceApp&appid={SUITE}&redirect_uri={}&state=s2",
            enc(CALLBACK)
        )))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("赵六") && page.contains("钱七") && page.contains("张三（甲）"),
        "{page}"
    );
    let mut opens = Vec::new();
    for corp in [CORP, CORP_B] {
        let r = h.http.get(h.url(&format!("/wwlogin/sso/choose?login_type=ServiceApp&appid={SUITE}&redirect_uri={}&state=s2&userid=zhangsan&corpid={corp}", enc(CALLBACK)))).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let code = code_of(r.headers()["location"].to_str().unwrap());
        let v = h.get(&info(&code)).await;
        assert_eq!(
            (v["corpid"].as_str(), v["userid"].as_str()),
            (Some(corp), Some("zhangsan"))
        );
        if corp == CORP {
            assert!(
                v.get("user_ticket").is_none(),
                "the home corp has not installed the suite"
            );
        }
        opens.push(v["open_userid"].as_str().unwrap().to_string());
    }
    assert_ne!(opens[0], opens[1]);
    assert!(!opens.contains(&open_zhaoliu));
    assert_err(
        &h.get(&format!(
            "/cgi-bin/service/auth/getuserinfo3rd?suite_access_token=nope&code={code}"
        ))
        .await,
        40082,
        "unknown suite token",
    );
}

#[tokio::test]
async fn custom_app_uses_gettoken_with_the_permanent_code_and_self_built_oauth() {
    let p = provider().await;
    let h = &p.h;
    let (st, permanent) = p.install(CUSTOM_SUITE, CUSTOM_SUITE_SECRET, CORP_C).await;
    let gettoken = |secret: &str| format!("/cgi-bin/gettoken?corpid={CORP_C}&corpsecret={secret}");
    let v = h.get(&gettoken(&permanent)).await;
    assert_eq!(v["errcode"], 0, "{v}");
    let t = v["access_token"].as_str().unwrap().to_string();
    // The self-built OAuth of corp C, with the app's agent id there.
    h.control(
        "current-user",
        json!({"userid": "qianqi", "corp_id": CORP_C}),
    )
    .await;
    let loc = h
        .authorize(&format!("appid={CORP_C}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s1&agentid={CUSTOM_AGENT}", enc(CALLBACK)))
        .await;
    let u = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={}",
            code_of(&loc)
        ))
        .await;
    assert_eq!(u["userid"], "qianqi");
    // reset_permanent_code: a new AuthCode; its exchange replaces the permanent code.
    let r = h
        .control(
            "suites/reset-permanent-code",
            json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_C}),
        )
        .await;
    h.callbacks().await;
    let m = p
        .instructions
        .messages()
        .into_iter()
        .rev()
        .find(|m| m.get("InfoType") == Some("reset_permanent_code"))
        .unwrap();
    assert_eq!(m.get("AuthCode"), r["auth_code"].as_str());
    assert_eq!(m.get("SuiteId"), Some(CUSTOM_SUITE));
    let v = post(
        h,
        &format!("/cgi-bin/service/v2/get_permanent_code?suite_access_token={st}"),
        json!({"auth_code": r["auth_code"]}),
    )
    .await;
    let fresh = v["permanent_code"].as_str().unwrap();
    assert_ne!(fresh, permanent);
    assert_err(
        &h.get(&gettoken(&permanent)).await,
        40001,
        "the old permanent code is no secret any more",
    );
    assert_err(
        &h.get(&format!("/cgi-bin/user/get?access_token={t}&userid=qianqi"))
            .await,
        40014,
        "nor its token",
    );
    assert_eq!(h.get(&gettoken(fresh)).await["errcode"], 0);
    assert_eq!(
        h.control_status(
            "suites/reset-permanent-code",
            json!({"suite_id": SUITE, "corp_id": CORP_C})
        )
        .await,
        404,
        "the third-party suite is not installed in C"
    );
    // The home corp's authorize page refuses a member of another corp.
    let r = h.http.get(h.url(&format!("/connect/oauth2/authorize?appid={CORP}&redirect_uri={}&response_type=code&scope=snsapi_base&agentid={AGENT}", enc(CALLBACK)))).send().await.unwrap();
    assert_eq!(r.headers()["x-emulator-error"], "user");
}

#[tokio::test]
async fn data_callbacks_reach_the_suite_for_its_corps_only() {
    let p = provider().await;
    let h = &p.h;
    let data = Receiver::start(&[PROVIDER_CORP, CORP_B, CORP_C]).await;
    h.register(
        "saas-data",
        &data.url,
        json!({"kind": "data", "suite_id": SUITE}),
    )
    .await;
    let data_url = format!("{}?corp=$CORPID$", data.url);
    h.register(
        "saas-data",
        &data_url,
        json!({"kind": "data", "suite_id": SUITE}),
    )
    .await;
    let home = Receiver::start(&[CORP]).await;
    h.register("crm", &home.url, json!({"agent_id": AGENT}))
        .await;
    p.install(SUITE, SUITE_SECRET, CORP_B).await;
    h.control(
        "members/delete",
        json!({"userid": "zhaoliu", "corp_id": CORP_B}),
    )
    .await;
    h.control(
        "contacts/add",
        json!({"userid": "qianqi", "corp_id": CORP_C, "external_userid": "wmC"}),
    )
    .await;
    h.callbacks().await;
    assert!(data.refused().is_empty() && home.refused().is_empty());
    let got: Vec<_> = data
        .received()
        .into_iter()
        .filter(|r| r.kind == "message")
        .collect();
    assert_eq!(got.len(), 1, "corp C has not installed the suite");
    assert_eq!(
        (got[0].to_user.as_str(), got[0].agent_id.as_str()),
        (CORP_B, "1000005")
    );
    assert_eq!(data.messages()[0].get("UserID"), Some("zhaoliu"));
    // `$CORPID$` in a data URL: the event's corp, and the provider's for the URL check.
    let corps: Vec<(&str, String)> = data
        .received()
        .into_iter()
        .map(|r| (r.kind, r.query["corp"].clone()))
        .collect();
    assert_eq!(
        corps,
        [
            ("verify", PROVIDER_CORP.to_string()),
            ("message", CORP_B.to_string())
        ]
    );
    assert!(
        home.messages().is_empty(),
        "the home corp's app hears nothing of corp B"
    );
}

#[tokio::test]
async fn install_page_redirects_with_the_auth_code() {
    let p = provider().await;
    let h = &p.h;
    let st = p.suite_token(SUITE, SUITE_SECRET).await;
    let pre = h
        .get(&format!(
            "/cgi-bin/service/get_pre_auth_code?suite_access_token={st}"
        ))
        .await;
    assert_eq!(pre["expires_in"], 1200);
    let pre = pre["pre_auth_code"].as_str().unwrap();
    let q = format!(
        "suite_id={SUITE}&pre_auth_code={pre}&redirect_uri={}&state=web",
        enc(CALLBACK)
    );
    let page = h
        .http
        .get(h.url(&format!("/3rdapp/install?{q}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(CORP_C), "{page}");
    let r = h
        .http
        .get(h.url(&format!("/3rdapp/install/choose?{q}&corpid={CORP_C}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(
        (params["expires_in"].as_str(), params["state"].as_str()),
        ("600", "web")
    );
    let v = post(
        h,
        &format!("/cgi-bin/service/get_permanent_code?suite_access_token={st}"),
        json!({"auth_code": params["auth_code"]}),
    )
    .await;
    assert_eq!(v["auth_corp_info"]["corpid"], CORP_C);
    assert!(v["access_token"].is_string(), "v1 also gives a corp token");
    let bad = h
        .http
        .get(h.url(&format!(
            "/3rdapp/install?suite_id={SUITE}&pre_auth_code=nope&redirect_uri={}",
            enc(CALLBACK)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.headers()["x-emulator-error"], "pre_auth_code");
}
