//! The third-party calls at their real paths (`/cgi-bin/service/*`, WECOM_API.md "Service-provider
//! ... apps") and the install page `/3rdapp/install`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::api::{Answer, Ctx};
use crate::oauth::{error_page, escape, redirect, AuthorizeError};
use crate::scenario::{CorpData, Suite};
use crate::state::{CodePurpose, EmulatorState, Subject, World};

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/cgi-bin/service/get_suite_token", post(get_suite_token))
        .route("/cgi-bin/service/get_pre_auth_code", get(get_pre_auth_code))
        .route(
            "/cgi-bin/service/get_permanent_code",
            post(permanent_code_v1),
        )
        .route(
            "/cgi-bin/service/v2/get_permanent_code",
            post(permanent_code_v2),
        )
        .route("/cgi-bin/service/get_auth_info", post(get_auth_info))
        .route("/cgi-bin/service/v2/get_auth_info", post(get_auth_info))
        .route("/cgi-bin/service/get_corp_token", post(get_corp_token))
        .route("/cgi-bin/service/auth/getuserinfo3rd", get(getuserinfo3rd))
}

pub fn page_routes() -> Router<EmulatorState> {
    Router::new()
        .route("/3rdapp/install", get(install_page))
        .route("/3rdapp/install/choose", get(install_choose))
}

fn p<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str)
}

fn body_json(body: &Bytes) -> Result<Value, i64> {
    serde_json::from_slice(body).map_err(|_| 47001)
}

fn field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// Success carries no errcode, like the WeChat family.
async fn get_suite_token(ctx: Ctx, body: Bytes) -> Answer {
    let result = body_json(&body).and_then(|b| {
        ctx.state.world().suite_token(
            field(&b, "suite_id"),
            field(&b, "suite_secret"),
            field(&b, "suite_ticket"),
        )
    });
    ctx.answer(
        result.map(|t| {
            Answer::bare(json!({"suite_access_token": t.value, "expires_in": t.expires_in}))
        }),
    )
}

async fn get_pre_auth_code(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .check_suite_token(p(&q, "suite_access_token"))
        .map(|suite| {
            let code = world.pre_auth_code(&suite);
            Answer::wecom_ok(json!({"pre_auth_code": code.value, "expires_in": code.expires_in}))
        });
    ctx.answer(result)
}

fn corp_info(c: &CorpData) -> Value {
    json!({
        "corpid": c.corp_id, "corp_name": c.name, "corp_type": "verified",
        "corp_square_logo_url": "", "corp_user_max": 200, "corp_full_name": c.name,
        "subject_type": 1, "verified_end_time": 1_900_000_000, "corp_wxqrcode": "",
        "corp_scale": "1-50人", "corp_industry": "IT服务", "corp_sub_industry": "计算机软件/硬件/信息服务",
    })
}

fn auth_info(suite: &Suite) -> Value {
    json!({"agent": [{
        "agentid": suite.agent_id, "name": suite.name, "square_logo_url": "", "round_logo_url": "",
        "auth_mode": 0, "is_customized_app": suite.is_custom(),
        "privilege": {"level": 1, "allow_party": [1], "allow_user": [], "allow_tag": [],
                      "extra_party": [], "extra_user": [], "extra_tag": []},
    }]})
}

