//! Control calls that change a corp as its admin (or a customer) would, and send WeCom's events
//! about it to the registered receivers: members deleted and moved, tags, customers added and
//! removed; and the codes a mini-program's `wx.qy.login` / `wx.login` return.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::callbacks::{corp_targets, send_all};
use crate::control::{bad, conflict, corp_param, not_found, Reply};
use crate::events;
use crate::scenario::ExternalContact;
use crate::state::{CodePurpose, EmulatorState, Subject, World};

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/_emulator/members/delete", post(member_delete))
        .route("/_emulator/members/move", post(member_move))
        .route("/_emulator/tags/add", post(tag_add))
        .route("/_emulator/tags/remove", post(tag_remove))
        .route("/_emulator/contacts/add", post(contact_add))
        .route("/_emulator/contacts/delete", post(contact_delete))
        .route("/_emulator/miniprogram/code", post(mini_code))
}

/// Sends the event of a change in `corp` to whoever should hear of it; the reply lists the
/// log ids of `GET /_emulator/callbacks`.
fn announce(state: &EmulatorState, world: &World, corp: &str, xml: String) -> Reply {
    let targets = corp_targets(world, &state.hub, corp);
    let ids = send_all(state, targets, &xml);
    Ok(Json(json!({"ok": true, "event": xml, "callbacks": ids})))
}

