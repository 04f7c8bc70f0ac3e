//! The internal qyapi endpoint (`server.qyapi_listen`, SPEC section 10): the CRM's own server
//! calls WeCom / WeChat through here with a gateway handle instead of a token, and the gateway
//! injects the real token and retries transparently through the [`Provider`].

pub mod corp;
pub mod handle;
pub mod request;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use wecom_api::held::Hold;

use crate::answers::{self, Errcode};
use crate::config::model::{App, Credentials};
use crate::config::Config;
use crate::headers;
use crate::metrics::labels;
use crate::provider::{ApiError, ApiRequest, ApiResponse, Provider};
use request::TokenUse;

/// Bodies are buffered whole so that a retry can send them again; larger ones are refused.
pub const MAX_BODY: usize = 20 * 1024 * 1024;

/// The handle's lifetime as told to SDKs; the handle itself does not expire.
const HANDLE_EXPIRES_IN: u64 = 7200;

/// The headers a caller names an app and a corp with, parsed once (a lookup by `&str` parses
/// the name on every call).
const X_GATEWAY_APP: HeaderName = HeaderName::from_static("x-gateway-app");
const X_GATEWAY_CORP: HeaderName = HeaderName::from_static("x-gateway-corp");

pub struct Qyapi {
    pub config: Arc<ArcSwap<Config>>,
    pub provider: Provider,
}

/// What the endpoint served, and what to record about it.
struct Served {
    response: Response<Vec<u8>>,
    app: String,
    /// A label of [`labels::api`]'s fixed set, `other` or `-`: never the caller's text.
    api: &'static str,
    errcode: Errcode,
}

/// The answer as the endpoint frames it: the given headers, its own `Content-Length` and the
/// request id. Built in place (`Response::builder` converts and checks each part again, ~1.4k
/// instructions per call); a status that is not one, or a request id that is not a header
/// value, gives a 502.
fn framed(
    status: u16,
    passed: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
    body: Vec<u8>,
    rid: &str,
) -> Response<Vec<u8>> {
    let rid = HeaderValue::from_str(rid).ok();
    let (Ok(status), Some(rid)) = (http::StatusCode::from_u16(status), rid.clone()) else {
        let mut bad = Response::new(Vec::new());
        *bad.status_mut() = http::StatusCode::BAD_GATEWAY;
        let h = bad.headers_mut();
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(0));
        if let Some(rid) = rid {
            h.insert(headers::names::X_REQUEST_ID, rid);
        }
        return bad;
    };
    let length = HeaderValue::from(body.len());
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    for (n, v) in passed {
        h.append(n, v);
    }
    h.append(http::header::CONTENT_LENGTH, length);
    h.append(headers::names::X_REQUEST_ID, rid);
    response
}

/// An answer of [`answers`] as the `ServeHttp` response the listener writes.
fn from_answer((head, body): answers::Answer) -> Response<Vec<u8>> {
    let mut b = Response::builder().status(head.status);
    for (n, v) in head.headers.iter() {
        b = b.header(n, v);
    }
    b.body(body.to_vec()).expect("a response the gateway built")
}

impl Served {
    fn refused(
        status: u16,
        errcode: i64,
        errmsg: &str,
        rid: &str,
        app: &str,
        api: &'static str,
    ) -> Served {
        Served {
            response: from_answer(answers::wecom_error(status, errcode, errmsg, rid)),
            app: app.to_owned(),
            api,
            errcode: Errcode::Code(errcode),
        }
    }
}

