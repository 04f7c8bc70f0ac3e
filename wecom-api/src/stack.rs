//! The layers of the API client: the retry policy, token injection, the per-try timeout and
//! the HTTP service at the bottom. They are assembled in one place, [`crate::Client::new`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::retry::Policy;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::error::ApiError;
use crate::local::Local;
use crate::observe::{Observer, RetryReason};
use crate::request::{errcode_of, uri_of, ApiRequest, ApiResponse};
use crate::target::TokenTarget;
use crate::transport::{HttpsConnector, Transport};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One call: where it goes and what it asks. Shared by its tries (the retry layer keeps it
/// for a second one without copying the request).
pub(crate) struct Call {
    pub to: To,
    pub req: ApiRequest,
    /// When the call began: retries stop once [`RETRY_BUDGET`] is spent.
    pub started: std::time::Instant,
    /// How long one try may take ([`CALL_TIMEOUT`] unless the call says otherwise).
    pub timeout: Duration,
}

/// A WeCom call, or a WeChat one, may take this long per try (SPEC section 15).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a call may be given per try ([`Attempt::patient`]).
pub(crate) const MAX_PATIENCE: Duration = Duration::from_secs(60);

pub(crate) enum To {
    /// The call carries a token of this target (and goes to its `api_base`).
    Token(TokenTarget),
    /// No token: `api_base` without a trailing slash.
    Plain(Arc<str>),
}

impl Call {
    pub fn base(&self) -> &str {
        match &self.to {
            To::Token(target) => target.base(),
            To::Plain(base) => base,
        }
    }

    /// Whose token is injected; `None` for plain calls.
    pub fn target(&self) -> Option<&TokenTarget> {
        match &self.to {
            To::Token(target) => Some(target),
            To::Plain(_) => None,
        }
    }
}

/// One try of one call, as it travels down the stack.
#[derive(Clone)]
pub(crate) struct Attempt {
    pub call: Arc<Call>,
    /// Set by the token layer: the token this try carries.
    pub token: Option<Arc<str>>,
    /// Set by the retry policy: the token that just failed, to compare-and-expire.
    pub failed: Option<Arc<str>>,
}

impl Attempt {
    pub fn new(to: To, req: ApiRequest) -> Attempt {
        Attempt::patient(to, req, CALL_TIMEOUT)
    }

    /// A call whose tries may each take `timeout` (at most [`MAX_PATIENCE`]): one whose answer
    /// must not be lost to a slow provider (an AuthCode's exchange spends the code).
    pub fn patient(to: To, req: ApiRequest, timeout: Duration) -> Attempt {
        Attempt {
            call: Arc::new(Call {
                to,
                req,
                started: std::time::Instant::now(),
                timeout: timeout.min(MAX_PATIENCE),
            }),
            token: None,
            failed: None,
        }
    }
}

/// An answer, with the token that earned it (the policy expires exactly that one).
pub(crate) struct Answered {
    pub response: ApiResponse,
    pub token: Option<Arc<str>>,
}

/// The HTTP/1.1 transport at the bottom: hyper's connections with rustls (webpki roots,
/// ring), connects bounded by `connect_timeout` (through `proxies` where they say so), kept
/// idle for up to `idle`; `http://` bases for the emulator and tests.
pub(crate) fn transport(
    connect_timeout: Duration,
    idle: Duration,
    proxies: crate::connect::Proxies,
) -> Transport {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    transport_trusting(roots, connect_timeout, idle, proxies)
}

/// [`transport`], trusting the certificate authorities of `roots`.
pub(crate) fn transport_trusting(
    roots: rustls::RootCertStore,
    connect_timeout: Duration,
    idle: Duration,
    proxies: crate::connect::Proxies,
) -> Transport {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring offers the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Built once: the connections of every thread share the connector and its TLS settings.
    let connector: HttpsConnector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(crate::connect::Connector {
            direct: http,
            proxies,
        });
    Transport::new(connector, idle)
}

/// The bottom of the stack: one HTTP exchange, the body read whole. The request is built from
/// its parts ([`uri_of`]); headers and body are handed over as they are (no text round trip,
/// no copy of the body).
#[derive(Clone)]
pub(crate) struct HttpService {
    pub transport: Local<Transport>,
}

impl Service<Attempt> for HttpService {
    type Response = Answered;
    type Error = BoxError;
    type Future = BoxFuture<Result<Answered, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, a: Attempt) -> Self::Future {
        let transport = self.transport.clone();
        Box::pin(async move {
            let call = &*a.call;
            let param = call.target().map(TokenTarget::param);
            let token = param.zip(a.token.as_deref());
            let mut request = http::Request::new(http_body_util::Full::new(call.req.body.clone()));
            *request.method_mut() = call.req.method.clone();
            *request.uri_mut() = uri_of(call.base(), &call.req, token)?;
            let headers = request.headers_mut();
            headers.reserve(call.req.headers.len());
            for (name, value) in &call.req.headers {
                headers.append(name.clone(), value.clone());
            }
            let (parts, body) = tokio::time::timeout(call.timeout, transport.exchange(request))
                .await
                .map_err(|_| ApiError::Timeout)??;
            let errcode = if crate::request::is_file(&parts.headers) {
                0
            } else {
                errcode_of(&body)
            };
            let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = parts
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            let body = match token {
                Some((_, token)) => {
                    let scrub = Scrub::of(token);
                    let forms = &scrub.forms[..];
                    // The plain spelling is the shortest: a shorter value cannot quote any.
                    for (_, v) in headers.iter_mut() {
                        let v_bytes = v.as_bytes();
                        let quoted = v_bytes.len() >= token.len()
                            && forms.iter().any(|f| f.find(v_bytes).is_some());
                        if quoted {
                            let clean = without(bytes::Bytes::copy_from_slice(v_bytes), forms);
                            if let Ok(c) = http::HeaderValue::from_maybe_shared(clean) {
                                *v = c;
                            }
                        }
                    }
                    if is_text(&parts.headers) {
                        without(body, forms)
                    } else {
                        body
                    }
                }
                None => body,
            };
            Ok(Answered {
                response: ApiResponse {
                    status: parts.status.as_u16(),
                    headers,
                    body,
                    errcode,
                },
                token: a.token,
            })
        })
    }
}

