//! `{prefix}/login`, `/oauth/callback`, `/logout`, `/whoami` (SPEC sections 6 and 8): thin
//! handlers over the `login` module.

use std::sync::Arc;
use std::time::Duration;

use cookie::{Cookie, SameSite};
use pingora::proxy::Session;

use super::request::{self, param, query};
use super::Ctx;
use crate::answers::{self, Answer, Failure, Kind, LoginLink};
use crate::config::model::{App, Config, IdentityField, ServerSettings, SessionSettings};
use crate::identity::Identity;
use crate::login::authorize;
use crate::login::bearer;
use crate::login::exchange::{self, LoginError};
use crate::login::session::{self, SessionEntry};
use crate::login::state::{self, LoginState, LOGIN_TTL_SECS, MAX_PENDING};
use crate::login::{callback_limit, now_secs, revocation, seal, ReturnUrl};
use crate::metrics::{labels, METRICS};
use crate::provider::Provider;

/// `wgw_logins_total`: the app label is a configured app's name or `other`.
fn count(config: &Config, app: &str, result: &str) {
    METRICS
        .logins
        .with_label_values(&[labels::app(&config.apps, app), result])
        .inc();
}

fn not_configured() -> Failure {
    Failure::new(Kind::NotFound, "login is not configured")
}

/// Where a fresh sign-in with `app` starts; with no app named, the only one, else the first
/// WeCom app the file writes, else the first app it writes (not the first by name: another
/// corp's app named `a...` would take a visitor of the first one's corp).
pub(super) fn login_link(config: &Config, app: Option<&str>, return_to: &str) -> LoginLink {
    let in_order = || config.app_order.iter().filter_map(|n| config.apps.get(n));
    let app = app
        .map(str::to_owned)
        .or_else(|| {
            in_order()
                .find(|a| {
                    matches!(
                        a.credentials,
                        crate::config::model::Credentials::Wecom { .. }
                    )
                })
                .or_else(|| in_order().next())
                .map(|a| a.name.clone())
        })
        .unwrap_or_default();
    LoginLink {
        prefix: config.server.prefix.clone(),
        app,
        return_to: return_to.to_owned(),
    }
}

fn login_cookie(config: &Config, name: &str, value: String) -> Cookie<'static> {
    // `__Host-` (behind https) takes the whole site.
    let path = if config.server.https() {
        "/".to_owned()
    } else {
        format!("{}/", config.server.prefix)
    };
    Cookie::build((name.to_owned(), value))
        .path(path)
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
    /// A 代开发 app's corp (its id, the app's agent id there).
    corp: Option<(&'a str, u64)>,
}

/// Starts a login at the provider: a new state, its sealed cookie, a 302. A long `return_to`
/// is kept in the store under the state (the cookie stays small); if the store does not take
/// it, the cookie carries it, as a short one.
async fn start(
    config: &Config,
    settings: &SessionSettings,
    provider: &Provider,
    client: Option<std::net::IpAddr>,
    Start {
        app,
        return_to,
        flow,
        restarted,
        corp,
    }: Start<'_>,
    mut cookies: Vec<String>,
    request_id: &str,
) -> Answer {
    let st = state::generate_state();
    let relative = return_to.relative();
    let kept = relative.len() > state::RETURN_IN_COOKIE_MAX
        && callback_limit::allow_kept_return(client)
        // Durable: a write the shared store (Redis) did not take would be found neither by
        // another instance nor by this one once it answers again; the cookie carries it then.
        && provider
            .store()
            .put_durable_fact(
                &state::return_key(&st),
                relative,
                Duration::from_secs(LOGIN_TTL_SECS),
            )
            .await
            .is_ok();
    let login = LoginState {
        state: st.clone(),
        app: app.name.clone(),
        return_to: if kept {
            String::new()
        } else {
            relative.to_owned()
        },
        issued_at: now_secs(),
        restarted,
        flow,
        corp: corp.map(|(c, _)| c.to_owned()),
        return_kept: kept,
    };
    let name = state::cookie_name(&st, config.server.https());
    let value = seal::seal(&settings.key, &name, &login);
    cookies.push(login_cookie(config, &name, value).to_string());
    let redirect_uri = authorize::callback_url(&config.server.public_url, &config.server.prefix);
    let location = match corp {
        Some((corp_id, agent_id)) => {
            authorize::custom_url(app, corp_id, agent_id, flow, &redirect_uri, &st)
        }
        None => authorize::provider_url(app, flow, &redirect_uri, &st),
    };
    answers::redirect(&location, &cookies, request_id)
}

