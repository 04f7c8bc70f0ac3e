//! What the gateway reads from a request on the public listener: the query, its own cookies,
//! a small JSON body, the form the client reads answers in. Every handler and gate asks here,
//! so each is read one way.

use pingora::proxy::Session;
use serde::de::DeserializeOwned;

use super::Ctx;
use crate::answers::{Failure, Form, Kind};

/// The query's `(name, value)` pairs, decoded, in order.
pub fn query(session: &Session) -> Vec<(String, String)> {
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

/// Every escape of the query decodes to text: one that does not is read with U+FFFD in its
/// place by [`query`], which a value that must be exact (a URL to sign) cannot be.
pub fn query_is_text(session: &Session) -> bool {
    session.req_header().uri.query().is_none_or(|q| {
        percent_encoding::percent_decode(q.as_bytes())
            .decode_utf8()
            .is_ok()
    })
}

/// The first value of `name`.
pub fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `(name, value)` pairs of every `Cookie` header that are text, read from bytes: one
/// non-ASCII byte anywhere must not hide the gateway's own cookies.
pub fn cookies(session: &Session) -> Vec<(String, String)> {
    crate::cookies::text_pairs(cookie_headers(session))
}

/// The text values of the cookies named `name` (usually one), borrowed from the request.
pub fn cookie_values<'a>(
    session: &'a Session,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    crate::cookies::text_values(cookie_headers(session), name)
}

/// Every `Cookie` header of the request, as bytes.
fn cookie_headers(session: &Session) -> impl Iterator<Item = &[u8]> {
    session
        .req_header()
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .map(|v| v.as_bytes())
}

/// The mini-program bearer token of ours in `Authorization`, if any (SPEC section 19); the
/// first of ours where the request has several `Authorization` fields (the CRM's own Basic
/// credentials beside it), so that the session is judged by what is taken off upstream.
pub fn bearer(session: &Session) -> Option<&str> {
    session
        .req_header()
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .find_map(|v| crate::login::bearer::ours(v.as_bytes()))
}

/// A header as text, when it is text.
pub fn header(session: &Session, name: impl http::header::AsHeaderName) -> Option<&str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

/// JSON or a page, as the request's method and `Accept` say.
pub fn form(session: &Session) -> Form {
    let req = session.req_header();
    Form::of(
        &req.method,
        req.headers.get(http::header::ACCEPT).map(|v| v.as_bytes()),
    )
}

/// How long the gateway's own endpoints wait for a whole body (a callback, a JSON request: a
/// few KiB). pingora bounds each read, not the whole: a client sending a byte every few seconds
/// would hold the connection for hours, and WeCom's callbacks share the public listener.
pub const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why [`small_body`] has no body to give.
#[derive(Debug, PartialEq, Eq)]
pub enum Unread {
    TooLarge,
    Broken,
    /// Not all there within this long.
    Late(std::time::Duration),
    /// Bodies of its kind held at once are at their bound.
    Busy,
}

impl Unread {
    /// The answer, closing the connection: the rest of the body is left unread.
    pub fn failure(&self) -> Failure {
        match self {
            Unread::TooLarge => Failure::new(Kind::BadRequest, "the body is too large"),
            Unread::Broken => Failure::new(Kind::BadRequest, "the body could not be read"),
            Unread::Late(within) => Failure::new(
                Kind::RequestTimeout,
                format!(
                    "the body did not arrive within {} seconds",
                    within.as_secs()
                ),
            ),
            Unread::Busy => Failure::new(
                Kind::Busy,
                "too many requests of this kind are being read; try again",
            ),
        }
        .closing()
    }
}

/// The whole body, at most `max` bytes, within [`BODY_DEADLINE`].
pub async fn small_body(session: &mut Session, max: usize) -> Result<Vec<u8>, Unread> {
    body_within(session, max, BODY_DEADLINE, |_, _| true).await
}

