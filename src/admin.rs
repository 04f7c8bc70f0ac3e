//! The admin listener: `/healthz` (process up), `/readyz` (config loaded, store reachable),
//! `/metrics` (Prometheus text), and for loopback clients the callback queue:
//! `GET /events/queued?app=NAME` lists the undelivered events, `POST /events/park?app=NAME&id=ID`
//! sets one aside (a head the CRM refuses holds the rest back), `GET /events/parked?app=NAME`
//! lists those given up on, `POST /events/replay?app=NAME[&id=ID]` puts them back in the queue.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::callback::event;
use crate::callback::queue::{EventQueue, Parked, Queued, PARKED_PAGE};
use crate::config::Config;
use crate::provider::Provider;

/// The key `/readyz` writes to learn that the store takes writes.
const READY_PROBE: &str = "readyz-probe";

pub struct Admin {
    pub config: Arc<ArcSwap<Config>>,
    /// Its store is part of readiness: a shared store that does not answer means this process
    /// serves from its own copy and refreshes alone (SPEC section 15).
    pub provider: Provider,
    /// The callback queue, for the events given up on.
    pub queue: Arc<dyn EventQueue>,
}

const PLAIN: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

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

fn json(status: u16, value: serde_json::Value) -> Response<Vec<u8>> {
    text(status, JSON, value.to_string())
}

/// A query parameter's value, decoded; the first of its name.
fn param(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// What an operator is told about a parked event: when, which, about what, never its content
/// (members' and customers' data stay in the store).
fn parked_json(p: &Parked) -> serde_json::Value {
    let Some(e) = &p.event else {
        return serde_json::json!({"id": p.position, "parked_at_ms": p.parked_at, "readable": false});
    };
    let msg = wecom_api::XmlMessage::parse(&e.message).unwrap_or_default();
    serde_json::json!({
        "id": p.position,
        "parked_at_ms": p.parked_at,
        "readable": true,
        "event_id": e.id,
        "queued_at_ms": e.queued_at,
        "event": event::label(&msg),
        "corp_id": msg.get("ToUserName").unwrap_or_default(),
    })
}

/// What an operator is told about an undelivered event, as about a parked one.
fn queued_json(q: &Queued) -> serde_json::Value {
    let msg = wecom_api::XmlMessage::parse(&q.event.message).unwrap_or_default();
    serde_json::json!({
        "id": q.position,
        "event_id": q.event.id,
        "queued_at_ms": q.event.queued_at,
        "event": event::label(&msg),
        "corp_id": msg.get("ToUserName").unwrap_or_default(),
    })
}

impl Admin {
    /// `/events/queued`, `/events/park`, `/events/parked` and `/events/replay`: loopback clients only (the admin listener may be
    /// opened to a metrics scraper), for an app the configuration names.
    async fn events(&self, session: &mut ServerSession, what: &str) -> Response<Vec<u8>> {
        let loopback = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .is_some_and(|a| a.ip().to_canonical().is_loopback());
        if !loopback {
            return text(403, PLAIN, "loopback clients only\n");
        }
        // A web page the operator has open is a loopback client too: a cross-site `fetch`
        // (a simple POST, no preflight) would replay events. Browsers name the page's origin
        // (`Origin`, `Sec-Fetch-Site`); curl and scripts send neither.
        let h = &session.req_header().headers;
        let from_a_page = h.contains_key(http::header::ORIGIN)
            || h.get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes() != b"none");
        if from_a_page {
            return text(403, PLAIN, "not from a web page\n");
        }
        let method = session.req_header().method.clone();
        let query = session.req_header().uri.query().unwrap_or("").to_owned();
        let (wanted, verb) = match what {
            "parked" | "queued" => (http::Method::GET, "GET"),
            _ => (http::Method::POST, "POST"),
        };
        if method != wanted {
            return text(405, PLAIN, format!("{verb} only\n"));
        }
        let Some(app) = param(&query, "app") else {
            return text(400, PLAIN, "the app is named by ?app=NAME\n");
        };
        if !self.config.load().apps.contains_key(app.as_str()) {
            return text(404, PLAIN, "no such app\n");
        }
        let limit = match param(&query, "limit").map(|l| l.parse::<usize>()) {
            None => 100,
            Some(Ok(n)) if (1..=PARKED_PAGE).contains(&n) => n,
            Some(_) => {
                return text(400, PLAIN, format!("limit is 1 to {PARKED_PAGE}\n"));
            }
        };
        let answer = if what == "parked" {
            self.queue.parked(&app, limit).await.map(|list| {
                let list: Vec<_> = list.iter().map(parked_json).collect();
                json(200, serde_json::json!({"app": app, "parked": list}))
            })
        } else if what == "queued" {
            let depth = self.queue.depth(&app).await;
            self.queue.queued(&app, limit).await.map(|list| {
                let list: Vec<_> = list.iter().map(queued_json).collect();
                let mut body = serde_json::json!({"app": app, "queued": list});
                if let Ok(d) = depth {
                    body["depth"] = d.into();
                }
                json(200, body)
            })
        } else if what == "park" {
            let Some(id) = param(&query, "id") else {
                return text(
                    400,
                    PLAIN,
                    "the event is named by ?id= (its id in /events/queued)\n",
                );
            };
            self.queue.park_at(&app, &id).await.map(|parked| {
                if !parked {
                    return text(404, PLAIN, "no undelivered event with that id\n");
                }
                tracing::warn!(app, id = %id, "a queued callback event parked by an operator; the next one goes on");
                json(200, serde_json::json!({"app": app, "parked": 1}))
            })
        } else {
            let id = param(&query, "id");
            self.queue.replay(&app, id.as_deref()).await.map(|n| {
                if n == 0 && id.is_some() {
                    return text(
                        404,
                        PLAIN,
                        "no parked event with that id that can be read\n",
                    );
                }
                if n > 0 {
                    tracing::warn!(
                        app,
                        replayed = n,
                        "parked callback events put back in the queue"
                    );
                } else {
                    tracing::info!(app, "no parked callback event to put back in the queue");
                }
                json(200, serde_json::json!({"app": app, "replayed": n}))
            })
        };
        answer.unwrap_or_else(|e| {
            tracing::warn!(app, error = %e, "parked callback events: the queue did not answer");
            text(503, PLAIN, "the event queue did not answer\n")
        })
    }
}

