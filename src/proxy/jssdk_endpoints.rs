//! `{prefix}/jssdk/config`, `{prefix}/external-contact` and `{prefix}/sdk.js` (SPEC sections 6
//! and 9): thin handlers over the `jssdk` module and the provider.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use once_cell::sync::Lazy;
use pingora::prelude::*;
use pingora::proxy::Session;
use wecom_api::Throttle;

use super::login_endpoints::{param, query, request_cookies};
use super::{answer, Ctx};

use crate::answers::{self, Failure};
use crate::clock::clock;
use crate::config::model::{App, Config, Credentials, SessionSettings};
use crate::jssdk::config::{self as jsconfig, PayloadKind, Signed, StaleReport};
use crate::jssdk::contact::{self, ContactError};
use crate::jssdk::render_sdk;
use crate::login::now_secs;
use crate::login::session::{self, CurrentContact, SessionEntry};
use crate::provider::{Provider, TokenKind};

type Answer = (Box<pingora::http::ResponseHeader>, Bytes);

/// `{"external_userid": "..."}` is a few dozen bytes; anything much larger is not one.
const MAX_CONTACT_BODY: usize = 4096;
/// A page's stale-ticket report replaces a ticket at most this often per app and kind, so a
/// page that keeps reporting cannot burn the ticket quota (WeCom: 100 agent tickets an hour).
const STALE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The request's session of `app` (by name), or of its most recent WeCom app, with every live
/// entry of the cookie (a rewritten cookie keeps the other apps' sessions).
struct Found {
    app: Arc<App>,
    entry: SessionEntry,
    entries: Vec<SessionEntry>,
}

fn find_session(session: &Session, config: &Config, app: Option<&str>) -> Option<Found> {
    let settings = config.session.as_ref()?;
    let entries = session::read(settings, &request_cookies(session), now_secs());
    let (app, entry) = match app {
        Some(name) => {
            let app = config.apps.get(name)?.clone();
            let entry = session::for_app(&entries, &app)?.clone();
            (app, entry)
        }
        None => entries
            .iter()
            .filter_map(|e| {
                let app = config.apps.get(&e.app)?;
                (e.belongs_to(app) && matches!(app.credentials, Credentials::Wecom { .. }))
                    .then(|| (app.clone(), e.clone()))
            })
            .max_by_key(|(_, e)| e.iat)?,
    };
    Some(Found {
        app,
        entry,
        entries,
    })
}

fn fail(ctx: &Ctx, f: Failure, detail: &str) -> Answer {
    // These endpoints are called by scripts: always JSON.
    answers::failure(f, detail, &ctx.request_id, false)
}

fn login_required(ctx: &Ctx) -> Answer {
    fail(ctx, Failure::LoginRequired, "sign in first")
}

/// `GET {prefix}/jssdk/config?url=URL[&app=NAME][&stale=REPORT]`.
pub async fn config(session: &mut Session, ctx: &mut Ctx, provider: &Provider) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let Some(found) = find_session(session, &config, param(&q, "app")) else {
        let a = login_required(ctx);
        return answer(session, ctx, a).await;
    };
    let url = match jsconfig::page_url(param(&q, "url").unwrap_or(""), &config.server.public_url) {
        Ok(u) => u.to_owned(),
        Err(why) => {
            let a = fail(ctx, Failure::BadRequest, why.describe());
            return answer(session, ctx, a).await;
        }
    };
    let app = &found.app;
    // One report per payload kind at most: config and agentConfig.
    let reports = q
        .iter()
        .filter(|(k, _)| k == "stale")
        .filter_map(|(_, v)| StaleReport::parse(v))
        .take(2);
    for report in reports {
        replace_stale_ticket(provider, app, &report, &url, &ctx.request_id).await;
    }
    let now = now_secs();
    let a = match &app.credentials {
        Credentials::Wecom {
            corp_id, agent_id, ..
        } => {
            let (corp, agent) = tokio::join!(
                provider.token(app, TokenKind::CorpTicket),
                provider.token(app, TokenKind::AgentTicket)
            );
            match (corp, agent) {
                (Ok(corp), Ok(agent)) => {
                    let c = Signed::new(&corp, &url, now, jsconfig::nonce());
                    let g = Signed::new(&agent, &url, now, jsconfig::nonce());
                    answers::json(
                        200,
                        &jsconfig::wecom_payload(corp_id, *agent_id, &c, &g),
                        &ctx.request_id,
                    )
                }
                (Err(e), _) | (_, Err(e)) => answers::provider_failure(&e, &ctx.request_id),
            }
        }
        Credentials::WechatMp { app_id, .. } => {
            match provider.token(app, TokenKind::OaTicket).await {
                Ok(ticket) => {
                    let c = Signed::new(&ticket, &url, now, jsconfig::nonce());
                    answers::json(200, &jsconfig::wechat_payload(app_id, &c), &ctx.request_id)
                }
                Err(e) => answers::provider_failure(&e, &ctx.request_id),
            }
        }
    };
    answer(session, ctx, a).await
}

static STALE_REPORTS: Lazy<Throttle<(String, TokenKind)>> =
    Lazy::new(|| Throttle::new(STALE_REPORT_INTERVAL));