/// [`small_body`] within `deadline`, each piece read first taken from a budget (`take` says
/// no: [`Unread::Busy`]). `take` is told whether the piece is the whole body, arrived in one
/// read.
pub async fn body_within(
    session: &mut Session,
    max: usize,
    deadline: std::time::Duration,
    mut take: impl FnMut(usize, bool) -> bool,
) -> Result<Vec<u8>, Unread> {
    // A client waiting to be asked for a body declared too large is refused without being
    // asked. (One already sending it is read up to the limit first: refused at once, it would
    // meet a closed connection while it writes, and never read the answer.)
    let declared =
        header(session, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) && expects_continue(session) {
        return Err(Unread::TooLarge);
    }
    continue_if_expected(session).await;
    let read = async {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > max => return Err(Unread::TooLarge),
                Ok(Some(chunk))
                    if !take(chunk.len(), body.is_empty() && session.is_body_done()) =>
                {
                    return Err(Unread::Busy)
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => return Ok(body),
                Err(_) => return Err(Unread::Broken),
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Err(Unread::Late(deadline)))
}

/// nginx's `client_body_timeout` default: the longest a client may pause in sending a body.
pub const CLIENT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The most of a request's body read whole before the upstream is asked.
pub const BUFFERED_BODY: usize = 64 * 1024;

/// nginx reads a request's body before it asks the upstream (`proxy_request_buffering on`,
/// its default): a client trickling a body holds no CRM worker while it does (a Gunicorn sync
/// or PHP-FPM worker would wait for it), and a chunked body reaches the CRM with its length.
/// The gateway does so for a body of up to [`BUFFERED_BODY`]; a longer one is sent on as it
/// comes once that much is read (what nginx keeps beyond its memory buffer goes to a
/// temporary file; the gateway keeps none). The engine sends what was read from its retry
/// buffer, which holds a read of up to its own buffer's size past the limit.
pub async fn buffer_small_body(session: &mut Session, ctx: &mut Ctx) -> pingora::Result<()> {
    if ctx.upgrade || session.as_mut().is_body_empty() {
        return Ok(());
    }
    // The nginx file's `client_body_timeout` where it writes one; else nginx's default, 60 s.
    // Not the upstream's `read_timeout`: how long the CRM may think is not how long a phone
    // on a slow network may pause in an upload (a route's "2s" gave those a 408, its "10m"
    // let a trickling client hold its task that long per read).
    let stall =
        crate::nginx::upstream::body_timeout(ctx.nginx.as_deref()).unwrap_or(CLIENT_BODY_TIMEOUT);
    session.set_read_timeout(Some(stall));
    session
        .as_mut()
        .enable_retry_buffering_up_to(BUFFERED_BODY + 64 * 1024);
    let mut read = 0;
    while read <= BUFFERED_BODY && !session.is_body_done() {
        // The client's, as the engine marks what it reads while proxying.
        match session
            .read_request_body()
            .await
            .map_err(|e| e.into_down())?
        {
            Some(chunk) => {
                read += chunk.len();
                // `client_max_body_size` of a chunked body, as nginx reads it: the 413 before
                // the upstream is asked.
                super::nginx::request_body(ctx, Some(&chunk))?;
            }
            None => break,
        }
    }
    // The engine sends what was read through the body filter: counted afresh there.
    if let Some(f) = ctx.nginx.as_deref_mut() {
        f.body_seen = 0;
    }
    if session.is_body_done() {
        ctx.buffered_body = Some(read);
    }
    Ok(())
}

/// An HTTP/1.1 request with `Expect: 100-continue` (in any of its `Expect` fields: nginx reads
/// the last, a client adding its own `Expect: foo` first still waits).
pub fn expects_continue(session: &pingora::protocols::http::ServerSession) -> bool {
    let h = session.req_header();
    h.version == http::Version::HTTP_11
        && h.headers.get_all(http::header::EXPECT).iter().any(|v| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue")
        })
}

/// `Expect: 100-continue` (HTTP/1.1): the client sends the body only once it has a `100
/// Continue`, or after a wait of its own (a second for PHP's curl, which asks for bodies over
/// 1 KiB). nginx sends it as it starts reading the body (`ngx_http_test_expect`); so does the
/// gateway for every body it reads itself, after the checks that may refuse the request
/// unread.
pub async fn continue_if_expected(session: &mut pingora::protocols::http::ServerSession) {
    if expects_continue(session) && !session.is_body_empty() {
        // The engine ends keep-alive for any answer written before the body is read, the
        // `100` among them; the `100` is what asks for the body, so the connection's
        // keep-alive is what it was. A client gone before it is written is found by the read
        // that follows.
        let keepalive = session.get_keepalive();
        let _ = session.write_continue_response().await;
        session.set_keepalive(keepalive);
    }
}

/// A small JSON body of type `T`, at most `max` bytes. Anything else is a 400 that closes the
/// connection when the rest of the body was left unread.
pub async fn json_body<T: DeserializeOwned>(
    session: &mut Session,
    max: usize,
    shape: &'static str,
) -> Result<T, Failure> {
    let bad = |why: &'static str| Failure::new(Kind::BadRequest, why).closing();
    let json = header(session, http::header::CONTENT_TYPE).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return Err(bad("the body must be application/json"));
    }
    let declared =
        header(session, http::header::CONTENT_LENGTH).and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(bad("the body is too large"));
    }
    let body = small_body(session, max).await.map_err(|u| u.failure())?;
    serde_json::from_slice(&body).map_err(|_| Failure::new(Kind::BadRequest, shape))
}
