//! `GET|POST {prefix}/callback/{app}` (SPEC section 18): the HTTP side of [`crate::callback`].
//! WeCom reads only the status and, for the URL check, the body: `text/plain`, the plaintext
//! alone — no quotes, no BOM, no newline.

use bytes::Bytes;
use pingora::proxy::Session;

use super::Ctx;
use crate::answers::{self, Answer, Failure, Form, Kind};
use crate::callback::receive::MAX_BODY;
use crate::callback::{self, Callbacks};

/// When a callback the store refused was last logged, per app.
static NOT_QUEUED: std::sync::LazyLock<wecom_api::Throttle<String>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// Bytes of callback bodies held at once, being read or verified: a few thousand of WeCom's
/// messages (each a few KiB), and a bound on what unverified requests hold.
const BUFFER_BUDGET: usize = 32 * 1024 * 1024;
/// The most of [`BUFFER_BUDGET`] one client address holds in bodies that do not arrive whole
/// at once: one sender holding bodies short of their end cannot take the room WeCom's servers
/// post in. A body that arrives whole in one read, or is declared no longer than
/// [`SMALL_BODY`] (WeCom's are a few KiB), takes from the budget only: behind a front proxy
/// that streams bodies without naming the client, every client has the proxy's address, and
/// its share is not WeCom's. (Holding small bodies, a sender needs thousands of connections
/// to fill the budget.)
const CLIENT_SHARE: usize = BUFFER_BUDGET / 4;
/// [`CLIENT_SHARE`]'s small body.
const SMALL_BODY: u64 = 8 * 1024;
/// How long a callback's body may take to arrive: WeCom waits 5 s for the whole answer and
/// then posts again, so a body later than that is one nobody waits for; only a sender holding
/// room in [`BUFFER_BUDGET`] would keep it coming (for the public listener's 10 s).
pub(crate) const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

static BUFFERED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BUFFER_BUDGET);

/// Bytes held by each client address.
static HELD_BY: std::sync::LazyLock<dashmap::DashMap<std::net::IpAddr, usize>> =
    std::sync::LazyLock::new(dashmap::DashMap::new);

/// One request's bytes of [`BUFFER_BUDGET`] and of its client's share, given back when it is
/// dropped (answered, refused, reset, or its task gone).
struct Held {
    client: Option<std::net::IpAddr>,
    /// Bytes counted in the client's share.
    shared: usize,
    permit: Option<tokio::sync::SemaphorePermit<'static>>,
}

impl Held {
    fn new(client: Option<std::net::IpAddr>) -> Held {
        Held {
            client,
            shared: 0,
            permit: None,
        }
    }

    /// Takes `n` more bytes, or says there is no room (in all, or in this client's share for
    /// a body not `whole` in one read).
    fn take(&mut self, n: usize, whole: bool) -> bool {
        let Ok(count) = u32::try_from(n) else {
            return false;
        };
        let client = self.client.filter(|_| !whole);
        if let Some(ip) = client {
            let mut held = HELD_BY.entry(ip).or_insert(0);
            if *held + n > CLIENT_SHARE {
                return false;
            }
            *held += n;
        }
        match BUFFERED.try_acquire_many(count) {
            Ok(p) => {
                match &mut self.permit {
                    Some(h) => h.merge(p),
                    None => self.permit = Some(p),
                }
                if client.is_some() {
                    self.shared += n;
                }
                true
            }
            Err(_) => {
                if client.is_some() {
                    self.give_back(n);
                }
                false
            }
        }
    }

    fn give_back(&self, n: usize) {
        if let Some(ip) = self.client {
            if let dashmap::mapref::entry::Entry::Occupied(mut e) = HELD_BY.entry(ip) {
                *e.get_mut() = e.get().saturating_sub(n);
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.give_back(self.shared);
    }
}

pub async fn handle(
    session: &mut Session,
    ctx: &mut Ctx,
    app: &[u8],
    callbacks: &Callbacks,
) -> Result<Answer, Failure> {
    // Called by WeCom's servers: failures are JSON, whatever the request accepts.
    ctx.form = Form::Json;
    let app = String::from_utf8_lossy(app).into_owned();
    let method = session.req_header().method.clone();
    let query = session
        .req_header()
        .uri
        .query()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    let config = ctx.config.clone();
    let outcome = match method {
        http::Method::GET => callbacks
            .verify_url(&config, &app, &ctx.request_id, &query)
            .map(|plain| Bytes::from(plain.into_bytes())),
        http::Method::POST => match callbacks.before_body(&config, &app, &ctx.request_id, &query) {
            Err(e) => Err(e),
            Ok(()) => {
                // Bodies being read and verified share one budget, a quarter of it at most per
                // client address: connections holding bodies short of their end (a client
                // sending all but a byte of a megabyte, thousands of times) are refused with a
                // 503, which WeCom retries, not kept in memory.
                let declared = super::request::header(session, http::header::CONTENT_LENGTH)
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let small = declared.is_some_and(|n| n <= SMALL_BODY);
                let mut held = Held::new(ctx.remote_ip.filter(|_| !small));
                let body =
                    super::request::body_within(session, MAX_BODY, BODY_DEADLINE, |n, whole| {
                        held.take(n, whole)
                    })
                    .await;
                match body {
                    Ok(body) => callbacks
                        .accept(&config, &app, &ctx.request_id, &query, &body)
                        .await
                        .map(|_| Bytes::from_static(b"success")),
                    Err(unread) => return Err(unread.failure()),
                }
            }
        },
        _ => {
            return Err(Failure::new(
                Kind::MethodNotAllowed,
                "GET (URL check) or POST (messages) only",
            ))
        }
    };
    match outcome {
        Ok(body) => Ok(answers::response(200, "text/plain", body, &ctx.request_id)),
        Err(callback::Failure::NotFound) => Err(Failure::new(
            Kind::NotFound,
            "no app with a callback by that name",
        )),
        Err(callback::Failure::Refused(_)) => Err(Failure::new(
            Kind::BadRequest,
            "the callback could not be verified",
        )),
        Err(callback::Failure::Unavailable(e)) => {
            // Once a minute per app: a full disk under WeCom's retries (and anyone's posts)
            // must not grow the log by a line a request as well.
            if NOT_QUEUED.due(app.to_owned(), crate::clock::clock().now_ms()) {
                tracing::error!(app, error = %e, request_id = %ctx.request_id, "callback not queued: the store did not take it (WeCom will retry; logged once a minute per app)");
            }
            Err(Failure::new(
                Kind::StoreUnavailable,
                "the event could not be stored; try again",
            ))
        }
    }
}