/// How the token injected into a call may be quoted by its answer: as written on the request
/// line, and form-encoded when that differs (a token with `+`, `/` or `=`; WeCom's, of letters,
/// digits, `-` and `_`, are spelled one way), each with its searcher. Building a searcher costs
/// more than the rest of a call's own work (~5k instructions); a token serves thousands of
/// calls, so the searchers of the tokens lately injected are kept.
struct Scrub {
    token: Box<str>,
    /// The plain spelling first: the shortest.
    forms: Vec<memchr::memmem::Finder<'static>>,
}

/// Tokens live two hours; a gateway injects a few at a time (one per app and corp). More than
/// this many at once (a service provider's many corps) and the oldest is built again on use.
const SCRUBS_KEPT: usize = 64;

static SCRUBS: std::sync::Mutex<Vec<Arc<Scrub>>> = std::sync::Mutex::new(Vec::new());

impl Scrub {
    fn of(token: &str) -> Arc<Scrub> {
        let kept = |recent: &[Arc<Scrub>]| recent.iter().find(|s| *s.token == *token).cloned();
        if let Some(s) = kept(&SCRUBS.lock().unwrap_or_else(|p| p.into_inner())) {
            return s;
        }
        let mut forms = vec![memchr::memmem::Finder::new(token.as_bytes()).into_owned()];
        if !crate::request::form_plain(token) {
            let e = url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>();
            forms.push(memchr::memmem::Finder::new(e.as_bytes()).into_owned());
        }
        let made = Arc::new(Scrub {
            token: token.into(),
            forms,
        });
        let mut recent = SCRUBS.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = kept(&recent) {
            return s;
        }
        if recent.len() >= SCRUBS_KEPT {
            recent.remove(0);
        }
        recent.push(made.clone());
        made
    }
}

/// An answer an error would be written in (JSON, text, HTML, XML, or no type at all), not a
/// file of `media/get` whose bytes are the caller's as they are.
fn is_text(headers: &http::HeaderMap) -> bool {
    let Some(t) = headers.get(http::header::CONTENT_TYPE) else {
        return true;
    };
    let t = t.as_bytes();
    let has = |k: &[u8]| t.windows(k.len()).any(|w| w.eq_ignore_ascii_case(k));
    t.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"text/"))
        || [&b"json"[..], b"xml", b"html", b"javascript"]
            .iter()
            .any(|k| has(k))
}

/// `body` without the token in it (any of its `forms`): an answer quoting the URL it was
/// called with (an error page, an errmsg) would hand the token to whoever the answer is passed
/// on to, who never holds one. Its every occurrence becomes `***`; an answer without it is not
/// copied.
fn without(body: bytes::Bytes, forms: &[memchr::memmem::Finder]) -> bytes::Bytes {
    let mut body = body;
    for token in forms {
        let n = token.needle().len();
        if n < 8 || token.find(&body).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(body.len());
        let mut rest = &body[..];
        while let Some(i) = token.find(rest) {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(b"***");
            rest = &rest[i + n..];
        }
        out.extend_from_slice(rest);
        body = out.into();
    }
    body
}

/// What the stack's boxed errors were: a timeout, or the error a layer returned.
pub(crate) fn api_error(e: BoxError) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        return ApiError::Timeout;
    }
    match e.downcast::<ApiError>() {
        Ok(p) => *p,
        Err(e) => ApiError::Unreachable(e.to_string()),
    }
}