#[async_trait]
impl ServeHttp for Qyapi {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let _counted = crate::metrics::QyapiInFlight::enter();
        let started = Instant::now();
        let rid = match session
            .req_header()
            .headers
            .get(headers::names::X_REQUEST_ID)
        {
            Some(v) if headers::sane_request_id(v.as_bytes()) => {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            }
            _ => crate::request_id::generate(),
        };
        let config = crate::config::Snapshot::of(&self.config);
        let outcome = self.serve(session, &config, &rid).await;
        // Answered without reading the body (a refusal: an unknown prefix, a stale handle, no
        // app): the rest of an upload still on its way would make the close a reset, and the
        // caller would see a broken pipe instead of the errcode that tells it what to do (fetch
        // a new handle). Read off, within bounds, for the networks allowed to call.
        let allowed_peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|a| allowed(&config.server.qyapi_allow, a.ip()));
        // A client that waits for `100 Continue` sends nothing more: nothing to read off. Nor
        // after a 413, refused for its size: reading it is what the refusal saves; nor after
        // a 408, for a body too slow to read at all; nor after a 501, for a body in a coding
        // that cannot be read (it would be waited on for the whole drain).
        let waits = crate::proxy::request::expects_continue(session);
        let status = outcome.response.status().as_u16();
        if allowed_peer && !waits && !matches!(status, 408 | 413 | 501) && !session.is_body_done() {
            drain(session).await;
        }
        if outcome.api != "-" {
            let errcode = match outcome.errcode {
                Errcode::Code(e) => labels::errcode(e),
                Errcode::Failed(why) => why,
            };
            crate::metrics::count_qyapi_call(&outcome.app, outcome.api, errcode);
        }
        if let Some(line) = crate::logging::qyapi() {
            let mut digits = itoa::Buffer::new();
            line.token("method", session.req_header().method.as_str())
                // A configured app's name and a label of a fixed set: nothing of the caller's
                // to redact.
                .plain("app", &outcome.app)
                .plain("api", outcome.api)
                .plain(
                    "errcode",
                    match outcome.errcode {
                        Errcode::Code(e) => digits.format(e),
                        Errcode::Failed(why) => why,
                    },
                )
                .number("status", status.into())
                .millis("duration_ms", started.elapsed())
                .token("request_id", &rid)
                .finish();
        }
        outcome.response
    }
}

/// A request a browser sent for a page: it carries `Origin` (every cross-origin request, and
/// same-origin ones but `GET`/`HEAD`) or a `Sec-Fetch-Site` other than `none` (every request of
/// a current browser but one the user typed or bookmarked).
fn from_a_page(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::ORIGIN)
        || headers
            .get_all("sec-fetch-site")
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"none"))
}

