//! The bottom of the client: HTTP/1.1 keep-alive connections, each thread keeping the ones it
//! opened, each driven by the task whose call is using it.
//!
//! hyper's pooled client serves each connection from a task of its own: a call checks a
//! connection out of a shared pool (a lock, a hash of the origin), hands its request to that
//! task through a channel and is woken with the answer. Here the calling task polls the
//! connection itself while it waits for the answer and reads it, as pingora's HTTP/1 client
//! drives an upstream connection inside the proxy's task, and puts the connection back in its
//! thread's list once the answer was read whole and the connection can take another request.
//! A connection whose call was dropped half way (a timeout) is dropped with it: the late answer
//! it may still carry must never be read as the answer to another call.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use tower::{Service, ServiceExt};

use crate::error::ApiError;

pub(crate) type HttpsConnector = hyper_rustls::HttpsConnector<crate::connect::Connector>;
type Io = hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>;

/// Idle connections one thread keeps, over all origins; beyond it the oldest is closed.
const MAX_IDLE_PER_THREAD: usize = 64;

/// The largest answer read: WeCom's biggest are media downloads (files up to 20 MB), and an
/// upstream that sends more, or without end, fails the call instead of filling the memory.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Where a connection goes: scheme and authority, and the `Host` header its requests carry.
#[derive(Clone)]
struct Origin {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
}

impl Origin {
    fn same(&self, scheme: &Scheme, authority: &Authority) -> bool {
        self.scheme == *scheme && self.authority == *authority
    }
}

/// One open connection: the handle requests are sent through, and the connection itself,
/// which does the reading and writing whenever the task using it polls it.
struct Conn {
    origin: Origin,
    send: http1::SendRequest<Full<Bytes>>,
    drive: http1::Connection<Io, Full<Bytes>>,
    /// The connection finished (closed by either side, or failed): it takes no more requests.
    closed: bool,
}

impl Conn {
    /// Polls `work` to its end while driving the connection. `None`: the connection ended
    /// and left `work` unfinished (hyper answers every request it drops with an error first,
    /// so this is a last guard against waiting for a wake-up that cannot come).
    async fn driving<F: Future>(&mut self, work: F) -> Option<F::Output> {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            if !self.closed && Pin::new(&mut self.drive).poll(cx).is_ready() {
                self.closed = true;
            }
            match work.as_mut().poll(cx) {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if self.closed => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Lets the connection notice what arrived while it idled (the server closing it) and
    /// settle after an answer; true when it can take another request.
    async fn usable(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            if !self.closed && Pin::new(&mut self.drive).poll(cx).is_ready() {
                self.closed = true;
            }
            Poll::Ready(())
        })
        .await;
        !self.closed && self.send.is_ready()
    }
}

/// Boxed: a call moves its connection in and out of the list and its own state.
struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The client's connections: opened through `connector`, kept idle for up to `idle`, each
/// thread reusing only those it keeps (no other thread is woken by a call on this one).
pub(crate) struct Transport {
    connector: HttpsConnector,
    idle: Duration,
    max_answer: usize,
    /// What answers being read take from, with the request bodies the caller holds.
    held: &'static crate::held::HeldBytes,
    per_thread: thread_local::ThreadLocal<RefCell<Vec<Idle>>>,
}

impl Transport {
    pub(crate) fn new(connector: HttpsConnector, idle: Duration) -> Self {
        Transport {
            connector,
            idle,
            max_answer: MAX_ANSWER,
            held: &crate::held::HELD,
            per_thread: thread_local::ThreadLocal::new(),
        }
    }

