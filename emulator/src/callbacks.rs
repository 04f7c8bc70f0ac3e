//! Sending callbacks as WeCom does (SPEC section 18, WECOM_API.md "Callbacks in detail"): a
//! receiver's URL is verified first (GET with `echostr`), then each message is encrypted, signed
//! and POSTed; no answer in `callback_timeout`, or an answer WeCom does not take, is tried
//! `callback_retries` more times. Everything sent and what came back is logged for tests.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use wecom_api::callback::envelope;
use wecom_api::CallbackCrypto;

use crate::scenario::{CallbackReceiver, ReceiverKind, Scenario};
use crate::state::{EmulatorState, World};

/// A receiver as registered, with its keys.
pub(crate) struct Receiver {
    pub spec: CallbackReceiver,
    crypto: CallbackCrypto,
    /// WeCom saves a URL only after it answered the verification.
    verified: tokio::sync::Mutex<bool>,
}

/// Where one message goes, and how it is addressed there.
#[derive(Clone)]
pub(crate) struct Target {
    pub receiver: Arc<Receiver>,
    pub receive_id: String,
    pub to_user: String,
    pub agent_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
}

/// One line of `GET /_emulator/callbacks`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: u64,
    pub app: String,
    pub url: String,
    /// "verify" (the URL check) or "message".
    pub kind: &'static str,
    pub receive_id: String,
    /// The plaintext: the XML message, or the echostr's.
    pub message: String,
    pub attempts: Vec<Attempt>,
    /// "pending", "delivered", "failed", or "unverified" (the URL never answered its check).
    pub result: &'static str,
}

#[derive(Default)]
struct HubState {
    receivers: Vec<Arc<Receiver>>,
    log: Vec<Record>,
    in_flight: usize,
}

pub(crate) struct Hub {
    state: Mutex<HubState>,
    idle: tokio::sync::Notify,
    http: reqwest::Client,
}

