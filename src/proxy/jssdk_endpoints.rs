//! `{prefix}/jssdk/config`, `{prefix}/external-contact` and `{prefix}/sdk.js` (SPEC sections 6
//! and 9): thin handlers over the `jssdk` module and the provider.

use std::sync::Arc;
use std::time::Duration;

use pingora::proxy::Session;

use super::request::{self, param, query};
use super::Ctx;
use crate::answers::{self, Answer, Failure, Kind};
use crate::config::model::{App, Config, Credentials, SessionSettings};
use crate::jssdk::config::{self as jsconfig, PayloadKind, Signed, StaleReport};
use crate::jssdk::contact::{self, ContactError};
use crate::jssdk::render_sdk;
use crate::login::now_secs;
use crate::login::session::{self, CurrentContact, SessionEntry};
use crate::provider::{Provider, TokenKind};

/// `{"external_userid": "..."}` is a few dozen bytes; anything much larger is not one.
const MAX_CONTACT_BODY: usize = 4096;
/// A page's stale-ticket report replaces a ticket at most this often per app and kind in the
/// cluster, so pages that keep reporting, on however many instances, cannot burn the ticket
/// quota (WeCom: 100 agent tickets an hour).
const STALE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The request's session of `app` (by name), or of its most recent WeCom app, with every live
/// entry of the cookie (a rewritten cookie keeps the other apps' sessions).
struct Found {
    app: Arc<App>,
    entry: SessionEntry,
    entries: Vec<SessionEntry>,
}

