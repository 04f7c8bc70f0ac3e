//! `{prefix}/login`, `/oauth/callback`, `/logout`, `/whoami` (SPEC sections 6 and 8): thin
//! handlers over the `login` module.

use std::sync::Arc;

use cookie::{Cookie, SameSite};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, wants_html, Ctx};
use crate::answers::{self, Failure};
use crate::config::model::{App, Config, IdentityField, SessionSettings};
use crate::identity::Identity;
use crate::login::authorize::{self, enc};
use crate::login::exchange::{self, LoginError};
use crate::login::session::{self, SessionEntry};
use crate::login::state::{self, LoginState, LOGIN_TTL_SECS, MAX_PENDING};
use crate::login::{now_secs, seal, ReturnUrl};
use crate::metrics::METRICS;
use crate::provider::Provider;

type Answer = (Box<pingora::http::ResponseHeader>, bytes::Bytes);

pub(super) fn query(session: &Session) -> Vec<(String, String)> {
    session
        .req_header()
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) fn request_cookies(session: &Session) -> Vec<(String, String)> {
    seal::request_cookies(
        session
            .req_header()
            .headers
            .get_all(http::header::COOKIE)
            .iter(),
    )
}

fn count(app: &str, result: &str) {
    METRICS.logins.with_label_values(&[app, result]).inc();
}

fn fail(session: &Session, ctx: &Ctx, f: Failure, detail: &str) -> Answer {
    answers::failure(f, detail, &ctx.request_id, wants_html(session))
}

/// `{prefix}/login?app=&return_to=`: the URL a "try again" link or the interstitial uses.
pub fn login_url(prefix: &str, app: &str, return_to: &str) -> String {
    format!(
        "{prefix}/login?app={}&return_to={}",
        enc(app),
        enc(return_to)
    )
}

fn login_cookie(config: &Config, name: &str, value: String) -> Cookie<'static> {
    Cookie::build((name.to_owned(), value))
        .path(format!("{}/", config.server.prefix))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(config.server.https())
        .max_age(cookie::time::Duration::seconds(LOGIN_TTL_SECS as i64))
        .build()
}

fn login_cookie_removal(config: &Config, name: &str) -> String {
    let mut c = login_cookie(config, name, String::new());
    c.make_removal();
    c.to_string()
}

/// The app a request names; with a single app configured the name may be left out.
fn pick_app(config: &Config, name: Option<&str>) -> Option<Arc<App>> {
    match name {
        Some(n) => config.apps.get(n).cloned(),
        None if config.apps.len() == 1 => config.apps.values().next().cloned(),
        None => None,
    }
}

/// A login about to be sent to the provider.
struct Start<'a> {
    app: &'a App,
    return_to: &'a ReturnUrl,
    flow: state::Flow,
    restarted: bool,
}

/// Starts a login at the provider: a new state, its sealed cookie, a 302.
fn start(
    config: &Config,
    settings: &SessionSettings,
    Start {
        app,
        return_to,
        flow,
        restarted,
    }: Start<'_>,
    mut cookies: Vec<String>,
    request_id: &str,
) -> Answer {
    let st = state::generate_state();
    let login = LoginState {
        state: st.clone(),
        app: app.name.clone(),
        return_to: return_to.relative().to_owned(),
        issued_at: now_secs(),
        restarted,
        flow,
    };
    let name = state::cookie_name(&st);
    let value = seal::seal(&settings.key, &name, &login);
    cookies.push(login_cookie(config, &name, value).to_string());
    let redirect_uri = authorize::callback_url(&config.server.public_url, &config.server.prefix);
    let location = authorize::provider_url(app, flow, &redirect_uri, &st);
    answers::redirect(&location, &cookies, request_id)
}

/// Removals for the oldest pending logins beyond [`MAX_PENDING`] - 1, so the new one fits.
fn prune_pending(
    config: &Config,
    settings: &SessionSettings,
    jar: &[(String, String)],
) -> Vec<String> {
    let mut pending: Vec<(u64, &str)> = jar
        .iter()
        .filter(|(n, _)| n.starts_with(state::COOKIE_PREFIX))
        .map(|(n, v)| {
            let issued = seal::open::<LoginState>(&settings.key, n, v).map_or(0, |s| s.issued_at);
            (issued, n.as_str())
        })
        .collect();
    if pending.len() < MAX_PENDING {
        return Vec::new();
    }
    pending.sort();
    let excess = pending.len() + 1 - MAX_PENDING;
    pending[..excess]
        .iter()
        .map(|(_, n)| login_cookie_removal(config, n))
        .collect()
}

