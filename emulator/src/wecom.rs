//! qyapi.weixin.qq.com: the WeCom calls of WECOM_API.md at their real paths.

use std::collections::HashMap;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, Query};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::api::{Answer, Ctx};
use crate::state::{random_token, CodePurpose, EmulatorState, Subject, TicketKind};
use crate::tokens::Scope;

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/get_jsapi_ticket", get(corp_ticket))
        .route("/cgi-bin/ticket/get", get(agent_ticket))
        .route("/cgi-bin/auth/getuserinfo", get(getuserinfo))
        .route("/cgi-bin/user/getuserinfo", get(legacy_getuserinfo))
        .route("/cgi-bin/auth/getuserdetail", post(getuserdetail))
        .route("/cgi-bin/externalcontact/get", get(external_contact))
        .route("/cgi-bin/message/send", post(message_send))
        // WeCom takes files up to 20 MB (images and voice less; checked by type there): not
        // axum's 2 MiB default.
        .route(
            "/cgi-bin/media/upload",
            post(media_upload).layer(axum::extract::DefaultBodyLimit::max(MEDIA_MAX)),
        )
        .route("/cgi-bin/miniprogram/jscode2session", get(jscode2session))
}

/// The largest media WeCom takes (a `file`), with room for the multipart framing.
const MEDIA_MAX: usize = 20 * 1024 * 1024 + 64 * 1024;

fn p<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str)
}

async fn gettoken(ctx: Ctx, Query(q): Params) -> Answer {
    let issued = ctx
        .state
        .world()
        .wecom_gettoken(p(&q, "corpid"), p(&q, "corpsecret"));
    ctx.answer(
        issued.map(|t| {
            Answer::wecom_ok(json!({"access_token": t.value, "expires_in": t.expires_in}))
        }),
    )
}

async fn corp_ticket(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AgentOnly)
        .map(|authed| {
            let t = world.ticket(&authed.corp, TicketKind::Corp);
            Answer::wecom_ok(json!({"ticket": t.value, "expires_in": t.expires_in}))
        });
    ctx.answer(result)
}

async fn agent_ticket(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AgentOnly)
        .and_then(|authed| {
            if p(&q, "type") != Some("agent_config") {
                return Err(40058);
            }
            let agent = authed.agent().ok_or(48002)?;
            let t = world.ticket(&authed.corp, TicketKind::Agent(agent));
            Ok(Answer::wecom_ok(
                json!({"ticket": t.value, "expires_in": t.expires_in}),
            ))
        });
    ctx.answer(result)
}

/// The code is bound to the app that asked for it: another app's token gets 40029.
async fn getuserinfo(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = exchange_code(&mut world, &q).map(|(corp, person, scope)| match person {
        Person::Member(userid) => {
            let mut fields = json!({"userid": userid});
            // user_ticket only comes with the scope that asks the member's consent.
            if scope == "snsapi_privateinfo" {
                fields["user_ticket"] = json!(world.issue_user_ticket(&corp, &userid));
            }
            Answer::wecom_ok(fields)
        }
        // A non-member: an openid, and the external_userid when they are a customer.
        Person::Visitor {
            openid,
            external_userid,
        } => {
            let mut fields = json!({"openid": openid});
            if let Some(e) = external_userid {
                fields["external_userid"] = json!(e);
            }
            Answer::wecom_ok(fields)
        }
    });
    ctx.answer(result)
}

/// Who a code of `auth/getuserinfo` names.
enum Person {
    Member(String),
    Visitor {
        openid: String,
        external_userid: Option<String>,
    },
}

/// Both getuserinfo endpoints: the app's token, then its single-use code, for a member of the
/// token's corp or someone who is not one: (corp, person, scope).
fn exchange_code(
    world: &mut crate::state::World,
    q: &HashMap<String, String>,
) -> Result<(String, Person, String), i64> {
    let authed = world.wecom_token(p(q, "access_token"), Scope::AgentOnly)?;
    let exchanged = world.consume_wecom_code(
        p(q, "code"),
        Some(&authed.corp),
        authed.agent(),
        &CodePurpose::OAuth,
    )?;
    let person = match exchanged.subject {
        Subject::Member(userid) => Person::Member(userid),
        Subject::Visitor {
            openid,
            external_userid,
        } => Person::Visitor {
            openid,
            external_userid,
        },
        Subject::WechatUser(_) => return Err(40029),
    };
    Ok((authed.corp, person, exchanged.scope))
}

/// The old endpoint many SDKs still call: same codes, capitalised field names.
async fn legacy_getuserinfo(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = exchange_code(&mut world, &q).map(|(_, person, _)| match person {
        Person::Member(userid) => Answer::wecom_ok(json!({"UserId": userid, "DeviceId": ""})),
        Person::Visitor { openid, .. } => {
            Answer::wecom_ok(json!({"OpenId": openid, "DeviceId": ""}))
        }
    });
    ctx.answer(result)
}

async fn getuserdetail(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let world = ctx.state.world();
    let result = world.wecom_token(p(&q, "access_token"), Scope::AgentOnly).and_then(|authed| {
        let body: Value = serde_json::from_slice(&body).map_err(|_| 47001)?;
        let ticket = body.get("user_ticket").and_then(Value::as_str).ok_or(40058)?;
        let userid = world.user_ticket(&authed.corp, ticket).ok_or(40058)?;
        let m = world.corp_of(&authed.corp)?.member(userid).ok_or(60111)?;
        Ok(Answer::wecom_ok(json!({
            "userid": m.userid, "gender": m.gender, "avatar": avatar(&m.userid),
            "qr_code": format!("https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={}", m.userid),
            "mobile": m.mobile, "email": m.email, "biz_mail": "", "address": "",
        })))
    });
    ctx.answer(result)
}

