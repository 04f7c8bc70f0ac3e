//! The public listener's connections (SPEC section 4, `[server]`): how long an idle keep-alive
//! connection and a slow request header may hold one, how many may be open, and the HTTP/1.x
//! framing rules a proxy in front of old CRMs must get right.
//!
//! nginx's `keepalive_timeout`, `client_header_timeout` and `worker_connections` are the model;
//! without them 20,000 idle or trickling clients hold every file descriptor of the process.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::http::RequestHeader;
use pingora::protocols::http::v1::server::HeaderLimits;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorSource, ErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::model::{ServerSettings, Upstream};

/// File descriptors kept free for everything that is not a client connection (upstream
/// connections, the log, the store, refusals being answered).
const FD_RESERVE: u64 = 256;

/// Connections the admin listener holds at once (health checks, a metrics scraper, an
/// operator): kept apart from the public listener's, so a flood of either leaves the other
/// its descriptors, and `/healthz` answers while the site is full.
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Connections the qyapi listener holds at once (the CRM back end's connection pools; SPEC 16
/// has a thousand calls at once), at most a quarter of the descriptors there are.
const QYAPI_MAX_CONNECTIONS: usize = 4096;

/// How many connections each listener may hold open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub public: usize,
    pub admin: usize,
    pub qyapi: usize,
}

/// How long a refused connection is read from after its answer, so the client's request does
/// not turn the close into a reset that destroys the answer before it is read.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// Refused connections answered and lingered on at once, at most: a burst of connections past
/// the limit arrives faster than lingering ones end, and must not take the descriptors kept
/// for the admin listener (its `/healthz` timed out during a burst). Past this, a refused
/// connection is closed at once, unanswered.
const MAX_LINGERING: usize = (FD_RESERVE / 4) as usize;

/// The HTTP/1.x options of the public listener.
pub fn server_options(server: &ServerSettings) -> HttpServerOptions {
    let mut o = HttpServerOptions::default();
    o.h1_header_timeout = Some(server.header_timeout);
    // nginx answers 400 to a raw space or control byte in the request line; pingora would
    // percent-encode it and pass the request on.
    o.h1_strict_request_line = true;
    // nginx answers 400 to a request framed by both a length and chunks; pingora would drop the
    // length and read the chunks, which a hop in front that reads the length sees otherwise.
    o.h1_strict_framing = true;
    // nginx's bounds of a request head; pingora alone reads up to 1 MiB of it, which 20,000
    // connections that never finish their heads turn into 20 GB held for `header_timeout`.
    o.h1_header_limits = Some(HeaderLimits {
        line: server.header_buffers.size,
        total: server.header_buffers.total,
    });
    o
}

/// A listener's application with at most `max` connections open at once; a connection beyond
/// that is answered 503 at once and closed, without being read.
pub struct Limited<A> {
    pub inner: Arc<A>,
    pub max: usize,
    /// The listener's name in the log (`public`, `admin`, `qyapi`).
    listener: &'static str,
    open: AtomicUsize,
    /// Refusals being answered (an eighth of `max`, [`MAX_LINGERING`] at most).
    lingering: AtomicUsize,
    max_lingering: usize,
    refused: AtomicU64,
    last_report: AtomicU64,
}

impl<A> Limited<A> {
    pub fn new(inner: A, max: usize, listener: &'static str) -> Self {
        Limited {
            inner: Arc::new(inner),
            max,
            listener,
            open: AtomicUsize::new(0),
            lingering: AtomicUsize::new(0),
            max_lingering: (max / 8).clamp(1, MAX_LINGERING),
            refused: AtomicU64::new(0),
            last_report: AtomicU64::new(0),
        }
    }

    /// One line at most every 10 s, so a flood of refusals cannot flood the log.
    fn report_refusal(&self) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_report.load(Ordering::Relaxed);
        if now >= last + 10
            && self
                .last_report
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                listener = self.listener,
                max_connections = self.max,
                refused_total = refused,
                "listener full: new connections are refused with 503"
            );
        }
    }
}

/// A place among the open connections, given back when the connection ends.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(open: &'a AtomicUsize, max: usize) -> Option<Self> {
        if open.fetch_add(1, Ordering::AcqRel) >= max {
            open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(open))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let Some(_slot) = Slot::take(&self.open, self.max) else {
            self.report_refusal();
            if let Some(_answering) = Slot::take(&self.lingering, self.max_lingering) {
                refuse(stream).await;
            }
            return None;
        };
        self.inner.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

