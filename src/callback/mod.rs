//! WeCom's callbacks (SPEC section 18): verified, decrypted, durably queued, acted on and
//! forwarded to the CRM.
//!
//! A callback's path:
//! 1. [`receive`] checks it (size, signature, decryption, receive id, time window) — pure;
//! 2. the app kind's hook reads what the gateway must do itself ([`event::reactions`]: a deleted
//!    member's sessions end, a removed customer's tickets refuse), applied to the store at once;
//! 3. the event is pushed to the [`queue`] under its de-duplication key, durably;
//! 4. only then does WeCom hear `success` (a failure before that is a 503: WeCom retries);
//! 5. [`delivery`] workers, one per app, apply the reactions again (idempotent: a crash
//!    between steps 2 and 3 is healed by WeCom's retry, one after step 3 by this) and POST the
//!    event to the CRM, in order, until a 2xx.

pub mod delivery;
pub mod event;
pub mod instruction;
pub mod queue;
pub mod reactions;
pub mod receive;

use std::sync::Arc;

use wecom_api::{Store, Throttle};

use crate::config::model::{App, Config, Credentials};
use crate::metrics::METRICS;
use event::Event;
use queue::{EventQueue, Pushed};
use receive::Refusal;

/// Why a callback was not taken.
#[derive(Debug)]
pub enum Failure {
    /// No such app, or an app without `callback`: its URL does not exist.
    NotFound,
    /// Bad input: 400, nothing queued.
    Refused(Refusal),
    /// The store did not take it: 503, so that WeCom tries again.
    Unavailable(String),
}

/// The endpoint's side: the queue and the store, shared with the delivery workers.
pub struct Callbacks {
    pub queue: Arc<dyn EventQueue>,
    pub store: Arc<dyn Store>,
    /// The client and the installs: suite apps act on their instruction callbacks with them.
    pub provider: crate::provider::Provider,
    /// Refusals are logged once a minute per (app, reason): a flood must not flood the log.
    refused: Throttle<(String, &'static str)>,
    /// How far this clock runs ahead of WeCom's, read off the callbacks.
    clock_ahead: event::ClockAhead,
}

impl Callbacks {
    pub fn new(
        queue: Arc<dyn EventQueue>,
        store: Arc<dyn Store>,
        provider: crate::provider::Provider,
    ) -> Callbacks {
        Callbacks {
            queue,
            store,
            provider,
            refused: Throttle::per_minute(),
            clock_ahead: event::ClockAhead::new(),
        }
    }

