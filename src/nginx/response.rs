//! The nginx file's say over a proxied request once it left: its body size, the upstream's
//! answer (`proxy_intercept_errors` + `error_page`, `proxy_redirect`, `add_header`, `expires`,
//! `gzip`) and the upstream's failure (`error_page 502 504`, also to a location that proxies
//! elsewhere, which the engine's retry then sends).

use nginx_compat::eval::NoFiles;
use nginx_compat::parse::model::Settings;
use nginx_compat::{Action, FileSystem, HeaderEdit, HeaderMode};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::compression::ResponseCompression;
use pingora::prelude::*;
use pingora::protocols::http::compression::Algorithm;
use pingora::proxy::Session;
use pingora::ErrorType;

use super::decide::{classify, Decision};
use super::{DiskFs, Flight};

/// The error that carries an `error_page` answer from the upstream's phases to the failure
/// phase, which writes it.
const ERROR_PAGE: ErrorType = ErrorType::Custom("nginx error_page");

/// An error that only carries an `error_page` answer (or a retry to another upstream).
pub fn is_error_page(e: &Error) -> bool {
    *e.etype() == ERROR_PAGE
}

/// Applies nginx's header-filter edits in order. A value no client could read (a variable
/// such as `$uri` decoded to a line break: a header injection in nginx) is not sent; the
/// written parts of every value were checked at load.
pub fn apply_edits(h: &mut ResponseHeader, edits: &[HeaderEdit]) {
    for e in edits {
        match e.mode {
            HeaderMode::Replace => {
                h.remove_header(e.name.as_str());
                if !e.value.is_empty() {
                    let _ = h.insert_header(e.name.clone(), e.value.as_slice());
                }
            }
            HeaderMode::Append => {
                let _ = h.append_header(e.name.clone(), e.value.as_slice());
            }
        }
    }
}

/// What nginx's gzip header filter makes of an answer ([`gzip_decision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gzip {
    /// Not one it compresses (its status, type, length or coding).
    No,
    /// One it compresses, but not for this client: it says it varies (`gzip_vary`).
    VaryOnly,
    /// Compressed for this client.
    Compress,
}

/// `ngx_http_gzip_header_filter` + `ngx_http_gzip_ok`, asked of the answer `h` to `req`.
pub fn gzip_decision(req: &RequestHeader, s: &Settings, h: &ResponseHeader) -> Gzip {
    let g = &s.gzip;
    if !g.on || !matches!(h.status.as_u16(), 200 | 403 | 404) {
        return Gzip::No;
    }
    if h.headers
        .get(http::header::CONTENT_ENCODING)
        .is_some_and(|v| !v.is_empty())
    {
        return Gzip::No;
    }
    let length = h
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if length.is_some_and(|l| l < g.min_length) {
        return Gzip::No;
    }
    let ctype = h
        .headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| {
            let v = v.as_bytes();
            let end = v.iter().position(|&b| b == b';').unwrap_or(v.len());
            String::from_utf8_lossy(&v[..end])
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if !g.types.iter().any(|t| t == "*" || *t == ctype) {
        return Gzip::No;
    }
    if !client_takes_gzip(req, s) || !proxied_ok(req, h, s) {
        return Gzip::VaryOnly;
    }
    Gzip::Compress
}

/// `ngx_http_gzip_header_filter` + `ngx_http_gzip_ok`: when nginx would gzip this answer, the
/// engine's compression module is switched on for it (gzip only, at `gzip_comp_level`). An
/// answer of a type nginx compresses says `Vary: Accept-Encoding` with `gzip_vary on` whether
/// or not this client gets it compressed, as nginx marks it before asking the client.
pub fn gzip(session: &mut Session, s: &Settings, h: &mut ResponseHeader) {
    let g = &s.gzip;
    let decided = gzip_decision(session.req_header(), s, h);
    if decided == Gzip::No {
        return;
    }
    let head = session.req_header().method == http::Method::HEAD;
    if g.vary && !varies_on_encoding(h) {
        // The engine's module adds none when one is there.
        let _ = h.append_header(
            http::header::VARY,
            http::HeaderValue::from_static("Accept-Encoding"),
        );
    }
    if decided == Gzip::VaryOnly {
        return;
    }
    if head {
        // nginx's gzip header filter runs for a HEAD too (its body is dropped after the
        // filters): the headers say what the GET would get. The engine's module compresses
        // bodies, and a HEAD has none.
        h.remove_header(&http::header::CONTENT_LENGTH);
        h.remove_header(&http::header::ACCEPT_RANGES);
        weak_etag(h);
        // As on the GET: a compressed answer always says it varies (the engine's module adds
        // it even with `gzip_vary off`), so a cache does not keep the HEAD for both.
        if !varies_on_encoding(h) {
            let _ = h.append_header(
                http::header::VARY,
                http::HeaderValue::from_static("Accept-Encoding"),
            );
        }
        let _ = h.insert_header(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_static("gzip"),
        );
        return;
    }
    if let Some(c) = session
        .downstream_modules_ctx
        .get_mut::<ResponseCompression>()
    {
        if !c.is_header_phase() {
            return;
        }
        c.adjust_algorithm_level(Algorithm::Gzip, g.comp_level);
        // `gzip_types` and `gzip_min_length` decided above, as nginx decides: the module's own
        // list (no `image/png`, nothing named `zip`, nothing under 20 bytes) is not asked.
        c.compress_any_type();
        // The gateway streams what the upstream sends (nginx's `proxy_buffering off`, under
        // which nginx's gzip filter flushes each piece): server-sent events and a chat's tokens
        // reach the browser as they come, not when the compressor's window fills.
        c.flush_each_chunk();
        // The module read the request while it was off: tell it the client takes gzip.
        let mut probe = RequestHeader::build("GET", b"/", Some(1)).expect("static request");
        let _ = probe.insert_header(http::header::ACCEPT_ENCODING, "gzip");
        c.request_filter(&probe);
    }
}

/// The answer says it varies by `Accept-Encoding` already.
pub fn varies_on_encoding(h: &ResponseHeader) -> bool {
    h.headers.get_all(http::header::VARY).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|n| n.trim_ascii().eq_ignore_ascii_case(b"accept-encoding"))
    })
}

