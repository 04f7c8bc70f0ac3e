//! The JS-SDK signature check behind `wx.config` / `wx.agentConfig`, through the endpoint the
//! fake jweixin.js calls.

mod common;

use common::*;
use emulator::jsapi_signature;
use serde_json::{json, Value};

const TICKET: &str =
    "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
const NONCE: &str = "Wm3WZYTPz0wzccnW";
const TS: &str = "1414587457";
const PAGE: &str = "http://mp.weixin.qq.com?params=value";
const OFFICIAL: &str = "0f9de62fce790f9a083d5c99e95740ceb90c27ed";

fn config(url: &str, signature: &str) -> Value {
    json!({"kind": "config", "appId": CORP, "timestamp": TS, "nonceStr": NONCE, "signature": signature, "url": url})
}

fn agent_config(url: &str, signature: &str) -> Value {
    json!({"kind": "agentConfig", "corpid": CORP, "agentid": AGENT.to_string(), "timestamp": 1414587457,
           "nonceStr": NONCE, "signature": signature, "url": url})
}

async fn verify(h: &Harness, body: Value) -> String {
    h.post("/_emulator/jssdk/verify", body).await["errMsg"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn signature_table() {
    let h = start().await;
    h.control("tickets", json!({"kind": "corp", "ticket": TICKET}))
        .await;
    let agent_ticket = "emu-agent-ticket";
    h.control(
        "tickets",
        json!({"kind": "agent", "agentid": AGENT, "ticket": agent_ticket}),
    )
    .await;
    let with_fragment = jsapi_signature(TICKET, NONCE, TS, &format!("{PAGE}#/customer"));
    let agent_sig = jsapi_signature(agent_ticket, NONCE, TS, PAGE);
    let cases = [
        ("official vector", config(PAGE, OFFICIAL), "config:ok"),
        (
            "page sends its fragment, signer dropped it",
            config(&format!("{PAGE}#/customer"), OFFICIAL),
            "config:ok",
        ),
        (
            "wrong url",
            config("http://mp.weixin.qq.com?params=other", OFFICIAL),
            "config:invalid signature",
        ),
        (
            "https instead of http",
            config("https://mp.weixin.qq.com?params=value", OFFICIAL),
            "config:invalid signature",
        ),
        (
            "fragment signed as-is",
            config(PAGE, &with_fragment),
            "config:invalid signature",
        ),
        (
            "upper-case hex",
            config(PAGE, &OFFICIAL.to_uppercase()),
            "config:invalid signature",
        ),
        (
            "agent ticket on config",
            config(PAGE, &agent_sig),
            "config:invalid signature",
        ),
        (
            "agent ticket on agentConfig",
            agent_config(PAGE, &agent_sig),
            "agentConfig:ok",
        ),
        (
            "corp ticket on agentConfig",
            agent_config(PAGE, OFFICIAL),
            "agentConfig:invalid signature",
        ),
    ];
    for (name, body, want) in cases {
        assert_eq!(verify(&h, body).await, want, "{name}");
    }
    let mut foreign = agent_config(PAGE, &agent_sig);
    foreign["agentid"] = json!(42);
    assert_eq!(verify(&h, foreign).await, "agentConfig:invalid agentid");
    let mut foreign = config(PAGE, OFFICIAL);
    foreign["appId"] = json!("wwother");
    assert_eq!(verify(&h, foreign).await, "config:invalid appId");
}

#[tokio::test]
async fn a_stale_ticket_no_longer_verifies() {
    let h = start().await;
    h.control("tickets", json!({"kind": "corp", "ticket": TICKET}))
        .await;
    assert_eq!(verify(&h, config(PAGE, OFFICIAL)).await, "config:ok");
    h.advance("7200s").await;
    assert_eq!(
        verify(&h, config(PAGE, OFFICIAL)).await,
        "config:invalid signature",
        "expired ticket"
    );
    let t = h.agent_token().await;
    let fresh = h
        .get(&format!("/cgi-bin/get_jsapi_ticket?access_token={t}"))
        .await["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fresh, TICKET);
    assert_eq!(
        verify(&h, config(PAGE, OFFICIAL)).await,
        "config:invalid signature",
        "signed with the old ticket"
    );
    let sig = jsapi_signature(&fresh, NONCE, TS, PAGE);
    assert_eq!(
        verify(&h, config(PAGE, &sig)).await,
        "config:ok",
        "signed with the new ticket"
    );
}

#[tokio::test]
async fn tickets_from_the_api_verify() {
    let h = start().await;
    let t = h.agent_token().await;
    let agent = h
        .get(&format!(
            "/cgi-bin/ticket/get?access_token={t}&type=agent_config"
        ))
        .await["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let url = "http://crm.test:8080/app/?x=1&y=2";
    let sig = jsapi_signature(&agent, "abc", "1700000000", url);
    assert_eq!(verify(&h, json!({"kind": "agentConfig", "corpid": CORP, "agentid": AGENT, "timestamp": "1700000000",
        "nonceStr": "abc", "signature": sig, "url": url})).await, "agentConfig:ok");
    h.control("expire-tokens", json!({})).await;
    assert_eq!(verify(&h, json!({"kind": "agentConfig", "corpid": CORP, "agentid": AGENT, "timestamp": "1700000000",
        "nonceStr": "abc", "signature": sig, "url": url})).await, "agentConfig:invalid signature", "after expire-tokens");
}

#[tokio::test]
async fn wechat_config_uses_the_official_account_ticket() {
    let h = start().await;
    let t = h.mp_token().await;
    let ticket = h
        .get(&format!(
            "/cgi-bin/ticket/getticket?access_token={t}&type=jsapi"
        ))
        .await["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = jsapi_signature(&ticket, NONCE, TS, PAGE);
    let body = json!({"kind": "config", "appId": MP, "timestamp": TS, "nonceStr": NONCE, "signature": sig, "url": PAGE});
    assert_eq!(verify(&h, body).await, "config:ok");
}