    fn app<'c>(config: &'c Config, name: &str) -> Result<&'c App, Failure> {
        config
            .apps
            .get(name)
            .filter(|a| a.callback.is_some())
            .map(|a| &**a)
            .ok_or(Failure::NotFound)
    }

    /// `GET`: WeCom checks the URL; the answer is the decrypted `echostr`.
    pub fn verify_url(
        &self,
        config: &Config,
        app: &str,
        rid: &str,
        query: &[u8],
    ) -> Result<String, Failure> {
        let a = Self::app(config, app)?;
        let cb = a.callback.as_ref().expect("filtered");
        receive::verify_url(cb, query, crate::clock::now_secs())
            .map_err(|r| self.refuse(app, rid, r))
    }

    /// `POST`, before its body is read: an app with a callback, and the signed parameters in
    /// the time window. A body is held in memory until it is verified: a request that cannot
    /// be one of WeCom's is refused first.
    pub fn before_body(
        &self,
        config: &Config,
        app: &str,
        rid: &str,
        query: &[u8],
    ) -> Result<(), Failure> {
        Self::app(config, app)?;
        receive::before_body(query, crate::clock::now_secs()).map_err(|r| self.refuse(app, rid, r))
    }

    /// `POST`: a message or event, queued durably before `Ok`.
    pub async fn accept(
        &self,
        config: &Config,
        app: &str,
        rid: &str,
        query: &[u8],
        body: &[u8],
    ) -> Result<Pushed, Failure> {
        let a = Self::app(config, app)?;
        let cb = a.callback.as_ref().expect("filtered");
        let clock = crate::clock::clock();
        let now = clock.now_secs();
        // A suite's data callbacks carry the installing corp's id: any corp that installed it.
        let mut data_corp = None;
        let (plain, msg) = match receive::message(cb, query, body, now) {
            Err(receive::Refusal::Crypto(wecom_api::CryptoError::WrongReceiveId(id)))
                if self.installed(a, &id).await =>
            {
                let opened = receive::message_for(cb, query, body, now, &[&id]);
                data_corp = Some(id);
                opened
            }
            other => other,
        }
        .map_err(|r| self.refuse(app, rid, r))?;
        // The corp a data callback was encrypted for is the one it is about: the worker reads
        // the corp (headers for the CRM, sessions and contacts to end) from `ToUserName`, which
        // is only what the sender wrote.
        if let Some(corp) = &data_corp {
            if msg.get("ToUserName") != Some(corp.as_str()) {
                return Err(self.refuse(
                    app,
                    rid,
                    receive::Refusal::BadMessage(
                        "ToUserName is not the corp the message was encrypted for".into(),
                    ),
                ));
            }
            // Nor may it name another in `AuthCorpId`, which the delivery reads for a change
            // told as an instruction.
            if msg.get("AuthCorpId").is_some_and(|c| c != corp.as_str()) {
                return Err(self.refuse(
                    app,
                    rid,
                    receive::Refusal::BadMessage(
                        "AuthCorpId is not the corp the message was encrypted for".into(),
                    ),
                ));
            }
        }
        // A self-built app's messages name its agent: one naming another agent of the corp was
        // encrypted for that app (two apps sharing a Token and EncodingAESKey, which WeCom's
        // console lets one type) and would reach this app's CRM path as this app's.
        if let (wecom_api::Credentials::Wecom { agent_id, .. }, Some(named)) =
            (&a.credentials, msg.get("AgentID"))
        {
            let named = named.trim();
            if !named.is_empty() && named.parse::<u64>().ok() != Some(*agent_id) {
                return Err(self.refuse(
                    app,
                    rid,
                    receive::Refusal::BadMessage("AgentID is not this app's agent".into()),
                ));
            }
        }
        // An instruction is about one suite: one naming another (a key shared by mistake, a
        // message meant for another suite) would put that suite's ticket in this one's place.
        if let (Some((suite_id, _)), Some(named)) = (crate::suite::suite_of(a), msg.get("SuiteId"))
        {
            if msg.get("InfoType").is_some() && named != suite_id {
                return Err(self.refuse(
                    app,
                    rid,
                    receive::Refusal::BadMessage("SuiteId is not this app's suite".into()),
                ));
            }
        }
        let label = event::label(&msg);
        let ttl = reactions::revocations_kept_secs();
        let received_ms = clock.now_ms();
        // A suite's data callbacks come from every corp that installed it, each numbering its
        // own messages: the corp is part of what makes one a copy.
        let dedup = match &data_corp {
            Some(corp) => format!("{corp}:{}", event::dedup_key(&msg)),
            None => event::dedup_key(&msg),
        };
        // A copy of a message already queued (WeCom's retry, or a captured request sent again
        // within the signature's window) is acknowledged and does nothing: acting again, as of
        // now, a `cancel_auth` would remove the reinstall made since, a `delete_user` end the
        // member's new login.
        if self
            .queue
            .seen(app, &dedup)
            .await
            .map_err(|e| Failure::Unavailable(e.to_string()))?
        {
            METRICS
                .events
                .with_label_values(&[app, label, "duplicate"])
                .inc();
            return Ok(Pushed::Duplicate);
        }
        // A first arrival only tells how far this clock runs ahead of WeCom's: a copy (a
        // retry, a captured request sent again) would only say how late it came.
        let ahead = self.clock_ahead.observe(&msg, received_ms / 1000);
        let when = event::moment(&msg, received_ms, ahead);
        let at = when.at;
        let ins = instruction::read(&msg);
        if let Some(ins) = &ins {
            let not_queued = instruction::at_endpoint(&self.provider, a, ins, when, ttl)
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
            if let Some(result) = not_queued {
                // A suite ticket: kept, never queued or forwarded (it is a credential); a
                // removal the corp's install came after.
                METRICS
                    .events
                    .with_label_values(&[app, label, result])
                    .inc();
                return Ok(Pushed::Duplicate);
            }
        }
        let mut event = Event::new(app, plain, dedup, received_ms);
        event.at = Some(at);
        match &a.credentials {
            Credentials::Wecom {
                corp_id, agent_id, ..
            } => {
                event.corp = Some(corp_id.clone());
                event.agent = Some(*agent_id);
            }
            Credentials::Suite { .. } => event.corp = Some(data_corp.clone().unwrap_or_default()),
            _ => {}
        }
        // The hook of the app's kind: what the gateway does itself, before anything is queued.
        let todo = match (&a.credentials, &data_corp) {
            (Credentials::Wecom { corp_id, .. }, _) => event::reactions(corp_id, &msg),
            // An installed corp's event: its member's sessions, its contacts.
            (Credentials::Suite { .. }, Some(corp)) => event::reactions(corp, &msg),
            // The same change as an instruction, for a corp that installed the suite.
            (Credentials::Suite { .. }, None) => match event::instruction_corp(&msg) {
                Some(corp) if self.installed(a, corp).await => event::reactions(corp, &msg),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        event.told = !todo.is_empty();
        for r in &todo {
            reactions::apply(&*self.store, r, at, ttl)
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
        }
        let pushed = self
            .queue
            .push(&event)
            .await
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let result = match pushed {
            Pushed::Queued => "queued",
            Pushed::Duplicate => "duplicate",
        };
        METRICS
            .events
            .with_label_values(&[app, label, result])
            .inc();
        if pushed == Pushed::Queued {
            tracing::info!(app, event = label, event_id = %event.id, "callback queued");
            todo.iter().for_each(reactions::tell);
            if let Some(instruction::Instruction::Exchange { auth_code }) = ins {
                if let Some(a) = config.apps.get(app) {
                    instruction::exchange_soon(self.provider.clone(), a.clone(), auth_code, when);
                }
            }
        }
        Ok(pushed)
    }

    /// Whether `corp_id` installed the suite app `a` (false for any other app).
    async fn installed(&self, a: &App, corp_id: &str) -> bool {
        crate::suite::suite_of(a).is_some()
            && matches!(
                self.provider
                    .installs()
                    .corp(&**self.provider.store(), a, corp_id)
                    .await,
                Ok(Some(_))
            )
    }

    fn refuse(&self, app: &str, rid: &str, r: Refusal) -> Failure {
        let label = r.label();
        METRICS
            .events
            .with_label_values(&[app, "unknown", "refused"])
            .inc();
        if self
            .refused
            .due((app.to_owned(), label), crate::clock::clock().now_ms())
        {
            // The label only: the detail of a bad message may quote what it decrypted to.
            let hint: std::borrow::Cow<'static, str> = match (&r, label) {
                // How far off, which no message content is part of: a host whose clock is
                // wrong refuses every callback, each by about as much.
                (Refusal::Stale(_), _) => format!("{r} (or a replayed request)").into(),
                (_, "bad_signature") => {
                    "the app's callback token is not the one in WeCom's console".into()
                }
                (_, "undecryptable") => {
                    "the app's encoding_aes_key is not the one in WeCom's console".into()
                }
                (_, "bad_envelope") => {
                    "the body is not WeCom's encrypted XML (with its <Encrypt>)".into()
                }
                (_, "wrong_receive_id") => {
                    "the message was encrypted for another corp or suite".into()
                }
                _ => "".into(),
            };
            let hint = hint.as_ref();
            tracing::warn!(
                app,
                reason = label,
                hint,
                request_id = rid,
                "callback refused with 400 (logged once a minute per reason)"
            );
        }
        Failure::Refused(r)
    }
}