/// A receiver the scenario or the control API may register.
pub(crate) fn check_receiver(s: &Scenario, r: &CallbackReceiver) -> Result<(), String> {
    let name = &r.app;
    CallbackCrypto::new(&r.token, &r.encoding_aes_key)
        .map_err(|e| format!("callback {name}: {e}"))?;
    let url = url::Url::parse(&r.url).map_err(|e| format!("callback {name}: url: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("callback {name}: url must be http or https"));
    }
    match r.kind {
        ReceiverKind::App => {
            if r.suite_id.is_some() {
                return Err(format!(
                    "callback {name}: suite_id is for kind instruction or data"
                ));
            }
            if let Some(c) = &r.corp_id {
                if *c != s.corp.corp_id && !s.corps.iter().any(|o| o.corp_id == *c) {
                    return Err(format!("callback {name}: no corp {c}"));
                }
            }
        }
        ReceiverKind::Instruction | ReceiverKind::Data => {
            let suite = r.suite_id.as_deref().unwrap_or_default();
            if s.suite(suite).is_none() {
                return Err(format!(
                    "callback {name}: kind {:?} needs a known suite_id",
                    r.kind
                ));
            }
            if r.corp_id.is_some() || r.agent_id.is_some() {
                return Err(format!(
                    "callback {name}: corp_id and agent_id are for kind app"
                ));
            }
        }
    }
    Ok(())
}

impl Receiver {
    fn new(spec: CallbackReceiver) -> Arc<Receiver> {
        let crypto = CallbackCrypto::new(&spec.token, &spec.encoding_aes_key)
            .expect("receivers are checked before they are registered");
        Arc::new(Receiver {
            spec,
            crypto,
            verified: tokio::sync::Mutex::new(false),
        })
    }
}

impl Hub {
    pub(crate) fn new(s: &Scenario) -> Hub {
        Hub {
            state: Mutex::new(HubState {
                receivers: s.callbacks.iter().cloned().map(Receiver::new).collect(),
                ..HubState::default()
            }),
            idle: tokio::sync::Notify::new(),
            http: reqwest::Client::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Back to the scenario's receivers, unverified, and an empty log.
    pub(crate) fn reset(&self, s: &Scenario) {
        let mut st = self.lock();
        st.receivers = s.callbacks.iter().cloned().map(Receiver::new).collect();
        st.log.clear();
    }

    /// Registers (or replaces, by name) a receiver; it is verified before its first message.
    pub(crate) fn register(&self, spec: CallbackReceiver) -> Arc<Receiver> {
        let receiver = Receiver::new(spec);
        let mut st = self.lock();
        st.receivers.retain(|r| r.spec.app != receiver.spec.app);
        st.receivers.push(receiver.clone());
        receiver
    }

    pub(crate) fn receiver(&self, app: &str) -> Option<Arc<Receiver>> {
        self.lock()
            .receivers
            .iter()
            .find(|r| r.spec.app == app)
            .cloned()
    }

    pub(crate) fn receivers(&self) -> Vec<Arc<Receiver>> {
        self.lock().receivers.clone()
    }

    pub fn log(&self) -> Vec<Record> {
        self.lock().log.clone()
    }

    fn open(&self, record: Record) -> u64 {
        let mut st = self.lock();
        let id = st.log.len() as u64 + 1;
        st.log.push(Record { id, ..record });
        id
    }

    fn update(&self, id: u64, f: impl FnOnce(&mut Record)) {
        let mut st = self.lock();
        if let Some(r) = st.log.iter_mut().find(|r| r.id == id) {
            f(r);
        }
    }

    fn finish_one(&self) {
        let mut st = self.lock();
        st.in_flight -= 1;
        if st.in_flight == 0 {
            self.idle.notify_waiters();
        }
    }

    /// Waits until nothing is being sent (at most `limit`); true when settled.
    pub async fn settled(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.lock().in_flight == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

/// Where an event of `corp` goes: the corp's app receivers, and the data URL of every suite the
/// corp installed (receive id = that corp, `AgentID` = the suite's app there).
pub(crate) fn corp_targets(world: &World, hub: &Hub, corp: &str) -> Vec<Target> {
    let home = world.home().corp_id.clone();
    let installed = world.installed_suites(corp);
    hub.receivers()
        .into_iter()
        .filter_map(|r| {
            let spec = &r.spec;
            let agent = match spec.kind {
                ReceiverKind::App if spec.corp_id.as_deref().unwrap_or(&home) == corp => {
                    spec.agent_id.map(|a| a.to_string()).unwrap_or_default()
                }
                ReceiverKind::Data => {
                    let suite = installed
                        .iter()
                        .find(|s| Some(s.suite_id.as_str()) == spec.suite_id.as_deref())?;
                    suite.agent_id.to_string()
                }
                _ => return None,
            };
            Some(Target {
                receiver: r.clone(),
                receive_id: corp.to_string(),
                to_user: corp.to_string(),
                agent_id: agent,
            })
        })
        .collect()
}

/// A suite's instruction URL(s): receive id = suite id.
pub(crate) fn suite_targets(hub: &Hub, suite: &str) -> Vec<Target> {
    hub.receivers()
        .into_iter()
        .filter(|r| {
            r.spec.kind == ReceiverKind::Instruction && r.spec.suite_id.as_deref() == Some(suite)
        })
        .map(|r| Target {
            receiver: r,
            receive_id: suite.to_string(),
            to_user: suite.to_string(),
            agent_id: String::new(),
        })
        .collect()
}

/// The target a receiver has for a message given by hand (`POST /_emulator/callbacks`).
pub(crate) fn direct_target(world: &World, r: Arc<Receiver>) -> Target {
    let (receive_id, agent) = match r.spec.kind {
        ReceiverKind::App => (
            r.spec
                .corp_id
                .clone()
                .unwrap_or_else(|| world.home().corp_id.clone()),
            r.spec.agent_id.map(|a| a.to_string()).unwrap_or_default(),
        ),
        // Instruction: the suite id. Data: with no corp named, the home corp.
        ReceiverKind::Instruction => (r.spec.suite_id.clone().unwrap_or_default(), String::new()),
        ReceiverKind::Data => (world.home().corp_id.clone(), String::new()),
    };
    Target {
        receiver: r,
        to_user: receive_id.clone(),
        receive_id,
        agent_id: agent,
    }
}

/// Sends `message` to each target in the background; returns the log ids.
pub(crate) fn send_all(state: &EmulatorState, targets: Vec<Target>, message: &str) -> Vec<u64> {
    targets
        .into_iter()
        .map(|t| send(state, t, message.to_string()))
        .collect()
}

pub(crate) fn send(state: &EmulatorState, target: Target, message: String) -> u64 {
    let hub = &state.hub;
    let id = hub.open(Record {
        id: 0,
        app: target.receiver.spec.app.clone(),
        url: target
            .receiver
            .spec
            .url
            .replace(CORPID_TEMPLATE, &target.receive_id),
        kind: "message",
        receive_id: target.receive_id.clone(),
        message: message.clone(),
        attempts: Vec::new(),
        result: "pending",
    });
    hub.lock().in_flight += 1;
    let state = state.clone();
    tokio::spawn(async move {
        deliver(&state, &target, &message, id).await;
        state.hub.finish_one();
    });
    id
}

/// The receive id of a URL check: the corp for an app's URL, the provider's corp id for a
/// suite's URLs.
fn verify_receive_id(world: &World, r: &Receiver) -> String {
    match r.spec.kind {
        ReceiverKind::App => r
            .spec
            .corp_id
            .clone()
            .unwrap_or_else(|| world.home().corp_id.clone()),
        _ => world
            .scenario
            .provider
            .as_ref()
            .map(|p| p.corp_id.clone())
            .unwrap_or_default(),
    }
}

/// A suite's data URL may carry `$CORPID$`: WeCom puts the corp the event is about there (and
/// the provider's corp id for the URL check).
const CORPID_TEMPLATE: &str = "$CORPID$";

/// `create_auth`, `change_auth` and `cancel_auth` must be answered within 1000 ms.
const FAST_ANSWER: Duration = Duration::from_millis(1000);

fn must_answer_fast(message: &str) -> bool {
    wecom_api::XmlMessage::parse(message).is_ok_and(|m| {
        matches!(
            m.get("InfoType"),
            Some("create_auth" | "change_auth" | "cancel_auth")
        )
    })
}

struct Timing {
    timeout: Duration,
    retries: u32,
    delay: Duration,
}

fn timing(state: &EmulatorState) -> Timing {
    let s = &state.world().scenario.settings;
    Timing {
        timeout: s.callback_timeout,
        retries: s.callback_retries,
        delay: s.callback_retry_delay,
    }
}

/// (timestamp from the emulated clock, a random numeric nonce)
fn stamp(state: &EmulatorState) -> (String, String) {
    let now = state.world().now() / 1000;
    (
        now.to_string(),
        rand::rng()
            .random_range(100_000_000u64..10_000_000_000)
            .to_string(),
    )
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<url::Url, String> {
    let mut u = url::Url::parse(url).map_err(|e| e.to_string())?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u)
}

/// One HTTP exchange bounded by the timeout, body included.
async fn exchange(request: reqwest::RequestBuilder, timeout: Duration) -> Attempt {
    let run = async {
        let r = request.send().await?;
        let status = r.status().as_u16();
        let body = r.text().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(Ok((status, body))) => Attempt {
            status: Some(status),
            body: Some(body),
            error: None,
        },
        Ok(Err(e)) => Attempt {
            status: None,
            body: None,
            error: Some(if e.is_connect() {
                "connect".into()
            } else {
                e.to_string()
            }),
        },
        Err(_) => Attempt {
            status: None,
            body: None,
            error: Some("timeout".into()),
        },
    }
}

/// The URL check, once per receiver until it passes: the answer must be the decrypted echostr
/// exactly — no quotes, no BOM, no newline.
async fn verify(state: &EmulatorState, r: &Receiver) -> bool {
    let receive_id = verify_receive_id(&state.world(), r);
    let plain: String = rand::rng().random_range(1u64 << 60..u64::MAX).to_string();
    let (timestamp, nonce) = stamp(state);
    let sealed = r.crypto.seal(&plain, &receive_id, &timestamp, &nonce);
    let id = state.hub.open(Record {
        id: 0,
        app: r.spec.app.clone(),
        url: r.spec.url.replace(CORPID_TEMPLATE, &receive_id),
        kind: "verify",
        receive_id: receive_id.clone(),
        message: plain.clone(),
        attempts: Vec::new(),
        result: "pending",
    });
    let url = with_query(
        &r.spec.url.replace(CORPID_TEMPLATE, &receive_id),
        &[
            ("msg_signature", &sealed.msg_signature),
            ("timestamp", &timestamp),
            ("nonce", &nonce),
            ("echostr", &sealed.encrypt),
        ],
    );
    let attempt = match url {
        Ok(url) => exchange(state.hub.http.get(url), timing(state).timeout).await,
        Err(e) => Attempt {
            status: None,
            body: None,
            error: Some(e),
        },
    };
    let ok = attempt.status == Some(200) && attempt.body.as_deref() == Some(plain.as_str());
    state.hub.update(id, |rec| {
        rec.attempts.push(attempt);
        rec.result = if ok { "delivered" } else { "failed" };
    });
    ok
}

/// WeCom takes HTTP 200; a suite's instruction URL must also answer the literal `success`.
fn accepted(kind: ReceiverKind, a: &Attempt) -> bool {
    a.status == Some(200)
        && (kind != ReceiverKind::Instruction
            || a.body.as_deref().map(str::trim) == Some("success"))
}

async fn deliver(state: &EmulatorState, t: &Target, message: &str, id: u64) {
    let verified = {
        let mut v = t.receiver.verified.lock().await;
        if !*v {
            *v = verify(state, &t.receiver).await;
        }
        *v
    };
    if !verified {
        state.hub.update(id, |rec| rec.result = "unverified");
        return;
    }
    let timing = timing(state);
    let timeout = match t.receiver.spec.kind {
        ReceiverKind::Instruction if must_answer_fast(message) => timing.timeout.min(FAST_ANSWER),
        _ => timing.timeout,
    };
    let url = t.receiver.spec.url.replace(CORPID_TEMPLATE, &t.receive_id);
    for attempt in 0..=timing.retries {
        if attempt > 0 {
            tokio::time::sleep(timing.delay).await;
        }
        let (timestamp, nonce) = stamp(state);
        let sealed = t
            .receiver
            .crypto
            .seal(message, &t.receive_id, &timestamp, &nonce);
        let body = envelope(&t.to_user, &t.agent_id, &sealed.encrypt);
        let url = with_query(
            &url,
            &[
                ("msg_signature", &sealed.msg_signature),
                ("timestamp", &timestamp),
                ("nonce", &nonce),
            ],
        );
        let result = match url {
            Ok(url) => {
                let request = state
                    .hub
                    .http
                    .post(url)
                    .header("content-type", "text/xml")
                    .body(body);
                exchange(request, timeout).await
            }
            Err(e) => Attempt {
                status: None,
                body: None,
                error: Some(e),
            },
        };
        let ok = accepted(t.receiver.spec.kind, &result);
        state.hub.update(id, |rec| {
            rec.attempts.push(result);
            if ok {
                rec.result = "delivered";
            }
        });
        if ok {
            return;
        }
    }
    state.hub.update(id, |rec| rec.result = "failed");
}
