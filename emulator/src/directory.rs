//! The corp's directory as an app reads it: `user/get`, `department/simplelist`, `tag/get`
//! (the facts an access rule is made of, SPEC section 17). Answers come from the token's corp.

use std::collections::HashMap;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::api::{Answer, Ctx};
use crate::state::EmulatorState;
use crate::tokens::Scope;
use crate::wecom::avatar;

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/cgi-bin/user/get", get(user_get))
        .route("/cgi-bin/department/simplelist", get(department_simplelist))
        .route("/cgi-bin/tag/get", get(tag_get))
}

fn p<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str)
}

async fn user_get(ctx: Ctx, Query(q): Params) -> Answer {
    let world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AnyWecom)
        .and_then(|authed| {
            let corp = world.corp_of(&authed.corp)?;
            let userid = p(&q, "userid").filter(|u| !u.is_empty()).ok_or(41009)?;
            let m = corp.member(userid).ok_or(60111)?;
            let zeros = vec![0; m.department.len()];
            Ok(Answer::wecom_ok(json!({
                "userid": m.userid, "name": m.name, "department": m.department, "order": zeros,
                "is_leader_in_dept": zeros, "main_department": m.department.first(),
                "position": m.position, "mobile": m.mobile, "gender": m.gender, "email": m.email,
                "avatar": avatar(&m.userid), "status": 1,
            })))
        });
    ctx.answer(result)
}

/// `id` names a department: it and everything below it; without `id`, the whole tree.
async fn department_simplelist(ctx: Ctx, Query(q): Params) -> Answer {
    let world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AnyWecom)
        .and_then(|authed| {
            let corp = world.corp_of(&authed.corp)?;
            let root = match p(&q, "id").filter(|s| !s.is_empty()) {
                None => corp
                    .departments
                    .iter()
                    .find(|d| d.parentid == 0)
                    .map(|d| d.id)
                    .ok_or(60123)?,
                Some(raw) => raw.parse::<u64>().map_err(|_| 40058)?,
            };
            if corp.department(root).is_none() {
                return Err(60123);
            }
            let list: Vec<_> = corp
                .subtree(root)
                .into_iter()
                .map(|d| json!({"id": d.id, "parentid": d.parentid, "order": d.order}))
                .collect();
            Ok(Answer::wecom_ok(json!({ "department_id": list })))
        });
    ctx.answer(result)
}

/// The members tagged directly (`userlist`) and the departments tagged whole (`partylist`).
async fn tag_get(ctx: Ctx, Query(q): Params) -> Answer {
    let world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AnyWecom)
        .and_then(|authed| {
            let corp = world.corp_of(&authed.corp)?;
            let tagid = p(&q, "tagid").and_then(|t| t.parse::<u64>().ok());
            let tag = tagid.and_then(|id| corp.tag(id)).ok_or(40068)?;
            let users: Vec<_> = tag
                .users
                .iter()
                .filter_map(|u| corp.member(u))
                .map(|m| json!({"userid": m.userid, "name": m.name}))
                .collect();
            Ok(Answer::wecom_ok(json!({
                "tagname": tag.tagname, "userlist": users, "partylist": tag.departments,
            })))
        });
    ctx.answer(result)
}
