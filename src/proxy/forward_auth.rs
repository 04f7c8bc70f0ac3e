//! The gateway beside an existing proxy (SPEC section 19): nginx's `auth_request`, ingress-nginx's
//! `auth-url`, Traefik's `ForwardAuth` and Caddy's `forward_auth` ask `{prefix}/auth` about a
//! request they are about to serve, and show `{prefix}/signin` when the answer is 401.
//!
//! The check is the proxied pipeline itself, not a copy of it: the check request becomes the
//! original one (its target, method and host), then steps 1 and 4-7 run — normalisation, the
//! location, the protected area, the session, the access rules and the contact ticket — exactly
//! as for a request the gateway proxies. Only the ending differs: `200` carries the identity
//! headers and the assertion for `auth_request_set`, instead of sending them upstream.
//!
//! Refusals are conservative where the two modes cannot mean the same thing: a path for which
//! the gateway would answer itself (a rewrite's redirect, no route) is still checked against
//! the protected area it lies in, since the front proxy will serve *something* for it; and
//! nothing about a request for another host than `public_url`'s is ever answered 200.

use bytes::Bytes;
use http::{HeaderMap, Method};
use pingora::proxy::Session;

use super::login_endpoints::login_link;
use super::request::{self, param};
use super::{assertion, normalise, Ctx, Gateway, Located};
use crate::answers::{self, Answer, Failure, Form, Kind};
use crate::login::return_url::ReturnUrl;
use crate::routing::{self, Final};

/// The request a front proxy asks about.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Original {
    /// The request-target, origin-form (`/path?query`), as the client sent it.
    pub target: Vec<u8>,
    pub method: Method,
    /// The host (and port) the client addressed.
    pub host: String,
}

/// The original request as the front proxy describes it. Each front door is read from its own
/// headers, and a description under another door's names (which the client can slip through
/// any of them) must agree with it ([`agree`]), so it cannot stand for another request:
///
/// - nginx `auth_request`: `X-Original-URI` (`$request_uri`), `X-Original-Method`, and the host
///   in `Host` (`proxy_set_header Host $http_host`);
/// - ingress-nginx `auth-url`: `X-Original-URL` (`$scheme://$http_host$request_uri`) and
///   `X-Original-Method`;
/// - Traefik, Caddy: `X-Forwarded-Uri`, `X-Forwarded-Method`, `X-Forwarded-Host`.
///
/// A missing or garbled description is a 400: never a guess, never a 200.
pub(super) fn original(headers: &HeaderMap) -> Result<Original, Failure> {
    let bad = |why: &'static str| Failure::new(Kind::BadRequest, why);
    let text = |name: &str| -> Result<Option<&str>, Failure> {
        let mut all = headers.get_all(name).iter();
        match (all.next(), all.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => v
                .to_str()
                .map(|s| Some(s.trim()))
                .map_err(|_| bad("the original request's headers are not text")),
            (Some(_), Some(_)) => Err(bad("the original request is described twice")),
        }
    };
    let (target, host, method) = if let Some(uri) = text("x-original-uri")? {
        let host = text("host")?.ok_or_else(|| bad("the original request has no host"))?;
        (uri.to_owned(), host.to_owned(), text("x-original-method")?)
    } else if let Some(url) = text("x-original-url")? {
        if url.contains('#') {
            return Err(bad(FRAGMENT));
        }
        let (host, target) =
            split_url(url).ok_or_else(|| bad("X-Original-URL is not an http URL"))?;
        (
            target.to_owned(),
            host.to_owned(),
            text("x-original-method")?,
        )
    } else if let Some(uri) = text("x-forwarded-uri")? {
        let host = text("x-forwarded-host")?
            .ok_or_else(|| bad("X-Forwarded-Uri comes without X-Forwarded-Host"))?;
        (uri.to_owned(), host.to_owned(), text("x-forwarded-method")?)
    } else {
        return Err(bad(
            "no original request: send X-Original-URI (nginx) or X-Forwarded-Uri (Traefik)",
        ));
    };
    agree(&text, &target, &host)?;
    // Origin-form only: an absolute or authority form would carry a second host. `//x` is a
    // path (RFC 9112's origin-form; a link joined as `base + "/" + path` sends one), which nginx
    // serves with its slashes merged: it is checked as the gateway reads it in proxy mode.
    if !target.starts_with('/') {
        return Err(bad("the original request-target is not a path"));
    }
    // No browser sends a fragment: a hand-made `/sidebar/#/../../reports/` would be judged as
    // `/sidebar/`, while the front proxy hands the CRM all of it (nginx's `$request_uri`), and
    // a server that keeps `#` in the path and cleans it (Go's `net/http` and a router) serves
    // `/reports/`.
    if target.contains('#') {
        return Err(bad(FRAGMENT));
    }
    let method = match method {
        None | Some("") => Method::GET,
        Some(m) => Method::from_bytes(m.as_bytes())
            .map_err(|_| bad("the original method is not a method"))?,
    };
    Ok(Original {
        target: target.as_bytes().to_vec(),
        method,
        host,
    })
}

