//! Delivery to the CRM (SPEC section 18): one worker per app with a `callback`, in order, until
//! a 2xx; anything else is retried with backoff — 1 s doubling to 5 min — for 24 hours from
//! when the event was queued. After that the event is parked (kept 7 days in the store,
//! logged with its id, counted as `dead`) and the next one comes up: a CRM down for more than
//! a day gets what arrived in its last day, not a queue blocked for ever.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use sha2::Sha256;
use wecom_api::{Throttle, XmlMessage};

use super::event::{self, Event};
use super::queue::{EventQueue, Queued, Retries};
use super::{reactions, Callbacks};
use crate::config::model::{App, CallbackFormat, Config, Credentials, Forward};
use crate::metrics::METRICS;

/// The first retry waits this long; each next one twice as long, up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Retried for this long from its first try (at least [`MIN_TRIES`] times); then parked.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// Tries an event gets at least before it is given up on, however the clock moved.
const MIN_TRIES: u32 = 10;
/// A service-provider instruction's own step before delivery (WeCom asked again about an
/// install after `change_auth`) is tried this many times, with growing waits (a minute in
/// all), before the event goes on without it: WeCom refusing for good must not hold every later
/// event of the app back.
const INSTRUCTION_TRIES: u32 = 6;

/// The longest wait between two tries of an install's exchange (a rate limit that ends is
/// noticed within it).
const EXCHANGE_RETRY_MAX: Duration = Duration::from_secs(30);
/// An idle worker looks again this often even if nothing woke it.
const IDLE: Duration = Duration::from_secs(1);
/// How long past an event's next try an instance that failed it waits before it may lead
/// again: another instance (looking for the lease at least once a second) makes the try; alone,
/// it makes it this much later.
const STAND_BACK: Duration = Duration::from_millis(250);
/// While waiting or delivering, the lease (Redis) is renewed this often.
const RENEW_EVERY: Duration = Duration::from_millis(500);

fn stand_back() -> Duration {
    #[cfg(debug_assertions)]
    if crate::test_control::fast_retry() {
        return STAND_BACK / 1000;
    }
    STAND_BACK
}

/// The wait before retry number `failures` (1 = after the first failure).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let wait = BACKOFF_START
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX);
    #[cfg(debug_assertions)]
    if crate::test_control::fast_retry() {
        return wait / 1000;
    }
    wait
}