/// The one thing the token layer may ask: the current token of a target, after expiring the
/// one that just failed (compare-and-expire). Not the client: the layer cannot make calls.
pub(crate) trait TokenSource: Send + Sync + 'static {
    /// `scope`: the API path of the call the token is for (a refusal is replaced once per
    /// value and path in a while).
    fn token(
        &self,
        target: &TokenTarget,
        failed: Option<Arc<str>>,
        scope: &str,
    ) -> impl Future<Output = Result<Arc<str>, ApiError>> + Send;
}

/// Injects the current token of the attempt's target. On a retry after a token error it
/// first expires the failed token, only if the cache still holds it.
pub(crate) struct TokenLayer<T> {
    pub source: T,
}

impl<T: Clone, S> Layer<S> for TokenLayer<T> {
    type Service = TokenService<T, S>;
    fn layer(&self, inner: S) -> TokenService<T, S> {
        TokenService {
            source: self.source.clone(),
            inner,
        }
    }
}

pub(crate) struct TokenService<T, S> {
    source: T,
    inner: S,
}

impl<T: Clone, S: Clone> Clone for TokenService<T, S> {
    fn clone(&self) -> Self {
        TokenService {
            source: self.source.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S> Service<Attempt> for TokenService<T, S>
where
    T: TokenSource + Clone,
    S: Service<Attempt, Response = Answered, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Answered;
    type Error = BoxError;
    type Future = BoxFuture<Result<Answered, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut a: Attempt) -> Self::Future {
        let source = self.source.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            if let Some(target) = a.call.target() {
                let failed = a.failed.take();
                let token = source.token(target, failed, &a.call.req.path).await;
                a.token = Some(token.map_err(|e| match e {
                    refused @ ApiError::Api { .. } => BoxError::from(refused),
                    e => BoxError::from(ApiError::NotSent(Box::new(e))),
                })?);
            }
            inner.oneshot(a).await
        })
    }
}

/// What to do with an answer (SPEC section 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Done,
    /// 40001/40014/42001: expire the failed token, fetch once, try once more.
    RefreshToken,
    /// -1 "system busy": wait, then try again.
    Backoff(Duration),
}

/// 40082 (invalid) and 42009 (expired) are the suite token's own (WECOM_API.md).
pub(crate) const TOKEN_ERRORS: [i64; 5] = [40001, 40014, 42001, 40082, 42009];
const BUSY_RETRIES: u32 = 3;
/// No retry starts once a call has taken this long: each try is bounded by its own timeout,
/// and a provider answering every try slowly (-1, an expired token, again and again) kept a
/// sign-in waiting 35 s.
pub(crate) const RETRY_BUDGET: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The wait before busy retry number `retried + 1` of an answer with `errcode`, or `None`:
/// -1 ("system busy") is tried again three times, 200/400/800 ms.
pub(crate) fn busy_backoff(errcode: i64, retried: u32) -> Option<Duration> {
    (errcode == -1 && retried < BUSY_RETRIES).then(|| FIRST_BACKOFF * 2u32.pow(retried))
}

/// Per-call retry state; tower clones the policy for each call, so every call starts afresh.
#[derive(Clone)]
pub(crate) struct RetryPolicy {
    token_refreshed: bool,
    busy_retries: u32,
    observer: Local<dyn Observer>,
}

impl RetryPolicy {
    pub fn new(observer: Local<dyn Observer>) -> RetryPolicy {
        RetryPolicy {
            token_refreshed: false,
            busy_retries: 0,
            observer,
        }
    }

    /// One token refresh per call, never a loop; at most three busy retries, 200/400/800 ms.
    pub fn decide(&self, errcode: i64) -> Decision {
        if TOKEN_ERRORS.contains(&errcode) && !self.token_refreshed {
            Decision::RefreshToken
        } else if let Some(wait) = busy_backoff(errcode, self.busy_retries) {
            Decision::Backoff(wait)
        } else {
            Decision::Done
        }
    }
}