/// The answer to a connection beyond the limit: a complete response, then close.
fn refusal(request_id: &str) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"too_many_connections\",\"detail\":\"the gateway has reached its connection limit, retry shortly\",\"request_id\":\"{request_id}\"}}\n"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nx-request-id: {request_id}\r\nconnection: close\r\ncache-control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn refuse(mut stream: Stream) {
    let answer = refusal(&crate::request_id::generate());
    if stream.write_all(&answer).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    let _ = AsyncWriteExt::shutdown(&mut stream).await;
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Raises the soft limit on open files to the hard one, and returns how many connections each
/// listener may hold: the internal listeners' own limits (within a small open-files limit, an
/// eighth and a quarter of it), which a full public listener must leave them, and for the
/// public listener `max_connections`, or fewer when the process may not open that many files
/// besides.
pub fn limits(server: &ServerSettings, admin: bool, qyapi: bool) -> Limits {
    let limit = raise_fd_limit();
    let spare = limit.saturating_sub(FD_RESERVE) as usize;
    let admin = if admin {
        ADMIN_MAX_CONNECTIONS.min(spare / 8).max(1)
    } else {
        0
    };
    let qyapi = if qyapi {
        QYAPI_MAX_CONNECTIONS.min(spare / 4).max(1)
    } else {
        0
    };
    Limits {
        public: public_limit(server, limit, admin + qyapi),
        admin,
        qyapi,
    }
}

fn public_limit(server: &ServerSettings, limit: u64, internal: usize) -> usize {
    let max_connections = server.max_connections;
    let usable = limit.saturating_sub(FD_RESERVE + internal as u64).max(1);
    if (max_connections as u64) > usable {
        // A limit nobody wrote (the default) is only said, not warned about at every start,
        // unless what is left would not serve a site (a `ulimit -n` of 1024 leaves 768; one
        // of 256 left a single connection, said at info).
        if server.max_connections_written {
            tracing::warn!(
                max_connections,
                open_files_limit = limit,
                using = usable,
                "server.max_connections is above what the open-files limit allows; raise `ulimit -n`"
            );
        } else if usable < 512 {
            tracing::warn!(
                open_files_limit = limit,
                using = usable,
                "public connections limited by the open-files limit to too few for a site; raise `ulimit -n` (LimitNOFILE= under systemd)"
            );
        } else {
            tracing::info!(
                open_files_limit = limit,
                using = usable,
                "public connections limited by the open-files limit"
            );
        }
        usable as usize
    } else {
        max_connections
    }
}

fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return u64::MAX;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Per request on the public listener, before anything else: the connection's keep-alive time
/// and HTTP/1.1 pipelining (requests sent back to back are all answered, in order).
pub fn on_request(session: &mut Session, server: &ServerSettings) {
    // pingora keeps an HTTP/1.1 connection open without a time limit unless told otherwise.
    if session.get_keepalive().is_some() {
        let secs = server.keepalive_timeout.as_secs();
        session.set_keepalive((secs > 0).then_some(secs));
    }
    session.set_pipelining_enabled(true);
    // A client that stops reading its answer: closed after nginx's `send_timeout` (60 s)
    // without progress, rather than holding its connection, and the upstream's it streams
    // from (a CRM worker), for as long as it likes.
    session.set_write_timeout(Some(SEND_TIMEOUT));
}

/// nginx's `send_timeout` default; an included nginx file's own applies where it writes one.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The connection stays open, idle, for `idle` after this request (none: it closes after the
/// answer), unless it closes anyway (HTTP/1.0 without keep-alive, `Connection: close`).
pub fn keep_alive(session: &mut Session, idle: std::time::Duration) {
    if session.get_keepalive().is_some() {
        // pingora counts whole seconds; nginx's `keepalive_timeout 500ms` is kept a second.
        let secs = idle.as_millis().div_ceil(1000) as u64;
        session.set_keepalive((secs > 0).then_some(secs));
    }
}

/// Why a request must be refused with 400 before it is routed, if it must.
pub fn malformed(req: &RequestHeader) -> Option<&'static str> {
    malformed_as(&req.method, req.version, &crate::headers::Asked::of(req)).map(|(_, why)| why)
}

