//! `GET|POST {prefix}/callback/{app}` (SPEC section 18): the HTTP side of [`crate::callback`].
//! WeCom reads only the status and, for the URL check, the body: `text/plain`, the plaintext
//! alone — no quotes, no BOM, no newline.

use bytes::Bytes;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, wants_html, Ctx};
use crate::answers::{self, Failure};
use crate::callback::receive::MAX_BODY;
use crate::callback::{self, Callbacks};

pub async fn handle(
    session: &mut Session,
    ctx: &mut Ctx,
    app: &[u8],
    callbacks: &Callbacks,
) -> Result<bool> {
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
        http::Method::POST => match read_body(session).await? {
            Some(body) => callbacks
                .accept(&config, &app, &query, &body)
                .await
                .map(|_| Bytes::from_static(b"success")),
            None => Err(callback::Failure::Refused(
                callback::receive::Refusal::TooLarge,
            )),
        },
        _ => {
            let a = answers::failure(
                Failure::MethodNotAllowed,
                "GET (URL check) or POST (messages) only",
                &ctx.request_id,
                false,
            );
            return answer(session, ctx, a).await;
        }
    };
    let a = match outcome {
        Ok(body) => answers::response(200, "text/plain", body, &ctx.request_id),
        Err(callback::Failure::NotFound) => answers::failure(
            Failure::NotFound,
            "no app with a callback by that name",
            &ctx.request_id,
            wants_html(session),
        ),
        Err(callback::Failure::Refused(_)) => answers::failure(
            Failure::BadRequest,
            "the callback could not be verified",
            &ctx.request_id,
            false,
        ),
        Err(callback::Failure::Unavailable(e)) => {
            tracing::error!(app, error = %e, request_id = %ctx.request_id, "callback not queued: the store did not take it (WeCom will retry)");
            answers::failure(
                Failure::StoreUnavailable,
                "the event could not be stored; try again",
                &ctx.request_id,
                false,
            )
        }
    };
    answer(session, ctx, a).await
}

/// The body, or `None` past [`MAX_BODY`] (what was read is dropped at once).
async fn read_body(session: &mut Session) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}