/// `ngx_http_gzip_ok`'s questions of the request: its HTTP version (`gzip_http_version`), its
/// `Accept-Encoding`, its `User-Agent` (`gzip_disable`).
fn client_takes_gzip(req: &RequestHeader, s: &Settings) -> bool {
    let version = super::request::version_number(req.version);
    let h = &req.headers;
    let ae = h.get(http::header::ACCEPT_ENCODING).map(|v| v.as_bytes());
    let uas = h
        .get_all(http::header::USER_AGENT)
        .iter()
        .map(|v| v.as_bytes());
    s.gzip.client_takes(version, ae, uas)
}

/// `ngx_http_gzip_ok` for `gzip_static on`, asked before the answer exists: through a proxy
/// (`Via`), whenever `gzip_proxied` is not `off` (nginx asks its flags of an answer that has
/// no headers yet, and each passes).
pub fn gzip_static_ok(req: &RequestHeader, s: &Settings) -> bool {
    if !client_takes_gzip(req, s) {
        return false;
    }
    req.headers.get("via").is_none() || s.gzip.proxied.is_on()
}

/// `ngx_http_weak_etag`: a strong `ETag` made weak (the encoded body is another byte
/// sequence); none that is not a quoted tag is kept.
fn weak_etag(h: &mut ResponseHeader) {
    let Some(etag) = h
        .headers
        .get(http::header::ETAG)
        .map(|v| v.as_bytes().to_vec())
    else {
        return;
    };
    if etag.starts_with(b"W/") {
        return;
    }
    if etag.first() == Some(&b'"') {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(&etag);
        if let Ok(v) = http::HeaderValue::from_bytes(&weak) {
            let _ = h.insert_header(http::header::ETAG, v);
        }
    } else {
        h.remove_header(&http::header::ETAG);
    }
}