    /// One exchange: `req` (an absolute URI) sent on a kept connection to its origin or a
    /// new one, the answer read whole.
    pub(crate) async fn exchange(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(http::response::Parts, Bytes), ApiError> {
        let parts = std::mem::take(req.uri_mut()).into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err(ApiError::Unreachable(
                "bad API URL: no scheme or host".into(),
            ));
        };
        // Origin form on the request line; where it goes is the connection's business.
        *req.uri_mut() = parts
            .path_and_query
            .map_or_else(|| Uri::from_static("/"), Uri::from);
        let mut conn = match self.checkout(&scheme, &authority).await {
            Some(conn) => conn,
            None => self.connect(scheme, authority).await?,
        };
        req.headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| conn.origin.host.clone());
        // Checked out just now, with no wait since: the request is taken and written. A
        // close that arrives while it is being written cannot be told from a lost answer:
        // the call fails, and is not tried again (the API may have done it).
        let sent = conn.send.send_request(req);
        let answer = match conn.driving(sent).await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => return Err(transport_error(&e)),
            None => return Err(closed_early()),
        };
        let (head, body) = answer.into_parts();
        let body = Counted {
            inner: http_body_util::Limited::new(body, self.max_answer),
            hold: self.held.hold(),
        };
        let body = match conn.driving(body.collect()).await {
            Some(Ok(body)) => body.to_bytes(),
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::Unreachable(format!(
                    "the answer is larger than {} bytes",
                    self.max_answer
                )))
            }
            Some(Err(e)) if e.is::<Busy>() => {
                // The call was made: not one to try again (the caller says it may have been
                // carried out). The connection, its answer half read, is not kept.
                return Err(ApiError::Unreachable(
                    "the answer was not read: the API bodies this process holds at once are at \
                     their bound"
                        .into(),
                ));
            }
            Some(Err(e)) => {
                return Err(ApiError::Unreachable(format!(
                    "reading the answer: {}",
                    error_text(&*e)
                )))
            }
            None => return Err(closed_early()),
        };
        if conn.usable().await {
            self.checkin(conn);
        }
        Ok((head, body))
    }

    /// This thread's newest live connection to the origin, if it keeps one; those idle too
    /// long are closed on the way.
    async fn checkout(&self, scheme: &Scheme, authority: &Authority) -> Option<Box<Conn>> {
        loop {
            let mut conn = {
                let mut list = self.per_thread.get_or_default().borrow_mut();
                let now = Instant::now();
                list.retain(|c| now.saturating_duration_since(c.since) < self.idle);
                let i = list
                    .iter()
                    .rposition(|c| c.conn.origin.same(scheme, authority))?;
                list.remove(i).conn
            };
            if conn.usable().await {
                return Some(conn);
            }
        }
    }

    fn checkin(&self, conn: Box<Conn>) {
        let mut list = self.per_thread.get_or_default().borrow_mut();
        if list.len() >= MAX_IDLE_PER_THREAD {
            list.remove(0);
        }
        list.push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    async fn connect(&self, scheme: Scheme, authority: Authority) -> Result<Box<Conn>, ApiError> {
        let host = host_header(&scheme, &authority)?;
        // The connector is told the origin only: the URL's query holds the token.
        let dst = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| ApiError::Unreachable(format!("bad API URL: {e}")))?;
        let io = self
            .connector
            .clone()
            .ready()
            .await
            .map_err(connect_error)?
            .call(dst)
            .await
            .map_err(connect_error)?;
        let (send, drive) = http1::handshake(io)
            .await
            .map_err(|e| transport_error(&e))?;
        Ok(Box::new(Conn {
            origin: Origin {
                scheme,
                authority,
                host,
            },
            send,
            drive,
            closed: false,
        }))
    }
}

/// An answer's body counted against the process's bound as it arrives.
struct Counted<B> {
    inner: B,
    hold: crate::held::Hold,
}

/// The bound of [`crate::held`] refused an answer's next bytes.
#[derive(Debug)]
struct Busy;

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the API bodies held at once are at their bound")
    }
}

