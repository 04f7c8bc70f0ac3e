//! Step 6 of the pipeline: a protected request needs a session of the protecting app. Without
//! one it fails with `login_required`, whose link comes back to this page: for a navigation the
//! page itself (the answer's script adds the `#fragment`, which never reaches a server), for a
//! script's call the page that made it, when it is ours.

use std::sync::Arc;

use pingora::proxy::Session;

use super::{request, Ctx};
use crate::answers::{Failure, Form, LoginLink};
use crate::config::model::{App, Config};
use crate::login::bearer;
use crate::login::now_secs;
use crate::login::revocation;
use crate::login::session::{self, SessionEntry};
use wecom_api::Store;

pub async fn check(
    session: &Session,
    ctx: &mut Ctx,
    app: &Arc<App>,
    store: &Arc<dyn Store>,
) -> Result<(), Failure> {
    let form = ctx.form;
    let looked = session_entry(session, &ctx.config, app, store).await;
    let several = looked.is_err();
    if let Ok(Some(found)) = looked {
        let entry = &found.entries[found.at];
        // Only an app that signs in again reads the client.
        let ua = app
            .reauth_after
            .and_then(|_| request::header(session, http::header::USER_AGENT));
        let navigation = form == Form::Navigation;
        // SPEC section 17: a page of the WeCom client signs in again once the session is
        // older than `reauth_after`; the same interstitial keeps the `#fragment`.
        if !crate::access::reauth::due(app, entry.iat, now_secs(), navigation, ua) {
            ctx.session_contact = entry.contact.clone();
            ctx.identity = Some(entry.identity());
            if found.remembered {
                ctx.session = Some((found.entries.clone(), found.at));
            }
            return Ok(());
        }
    }
    let return_to = match form {
        Form::Navigation => String::from_utf8_lossy(session.req_header().raw_path()).into_owned(),
        _ => referer_path(&ctx.config, session),
    };
    let failure = Failure::login_required(LoginLink {
        prefix: ctx.config.server.prefix.clone(),
        app: app.name.clone(),
        return_to,
    });
    if !several {
        return Err(failure);
    }
    // Two session cookies that open: neither is used, and both go, wherever on the path
    // the other may have been set, so that the sign-in that follows is the only one.
    if SEVERAL.due((), crate::clock::clock().now_ms()) {
        tracing::warn!(
            request_id = %ctx.request_id,
            app = %app.name,
            "two different session cookies came with a request: neither is used, both are \
             removed (one may have been set by another host or port of this domain; logged \
             once a minute)"
        );
    }
    let settings = ctx.config.session.as_ref();
    let path = String::from_utf8_lossy(session.req_header().raw_path());
    let removals = settings
        .map(|s| session::clear_cookies_for(s, ctx.config.server.https(), &path))
        .unwrap_or_default();
    Err(failure.with_cookies(removals))
}

/// When two session cookies were last logged.
static SEVERAL: std::sync::LazyLock<wecom_api::Throttle<()>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// Two different session cookies that open came with the request ([`session::Opened`]).
struct Several;

/// The live sessions of the request: those of its cookie, or, when it carries a mini-program's
/// bearer token of ours, that token's alone (`login::bearer` says why the cookie is then
/// ignored); sealed by us, within the running `ttl`, and not ended in the store (`logout`, a
/// revoked member).
pub async fn sessions(
    session: &Session,
    config: &Config,
    store: &Arc<dyn Store>,
) -> Vec<SessionEntry> {
    let Some(settings) = config.session.as_ref() else {
        return Vec::new();
    };
    let entries = match request::bearer(session) {
        Some(token) => bearer::open(settings, token, now_secs())
            .into_iter()
            .collect(),
        None => session::read_values(
            settings,
            request::cookie_values(session, &settings.cookie_name),
            now_secs(),
        ),
    };
    if entries.is_empty() {
        return entries;
    }
    revocation::live(store, entries).await
}

/// The session of `app` in this request, if any: the same choice as [`sessions`] makes, but
/// only that app's session is checked for revocation, and nothing is copied out of the memory
/// of opened cookies (the hot path of every protected request).
async fn session_entry(
    session: &Session,
    config: &Config,
    app: &App,
    store: &Arc<dyn Store>,
) -> Result<Option<Found>, Several> {
    let Some(settings) = config.session.as_ref() else {
        return Ok(None);
    };
    let now = now_secs();
    let (entries, remembered): (Arc<[SessionEntry]>, bool) = match request::bearer(session) {
        Some(token) => match bearer::open(settings, token, now) {
            Some(entry) => (Arc::new([entry]), false),
            None => return Ok(None),
        },
        None => match session::opened(
            settings,
            request::cookie_values(session, &settings.cookie_name),
        ) {
            session::Opened::One(entries) => (entries, true),
            session::Opened::Nothing => return Ok(None),
            session::Opened::Several => return Err(Several),
        },
    };
    let mut found = None;
    for (at, e) in entries.iter().enumerate() {
        if e.current(settings, now) && e.belongs_to(app) && !revocation::is_revoked(store, e).await
        {
            found = Some(at);
            break;
        }
    }
    Ok(found.map(|at| Found {
        entries,
        at,
        remembered,
    }))
}

/// A session found among those a request carries, where it was opened.
struct Found {
    entries: Arc<[SessionEntry]>,
    at: usize,
    /// Opened from the memory of opened cookies, where what is prepared for it stays for the
    /// session's next requests (a bearer token is opened anew each time).
    remembered: bool,
}

/// For a script's call the page to come back to is the one that made it, when it is ours.
pub fn referer_path(config: &Config, session: &Session) -> String {
    let origin = &config.server.public_origin;
    request::header(session, http::header::REFERER)
        .and_then(|r| r.strip_prefix(origin.as_str()))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or("/")
        .to_owned()
}