const FRAGMENT: &str = "the original request-target has a fragment (`#`), which no browser sends";

/// The front proxy sets its own door's headers, but passes on what the client sent under the
/// others' names (Traefik, Caddy and nginx all do): a client behind Traefik that adds
/// `X-Original-URL` naming a public page must not have its `/reports/` request checked as
/// that. So every description present must name the request-target, the host (where it
/// carries one) and the method of the one read.
fn agree<'h>(
    text: &dyn Fn(&str) -> Result<Option<&'h str>, Failure>,
    target: &str,
    host: &str,
) -> Result<(), Failure> {
    let differ = || {
        Failure::new(
            Kind::BadRequest,
            "the original request is described differently by two front doors' headers",
        )
    };
    if text("x-original-uri")?.is_some_and(|t| t != target) {
        return Err(differ());
    }
    if let Some(url) = text("x-original-url")? {
        let (its_host, its_target) = split_url(url).ok_or_else(differ)?;
        if its_target != target.split('#').next().unwrap_or_default() || !same_host(its_host, host)
        {
            return Err(differ());
        }
    }
    if let Some(t) = text("x-forwarded-uri")? {
        let its_host = text("x-forwarded-host")?;
        if t != target || its_host.is_some_and(|h| !same_host(h, host)) {
            return Err(differ());
        }
    }
    if let (Some(a), Some(b)) = (text("x-original-method")?, text("x-forwarded-method")?) {
        if !a.eq_ignore_ascii_case(b) {
            return Err(differ());
        }
    }
    Ok(())
}

/// `http[s]://HOST[:PORT]TARGET` as ingress-nginx writes it (`$scheme://$http_host$request_uri`):
/// the host and the request-target exactly as the client sent them, fragment dropped. Not
/// parsed as a browser parses a URL: that resolves `..`, reads `\` as `/` and escapes quotes,
/// so the request judged would not be the one the front proxy serves (`/p/x\..\..\y` lies in
/// `/p/` for nginx, and at `/y` for a browser's parser).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")?;
    if !matches!(
        url[..scheme_end].to_ascii_lowercase().as_str(),
        "http" | "https"
    ) {
        return None;
    }
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..end];
    if host.is_empty() || host.contains('@') || host.contains('\\') {
        return None;
    }
    let target = rest[end..].split('#').next().unwrap_or_default();
    // `http://h` and `http://h?q` name the root, as `$request_uri` would have it.
    Some((host, if target.starts_with('/') { target } else { "/" }))
        .filter(|_| target.is_empty() || target.starts_with('/'))
}

/// The same host name, without case; ports are left out (nginx's `$host` drops the one
/// `$http_host` keeps, and a file may set one header from each).
fn same_host(a: &str, b: &str) -> bool {
    fn name(h: &str) -> &str {
        match h.rfind(':') {
            Some(i) if !h[i..].contains(']') => &h[..i],
            _ => h,
        }
    }
    name(a).eq_ignore_ascii_case(name(b))
}