/// `gzip_proxied`: a request that came through a proxy (`Via`) is compressed only as allowed,
/// read in `ngx_http_gzip_ok`'s order: `off` (the default) never; `any` always; `auth` for a
/// request with `Authorization`; then an answer with `Expires` only when `expired` is set and it
/// has passed; one with `Cache-Control` only when a set flag names one of its directives; else
/// (neither header) unless `no_last_modified`/`no_etag` find the header they exclude.
fn proxied_ok(req: &RequestHeader, h: &ResponseHeader, s: &Settings) -> bool {
    if req.headers.get("via").is_none() {
        return true;
    }
    let p = s.gzip.proxied;
    if !p.is_on() {
        return false;
    }
    if p.any || (p.auth && req.headers.contains_key(http::header::AUTHORIZATION)) {
        return true;
    }
    if let Some(expires) = h.headers.get(http::header::EXPIRES) {
        let time = |v: &http::HeaderValue| httpdate::parse_http_date(v.to_str().ok()?.trim()).ok();
        let Some(expires) = time(expires) else {
            return false;
        };
        let date = match h.headers.get(http::header::DATE) {
            Some(d) => match time(d) {
                Some(d) => d,
                None => return false,
            },
            None => std::time::SystemTime::now(),
        };
        return p.expired && expires < date;
    }
    if h.headers.contains_key(http::header::CACHE_CONTROL) {
        let names = |name: &str| {
            h.headers
                .get_all(http::header::CACHE_CONTROL)
                .iter()
                .flat_map(|v| v.as_bytes().split(|&b| b == b','))
                // `ngx_http_parse_multi_header_lines`: the name alone, ended by the value's
                // end or a comma (`private="x"` is not `private`).
                .any(|d| d.trim_ascii_start().eq_ignore_ascii_case(name.as_bytes()))
        };
        return (p.no_cache && names("no-cache"))
            || (p.no_store && names("no-store"))
            || (p.private && names("private"));
    }
    !(p.no_last_modified && h.headers.contains_key(http::header::LAST_MODIFIED))
        && !(p.no_etag && h.headers.contains_key(http::header::ETAG))
}

/// The upstream's answer header arrived: with `proxy_intercept_errors` and an `error_page`
/// for its status, nginx answers with the error page instead (written by the failure phase,
/// or proxied again).
pub fn upstream_answered(flight: &mut Option<Box<Flight>>, status: u16) -> Result<()> {
    let Some(f) = flight.as_mut() else {
        return Ok(());
    };
    let action = {
        let fs = disk(f);
        f.rules
            .server
            .upstream_answered(&f.request, &f.proxy, status, fs.as_ref())
    };
    match action {
        Some(a) => {
            let retry = next(f, a);
            if !retry && f.pending.is_none() {
                // The error page lands on a [[routes]] entry or on nothing: the upstream's own
                // answer goes out, as without the error page.
                return Ok(());
            }
            let mut e = Error::explain(ERROR_PAGE, "the upstream's error has an error_page");
            e.set_retry(retry);
            Err(e)
        }
        None => Ok(()),
    }
}

/// `X-Accel-Redirect` in the upstream's answer (unless `proxy_ignore_headers` names it): the
/// request goes on where it leads, as nginx's internal redirect, and the upstream's answer is
/// dropped. The new answer is written by the failure phase, as an error page's is (or the
/// engine's retry proxies it elsewhere); the headers nginx carries over are kept for it.
pub fn accel_redirect(
    flight: &mut Option<Box<Flight>>,
    resp: &ResponseHeader,
    session_cookie: Option<&str>,
) -> Result<()> {
    let Some(f) = flight.as_mut() else {
        return Ok(());
    };
    let Some(value) = resp.headers.get(ACCEL_REDIRECT) else {
        return Ok(());
    };
    let server = &f.rules.server;
    if server
        .settings_for(&f.proxy.state)
        .proxy
        .ignore_accel_redirect
    {
        return Ok(());
    }
    let value = value.as_bytes().to_vec();
    f.carried = CARRIED
        .iter()
        .filter_map(|n| Some((n.clone(), resp.headers.get(n)?.clone())))
        .collect();
    // Its cookies too (a download's `fileDownload=true`, a session the CRM began), as on a
    // proxied answer: `proxy_cookie_*` of the location that proxied, the gateway's own
    // cookies never.
    for v in resp.headers.get_all(http::header::SET_COOKIE) {
        if crate::headers::sets_gateway_cookie(v.as_bytes(), session_cookie) {
            continue;
        }
        let rewritten = f
            .rules
            .server
            .proxy_cookie(&f.request, &f.proxy, v.as_bytes())
            .and_then(|c| http::HeaderValue::from_bytes(&c).ok());
        f.carried.push((
            http::header::SET_COOKIE,
            rewritten.unwrap_or_else(|| v.clone()),
        ));
    }
    let action = {
        let fs = disk(f);
        f.rules
            .server
            .accel_redirect(&f.request, f.proxy.state.clone(), &value, fs.as_ref())
    };
    let retry = next(f, action);
    let mut e = Error::explain(ERROR_PAGE, "the upstream's answer names X-Accel-Redirect");
    if !retry && f.pending.is_none() {
        // It leads to a [[routes]] entry or to nothing the gateway can serve from here: the
        // gateway's 502, which says the upstream's answer could not be used.
        e.as_up();
    }
    e.set_retry(retry);
    Err(e)
}