/// `POST /_test/advance` (debug builds, `WGW_TEST_CLOCK=1`, loopback peers): see
/// [`crate::test_control`].
#[cfg(debug_assertions)]
async fn advance(session: &mut ServerSession) -> Response<Vec<u8>> {
    use crate::test_control::{self, Refused};
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

/// A refusal or failure of the admin listener as the other listeners answer theirs: an id to
/// find it by, in the `X-Request-Id` header and the body's last line, and a log line with it.
/// `/readyz`'s 503 is a state a load balancer asks for every few seconds, not a refusal: it
/// stays the one line it is, unlogged.
fn with_request_id(mut answer: Response<Vec<u8>>, path: &str) -> Response<Vec<u8>> {
    let probe = matches!(path, "/healthz" | "/readyz") && answer.status().as_u16() != 405;
    if probe || answer.status().as_u16() < 400 || answer.headers().contains_key("x-request-id") {
        return answer;
    }
    let rid = crate::request_id::generate();
    tracing::info!(
        listener = "admin",
        status = answer.status().as_u16(),
        path = %crate::redact::bound_field(path),
        request_id = %rid,
        "admin request refused"
    );
    if let Ok(v) = http::HeaderValue::from_str(&rid) {
        answer.headers_mut().insert("x-request-id", v);
    }
    let body = answer.body_mut();
    body.extend_from_slice(format!("request id: {rid}\n").as_bytes());
    let len = http::HeaderValue::from(body.len());
    answer
        .headers_mut()
        .insert(http::header::CONTENT_LENGTH, len);
    answer
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let answer = self.answer(session).await;
        with_request_id(answer, &path)
    }
}

impl Admin {
    async fn answer(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        // What the public listener refuses is refused here too: a CONNECT answered 200 is a
        // tunnel opened to any client or proxy in between.
        let asked = crate::headers::Asked::of(req);
        if let Some((kind, why)) = crate::connection::malformed_as(&req.method, req.version, &asked)
        {
            session.set_keepalive(None);
            // As the other listeners: an id to find it by, and what was wrong in the log.
            let rid = crate::request_id::generate();
            tracing::info!(
                listener = "admin",
                status = kind.status(),
                cause = why,
                request_id = %rid,
                "malformed request refused"
            );
            let mut answer = text(kind.status(), PLAIN, format!("{why}\n"));
            if let Ok(v) = http::HeaderValue::from_str(&rid) {
                answer.headers_mut().insert("x-request-id", v);
            }
            return answer;
        }
        let path = req.uri.path().to_owned();
        let read_only = matches!(path.as_str(), "/healthz" | "/readyz" | "/metrics");
        if read_only && !matches!(req.method, http::Method::GET | http::Method::HEAD) {
            let mut answer = text(405, PLAIN, "GET only\n");
            answer.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD"),
            );
            return answer;
        }
        match path.as_str() {
            "/healthz" => text(200, "text/plain; charset=utf-8", "ok\n"),
            "/readyz" => {
                // The config is loaded by construction; the store is asked now, for a write as
                // well: a Redis at its `maxmemory` with `noeviction` (or a full disk) answers
                // PING but takes no callback, sign-out or install, which a load balancer must
                // then send elsewhere.
                let _config = self.config.load();
                let store = self.provider.store();
                let why = match store.ping().await {
                    // The local store's ping is a write, and remembers the last that failed.
                    Err(_) if store.name() == "local" => Some("does not take writes"),
                    Err(_) => Some("unreachable"),
                    Ok(()) => store
                        .put_durable_fact(READY_PROBE, "1", Duration::from_secs(60))
                        .await
                        .err()
                        .map(|_| "does not take writes"),
                };
                match why {
                    None => text(200, "text/plain; charset=utf-8", "ready\n"),
                    Some(why) => text(
                        503,
                        "text/plain; charset=utf-8",
                        format!("not ready: store {} {why}\n", store.name()),
                    ),
                }
            }
            "/metrics" => text(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(),
            ),
            "/events/parked" => self.events(session, "parked").await,
            "/events/queued" => self.events(session, "queued").await,
            "/events/park" => self.events(session, "park").await,
            "/events/replay" => self.events(session, "replay").await,
            #[cfg(debug_assertions)]
            crate::test_control::PATH if crate::test_control::enabled() => advance(session).await,
            _ => text(404, "text/plain; charset=utf-8", "not found\n"),
        }
    }
}