/// Is `host` (`name[:port]`) the host of `public_url`? Names compare without case; a missing
/// port is the scheme's default, as browsers send it.
pub(super) fn is_public_host(host: &str, public_url: &url::Url) -> bool {
    let Ok(asked) = url::Url::parse(&format!("{}://{host}/", public_url.scheme())) else {
        return false;
    };
    asked.path() == "/"
        && asked.username().is_empty()
        && asked.password().is_none()
        && asked.host() == public_url.host()
        && asked.port_or_known_default() == public_url.port_or_known_default()
}

/// Who asks the check, as far as the gateway can tell.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Presented `forward_auth_key`, or (none configured) connected over loopback, where the
    /// README's front proxies live: handed the request's own cookies and `Authorization` back.
    FrontProxy,
    /// Anyone else: the gateway in front, a page script calling the check with a CRM path as
    /// the original would read its HttpOnly cookies back. Identity only.
    Unknown,
}

/// The check's caller. With `forward_auth_key`, a check without it is refused (`403`): the key
/// comes as the check's `?key=`, in the address the front proxy calls (nginx's `proxy_pass`,
/// Traefik's `address`, ingress-nginx's `auth-url`); the access log shows it as `***`.
fn caller(session: &Session, key: Option<&wecom_api::Secret>) -> Result<Caller, Failure> {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let given = req
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("key=")))
        .map(str::as_bytes);
    caller_of(peer, key.map(|k| k.expose()), given)
}

fn caller_of(
    peer: Option<std::net::IpAddr>,
    key: Option<&str>,
    given: Option<&[u8]>,
) -> Result<Caller, Failure> {
    let Some(key) = key else {
        // `::ffff:127.0.0.1` too: what a dual-stack listener (`[::]:8080`) reports.
        if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) {
            return Ok(Caller::FrontProxy);
        }
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "a forward-auth check from a peer not on loopback, without [server].forward_auth_key: \
                 it gets the identity but not X-Gateway-Cookie / X-Gateway-Authorization (a \
                 front proxy elsewhere needs the key in its check's address, ?key=...)"
            );
        }
        return Ok(Caller::Unknown);
    };
    let given = String::from_utf8_lossy(given.unwrap_or_default());
    if crate::domain::same_secret(&given, key) {
        Ok(Caller::FrontProxy)
    } else {
        Err(Failure::new(
            Kind::Forbidden,
            "the forward-auth check needs [server].forward_auth_key",
        ))
    }
}

/// What the check found the original request to be.
enum Checked {
    /// For a page or an API of the CRM, and allowed.
    Granted,
    /// For one of the gateway's own endpoints, which check for themselves.
    Own,
}