impl Qyapi {
    async fn serve(&self, session: &mut ServerSession, config: &Config, rid: &str) -> Served {
        let client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        if !client_ip.is_some_and(|ip| allowed(&config.server.qyapi_allow, ip)) {
            session.set_keepalive(None);
            return Served::refused(
                403,
                40164,
                "client address not in qyapi_allow",
                rid,
                "-",
                "-",
            );
        }
        // The calls are the CRM's back end's. A browser on an allowed network must not make
        // them for a page of another site (a form or `fetch` aimed here: CSRF), nor for a page
        // whose name was pointed at this address (DNS rebinding, which the peer check cannot
        // see): browsers say so with `Origin` or `Sec-Fetch-Site`, server-side clients never do.
        if from_a_page(&session.req_header().headers) {
            session.set_keepalive(None);
            return Served::refused(
                403,
                48002,
                "the qyapi endpoint takes server-side calls only, not a browser's",
                rid,
                "-",
                "-",
            );
        }

        // What the public listener refuses is refused here too, before anything is sent on:
        // a CONNECT or TRACE would reach WeCom with the token, a request without `Host` or
        // with a `Content-Length` list is not one HTTP/1.1 allows.
        let req = session.req_header();
        let asked = headers::Asked::of(req);
        if let Some((kind, why)) = crate::connection::malformed_as(&req.method, req.version, &asked)
        {
            session.set_keepalive(None);
            let status = kind.status();
            return Served::refused(status, status.into(), why, rid, "-", "-");
        }

        // Two different apps or corps named: which one the call is for is not the gateway's
        // to guess (a proxy adding its own beside the caller's).
        for name in [X_GATEWAY_APP, X_GATEWAY_CORP] {
            let mut values = session.req_header().headers.get_all(&name).iter();
            let first = values.next();
            if values.any(|v| Some(v) != first) {
                session.set_keepalive(None);
                let why = format!("{name} names two different values");
                return Served::refused(400, 40013, &why, rid, "-", "-");
            }
        }

        let raw = session.req_header().raw_path();
        let (path, query) = match raw.iter().position(|&b| b == b'?') {
            Some(i) => (&raw[..i], &raw[i + 1..]),
            None => (raw, &[][..]),
        };
        // A path that is not text is not a plain API path either.
        let path = std::str::from_utf8(path).unwrap_or("\u{fffd}");
        // The listener's root (a browser, a health check pointed at it): what it is for.
        if path == "/" {
            let app = config.apps.keys().next().map_or("APP", String::as_str);
            let why = format!(
                "this is the qyapi endpoint: call /{{app}}/cgi-bin/... (e.g. /{app}/cgi-bin/user/get?userid=...)"
            );
            return Served::refused(404, 404, &why, rid, "-", "-");
        }
        if let Err(why) = request::literal(&config.apps, path) {
            session.set_keepalive(None);
            return Served::refused(400, 400, why.errmsg(), rid, "-", "-");
        }
        let addressed = request::address(&config.apps, path);
        let api = addressed.api.to_owned();
        let request::Query {
            raw: raw_query,
            access_token,
            carries_token,
        } = request::split_query(query);
        let header_app = session
            .req_header()
            .headers
            .get(X_GATEWAY_APP)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let restrict = addressed.prefix_app.or(header_app.as_deref());
        // Nothing else names an app (with `X-Gateway-App` a suite's path may start with a
        // corp): the first segment was meant as the app's prefix.
        if header_app.is_none() && access_token.is_none() && request::unknown_prefix(&addressed) {
            let r = request::Refusal::UnknownPrefix;
            return Served::refused(200, r.errcode(), r.errmsg(), rid, "-", "-");
        }

        let method = session.req_header().method.clone();
        // `/{app}/{corp}/cgi-bin/gettoken` of a service-provider app (or its corp in
        // `X-Gateway-Corp`): a handle for that corp.
        let corp_header = session
            .req_header()
            .headers
            .get(X_GATEWAY_CORP)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The app the path or `X-Gateway-App` names: either way a suite's path may name a corp.
        let named_suite = restrict
            .and_then(|n| config.apps.get(n))
            .is_some_and(|a| crate::suite::suite_of(a).is_some());
        match corp::pick(named_suite, &api, corp_header.as_deref()) {
            // A corp named: answered below once its install is found, as any call for it (a
            // removed corp's handle would only fail at its first use).
            Ok(c) if request::is_sdk_gettoken(c.api) && c.corp.is_some() => {}
            Ok(c) if request::is_sdk_gettoken(c.api) => {
                return sdk_gettoken(config, c.api, &request::pairs(query), restrict, c.corp, rid);
            }
            _ if request::is_sdk_gettoken(&api) => {
                return sdk_gettoken(config, &api, &request::pairs(query), restrict, None, rid);
            }
            _ => {}
        }

        let app = match request::choose_app(
            &config.apps,
            addressed.prefix_app,
            header_app.as_deref(),
            access_token.as_deref(),
        ) {
            Ok(app) => app,
            Err(r) => return Served::refused(200, r.errcode(), r.errmsg(), rid, "-", "-"),
        };
        // A service-provider app's call is for one of its corps (SPEC section 20).
        let resolved = corp::resolve(
            &self.provider,
            &config.apps,
            app,
            &api,
            corp_header.as_deref(),
            access_token.as_deref(),
        )
        .await;
        let (corp, api) = match resolved {
            Ok(r) => r,
            Err(r) => {
                return Served::refused(r.status, r.errcode, r.errmsg, rid, &app.name, "other")
            }
        };
        // However the app and corp were named, gettoken is never forwarded: WeCom's answer to a
        // wrong `corpsecret` (40001) would read as the injected token's fault.
        if request::is_sdk_gettoken(&api) {
            let corp_id = corp.as_ref().map(|c| c.install.corp_id.as_str());
            return sdk_gettoken(
                config,
                &api,
                &request::pairs(query),
                Some(&app.name),
                corp_id,
                rid,
            );
        }
        let label = labels::api(&api);
        if !api.starts_with("/cgi-bin/") {
            return Served::refused(
                404,
                404,
                "only /cgi-bin/ APIs pass here",
                rid,
                &app.name,
                "other",
            );
        }

        // The body stays held (and counted) until the call is done: a retry sends it again.
        let (body, _held) = match read_body(session).await {
            Ok(b) => b,
            Err(status) => {
                session.set_keepalive(None);
                let (errcode, msg) = match status {
                    413 => (44001, "request body larger than 20 MiB"),
                    408 => (44001, "request body did not arrive in time"),
                    // Nothing was sent: WeCom's "busy", which SDKs try again.
                    503 => (
                        -1,
                        "the API bodies this process holds at once are at their bound; try again",
                    ),
                    _ => (44001, "request body could not be read"),
                };
                return Served::refused(status, errcode, msg, rid, &app.name, label);
            }
        };

        let connection_listed = connection_listed(session);
        let headers = session
            .req_header()
            .headers
            .iter()
            .filter(|(n, _)| request::forwarded_request_header(n.as_str(), &connection_listed))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let req = ApiRequest {
            method,
            path: api.clone(),
            query: Vec::new(),
            raw_query,
            headers,
            body,
        };
        let sent = match (request::token_use(app, &api, carries_token), &corp) {
            (TokenUse::Injected(kind), Some(corp)) => {
                self.provider.corp_call(corp, kind, req).await
            }
            (TokenUse::Injected(kind), None) => self.provider.call(app, kind, req).await,
            (TokenUse::Own, _) => self.provider.call_plain(app, req).await,
        };
        match sent {
            // A redirect is no WeCom answer (a captive portal, an egress proxy's login): not
            // followed by the gateway, and not handed to the CRM's HTTP client to follow to a
            // host of its choosing.
            Ok(resp) if (300..400).contains(&resp.status) => Served {
                errcode: Errcode::Failed("bad_answer"),
                ..Served::refused(
                    502,
                    -1,
                    &format!(
                        "the provider answered HTTP {} (a redirect, or no answer), not followed",
                        resp.status
                    ),
                    rid,
                    &app.name,
                    label,
                )
            },
            Ok(resp) => Served {
                // An answer that is no WeCom answer (an error page of WeCom's front, HTTP 5xx)
                // is passed back as it came, but counted as what it is, never as a success.
                errcode: if (resp.errcode == 0 && !(200..300).contains(&resp.status))
                    || resp.errcode == wecom_api::UNREADABLE_ERRCODE
                    || (resp.errcode == 0 && is_html(&resp))
                {
                    Errcode::Failed("bad_answer")
                } else {
                    Errcode::Code(resp.errcode)
                },
                response: passed_back(resp, rid),
                app: app.name.clone(),
                api: label,
            },
            Err(e) => provider_failure(&e, rid, app, label),
        }
    }
}

