//! The demo CRM page.

use emulator::crm::start_crm;
use serde_json::Value;

#[tokio::test]
async fn echoes_the_request_as_json() {
    let crm = start_crm("127.0.0.1:0".parse().unwrap(), Some("k".into()))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let v: Value = http
        .get(format!("{}/deals/7?tab=notes", crm.base_url()))
        .header("accept", "application/json")
        .header("X-WeCom-UserId", "zhangsan")
        .header("X-Gateway-Assertion", "not.a.jwt")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/deals/7");
    assert_eq!(v["query"], "tab=notes");
    assert_eq!(v["headers"]["x-wecom-userid"], "zhangsan");
    assert_eq!(v["assertion"]["status"], "invalid");
    crm.shutdown().await;
}

#[tokio::test]
async fn page_shows_identity_headers_and_loads_sdk_js() {
    let crm = start_crm("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let html = reqwest::Client::new()
        .post(format!("{}/any/where", crm.base_url()))
        .header("X-WeChat-OpenId", "oEmuOpenId001")
        .header("X-Request-Id", "rid-1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "x-wechat-openid",
        "oEmuOpenId001",
        "rid-1",
        "/any/where",
        "/_gateway/sdk.js",
        "location.hash",
        "absent",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    crm.shutdown().await;
}