impl Gateway {
    /// `GET {prefix}/auth`: `200` with the identity headers, `401` without a session, `403`,
    /// or `400` for an original request that cannot be read.
    pub(super) async fn forward_auth(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<Answer, Failure> {
        if !matches!(session.req_header().method, Method::GET | Method::HEAD) {
            return Err(Failure::new(
                Kind::MethodNotAllowed,
                "the forward-auth check is a GET",
            ));
        }
        let caller = caller(session, ctx.config.server.forward_auth_key.as_ref())?;
        // Traefik passes the client's headers on beside the ones it copies from this answer
        // (`authResponseHeaders` replaces only those it lists, and keeps `X_WeCom_UserId`,
        // which a CGI or PHP CRM reads as `X-WeCom-UserId`): a request that brings its own
        // identity is refused, not described. nginx's (`X-Original-URI`, ingress-nginx's
        // `X-Original-URL`) drops `_` names and sets each of them in the README's block.
        // Traefik's own `X-Forwarded-Uri` decides, whatever else the client added (Traefik
        // passes an `X-Original-URL` of the client's on to the check).
        let headers = &session.req_header().headers;
        let nginx = !headers.contains_key("x-forwarded-uri")
            && (headers.contains_key("x-original-uri") || headers.contains_key("x-original-url"));
        if ctx.reserved_sent && !nginx {
            return Err(Failure::new(
                Kind::BadRequest,
                "the request carries X-WeCom-, X-WeChat- or X-Gateway- headers of its own",
            ));
        }
        let own_method = session.req_header().method.clone();
        let checked = self.check_original(session, ctx).await;
        // The answer is the check's own: an original HEAD (`X-Forwarded-Method: HEAD`) must not
        // make it a HEAD's answer, a length and no body, on which a keep-alive front proxy
        // (Traefik, Caddy) reading the body of a refusal waits until the connection ends.
        session.req_header_mut().set_method(own_method);
        // The check is the gateway's own answer, counted and logged as such whatever route it
        // was about (the pipeline puts the check's own path back); nothing is proxied.
        ctx.route = None;
        ctx.upstream = None;
        ctx.upstream_uri = None;
        ctx.nginx = None;
        match checked {
            Ok(Checked::Granted) => Ok(granted(session, ctx, caller)),
            // Nothing to hand on: the gateway reads its own cookie there. Above all not the
            // browser's cookies: a page script calling the check itself (through an ingress that
            // routes `{prefix}/` to the gateway, which names the check as the original) would
            // read its HttpOnly cookies in `X-Gateway-Cookie`.
            Ok(Checked::Own) => Ok(answers::response(
                200,
                "text/plain; charset=utf-8",
                Bytes::new(),
                &ctx.request_id,
            )),
            Err(f) if f.kind == Kind::LoginRequired => {
                Ok(answers::forward_auth_login(&f, &ctx.request_id, ctx.form))
            }
            // Two people's session cookies: a 401 for nginx (anything but 401/403 is its 500);
            // its `@signin` reads the cookies again and says so, with the removals that this
            // answer could not carry (nginx passes no cookie of a check on).
            Err(f) if f.kind == Kind::SessionConflict => {
                let login = Failure::login_required(super::login_endpoints::login_link(
                    &ctx.config,
                    None,
                    "/",
                ));
                Ok(answers::forward_auth_login(
                    &login,
                    &ctx.request_id,
                    ctx.form,
                ))
            }
            // nginx answers a 403 of the check with its own page: the kind of refusal goes in
            // `X-Gateway-Refused`, which the README's `@signin` hands back (`?refused=`), so
            // that the page or script gets the gateway's answer (sdk.js renews a refused
            // contact ticket on it).
            Err(f) if REFUSALS.contains(&f.kind) => {
                let (mut h, body) = answers::render(&f, &ctx.request_id, ctx.form);
                let _ = h.insert_header(X_GATEWAY_REFUSED, f.kind.code());
                Ok((h, body))
            }
            Err(f) => Err(f),
        }
    }

    async fn check_original(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<Checked, Failure> {
        let config = ctx.config.clone();
        let original = original(&session.req_header().headers)?;
        if !is_public_host(&original.host, &config.server.public_url) {
            return Err(Failure::new(
                Kind::Forbidden,
                "the original request is not for this gateway's public_url",
            ));
        }
        // From here on the check request *is* the original one, for every step that reads it.
        let req = session.req_header_mut();
        req.set_raw_path(&original.target).map_err(|_| {
            Failure::new(Kind::BadRequest, "the original request-target is garbled")
        })?;
        req.set_method(original.method);
        req.insert_header(http::header::HOST, original.host.as_str())
            .map_err(|_| Failure::new(Kind::BadRequest, "the original host is garbled"))?;
        ctx.form = request::form(session);

        normalise(ctx, &original.target)?;
        // The original's path is only read here: `forward_auth` puts the check's own back.
        let path = std::mem::take(&mut ctx.path);
        let (raw_path, _query) = nginx_compat::uri::split_request_uri(&original.target);
        // The gateway's own endpoints check for themselves when the request reaches them; only
        // a target that reads so as sent, too: `/reports/%2e%2e/_gateway/x` is the gateway's to
        // nginx but lies under `/reports/` for a front proxy or CRM that does not decode or
        // resolve it, and is checked as any other path.
        // Nor one a Servlet container or Windows reads elsewhere (`/_gateway/..;/sidebar/`,
        // `/_gateway/..\sidebar\`): nginx leaves `;` and `\` as they are.
        if raw_path == path.as_slice()
            && !raw_path.iter().any(|&b| b == b';' || b == b'\\')
            && super::endpoints::under_prefix(&path, &config.server.prefix).is_some()
        {
            return Ok(Checked::Own);
        }
        let final_paths = match self.locate(session, ctx, &config, &path)? {
            Located::Handler(_, final_paths) => final_paths,
            // The gateway would answer this itself (`/p` redirected to the `/p/` of a route, a
            // rewrite's redirect, no route), but the front proxy serves it from the CRM, whose
            // router most likely serves `/p` as `/p/`: it is checked as lying in `/p/`'s area too.
            Located::Done(_) | Located::NotFound if !path.ends_with(b"/") => {
                let mut with_slash = path.clone();
                with_slash.push(b'/');
                Some(vec![Final::Normal(path.clone()), Final::Normal(with_slash)])
            }
            Located::Done(_) | Located::NotFound => None,
        };
        self.gates(
            session,
            ctx,
            &config,
            final_paths.as_deref(),
            &path,
            raw_path,
        )
        .await
        .map(|()| Checked::Granted)
    }
}

/// `200`, empty, with the identity headers of SPEC section 7 and the assertion: what
/// `auth_request_set` (or `authResponseHeaders`) hands on to the upstream. Also
/// `X-Gateway-Cookie`: the original `Cookie` without the gateway's own cookies, always present
/// (empty when nothing is left), so that the front proxy can send the CRM that instead of the
/// sealed session it could otherwise log or replay (nginx has no other way to drop one cookie).
/// And `X-Gateway-Authorization`: the request's `Authorization` unless it is our mini-program
/// token (the first field that is not ours; empty when none is left), for the same reason: the
/// token is a session for as long as it lives.
///
/// Both only to a [`Caller::FrontProxy`]: they hold the browser's HttpOnly cookies.
fn granted(session: &Session, ctx: &Ctx, caller: Caller) -> Answer {
    let (mut h, body) = answers::response(
        200,
        "text/plain; charset=utf-8",
        Bytes::new(),
        &ctx.request_id,
    );
    if caller == Caller::FrontProxy {
        let cookie_name = ctx.config.session.as_ref().map(|s| s.cookie_name.as_str());
        let cookies = session.req_header().headers.get_all(http::header::COOKIE);
        let kept = crate::cookies::without_ours(cookies.iter().map(|v| v.as_bytes()), cookie_name)
            .and_then(|k| http::HeaderValue::from_bytes(&k).ok())
            .unwrap_or_else(|| http::HeaderValue::from_static(""));
        let _ = h.insert_header("x-gateway-cookie", kept);
        let authorization = session
            .req_header()
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .find(|v| crate::login::bearer::ours(v.as_bytes()).is_none())
            .cloned()
            .unwrap_or_else(|| http::HeaderValue::from_static(""));
        let _ = h.insert_header("x-gateway-authorization", authorization);
    }
    if let Some(identity) = &ctx.identity {
        identity.each(|name, value| {
            let _ = h.insert_header(name, value);
        });
        if let Some(jwt) = assertion(ctx) {
            let _ = h.insert_header(crate::headers::sent::X_GATEWAY_ASSERTION, jwt);
        }
    }
    (h, body)
}

/// The check's 403s whose kind `X-Gateway-Refused` names, for `{prefix}/signin?refused=` to
/// answer.
const REFUSALS: [Kind; 2] = [Kind::NotAllowed, Kind::ExternalContactRequired];
const X_GATEWAY_REFUSED: &str = "x-gateway-refused";

/// `{prefix}/signin?app=NAME&return_to=PATH`: the login interstitial of SPEC section 5 for a
/// navigation (nginx: `error_page 401 = @signin`), `401` JSON with the login URL for a script.
/// Without `return_to`, ingress-nginx's `rd` or the `X-Original-URI` nginx sends; without `app`, the login of the
/// protected area that path lies in.
pub(super) fn signin(session: &Session, ctx: &Ctx) -> Result<Answer, Failure> {
    let config = &ctx.config;
    let q = request::query(session);
    let form = request::form(session);
    // The check refused a person signed in (nginx: `error_page 403 = @signin`, the kind of
    // refusal handed back as `?refused=`): the gateway's own 403, in words of its own
    // (nothing of the request's is shown: a client may ask for this itself).
    let refused =
        param(&q, "refused").and_then(|code| REFUSALS.into_iter().find(|k| k.code() == code));
    if let Some(kind) = refused {
        let detail = match kind {
            Kind::NotAllowed => "You may not open this page.",
            _ => "This page needs the customer of the chat it was opened from: open it again from the chat.",
        };
        return Err(Failure::new(kind, detail));
    }
    let original = request::header(session, "x-original-uri");
    // `rd`: ingress-nginx's `auth-signin` redirect names the page so. A script's call comes
    // back to the page that made it, as in proxy mode.
    let asked = match param(&q, "return_to").or_else(|| param(&q, "rd")) {
        Some(asked) => asked.to_owned(),
        None if form == Form::Navigation => original.unwrap_or("/").to_owned(),
        None => super::login_gate::referer_path(config, session),
    };
    // Refused return URLs become `/`, as for `{prefix}/login` (SPEC section 8).
    let return_to = ReturnUrl::for_site(&asked, &config.server);
    // The login the requested path needs, else the one of the page to come back to.
    let app = match param(&q, "app") {
        Some(name) => match config.apps.get(name) {
            Some(app) => Some(app.name.as_str()),
            None => return Err(Failure::new(Kind::BadRequest, "unknown app")),
        },
        None => original
            .and_then(|o| area_login(ctx, o))
            .or_else(|| area_login(ctx, return_to.relative())),
    };
    // Two people's session cookies for that login (nginx's check could not remove them):
    // removed here, and said rather than signed in again right after a sign-in.
    let conflict = app
        .and_then(|name| config.apps.get(name))
        .and_then(|a| super::login_gate::conflict(session, config, a));
    let removals = match conflict {
        Some(_) => {
            let path = original.unwrap_or(return_to.relative());
            super::login_gate::conflict_removals(config, path)
        }
        None => Vec::new(),
    };
    if conflict.is_some_and(super::login_gate::just_signed_in) {
        return Err(super::login_gate::session_conflict().with_cookies(removals));
    }
    let link = login_link(config, app, return_to.relative());
    Ok(answers::with_cookies(
        answers::signin(&Failure::login_required(link), &ctx.request_id, form),
        &removals,
    ))
}

/// The app whose login protects `return_to`'s path, if any.
fn area_login<'a>(ctx: &'a Ctx, return_to: &str) -> Option<&'a str> {
    let (raw_path, _) =
        nginx_compat::uri::split_request_uri(return_to.split('#').next()?.as_bytes());
    let path = nginx_compat::uri::normalize_path(raw_path).ok()?;
    let routes = &ctx.config.routes;
    // Every reading the check made of it: `//x/sidebar/` lies in `/sidebar/` there too.
    let area = routing::protecting(routes, &path, &path, raw_path).ok()??;
    routes.routes[area]
        .login
        .as_ref()
        .map(|app| app.name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_front_proxy_is_handed_the_requests_own_cookies() {
        let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let browser: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let key = "0123456789abcdefXYZ";
        // No key configured: a loopback peer is the README's front proxy; anyone else (a
        // browser reaching the gateway in front) gets the identity only.
        assert!(matches!(
            caller_of(Some(lo), None, None),
            Ok(Caller::FrontProxy)
        ));
        assert!(matches!(
            caller_of(Some(browser), None, None),
            Ok(Caller::Unknown)
        ));
        assert!(matches!(caller_of(None, None, None), Ok(Caller::Unknown)));
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(matches!(
            caller_of(Some(mapped), None, None),
            Ok(Caller::FrontProxy)
        ));
        // A key configured: it decides, wherever the check comes from.
        let given = Some(key.as_bytes());
        assert!(matches!(
            caller_of(Some(browser), Some(key), given),
            Ok(Caller::FrontProxy)
        ));
        for wrong in [None, Some(&b""[..]), Some(&b"0123456789abcdefXY"[..])] {
            let refused = caller_of(Some(lo), Some(key), wrong);
            assert!(matches!(refused, Err(ref f) if f.kind == Kind::Forbidden));
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
            );
        }
        h
    }