/// Removals for the oldest pending logins, so that with the new one (of about `incoming`
/// bytes) there are at most [`MAX_PENDING`] and their `Cookie` bytes stay within
/// [`PENDING_BYTES`]: the callback carries them all in one `Cookie` line, which nginx's 8 KiB
/// line bound (`large_client_header_buffers`) also bounds, so a few long `return_to`s (a
/// crafted link, opened three times) must not make the sign-in itself a 400.
fn prune_pending(
    config: &Config,
    settings: &SessionSettings,
    jar: &[(String, String)],
    incoming: usize,
) -> Vec<String> {
    let mut pending: Vec<(u64, &str, usize)> = jar
        .iter()
        .filter(|(n, _)| n.starts_with(state::cookie_prefix(config.server.https())))
        .map(|(n, v)| {
            let issued = seal::open::<LoginState>(&settings.key, n, v).map_or(0, |s| s.issued_at);
            (issued, n.as_str(), n.len() + v.len() + 2)
        })
        .collect();
    pending.sort();
    let mut count = pending.len() + 1;
    let mut bytes = incoming + pending.iter().map(|p| p.2).sum::<usize>();
    let mut removals = Vec::new();
    for (_, name, size) in pending {
        if count <= MAX_PENDING && bytes <= pending_bytes(config.server.https()) {
            break;
        }
        removals.push(login_cookie_removal(config, name));
        count -= 1;
        bytes -= size;
    }
    removals
}

/// The `Cookie` bytes pending logins may take together (the new one included).
const PENDING_BYTES: usize = 4096;

/// Behind https the login cookies are `__Host-` for the whole site: every page carries them
/// for ten minutes, beside the CRM's own cookies in one line nginx bounds at 8 KiB, so they
/// take less of it.
const PENDING_BYTES_SITE_WIDE: usize = 1536;

fn pending_bytes(https: bool) -> usize {
    if https {
        PENDING_BYTES_SITE_WIDE
    } else {
        PENDING_BYTES
    }
}

/// About how many `Cookie` bytes a login cookie for `return_to` takes: its name, and the
/// sealed state (nonce and tag around the JSON, in base64).
fn login_cookie_len(app: &App, return_to: &str) -> usize {
    let json = 160 + app.name.len() + return_to.len();
    state::cookie_prefix(true).len() + 32 + 2 + (json + 28).div_ceil(3) * 4
}

/// A 代开发 app signs in within one corp, named by `corp=` (the corp's app homepage carries
/// it): that corp must have installed the app. `None` for every other app.
async fn custom_corp(
    app: &App,
    corp: Option<&str>,
    provider: &Provider,
) -> Result<Option<Arc<crate::suite::Corp>>, Failure> {
    if !matches!(
        app.credentials,
        crate::config::model::Credentials::Suite { custom: true, .. }
    ) {
        return Ok(None);
    }
    let corp = corp.filter(|c| crate::domain::is_plain_id(c)).ok_or_else(|| {
        Failure::new(
            Kind::BadRequest,
            "open this app from your organisation's WeCom workbench (its sign-in link names the corp: corp=CORP_ID)",
        )
    })?;
    let corp = provider
        .installs()
        .corp(&**provider.store(), app, corp)
        .await
        .map_err(|e| Failure::new(Kind::StoreUnavailable, e.to_string()))?
        .ok_or_else(|| {
            Failure::new(
                Kind::NotInstalled,
                "this organisation has not installed this app",
            )
        })?;
    // Its agent id names the app at WeCom's authorize page: 0 (not read yet) is refused there.
    if corp.install.agent().is_none() {
        return Err(Failure::new(
            Kind::SuiteNotReady,
            "the app's install in this organisation is not complete yet: try again in a minute",
        ));
    }
    Ok(Some(corp))
}