/// `X-Gateway-Signature`: `sha256=` and the hex HMAC-SHA256 of the body with
/// `assertion_secret`, as GitHub signs its webhooks, so CRMs know how to check it.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `X-Gateway-Signature-V2`: `t=TIME,sha256=HEX`, the HMAC-SHA256 with `assertion_secret` of
/// `TIME.EVENT_ID.CORP_ID.AGENT_ID.BODY` (TIME in Unix seconds, when this try was sent). The
/// body alone (`X-Gateway-Signature`) says nothing of when or for which corp it was sent: a
/// captured delivery could be sent again later, under another event id or corp; a CRM that
/// checks this one, and refuses a TIME older than a few minutes, cannot be replayed to.
pub fn signature_v2(
    secret: &[u8],
    time: u64,
    event_id: &str,
    corp: &str,
    agent: &str,
    body: &[u8],
) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in [
        time.to_string().as_bytes(),
        event_id.as_bytes(),
        corp.as_bytes(),
        agent.as_bytes(),
    ] {
        mac.update(part);
        mac.update(b".");
    }
    mac.update(body);
    format!(
        "t={time},sha256={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The body the CRM receives: the plaintext as WeCom sent it, or its JSON rendering.
pub fn body(format: CallbackFormat, message: &str) -> Option<String> {
    match format {
        CallbackFormat::Xml => Some(message.to_owned()),
        CallbackFormat::Json => XmlMessage::parse(message).ok().map(|m| m.to_json()),
    }
}

pub struct Delivery {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<ArcSwap<Config>>,
    callbacks: Arc<Callbacks>,
    http: reqwest::Client,
    logged: Throttle<(String, &'static str)>,
}

impl Delivery {
    pub fn new(config: Arc<ArcSwap<Config>>, callbacks: Arc<Callbacks>) -> Delivery {
        // The CRM is an upstream like the proxied ones: reached directly, never through the
        // outbound proxy that `HTTPS_PROXY` names for WeCom's calls.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("a plain HTTP client builds");
        Delivery {
            inner: Arc::new(Inner {
                config,
                callbacks,
                http,
                logged: Throttle::per_minute(),
            }),
        }
    }
}

#[async_trait]
impl BackgroundService for Delivery {
    /// Starts a worker for every app with a `callback`, also for apps added by a reload.
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut workers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        // Said once (Redis may be down now: then once it answers, however long that takes).
        let inner = self.inner.clone();
        let warned = tokio::spawn(async move {
            let waits = [0, 1, 2, 4, 8, 16, 30]
                .into_iter()
                .chain(std::iter::repeat(60));
            let mut persistence_said = false;
            for wait in waits {
                tokio::time::sleep(Duration::from_secs(wait)).await;
                if !persistence_said {
                    match inner.queue().persistence_warning().await {
                        Ok(w) => {
                            if let Some(w) = w {
                                tracing::warn!("{w}");
                            }
                            persistence_said = true;
                        }
                        Err(_) => continue,
                    }
                }
                if inner.warn_of_events_without_callback().await.is_ok() {
                    return;
                }
            }
        });
        loop {
            for (name, app) in self.inner.config.load().apps.iter() {
                if app.callback.is_some() && !workers.contains_key(name) {
                    let inner = self.inner.clone();
                    let name2 = name.clone();
                    workers.insert(
                        name.clone(),
                        tokio::spawn(async move { inner.work(&name2).await }),
                    );
                }
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(IDLE) => {}
            }
        }
        warned.abort();
        // A delivery cut short here was not acknowledged: it is delivered again after the
        // restart (or by another instance), with the same event id.
        for (name, w) in workers {
            w.abort();
            // Ended before the entry it held is let go: nothing is posted after this.
            let _ = w.await;
            self.inner.callbacks.queue.resign(&name).await;
        }
    }
}

/// The corp a suite's event was received for: the one its data callback was encrypted for
/// (empty for an instruction); for an event queued before that was kept, its `ToUserName`,
/// which the endpoint then held to that corp.
fn received_for<'a>(e: &'a Event, msg: &'a XmlMessage) -> Option<&'a str> {
    match &e.corp {
        Some(c) => Some(c.as_str()),
        None => msg.get("ToUserName"),
    }
}

enum Attempt {
    Delivered,
    Failed(String),
}

impl Inner {
    fn queue(&self) -> &dyn EventQueue {
        &*self.callbacks.queue
    }

    /// Events kept for an app this config does not forward for (its callback removed, or the
    /// app renamed while events waited) have no worker: said at start, or they wait unseen. A
    /// reload that removes a callback is said by that app's worker.
    async fn warn_of_events_without_callback(&self) -> Result<(), super::queue::QueueError> {
        let apps = self.queue().queued_apps().await?;
        let config = self.config.load();
        for (app, events) in apps {
            if config.apps.get(&app).is_none_or(|a| a.callback.is_none()) {
                tracing::warn!(
                    app = %app,
                    events,
                    "events queued for an app without callback in this config: they wait until it has one again"
                );
            }
        }
        Ok(())
    }

    fn warn(&self, app: &str, what: &'static str, detail: &str) {
        if self
            .logged
            .due((app.to_owned(), what), crate::clock::clock().now_ms())
        {
            tracing::warn!(
                app,
                what,
                detail,
                "callback delivery (logged once a minute)"
            );
        }
    }

    async fn work(&self, app: &str) {
        let mut failures = 0u32;
        // The event whose reactions this worker already applied.
        // The event whose reactions are done, and whether it goes to the CRM after them.
        let mut reacted: Option<(String, bool)> = None;
        // The event whose reactions failed, and how many times in a row.
        let mut reaction_failures: Option<(String, u32)> = None;
        // The head event and when this worker first tried it: an event is given up on only
        // after it has been tried for [`RETRY_FOR`] itself (not counted from when it was
        // queued: behind an event the CRM refused for a day, the next ones would each get one
        // try), and at least [`MIN_TRIES`] times.
        let mut trying: Option<(String, u64)> = None;
        // The event the CRM took whose removal from the queue failed (a store that stopped
        // taking writes: a full disk): only the removal is tried again, with growing waits,
        // not the delivery once a second.
        let mut taken: Option<(String, u32)> = None;
        loop {
            match self.queue().lead(app).await {
                Ok(true) => {}
                Ok(false) => {
                    self.queue().wait(app, IDLE).await;
                    continue;
                }
                Err(e) => {
                    self.warn(app, "queue unreachable", &e.to_string());
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            }
            if let Ok(d) = self.queue().depth(app).await {
                METRICS
                    .event_queue_depth
                    .with_label_values(&[app])
                    .set(d as i64);
            }
            let config = self.config.load_full();
            // What another instance took for delivery and left alone longer than a delivery
            // can take is delivered first; one of its deliveries that may still be under way
            // is waited for.
            let in_flight = config
                .apps
                .get(app)
                .and_then(|a| a.callback.as_ref()?.forward.as_ref())
                .map_or(Duration::ZERO, |f| {
                    f.upstream.connect_timeout + f.upstream.read_timeout
                });
            match self.queue().settle(app, in_flight).await {
                Ok(true) => {}
                Ok(false) => {
                    // Within the lease: it is renewed on the next turn.
                    tokio::time::sleep(RENEW_EVERY).await;
                    continue;
                }
                Err(e) => {
                    self.warn(app, "queue unreachable", &e.to_string());
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            }
            let head = match self.queue().head(app).await {
                Ok(Some(h)) => h,
                Ok(None) => {
                    self.queue().wait(app, IDLE).await;
                    continue;
                }
                Err(e) => {
                    self.warn(app, "queue unreachable", &e.to_string());
                    tokio::time::sleep(IDLE).await;
                    continue;
                }
            };
            // The failures counted are those of the head event (another instance may have
            // delivered the one this one failed with). In a cluster they are the cluster's:
            // one schedule per event whichever instance tries, and its next try not before its
            // time (the lease held meanwhile, so that no other instance tries sooner).
            let shared = self.queue().shares_retries();
            if shared {
                let kept = match self.queue().retries(app).await {
                    Ok(r) => r.filter(|r| r.event_id == head.event.id),
                    Err(e) => {
                        self.warn(app, "queue unreachable", &e.to_string());
                        tokio::time::sleep(IDLE).await;
                        continue;
                    }
                };
                (failures, trying) = match &kept {
                    Some(r) => (r.failures, Some((r.event_id.clone(), r.since_ms))),
                    None => (0, None),
                };
                if let Some(r) = kept.filter(|r| r.wait_ms > 0) {
                    let wait = Duration::from_millis(r.wait_ms).min(IDLE);
                    self.renewing(app, &head, tokio::time::sleep(wait)).await;
                    continue;
                }
            } else if trying.as_ref().is_some_and(|(id, _)| *id != head.event.id) {
                trying = None;
                failures = 0;
            }
            let Some(a) = config.apps.get(app).filter(|a| a.callback.is_some()) else {
                // Its callback was removed by a reload: the events wait for it to come back.
                self.warn(app, "events queued for an app without callback", "");
                tokio::time::sleep(IDLE * 5).await;
                continue;
            };
            let msg = XmlMessage::parse(&head.event.message).unwrap_or_default();
            let label = event::label(&msg);
            if reacted.as_ref().map(|(id, _)| id.as_str()) != Some(head.event.id.as_str()) {
                let forward;
                match self.react(a, &msg, &head.event).await {
                    Ok(f) => forward = f,
                    Err(e) => {
                        let tries = match &reaction_failures {
                            Some((id, n)) if *id == head.event.id => n + 1,
                            _ => 1,
                        };
                        // A store's failure (a revocation to keep) is waited out however long; a
                        // provider step is given up on after its tries, an install's exchange
                        // when its code dies (WeCom's rate limit may last a minute).
                        let ins = super::instruction::read(&msg);
                        let gives_up = ins.as_ref().is_some_and(|i| {
                            tries >= INSTRUCTION_TRIES
                                && !super::instruction::exchange_lives(
                                    i,
                                    head.event.queued_at,
                                    crate::clock::clock().now_ms(),
                                )
                        });
                        if let Some(ins) = ins.as_ref().filter(|_| gives_up) {
                            // An install that was not kept names no corp: not the CRM's.
                            forward = super::instruction::installed(
                                &**self.callbacks.provider.store(),
                                a,
                                ins,
                            )
                            .await;
                            tracing::error!(
                                app,
                                event = label,
                                event_id = %head.event.id,
                                tries,
                                error = %e,
                                forwarded = forward,
                                "an instruction's own step failed every time: the event is delivered without it"
                            );
                        } else {
                            self.warn(app, "reaction not done; retrying", &e);
                            reaction_failures = Some((head.event.id.clone(), tries));
                            // An exchange waits out a rate limit in steps of half a minute at
                            // most: the queue behind it must not sleep minutes past its end.
                            let mut wait = backoff(tries);
                            if ins.as_ref().is_some_and(|i| {
                                matches!(i, super::instruction::Instruction::Exchange { .. })
                            }) {
                                wait = wait.min(EXCHANGE_RETRY_MAX);
                            }
                            self.renewing(app, &head, tokio::time::sleep(wait)).await;
                            continue;
                        }
                    }
                }
                reaction_failures = None;
                if !forward {
                    tracing::info!(app, event = label, event_id = %head.event.id, "event acknowledged and not forwarded: a removal older than the corp's install, or an install WeCom refused");
                }
                reacted = Some((head.event.id.clone(), forward));
            }
            let forward = reacted.as_ref().is_some_and(|(_, f)| *f);
            let cb = a.callback.as_ref().expect("filtered");
            let already = taken.as_ref().is_some_and(|(id, _)| *id == head.event.id);
            let attempt = match &cb.forward {
                None => Attempt::Delivered,
                Some(_) if already || !forward => Attempt::Delivered,
                Some(fwd) => {
                    // Not when the lease (or the event) has just gone to another instance:
                    // it delivers it.
                    if !matches!(self.queue().working_on(app, &head).await, Ok(true)) {
                        tokio::time::sleep(IDLE).await;
                        continue;
                    }
                    let post = self.post(&config, a, fwd, cb.format, &head.event);
                    self.renewing(app, &head, post).await
                }
            };
            match attempt {
                Attempt::Delivered => {
                    if let Err(e) = self.queue().ack(app, &head).await {
                        self.warn(
                            app,
                            "the CRM took an event but the queue did not let it go; only that \
                             is tried again (a full disk: writes go on once it has room)",
                            &e.to_string(),
                        );
                        let tries = match &taken {
                            Some((id, n)) if *id == head.event.id => n + 1,
                            _ => 1,
                        };
                        taken = Some((head.event.id.clone(), tries));
                        tokio::time::sleep(backoff(tries)).await;
                        continue;
                    }
                    taken = None;
                    if shared && trying.is_some() {
                        let _ = self.queue().keep_retries(app, None).await;
                    }
                    trying = None;
                    failures = 0;
                    METRICS
                        .events
                        .with_label_values(&[app, label, "delivered"])
                        .inc();
                }
                Attempt::Failed(why) => {
                    failures += 1;
                    METRICS
                        .events
                        .with_label_values(&[app, label, "failed"])
                        .inc();
                    self.warn(app, "the CRM did not take an event; retrying", &why);
                    let now = crate::clock::clock().now_ms();
                    let since = match &trying {
                        Some((id, since)) if *id == head.event.id => *since,
                        _ => {
                            trying = Some((head.event.id.clone(), now));
                            now
                        }
                    };
                    let tried_for = now.saturating_sub(since);
                    if tried_for >= RETRY_FOR.as_millis() as u64 && failures >= MIN_TRIES {
                        self.give_up(app, label, &head).await;
                        // Replayed by an operator, it is tried for a day again.
                        if shared {
                            let _ = self.queue().keep_retries(app, None).await;
                        }
                        trying = None;
                        failures = 0;
                    } else if shared {
                        // Another instance may reach the CRM where this one cannot (a
                        // partition, a route or a resolver of its own): the schedule is kept
                        // for all, the lease given back, and this instance stands back a moment
                        // past the next try's time, so another one makes it.
                        let wait = backoff(failures);
                        let r = Retries {
                            event_id: head.event.id.clone(),
                            failures,
                            since_ms: since,
                            wait_ms: wait.as_millis() as u64,
                        };
                        if let Err(e) = self.queue().keep_retries(app, Some(&r)).await {
                            self.warn(app, "queue unreachable", &e.to_string());
                        }
                        self.queue().resign(app).await;
                        tokio::time::sleep(wait + stand_back()).await;
                    } else {
                        self.renewing(app, &head, tokio::time::sleep(backoff(failures)))
                            .await;
                    }
                }
            }
        }
    }

    async fn give_up(&self, app: &str, label: &'static str, head: &Queued) {
        match self.queue().park(app, head).await {
            Ok(()) => {
                METRICS
                    .events
                    .with_label_values(&[app, label, "dead"])
                    .inc();
                tracing::error!(
                    app,
                    event = label,
                    event_id = %head.event.id,
                    "callback event not delivered for 24 hours: parked (kept 7 days), the next one goes on"
                );
            }
            Err(e) => self.warn(app, "parking failed", &e.to_string()),
        }
    }

    /// The reactions again, as of the same time as at the endpoint (idempotent); `false`: the
    /// event is not for the CRM after all (a removal older than the corp's install). The error
    /// says what failed: the store, or (an instruction's own step) WeCom.
    async fn react(&self, app: &Arc<App>, msg: &XmlMessage, e: &Event) -> Result<bool, String> {
        let ttl = reactions::revocations_kept_secs();
        // The endpoint's time for the same event: applying twice changes nothing.
        let mut when = event::moment(msg, e.queued_at, 0);
        if let Some(at) = e.at {
            when.at = at;
        }
        let at = when.at;
        let changed_corp = event::instruction_corp(msg);
        if let Some(ins) = super::instruction::read(msg).filter(|_| changed_corp.is_none()) {
            let provider = &self.callbacks.provider;
            return super::instruction::before_delivery(provider, app, &ins, when, ttl)
                .await
                .map_err(|super::instruction::Failure::Retry(e)| e);
        }
        let corp_id = match &app.credentials {
            // The corp it was received for, whatever the app names since.
            Credentials::Wecom { corp_id, .. } => e.corp.clone().unwrap_or_else(|| corp_id.clone()),
            // A data callback of an installed corp: the one it was encrypted for (never its
            // `ToUserName`, which an instruction may write as it likes); or a change as an
            // instruction, about the corp it names.
            Credentials::Suite { .. } => {
                let provider = &self.callbacks.provider;
                let Some(corp) = changed_corp
                    .or_else(|| received_for(e, msg))
                    .filter(|c| !c.is_empty())
                else {
                    return Ok(true);
                };
                match provider
                    .installs()
                    .corp(&**provider.store(), app, corp)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(_) => corp.to_owned(),
                    None => return Ok(true),
                }
            }
            _ => return Ok(true),
        };
        for r in event::reactions(&corp_id, msg) {
            reactions::apply(&*self.callbacks.store, &r, at, ttl)
                .await
                .map_err(|e| e.to_string())?;
            if !e.told {
                reactions::tell(&r);
            }
        }
        Ok(true)
    }

    /// Runs `work` on `head` while renewing the app's lease and saying that `head` is being
    /// worked on, so that a slow CRM does not hand it to another instance in the middle of a
    /// delivery.
    async fn renewing<T>(
        &self,
        app: &str,
        head: &Queued,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep(RENEW_EVERY) => {
                    let _ = self.queue().working_on(app, head).await;
                }
            }
        }
    }

    /// A suite app's event is about one corp (`AuthCorpId` of an instruction, the corp a data
    /// callback was encrypted for): the CRM is told which, and the app's agent id there when
    /// installed. `create_auth` names no corp: the install its AuthCode's exchange kept does.
    async fn suite_corp(&self, app: &App, e: &Event) -> (String, String) {
        let msg = XmlMessage::parse(&e.message).unwrap_or_default();
        let provider = &self.callbacks.provider;
        // `create_auth` names no corp, only its AuthCode: the exchange (done before delivery)
        // recorded which corp the code installed.
        let exchanged = match (
            msg.get("InfoType"),
            msg.get("AuthCode"),
            crate::suite::suite_of(app),
        ) {
            (Some("create_auth" | "reset_permanent_code"), Some(code), Some((suite_id, _))) => {
                provider
                    .store()
                    .get_fact(&crate::suite::install::exchanged_key(suite_id, code))
                    .await
                    .ok()
                    .flatten()
                    .filter(|c| !c.is_empty())
            }
            _ => None,
        };
        // What the code installed is the corp, whatever the message says beside it: an
        // `AuthCorpId` that disagrees would have the CRM provision another tenant.
        if let (Some(said), Some(installed)) = (msg.get("AuthCorpId"), exchanged.as_deref()) {
            if said != installed {
                tracing::warn!(app = %app.name, said, installed, "an install's message names another corp than its AuthCode installed: the installed one is sent");
            }
        }
        let corp = match (
            exchanged.as_deref(),
            msg.get("AuthCorpId"),
            msg.get("InfoType"),
            received_for(e, &msg),
        ) {
            (Some(c), _, _, _) => c,
            (None, Some(c), _, _) => c,
            (None, None, None, Some(c)) => c,
            _ => return (String::new(), String::new()),
        };
        if !crate::domain::is_plain_id(corp) {
            return (String::new(), String::new());
        }
        let agent = match provider
            .installs()
            .corp(&**provider.store(), app, corp)
            .await
        {
            Ok(Some(c)) => c.install.agent().map(|a| a.to_string()).unwrap_or_default(),
            _ => String::new(),
        };
        (corp.to_owned(), agent)
    }

    async fn post(
        &self,
        config: &Config,
        app: &App,
        fwd: &Forward,
        format: CallbackFormat,
        e: &Event,
    ) -> Attempt {
        let Some(body) = body(format, &e.message) else {
            return Attempt::Failed("the message has no JSON rendering".into());
        };
        let (corp, agent) = match &app.credentials {
            // The corp and agent it was received and verified for, whatever the app names
            // since (a reload): a CRM serving several corps files it under the right one.
            Credentials::Wecom {
                corp_id, agent_id, ..
            } => match (&e.corp, e.agent) {
                (Some(corp), Some(agent)) => (corp.clone(), agent.to_string()),
                _ => (corp_id.clone(), agent_id.to_string()),
            },
            Credentials::Suite { .. } => self.suite_corp(app, e).await,
            _ => (String::new(), String::new()),
        };
        let corp = corp.as_str();
        let up = &fwd.upstream;
        let signatures = config
            .session
            .as_ref()
            .and_then(|s| s.assertion_secret.as_ref())
            .map(|secret| {
                let key = secret.expose().as_bytes();
                let now = crate::clock::clock().now_secs();
                (
                    signature(key, body.as_bytes()),
                    signature_v2(key, now, &e.id, corp, &agent, body.as_bytes()),
                )
            });
        // An upstream of several servers: one the proxy's balancing would choose, the next
        // when it cannot be reached (the event was not sent).
        let mut tried = Default::default();
        loop {
            let (addr, host, server) = match up.balance.as_deref() {
                None => (up.addr, up.authority.as_str(), None),
                Some(b) => match b.pick(&mut tried, None, std::time::Instant::now()) {
                    Some(i) => (
                        b.servers[i].addr,
                        b.servers[i].authority.as_str(),
                        Some((b, i)),
                    ),
                    None => {
                        return Attempt::Failed(format!("no live server of upstream {}", up.name))
                    }
                },
            };
            let mut req = self
                .http
                .post(format!("http://{addr}{}", fwd.path))
                .timeout(up.connect_timeout + up.read_timeout)
                .header("host", host)
                .header("content-type", format.content_type())
                .header("x-wecom-corpid", corp)
                .header("x-wecom-agentid", agent.as_str())
                .header("x-gateway-event-id", e.id.as_str());
            if let Some((v1, v2)) = &signatures {
                req = req
                    .header("x-gateway-signature", v1.as_str())
                    .header("x-gateway-signature-v2", v2.as_str());
            }
            let sent = req.body(body.clone()).send().await;
            if let Some((b, i)) = server {
                match &sent {
                    Err(err) if err.is_connect() || err.is_timeout() => {
                        b.failed(i, std::time::Instant::now());
                        if err.is_connect() && b.has_more(&tried) {
                            continue;
                        }
                    }
                    _ => b.answered(i),
                }
            }
            return match sent {
                Ok(r) if r.status().is_success() => Attempt::Delivered,
                Ok(r) => Attempt::Failed(format!("HTTP {} from {host}", r.status().as_u16())),
                Err(e) if e.is_timeout() => Attempt::Failed(format!("{host} timed out")),
                Err(e) if e.is_connect() => Attempt::Failed(format!("could not connect to {host}")),
                Err(e) => Attempt::Failed(format!("{e}")),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A suite's event is delivered for the corp it was received for: a data callback's, none
    /// for an instruction whatever its `ToUserName` says, and for an event queued by a version
    /// that kept no corp (its endpoint held `ToUserName` to the data callback's corp), that.
    #[test]
    fn a_suite_events_corp_is_the_one_it_was_received_for() {
        let xml = "<xml><ToUserName>wwA</ToUserName><MsgType>event</MsgType></xml>";
        let msg = XmlMessage::parse(xml).unwrap();
        let queued = |corp: Option<&str>| {
            let mut e = Event::new("saas", xml.to_owned(), "d".into(), 0);
            e.corp = corp.map(str::to_owned);
            // As the queue keeps it, and reads it back.
            serde_json::from_str::<Event>(&serde_json::to_string(&e).unwrap()).unwrap()
        };
        assert_eq!(received_for(&queued(Some("wwB")), &msg), Some("wwB"));
        assert_eq!(received_for(&queued(Some("")), &msg), Some(""));
        assert_eq!(received_for(&queued(None), &msg), Some("wwA"));
    }

    /// A `create_auth` names its corp from the record of its code's exchange for as long as
    /// the queue may hold it, parked included.
    #[test]
    fn an_exchange_is_remembered_as_long_as_its_event_may_wait() {
        assert!(
            crate::suite::install::EXCHANGE_RECORD
                >= RETRY_FOR + super::super::queue::DEAD_TTL + Duration::from_secs(3600)
        );
    }

    #[test]
    fn backoff_doubles_from_a_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
        // Enough tries fit in the 24 hours: it is retried, not given up after a few.
        let mut t = Duration::ZERO;
        let mut n = 0;
        while t < RETRY_FOR {
            n += 1;
            t += backoff(n);
        }
        assert!(n > 280, "{n} tries in a day");
    }

    #[test]
    fn the_signature_is_a_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The second signature covers when, which event and which corp, as well as the body:
    /// any of them changed, it no longer checks.
    #[test]
    fn the_second_signature_covers_time_event_and_corp() {
        // RFC 4231 test case 2's key and message, the message behind the four parts.
        let v2 = signature_v2(b"Jefe", 1, "e", "c", "a", b"what do ya want for nothing?");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.e.c.a.what do ya want for nothing?");
        assert_eq!(
            v2,
            format!("t=1,sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        let base = signature_v2(b"k", 100, "ev1", "ww1", "1000002", b"<xml/>");
        for other in [
            signature_v2(b"k", 101, "ev1", "ww1", "1000002", b"<xml/>"),
            signature_v2(b"k", 100, "ev2", "ww1", "1000002", b"<xml/>"),
            signature_v2(b"k", 100, "ev1", "ww2", "1000002", b"<xml/>"),
            signature_v2(b"k", 100, "ev1", "ww1", "1000003", b"<xml/>"),
            signature_v2(b"k", 100, "ev1", "ww1", "1000002", b"<xml />"),
        ] {
            assert_ne!(
                base.split_once(',').unwrap().1,
                other.split_once(',').unwrap().1
            );
        }
    }

    #[test]
    fn the_crm_gets_the_plaintext_or_its_json() {
        let xml = "<xml><ToUserName><![CDATA[ww1]]></ToUserName><CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType></xml>";
        assert_eq!(body(CallbackFormat::Xml, xml).as_deref(), Some(xml));
        let json: serde_json::Value =
            serde_json::from_str(&body(CallbackFormat::Json, xml).unwrap()).unwrap();
        assert_eq!(json["ToUserName"], "ww1");
        assert_eq!(json["MsgType"], "event");
    }
}