/// Reads and drops what is left of the request body: at most [`MAX_BODY`], for at most
/// [`DRAIN_FOR`].
async fn drain(session: &mut ServerSession) {
    let mut left = MAX_BODY;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Ok(Some(chunk)) = session.read_request_body().await {
            left = match left.checked_sub(chunk.len()) {
                Some(l) => l,
                None => break,
            };
        }
    })
    .await;
}

/// How long a refused call's unread body is read off before the connection closes.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(5);

fn allowed(nets: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

fn connection_listed(session: &ServerSession) -> Vec<String> {
    connection_tokens(
        session
            .req_header()
            .headers
            .get_all(http::header::CONNECTION)
            .iter(),
    )
}

/// The header names `Connection` values list (lower-cased): hop-by-hop too.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a http::HeaderValue>) -> Vec<String> {
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

/// The whole body, refused with 413 beyond [`MAX_BODY`] (by Content-Length when told, else
/// while reading), and with 503 when the process holds as many API bodies as it may
/// ([`wecom_api::held`]); with what it takes of that bound.
async fn read_body(session: &mut ServerSession) -> Result<(Bytes, Hold), u16> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(413);
    }
    crate::proxy::request::continue_if_expected(session).await;
    if session.is_body_empty() {
        // A GET: nothing to wait for, no timer to set.
        return read_whole_body(session).await;
    }
    tokio::time::timeout(body_deadline(declared), read_whole_body(session))
        .await
        .unwrap_or(Err(408))
}