pub async fn login(session: &Session, ctx: &Ctx, provider: &Provider) -> Result<Answer, Failure> {
    let config = &ctx.config;
    let q = query(session);
    let settings = config.session.as_ref().ok_or_else(not_configured)?;
    let app = pick_app(config, param(&q, "app"))
        .ok_or_else(|| Failure::new(Kind::BadRequest, "unknown or missing app"))?;
    if !app.web_login {
        return Err(Failure::new(
            Kind::BadRequest,
            "this app signs in from its mini-program only",
        ));
    }
    let return_to = ReturnUrl::for_site(param(&q, "return_to").unwrap_or("/"), &config.server);
    let ua = request::header(session, http::header::USER_AGENT).unwrap_or("");
    let flow = authorize::choose_flow(&app, ua);
    let corp = custom_corp(&app, param(&q, "corp"), provider).await?;
    let carried = Some(return_to.relative()).filter(|r| r.len() <= state::RETURN_IN_COOKIE_MAX);
    let incoming = login_cookie_len(&app, carried.unwrap_or(""));
    let removals = prune_pending(config, settings, &request::cookies(session), incoming);
    Ok(start(
        config,
        settings,
        provider,
        ctx.remote_ip,
        Start {
            app: &app,
            return_to: &return_to,
            flow,
            restarted: false,
            corp: corp
                .as_deref()
                .map(|c| (c.install.corp_id.as_str(), c.install.agent_id)),
        },
        removals,
        &ctx.request_id,
    )
    .await)
}

