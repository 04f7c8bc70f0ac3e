//! The callbacks' world: the emulator as WeCom (it sends callbacks), a CRM that records what
//! it receives and can be told to fail or hang, and gateways whose app `crm` has a callback
//! forwarding to that CRM. One place builds it, so that the tests port to a new harness as one.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use emulator::Scenario;
use serde_json::{json, Value};
use wecom_api::CallbackCrypto;

use super::upstream::{self, Upstream};
use super::world::{agent_id, corp_id, App, Builder, World, ASSERTION_SECRET};
use super::{client, Gateway};

pub const TOKEN: &str = "cbToken123";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// One request the CRM received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

#[derive(Default)]
pub struct CrmState {
    /// Every request, failed ones included, in arrival order.
    pub attempts: Mutex<Vec<Received>>,
    /// Answered 2xx.
    pub taken: Mutex<Vec<Received>>,
    /// The next this many requests get 503.
    pub fail_next: AtomicU32,
    /// Every request gets 503 while set.
    pub down: AtomicBool,
    /// Requests are held (never answered) while set.
    pub hang: AtomicBool,
}

/// A CRM that takes callbacks under `/wecom/`, and answers any other request with the
/// identity headers it came with (JSON), as a page behind the gateway.
pub struct Crm {
    pub state: Arc<CrmState>,
}