const ACCEL_REDIRECT: http::HeaderName = http::HeaderName::from_static("x-accel-redirect");

/// What nginx copies from an `X-Accel-Redirect` answer (`ngx_http_upstream_headers_in`'s
/// `redirect` ones; `Set-Cookie`, also one, is carried with the care of a proxied answer's).
const CARRIED: [http::HeaderName; 4] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_DISPOSITION,
    http::header::CACHE_CONTROL,
    http::header::EXPIRES,
];

/// The upstream could not be reached or broke before answering: nginx's 502 (504 for a
/// timeout) goes through `error_page`. Returns the error, marked for a retry when the error
/// page proxies to another upstream. `answered`: the gateway already wrote an answer.
pub fn upstream_failed(
    flight: &mut Option<Box<Flight>>,
    answered: bool,
    mut e: Box<Error>,
) -> Box<Error> {
    if answered {
        return e;
    }
    let Some(f) = flight.as_mut() else {
        return e;
    };
    if *e.etype() == ERROR_PAGE {
        // The engine's retry policy ran since: an error page that proxies elsewhere retries.
        let again = std::mem::take(&mut f.reproxy);
        e.set_retry(again);
        return e;
    }
    if f.pending.is_some() || *e.esource() != ErrorSource::Upstream {
        return e;
    }
    let status = failed_status(&e);
    let action = {
        let fs = disk(f);
        f.rules
            .server
            .upstream_failed(&f.request, &f.proxy, status, fs.as_ref())
    };
    let retry = next(f, action);
    // This error's own retry carries it; nothing is left for a later error.
    f.reproxy = false;
    e.set_retry(retry);
    e
}

/// The status nginx gives an upstream attempt that failed before its answer
/// (`ngx_http_upstream_next`): 504 when it timed out, else 502.
pub fn failed_status(e: &Error) -> u16 {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
        _ => 502,
    }
}

/// pingora's retry policy (retry only what is safe to send twice), then nginx's: an
/// `error_page` may answer the error, or send the request to another upstream.
pub fn error_while_proxy(
    peer: &pingora::upstreams::peer::HttpPeer,
    session: &mut Session,
    e: Box<Error>,
    flight: &mut Option<Box<Flight>>,
    answered: bool,
    client_reused: bool,
) -> Box<Error> {
    let mut e = e.more_context(format!("Peer: {peer}"));
    if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated() {
        e.set_retry(false);
    } else {
        e.retry.decide_reuse(client_reused);
    }
    upstream_failed(flight, answered, e)
}

/// Takes an action that replaces the upstream's answer: another upstream (proxied again by the
/// engine's retry: `true`; the flight names it), or an answer kept for the failure phase.
fn next(f: &mut Flight, action: Action) -> bool {
    let decision = {
        let fs = disk(f);
        classify(&f.rules, &f.request, action, fs.as_ref())
    };
    match decision {
        Decision::Upstream { proxy, upstream } => {
            f.proxy = proxy;
            f.upstream = upstream;
            f.reproxy = true;
            // The engine sends the body it kept to the next upstream through the body filter
            // again: counted afresh, not twice against `client_max_body_size`.
            f.body_seen = 0;
            true
        }
        Decision::Answer(a) => {
            f.pending = Some(*a);
            false
        }
        // An error page that lands on a [[routes]] entry or on nothing: the gateway's own
        // failure answer (502/504, JSON or HTML) is written.
        Decision::Route { .. } | Decision::NoRoute => false,
    }
}