pub async fn callback(
    session: &Session,
    ctx: &Ctx,
    provider: &Provider,
) -> Result<Answer, Failure> {
    let config = &ctx.config;
    let q = query(session);
    let settings = config.session.as_ref().ok_or_else(not_configured)?;
    let state_param = param(&q, "state").unwrap_or("");
    let jar = request::cookies(session);
    // The cookie is found by the state the provider echoes: no cookie, or a cookie sealed for
    // another state, and the callback was not started by this browser.
    let login = state::plausible_state(state_param)
        .then(|| state::cookie_name(state_param, config.server.https()))
        .and_then(|name| {
            let value = &jar.iter().find(|(n, _)| *n == name)?.1;
            seal::open::<LoginState>(&settings.key, &name, value)
        })
        .filter(|l| l.state == state_param && l.fresh(now_secs()));
    let Some(login) = login else {
        count(config, labels::OTHER, "bad_state");
        let f = Failure::new(
            Kind::LoginState,
            "the sign-in did not start in this browser, or took longer than 10 minutes",
        );
        return Err(if state::plausible_state(state_param) {
            f.with_cookies([login_cookie_removal(
                config,
                &state::cookie_name(state_param, config.server.https()),
            )])
        } else {
            f
        });
    };
    let cookie_removal = login_cookie_removal(
        config,
        &state::cookie_name(&login.state, config.server.https()),
    );
    // No code: the person declined consent, or the URL was cut. It costs the provider nothing:
    // not counted against the address (a client looping `/login` and a bare callback would
    // block every sign-in behind it), nor is the state claimed (a durable write).
    let code = param(&q, "code").unwrap_or("");
    if code.is_empty() || code.len() > 512 {
        count(config, &login.app, "no_code");
        let return_rel = match login.return_kept {
            false => login.return_to.clone(),
            true => provider
                .store()
                .get_fact(&state::return_key(&login.state))
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "/".to_owned()),
        };
        let retry = LoginLink {
            prefix: config.server.prefix.clone(),
            app: login.app.clone(),
            return_to: ReturnUrl::for_site(&return_rel, &config.server)
                .relative()
                .to_owned(),
        };
        return Err(Failure::new(
            Kind::LoginDeclined,
            "the sign-in was not completed (declined, or the link was cut)",
        )
        .with_login(retry)
        .with_cookies([cookie_removal]));
    }
    // Only a callback with a state of this browser's and a code counts against its address:
    // one without costs nothing, and counting it would let anyone block every sign-in behind
    // the same address with bare callbacks. It is counted before the state is claimed: each
    // claim is a durable write, and a client looping `/login` and its callback must not make
    // thousands a second.
    if !callback_limit::allow(ctx.remote_ip) {
        count(config, &login.app, "rate_limited");
        return Err(Failure::new(
            Kind::TooManyRequests,
            "too many sign-ins from this address: wait a minute and try again",
        )
        .with_cookies([cookie_removal]));
    }
    // A state is used once, cluster-wide: replayed with made-up codes, each try would cost a
    // provider call for as long as the login cookie lives.
    let claim = format!("login-state:{}", login.state);
    let first = provider
        .store()
        .claim(&claim, Duration::from_secs(LOGIN_TTL_SECS))
        .await;
    match first {
        Ok(true) => {}
        Ok(false) => {
            count(config, &login.app, "state_reused");
            return Err(Failure::new(
                Kind::LoginState,
                "this sign-in link was already used: start again",
            )
            .with_cookies([cookie_removal]));
        }
        // Not a replay: the store takes no writes (a full disk). Said as what it is, and
        // counted apart, or every sign-in would read as a replay to the person and the
        // operator alike.
        Err(e) => {
            count(config, &login.app, "store_error");
            tracing::warn!(app = %login.app, error = %e, request_id = %ctx.request_id, "sign-in not completed: the store did not take the state");
            return Err(Failure::new(
                Kind::StoreUnavailable,
                "the sign-in cannot be kept right now: try again in a moment",
            )
            .with_cookies([cookie_removal]));
        }
    }
    // A long `return_to` kept in the store at the start (gone or unreadable: the site's root,
    // as for any return_to that does not hold). Validated again either way.
    let kept;
    let return_rel = match login.return_kept {
        false => login.return_to.as_str(),
        true => {
            let key = state::return_key(&login.state);
            kept = provider
                .store()
                .get_fact(&key)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| "/".to_owned());
            // Read once: a state comes back once (its cookie goes with this answer), and a
            // route naming a customer is not left in the store for the rest of its ten
            // minutes. A failure leaves it to expire.
            let _ = provider
                .store()
                .put_durable_fact(&key, "", std::time::Duration::ZERO)
                .await;
            kept.as_str()
        }
    };
    let return_to = ReturnUrl::for_site(return_rel, &config.server);
    let retry = LoginLink {
        prefix: config.server.prefix.clone(),
        app: login.app.clone(),
        return_to: return_to.relative().to_owned(),
    };
    let Some(app) = config.apps.get(&login.app).cloned() else {
        count(config, &login.app, "bad_state");
        return Err(
            Failure::new(Kind::LoginState, "the app of this sign-in is gone")
                .with_cookies([cookie_removal]),
        );
    };

    let corp = custom_corp(&app, login.corp.as_deref(), provider)
        .await
        .map_err(|f| f.with_cookies([cookie_removal.clone()]))?;
    match exchange::exchange(provider, &app, corp.as_deref(), code).await {
        Ok(identity) => {
            count(config, &app.name, "ok");
            let now = now_secs();
            let entries = session::read(settings, &jar, now);
            let previous = session::for_app(&entries, &app);
            let entry = session::renew(
                previous,
                SessionEntry::new(&app, &identity, now, settings.ttl.as_secs()),
            );
            // The session replaced ends, as at a logout (the new one has its own id): a
            // request of the page still carrying it (an answer arriving after this one, with
            // its own Set-Cookie) would otherwise bring it back, and with it the previous
            // member when someone else signed in on this device.
            if let Some(p) = previous {
                let _ = revocation::end_session(provider.store(), p, now).await;
            }
            // So do, inside the WeCom client, the corp's other apps' sessions naming the
            // member who was here before: they sign in again, as whoever WeCom names now. (A
            // browser's QR sign-ins are each a choice of who signs in, as SPEC 17 leaves them.)
            let ua = request::header(session, http::header::USER_AGENT).unwrap_or("");
            let gone: Vec<String> = if authorize::in_wecom_client(ua) {
                session::displaced(&entries, &entry)
                    .map(|e| e.app.clone())
                    .collect()
            } else {
                Vec::new()
            };
            for e in entries.iter().filter(|e| gone.contains(&e.app)) {
                let _ = revocation::end_session(provider.store(), e, now).await;
            }
            if !gone.is_empty() {
                tracing::info!(app = %app.name, ended = ?gone, request_id = %ctx.request_id, "another member signed in on this device: the corp's other sessions ended");
            }
            let entries: Vec<SessionEntry> = entries
                .into_iter()
                .filter(|e| !gone.contains(&e.app))
                .collect();
            let entries = session::replace(entries, entry);
            let cookies = [
                session::set_cookie(settings, entries, config.server.https()),
                cookie_removal,
            ];
            let target = return_to.with_query(&return_params(&app, &identity));
            Ok(answers::redirect(
                &target.after_sign_in(),
                &cookies,
                &ctx.request_id,
            ))
        }
        Err(LoginError::CodeInvalid(errcode)) if !login.restarted => {
            // A used or expired code (double redirect, back button, refresh): start over once.
            count(config, &app.name, "code_invalid");
            tracing::info!(app = %app.name, errcode, request_id = %ctx.request_id, "login code refused; restarting once");
            Ok(start(
                config,
                settings,
                provider,
                ctx.remote_ip,
                Start {
                    app: &app,
                    return_to: &return_to,
                    flow: login.flow,
                    restarted: true,
                    corp: corp
                        .as_deref()
                        .map(|c| (c.install.corp_id.as_str(), c.install.agent_id)),
                },
                vec![cookie_removal],
                &ctx.request_id,
            )
            .await)
        }
        Err(LoginError::SnapshotUser) => {
            count(config, &app.name, "snapshot_user");
            Err(Failure::new(
                Kind::SnapshotUser,
                "This is WeChat's preview of the page (朋友圈快照页). Tap “使用完整服务” at the \
                 bottom to open the full page and sign in.",
            )
            .with_cookies([cookie_removal]))
        }
        Err(LoginError::NotInstalled) => {
            count(config, &app.name, "not_installed");
            tracing::info!(app = %app.name, request_id = %ctx.request_id, "login refused: the member's corp has not installed the app");
            Err(Failure::new(
                Kind::NotInstalled,
                "Your organisation has not installed this app (or has removed it). Ask an administrator to install it from the WeCom app market, then sign in again.",
            )
            .with_cookies([cookie_removal]))
        }
        Err(LoginError::Provider(
            ref p @ crate::provider::ApiError::Api { errcode: 41023, .. },
        )) => {
            count(config, &app.name, "suite_not_ready");
            Err(Failure::provider(p).with_cookies([cookie_removal]))
        }
        Err(e) => {
            count(config, &app.name, e.result());
            tracing::warn!(app = %app.name, error = %e, request_id = %ctx.request_id, "login failed");
            let detail = match &e {
                LoginError::Provider(p)
                    if matches!(p.root(), crate::provider::ApiError::Timeout) =>
                {
                    "the sign-in service did not answer in time"
                }
                LoginError::CodeInvalid(_) => "the sign-in code was refused twice",
                LoginError::NotPlain(_) | LoginError::NoSubject => {
                    "the sign-in service returned an identity that cannot be used"
                }
                LoginError::Provider(_) => "the sign-in service refused the request",
                LoginError::SnapshotUser => "a snapshot page cannot sign in",
                LoginError::NotInstalled => "the organisation has not installed the app",
                LoginError::Unsupported(what) => what,
            };
            Err(Failure::new(Kind::LoginFailed, detail)
                .with_login(retry)
                .with_cookies([cookie_removal]))
        }
    }
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

