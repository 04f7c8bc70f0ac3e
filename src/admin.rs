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
            _ => text(404, "text/plain; charset=utf-8", "not found\n"),
        }
    }
}