/// The same, from the request's version and the first look at its headers, with the kind of
/// answer (nginx's 400, or its 501 for a coding it does not read).
pub fn malformed_as(
    method: &http::Method,
    version: http::Version,
    asked: &crate::headers::Asked,
) -> Option<(crate::answers::Kind, &'static str)> {
    use crate::answers::Kind;
    // nginx's parser takes a method of capitals, `_` and `-` only ("client sent invalid
    // method"), and answers TRACE 405 whatever the location: it echoes the request, cookies and
    // all, and security scans flag a server that passes it on.
    if !method
        .as_str()
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-')
    {
        return Some((Kind::BadRequest, "the method is not one"));
    }
    if method == http::Method::TRACE {
        return Some((Kind::MethodNotAllowed, "TRACE is not allowed"));
    }
    // Not a tunnel: nginx answers 405 too.
    if method == http::Method::CONNECT {
        return Some((Kind::MethodNotAllowed, "CONNECT is not allowed"));
    }
    // nginx's order (`ngx_http_process_request_header`): a second `Transfer-Encoding`, one on
    // an HTTP/1.0 request (which has no chunks to frame), a coding it does not read (501),
    // then `Content-Length` beside `chunked`.
    if asked.coding_twice {
        return Some((Kind::BadRequest, "Transfer-Encoding must come once"));
    }
    if asked.coding && version < http::Version::HTTP_11 {
        return Some((
            Kind::BadRequest,
            "an HTTP/1.0 request cannot carry Transfer-Encoding",
        ));
    }
    if asked.coding_unknown {
        return Some((
            Kind::NotImplemented,
            "Transfer-Encoding other than chunked is not read",
        ));
    }
    if asked.coding && asked.length {
        return Some((
            Kind::BadRequest,
            "Content-Length and Transfer-Encoding cannot both frame a request",
        ));
    }
    malformed_head(version, asked).map(|why| (Kind::BadRequest, why))
}

fn malformed_head(version: http::Version, asked: &crate::headers::Asked) -> Option<&'static str> {
    // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    if version == http::Version::HTTP_11 && !asked.host {
        return Some("an HTTP/1.1 request must carry a Host header");
    }
    // nginx: "client sent invalid host header".
    if asked.host_invalid {
        return Some("the Host header is not a host");
    }
    // RFC 9110 section 8.6: a list is either refused or sent on as one value; nginx refuses.
    if asked.length_list {
        return Some("Content-Length must be one number");
    }
    None
}

/// The origin form (`/x?a`) of an absolute-form request target (`http://host/x?a`), `None` for
/// any other target (the first byte says so for nearly every request).
pub fn origin_form(target: &[u8]) -> Option<Vec<u8>> {
    if target.first() == Some(&b'/') {
        return None;
    }
    let rest = [&b"http://"[..], b"https://"].iter().find_map(|scheme| {
        (target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme))
            .then(|| &target[scheme.len()..])
    })?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let mut origin = rest[end..].to_vec();
    if origin.first() != Some(&b'/') {
        origin.insert(0, b'/');
    }
    Some(origin)
}

/// An HTTP/1.0 request may come without Host; the upstream still needs one.
pub fn upstream_host(req: &mut RequestHeader, upstream: &Upstream) -> pingora::Result<()> {
    if req.headers.get(http::header::HOST).is_none() {
        req.insert_header(http::header::HOST, upstream.authority.as_str())?;
    }
    Ok(())
}

/// A client request body that broke its own framing (a bad chunk, fewer bytes than its
/// `Content-Length`, a stall): a 400 is still worth writing, the client may be reading.
pub fn bad_request_body(session: &Session, e: &Error) -> Option<&'static str> {
    if *e.esource() != ErrorSource::Downstream {
        return None;
    }
    match e.etype() {
        ErrorType::Custom("InvalidChunk") | ErrorType::Custom("InvalidTrailerEnd") => {
            Some("malformed chunked request body")
        }
        ErrorType::Custom("PrematureBodyEnd") => {
            Some("the request body ended before its announced length")
        }
        // Also what a client that leaves while its answer is awaited causes: only a body
        // short of its length is the client's mistake.
        ErrorType::ConnectionClosed if body_short(session) => {
            Some("the request body ended before its announced length")
        }
        ErrorType::ReadTimedout => Some("the request body did not arrive in time"),
        _ => None,
    }
}

