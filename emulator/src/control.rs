//! `/_emulator/*`: the control API tests and the demo use to steer the emulated world.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{EmulatorState, FaultKind, Subject, TicketKind};

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/_emulator/healthz", get(|| async { "ok" }))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/expire-tokens", post(expire_tokens))
        .route("/_emulator/advance", post(advance))
        .route("/_emulator/current-user", post(current_user))
        .route("/_emulator/current-contact", post(current_contact))
        .route("/_emulator/faults", post(faults))
        .route("/_emulator/tickets", post(tickets))
        .route("/_emulator/codes", post(codes))
        .route("/_emulator/calls", get(calls))
        .route("/_emulator/state", get(state_view))
}

struct ControlError(StatusCode, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, msg.into())
}

fn not_found(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::NOT_FOUND, msg.into())
}

type Reply = Result<Json<Value>, ControlError>;

fn done() -> Reply {
    Ok(Json(json!({"ok": true})))
}

async fn reset(State(state): State<EmulatorState>) -> Reply {
    state.world().reset();
    done()
}

async fn expire_tokens(State(state): State<EmulatorState>) -> Reply {
    state.world().expire_tokens();
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    /// A humantime duration, e.g. "301s".
    by: String,
}

/// Moves the emulated clock: expiry is tested without sleeping.
async fn advance(State(state): State<EmulatorState>, Json(req): Json<Advance>) -> Reply {
    let by = humantime::parse_duration(&req.by).map_err(|e| bad(format!("by: {e}")))?;
    let mut world = state.world();
    world.advance(by);
    Ok(Json(json!({"ok": true, "now_ms": world.now()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentUser {
    userid: Option<String>,
    openid: Option<String>,
}

async fn current_user(State(state): State<EmulatorState>, Json(req): Json<CurrentUser>) -> Reply {
    let mut world = state.world();
    match (req.userid, req.openid) {
        (Some(userid), None) => {
            world
                .scenario
                .member(&userid)
                .ok_or_else(|| not_found(format!("no member {userid}")))?;
            world.current_user = userid;
        }
        (None, Some(openid)) => {
            world
                .scenario
                .wechat_user(&openid)
                .ok_or_else(|| not_found(format!("no WeChat user {openid}")))?;
            world.current_wechat_user = Some(openid);
        }
        _ => return Err(bad("give exactly one of userid, openid")),
    }
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentContact {
    /// Any id, even one the scenario lacks, so a gateway's refusal can be tested; null clears.
    external_userid: Option<String>,
    /// The sidebar's entry; a chat with a contact defaults to `single_chat_tools`.
    entry: Option<String>,
}

async fn current_contact(
    State(state): State<EmulatorState>,
    Json(req): Json<CurrentContact>,
) -> Reply {
    let mut world = state.world();
    world.entry = match (&req.entry, &req.external_userid) {
        (Some(entry), _) => entry.clone(),
        (None, Some(_)) => "single_chat_tools".to_string(),
        (None, None) => "normal".to_string(),
    };
    world.current_contact = req.external_userid;
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    api: String,
    errcode: Option<i64>,
    http_status: Option<u16>,
    delay_ms: Option<u64>,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

async fn faults(State(state): State<EmulatorState>, Json(req): Json<FaultRequest>) -> Reply {
    let kind = match (req.errcode, req.http_status, req.delay_ms) {
        (Some(code), None, None) => FaultKind::Errcode(code),
        (None, Some(status), None) if (100..600).contains(&status) => FaultKind::HttpStatus(status),
        (None, None, Some(ms)) => FaultKind::DelayMs(ms),
        _ => {
            return Err(bad(
                "give exactly one of errcode, http_status (100-599), delay_ms",
            ))
        }
    };
    if !req.api.starts_with('/') {
        return Err(bad("api is a path such as /cgi-bin/gettoken"));
    }
    state.world().set_fault(req.api, kind, req.count);
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetTicket {
    /// "corp", "agent" or "wechat".
    kind: String,
    agentid: Option<u64>,
    ticket: String,
}

/// Pins the current ticket to a known value, e.g. the official signature vector's.
async fn tickets(State(state): State<EmulatorState>, Json(req): Json<SetTicket>) -> Reply {
    let mut world = state.world();
    let kind = match (req.kind.as_str(), req.agentid) {
        ("corp", None) => TicketKind::Corp,
        ("wechat", None) => TicketKind::Wechat,
        ("agent", Some(id)) if world.scenario.agent(id).is_some() => TicketKind::Agent(id),
        _ => return Err(bad("kind corp | wechat, or agent with a known agentid")),
    };
    world.set_ticket(kind, req.ticket);
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueCode {
    userid: Option<String>,
    openid: Option<String>,
    agentid: Option<u64>,
    scope: Option<String>,
}

/// A code as the authorize page or `wx.login` would give one (mini programs have no page).
async fn codes(State(state): State<EmulatorState>, Json(req): Json<IssueCode>) -> Reply {
    let mut world = state.world();
    let subject = match (req.userid, req.openid) {
        (Some(u), None) if world.scenario.member(&u).is_some() => Subject::Member(u),
        (None, Some(o)) if world.scenario.wechat_user(&o).is_some() => Subject::WechatUser(o),
        _ => return Err(bad("give exactly one known userid or openid")),
    };
    let scope = req.scope.unwrap_or_else(|| "snsapi_base".to_string());
    let code = world.issue_code(subject, &scope, req.agentid);
    Ok(Json(json!({"code": code})))
}

async fn calls(State(state): State<EmulatorState>) -> Json<Value> {
    Json(json!({"calls": state.world().calls()}))
}

async fn state_view(State(state): State<EmulatorState>) -> Json<Value> {
    let world = state.world();
    let member = world.scenario.member(&world.current_user);
    let wechat = world
        .current_wechat_user
        .as_deref()
        .and_then(|o| world.scenario.wechat_user(o));
    let contact = world.current_contact.as_deref().map(|id| {
        let known = world.scenario.external_contact(id);
        json!({"external_userid": id, "name": known.map(|c| c.name.clone()), "unionid": known.and_then(|c| c.unionid.clone())})
    });
    Json(json!({
        "corp_id": world.scenario.corp.corp_id,
        "agents": world.scenario.agents.iter().map(|a| a.agent_id).collect::<Vec<_>>(),
        "current_user": member.map(|m| json!({"userid": m.userid, "name": m.name})),
        "wechat_user": wechat.map(|u| json!({"openid": u.openid, "nickname": u.nickname, "unionid": u.unionid})),
        "current_contact": contact,
        "entry": world.entry,
        "now_ms": world.now(),
    }))
}