/// The failure phase: writes the `error_page` answer an upstream error led to, and returns
/// its status. `None` when there is none (the gateway's own failure answer applies).
/// The client has its answer's header: nothing more can be written in its place. (A
/// `100 Continue` is not the answer; a `101` is: the connection speaks another protocol since,
/// and a page written into it would be garbage there.)
pub fn answered(session: &Session) -> bool {
    session.response_written().is_some_and(|r| {
        !r.status.is_informational() || r.status == http::StatusCode::SWITCHING_PROTOCOLS
    })
}

pub async fn write_pending(
    session: &mut Session,
    flight: Option<&mut Flight>,
    request_id: &str,
) -> Option<u16> {
    let f = flight?;
    let action = f.pending.take()?;
    if answered(session) {
        return None;
    }
    // The engine does not reuse a client connection after a failed proxy attempt: the answer
    // says so (`Connection: close`), or a client would send its next request into a reset.
    session.set_keepalive(None);
    let carried = std::mem::take(&mut f.carried);
    match super::answer::write_carrying(session, request_id, &f.rules, &f.request, action, &carried)
        .await
    {
        Ok(status) => Some(status),
        Err(_) => Some(0),
    }
}

/// The answer's variables `add_header` and `expires` read
/// ([`nginx_compat::vars::is_answer_variable`]).
pub struct AnswerVars<'a> {
    pub status: u16,
    pub headers: &'a http::HeaderMap,
    /// The upstream's, when it answered.
    pub upstream: Option<Upstream<'a>>,
}

pub struct Upstream<'a> {
    /// `host:port`, as `$upstream_addr` names it in the access log.
    pub addr: &'a str,
    /// Its status, before an `error_page` kept the error's.
    pub status: u16,
    /// Its headers `proxy_hide_header` took off the answer.
    pub hidden: &'a [(&'a str, http::HeaderValue)],
}

impl nginx_compat::vars::Answer for AnswerVars<'_> {
    fn var(&self, name: &str) -> Option<Vec<u8>> {
        let header = |h: &str| joined(self.headers, &h.replace('_', "-"));
        let up = self.upstream.as_ref();
        match name {
            "status" => Some(format!("{:03}", self.status).into_bytes()),
            "upstream_addr" => Some(up?.addr.as_bytes().to_vec()),
            "upstream_status" => Some(up?.status.to_string().into_bytes()),
            // Its time is known once the body is read, after the headers went out.
            "upstream_response_time" => up.map(|_| b"-".to_vec()),
            _ => {
                if let Some(h) = name.strip_prefix("sent_http_") {
                    return header(h);
                }
                let h = name.strip_prefix("upstream_http_")?;
                let up = up?;
                header(h).or_else(|| {
                    let wanted = h.replace('_', "-");
                    up.hidden
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&wanted))
                        .map(|(_, v)| v.as_bytes().to_vec())
                })
            }
        }
    }
}

/// Every line of the header `name`, joined with `, ` as nginx joins a header's lines for its
/// `$sent_http_*` and `$upstream_http_*`.
pub fn joined(headers: &http::HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut all = headers.get_all(name).iter();
    let mut v = all.next()?.as_bytes().to_vec();
    for more in all {
        v.extend_from_slice(b", ");
        v.extend_from_slice(more.as_bytes());
    }
    Some(v)
}