fn body_short(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok())
        .is_some_and(|len| session.body_bytes_read() < len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_refused_beyond_the_limit_and_given_back() {
        let open = AtomicUsize::new(0);
        let a = Slot::take(&open, 2).expect("first");
        let b = Slot::take(&open, 2).expect("second");
        assert!(Slot::take(&open, 2).is_none(), "third is refused");
        assert_eq!(open.load(Ordering::Relaxed), 2);
        drop(a);
        let c = Slot::take(&open, 2).expect("a freed place is usable");
        drop((b, c));
        assert_eq!(open.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_refusal_is_a_complete_response_that_closes() {
        let r = String::from_utf8(refusal("rid1")).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains("\"request_id\":\"rid1\""));
    }

    fn load(server_keys: &str) -> Result<crate::config::Config, String> {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://a\"\n{server_keys}\n[upstreams.crm]\nurl = \"http://127.0.0.1:2\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
        );
        crate::config::load_str("t.toml", &text, std::path::Path::new("."))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn connection_keys_have_nginx_defaults_and_refuse_what_cannot_work() {
        let c = load("").unwrap();
        assert_eq!(c.server.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(c.server.header_timeout, Duration::from_secs(60));
        assert_eq!(c.server.max_connections, 20_000);
        let nginx_default = nginx_compat::HeaderBuffers {
            size: 8192,
            total: 32768,
        };
        assert_eq!(c.server.header_buffers, nginx_default);
        let c = load("large_client_header_buffers = \"2 16k\"").unwrap();
        assert_eq!(c.server.header_buffers.size, 16384);
        assert_eq!(c.server.header_buffers.total, 32768);
        let c = load("keepalive_timeout = \"0s\"\nheader_timeout = \"500ms\"\nmax_connections = 5")
            .unwrap();
        assert_eq!(c.server.keepalive_timeout, Duration::ZERO);
        assert_eq!(c.server.header_timeout, Duration::from_millis(500));
        assert_eq!(c.server.max_connections, 5);
        for (keys, names) in [
            (
                "keepalive_timeout = \"1500ms\"",
                "[server].keepalive_timeout",
            ),
            ("keepalive_timeout = \"2h\"", "[server].keepalive_timeout"),
            ("keepalive_timeout = \"soon\"", "[server].keepalive_timeout"),
            ("header_timeout = \"10ms\"", "[server].header_timeout"),
            ("max_connections = 0", "[server].max_connections"),
            (
                "large_client_header_buffers = \"4\"",
                "[server].large_client_header_buffers",
            ),
            (
                "large_client_header_buffers = \"0 8k\"",
                "[server].large_client_header_buffers",
            ),
            (
                "large_client_header_buffers = \"4 100\"",
                "[server].large_client_header_buffers",
            ),
            (
                "large_client_header_buffers = \"4 512k\"",
                "[server].large_client_header_buffers",
            ),
            (
                "large_client_header_buffers = \"4 8q\"",
                "[server].large_client_header_buffers",
            ),
        ] {
            let Err(e) = load(keys) else {
                panic!("{keys}: accepted")
            };
            assert!(e.contains(names) && e.contains("t.toml:4:"), "{keys}: {e}");
        }
    }

    #[test]
    fn an_absolute_form_target_becomes_its_origin_form() {
        for (target, want) in [
            (&b"http://h/x?a=1"[..], Some(&b"/x?a=1"[..])),
            (b"HTTPS://h:8443/a/b", Some(b"/a/b")),
            (b"http://h", Some(b"/")),
            (b"http://h?q", Some(b"/?q")),
            (b"/plain", None),
            (b"*", None),
            (b"ftp://h/x", None),
        ] {
            assert_eq!(origin_form(target).as_deref(), want, "{target:?}");
        }
    }

    #[test]
    fn a_request_framed_twice_is_malformed_as_nginx_reads_it() {
        let req = |version, pairs: &[(&str, &str)]| {
            let mut r = RequestHeader::build("POST", b"/", None).unwrap();
            r.set_version(version);
            r.insert_header("host", "a").unwrap();
            for (n, v) in pairs {
                r.append_header(n.to_string(), *v).unwrap();
            }
            r
        };
        let v11 = http::Version::HTTP_11;
        let te = ("Transfer-Encoding", "chunked");
        let cl = ("Content-Length", "5");
        assert_eq!(malformed(&req(v11, &[te])), None);
        assert_eq!(malformed(&req(v11, &[cl])), None);
        for (version, pairs) in [
            (v11, &[te, cl][..]),
            (v11, &[cl, te][..]),
            (v11, &[te, te][..]),
            (http::Version::HTTP_10, &[te][..]),
        ] {
            let why = malformed(&req(version, pairs));
            assert!(why.is_some(), "{version:?} {pairs:?}");
            assert_eq!(
                malformed_as(
                    &http::Method::POST,
                    version,
                    &crate::headers::Asked::of(&req(version, pairs))
                )
                .map(|(k, _)| k),
                Some(crate::answers::Kind::BadRequest)
            );
        }
    }

    #[test]
    fn requests_without_host_are_malformed_only_in_http_1_1() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.set_version(http::Version::HTTP_11);
        assert!(malformed(&r).is_some());
        r.insert_header("host", "a").unwrap();
        assert!(malformed(&r).is_none());
        let mut r10 = RequestHeader::build("GET", b"/", None).unwrap();
        r10.set_version(http::Version::HTTP_10);
        assert!(malformed(&r10).is_none());
    }
}

/// The client closed its connection (or it broke) before its answer was written.
pub fn client_went_away(e: &pingora::Error) -> bool {
    // An answer the gateway writes itself that the client reset (a page, a file, a callback's
    // answer) fails in the engine's server session without a source.
    matches!(
        e.esource(),
        pingora::ErrorSource::Downstream | pingora::ErrorSource::Unset
    ) && matches!(
        e.etype(),
        pingora::ErrorType::ConnectionClosed
            | pingora::ErrorType::ReadError
            | pingora::ErrorType::WriteError
    )
}