/// (suite, corp, install) of a `get_permanent_code` call.
fn exchange(
    world: &mut World,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<(Suite, CorpData, crate::provider::Install), i64> {
    let suite_id = world.check_suite_token(p(q, "suite_access_token"))?;
    let b = body_json(body)?;
    let (corp, install) = world.exchange_auth_code(&suite_id, field(&b, "auth_code"))?;
    let suite = world.scenario.suite(&suite_id).cloned().ok_or(40083)?;
    let corp = world.corp(&corp).cloned().ok_or(40078)?;
    Ok((suite, corp, install))
}

/// v1 also hands out a corp token and the agents.
async fn permanent_code_v1(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let mut world = ctx.state.world();
    let result = exchange(&mut world, &q, &body).map(|(suite, corp, install)| {
        let token = world.issue_suite_corp_token(&corp.corp_id, &suite.suite_id, suite.agent_id);
        let open_userid = world.open_userid(&corp.corp_id, &install.auth_userid);
        Answer::wecom_ok(json!({
            "access_token": token.value, "expires_in": token.expires_in,
            "permanent_code": install.permanent_code, "auth_corp_info": corp_info(&corp),
            "auth_info": auth_info(&suite),
            "auth_user_info": {"userid": install.auth_userid, "open_userid": open_userid, "name": install.auth_userid},
            "state": install.state,
        }))
    });
    ctx.answer(result)
}

async fn permanent_code_v2(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let mut world = ctx.state.world();
    let result = exchange(&mut world, &q, &body).map(|(_, corp, install)| {
        let open_userid = world.open_userid(&corp.corp_id, &install.auth_userid);
        Answer::wecom_ok(json!({
            "permanent_code": install.permanent_code,
            "auth_corp_info": {"corpid": corp.corp_id, "corp_name": corp.name},
            "auth_user_info": {"userid": install.auth_userid, "open_userid": open_userid},
            "state": install.state,
        }))
    });
    ctx.answer(result)
}

/// The suite's token, then the corp's permanent code (41025 missing, 40084 wrong).
fn suite_and_corp(
    world: &World,
    q: &HashMap<String, String>,
    body: &Bytes,
) -> Result<(String, String), i64> {
    let suite = world.check_suite_token(p(q, "suite_access_token"))?;
    let b = body_json(body)?;
    let corp = world.check_permanent_code(
        &suite,
        field(&b, "auth_corpid"),
        field(&b, "permanent_code"),
    )?;
    Ok((suite, corp))
}

async fn get_auth_info(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let world = ctx.state.world();
    let result = suite_and_corp(&world, &q, &body).and_then(|(suite, corp)| {
        let suite = world.scenario.suite(&suite).ok_or(40083)?;
        let corp = world.corp(&corp).ok_or(40084)?;
        Ok(Answer::wecom_ok(
            json!({"auth_corp_info": corp_info(corp), "auth_info": auth_info(suite)}),
        ))
    });
    ctx.answer(result)
}

/// Success carries no errcode.
async fn get_corp_token(ctx: Ctx, Query(q): Params, body: Bytes) -> Answer {
    let mut world = ctx.state.world();
    let result = suite_and_corp(&world, &q, &body).and_then(|(suite, corp)| {
        let agent = world.scenario.suite(&suite).ok_or(40083)?.agent_id;
        let t = world.issue_suite_corp_token(&corp, &suite, agent);
        Ok(Answer::bare(
            json!({"access_token": t.value, "expires_in": t.expires_in}),
        ))
    });
    ctx.answer(result)
}

/// A third-party login's code: corp, userid and the provider's open_userid. The member's corp
/// may not have installed the app (a QR scan by anyone): then no `user_ticket`, and the caller
/// finds no install for that corp.
async fn getuserinfo3rd(ctx: Ctx, Query(q): Params) -> Answer {
    let mut world = ctx.state.world();
    let result = world
        .check_suite_token(p(&q, "suite_access_token"))
        .and_then(|suite| {
            let purpose = CodePurpose::ThirdParty(suite.clone());
            let exchanged = world.consume_wecom_code(p(&q, "code"), None, None, &purpose)?;
            let Subject::Member(userid) = exchanged.subject else {
                return Err(40029);
            };
            let corp = exchanged.corp;
            let mut fields = json!({
                "corpid": corp, "userid": userid, "open_userid": world.open_userid(&corp, &userid),
                "expires_in": 1800,
            });
            if exchanged.scope == "snsapi_privateinfo" && world.install(&suite, &corp).is_some() {
                fields["user_ticket"] = json!(world.issue_user_ticket(&corp, &userid));
            }
            Ok(Answer::wecom_ok(fields))
        });
    ctx.answer(result)
}

/// `redirect_uri` and a valid `pre_auth_code` of the suite, else the page refuses.
fn check_install(
    world: &World,
    q: &HashMap<String, String>,
) -> Result<(String, String), AuthorizeError> {
    let bad = |key: &'static str, message: &str| AuthorizeError {
        key,
        message: message.into(),
    };
    let suite = p(q, "suite_id").unwrap_or_default();
    if world.scenario.suite(suite).is_none() {
        return Err(bad("suite_id", "suite_id 无效 (unknown suite)"));
    }
    if !world.pre_auth_code_valid(suite, p(q, "pre_auth_code").unwrap_or_default()) {
        return Err(bad(
            "pre_auth_code",
            "pre_auth_code 无效或已过期 (invalid or expired pre_auth_code)",
        ));
    }
    let redirect_uri =
        p(q, "redirect_uri").filter(|r| url::Url::parse(r).is_ok() && !r.contains('#'));
    let Some(redirect_uri) = redirect_uri else {
        return Err(bad("redirect_uri", "redirect_uri 参数错误"));
    };
    Ok((suite.to_string(), redirect_uri.to_string()))
}

/// The admin of some corp scans and confirms: the corps are listed as buttons.
async fn install_page(State(state): State<EmulatorState>, Query(q): Params) -> Response {
    let world = state.world();
    if let Err(e) = check_install(&world, &q) {
        return error_page(&e);
    }
    let mut buttons = String::new();
    for c in &world.corps {
        let mut choose = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &q {
            if k != "corpid" {
                choose.append_pair(k, v);
            }
        }
        choose.append_pair("corpid", &c.corp_id);
        buttons.push_str(&format!(
            "<li><a class=\"member\" href=\"/3rdapp/install/choose?{}\">{} <small>{}</small></a></li>\n",
            escape(&choose.finish()),
            escape(&c.name),
            escape(&c.corp_id)
        ));
    }
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>授权安装</title><h1>授权安装应用（模拟）</h1>\
         <p>Choose the corp whose admin installs the app:</p><ul>{buttons}</ul>"
    ))
    .into_response()
}

/// Installed from the provider's site: the AuthCode comes back on the redirect (no push).
async fn install_choose(State(state): State<EmulatorState>, Query(q): Params) -> Response {
    let mut world = state.world();
    let (suite, redirect_uri) = match check_install(&world, &q) {
        Ok(v) => v,
        Err(e) => return error_page(&e),
    };
    let corp = p(&q, "corpid").unwrap_or_default();
    let state_param = p(&q, "state").unwrap_or_default().to_string();
    let code = match world.issue_auth_code(&suite, corp, &state_param) {
        Ok(code) => code,
        Err(message) => {
            return error_page(&AuthorizeError {
                key: "corpid",
                message,
            })
        }
    };
    let ttl = world.scenario.settings.auth_code_ttl.as_secs();
    let mut target = url::Url::parse(&redirect_uri).expect("checked");
    target
        .query_pairs_mut()
        .append_pair("auth_code", &code)
        .append_pair("expires_in", &ttl.to_string())
        .append_pair("state", &state_param);
    redirect(target.as_str())
}
