//! `GET|POST {prefix}/callback/{app}` (SPEC section 18): the HTTP side of [`crate::callback`].
//! WeCom reads only the status and, for the URL check, the body: `text/plain`, the plaintext
//! alone — no quotes, no BOM, no newline.

use bytes::Bytes;
use pingora::proxy::Session;

use super::Ctx;
use crate::answers::{self, Answer, Failure, Form, Kind};
use crate::callback::receive::MAX_BODY;
use crate::callback::{self, Callbacks};

/// Bytes of callback bodies held at once, being read or verified: a few thousand of WeCom's
/// messages (each a few KiB), and a bound on what unverified requests hold.
const BUFFER_BUDGET: usize = 32 * 1024 * 1024;

static BUFFERED: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(BUFFER_BUDGET);

/// Takes `n` more bytes of [`BUFFER_BUDGET`] into `held` (given back when it is dropped), or
/// says there is no room.
fn take_buffer(held: &mut Option<tokio::sync::SemaphorePermit<'static>>, n: usize) -> bool {
    let Ok(n) = u32::try_from(n) else {
        return false;
    };
    match BUFFERED.try_acquire_many(n) {
        Ok(p) => {
            match held {
                Some(h) => h.merge(p),
                None => *held = Some(p),
            }
            true
        }
        Err(_) => false,
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
            .verify_url(&config, &app, &query)
            .map(|plain| Bytes::from(plain.into_bytes())),
        http::Method::POST => match callbacks.before_body(&config, &app, &query) {
            Err(e) => Err(e),
            Ok(()) => {
                // Bodies being read and verified share one budget: connections holding bodies
                // short of their end (a client sending all but a byte of a megabyte, thousands
                // of times) are refused with a 503, which WeCom retries, not kept in memory.
                let mut held = None;
                let body =
                    super::request::body_within(session, MAX_BODY, |n| take_buffer(&mut held, n))
                        .await;
                match body {
                    Ok(body) => callbacks
                        .accept(&config, &app, &query, &body)
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
            tracing::error!(app, error = %e, request_id = %ctx.request_id, "callback not queued: the store did not take it (WeCom will retry)");
            Err(Failure::new(
                Kind::StoreUnavailable,
                "the event could not be stored; try again",
            ))
        }
    }
}