/// Whether a browser says, or lets it be seen, that this request comes from another site: by
/// `Sec-Fetch-Site` (`cross-site`, or `same-site`: a sibling subdomain is another site's
/// pages); where it sends none (any browser on a plain `http://` site, older Safari, some
/// WebViews), by an `Origin` (`null` included) or a `Referer` of another origin than the
/// site's, and a page navigation that tells neither (a link with `rel=noreferrer`) counts as
/// elsewhere too. The site's origin is `public_url`'s, or with `trust_host_header` also the
/// request's `Host` (a cross-site request cannot choose it).
fn from_elsewhere(session: &Session, server: &ServerSettings) -> bool {
    match request::header(session, "sec-fetch-site") {
        Some(site) => matches!(site, "cross-site" | "same-site"),
        None => {
            let host = request::header(session, "host").filter(|_| server.trust_host_header);
            let other = |url: &str| {
                url::Url::parse(url).map_or(true, |u| {
                    let own = u.origin().ascii_serialization() == server.public_origin;
                    let named = host.is_some_and(|h| {
                        u.host_str().is_some_and(|uh| {
                            let authority = match u.port() {
                                Some(p) => format!("{uh}:{p}"),
                                None => uh.to_owned(),
                            };
                            authority.eq_ignore_ascii_case(h)
                        })
                    });
                    !(own || named)
                })
            };
            match (
                request::header(session, "origin"),
                request::header(session, "referer"),
            ) {
                (Some(origin), _) => origin == "null" || other(origin),
                (None, Some(referer)) => other(referer),
                // A client that is no browser (a mini-program, a script) says nothing either,
                // and asks for no page.
                (None, None) => {
                    request::header(session, "accept").is_some_and(|a| a.contains("text/html"))
                }
            }
        }
    }
}

