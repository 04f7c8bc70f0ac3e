//! The admin listener: `/healthz` (process up), `/readyz` (config loaded, store reachable),
//! `/metrics` (Prometheus text).

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::config::Config;
use crate::provider::Provider;

pub struct Admin {
    pub config: Arc<ArcSwap<Config>>,
    /// Its store is part of readiness: a shared store that does not answer means this process
    /// serves from its own copy and refreshes alone (SPEC section 15).
    pub provider: Provider,
}

fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .header("cache-control", "no-store")
        .body(body)
        .expect("valid response")
}

/// `POST /_test/advance` (debug builds, `WGW_TEST_CLOCK=1`, loopback peers): see
/// [`crate::test_control`].
#[cfg(debug_assertions)]
async fn advance(session: &mut ServerSession) -> Response<Vec<u8>> {
    use crate::test_control::{self, Refused};
    const PLAIN: &str = "text/plain; charset=utf-8";
    if session.req_header().method != http::Method::POST {
        return text(405, PLAIN, "POST only\n");
    }
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = session.read_request_body().await {
        body.extend_from_slice(&chunk);
        if body.len() > test_control::MAX_BODY {
            return text(413, PLAIN, "body too large\n");
        }
    }
    match test_control::parse(peer, &body) {
        Ok(by) => {
            let clock = crate::clock::clock();
            clock.advance(by);
            tracing::warn!(by = ?by, offset = ?clock.offset(), "test control: clock advanced");
            let answer = serde_json::json!({"ok": true, "now_ms": clock.now_ms()});
            text(200, "application/json", answer.to_string())
        }
        Err(Refused::NotLoopback) => text(403, PLAIN, "loopback only\n"),
        Err(Refused::BadBody(why)) => text(400, PLAIN, format!("{why}\n")),
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" => text(200, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => {
                // The config is loaded by construction; the store is asked now.
                let _config = self.config.load();
                let store = self.provider.store();
                match store.ping().await {
                    Ok(()) => text(200, "text/plain; charset=utf-8", "ready\n"),
                    Err(_) => text(
                        503,
                        "text/plain; charset=utf-8",
                        format!("not ready: store {} unreachable\n", store.name()),
                    ),
                }
            }
            "/metrics" => text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(),
            ),
            #[cfg(debug_assertions)]
            crate::test_control::PATH if crate::test_control::enabled() => advance(session).await,
            _ => text(404, "text/plain; charset=utf-8", "not found\n"),
        }
    }
}