pub async fn login(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let Some(settings) = config.session.as_ref() else {
        let a = fail(session, ctx, Failure::NotFound, "login is not configured");
        return answer(session, ctx, a).await;
    };
    let Some(app) = pick_app(&config, param(&q, "app")) else {
        let a = fail(session, ctx, Failure::BadRequest, "unknown or missing app");
        return answer(session, ctx, a).await;
    };
    let return_to = ReturnUrl::parse(
        param(&q, "return_to").unwrap_or("/"),
        &config.server.public_url,
    );
    let ua = session
        .req_header()
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let flow = authorize::choose_flow(&app, ua);
    let removals = prune_pending(&config, settings, &request_cookies(session));
    let a = start(
        &config,
        settings,
        Start {
            app: &app,
            return_to: &return_to,
            flow,
            restarted: false,
        },
        removals,
        &ctx.request_id,
    );
    answer(session, ctx, a).await
}

pub async fn callback(session: &mut Session, ctx: &mut Ctx, provider: &Provider) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let Some(settings) = config.session.as_ref() else {
        let a = fail(session, ctx, Failure::NotFound, "login is not configured");
        return answer(session, ctx, a).await;
    };
    let state_param = param(&q, "state").unwrap_or("");
    let jar = request_cookies(session);
    // The cookie is found by the state the provider echoes: no cookie, or a cookie sealed for
    // another state, and the callback was not started by this browser.
    let login = state::plausible_state(state_param)
        .then(|| state::cookie_name(state_param))
        .and_then(|name| {
            let value = &jar.iter().find(|(n, _)| *n == name)?.1;
            seal::open::<LoginState>(&settings.key, &name, value)
        })
        .filter(|l| l.state == state_param && l.fresh(now_secs()));
    let Some(login) = login else {
        count(param(&q, "app").unwrap_or("-"), "bad_state");
        let mut a = fail(
            session,
            ctx,
            Failure::LoginState,
            "the sign-in did not start in this browser, or took longer than 10 minutes",
        );
        if state::plausible_state(state_param) {
            a = answers::with_cookies(
                a,
                &[login_cookie_removal(
                    &config,
                    &state::cookie_name(state_param),
                )],
            );
        }
        return answer(session, ctx, a).await;
    };
    let cookie_removal = login_cookie_removal(&config, &state::cookie_name(&login.state));
    let return_to = ReturnUrl::parse(&login.return_to, &config.server.public_url);
    let retry = login_url(&config.server.prefix, &login.app, return_to.relative());
    let Some(app) = config.apps.get(&login.app).cloned() else {
        count(&login.app, "bad_state");
        let a = answers::with_cookies(
            fail(
                session,
                ctx,
                Failure::LoginState,
                "the app of this sign-in is gone",
            ),
            &[cookie_removal],
        );
        return answer(session, ctx, a).await;
    };
    let code = param(&q, "code").unwrap_or("");
    if code.is_empty() || code.len() > 512 {
        // No code: the person declined consent, or the URL was cut.
        count(&app.name, "no_code");
        let a = answers::login_failure(
            Failure::LoginFailed,
            "the sign-in service returned no code",
            &ctx.request_id,
            &retry,
        );
        return answer(session, ctx, answers::with_cookies(a, &[cookie_removal])).await;
    }

    let a = match exchange::exchange(provider, &app, code).await {
        Ok(identity) => {
            count(&app.name, "ok");
            let now = now_secs();
            let entry = SessionEntry::new(&app, &identity, now, settings.ttl.as_secs());
            let entries = session::replace(session::read(settings, &jar, now), entry);
            let cookies = [
                session::set_cookie(settings, entries, config.server.https()),
                cookie_removal,
            ];
            let target = return_to.with_query(&return_params(&app, &identity));
            answers::redirect(&target.absolute(), &cookies, &ctx.request_id)
        }
        Err(LoginError::CodeInvalid(errcode)) if !login.restarted => {
            // A used or expired code (double redirect, back button, refresh): start over once.
            count(&app.name, "code_invalid");
            tracing::info!(app = %app.name, errcode, request_id = %ctx.request_id, "login code refused; restarting once");
            start(
                &config,
                settings,
                Start {
                    app: &app,
                    return_to: &return_to,
                    flow: login.flow,
                    restarted: true,
                },
                vec![cookie_removal],
                &ctx.request_id,
            )
        }
        Err(e) => {
            count(&app.name, e.result());
            tracing::warn!(app = %app.name, error = %e, request_id = %ctx.request_id, "login failed");
            let (f, detail) = match &e {
                LoginError::Provider(crate::provider::ApiError::Timeout) => (
                    Failure::ProviderTimeout,
                    "the sign-in service did not answer in time",
                ),
                LoginError::CodeInvalid(_) => {
                    (Failure::LoginFailed, "the sign-in code was refused twice")
                }
                LoginError::NotPlain(_) | LoginError::NoSubject => (
                    Failure::LoginFailed,
                    "the sign-in service returned an identity that cannot be used",
                ),
                LoginError::Provider(_) => (
                    Failure::LoginFailed,
                    "the sign-in service refused the request",
                ),
            };
            answers::with_cookies(
                answers::login_failure(f, detail, &ctx.request_id, &retry),
                &[cookie_removal],
            )
        }
    };
    answer(session, ctx, a).await
}

