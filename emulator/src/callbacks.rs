//! Sending callbacks as WeCom does (SPEC section 18, WECOM_API.md "Callbacks in detail"): a
//! receiver's URL is verified first (GET with `echostr`), then each message is encrypted, signed
//! and POSTed; no answer in `callback_timeout`, or an answer WeCom does not take, is tried
//! `callback_retries` more times. Everything sent and what came back is logged for tests.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use wecom_api::CallbackCrypto;

use crate::scenario::{CallbackReceiver, ReceiverKind, Scenario};
use crate::state::World;

mod send;

pub(crate) use send::{send, send_all};

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