fn create_time(world: &World) -> u64 {
    world.now() / 1000
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberReq {
    userid: String,
    corp_id: Option<String>,
    /// `members/move`: the member's new departments.
    department: Option<Vec<u64>>,
}

/// The member leaves the corp: out of its tags and off its customers' `follow_user`.
async fn member_delete(State(state): State<EmulatorState>, Json(req): Json<MemberReq>) -> Reply {
    let mut world = state.world();
    let corp_id = corp_param(&world, req.corp_id)?;
    let c = world.corp_mut(&corp_id).expect("checked");
    if c.member(&req.userid).is_none() {
        return Err(not_found(format!("no member {} in {corp_id}", req.userid)));
    }
    if c.members.len() == 1 {
        return Err(conflict("a corp keeps at least one member"));
    }
    c.members.retain(|m| m.userid != req.userid);
    for t in &mut c.tags {
        t.users.retain(|u| *u != req.userid);
    }
    for x in &mut c.external_contacts {
        x.follow_user.retain(|u| *u != req.userid);
    }
    let xml = events::delete_user(&corp_id, create_time(&world), &req.userid);
    announce(&state, &world, &corp_id, xml)
}

async fn member_move(State(state): State<EmulatorState>, Json(req): Json<MemberReq>) -> Reply {
    let mut world = state.world();
    let corp_id = corp_param(&world, req.corp_id)?;
    let departments = req
        .department
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad("department: a non-empty list"))?;
    let c = world.corp_mut(&corp_id).expect("checked");
    if let Some(d) = departments.iter().find(|d| c.department(**d).is_none()) {
        return Err(not_found(format!("no department {d} in {corp_id}")));
    }
    let m = c
        .members
        .iter_mut()
        .find(|m| m.userid == req.userid)
        .ok_or_else(|| not_found(format!("no member {} in {corp_id}", req.userid)))?;
    m.department = departments.clone();
    let xml =
        events::update_user_departments(&corp_id, create_time(&world), &req.userid, &departments);
    announce(&state, &world, &corp_id, xml)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagReq {
    tagid: u64,
    corp_id: Option<String>,
    #[serde(default)]
    userids: Vec<String>,
    #[serde(default)]
    departments: Vec<u64>,
}

async fn tag_add(state: State<EmulatorState>, Json(req): Json<TagReq>) -> Reply {
    tag_change(state, req, true)
}

async fn tag_remove(state: State<EmulatorState>, Json(req): Json<TagReq>) -> Reply {
    tag_change(state, req, false)
}

/// Only what actually changed is in the event; a change of nothing sends none.
fn tag_change(State(state): State<EmulatorState>, req: TagReq, add: bool) -> Reply {
    let mut world = state.world();
    let corp_id = corp_param(&world, req.corp_id)?;
    let c = world.corp_mut(&corp_id).expect("checked");
    if let Some(u) = req.userids.iter().find(|u| c.member(u).is_none()) {
        return Err(not_found(format!("no member {u} in {corp_id}")));
    }
    if let Some(d) = req.departments.iter().find(|d| c.department(**d).is_none()) {
        return Err(not_found(format!("no department {d} in {corp_id}")));
    }
    let tag = c
        .tags
        .iter_mut()
        .find(|t| t.tagid == req.tagid)
        .ok_or_else(|| not_found(format!("no tag {} in {corp_id}", req.tagid)))?;
    let users: Vec<String> = req
        .userids
        .into_iter()
        .filter(|u| tag.users.contains(u) != add)
        .collect();
    let parties: Vec<u64> = req
        .departments
        .into_iter()
        .filter(|d| tag.departments.contains(d) != add)
        .collect();
    if add {
        tag.users.extend(users.iter().cloned());
        tag.departments.extend(parties.iter().copied());
    } else {
        tag.users.retain(|u| !users.contains(u));
        tag.departments.retain(|d| !parties.contains(d));
    }
    if users.is_empty() && parties.is_empty() {
        return Ok(Json(json!({"ok": true, "callbacks": []})));
    }
    let xml = events::update_tag(
        &corp_id,
        create_time(&world),
        req.tagid,
        add,
        &users,
        &parties,
    );
    announce(&state, &world, &corp_id, xml)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactReq {
    userid: String,
    external_userid: String,
    corp_id: Option<String>,
    /// `contacts/add` of a new customer: their profile.
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<u8>,
    unionid: Option<String>,
    /// `contacts/add`: the `state` of the contact-me QR code that was scanned.
    state: Option<String>,
    /// `contacts/delete`: "member" (the member removed the customer: `del_external_contact`)
    /// or "customer" (the customer removed the member: `del_follow_user`).
    by: Option<String>,
}

async fn contact_add(State(state): State<EmulatorState>, Json(req): Json<ContactReq>) -> Reply {
    let mut world = state.world();
    let corp_id = corp_param(&world, req.corp_id)?;
    let c = world.corp_mut(&corp_id).expect("checked");
    if c.member(&req.userid).is_none() {
        return Err(not_found(format!("no member {} in {corp_id}", req.userid)));
    }
    match c
        .external_contacts
        .iter_mut()
        .find(|x| x.external_userid == req.external_userid)
    {
        Some(x) if x.follow_user.contains(&req.userid) => {
            return Err(conflict(format!(
                "{} already has {}",
                req.userid, req.external_userid
            )))
        }
        Some(x) => x.follow_user.push(req.userid.clone()),
        None => {
            let kind = req.kind.unwrap_or(1);
            if kind != 1 && kind != 2 {
                return Err(bad("type is 1 (WeChat user) or 2 (WeCom user)"));
            }
            c.external_contacts.push(ExternalContact {
                external_userid: req.external_userid.clone(),
                name: req.name.unwrap_or_else(|| req.external_userid.clone()),
                kind,
                unionid: req.unionid,
                corp_name: String::new(),
                position: String::new(),
                gender: 0,
                follow_user: vec![req.userid.clone()],
            })
        }
    }
    let xml = events::external_contact(
        &corp_id,
        create_time(&world),
        "add_external_contact",
        &req.userid,
        &req.external_userid,
        req.state.as_deref(),
    );
    announce(&state, &world, &corp_id, xml)
}

async fn contact_delete(State(state): State<EmulatorState>, Json(req): Json<ContactReq>) -> Reply {
    let change_type = match req.by.as_deref() {
        Some("member") => "del_external_contact",
        Some("customer") => "del_follow_user",
        _ => return Err(bad("by: \"member\" or \"customer\"")),
    };
    let mut world = state.world();
    let corp_id = corp_param(&world, req.corp_id)?;
    let c = world.corp_mut(&corp_id).expect("checked");
    let x = c
        .external_contacts
        .iter_mut()
        .find(|x| x.external_userid == req.external_userid && x.follow_user.contains(&req.userid))
        .ok_or_else(|| {
            not_found(format!(
                "{} does not have {}",
                req.userid, req.external_userid
            ))
        })?;
    x.follow_user.retain(|u| *u != req.userid);
    let xml = events::external_contact(
        &corp_id,
        create_time(&world),
        change_type,
        &req.userid,
        &req.external_userid,
        None,
    );
    announce(&state, &world, &corp_id, xml)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MiniCode {
    /// `wx.qy.login` in a WeCom mini-program: the member, their corp, the app it belongs to.
    userid: Option<String>,
    corp_id: Option<String>,
    agentid: Option<u64>,
    /// `wx.login` in the WeChat mini-program: the user's mini-program openid.
    openid: Option<String>,
}

/// What the mini-program's login call returns: a code for `jscode2session`, nothing else.
async fn mini_code(State(state): State<EmulatorState>, Json(req): Json<MiniCode>) -> Reply {
    let mut world = state.world();
    let code = match (req.userid, req.openid) {
        (Some(userid), None) => {
            let corp = corp_param(&world, req.corp_id)?;
            if world
                .corp(&corp)
                .is_none_or(|c| c.member(&userid).is_none())
            {
                return Err(not_found(format!("no member {userid} in {corp}")));
            }
            if let Some(a) = req.agentid.filter(|a| !world.agent_in(&corp, *a)) {
                return Err(not_found(format!("no agent {a} in {corp}")));
            }
            world.issue_code(
                &corp,
                Subject::Member(userid),
                "snsapi_base",
                req.agentid,
                CodePurpose::MiniProgram,
            )
        }
        (None, Some(openid)) => {
            if world.scenario.wechat_mini.is_none() || world.scenario.mini_user(&openid).is_none() {
                return Err(not_found(format!(
                    "no mini-program user {openid} ([wechat_mini] and a mini_openid)"
                )));
            }
            world.issue_code(
                "",
                Subject::WechatUser(openid),
                "",
                None,
                CodePurpose::MiniProgram,
            )
        }
        _ => return Err(bad("give exactly one of userid, openid")),
    };
    Ok(Json(json!({"code": code})))
}
