//! The authorize pages: in-app `/connect/oauth2/authorize` and the WeCom QR login
//! `/wwlogin/sso/login`. They validate like open.weixin.qq.com and never redirect on bad input.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use url::Url;

use crate::state::{CodePurpose, EmulatorState, Subject, World};

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<EmulatorState> {
    Router::new()
        .route("/connect/oauth2/authorize", get(authorize))
        .route("/wwlogin/sso/login", get(qr_login))
        .route("/wwlogin/sso/choose", get(qr_choose))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A corp's own app (self-built, or 代开发 in that corp): `appid` = corp id.
    Wecom {
        corp: String,
        agent_id: Option<u64>,
    },
    /// A third-party app: `appid` = suite id; the member may be of any corp.
    Suite {
        suite_id: String,
    },
    Wechat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub provider: Provider,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
}

/// Why an authorize page refuses: a short key (also sent as `X-Emulator-Error`) and the text
/// the page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeError {
    pub key: &'static str,
    pub message: String,
}

fn fail<T>(key: &'static str, message: impl Into<String>) -> Result<T, AuthorizeError> {
    Err(AuthorizeError {
        key,
        message: message.into(),
    })
}

/// In-app authorize: appid names a corp (WeCom), a third-party suite, or the Official Account
/// (WeChat), and decides which scopes exist.
pub fn validate_authorize(
    w: &World,
    q: &HashMap<String, String>,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let s = &w.scenario;
    let appid = q.get("appid").map(String::as_str).unwrap_or_default();
    let provider = if appid.is_empty() {
        return fail("appid", "10012 appid 为空 (appid is missing)");
    } else if w.corp(appid).is_some() {
        Provider::Wecom {
            corp: appid.to_string(),
            agent_id: agent_param(w, appid, q)?,
        }
    } else if s.suite(appid).is_some_and(|suite| !suite.is_custom()) {
        Provider::Suite {
            suite_id: appid.to_string(),
        }
    } else if s.wechat_mp.as_ref().is_some_and(|mp| mp.app_id == appid) {
        Provider::Wechat
    } else {
        return fail("appid", format!("40013 appid 无效 (invalid appid {appid})"));
    };
    let redirect_uri = redirect_param(s, q)?;
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail(
            "response_type",
            "response_type 必须为 code (response_type must be code)",
        );
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    let scopes: &[&str] = match provider {
        Provider::Wecom { .. } | Provider::Suite { .. } => &["snsapi_base", "snsapi_privateinfo"],
        Provider::Wechat => &["snsapi_base", "snsapi_userinfo"],
    };
    if scope.is_empty() {
        return fail("scope", "10010 scope 为空 (scope is missing)");
    }
    if !scopes.contains(&scope.as_str()) {
        return fail(
            "scope",
            format!("10005 不支持的 scope (unsupported scope {scope})"),
        );
    }
    // WeCom asks for consent per app: the privateinfo scope must name the agent.
    if scope == "snsapi_privateinfo" && matches!(provider, Provider::Wecom { agent_id: None, .. }) {
        return fail(
            "agentid",
            "snsapi_privateinfo 需要 agentid (agentid is required)",
        );
    }
    Ok(AuthorizeRequest {
        provider,
        redirect_uri,
        scope,
        state: state_param(q)?,
    })
}

/// QR login: `login_type=CorpApp` with a corp and its agent, or `ServiceApp` with a
/// third-party suite.
pub fn validate_qr_login(
    w: &World,
    q: &HashMap<String, String>,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let s = &w.scenario;
    let appid = q.get("appid").map(String::as_str).unwrap_or_default();
    let provider = match q.get("login_type").map(String::as_str) {
        Some("CorpApp") => {
            if w.corp(appid).is_none() {
                return fail("appid", "appid 无效 (appid must be the corp id)");
            }
            let Some(agent_id) = agent_param(w, appid, q)? else {
                return fail("agentid", "agentid 为空 (agentid is missing)");
            };
            Provider::Wecom {
                corp: appid.to_string(),
                agent_id: Some(agent_id),
            }
        }
        Some("ServiceApp") => {
            if s.suite(appid).is_none_or(|suite| suite.is_custom()) {
                return fail("appid", "appid 无效 (appid must be a suite id)");
            }
            Provider::Suite {
                suite_id: appid.to_string(),
            }
        }
        _ => return fail(
            "login_type",
            "login_type 必须为 CorpApp 或 ServiceApp (login_type must be CorpApp or ServiceApp)",
        ),
    };
    let redirect_uri = redirect_param(s, q)?;
    let state = state_param(q)?;
    Ok(AuthorizeRequest {
        provider,
        redirect_uri,
        scope: "snsapi_base".to_string(),
        state,
    })
}