/// `follow_user` comes in pages; `next_cursor` is empty on the last one.
async fn external_contact(ctx: Ctx, Query(q): Params) -> Answer {
    let world = ctx.state.world();
    let result = world.wecom_token(p(&q, "access_token"), Scope::ContactOnly).and_then(|authed| {
        let id = p(&q, "external_userid").unwrap_or_default();
        let c = world.corp_of(&authed.corp)?.external_contact(id).ok_or(40096)?;
        if c.follow_user.is_empty() {
            return Err(84061);
        }
        let start = match p(&q, "cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(cursor) => decode_cursor(cursor).filter(|&n| n < c.follow_user.len()).ok_or(40058)?,
        };
        let end = (start + world.scenario.settings.follow_user_page_size).min(c.follow_user.len());
        let follow: Vec<Value> = c.follow_user[start..end]
            .iter()
            .enumerate()
            .map(|(i, userid)| {
                json!({
                    "userid": userid, "remark": c.name, "description": "", "createtime": 1_700_000_000 + start + i,
                    "tags": [], "remark_corp_name": "", "remark_mobiles": [], "add_way": 1,
                    "oper_userid": userid, "state": "",
                })
            })
            .collect();
        let mut contact = json!({
            "external_userid": c.external_userid, "name": c.name, "avatar": avatar(&c.external_userid),
            "type": c.kind, "gender": c.gender,
        });
        // unionid only for WeChat users of a corp bound to an Open Platform account;
        // corp names only for WeCom users.
        if c.kind == 1 {
            if let Some(u) = &c.unionid {
                contact["unionid"] = json!(u);
            }
        } else {
            contact["position"] = json!(c.position);
            contact["corp_name"] = json!(c.corp_name);
            contact["corp_full_name"] = json!(c.corp_name);
        }
        let next_cursor = if end < c.follow_user.len() { encode_cursor(end) } else { String::new() };
        Ok(Answer::wecom_ok(json!({"external_contact": contact, "follow_user": follow, "next_cursor": next_cursor})))
    });
    ctx.answer(result)
}

fn encode_cursor(offset: usize) -> String {
    format!("EMU{offset:08X}")
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    usize::from_str_radix(cursor.strip_prefix("EMU")?, 16).ok()
}

/// Some unknown recipients: errcode 0 with them in `invaliduser`; none valid: 81013.
async fn message_send(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AgentOnly)
        .and_then(|authed| {
            let corp = world.corp_of(&authed.corp)?;
            let body: Value = serde_json::from_slice(&body).map_err(|_| 47001)?;
            let agentid = body
                .get("agentid")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
            let agentid = agentid.ok_or(40056)?;
            if Some(agentid) != authed.agent() {
                return Err(301002);
            }
            let touser = body
                .get("touser")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let others = ["toparty", "totag"].iter().any(|k| {
                body.get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            });
            let (valid, invalid): (Vec<&str>, Vec<&str>) = touser
                .split('|')
                .filter(|u| !u.is_empty())
                .partition(|u| *u == "@all" || corp.member(u).is_some());
            if valid.is_empty() && !others {
                return Err(81013);
            }
            Ok(Answer::wecom_ok(
                json!({"invaliduser": invalid.join("|"), "msgid": random_token(40)}),
            ))
        });
    ctx.answer(result)
}

async fn media_upload(
    ctx: Ctx,
    Query(q): Params,
    multipart: Result<Multipart, MultipartRejection>,
) -> Answer {
    if let Err(code) = ctx
        .state
        .world()
        .wecom_token(p(&q, "access_token"), Scope::AgentOnly)
    {
        return ctx.err(code);
    }
    let kind = p(&q, "type").unwrap_or_default().to_string();
    if !["image", "voice", "video", "file"].contains(&kind.as_str()) {
        return ctx.err(40004);
    }
    let mut got_media = false;
    if let Ok(mut multipart) = multipart {
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.name() == Some("media") && field.bytes().await.is_ok_and(|b| !b.is_empty()) {
                got_media = true;
            }
        }
    }
    if !got_media {
        return ctx.err(44001);
    }
    let mut world = ctx.state.world();
    world.media_seq += 1;
    let media_id = format!("3{}{}", world.media_seq, random_token(60));
    let created_at = (world.now() / 1000).to_string();
    Answer::wecom_ok(json!({"type": kind, "media_id": media_id, "created_at": created_at}))
}

/// `wx.qy.login`'s code, for the mini-program app whose token asks; an OAuth code is not one.
async fn jscode2session(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .wecom_token(p(&q, "access_token"), Scope::AgentOnly)
        .and_then(|authed| {
            if p(&q, "grant_type") != Some("authorization_code") {
                return Err(40058);
            }
            let exchanged = world.consume_wecom_code(
                p(&q, "js_code"),
                Some(&authed.corp),
                authed.agent(),
                &CodePurpose::MiniProgram,
            )?;
            let Subject::Member(userid) = exchanged.subject else {
                return Err(40029);
            };
            Ok(Answer::wecom_ok(json!({
                "corpid": authed.corp, "userid": userid, "session_key": random_token(24),
            })))
        });
    ctx.answer(result)
}

pub(crate) fn avatar(id: &str) -> String {
    format!("https://wework.qpic.cn/wwpic/emulator/{id}/0")
}