pub async fn logout(session: &Session, ctx: &Ctx, provider: &Provider) -> Result<Answer, Failure> {
    let config = &ctx.config;
    // A visit from another site (a link, a redirect, a frame, a form posted there) signs
    // nobody out by itself: such a visit gets a page whose button signs out. (A cross-site POST
    // carries no `Lax` session cookie, but the answer's removal of it would still be applied.)
    // The site's own links and forms, and clients that do not say, sign out at once.
    // A request with a bearer token is a mini-program's or a script's, which a browser never
    // sends on its own from another site (and a mini-program's `wx.request` always says
    // `Referer: https://servicewechat.com/...`).
    if request::bearer(session).is_none() && from_elsewhere(session, &config.server) {
        // The path as read (normalised: a `//host/../` written would make the form's action
        // another host's), with the query as sent.
        let uri = &session.req_header().uri;
        let path = nginx_compat::uri::normalize_path(uri.path().as_bytes()).unwrap_or_default();
        let mut asked = String::from_utf8_lossy(&path).into_owned();
        while asked.starts_with("//") {
            asked.remove(0);
        }
        if let Some(q) = uri.query() {
            asked.push('?');
            asked.push_str(q);
        }
        return Ok(answers::confirm_logout(&asked, &ctx.request_id));
    }
    let q = query(session);
    // The cookie is removed from this browser, and the sessions it holds end for any copy of
    // it too (SPEC section 21: revocations live in the store).
    let mut kept = true;
    let mut by_token = false;
    if let Some(settings) = config.session.as_ref() {
        let now = now_secs();
        // Every value that opens: a second session cookie (another's, planted with a longer
        // `Path`) is no reason to leave the browser's own one open.
        let values = request::cookie_values(session, &settings.cookie_name);
        for entry in session::read_every(settings, values, now) {
            kept &= revocation::end_session(provider.store(), &entry, now)
                .await
                .is_ok();
        }
        // A mini-program signs out by sending its token here: it ends like a cookie session.
        let token = request::bearer(session).and_then(|t| bearer::open(settings, t, now));
        if let Some(entry) = token {
            by_token = true;
            kept &= revocation::end_session(provider.store(), &entry, now)
                .await
                .is_ok();
        }
    }
    // Logout may send on to a new sign-in (`{prefix}/login?...`): that is no loop.
    let target = ReturnUrl::parse(
        param(&q, "return_to").unwrap_or("/"),
        &config.server.public_url,
    );
    let cookies: Vec<String> = config
        .session
        .as_ref()
        .map(|s| vec![session::clear_cookie(s, config.server.https())])
        .unwrap_or_default();
    if !kept {
        // This browser's cookie goes all the same; the user is told that a copy of it (another
        // device, a stolen one) may still open until signing out works.
        return Err(Failure::new(
            Kind::StoreUnavailable,
            "signed out in this browser, but the sign-out could not be recorded for other copies of the session: try again",
        )
        .with_cookies(cookies));
    }
    // A mini-program's `wx.request` has no page to go back to: it is told in JSON.
    if by_token {
        let answer = answers::json(
            200,
            &serde_json::json!({"signed_out": true, "request_id": ctx.request_id}),
            &ctx.request_id,
        );
        return Ok(answers::with_cookies(answer, &cookies));
    }
    Ok(answers::redirect(
        &target.absolute(),
        &cookies,
        &ctx.request_id,
    ))
}

pub async fn whoami(
    session: &Session,
    ctx: &mut Ctx,
    provider: &Provider,
) -> Result<Answer, Failure> {
    let config = &ctx.config.clone();
    let q = query(session);
    if param(&q, "app").is_some_and(|a| !config.apps.contains_key(a)) {
        // The page's typo, as for the JS-SDK endpoints: not a sign-in with another app.
        return Err(Failure::new(Kind::BadRequest, "unknown app"));
    }
    let entries = super::login_gate::sessions(session, config, provider.store()).await;
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
    let Some(e) = found else {
        let back = super::login_gate::referer_path(config, session);
        return Err(Failure::login_required(login_link(
            config,
            param(&q, "app"),
            &back,
        )));
    };
    ctx.identity = Some(e.identity());
    Ok(answers::json(
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
    ))
}