    #[test]
    fn each_front_door_describes_the_original_request_with_its_own_headers() {
        type Case = (
            &'static str,
            Vec<(&'static str, &'static str)>,
            Option<(&'static str, &'static str, &'static str)>,
        );
        let cases: Vec<Case> =
            vec![
            (
                "nginx",
                vec![
                    ("x-original-uri", "/sidebar/a?b=1"),
                    ("host", "crm.example.com"),
                ],
                Some(("/sidebar/a?b=1", "GET", "crm.example.com")),
            ),
            (
                "nginx with the method",
                vec![
                    ("x-original-uri", "/api/x"),
                    ("x-original-method", "POST"),
                    ("host", "crm.example.com:8443"),
                ],
                Some(("/api/x", "POST", "crm.example.com:8443")),
            ),
            (
                "nginx ignores a client's X-Forwarded-Host",
                vec![
                    ("x-original-uri", "/"),
                    ("host", "crm.example.com"),
                    ("x-forwarded-host", "evil.example"),
                ],
                Some(("/", "GET", "crm.example.com")),
            ),
            (
                "ingress-nginx",
                vec![
                    ("x-original-url", "https://crm.example.com/sidebar/?q=1"),
                    ("host", "gateway.svc"),
                ],
                Some(("/sidebar/?q=1", "GET", "crm.example.com")),
            ),
            (
                "traefik",
                vec![
                    ("x-forwarded-uri", "/sidebar/"),
                    ("x-forwarded-method", "PUT"),
                    ("x-forwarded-host", "crm.example.com"),
                    ("host", "gateway:8080"),
                ],
                Some(("/sidebar/", "PUT", "crm.example.com")),
            ),
            ("nothing", vec![("host", "crm.example.com")], None),
            ("no host", vec![("x-original-uri", "/")], None),
            (
                "traefik without host",
                vec![("x-forwarded-uri", "/"), ("host", "gw")],
                None,
            ),
            (
                "absolute form",
                vec![
                    ("x-original-uri", "http://evil/"),
                    ("host", "crm.example.com"),
                ],
                None,
            ),
            (
                "a path with a doubled slash, not a host",
                vec![("x-original-uri", "//evil/"), ("host", "crm.example.com")],
                Some(("//evil/", "GET", "crm.example.com")),
            ),
            (
                "empty",
                vec![("x-original-uri", ""), ("host", "crm.example.com")],
                None,
            ),
            (
                "twice",
                vec![
                    ("x-original-uri", "/a"),
                    ("x-original-uri", "/b"),
                    ("host", "crm.example.com"),
                ],
                None,
            ),
            (
                "bad method",
                vec![
                    ("x-original-uri", "/"),
                    ("x-original-method", "G T"),
                    ("host", "crm.example.com"),
                ],
                None,
            ),
            (
                "traefik, the client adding ingress-nginx's header for a public page",
                vec![
                    ("x-forwarded-uri", "/reports/q1"),
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-host", "crm.example.com"),
                    ("host", "gateway:8080"),
                    ("x-original-url", "https://crm.example.com/sidebar/"),
                ],
                None,
            ),
            (
                "caddy, the client adding nginx's header",
                vec![
                    ("x-forwarded-uri", "/reports/q1"),
                    ("x-forwarded-host", "crm.example.com"),
                    ("host", "crm.example.com"),
                    ("x-original-uri", "/sidebar/"),
                ],
                None,
            ),
            (
                "traefik, the client naming another host for the same target",
                vec![
                    ("x-forwarded-uri", "/sidebar/"),
                    ("x-forwarded-host", "other.example.com"),
                    ("host", "gateway:8080"),
                    ("x-original-url", "https://crm.example.com/sidebar/"),
                ],
                None,
            ),
            (
                "two methods",
                vec![
                    ("x-original-uri", "/sidebar/"),
                    ("x-original-method", "GET"),
                    ("x-forwarded-uri", "/sidebar/"),
                    ("x-forwarded-method", "DELETE"),
                    ("host", "crm.example.com"),
                ],
                None,
            ),
            (
                "nginx setting both doors' headers, $host without the port",
                vec![
                    ("x-original-uri", "/sidebar/?a=1"),
                    ("x-forwarded-uri", "/sidebar/?a=1"),
                    ("x-forwarded-host", "CRM.example.com"),
                    ("x-forwarded-method", "get"),
                    ("x-original-method", "GET"),
                    ("host", "crm.example.com:8443"),
                ],
                Some(("/sidebar/?a=1", "GET", "crm.example.com:8443")),
            ),
            (
                "ingress-nginx with X-Forwarded-Host from an auth-snippet",
                vec![
                    ("x-original-url", "https://crm.example.com/sidebar/"),
                    ("x-forwarded-host", "crm.example.com"),
                    ("host", "gateway.svc"),
                ],
                Some(("/sidebar/", "GET", "crm.example.com")),
            ),
            (
                "ingress-nginx: the target as the client sent it, not as a browser parses it",
                vec![("x-original-url", "http://crm.example.com/reports/q1\\..\\..\\x")],
                Some(("/reports/q1\\..\\..\\x", "GET", "crm.example.com")),
            ),
            (
                "two doors' headers from one $request_uri with quotes, braces and a dot segment",
                vec![
                    ("x-original-url", "http://[::1]:8080/api/./x?f={\"a\":'1'}"),
                    ("x-original-uri", "/api/./x?f={\"a\":'1'}"),
                    ("x-forwarded-uri", "/api/./x?f={\"a\":'1'}"),
                    ("x-forwarded-host", "[::1]:8080"),
                    ("host", "[::1]:8080"),
                ],
                Some(("/api/./x?f={\"a\":'1'}", "GET", "[::1]:8080")),
            ),
            (
                "ingress-nginx, the root without its slash",
                vec![("x-original-url", "HTTPS://crm.example.com")],
                Some(("/", "GET", "crm.example.com")),
            ),
            (
                "ingress-nginx, userinfo",
                vec![("x-original-url", "http://evil@crm.example.com/")],
                None,
            ),
            ("not a URL", vec![("x-original-url", "crm/x")], None),
            (
                "not http",
                vec![("x-original-url", "javascript:alert(1)")],
                None,
            ),
        ];
        for (what, pairs, want) in cases {
            let got = original(&headers(&pairs));
            match (got, want) {
                (Ok(o), Some((target, method, host))) => {
                    assert_eq!(o.target, target.as_bytes(), "{what}");
                    assert_eq!(o.method.as_str(), method, "{what}");
                    assert_eq!(o.host, host, "{what}");
                }
                (Err(f), None) => assert_eq!(f.kind, Kind::BadRequest, "{what}"),
                (got, _) => panic!("{what}: {got:?}"),
            }
        }
    }

    #[test]
    fn only_public_urls_host_is_vouched_for() {
        let https = url::Url::parse("https://crm.example.com").unwrap();
        let port = url::Url::parse("http://127.0.0.1:8080").unwrap();
        for (host, url, want) in [
            ("crm.example.com", &https, true),
            ("CRM.Example.COM", &https, true),
            ("crm.example.com:443", &https, true),
            ("crm.example.com:8443", &https, false),
            ("evil.example", &https, false),
            ("crm.example.com.evil.example", &https, false),
            ("user@crm.example.com", &https, false),
            ("crm.example.com/x", &https, false),
            ("", &https, false),
            ("127.0.0.1:8080", &port, true),
            ("127.0.0.1", &port, false),
            ("127.0.0.1:8081", &port, false),
        ] {
            assert_eq!(is_public_host(host, url), want, "{host} for {url}");
        }
    }
}