impl Policy<Attempt, Answered, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Attempt,
        result: &mut Result<Answered, BoxError>,
    ) -> Option<Self::Future> {
        // Transport failures and timeouts are not retried: the call may have been done.
        let answered = result.as_ref().ok()?;
        let (wait, why) = match self.decide(answered.response.errcode) {
            Decision::Done => return None,
            Decision::RefreshToken => {
                self.token_refreshed = true;
                req.failed = answered.token.clone();
                (Duration::ZERO, RetryReason::TokenExpired)
            }
            Decision::Backoff(wait) => {
                self.busy_retries += 1;
                (wait, RetryReason::SystemBusy)
            }
        };
        if req.call.started.elapsed() + wait >= RETRY_BUDGET {
            return None;
        }
        if let Some(target) = req.call.target() {
            self.observer.retried(target, why);
        }
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Attempt) -> Option<Attempt> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_answer_loses_the_token_it_quotes_and_nothing_else() {
        use memchr::memmem::Finder;
        let t = "TOKEN0123456789";
        let body = bytes::Bytes::from(format!(
            "{{\"errmsg\":\"bad {t} in /x?access_token={t}&k=1, hint: [7]\"}}"
        ));
        assert_eq!(
            &without(body, &[Finder::new(t)])[..],
            &b"{\"errmsg\":\"bad *** in /x?access_token=***&k=1, hint: [7]\"}"[..]
        );
        let plain = bytes::Bytes::from_static(b"{\"errcode\":0,\"token\":\"other\"}");
        assert_eq!(without(plain.clone(), &[Finder::new(t)]), plain);
        // A token too short to be one (a test's) is not looked for.
        assert_eq!(without(plain.clone(), &[Finder::new("o")]), plain);
        // Its form-encoded spelling too.
        let q = bytes::Bytes::from_static(b"called ?access_token=Tok%2Ben%2FWith%3DChars0");
        let forms = [
            Finder::new("Tok+en/With=Chars0"),
            Finder::new("Tok%2Ben%2FWith%3DChars0"),
        ];
        assert_eq!(&without(q, &forms)[..], &b"called ?access_token=***"[..]);
        // A file's bytes are not text.
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, "image/jpeg".parse().unwrap());
        assert!(!is_text(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_text(&h));
        // Media types are case-insensitive.
        h.insert(http::header::CONTENT_TYPE, "TEXT/Plain".parse().unwrap());
        assert!(is_text(&h));
        h.insert(
            http::header::CONTENT_TYPE,
            "Application/JSON".parse().unwrap(),
        );
        assert!(is_text(&h));
        h.insert(http::header::CONTENT_TYPE, "te".parse().unwrap());
        assert!(!is_text(&h));
    }
    #[test]
    fn a_tokens_searchers_are_built_once_and_know_both_spellings() {
        let a = Scrub::of("ScrubTokenA0123456789");
        assert!(Arc::ptr_eq(&a, &Scrub::of("ScrubTokenA0123456789")));
        assert_eq!(a.forms.len(), 1);
        let b = Scrub::of("ScrubToken+B/0123456789=");
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(b.forms.len(), 2);
        assert_eq!(b.forms[1].needle(), b"ScrubToken%2BB%2F0123456789%3D");
        // Beyond what is kept, the oldest goes and is built again when used.
        for i in 0..SCRUBS_KEPT {
            Scrub::of(&format!("ScrubFiller{i:04}xxxxxxxx"));
        }
        assert!(!Arc::ptr_eq(&a, &Scrub::of("ScrubTokenA0123456789")));
        assert!(SCRUBS.lock().unwrap().len() <= SCRUBS_KEPT);
    }

    use super::*;
    use crate::observe::Unobserved;

    #[test]
    fn retry_decisions() {
        let policy = |token_refreshed, busy_retries| RetryPolicy {
            token_refreshed,
            busy_retries,
            observer: Local::new(Arc::new(Unobserved)),
        };
        let fresh = policy(false, 0);
        let refreshed = policy(true, 0);
        let busy = |n| policy(false, n);
        let ms = Duration::from_millis;
        let cases: &[(&RetryPolicy, i64, Decision)] = &[
            (&fresh, 0, Decision::Done),
            (&fresh, 40001, Decision::RefreshToken),
            (&fresh, 40014, Decision::RefreshToken),
            (&fresh, 42001, Decision::RefreshToken),
            (&fresh, 42009, Decision::RefreshToken),
            (&fresh, 40082, Decision::RefreshToken),
            (&refreshed, 42009, Decision::Done),
            (&refreshed, 40014, Decision::Done),
            (&refreshed, 42001, Decision::Done),
            (&fresh, -1, Decision::Backoff(ms(200))),
            (&busy(1), -1, Decision::Backoff(ms(400))),
            (&busy(2), -1, Decision::Backoff(ms(800))),
            (&busy(3), -1, Decision::Done),
            (&refreshed, -1, Decision::Backoff(ms(200))),
            (&fresh, 45009, Decision::Done),
            (&fresh, 45033, Decision::Done),
            (&fresh, 40013, Decision::Done),
            (&fresh, 60020, Decision::Done),
            (&fresh, 48002, Decision::Done),
        ];
        for (policy, errcode, want) in cases {
            assert_eq!(
                policy.decide(*errcode),
                *want,
                "refreshed={} busy={} errcode {errcode}",
                policy.token_refreshed,
                policy.busy_retries
            );
        }
    }
}
