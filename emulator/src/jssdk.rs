//! The fake JS-SDK: `/emulator/jweixin.js` and the signature check it asks the emulator for.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::state::{EmulatorState, TicketKind, World};

const JWEIXIN_JS: &str = include_str!("assets/jweixin.js");

/// `sha1("jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL")`, hex lowercase, raw values:
/// note `noncestr` here while the JS object says `nonceStr`.
pub fn jsapi_signature(ticket: &str, noncestr: &str, timestamp: &str, url: &str) -> String {
    let plain =
        format!("jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}");
    hex::encode(Sha1::digest(plain.as_bytes()))
}

pub fn routes() -> Router<EmulatorState> {
    Router::new().route("/_emulator/jssdk/verify", post(verify_handler))
}

pub fn script_routes() -> Router<EmulatorState> {
    Router::new().route("/emulator/jweixin.js", get(script))
}

async fn script() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        )],
        JWEIXIN_JS,
    )
}

/// What `wx.config` / `wx.agentConfig` send: the page's fields plus `location.href`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// "config" or "agentConfig".
    pub kind: String,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub corpid: Option<String>,
    #[serde(default)]
    pub agentid: Option<Value>,
    #[serde(default)]
    pub timestamp: Option<Value>,
    #[serde(default)]
    pub nonce_str: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    pub url: String,
}

/// Checks a signature as WeCom does; the error is the `errMsg` the page's callback receives.
pub fn verify(world: &World, req: &VerifyRequest) -> Result<(), String> {
    let kind = req.kind.as_str();
    let fail = |why: &str| Err(format!("{kind}:{why}"));
    // (corp, ticket): a corp id signs with that corp's tickets ("" for the Official Account).
    let (corp, ticket_kind) = match kind {
        "config" => {
            let app_id = req.app_id.as_deref().unwrap_or_default();
            if world.corp(app_id).is_some() {
                (app_id.to_string(), TicketKind::Corp)
            } else if world
                .scenario
                .wechat_mp
                .as_ref()
                .is_some_and(|mp| mp.app_id == app_id)
            {
                (String::new(), TicketKind::Wechat)
            } else {
                return fail("invalid appId");
            }
        }
        "agentConfig" => {
            let corp = req.corpid.clone().unwrap_or_default();
            if world.corp(&corp).is_none() {
                return fail("invalid corpid");
            }
            let agent = req
                .agentid
                .as_ref()
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            match agent.filter(|a| world.agent_in(&corp, *a)) {
                Some(a) => (corp, TicketKind::Agent(a)),
                None => return fail("invalid agentid"),
            }
        }
        _ => return Err(format!("{kind}:fail unknown kind")),
    };
    let timestamp = match &req.timestamp {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return fail("invalid signature"),
    };
    // The client signs location.href up to the fragment; so does the check.
    let url = req.url.split('#').next().unwrap_or_default();
    let Some(ticket) = world.valid_ticket_in(&corp, ticket_kind) else {
        return fail("invalid signature");
    };
    let expected = jsapi_signature(
        ticket,
        req.nonce_str.as_deref().unwrap_or_default(),
        &timestamp,
        url,
    );
    if req.signature.as_deref() == Some(expected.as_str()) {
        Ok(())
    } else {
        fail("invalid signature")
    }
}

async fn verify_handler(
    State(state): State<EmulatorState>,
    Json(req): Json<VerifyRequest>,
) -> Json<Value> {
    match verify(&state.world(), &req) {
        Ok(()) => Json(json!({"errMsg": format!("{}:ok", req.kind)})),
        Err(msg) => Json(json!({"errMsg": msg})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKET: &str =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";

    #[test]
    fn official_vector() {
        let sig = jsapi_signature(
            TICKET,
            "Wm3WZYTPz0wzccnW",
            "1414587457",
            "http://mp.weixin.qq.com?params=value",
        );
        assert_eq!(sig, "0f9de62fce790f9a083d5c99e95740ceb90c27ed");
    }

    fn request(kind: &str, url: &str, signature: &str) -> VerifyRequest {
        VerifyRequest {
            kind: kind.into(),
            app_id: Some("wwemu0000000000001".into()),
            corpid: Some("wwemu0000000000001".into()),
            agentid: Some(json!(1000002)),
            timestamp: Some(json!(1414587457)),
            nonce_str: Some("Wm3WZYTPz0wzccnW".into()),
            signature: Some(signature.into()),
            url: url.into(),
        }
    }

    #[test]
    fn verify_table() {
        let state = EmulatorState::new(crate::Scenario::default());
        let page = "http://mp.weixin.qq.com?params=value";
        let good = "0f9de62fce790f9a083d5c99e95740ceb90c27ed";
        let with_fragment = jsapi_signature(
            TICKET,
            "Wm3WZYTPz0wzccnW",
            "1414587457",
            "http://mp.weixin.qq.com?params=value#/x",
        );
        {
            let mut w = state.world();
            w.set_ticket(TicketKind::Corp, TICKET.into());
        }
        let cases = [
            ("official vector", request("config", page, good), Ok(())),
            (
                "fragment dropped by the page",
                request("config", &format!("{page}#/route"), good),
                Ok(()),
            ),
            (
                "wrong url",
                request("config", "http://mp.weixin.qq.com?params=other", good),
                Err("config:invalid signature"),
            ),
            (
                "fragment signed as-is",
                request("config", &format!("{page}#/x"), &with_fragment),
                Err("config:invalid signature"),
            ),
            (
                "corp ticket on agentConfig",
                request("agentConfig", page, good),
                Err("agentConfig:invalid signature"),
            ),
        ];
        for (name, req, want) in cases {
            assert_eq!(
                verify(&state.world(), &req),
                want.map_err(String::from),
                "{name}"
            );
        }
        state.world().expire_tokens();
        assert_eq!(
            verify(&state.world(), &request("config", page, good)),
            Err("config:invalid signature".into()),
            "stale ticket"
        );
    }
}
