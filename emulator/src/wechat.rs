//! api.weixin.qq.com: the Official Account calls. Successes carry no errcode.

use std::collections::HashMap;

use axum::extract::Query;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::api::{Answer, Ctx};
use crate::state::{random_token, CodePurpose, EmulatorState, Subject, TicketKind, World};

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/cgi-bin/token", get(token))
        .route("/cgi-bin/stable_token", axum::routing::post(stable_token))
        .route("/cgi-bin/ticket/getticket", get(getticket))
        .route("/sns/oauth2/access_token", get(oauth_access_token))
        .route("/sns/userinfo", get(userinfo))
        .route("/sns/jscode2session", get(jscode2session))
}

fn p<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str)
}

async fn token(ctx: Ctx, Query(q): Params) -> Answer {
    let issued =
        ctx.state
            .world()
            .wechat_token(p(&q, "grant_type"), p(&q, "appid"), p(&q, "secret"));
    ctx.answer(
        issued.map(|t| {
            Answer::wechat_ok(json!({"access_token": t.value, "expires_in": t.expires_in}))
        }),
    )
}

/// `cgi-bin/stable_token` (JSON body): a token of its own, kept apart from `cgi-bin/token`'s.
/// Without `force_refresh` the one still valid comes back, so asking again ends nothing; with
/// it a new one, the previous still working 5 minutes. The Official Account's or the
/// mini-program's credentials.
async fn stable_token(ctx: Ctx, body: axum::body::Bytes) -> Answer {
    let result = serde_json::from_slice::<serde_json::Value>(&body)
        .map_err(|_| 47001)
        .and_then(|b| {
            let field = |k: &str| b.get(k).and_then(serde_json::Value::as_str);
            let force = b
                .get("force_refresh")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false);
            ctx.state.world().wechat_stable_token(
                field("grant_type"),
                field("appid"),
                field("secret"),
                force,
            )
        });
    ctx.answer(
        result.map(|t| {
            Answer::wechat_ok(json!({"access_token": t.value, "expires_in": t.expires_in}))
        }),
    )
}

/// The one WeChat success that does carry `errcode: 0`.
async fn getticket(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .wechat_basic_token(p(&q, "access_token"))
        .and_then(|_| {
            if p(&q, "type") != Some("jsapi") {
                return Err(40097);
            }
            let t = world.ticket("", TicketKind::Wechat);
            Ok(Answer::wecom_ok(
                json!({"ticket": t.value, "expires_in": t.expires_in}),
            ))
        });
    ctx.answer(result)
}

/// Credentials first (40013 / 40125), then the code (40029, reuse 40163).
fn app_and_code(
    world: &mut World,
    q: &HashMap<String, String>,
    code_key: &str,
    purpose: CodePurpose,
) -> Result<(String, String), i64> {
    let appid = p(q, "appid").filter(|s| !s.is_empty()).ok_or(41002)?;
    let secret = p(q, "secret").filter(|s| !s.is_empty()).ok_or(41004)?;
    match purpose {
        CodePurpose::MiniProgram => world.check_wechat_mini(appid, secret)?,
        _ => world.check_wechat_app(appid, secret)?,
    }
    if p(q, "grant_type") != Some("authorization_code") {
        return Err(40002);
    }
    let exchanged = world.consume_wechat_code(p(q, code_key), &purpose)?;
    match exchanged.subject {
        Subject::WechatUser(openid) => Ok((openid, exchanged.scope)),
        Subject::Member(_) | Subject::Visitor { .. } => Err(40029),
    }
}

async fn oauth_access_token(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = app_and_code(&mut world, &q, "code", CodePurpose::OAuth).map(|(openid, scope)| {
        let (token, expires_in) = world.issue_web_token(&openid, &scope);
        let mut body = json!({
            "access_token": token, "expires_in": expires_in, "refresh_token": random_token(96),
            "openid": openid, "scope": scope,
        });
        if let Some(user) = world.scenario.wechat_user(&openid) {
            if let Some(unionid) = &user.unionid {
                body["unionid"] = json!(unionid);
            }
            if user.is_snapshotuser {
                body["is_snapshotuser"] = json!(1);
            }
        }
        Answer::wechat_ok(body)
    });
    ctx.answer(result)
}

/// Needs the per-user web token of an `snsapi_userinfo` login (48001 otherwise).
async fn userinfo(ctx: Ctx, Query(q): Params) -> Answer {
    let world = ctx.state.world();
    let result = world.web_token(p(&q, "access_token")).and_then(|t| {
        if p(&q, "openid") != Some(t.openid.as_str()) {
            return Err(40003);
        }
        if t.scope != "snsapi_userinfo" {
            return Err(48001);
        }
        let u = world.scenario.wechat_user(&t.openid).ok_or(40003)?;
        let mut body = json!({
            "openid": u.openid, "nickname": u.nickname, "sex": u.sex, "province": u.province,
            "city": u.city, "country": u.country, "headimgurl": u.headimgurl, "privilege": [],
        });
        if let Some(unionid) = &u.unionid {
            body["unionid"] = json!(unionid);
        }
        Ok(Answer::wechat_ok(body))
    });
    ctx.answer(result)
}

/// `wx.login`'s code of the mini-program `[wechat_mini]`: its own openid, the shared unionid.
async fn jscode2session(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result =
        app_and_code(&mut world, &q, "js_code", CodePurpose::MiniProgram).map(|(openid, _)| {
            let mut body = json!({"openid": openid, "session_key": random_token(24)});
            if let Some(unionid) = world
                .scenario
                .mini_user(&openid)
                .and_then(|u| u.unionid.clone())
            {
                body["unionid"] = json!(unionid);
            }
            Answer::wechat_ok(body)
        });
    ctx.answer(result)
}
