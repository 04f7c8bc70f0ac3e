//! Step 6 of the pipeline: a protected request needs a session of the protecting app. Without
//! one it fails with `login_required`, whose link comes back to this page: for a navigation the
//! page itself (the answer's script adds the `#fragment`, which never reaches a server), for a
//! script's call the page that made it, when it is ours.

use std::sync::Arc;

use pingora::proxy::Session;

use super::{request, Ctx};
use crate::answers::{Failure, Form, Kind, LoginLink};
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
    let several = looked.as_ref().err().map(|s| s.newest);
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
    let Some(newest) = several else {
        return Err(failure);
    };
    // Two session cookies naming different people: neither is used, and both go, wherever
    // on the path and the domain the other may have been set, so that the sign-in that
    // follows is the only one. Right after a sign-in (the other could not be removed: set
    // where no answer of this host reaches) the page says so instead of signing in again,
    // which would never end.
    if SEVERAL.due((), crate::clock::clock().now_ms()) {
        tracing::warn!(
            request_id = %ctx.request_id,
            app = %app.name,
            "two session cookies naming different people came with a request: neither is \
             used, both are removed (one may have been set by another host or port of this \
             domain; logged once a minute)"
        );
    }
    let path = String::from_utf8_lossy(session.req_header().raw_path());
    let removals = conflict_removals(&ctx.config, &path);
    if just_signed_in(newest) {
        return Err(session_conflict().with_cookies(removals));
    }
    Err(failure.with_cookies(removals))
}

/// When the request's session cookies name two people for `app` (lifetimes checked, not
/// revocations): the newer one's issue time. For the forward-auth sign-in page, which reads
/// the cookies nginx's check could not answer with removals.
pub fn conflict(session: &Session, config: &Config, app: &App) -> Option<u64> {
    let settings = config.session.as_ref()?;
    let now = now_secs();
    let values = request::cookie_values(session, &settings.cookie_name);
    let session::Opened::Several(values) = session::opened(settings, values) else {
        return None;
    };
    let live = values
        .into_iter()
        .filter_map(|entries| {
            let at = entries
                .iter()
                .position(|e| e.current(settings, now) && e.belongs_to(app))?;
            Some((entries, at))
        })
        .collect();
    session::choose(live).err()
}

/// Whether a conflict's newer session was issued so lately that signing in again cannot help.
pub fn just_signed_in(newest: u64) -> bool {
    now_secs().saturating_sub(newest) < JUST_SIGNED_IN
}

/// A sign-in this recent, and still two people's cookies: the other cookie outlived the
/// removals; another sign-in would bring the same.
const JUST_SIGNED_IN: u64 = 60;

/// The removals of every session cookie a request for `path` may carry.
pub fn conflict_removals(config: &Config, path: &str) -> Vec<String> {
    let host = config.server.public_url.host_str().unwrap_or_default();
    config
        .session
        .as_ref()
        .map(|s| session::clear_cookies_for(s, config.server.https(), host, path))
        .unwrap_or_default()
}

/// Two people's session cookies that removals did not end: said, not signed in again.
pub fn session_conflict() -> Failure {
    Failure::new(
        Kind::SessionConflict,
        "this browser holds the session cookies of two different people (one set by another \
         site of this domain, or another port of this host); clear this site's cookies, then \
         open the page again",
    )
}

/// When two session cookies were last logged.
static SEVERAL: std::sync::LazyLock<wecom_api::Throttle<()>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// Two session cookies of one app naming different people came with the request
/// ([`session::choose`]); the newer was issued at `newest` (Unix s).
struct Several {
    newest: u64,
}

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
            session::Opened::Several(values) => {
                // Each cookie's live session of this app: one, or one person's, is meant.
                let mut live = Vec::new();
                for entries in values {
                    let mut at = None;
                    for (i, e) in entries.iter().enumerate() {
                        if e.current(settings, now)
                            && e.belongs_to(app)
                            && !revocation::is_revoked(store, e).await
                        {
                            at = Some(i);
                            break;
                        }
                    }
                    live.extend(at.map(|i| (entries, i)));
                }
                return match session::choose(live) {
                    Ok(chosen) => Ok(chosen.map(|(entries, at)| Found {
                        entries,
                        at,
                        remembered: true,
                    })),
                    Err(newest) => Err(Several { newest }),
                };
            }
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