async fn find_session(
    session: &Session,
    config: &Config,
    app: Option<&str>,
    provider: &Provider,
) -> Option<Found> {
    let entries = super::login_gate::sessions(session, config, provider.store()).await;
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
                (e.belongs_to(app)
                    && matches!(
                        app.credentials,
                        Credentials::Wecom { .. } | Credentials::Suite { .. }
                    ))
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

/// No session for these script endpoints: the link signs in with the named app (else the
/// default one) and comes back to the page that called.
fn login_required(session: &Session, ctx: &Ctx, app: Option<&str>) -> Failure {
    let config = &ctx.config;
    if app.is_some_and(|a| !config.apps.contains_key(a)) {
        // A typo in `?app=` is the page's to fix: a sign-in with another app would not help.
        return Failure::new(Kind::BadRequest, "unknown app");
    }
    let back = super::login_gate::referer_path(config, session);
    Failure::login_required(super::login_endpoints::login_link(config, app, &back))
}

/// `GET {prefix}/jssdk/config?url=URL[&app=NAME][&stale=REPORT]`.
pub async fn config(
    session: &Session,
    ctx: &mut Ctx,
    provider: &Provider,
) -> Result<Answer, Failure> {
    let config = &ctx.config.clone();
    let q = query(session);
    let Some(found) = find_session(session, config, param(&q, "app"), provider).await else {
        return Err(login_required(session, ctx, param(&q, "app")));
    };
    // For the request's log line.
    ctx.identity = Some(found.entry.identity());
    if !request::query_is_text(session) {
        // The page's URL as decoded would not be the one the JS-SDK signs.
        return Err(Failure::new(
            Kind::BadRequest,
            "url: its escapes do not decode to UTF-8 text",
        ));
    }
    let url = jsconfig::page_url(param(&q, "url").unwrap_or(""), &config.server.public_url)
        .map_err(|why| Failure::new(Kind::BadRequest, why.describe()))?
        .to_owned();
    let app = &found.app;
    // A service-provider app (SPEC section 20): the session's corp, as installed; its own
    // tickets sign, fetched with its corp token.
    let installed = match crate::suite::suite_of(app) {
        None => None,
        Some(_) => {
            let corp_id = found.entry.corp_id.as_deref().unwrap_or_default();
            Some(installed_corp(provider, app, corp_id).await?)
        }
    };
    // One report per payload kind at most: config and agentConfig.
    let reports = q
        .iter()
        .filter(|(k, _)| k == "stale")
        .filter_map(|(_, v)| StaleReport::parse(v))
        .take(2);
    for report in reports {
        let corp = installed.as_deref();
        replace_stale_ticket(provider, app, corp, &report, &url, &ctx.request_id).await;
    }
    let now = now_secs();
    let payload = match &app.credentials {
        Credentials::Wecom {
            corp_id, agent_id, ..
        } => {
            let (corp, agent) = tokio::join!(
                provider.token(app, TokenKind::CorpTicket),
                provider.token(app, TokenKind::AgentTicket)
            );
            let (corp, agent) = (
                corp.map_err(|e| Failure::provider(&e))?,
                agent.map_err(|e| Failure::provider(&e))?,
            );
            let c = Signed::new(&corp, &url, now, jsconfig::nonce());
            let g = Signed::new(&agent, &url, now, jsconfig::nonce());
            jsconfig::wecom_payload(corp_id, *agent_id, &c, &g)
        }
        // A service-provider app (SPEC section 20): the session's corp, signed with that corp's
        // own tickets (fetched with its corp token), `agentConfig` with its agent id there.
        Credentials::Suite { .. } => {
            let Some(corp) = installed.as_deref() else {
                return Err(Failure::new(Kind::Internal, "a suite app without its corp"));
            };
            let corp_id = corp.install.corp_id.as_str();
            let Some(agent_id) = corp.install.agent() else {
                // WeCom did not say the app's agent id there yet (`get_auth_info` failed at
                // the install; it is asked again): `agentConfig` would be refused.
                return Err(Failure::new(
                    Kind::SuiteNotReady,
                    "the app's install in this corp is not complete yet: try again in a minute",
                ));
            };
            let (ct, at) = tokio::join!(
                provider.corp_token(corp, TokenKind::CorpTicket),
                provider.corp_token(corp, TokenKind::AgentTicket)
            );
            let (ct, at) = (
                ct.map_err(|e| Failure::provider(&e))?,
                at.map_err(|e| Failure::provider(&e))?,
            );
            let c = Signed::new(&ct, &url, now, jsconfig::nonce());
            let g = Signed::new(&at, &url, now, jsconfig::nonce());
            jsconfig::wecom_payload(corp_id, agent_id, &c, &g)
        }
        Credentials::WechatMp { app_id, .. } => {
            let ticket = provider
                .token(app, TokenKind::OaTicket)
                .await
                .map_err(|e| Failure::provider(&e))?;
            let c = Signed::new(&ticket, &url, now, jsconfig::nonce());
            jsconfig::wechat_payload(app_id, &c)
        }
    };
    Ok(answers::json(200, &payload, &ctx.request_id))
}

/// A page says WeCom refused a payload: if it was signed with the ticket held now, that ticket
/// is replaced (compare-and-expire, one fetch), at most once a minute per app and kind.
async fn replace_stale_ticket(
    provider: &Provider,
    app: &App,
    corp: Option<&crate::suite::Corp>,
    report: &StaleReport,
    url: &str,
    request_id: &str,
) {
    let kind = match (report.kind, &app.credentials) {
        (PayloadKind::Config, Credentials::Wecom { .. }) => TokenKind::CorpTicket,
        (PayloadKind::Config, Credentials::WechatMp { .. }) => TokenKind::OaTicket,
        (PayloadKind::AgentConfig, Credentials::Wecom { .. }) => TokenKind::AgentTicket,
        (PayloadKind::AgentConfig, Credentials::WechatMp { .. }) => return,
        (PayloadKind::Config, Credentials::Suite { .. }) => TokenKind::CorpTicket,
        (PayloadKind::AgentConfig, Credentials::Suite { .. }) => TokenKind::AgentTicket,
    };
    // A suite app's tickets are its corps': the session's corp's are the ones replaced.
    let current = match corp {
        Some(c) => provider.corp_token(c, kind).await,
        None => provider.token(app, kind).await,
    };
    let Ok(current) = current else {
        return;
    };
    if !report.signed_with(&current, url) {
        // Signed with a ticket already replaced, or not by us: nothing to do.
        return;
    }
    // Once a minute per app and kind for the whole cluster: the claim lives in the store.
    let claim = match corp {
        Some(c) => format!(
            "stale-report:{}:{}:{}",
            app.name,
            c.install.corp_id,
            kind.label()
        ),
        None => format!("stale-report:{}:{}", app.name, kind.label()),
    };
    let allowed = matches!(
        provider.store().claim(&claim, STALE_REPORT_INTERVAL).await,
        Ok(true)
    );
    if !allowed {
        tracing::info!(app = %app.name, kind = kind.label(), request_id, "stale ticket report held back: one a minute");
        return;
    }
    tracing::info!(app = %app.name, kind = kind.label(), request_id, "the JS-SDK refused the current ticket; replacing it");
    let replaced = match corp {
        Some(c) => provider.replace_corp_token(c, kind, &current).await,
        None => provider.replace_token(app, kind, &current).await,
    };
    if let Err(e) = replaced {
        tracing::warn!(app = %app.name, kind = kind.label(), error = %e, request_id, "ticket replacement failed");
    }
}

/// `POST {prefix}/external-contact` with `{"external_userid": "..."}`: the customer of the
/// member's chat becomes the session's current contact, and the page gets its ticket. With
/// `"renew": true` (a page renewing the ticket of the customer it is about) only the ticket:
/// another page of the session may have verified another customer since, and the session's
/// contact stays that one. A verification refused or failed (not a renewal) leaves the session
/// no current contact: the member is in a chat with a customer the gateway could not confirm,
/// and the one verified before is not that chat's.
pub async fn external_contact(
    session: &mut Session,
    ctx: &mut Ctx,
    provider: &Provider,
) -> Result<Answer, Failure> {
    let config = &ctx.config.clone();
    let q = query(session);
    let found = find_session(session, config, param(&q, "app"), provider).await;
    let (Some(found), Some(settings)) = (found, config.session.as_ref()) else {
        return Err(login_required(session, ctx, param(&q, "app")).closing());
    };
    ctx.identity = Some(found.entry.identity());
    let ContactBody {
        external_userid,
        renew,
    } = read_contact_body(session).await?;
    let member = match (&found.app.credentials, &found.entry.corp_id) {
        (Credentials::Wecom { corp_id, .. }, _) => Some(corp_id.clone()),
        (Credentials::Suite { .. }, Some(corp_id)) => Some(corp_id.clone()),
        _ => None,
    };
    let (Some(corp_id), Some(userid)) = (member, found.entry.userid.clone()) else {
        // A WeChat user, or a WeCom visitor who is not a member, follows no customers.
        return Err(Failure::new(
            Kind::NotYourContact,
            "only a member of the corp has customers",
        ));
    };
    // A service-provider app: the member's corp, as installed (its token asks).
    let installed = match crate::suite::suite_of(&found.app) {
        None => None,
        Some(_) => Some(installed_corp(provider, &found.app, &corp_id).await?),
    };
    let verified = contact::verify(
        provider,
        &found.app,
        installed.as_deref(),
        &userid,
        &external_userid,
    )
    .await;
    let failure = match verified {
        Ok(contact::Verified { contact: c, at }) => {
            let ticket = contact::issue_ticket(&settings.key, &corp_id, &userid, &c, at);
            let answer = answers::json(
                200,
                &serde_json::json!({
                    "external_userid": c.external_userid,
                    "unionid": c.unionid,
                    "name": c.name,
                    "ticket": ticket,
                    // From a remembered verification the ticket has less than its two hours.
                    "expires_in": (at + contact::TICKET_TTL_SECS).saturating_sub(now_secs()),
                }),
                &ctx.request_id,
            );
            if renew {
                return Ok(answer);
            }
            let cookie = with_contact(config, settings, found, Some(&c), at);
            return Ok(answers::with_cookies(answer, &[cookie]));
        }
        Err(e) => refused(e, &userid, &ctx.request_id),
    };
    if renew || found.entry.contact.is_none() {
        return Err(failure);
    }
    let cookie = with_contact(config, settings, found, None, 0);
    Err(failure.with_cookies([cookie]))
}

/// What a verification that did not succeed answers.
fn refused(e: ContactError, userid: &str, request_id: &str) -> Failure {
    match e {
        ContactError::NotYourContact => {
            tracing::info!(userid = %userid, request_id = %request_id, "external contact refused: not this member's");
            Failure::new(Kind::NotYourContact, "this customer is not one of yours")
        }
        ContactError::TooMany => Failure::new(
            Kind::TooManyRequests,
            "too many customers asked about this minute: wait a minute and try again",
        ),
        ContactError::Provider(e) => {
            tracing::warn!(error = %e, request_id = %request_id, "externalcontact/get failed");
            Failure::provider(&e)
        }
        e @ ContactError::Unusable(_) => {
            tracing::warn!(error = %e, request_id = %request_id, "externalcontact/get answer refused");
            Failure::new(
                Kind::ProviderFailed,
                "WeCom's answer about this customer cannot be used",
            )
        }
    }
}

/// The session cookie with `c` (or none) as the current contact of the found session.
fn with_contact(
    config: &Config,
    settings: &SessionSettings,
    found: Found,
    c: Option<&contact::ExternalContact>,
    verified_at: u64,
) -> String {
    let mut entry = found.entry;
    entry.contact = c.map(|c| CurrentContact {
        external_userid: c.external_userid.clone(),
        unionid: c.unionid.clone(),
        at: verified_at,
    });
    let entries = session::replace(found.entries, entry);
    session::set_cookie(settings, entries, config.server.https())
}

#[derive(serde::Deserialize)]
struct ContactBody {
    external_userid: String,
    /// The page renews the ticket of the customer it is about.
    #[serde(default)]
    renew: bool,
}

/// The body, or why it is refused.
async fn read_contact_body(session: &mut Session) -> Result<ContactBody, Failure> {
    let b: ContactBody = request::json_body(
        session,
        MAX_CONTACT_BODY,
        "the body must be {\"external_userid\": \"...\"} (and \"renew\": true to renew a ticket)",
    )
    .await?;
    if !contact::plausible_external_userid(&b.external_userid) {
        return Err(Failure::new(
            Kind::BadRequest,
            "external_userid is not a WeCom external userid",
        ));
    }
    Ok(b)
}

/// `GET {prefix}/sdk.js[?app=NAME]`: the helper with its settings; the app is the named one,
/// else the session's WeCom app, else the first WeCom app configured.
pub async fn sdk_js(session: &Session, ctx: &Ctx, provider: &Provider) -> Answer {
    let config = &ctx.config;
    let q = query(session);
    let mut app = param(&q, "app").and_then(|n| config.apps.get(n).cloned());
    if app.is_none() {
        app = find_session(session, config, None, provider)
            .await
            .map(|f| f.app);
    }
    if app.is_none() {
        app = config
            .apps
            .values()
            .find(|a| matches!(a.credentials, Credentials::Wecom { .. }))
            .cloned();
    }
    let js = match &app {
        Some(app) => render_sdk(&config.server.prefix, Some(&app.name), &app.jssdk_urls),
        None => render_sdk(&config.server.prefix, None, &[]),
    };
    answers::script(js, &ctx.request_id)
}

/// The install of a service-provider app in `corp_id`: a corp without it is refused.
async fn installed_corp(
    provider: &Provider,
    app: &App,
    corp_id: &str,
) -> Result<Arc<crate::suite::Corp>, Failure> {
    provider
        .installs()
        .corp(&**provider.store(), app, corp_id)
        .await
        .map_err(|e| Failure::new(Kind::StoreUnavailable, e.to_string()))?
        .ok_or_else(|| {
            Failure::new(
                Kind::NotInstalled,
                "your organisation has not installed this app",
            )
        })
}
