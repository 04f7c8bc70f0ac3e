//! The control API, fault injection, call counts, rate limit and trusted IPs.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn healthz_answers_ok() {
    let h = start().await;
    let r = h
        .http
        .get(h.url("/_emulator/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn calls_count_by_path_and_errcode() {
    let h = start().await;
    let token = h.agent_token().await;
    h.agent_token().await;
    h.get(&format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret=wrong"))
        .await;
    h.get(&format!(
        "/cgi-bin/user/get?access_token={token}&userid=zhangsan"
    ))
    .await;
    h.mp_token().await;
    let calls = h.calls().await;
    assert_eq!(
        calls,
        json!({"calls": {
            "/cgi-bin/gettoken": {"total": 3, "by_errcode": {"0": 2, "40001": 1}},
            "/cgi-bin/user/get": {"total": 1, "by_errcode": {"0": 1}},
            "/cgi-bin/token": {"total": 1, "by_errcode": {"0": 1}},
        }})
    );
    h.control("reset", json!({})).await;
    assert_eq!(
        h.calls().await,
        json!({"calls": {}}),
        "reset clears the counts"
    );
}

#[tokio::test]
async fn errcode_fault_counts_down_then_stops() {
    let h = start().await;
    h.control(
        "faults",
        json!({"api": "/cgi-bin/gettoken", "errcode": -1, "count": 2}),
    )
    .await;
    let path = format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}");
    assert_err(&h.get(&path).await, -1, "first faulted call");
    assert_err(&h.get(&path).await, -1, "second faulted call");
    assert_eq!(
        h.get(&path).await["errcode"],
        0,
        "fault stopped after count"
    );
    assert_eq!(
        h.calls().await["calls"]["/cgi-bin/gettoken"],
        json!({"total": 3, "by_errcode": {"-1": 2, "0": 1}})
    );
}

#[tokio::test]
async fn http_status_fault() {
    let h = start().await;
    h.control(
        "faults",
        json!({"api": "/cgi-bin/token", "http_status": 502}),
    )
    .await;
    let path = format!("/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}");
    let r = h.http.get(h.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(
        h.get(&path).await["access_token"].is_string(),
        "count defaults to 1"
    );
    assert_eq!(
        h.calls().await["calls"]["/cgi-bin/token"]["by_errcode"],
        json!({"http_502": 1, "0": 1})
    );
}

#[tokio::test]
async fn delay_fault_then_normal_answer() {
    let h = start().await;
    h.control(
        "faults",
        json!({"api": "/cgi-bin/gettoken", "delay_ms": 300, "count": 1}),
    )
    .await;
    let path = format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}");
    let started = std::time::Instant::now();
    assert_eq!(
        h.get(&path).await["errcode"],
        0,
        "a delayed call still answers normally"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[tokio::test]
async fn bad_fault_requests_are_refused() {
    let h = start().await;
    let cases = [
        json!({"api": "/cgi-bin/gettoken"}),
        json!({"api": "/cgi-bin/gettoken", "http_status": 500, "delay_ms": 5}),
        json!({"api": "/cgi-bin/gettoken", "errcode": 1, "http_status": 500}),
        json!({"api": "/cgi-bin/gettoken", "http_status": 99}),
        json!({"api": "gettoken", "errcode": 1}),
    ];
    for body in cases {
        let r = h
            .http
            .post(h.url("/_emulator/faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn gettoken_rate_limit_per_secret() {
    let h = start_with(scenario_with(&[("gettoken_per_minute", "3")])).await;
    let agent = format!("/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}");
    for _ in 0..3 {
        assert_eq!(h.get(&agent).await["errcode"], 0);
    }
    assert_err(
        &h.get(&agent).await,
        45009,
        "fourth gettoken within a minute",
    );
    assert!(
        !h.contact_token().await.is_empty(),
        "another secret has its own budget"
    );
    let mp = format!("/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}");
    for _ in 0..3 {
        assert!(h.get(&mp).await["access_token"].is_string());
    }
    assert_err(
        &h.get(&mp).await,
        45009,
        "WeChat cgi-bin/token has the same limit",
    );
    h.advance("60s").await;
    assert_eq!(h.get(&agent).await["errcode"], 0, "the window slides");
}

#[tokio::test]
async fn trusted_ip_list() {
    let h = start_with(scenario_with(&[("allowed_ips", "[\"10.0.0.0/8\"]")])).await;
    let v = h
        .get(&format!(
            "/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}"
        ))
        .await;
    assert_err(&v, 60020, "loopback is not trusted");
    assert!(v["errmsg"].as_str().unwrap().contains("from ip: 127.0.0.1"));
    let v = h
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}"
        ))
        .await;
    assert_err(&v, 40164, "the Official Account's whitelist");
    assert_eq!(
        h.calls().await["calls"]["/cgi-bin/gettoken"]["by_errcode"],
        json!({"60020": 1})
    );

    let h = start_with(scenario_with(&[("allowed_ips", "[\"127.0.0.1\"]")])).await;
    assert!(
        !h.agent_token().await.is_empty(),
        "a listed address is served"
    );
}

#[tokio::test]
async fn current_user_and_contact_drive_the_state() {
    let text = emulator::Scenario::default_toml().to_string()
        + "\n[[members]]\nuserid = \"lisi\"\nname = \"李四\"\n";
    let h = start_with(emulator::Scenario::from_toml(&text).unwrap()).await;
    let s = h.get("/_emulator/state").await;
    assert_eq!(s["current_user"]["userid"], "zhangsan");
    assert_eq!(s["wechat_user"]["openid"], "oEmuOpenId001");
    assert_eq!(s["current_contact"], json!(null));
    assert_eq!(s["entry"], "normal");

    h.control("current-user", json!({"userid": "lisi"})).await;
    h.control(
        "current-contact",
        json!({"external_userid": "wmEmuCustomer001"}),
    )
    .await;
    let s = h.get("/_emulator/state").await;
    assert_eq!(s["current_user"]["userid"], "lisi");
    assert_eq!(s["current_contact"]["external_userid"], "wmEmuCustomer001");
    assert_eq!(s["current_contact"]["name"], "王小明");
    assert_eq!(s["entry"], "single_chat_tools");

    let t = h.agent_token().await;
    let code = h.wecom_code("snsapi_base").await;
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={code}"
        ))
        .await;
    assert_eq!(
        v["userid"], "lisi",
        "the authorize page logs in the current member"
    );

    let r = h
        .http
        .post(h.url("/_emulator/current-user"))
        .json(&json!({"userid": "ghost"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    h.control(
        "current-contact",
        json!({"external_userid": "wmEmuCustomer001", "entry": "group_chat_tools"}),
    )
    .await;
    assert_eq!(h.get("/_emulator/state").await["entry"], "group_chat_tools");
    h.control("reset", json!({})).await;
    assert_eq!(
        h.get("/_emulator/state").await["current_user"]["userid"],
        "zhangsan"
    );
}

#[tokio::test]
async fn control_answers_cors_for_the_fake_jssdk() {
    let h = start().await;
    let r = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/_emulator/jssdk/verify"))
        .header("origin", "http://crm.test:8080")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://crm.test:8080"
    );
    assert!(r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("content-type"));
    let r = h
        .http
        .get(h.url("/_emulator/state"))
        .header("origin", "http://crm.test:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://crm.test:8080"
    );
}

#[tokio::test]
async fn jweixin_js_is_served() {
    let h = start().await;
    let r = h
        .http
        .get(h.url("/emulator/jweixin.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/javascript"));
    let js = r.text().await.unwrap();
    for needle in [
        "window.wx",
        "agentConfig",
        "getCurExternalContact",
        "/_emulator/jssdk/verify",
        "no permission",
    ] {
        assert!(js.contains(needle), "jweixin.js lacks {needle}");
    }
}