/// The least rate a body is read at: a client trickling a byte every few seconds is cut off
/// (pingora bounds each read, not the whole), while a 20 MiB media upload over a slow link has
/// minutes.
const MIN_BODY_RATE: u64 = 64 * 1024;

/// How long a body of `declared` bytes (unknown: the largest taken) may take to arrive: the
/// public endpoints' ten seconds, plus a second for every [`MIN_BODY_RATE`] bytes.
fn body_deadline(declared: Option<u64>) -> std::time::Duration {
    let size = declared.unwrap_or(MAX_BODY as u64).min(MAX_BODY as u64);
    crate::proxy::request::BODY_DEADLINE + std::time::Duration::from_secs(size / MIN_BODY_RATE)
}

async fn read_whole_body(session: &mut ServerSession) -> Result<(Bytes, Hold), u16> {
    // Most bodies arrive in one piece: that piece is the body, not a copy of it.
    let mut first: Option<Bytes> = None;
    let mut body = BytesMut::new();
    let mut held = wecom_api::held::HELD.hold();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                let had = first.as_ref().map_or(0, Bytes::len) + body.len();
                if had + chunk.len() > MAX_BODY {
                    return Err(413);
                }
                if !held.grow(chunk.len()) {
                    return Err(503);
                }
                match first.take() {
                    None if body.is_empty() => first = Some(chunk),
                    earlier => {
                        if let Some(earlier) = earlier {
                            body.extend_from_slice(&earlier);
                        }
                        body.extend_from_slice(&chunk);
                    }
                }
            }
            Ok(None) => return Ok((first.unwrap_or_else(|| body.freeze()), held)),
            Err(_) => return Err(400),
        }
    }
}

fn passed_back(resp: ApiResponse, rid: &str) -> Response<Vec<u8>> {
    // Hop-by-hop too: the names the provider's own `Connection` lists.
    let listed = connection_tokens(
        resp.headers
            .iter()
            .filter(|(n, _)| *n == http::header::CONNECTION)
            .map(|(_, v)| v),
    );
    let headers = resp.headers.into_iter().filter(move |(n, _)| {
        request::forwarded_response_header(n.as_str()) && !listed.iter().any(|l| l == n.as_str())
    });
    // pingora's `ServeHttp` answers with a `Vec`: no copy when the body owns its bytes (the
    // injected token, were it quoted, is already out: `wecom_api`'s HTTP layer takes it out).
    let body = Vec::from(resp.body);
    framed(resp.status, headers, body, rid)
}

/// An HTML page (an error page of WeCom's front, answered 200): no API answer at all.
fn is_html(resp: &ApiResponse) -> bool {
    resp.headers
        .iter()
        .any(|(n, v)| n == http::header::CONTENT_TYPE && v.as_bytes().starts_with(b"text/html"))
}

/// The token could not be had, or the provider could not be reached: the caller still gets
/// one WeCom-shaped answer.
fn provider_failure(e: &ApiError, rid: &str, app: &App, api: &'static str) -> Served {
    let (a, errcode) = answers::wecom_provider_error(e, rid);
    Served {
        response: from_answer(a),
        app: app.name.clone(),
        api,
        errcode,
    }
}