impl Crm {
    /// The CRM's record, and its server (for [`Builder::crm`]).
    pub fn start() -> (Crm, Upstream) {
        let state = Arc::new(CrmState::default());
        let s = state.clone();
        let app = Router::new().fallback(any(
            move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    if !uri.path().starts_with("/wecom/") {
                        let seen: serde_json::Map<String, Value> = headers
                            .iter()
                            .filter(|(k, _)| k.as_str().starts_with("x-wecom-"))
                            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
                            .collect();
                        return axum::Json(Value::Object(seen)).into_response();
                    }
                    let r = Received {
                        path: uri.to_string(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    s.attempts.lock().unwrap().push(r.clone());
                    // A held request is never taken: its sender may be gone by the time it
                    // is let go (a killed gateway), so it counts as not delivered.
                    if s.hang.load(Ordering::SeqCst) {
                        // The behaviour under test: a CRM that does not answer (polled
                        // until the test lets it go).
                        while s.hang.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let failing = s.down.load(Ordering::SeqCst)
                        || s.fail_next
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                    if failing {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    s.taken.lock().unwrap().push(r);
                    StatusCode::OK.into_response()
                }
            },
        ));
        (Crm { state }, upstream::serve(app))
    }

    pub fn taken(&self) -> Vec<Received> {
        self.state.taken.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> Vec<Received> {
        self.state.attempts.lock().unwrap().clone()
    }

    /// Waits until the CRM took `n` events (at most `limit`), then returns them.
    pub async fn wait_taken(&self, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let t = self.taken();
            if t.len() >= n {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the CRM took {} of {n} events",
                t.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Where the gateway keeps its queue.
#[derive(Clone)]
pub enum Backend {
    /// `local` in the gateway's own directory.
    Local,
    Memory,
    Redis(String),
}

/// `[store]` for `backend`.
fn store(backend: &Backend) -> String {
    match backend {
        Backend::Local => "[store]\nbackend = \"local\"\npath = \"queue.db\"\n".to_owned(),
        Backend::Memory => "[store]\nbackend = \"memory\"\n".to_owned(),
        Backend::Redis(url) => format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"wgw:\"\nlock_ttl = \"1s\"\n"
        ),
    }
}

/// `/sidebar/` (contact optional) and the rest behind a login of `crm`.
const ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/"
upstream = "crm"
login = "crm"
"#;

/// App `crm` (XML, also a mini-program) and `crmjson` (JSON), each with a callback forwarded
/// to the CRM, the queue where `backend` says.
pub fn world(scenario: Scenario, backend: &Backend, instances: usize, crm: Upstream) -> Builder {
    let callback = |path: &str, format: &str| {
        format!(
            "callback = {{ token = \"{TOKEN}\", encoding_aes_key = \"{AES_KEY}\", forward = \"crm\", forward_path = \"{path}\"{format} }}"
        )
    };
    let mut world = World::new();
    if let Backend::Redis(_) = backend {
        // Another instance takes a killed one's delivery over once it has been left alone
        // longer than a delivery can take (these timeouts and a second).
        world = world.crm_keys("connect_timeout = \"1s\"\nread_timeout = \"2s\"");
    }
    world
        .scenario(scenario)
        .session("")
        .store(&store(backend))
        .instances(instances)
        .app(
            App::wecom("crm")
                .contact()
                .with("miniprogram = true")
                .with(&callback("/wecom/callback", "")),
        )
        .app(App::wecom("crmjson").with(&callback("/wecom/json", ", format = \"json\"")))
        .crm(crm)
        .routes(ROUTES)
}

/// The callbacks' world: the one [`World`] and what its CRM received.
pub struct CallbackWorld {
    pub world: World,
    pub crm: Crm,
}

impl std::ops::Deref for CallbackWorld {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

impl std::ops::DerefMut for CallbackWorld {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

impl CallbackWorld {
    pub async fn start(backend: Backend, instances: usize) -> CallbackWorld {
        CallbackWorld::start_in(Scenario::default(), backend, instances).await
    }

    /// The same world in another emulated corp (e.g. [`Scenario::demo`], whose second member
    /// can be deleted: a corp keeps at least one).
    pub async fn start_in(scenario: Scenario, backend: Backend, instances: usize) -> CallbackWorld {
        CallbackWorld::start_env(scenario, backend, instances, &[]).await
    }

    /// One gateway whose deliveries retry after milliseconds where they would wait seconds
    /// (debug builds' `WGW_TEST_FAST_RETRY`): ten tries take a second, not eight minutes.
    pub async fn start_fast_retry(backend: Backend) -> CallbackWorld {
        let env = [("WGW_TEST_FAST_RETRY", "1")];
        CallbackWorld::start_env(Scenario::default(), backend, 1, &env).await
    }

    /// The same with `instances` gateways.
    pub async fn start_fast_retry_cluster(backend: Backend, instances: usize) -> CallbackWorld {
        let env = [("WGW_TEST_FAST_RETRY", "1")];
        CallbackWorld::start_env(Scenario::default(), backend, instances, &env).await
    }

    async fn start_env(
        scenario: Scenario,
        backend: Backend,
        instances: usize,
        env: &[(&str, &str)],
    ) -> CallbackWorld {
        let (crm, server) = Crm::start();
        let mut builder = world(scenario, &backend, instances, server);
        for (k, v) in env {
            builder = builder.env(k, v);
        }
        let world = builder.start().await;
        let w = CallbackWorld { world, crm };
        w.register("crm", 0).await;
        w.register("crmjson", 0).await;
        w
    }

    /// The emulator sends app `app`'s events to gateway `i` (verifying the URL first).
    pub async fn register(&self, app: &str, i: usize) {
        self.control(
            "/_emulator/callbacks",
            json!({
                "app": app,
                "url": self.gateways[i].url(&format!("/_gateway/callback/{app}")),
                "token": TOKEN,
                "encoding_aes_key": AES_KEY,
                "kind": "app",
                "agent_id": self.ids.agent_id,
            }),
        )
        .await;
    }

    /// Has the emulator send `xml` to app `app`'s receiver and waits until WeCom's side is
    /// settled; returns how the last attempt was answered.
    pub async fn send(&self, app: &str, xml: &str) -> Value {
        self.control("/_emulator/callbacks", json!({"app": app, "xml": xml}))
            .await;
        self.settled().await
    }

    /// The emulator's callback log once nothing is in flight.
    pub async fn settled(&self) -> Value {
        client()
            .get(self.emu("/_emulator/callbacks?settled=true"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Kills gateway `i` with SIGKILL and starts it again on the same config, ports and
    /// directory (the same `local` file).
    pub async fn kill_and_restart(&mut self, i: usize) {
        let gw = &mut self.world.gateways[i];
        gw.signal(9);
        assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
        let gw = std::mem::replace(&mut self.world.gateways[i], placeholder());
        let gw = tokio::task::spawn_blocking(move || gw.restart())
            .await
            .unwrap();
        self.world.gateways[i] = gw;
    }
}

/// A stand-in while a gateway is being restarted: nothing to kill.
pub fn placeholder() -> Gateway {
    Gateway {
        child: None,
        dir: super::TempDir::new("placeholder"),
        port: 0,
        admin_port: 0,
        qyapi_port: None,
        emulator_port: None,
        config_path: Default::default(),
        log_path: Default::default(),
    }
}

/// An event XML as WeCom writes it, numbered so order can be checked.
pub fn event_xml(n: u32) -> String {
    wecom_api::XmlMessage::from_pairs([
        ("ToUserName", corp_id().to_owned()),
        ("FromUserName", "sys".to_owned()),
        ("CreateTime", (1_700_000_000 + n).to_string()),
        ("MsgType", "event".to_owned()),
        ("Event", "change_contact".to_owned()),
        ("ChangeType", "update_user".to_owned()),
        ("UserID", format!("user{n}")),
    ])
    .to_xml()
}

/// A POST exactly as WeCom makes it: `xml` encrypted for the corp, signed at `timestamp`.
pub fn sealed_post(xml: &str, timestamp: u64) -> (String, String) {
    let crypto = CallbackCrypto::new(TOKEN, AES_KEY).unwrap();
    let nonce = format!("{}", rand_nonce());
    let s = crypto.seal(xml, corp_id(), &timestamp.to_string(), &nonce);
    let query = format!(
        "msg_signature={}&timestamp={}&nonce={}",
        s.msg_signature, s.timestamp, s.nonce
    );
    let body = wecom_api::callback::envelope(corp_id(), &agent_id().to_string(), &s.encrypt);
    (query, body)
}

fn rand_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish() % 10_000_000_000
}

/// WeCom's post of `xml`, sealed now, to the callback URL `url`; the answer's status and text.
pub async fn post_event(url: &str, xml: &str) -> (u16, String) {
    let (q, b) = sealed_post(xml, now_secs());
    let r = crate::common::client()
        .post(format!("{url}?{q}"))
        .body(b)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `X-Gateway-Signature` as the CRM computes it.
/// `X-Gateway-Signature-V2` as a CRM checks it: the time it names, and whether the HMAC of
/// `TIME.EVENT_ID.CORP_ID.AGENT_ID.BODY` is the one it carries.
pub fn check_signature_v2(r: &Received) -> Option<u64> {
    use hmac::{Hmac, Mac};
    let (t, sig) = r.header("x-gateway-signature-v2").split_once(",sha256=")?;
    let t: u64 = t.strip_prefix("t=")?.parse().ok()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(ASSERTION_SECRET.as_bytes()).unwrap();
    let signed = format!(
        "{t}.{}.{}.{}.{}",
        r.header("x-gateway-event-id"),
        r.header("x-wecom-corpid"),
        r.header("x-wecom-agentid"),
        r.body
    );
    mac.update(signed.as_bytes());
    (hex::encode(mac.finalize().into_bytes()) == sig).then_some(t)
}

pub fn expected_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(ASSERTION_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