fn agent_param(
    w: &World,
    corp: &str,
    q: &HashMap<String, String>,
) -> Result<Option<u64>, AuthorizeError> {
    match q.get("agentid").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(raw) => match raw.parse::<u64>().ok().filter(|id| w.agent_in(corp, *id)) {
            Some(id) => Ok(Some(id)),
            None => fail("agentid", format!("agentid 无效 (invalid agentid {raw})")),
        },
    }
}

/// An absolute http(s) URL on the trusted domain; it cannot carry a fragment.
fn redirect_param(
    s: &crate::Scenario,
    q: &HashMap<String, String>,
) -> Result<String, AuthorizeError> {
    let raw = q.get("redirect_uri").cloned().unwrap_or_default();
    if raw.is_empty() {
        return fail(
            "redirect_uri",
            "10011 redirect_uri 为空 (redirect_uri is missing)",
        );
    }
    let Ok(url) = Url::parse(&raw) else {
        return fail(
            "redirect_uri",
            "redirect_uri 参数错误 (redirect_uri is not an absolute URL)",
        );
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return fail(
            "redirect_uri",
            "redirect_uri 参数错误 (redirect_uri must be http or https)",
        );
    }
    if raw.contains('#') {
        return fail(
            "redirect_uri",
            "redirect_uri 参数错误 (redirect_uri cannot carry a fragment)",
        );
    }
    let domains = &s.settings.redirect_domains;
    let host = url.host_str().unwrap_or_default();
    if !domains.is_empty() && !domains.iter().any(|d| d.eq_ignore_ascii_case(host)) {
        return fail(
            "redirect_uri",
            "10003 redirect_uri 域名与后台配置不一致 (redirect_uri not on the trusted domain)",
        );
    }
    Ok(raw)
}

fn state_param(q: &HashMap<String, String>) -> Result<Option<String>, AuthorizeError> {
    match q.get("state") {
        None => Ok(None),
        Some(state) if state.len() > 128 => {
            fail("state", "state 超过 128 字节 (state longer than 128 bytes)")
        }
        Some(state) if !state.bytes().all(|b| b.is_ascii_alphanumeric()) => fail(
            "state",
            "state 只能包含 a-zA-Z0-9 (state must be letters and digits)",
        ),
        Some(state) => Ok(Some(state.clone())),
    }
}