/// nginx's response filters on the upstream's answer header.
pub fn upstream_response(
    session: &mut Session,
    resp: &mut ResponseHeader,
    flight: Option<&Flight>,
    upstream_addr: &str,
) {
    let Some(f) = flight else {
        return;
    };
    let upstream_status = resp.status.as_u16();
    // An error_page without `=` that ended in a proxied location keeps the error's status.
    if let Some(s) = f.proxy.status {
        let _ = resp.set_status(s);
    }
    let server = &f.rules.server;
    for name in [http::header::LOCATION, http::header::REFRESH] {
        let Some(v) = resp.headers.get(&name).map(|v| v.as_bytes().to_vec()) else {
            continue;
        };
        let rewritten = if name == http::header::LOCATION {
            server.proxy_redirect(&f.request, &f.proxy, &v)
        } else {
            refresh(&v).and_then(|(head, url)| {
                let mut new = head.to_vec();
                new.extend(server.proxy_redirect_refresh(&f.request, &f.proxy, url)?);
                Some(new)
            })
        };
        if let Some(new) = rewritten {
            let _ = resp.insert_header(name, new.as_slice());
        }
    }
    let settings = server.settings_for(&f.proxy.state);
    // `proxy_cookie_path` / `_domain` / `_flags`: each Set-Cookie in its place.
    let p = &settings.proxy;
    if !p.cookie_paths.is_empty() || !p.cookie_domains.is_empty() || !p.cookie_flags.is_empty() {
        cookie_rewrites(resp, f);
    }
    // `proxy_hide_header`: never copied from the upstream's answer (`add_header` may still
    // set one of the name, and `$upstream_http_NAME` still reads it).
    let mut hidden = Vec::new();
    for name in settings.proxy.hide_headers.iter() {
        if let Some(v) = resp.remove_header(name.as_str()) {
            hidden.push((name.as_str(), v));
        }
    }
    let last_modified = resp
        .headers
        .get(http::header::LAST_MODIFIED)
        .and_then(|v| httpdate::parse_http_date(v.to_str().ok()?).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64);
    // The headers filter reads the answer as it is before the charset filter labels it.
    let answer = AnswerVars {
        status: resp.status.as_u16(),
        headers: &resp.headers,
        upstream: Some(Upstream {
            addr: upstream_addr,
            status: upstream_status,
            hidden: &hidden,
        }),
    };
    let edits = server.response_headers(
        &f.request,
        &f.proxy.state,
        resp.status.as_u16(),
        last_modified,
        super::answer::now_secs(),
        &answer,
    );
    super::answer::charset(&f.rules, &f.proxy.state, resp, true);
    apply_edits(resp, &edits);
    gzip(session, settings, resp);
}

/// `proxy_cookie_path`, `proxy_cookie_domain` and `proxy_cookie_flags` on every
/// `Set-Cookie`, each kept in its place.
fn cookie_rewrites(resp: &mut ResponseHeader, f: &Flight) {
    let cookies: Vec<Vec<u8>> = resp
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect();
    let rewritten: Vec<Option<Vec<u8>>> = cookies
        .iter()
        .map(|c| f.rules.server.proxy_cookie(&f.request, &f.proxy, c))
        .collect();
    if rewritten.iter().any(Option::is_some) {
        resp.remove_header(&http::header::SET_COOKIE);
        for (old, new) in cookies.iter().zip(rewritten) {
            let v = new.as_deref().unwrap_or(old);
            let _ = resp.append_header(http::header::SET_COOKIE, v);
        }
    }
}

/// `Refresh: 5; url=...`: the part up to the URL and the URL.
fn refresh(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let lower = v.to_ascii_lowercase();
    let i = lower.windows(4).position(|w| w == b"url=")? + 4;
    Some((&v[..i], &v[i..]))
}

/// `client_max_body_size` over a body whose length was not declared (chunked): nginx reads it
/// and answers 413 once it is too long.
pub fn request_body(flight: Option<&mut Flight>, chunk: Option<&bytes::Bytes>) -> Result<()> {
    let Some(f) = flight else {
        return Ok(());
    };
    f.body_seen += chunk.map_or(0, |c| c.len() as u64);
    let max = f
        .rules
        .server
        .settings_for(&f.proxy.state)
        .client_max_body_size;
    if max != 0 && f.body_seen > max && f.pending.is_none() {
        let mut st = f.proxy.state.clone();
        st.discard_body = true;
        let action = {
            let fs = disk(f);
            f.rules.server.finalize_at(&f.request, st, 413, fs.as_ref())
        };
        f.pending = Some(action);
        return Error::e_explain(
            ERROR_PAGE,
            "the request body is larger than client_max_body_size",
        );
    }
    Ok(())
}

/// The file system the rule set's content phase sees.
fn disk(f: &Flight) -> Box<dyn FileSystem + '_> {
    match &f.rules.static_base {
        Some(base) => Box::new(DiskFs { base }),
        None => Box::new(NoFiles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_splits_at_its_url() {
        assert_eq!(
            refresh(b"5; URL=http://a/b"),
            Some((&b"5; URL="[..], &b"http://a/b"[..]))
        );
        assert_eq!(refresh(b"5"), None);
    }
}