/// `return_query`: (parameter, value) for each configured field the identity has.
fn return_params(app: &App, id: &Identity) -> Vec<(String, String)> {
    app.return_query
        .iter()
        .filter_map(|(param, field)| {
            let v = match field {
                IdentityField::UserId => id.userid.clone(),
                IdentityField::OpenId => id.openid.clone(),
                IdentityField::UnionId => id.unionid.clone(),
                IdentityField::CorpId => id.corp_id.clone(),
                IdentityField::AgentId => id.agent_id.map(|a| a.to_string()),
                IdentityField::ExternalUserId => id.external_userid.clone(),
            }?;
            Some((param.clone(), v))
        })
        .collect()
}

pub async fn logout(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let target = ReturnUrl::parse(
        param(&q, "return_to").unwrap_or("/"),
        &config.server.public_url,
    );
    let cookies: Vec<String> = config
        .session
        .as_ref()
        .map(|s| vec![session::clear_cookie(s, config.server.https())])
        .unwrap_or_default();
    let a = answers::redirect(&target.absolute(), &cookies, &ctx.request_id);
    answer(session, ctx, a).await
}

pub async fn whoami(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let entries = config
        .session
        .as_ref()
        .map(|s| session::read(s, &request_cookies(session), now_secs()))
        .unwrap_or_default();
    let found = match param(&q, "app") {
        Some(name) => config
            .apps
            .get(name)
            .and_then(|app| session::for_app(&entries, app)),
        // Without `app`: the most recent session of an app that is still configured.
        None => entries
            .iter()
            .filter(|e| config.apps.get(&e.app).is_some_and(|a| e.belongs_to(a)))
            .max_by_key(|e| e.iat),
    };
    let a = match found {
        Some(e) => answers::json(
            200,
            &serde_json::json!({
                "app": e.app,
                "corp_id": e.corp_id,
                "agent_id": e.agent_id,
                "userid": e.userid,
                "openid": e.openid,
                "app_id": e.wechat_app_id,
                "unionid": e.unionid,
                "issued_at": e.iat,
                "expires_at": e.exp,
            }),
            &ctx.request_id,
        ),
        None => answers::json(
            401,
            &serde_json::json!({"error": "login_required", "request_id": ctx.request_id}),
            &ctx.request_id,
        ),
    };
    answer(session, ctx, a).await
}

/// The session of `app` in this request, if any.
pub fn session_entry(session: &Session, config: &Config, app: &App) -> Option<SessionEntry> {
    let settings = config.session.as_ref()?;
    let entries = session::read(settings, &request_cookies(session), now_secs());
    session::for_app(&entries, app).cloned()
}
