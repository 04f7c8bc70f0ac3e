//! Control calls of the provider side and of the callbacks: receivers registered by hand,
//! messages sent by hand, the log; suite-ticket pushes, installs, `change_auth`, `cancel_auth`,
//! `reset_permanent_code` — each sent to the suite's instruction URL as WeCom sends it.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use wecom_api::XmlMessage;

use crate::callbacks::{check_receiver, direct_target, send, send_all, suite_targets};
use crate::control::{bad, conflict, corp_param, not_found, ControlError, Reply};
use crate::events;
use crate::scenario::{CallbackReceiver, ReceiverKind};
use crate::state::EmulatorState;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route(
            "/_emulator/callbacks",
            get(callback_log).post(callback_send),
        )
        .route("/_emulator/suites/push-ticket", post(push_ticket))
        .route("/_emulator/suites/install", post(install))
        .route("/_emulator/suites/change-auth", post(change_auth))
        .route("/_emulator/suites/cancel-auth", post(cancel_auth))
        .route(
            "/_emulator/suites/reset-permanent-code",
            post(reset_permanent_code),
        )
}

/// `?settled=true` first waits (up to a minute) until nothing is in flight, so a test reads
/// the outcome instead of sleeping; `?app=` keeps one receiver's lines.
async fn callback_log(
    State(state): State<EmulatorState>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let settled = match q.get("settled").map(String::as_str) {
        Some("true") | Some("1") => state.hub.settled(Duration::from_secs(60)).await,
        _ => state.hub.settled(Duration::ZERO).await,
    };
    let log: Vec<_> = state
        .hub
        .log()
        .into_iter()
        .filter(|r| q.get("app").is_none_or(|a| *a == r.app))
        .collect();
    Ok(Json(json!({"settled": settled, "callbacks": log})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendReq {
    app: String,
    url: Option<String>,
    token: Option<String>,
    encoding_aes_key: Option<String>,
    #[serde(default)]
    kind: ReceiverKind,
    corp_id: Option<String>,
    agent_id: Option<u64>,
    suite_id: Option<String>,
    xml: Option<String>,
}

/// With `url` (and `token`, `encoding_aes_key`): registers the receiver `app` as the console
/// would. With `xml`: sends that message to `app`, verifying its URL first if it never was.
async fn callback_send(State(state): State<EmulatorState>, Json(req): Json<SendReq>) -> Reply {
    if let Some(xml) = &req.xml {
        XmlMessage::parse(xml).map_err(|e| bad(format!("xml: {e}")))?;
    }
    let receiver = match req.url {
        Some(url) => {
            let (Some(token), Some(encoding_aes_key)) = (req.token, req.encoding_aes_key) else {
                return Err(bad("a receiver needs url, token and encoding_aes_key"));
            };
            let spec = CallbackReceiver {
                app: req.app.clone(),
                url,
                token,
                encoding_aes_key,
                kind: req.kind,
                corp_id: req.corp_id,
                agent_id: req.agent_id,
                suite_id: req.suite_id,
            };
            check_receiver(&state.world().scenario, &spec).map_err(bad)?;
            state.hub.register(spec)
        }
        None => state.hub.receiver(&req.app).ok_or_else(|| {
            not_found(format!(
                "no receiver {}; give url, token, encoding_aes_key",
                req.app
            ))
        })?,
    };
    let Some(xml) = req.xml else {
        return Ok(Json(json!({"ok": true})));
    };
    let target = direct_target(&state.world(), receiver);
    let id = send(&state, target, xml);
    Ok(Json(json!({"ok": true, "callbacks": [id]})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteReq {
    suite_id: String,
    corp_id: Option<String>,
    /// `install`: the `state` the install link carried.
    state: Option<String>,
    /// The change is made, and its message returned (`"xml"`) rather than sent: WeCom's sends
    /// of it lost, for a test to deliver it late (`POST /_emulator/callbacks`).
    #[serde(default)]
    held: bool,
}

fn known_suite(state: &EmulatorState, suite: &str) -> Result<(), ControlError> {
    match state.world().scenario.suite(suite) {
        Some(_) => Ok(()),
        None => Err(not_found(format!("no suite {suite}"))),
    }
}

/// Pushes a fresh ticket to the suite's instruction URL(s), as every 10 minutes.
pub(crate) fn push_suite_ticket(state: &EmulatorState, suite: &str) -> (String, Vec<u64>) {
    let (ticket, xml) = {
        let mut world = state.world();
        let ticket = world.new_suite_ticket(suite);
        let t = world.now() / 1000;
        let xml = events::instruction(suite, "suite_ticket", t, &[("SuiteTicket", &ticket)]);
        (ticket, xml)
    };
    let ids = send_all(state, suite_targets(&state.hub, suite), &xml);
    (ticket, ids)
}

async fn push_ticket(State(state): State<EmulatorState>, Json(req): Json<SuiteReq>) -> Reply {
    known_suite(&state, &req.suite_id)?;
    let (ticket, ids) = push_suite_ticket(&state, &req.suite_id);
    Ok(Json(
        json!({"ok": true, "suite_ticket": ticket, "callbacks": ids}),
    ))
}

/// Sends `xml` to the suite's instruction URLs, or hands it back when `held`.
fn instruct(state: &EmulatorState, suite: &str, xml: String, held: bool) -> Value {
    if held {
        return json!({"ok": true, "xml": xml});
    }
    json!({"ok": true, "callbacks": send_all(state, suite_targets(&state.hub, suite), &xml)})
}

/// An admin installs the suite from the app market: `create_auth` with a fresh AuthCode.
async fn install(State(state): State<EmulatorState>, Json(req): Json<SuiteReq>) -> Reply {
    known_suite(&state, &req.suite_id)?;
    let held = req.held;
    let (code, xml) = {
        let mut world = state.world();
        let corp = corp_param(&world, req.corp_id)?;
        if world.install(&req.suite_id, &corp).is_some() {
            return Err(conflict(format!(
                "{corp} has installed {} already",
                req.suite_id
            )));
        }
        let st = req.state.unwrap_or_default();
        let code = world
            .issue_auth_code(&req.suite_id, &corp, &st)
            .map_err(not_found)?;
        let t = world.now() / 1000;
        let xml = events::instruction(
            &req.suite_id,
            "create_auth",
            t,
            &[("AuthCode", &code), ("State", &st)],
        );
        (code, xml)
    };
    let mut answer = instruct(&state, &req.suite_id, xml, held);
    answer["auth_code"] = code.into();
    Ok(Json(answer))
}

/// The install as it is, else 404; with the request's `held`.
fn installed(state: &EmulatorState, req: SuiteReq) -> Result<(String, String, bool), ControlError> {
    known_suite(state, &req.suite_id)?;
    let world = state.world();
    let corp = corp_param(&world, req.corp_id)?;
    if world.install(&req.suite_id, &corp).is_none() {
        return Err(not_found(format!(
            "{corp} has not installed {}",
            req.suite_id
        )));
    }
    Ok((req.suite_id, corp, req.held))
}

/// The admin changed what the app may see.
async fn change_auth(State(state): State<EmulatorState>, Json(req): Json<SuiteReq>) -> Reply {
    let (suite, corp, held) = installed(&state, req)?;
    let t = state.world().now() / 1000;
    let xml = events::instruction(&suite, "change_auth", t, &[("AuthCorpId", &corp)]);
    Ok(Json(instruct(&state, &suite, xml, held)))
}

/// The admin removed the app: its permanent code and tokens stop working at once.
async fn cancel_auth(State(state): State<EmulatorState>, Json(req): Json<SuiteReq>) -> Reply {
    let (suite, corp, held) = installed(&state, req)?;
    let xml = {
        let mut world = state.world();
        world.cancel_install(&suite, &corp);
        let t = world.now() / 1000;
        events::instruction(&suite, "cancel_auth", t, &[("AuthCorpId", &corp)])
    };
    Ok(Json(instruct(&state, &suite, xml, held)))
}

/// 代开发 only: a new AuthCode whose exchange replaces the permanent code.
async fn reset_permanent_code(
    State(state): State<EmulatorState>,
    Json(req): Json<SuiteReq>,
) -> Reply {
    let (suite, corp, held) = installed(&state, req)?;
    let (code, xml) = {
        let mut world = state.world();
        if !world.scenario.suite(&suite).is_some_and(|s| s.is_custom()) {
            return Err(bad("reset_permanent_code is for 代开发 suites (dk...)"));
        }
        let code = world
            .issue_auth_code(&suite, &corp, "")
            .map_err(not_found)?;
        let t = world.now() / 1000;
        (
            code.clone(),
            events::instruction(&suite, "reset_permanent_code", t, &[("AuthCode", &code)]),
        )
    };
    let mut answer = instruct(&state, &suite, xml, held);
    answer["auth_code"] = code.into();
    Ok(Json(answer))
}