/// `cgi-bin/gettoken` / `cgi-bin/token` as an SDK calls them: a handle for the configured
/// app whose credentials match, 40001 otherwise. The real token never leaves the gateway.
///
/// A service-provider app (SPEC section 20) answers `/{app}/{corp}/cgi-bin/gettoken?corpid=CORP
/// &corpsecret=SUITE_SECRET` with a handle naming the app and that corp: the CRM never holds a
/// corp's permanent code, so the suite secret from the provider's console is its credential.
fn sdk_gettoken(
    config: &Config,
    api: &str,
    query: &[(String, String)],
    restrict: Option<&str>,
    corp: Option<&str>,
    rid: &str,
) -> Served {
    let param = |k: &str| {
        query
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let wecom = api == "/cgi-bin/gettoken";
    let candidates = config
        .apps
        .values()
        .filter(|a| restrict.is_none_or(|r| r == a.name));
    let mut found = None;
    for app in candidates {
        let ok = match &app.credentials {
            Credentials::Wecom {
                corp_id,
                secret: app_secret,
                contact_secret,
                ..
            } if wecom => {
                let secret = param("corpsecret");
                *corp_id == param("corpid")
                    && (handle::same_secret(secret, app_secret.expose())
                        || contact_secret
                            .as_ref()
                            .is_some_and(|c| handle::same_secret(secret, c.expose())))
            }
            Credentials::WechatMp { app_id, secret } if !wecom => {
                param("grant_type") == "client_credential"
                    && *app_id == param("appid")
                    && handle::same_secret(param("secret"), secret.expose())
            }
            Credentials::Suite { suite_secret, .. } if wecom => {
                corp.is_some_and(|c| c == param("corpid") && crate::domain::is_plain_id(c))
                    && handle::same_secret(param("corpsecret"), suite_secret.expose())
            }
            _ => false,
        };
        // A suite's handles always name a corp; self-built apps' never do.
        let ok = ok && corp.is_some() == crate::suite::suite_of(app).is_some();
        if ok {
            found = Some(app);
            break;
        }
    }
    match found {
        Some(app) => {
            let body = json!({
                "errcode": 0, "errmsg": "ok",
                "access_token": match corp {
                    Some(c) => handle::sign_corp(app, c),
                    None => handle::sign(app),
                },
                "expires_in": HANDLE_EXPIRES_IN,
            });
            let ct = [(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )];
            Served {
                response: framed(200, ct, serde_json::to_vec(&body).unwrap_or_default(), rid),
                app: app.name.clone(),
                api: labels::api(api),
                errcode: Errcode::Code(0),
            }
        }
        None => Served::refused(
            200,
            40001,
            "invalid credential: no configured app has this id and secret",
            rid,
            "-",
            labels::api(api),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_framed_with_its_length_and_the_request_id() {
        let ct = (
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let cookie = |v| (http::header::SET_COOKIE, HeaderValue::from_static(v));
        let r = framed(
            201,
            [ct, cookie("a=1"), cookie("b=2")],
            b"{}".to_vec(),
            "rid-1",
        );
        assert_eq!(r.status(), 201);
        assert_eq!(r.body(), b"{}");
        let h = r.headers();
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert_eq!(h["content-length"], "2");
        assert_eq!(h["x-request-id"], "rid-1");
        assert_eq!(h.len(), 5);

        for (status, rid) in [(1000, "rid-2"), (200, "bad\nid")] {
            let r = framed(status, [], b"lost".to_vec(), rid);
            assert_eq!(r.status(), 502, "{status} {rid:?}");
            assert!(r.body().is_empty());
            assert_eq!(r.headers()["content-length"], "0");
            let want = (rid == "rid-2").then_some("rid-2");
            let got = r.headers().get("x-request-id").map(|v| v.to_str().unwrap());
            assert_eq!(got, want);
        }
    }
}