/// A page says WeCom refused a payload: if it was signed with the ticket held now, that ticket
/// is replaced (compare-and-expire, one fetch), at most once a minute per app and kind.
async fn replace_stale_ticket(
    provider: &Provider,
    app: &App,
    report: &StaleReport,
    url: &str,
    request_id: &str,
) {
    let kind = match (report.kind, &app.credentials) {
        (PayloadKind::Config, Credentials::Wecom { .. }) => TokenKind::CorpTicket,
        (PayloadKind::Config, Credentials::WechatMp { .. }) => TokenKind::OaTicket,
        (PayloadKind::AgentConfig, Credentials::Wecom { .. }) => TokenKind::AgentTicket,
        (PayloadKind::AgentConfig, Credentials::WechatMp { .. }) => return,
    };
    let Ok(current) = provider.token(app, kind).await else {
        return;
    };
    if !report.signed_with(&current, url) {
        // Signed with a ticket already replaced, or not by us: nothing to do.
        return;
    }
    if !STALE_REPORTS.due((app.name.clone(), kind), clock().now_ms()) {
        tracing::info!(app = %app.name, kind = kind.label(), request_id, "stale ticket report held back: one a minute");
        return;
    }
    tracing::info!(app = %app.name, kind = kind.label(), request_id, "the JS-SDK refused the current ticket; replacing it");
    if let Err(e) = provider.replace_token(app, kind, &current).await {
        tracing::warn!(app = %app.name, kind = kind.label(), error = %e, request_id, "ticket replacement failed");
    }
}

/// `POST {prefix}/external-contact` with `{"external_userid": "..."}`.
pub async fn external_contact(
    session: &mut Session,
    ctx: &mut Ctx,
    provider: &Provider,
) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let found = find_session(session, &config, param(&q, "app"));
    let (Some(found), Some(settings)) = (found, config.session.as_ref()) else {
        let a = login_required(ctx);
        return answer(session, ctx, a).await;
    };
    let external_userid = match read_contact_body(session).await? {
        Ok(id) => id,
        Err(why) => {
            // The rest of a refused body is not read: the connection is not reused.
            session.set_keepalive(None);
            let a = fail(ctx, Failure::BadRequest, why);
            return answer(session, ctx, a).await;
        }
    };
    let (Credentials::Wecom { corp_id, .. }, Some(userid)) =
        (&found.app.credentials, found.entry.userid.clone())
    else {
        // A WeChat user, or a WeCom visitor who is not a member, follows no customers.
        let a = fail(
            ctx,
            Failure::NotYourContact,
            "only a member of the corp has customers",
        );
        return answer(session, ctx, a).await;
    };
    let a = match contact::verify(provider, &found.app, &userid, &external_userid).await {
        Ok(c) => {
            let ticket = contact::issue_ticket(&settings.key, corp_id, &userid, &c, now_secs());
            let cookie = remember(&config, settings, found, &c);
            answers::with_cookies(
                answers::json(
                    200,
                    &serde_json::json!({
                        "external_userid": c.external_userid,
                        "unionid": c.unionid,
                        "name": c.name,
                        "ticket": ticket,
                    }),
                    &ctx.request_id,
                ),
                &[cookie],
            )
        }
        Err(ContactError::NotYourContact) => {
            tracing::info!(userid = %userid, request_id = %ctx.request_id, "external contact refused: not this member's");
            fail(
                ctx,
                Failure::NotYourContact,
                "this customer is not one of yours",
            )
        }
        Err(ContactError::Provider(e)) => {
            tracing::warn!(error = %e, request_id = %ctx.request_id, "externalcontact/get failed");
            answers::provider_failure(&e, &ctx.request_id)
        }
        Err(e @ ContactError::Unusable(_)) => {
            tracing::warn!(error = %e, request_id = %ctx.request_id, "externalcontact/get answer refused");
            fail(
                ctx,
                Failure::ProviderFailed,
                "WeCom's answer about this customer cannot be used",
            )
        }
    };
    answer(session, ctx, a).await
}

/// The session cookie with `c` as the current contact of the found session.
fn remember(
    config: &Config,
    settings: &SessionSettings,
    found: Found,
    c: &contact::ExternalContact,
) -> String {
    let mut entry = found.entry;
    entry.contact = Some(CurrentContact {
        external_userid: c.external_userid.clone(),
        unionid: c.unionid.clone(),
    });
    let entries = session::replace(found.entries, entry);
    session::set_cookie(settings, entries, config.server.https())
}

/// The `external_userid` of the body, or why the body is refused.
async fn read_contact_body(
    session: &mut Session,
) -> Result<std::result::Result<String, &'static str>> {
    let json = session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json {
        return Ok(Err("the body must be application/json"));
    }
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_CONTACT_BODY) {
        return Ok(Err("the body is too large"));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_CONTACT_BODY {
            return Ok(Err("the body is too large"));
        }
        body.extend_from_slice(&chunk);
    }
    #[derive(serde::Deserialize)]
    struct Body {
        external_userid: String,
    }
    let Ok(b) = serde_json::from_slice::<Body>(&body) else {
        return Ok(Err("the body must be {\"external_userid\": \"...\"}"));
    };
    if !contact::plausible_external_userid(&b.external_userid) {
        return Ok(Err("external_userid is not a WeCom external userid"));
    }
    Ok(Ok(b.external_userid))
}

/// `GET {prefix}/sdk.js[?app=NAME]`: the helper with its settings; the app is the named one,
/// else the session's WeCom app, else the first WeCom app configured.
pub async fn sdk_js(session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
    let config = ctx.config.clone();
    let q = query(session);
    let app = param(&q, "app")
        .and_then(|n| config.apps.get(n).cloned())
        .or_else(|| find_session(session, &config, None).map(|f| f.app))
        .or_else(|| {
            config
                .apps
                .values()
                .find(|a| matches!(a.credentials, Credentials::Wecom { .. }))
                .cloned()
        });
    let js = match &app {
        Some(app) => render_sdk(&config.server.prefix, Some(&app.name), &app.jssdk_urls),
        None => render_sdk(&config.server.prefix, None, &[]),
    };
    let a = answers::script(js, &ctx.request_id);
    answer(session, ctx, a).await
}
