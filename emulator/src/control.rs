//! `/_emulator/*`: the control API tests and the demo use to steer the emulated world.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{CodePurpose, EmulatorState, FaultKind, Subject, TicketKind, World};

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

pub(crate) struct ControlError(pub StatusCode, pub String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::BAD_REQUEST, msg.into())
}

pub(crate) fn not_found(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::NOT_FOUND, msg.into())
}

pub(crate) fn conflict(msg: impl Into<String>) -> ControlError {
    ControlError(StatusCode::CONFLICT, msg.into())
}

pub(crate) type Reply = Result<Json<Value>, ControlError>;

/// The corp a control call names, the home corp when it names none.
pub(crate) fn corp_param(world: &World, corp: Option<String>) -> Result<String, ControlError> {
    match corp {
        None => Ok(world.home().corp_id.clone()),
        Some(c) if world.corp(&c).is_some() => Ok(c),
        Some(c) => Err(not_found(format!("no corp {c}"))),
    }
}

fn done() -> Reply {
    Ok(Json(json!({"ok": true})))
}

async fn reset(State(state): State<EmulatorState>) -> Reply {
    let mut world = state.world();
    world.reset();
    state.hub.reset(&world.scenario);
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
    /// The member's corp (default: the home corp).
    corp_id: Option<String>,
    openid: Option<String>,
}

async fn current_user(State(state): State<EmulatorState>, Json(req): Json<CurrentUser>) -> Reply {
    let mut world = state.world();
    match (req.userid, req.openid) {
        (Some(userid), None) => {
            let corp = corp_param(&world, req.corp_id)?;
            world
                .corp(&corp)
                .and_then(|c| c.member(&userid))
                .ok_or_else(|| not_found(format!("no member {userid} in {corp}")))?;
            world.current_user = userid;
            world.current_corp = corp;
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
    /// The call is done at once and answered this late (instead of `delay_ms`, which waits
    /// before doing it).
    late_ms: Option<u64>,
    #[serde(default = "one")]
    count: u32,
}

fn one() -> u32 {
    1
}

async fn faults(State(state): State<EmulatorState>, Json(req): Json<FaultRequest>) -> Reply {
    if let Some(ms) = req.late_ms {
        if req.errcode.is_some() || req.http_status.is_some() || req.delay_ms.is_some() {
            return Err(bad("late_ms goes alone"));
        }
        if !req.api.starts_with('/') {
            return Err(bad("api is a path such as /cgi-bin/gettoken"));
        }
        state
            .world()
            .set_fault(req.api, FaultKind::LateMs(ms), req.count);
        return done();
    }
    let kind = match (req.errcode, req.http_status, req.delay_ms) {
        (Some(code), None, None) => FaultKind::Errcode(code),
        (Some(code), None, Some(ms)) => FaultKind::SlowErrcode(code, ms),
        (None, Some(status), None) if (100..600).contains(&status) => FaultKind::HttpStatus(status),
        (None, None, Some(ms)) => FaultKind::DelayMs(ms),
        _ => {
            return Err(bad(
                "give one of errcode, http_status (100-599), delay_ms (or errcode with delay_ms), late_ms",
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
    /// Default: the home corp.
    corp_id: Option<String>,
}

/// Pins the current ticket to a known value, e.g. the official signature vector's.
async fn tickets(State(state): State<EmulatorState>, Json(req): Json<SetTicket>) -> Reply {
    let mut world = state.world();
    let corp = corp_param(&world, req.corp_id)?;
    let kind = match (req.kind.as_str(), req.agentid) {
        ("corp", None) => TicketKind::Corp,
        ("wechat", None) => TicketKind::Wechat,
        ("agent", Some(id)) if world.agent_in(&corp, id) => TicketKind::Agent(id),
        _ => return Err(bad("kind corp | wechat, or agent with a known agentid")),
    };
    world.set_ticket_in(&corp, kind, req.ticket);
    done()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueCode {
    userid: Option<String>,
    corp_id: Option<String>,
    openid: Option<String>,
    /// A code of the corp's app for someone who is not its member (`auth/getuserinfo` answers
    /// the openid, and `visitor_external_userid` when given).
    visitor_openid: Option<String>,
    visitor_external_userid: Option<String>,
    agentid: Option<u64>,
    scope: Option<String>,
}

/// An OAuth code as the authorize page would give one.
async fn codes(State(state): State<EmulatorState>, Json(req): Json<IssueCode>) -> Reply {
    let mut world = state.world();
    let corp = corp_param(&world, req.corp_id)?;
    let (corp, subject) = match (req.userid, req.openid, req.visitor_openid) {
        (Some(u), None, None) if world.corp(&corp).is_some_and(|c| c.member(&u).is_some()) => {
            (corp, Subject::Member(u))
        }
        (None, Some(o), None) if world.scenario.wechat_user(&o).is_some() => {
            (String::new(), Subject::WechatUser(o))
        }
        (None, None, Some(o)) if !o.is_empty() => (
            corp,
            Subject::Visitor {
                openid: o,
                external_userid: req.visitor_external_userid,
            },
        ),
        _ => {
            return Err(bad(
                "give exactly one known userid, openid, or a visitor_openid",
            ))
        }
    };
    let scope = req.scope.unwrap_or_else(|| "snsapi_base".to_string());
    let code = world.issue_code(&corp, subject, &scope, req.agentid, CodePurpose::OAuth);
    Ok(Json(json!({"code": code})))
}

async fn calls(State(state): State<EmulatorState>) -> Json<Value> {
    Json(json!({"calls": state.world().calls()}))
}

async fn state_view(State(state): State<EmulatorState>) -> Json<Value> {
    let world = state.world();
    let member = world
        .corp(&world.current_corp)
        .and_then(|c| c.member(&world.current_user));
    let wechat = world
        .current_wechat_user
        .as_deref()
        .and_then(|o| world.scenario.wechat_user(o));
    let contact = world.current_contact.as_deref().map(|id| {
        let known = world.corp(&world.current_corp).and_then(|c| c.external_contact(id));
        json!({"external_userid": id, "name": known.map(|c| c.name.clone()), "unionid": known.and_then(|c| c.unionid.clone())})
    });
    Json(json!({
        "corp_id": world.current_corp,
        "agents": world.corp(&world.current_corp).map(|c| c.agents.iter().map(|a| a.agent_id).collect::<Vec<_>>()),
        "current_user": member.map(|m| json!({"userid": m.userid, "name": m.name})),
        "wechat_user": wechat.map(|u| json!({"openid": u.openid, "nickname": u.nickname, "unionid": u.unionid})),
        "current_contact": contact,
        "entry": world.entry,
        "now_ms": world.now(),
    }))
}