impl std::error::Error for Busy {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> hyper::body::Body for Counted<B>
where
    B: hyper::body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Ok(f)) = &frame {
            if let Some(data) = f.data_ref() {
                if !self.hold.grow(data.len()) {
                    return Poll::Ready(Some(Err(Box::new(Busy))));
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// `Host`: the host, and the port unless it is the scheme's default.
fn host_header(scheme: &Scheme, authority: &Authority) -> Result<HeaderValue, ApiError> {
    let default = if *scheme == Scheme::HTTPS { 443 } else { 80 };
    let host = authority.host();
    let text = match authority.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::try_from(text).map_err(|e| ApiError::Unreachable(format!("bad API host: {e}")))
}

fn closed_early() -> ApiError {
    ApiError::Unreachable("the connection closed before the answer was read".into())
}

/// An error and its causes; none of them names the URL, which holds the token.
fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn transport_error(e: &hyper::Error) -> ApiError {
    ApiError::Unreachable(error_text(e))
}

fn connect_error(e: tower::BoxError) -> ApiError {
    ApiError::Unreachable(format!("connecting: {}", error_text(&*e)))
}

#[cfg(test)]
#[path = "../../tests/common/numbering.rs"]
mod numbering;

#[cfg(test)]
mod tests {
    use super::*;

    use super::numbering;

    async fn conn_of(t: &Transport, base: &str) -> u64 {
        let req = Request::get(format!("{base}/ping"))
            .body(Full::default())
            .unwrap();
        let (head, body) = t.exchange(req).await.unwrap();
        assert_eq!(head.status, 200);
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["conn"]
            .as_u64()
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_idle_longer_than_allowed_is_not_reused() {
        let base = format!("http://{}", numbering::numbering_server());
        let proxies = crate::connect::Proxies::none();
        let kept = crate::stack::transport(
            Duration::from_secs(5),
            Duration::from_secs(60),
            proxies.clone(),
        );
        assert_eq!(conn_of(&kept, &base).await, 1);
        assert_eq!(conn_of(&kept, &base).await, 1);
        let expired = crate::stack::transport(Duration::from_secs(5), Duration::ZERO, proxies);
        assert_eq!(conn_of(&expired, &base).await, 2);
        assert_eq!(conn_of(&expired, &base).await, 3);
        assert!(kept.per_thread.get().unwrap().borrow().len() == 1);
        // An answer over the bound fails the call, and its connection is not kept.
        let mut small = crate::stack::transport(
            Duration::from_secs(5),
            Duration::from_secs(60),
            crate::connect::Proxies::none(),
        );
        small.max_answer = 10;
        let req = Request::get(format!("{base}/ping"))
            .body(Full::default())
            .unwrap();
        match small.exchange(req).await {
            Err(ApiError::Unreachable(text)) => {
                assert!(text.contains("larger than 10 bytes"), "{text}")
            }
            other => panic!(
                "an answer over the bound was read: {:?}",
                other.map(|(_, b)| b)
            ),
        }
        small.max_answer = MAX_ANSWER;
        assert_eq!(
            conn_of(&small, &base).await,
            5,
            "the connection of the refused answer was kept"
        );
        // Past the process's bound (here one nearly taken), the answer is not read: the call
        // fails, nothing stays taken, and its connection is not kept.
        static TIGHT: crate::held::HeldBytes = crate::held::HeldBytes::new(40, 0);
        small.held = &TIGHT;
        let mut taken = TIGHT.hold();
        assert!(taken.grow(35));
        let req = Request::get(format!("{base}/ping"))
            .body(Full::default())
            .unwrap();
        match small.exchange(req).await {
            Err(ApiError::Unreachable(text)) => assert!(text.contains("at their bound"), "{text}"),
            other => panic!(
                "an answer past the process's bound was read: {:?}",
                other.map(|(_, b)| b)
            ),
        }
        assert_eq!(TIGHT.held(), 35);
        drop(taken);
        assert_eq!(
            conn_of(&small, &base).await,
            6,
            "read once there is room, on a new connection: the half-read one is not kept"
        );
        assert_eq!(TIGHT.held(), 0);
        // An origin without a scheme or host is refused before anything is opened.
        let bad = Request::get("/ping").body(Full::default()).unwrap();
        assert!(matches!(
            kept.exchange(bad).await,
            Err(ApiError::Unreachable(_))
        ));
    }

    /// An HTTPS server for `localhost` with a certificate of its own making, answering as
    /// the numbering server does (its connections numbered from 1), and a root store that
    /// trusts that certificate.
    async fn tls_server() -> (u16, rustls::RootCertStore) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for n in 1.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let (mut pending, mut buf) = (Vec::<u8>::new(), [0u8; 4096]);
                    loop {
                        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&pending[..end]).to_lowercase();
                            pending.drain(..end + 4);
                            let host = head.lines().find_map(|l| l.strip_prefix("host: "));
                            let body = serde_json::json!({"conn": n, "host": host}).to_string();
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if tls.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => pending.extend_from_slice(&buf[..k]),
                        }
                    }
                });
            }
        });
        (port, roots)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn https_calls_share_a_verified_connection() {
        let (port, roots) = tls_server().await;
        let base = format!("https://localhost:{port}");
        let none = crate::connect::Proxies::none;
        let t = crate::stack::transport_trusting(
            roots,
            Duration::from_secs(5),
            Duration::from_secs(60),
            none(),
        );
        for _ in 0..3 {
            let req = Request::get(format!("{base}/ping"))
                .body(Full::default())
                .unwrap();
            let (head, body) = t.exchange(req).await.unwrap();
            assert_eq!(head.status, 200);
            let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(answer["conn"], 1);
            assert_eq!(answer["host"], format!("localhost:{port}"));
        }
        // The same server is not trusted by the public roots: the handshake fails, clearly.
        let public =
            crate::stack::transport(Duration::from_secs(5), Duration::from_secs(60), none());
        let req = Request::get(format!("{base}/ping"))
            .body(Full::default())
            .unwrap();
        match public.exchange(req).await {
            Err(ApiError::Unreachable(text)) => assert!(text.contains("certificate"), "{text}"),
            other => panic!(
                "an untrusted certificate was accepted: {:?}",
                other.map(|(h, _)| h.status)
            ),
        }
    }
}