/// `redirect_uri?code=CODE&state=STATE`, keeping an existing query.
pub fn redirect_target(redirect_uri: &str, code: &str, state: Option<&str>) -> String {
    let sep = match redirect_uri.find('?') {
        None => "?",
        Some(i) if i + 1 == redirect_uri.len() || redirect_uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!(
        "{redirect_uri}{sep}code={code}&state={}",
        state.unwrap_or_default()
    )
}

async fn authorize(State(state): State<EmulatorState>, Query(q): Params) -> Response {
    let mut world = state.world();
    let request = match validate_authorize(&world, &q) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let code = match &request.provider {
        Provider::Wecom { corp, agent_id } => {
            // The device's member must belong to the corp whose app is opened.
            if *corp != world.current_corp || !current_member_exists(&world) {
                return error_page(&AuthorizeError {
                    key: "user",
                    message: format!("the member on this device is not in corp {corp}"),
                });
            }
            let member = Subject::Member(world.current_user.clone());
            let corp = corp.clone();
            world.issue_code(&corp, member, &request.scope, *agent_id, CodePurpose::OAuth)
        }
        Provider::Suite { suite_id } => {
            if !current_member_exists(&world) {
                return error_page(&AuthorizeError {
                    key: "user",
                    message: "the member on this device no longer exists".into(),
                });
            }
            let member = Subject::Member(world.current_user.clone());
            let corp = world.current_corp.clone();
            let purpose = CodePurpose::ThirdParty(suite_id.clone());
            world.issue_code(&corp, member, &request.scope, None, purpose)
        }
        Provider::Wechat => match world.current_wechat_user.clone() {
            Some(openid) => {
                let subject = Subject::WechatUser(openid);
                world.issue_code("", subject, &request.scope, None, CodePurpose::OAuth)
            }
            None => {
                return error_page(&AuthorizeError {
                    key: "user",
                    message: "no WeChat user in the scenario".into(),
                })
            }
        },
    };
    redirect(&redirect_target(
        &request.redirect_uri,
        &code,
        request.state.as_deref(),
    ))
}

fn current_member_exists(world: &World) -> bool {
    world
        .corp(&world.current_corp)
        .is_some_and(|c| c.member(&world.current_user).is_some())
}

async fn qr_login(State(state): State<EmulatorState>, Query(q): Params) -> Response {
    let world = state.world();
    let request = match validate_qr_login(&world, &q) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    // A corp's app is scanned by its members; a third-party app by a member of any corp.
    let corps: Vec<_> = match &request.provider {
        Provider::Wecom { corp, .. } => world.corp(corp).into_iter().collect(),
        _ => world.corps.iter().collect(),
    };
    let mut buttons = String::new();
    for c in corps {
        for m in &c.members {
            let mut choose = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q {
                if k != "userid" && k != "corpid" {
                    choose.append_pair(k, v);
                }
            }
            choose.append_pair("userid", &m.userid);
            choose.append_pair("corpid", &c.corp_id);
            buttons.push_str(&format!(
                "<li><a class=\"member\" href=\"/wwlogin/sso/choose?{}\">{} <small>{} · {}</small></a></li>\n",
                escape(&choose.finish()),
                escape(&m.name),
                escape(&m.userid),
                escape(&c.name)
            ));
        }
    }
    Html(format!(
        "<!doctype html><meta charset=\"utf-8\"><title>企业微信登录</title>{STYLE}\
         <h1>企业微信扫码登录（模拟）</h1><p>Choose the member who scans the code:</p><ul>{buttons}</ul>"
    ))
    .into_response()
}

async fn qr_choose(State(state): State<EmulatorState>, Query(q): Params) -> Response {
    let mut world = state.world();
    let request = match validate_qr_login(&world, &q) {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let userid = q.get("userid").cloned().unwrap_or_default();
    let (corp, agent_id, purpose) = match request.provider {
        Provider::Wecom { corp, agent_id } => (corp, agent_id, CodePurpose::OAuth),
        Provider::Suite { suite_id } => {
            let corp = q.get("corpid").cloned().unwrap_or_default();
            (corp, None, CodePurpose::ThirdParty(suite_id))
        }
        Provider::Wechat => unreachable!("QR login is WeCom only"),
    };
    if q.get("corpid").is_some_and(|c| *c != corp)
        || world
            .corp(&corp)
            .is_none_or(|c| c.member(&userid).is_none())
    {
        return error_page(&AuthorizeError {
            key: "userid",
            message: format!("unknown member {userid} of corp {corp}"),
        });
    }
    let code = world.issue_code(
        &corp,
        Subject::Member(userid),
        &request.scope,
        agent_id,
        purpose,
    );
    redirect(&redirect_target(
        &request.redirect_uri,
        &code,
        request.state.as_deref(),
    ))
}

pub(crate) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(header::LOCATION, v)]).into_response(),
        Err(_) => error_page(&AuthorizeError {
            key: "redirect_uri",
            message: "redirect_uri 参数错误".into(),
        }),
    }
}

/// WeChat shows its errors as an ordinary page (status 200), never as a redirect.
pub(crate) fn error_page(e: &AuthorizeError) -> Response {
    let body = format!(
        "<!doctype html><meta charset=\"utf-8\"><title>出错了</title>{STYLE}<h1>出错了</h1>\
         <p class=\"error\">{}</p><p>请联系应用开发者 (emulated authorize page)</p>",
        escape(&e.message)
    );
    let mut response = Html(body).into_response();
    response
        .headers_mut()
        .insert("x-emulator-error", HeaderValue::from_static(e.key));
    response
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}\
ul{list-style:none;padding:0}a.member{display:block;margin:.5rem 0;padding:.8rem 1rem;border-radius:6px;\
background:#1aad19;color:#fff;text-decoration:none}.error{color:#c00}</style>";

#[cfg(test)]
mod tests;
