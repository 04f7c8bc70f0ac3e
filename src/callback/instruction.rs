//! The instruction callbacks of a suite (WECOM_API.md "Callbacks in detail"): `suite_ticket`,
//! `create_auth`, `change_auth`, `cancel_auth`, `reset_permanent_code`.
//!
//! WeCom wants the literal `success` within 1 s, and an AuthCode lives 10 minutes, single use.
//! The exchange therefore never runs inside the callback's answer: the event is first queued
//! durably (SPEC section 18), WeCom hears `success`, and the code is exchanged at once, apart
//! from the queue ([`exchange_soon`]: the app's events wait for the CRM, for hours if it is
//! down or refuses one, and an install must not wait for that). The app's delivery worker —
//! after a crash or `kill -9`, again after the restart — exchanges it too *before* it forwards
//! the event, if that was not done: so the CRM hears of an install only once it is kept. The
//! code's exchange record makes every exchange after the first do nothing.
//!
//! Instructions act as of when they happened ([`super::event::acted_at`]): a `cancel_auth`
//! replayed, or delivered late, leaves an install made since alone.
//!
//! Handled at the endpoint itself, before `success`: the suite ticket (kept, newest wins; it is
//! a credential, so it is never queued or forwarded) and `cancel_auth` (the corp's sessions end
//! at once, on every instance).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use wecom_api::{suite_ticket_key, ApiRequest, Store, StoreError, SuiteTicket, XmlMessage};

use crate::config::model::App;
use crate::provider::{Provider, TokenKind};
use crate::suite::install::Moment;
use crate::suite::install::{self, Install, AUTH_CODE_RECORD, DURABLE};
use crate::suite::{suite_of, Installs};

/// An instruction as the gateway reads it; `None` from [`read`] for anything else (a data
/// callback of an installing corp).
#[derive(Debug, PartialEq, Eq)]
pub enum Instruction {
    SuiteTicket(SuiteTicket),
    /// `create_auth` and `reset_permanent_code` (代开发): an AuthCode to exchange.
    Exchange {
        auth_code: String,
    },
    ChangeAuth {
        corp_id: String,
    },
    CancelAuth {
        corp_id: String,
    },
    /// An `InfoType` the gateway has nothing to do about: forwarded as it is.
    Other,
}

pub fn read(msg: &XmlMessage) -> Option<Instruction> {
    let info = msg.get("InfoType")?;
    let field = |k| msg.get(k).filter(|v| !v.is_empty()).map(str::to_owned);
    Some(match info {
        // A ticket is sent back to WeCom as it came: only a plain one with a time is kept.
        "suite_ticket" => match (
            field("SuiteTicket").filter(|t| crate::domain::is_plain_id(t)),
            field("TimeStamp").and_then(|t| t.trim().parse().ok()),
        ) {
            (Some(ticket), Some(timestamp)) => {
                Instruction::SuiteTicket(SuiteTicket { timestamp, ticket })
            }
            _ => Instruction::Other,
        },
        "create_auth" | "reset_permanent_code" => match field("AuthCode") {
            Some(auth_code) => Instruction::Exchange { auth_code },
            None => Instruction::Other,
        },
        "change_auth" => match field("AuthCorpId") {
            Some(corp_id) => Instruction::ChangeAuth { corp_id },
            None => Instruction::Other,
        },
        "cancel_auth" => match field("AuthCorpId") {
            Some(corp_id) => Instruction::CancelAuth { corp_id },
            None => Instruction::Other,
        },
        _ => Instruction::Other,
    })
}

/// Keeps `ticket` unless the store holds a newer one (WeCom's retries and reordered pushes
/// bring older tickets late; the newest is the one to use). `true` when kept. Times are read
/// as `now` (Unix s) at the latest, with WeCom's minute of allowance: one ticket dated in the
/// future (milliseconds for seconds, a broken clock) must not outrank every later one, for
/// ever (the suite token then fails once it expires).
pub async fn keep_ticket(
    store: &dyn Store,
    suite_id: &str,
    ticket: &SuiteTicket,
    now: u64,
) -> Result<bool, StoreError> {
    let latest = now.saturating_add(60);
    let ticket = SuiteTicket {
        timestamp: ticket.timestamp.min(latest),
        ticket: ticket.ticket.clone(),
    };
    let key = suite_ticket_key(suite_id);
    if let Some(kept) = store
        .get_fact(&key)
        .await?
        .as_deref()
        .and_then(SuiteTicket::decode)
    {
        let kept_at = kept.timestamp.min(latest);
        if kept_at > ticket.timestamp
            || (kept_at == ticket.timestamp && kept.ticket == ticket.ticket)
        {
            return Ok(false);
        }
    }
    store
        .put_durable_fact(&key, &ticket.encode(), DURABLE)
        .await?;
    Ok(true)
}

/// What the endpoint does before it answers `success`. `Some(result)`: the message is not
/// queued, for that reason (the `result` of its count): a suite ticket (`kept`), a removal
/// older than the corp's install (`stale`).
pub async fn at_endpoint(
    provider: &Provider,
    app: &App,
    ins: &Instruction,
    when: Moment,
    kept_secs: u64,
) -> Result<Option<&'static str>, StoreError> {
    let Some((suite_id, _)) = suite_of(app) else {
        return Ok(None);
    };
    let store = &**provider.store();
    match ins {
        Instruction::SuiteTicket(t) => {
            if keep_ticket(store, suite_id, t, crate::clock::clock().now_secs()).await? {
                tracing::info!(app = %app.name, "suite ticket kept");
            }
            Ok(Some("kept"))
        }
        Instruction::CancelAuth { corp_id } => {
            let installs = provider.installs();
            let c = cancel(installs, store, app, corp_id, when, kept_secs, true).await?;
            // The CRM heard of the install since; told of the removal after it, it would take
            // the corp away while the gateway serves it.
            // Kept already, its `create_auth` came first: the CRM hears the install before this.
            Ok(matches!(c, Cancel::Stale { .. }).then_some("stale"))
        }
        _ => Ok(None),
    }
}

/// What a `cancel_auth` did.
#[derive(Debug, PartialEq, Eq)]
enum Cancel {
    Removed,
    /// No install to remove (applied already, or the corp never installed).
    Nothing,
    /// The corp installed the app again after this removal: the install stays. With when that
    /// install's `create_auth` reached the gateway, if known.
    Stale {
        install_arrived_ms: Option<u64>,
    },
}

/// `cancel_auth` as of `when` ([`Moment`]): the corp's install (if it was there then: a
/// replayed or late cancel leaves a later install alone) is forgotten, its tokens expired, and
/// the sessions it had then end (idempotent: the delivery worker applies it again).
async fn cancel(
    installs: &Installs,
    store: &dyn Store,
    app: &App,
    corp_id: &str,
    when: Moment,
    kept_secs: u64,
    at_endpoint: bool,
) -> Result<Cancel, StoreError> {
    let _writing = installs.writing(corp_id).await;
    let kept = installs.kept(store, app, corp_id).await?;
    let removed_key = suite_of(app).map(|(s, _)| install::cancel_removed_key(s, corp_id));
    // Applied again by the worker: the install it removed at the endpoint is gone; one kept
    // since is another, newer one (a reinstall in the same second, its exchange under way).
    let removed_there = match (&removed_key, at_endpoint) {
        (Some(key), false) => store.get_fact(key).await?.and_then(|v| {
            let (cancel, install) = v.split_once(':')?;
            (cancel.parse::<u64>().ok()? == when.received_ms)
                .then(|| install.parse::<u64>().ok())
                .flatten()
        }),
        _ => None,
    };
    let newer = kept.clone().filter(|i| {
        i.moment().after(&when)
            || removed_there.is_some_and(|r| when.received_ms > 0 && i.arrived_ms.unwrap_or(0) != r)
    });
    // The records a removal leaves for an exchange still under way, which ends within the
    // AuthCode's life.
    let keep = AUTH_CODE_RECORD.as_secs() + super::event::CLOCK_ALLOWANCE_SECS;
    // The sessions of the install removed; never those of one made since (`at` is on this
    // machine's clock, up to a minute past the removal when it arrived late).
    let sessions_until = match &newer {
        Some(i) => when.at.min(i.installed_at.saturating_sub(1)),
        None => when.at,
    };
    let suite_id = suite_of(app).map_or(app.name.as_str(), |(id, _)| id);
    crate::revocation::record(
        store,
        &install::corp_revocation_key(suite_id, corp_id),
        sessions_until,
        kept_secs,
    )
    .await?;
    if let (Some((suite_id, _)), Some(wecom)) = (suite_of(app), when.wecom) {
        crate::revocation::record(
            store,
            &install::cancelled_key(suite_id, corp_id),
            wecom,
            keep,
        )
        .await?;
    }
    if newer.is_some() {
        tracing::warn!(app = %app.name, corp_id, "a removal older than the corp's install: the install stays");
        return Ok(Cancel::Stale {
            install_arrived_ms: newer.and_then(|i| i.arrived_ms),
        });
    }
    if installs.remove(store, app, corp_id, when).await? {
        if let (Some(key), true, Some(i)) = (&removed_key, at_endpoint, kept) {
            let value = format!("{}:{}", when.received_ms, i.arrived_ms.unwrap_or(0));
            store
                .put_durable_fact(key, &value, Duration::from_secs(keep))
                .await?;
        }
        tracing::info!(app = %app.name, corp_id, "app removed by the corp: its install, tokens and sessions end");
        return Ok(Cancel::Removed);
    }
    // Nothing kept when it first arrived: it removes an install whose exchange is under way
    // (WeCom counts a corp installed once its code is exchanged), ordered after it by arrival
    // when the two are in one second. Only at the endpoint: applied again by the worker, the
    // install it removed there is gone and says nothing of this one.
    if let (true, Some((suite_id, _))) = (at_endpoint && when.received_ms > 0, suite_of(app)) {
        let arrived = install::cancel_arrived_key(suite_id, corp_id);
        let later = crate::revocation::revoked_at(store, &arrived)
            .await
            .is_none_or(|t| t < when.received_ms);
        if later {
            store
                .put_durable_fact(
                    &arrived,
                    &when.received_ms.to_string(),
                    Duration::from_secs(keep),
                )
                .await?;
        }
    }
    Ok(Cancel::Nothing)
}

/// Why the delivery worker could not act on an instruction.
#[derive(Debug)]
pub enum Failure {
    /// Try again (the store, a timeout, no suite ticket yet): the event stays at the head.
    Retry(String),
}

/// What the delivery worker does before it forwards the instruction (see the module's note);
/// `false`: the instruction is not forwarded.
pub async fn before_delivery(
    provider: &Provider,
    app: &Arc<App>,
    ins: &Instruction,
    when: Moment,
    kept_secs: u64,
) -> Result<bool, Failure> {
    let store = &**provider.store();
    let retry = |e: StoreError| Failure::Retry(e.to_string());
    match ins {
        // The CRM hears of the install once its agent id is known: an exchange whose
        // `get_auth_info` failed (this one's, or the endpoint's) asks again first, with the
        // delivery's own tries.
        Instruction::Exchange { auth_code } => {
            // In a task of its own: a stop ends the worker, and must not cut an exchange short
            // between WeCom spending the code and the install kept (the stop waits for it).
            let task = tokio::spawn({
                let (provider, app, code) = (provider.clone(), app.clone(), auth_code.clone());
                async move { exchange(&provider, &app, &code, when).await }
            });
            let kept = task.await.map_err(|e| Failure::Retry(e.to_string()))??;
            match kept {
                Some(corp_id) => {
                    agent_if_missing(provider, app, &corp_id).await?;
                    Ok(true)
                }
                // The corp removed the app meanwhile, or a newer code is kept: the CRM hears of
                // the install and then of what came after, naming the corp the code installed.
                // A code WeCom refused installed nothing: the CRM would be told of an install
                // naming no corp. (The error is logged where the exchange failed.)
                None => match suite_of(app) {
                    Some((suite_id, _)) => Ok(store
                        .get_fact(&install::exchanged_key(suite_id, auth_code))
                        .await
                        .map_err(retry)?
                        .is_some()),
                    None => Ok(true),
                },
            }
        }
        Instruction::ChangeAuth { corp_id } => {
            refresh_apart(provider, app, corp_id).await;
            Ok(true)
        }
        // A removal found older than the corp's install only now (the reinstall's exchange
        // still ran when it arrived) is not the CRM's either, when the reinstall's `create_auth`
        // is ahead of it in the queue: the CRM heard of the install, and would then take the
        // corp away. Behind it (queued while the CRM refused the removal), the CRM hears the
        // removal and then the install, in the order they happened.
        Instruction::CancelAuth { corp_id } => cancel(
            provider.installs(),
            store,
            app,
            corp_id,
            when,
            kept_secs,
            false,
        )
        .await
        .map(|c| match c {
            Cancel::Stale {
                install_arrived_ms: Some(arrived),
            } => arrived > when.received_ms,
            Cancel::Stale {
                install_arrived_ms: None,
            } => false,
            Cancel::Removed | Cancel::Nothing => true,
        })
        .map_err(retry),
        Instruction::SuiteTicket(_) | Instruction::Other => Ok(true),
    }
}

/// A call with the suite token; `Ok(Err(errcode))` for WeCom's refusals.
async fn suite_call(
    provider: &Provider,
    app: &App,
    path: &str,
    body: Value,
) -> Result<Result<Value, i64>, Failure> {
    suite_call_within(provider, app, path, body, wecom_api::CALL_TIMEOUT).await
}

/// An AuthCode's exchange may take this long: WeCom spends the code when it answers, so an
/// answer given up on (5 s, as other calls) was an install lost, asking again being refused
/// (40078). Nobody waits on it: WeCom heard `success` already.
pub const EXCHANGE_PATIENCE: Duration = Duration::from_secs(60);

async fn suite_call_within(
    provider: &Provider,
    app: &App,
    path: &str,
    body: Value,
    timeout: Duration,
) -> Result<Result<Value, i64>, Failure> {
    let req = ApiRequest::post_json(path, &body);
    let resp = provider
        .call_patiently(app, TokenKind::Suite, req, timeout)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    if resp.errcode != 0 {
        return Ok(Err(resp.errcode));
    }
    resp.json()
        .map(Ok)
        .map_err(|e| Failure::Retry(e.to_string()))
}

/// WeCom's refusals that pass with time: its rate limits (per minute, per hour, concurrent
/// calls).
fn passes(errcode: i64) -> bool {
    matches!(errcode, 45009 | 45011 | 45033)
}

/// Whether `ins` is an install's exchange whose code (10 minutes from `received_ms`) may still
/// be exchanged: the delivery worker goes on trying it past an instruction's usual tries.
pub fn exchange_lives(ins: &Instruction, received_ms: u64, now_ms: u64) -> bool {
    matches!(ins, Instruction::Exchange { .. })
        && now_ms < received_ms + AUTH_CODE_LIFETIME_SECS * 1000
}

/// Whether the install `ins` (an exchange) made is kept: its `create_auth` names a corp.
pub async fn installed(store: &dyn Store, app: &App, ins: &Instruction) -> bool {
    match (ins, suite_of(app)) {
        (Instruction::Exchange { auth_code }, Some((suite_id, _))) => matches!(
            store
                .get_fact(&install::exchanged_key(suite_id, auth_code))
                .await,
            Ok(Some(_))
        ),
        _ => true,
    }
}

/// 40078: the AuthCode is used or older than its 10 minutes; retrying cannot help.
const AUTH_CODE_REFUSED: i64 = 40078;
/// 41023 (no suite ticket yet) and the suite token's own errors: a later try may succeed.
fn worth_retrying(errcode: i64) -> bool {
    errcode == -1 || matches!(errcode, 41023 | 40085 | 42009 | 40082)
}

/// Exchanges the AuthCode of an install just queued at once, apart from the app's delivery
/// queue: the code lives 10 minutes, while the queue waits for the CRM as long as it must (down,
/// or refusing an earlier event for hours), and an install must not be lost to that. Retried
/// while the code lives; the delivery worker's own exchange, later, finds it done.
pub fn exchange_soon(provider: Provider, app: Arc<App>, auth_code: String, when: Moment) {
    tokio::spawn(async move {
        let clock = crate::clock::clock();
        let until = clock.now_secs() + AUTH_CODE_LIFETIME_SECS;
        let mut wait = Duration::from_secs(1);
        while let Err(Failure::Retry(why)) = exchange(&provider, &app, &auth_code, when).await {
            if clock.now_secs() + wait.as_secs() >= until {
                tracing::warn!(app = %app.name, error = %why, "install: exchange not done; the delivery worker tries again");
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(60));
        }
    });
}

/// Past [`EXCHANGE_PATIENCE`], the time another instance takes to keep an install whose code
/// WeCom answered.
const SPENT_ELSEWHERE_SLACK: Duration = Duration::from_secs(15);

/// How long WeCom honours an AuthCode.
const AUTH_CODE_LIFETIME_SECS: u64 = 600;

/// One exchange of a code at a time in this process: the endpoint's and the delivery worker's
/// for the same code never both spend it. Per code: a burst of installs (every corp of a
/// provider at once) does not queue behind one slow WeCom answer (each code lives 10 minutes).
static EXCHANGING: std::sync::LazyLock<
    dashmap::DashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>,
> = std::sync::LazyLock::new(dashmap::DashMap::new);

/// Holds the code's lock; the last holder takes the entry away.
struct Exchanging {
    key: String,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Exchanging {
    async fn of(key: &str) -> Exchanging {
        let lock = EXCHANGING.entry(key.to_owned()).or_default().clone();
        Exchanging {
            key: key.to_owned(),
            _guard: lock.lock_owned().await,
        }
    }
}

impl Drop for Exchanging {
    fn drop(&mut self) {
        // Two references while only this holder is left: the map's and the guard's.
        EXCHANGING.remove_if(&self.key, |_, lock| std::sync::Arc::strong_count(lock) <= 2);
    }
}

/// `when`: when the install happened (its `create_auth`'s [`Moment`]), which the install keeps:
/// a `cancel_auth` that happened later removes it, and one that was already applied (the
/// exchange ran late: the delivery worker's after a restart) keeps it from being kept at all.
/// The corp whose install the code made, when it is kept (by this exchange or an earlier one).
async fn exchange(
    provider: &Provider,
    app: &App,
    auth_code: &str,
    when: Moment,
) -> Result<Option<String>, Failure> {
    let Some((suite_id, _)) = suite_of(app) else {
        return Ok(None);
    };
    let store = &**provider.store();
    let retry = |e: StoreError| Failure::Retry(e.to_string());
    let record = install::exchanged_key(suite_id, auth_code);
    let _one = Exchanging::of(&record).await;
    if let Some(corp_id) = store.get_fact(&record).await.map_err(retry)? {
        return Ok(Some(corp_id));
    }
    // From the moment WeCom may spend the code until its install is kept, a stop waits.
    let spending = Spending::start();
    let answer = suite_call_within(
        provider,
        app,
        "/cgi-bin/service/v2/get_permanent_code",
        json!({ "auth_code": auth_code }),
        EXCHANGE_PATIENCE,
    )
    .await?;
    let v = match answer {
        Ok(v) => v,
        // A refusal that passes (a rate limit, WeCom busy) is tried again while the code
        // lives: given up on, an install WeCom would take is lost, and the other exchange of the
        // same code (the endpoint's, the worker's) may take it meanwhile. Any other refusal is
        // final.
        Err(code)
            if worth_retrying(code)
                || (passes(code)
                    && crate::clock::clock().now_ms()
                        < when.received_ms + AUTH_CODE_LIFETIME_SECS * 1000) =>
        {
            return Err(Failure::Retry(format!("get_permanent_code errcode {code}")))
        }
        Err(AUTH_CODE_REFUSED) if spent_elsewhere(store, &record).await => {
            return Ok(store.get_fact(&record).await.ok().flatten())
        }
        // Another instance's exchange of the code (the one whose endpoint took the callback)
        // may be waiting on WeCom's answer as long as this one would have: its install is
        // waited for, as the delivery's retries, before the refusal is final. Given up on at
        // once, the CRM never heard of an install the cluster keeps.
        Err(AUTH_CODE_REFUSED)
            if store.facts_version().is_none()
                && crate::clock::clock().now_ms()
                    < when.received_ms + (EXCHANGE_PATIENCE + SPENT_ELSEWHERE_SLACK).as_millis() as u64 =>
        {
            return Err(Failure::Retry(
                "get_permanent_code 40078: another instance's exchange of the code may still be under way".into(),
            ))
        }
        Err(code) => {
            let why = if code == AUTH_CODE_REFUSED {
                "the AuthCode was used already or is older than 10 minutes"
            } else {
                "WeCom refused the exchange"
            };
            tracing::error!(app = %app.name, errcode = code, "install not kept: {why}");
            return Ok(None);
        }
    };
    let exchanged = match install::read_permanent_code(&v) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(app = %app.name, error = %e, "install not kept: get_permanent_code answer not understood");
            return Ok(None);
        }
    };
    // The code is spent: from here on only the store stands between WeCom's answer and a
    // lost install, so the install is kept before anything else is asked (a stop or a crash
    // while `get_auth_info` is under way, seconds when WeCom is slow, loses nothing). Its
    // agent id comes after, the way a `change_auth` refreshes it.
    let install = Install {
        corp_id: exchanged.corp_id,
        corp_name: exchanged.corp_name,
        agent_id: 0,
        permanent_code: exchanged.permanent_code,
        installed_at: when.at,
        created: when.wecom,
        arrived_ms: Some(when.received_ms),
    };
    let corp_id = install.corp_id.clone();
    match keep_until_stored(provider, app, suite_id, install, &record).await {
        Kept::Kept => {
            drop(spending);
            tracing::info!(app = %app.name, corp_id, "corp installed the app: its permanent code is kept");
            // Its agent id, as a `change_auth` refreshes it (nothing to say when the install
            // changed meanwhile, or already had what WeCom tells).
            match update(provider, app, &corp_id).await {
                Ok(Update::Changed(agent_id)) => {
                    tracing::info!(app = %app.name, corp_id, agent_id, "install: the authorisation info is kept")
                }
                Ok(Update::Unchanged) => {}
                Ok(Update::CodeRefused) => {
                    tracing::error!(app = %app.name, corp_id, "get_auth_info refused the permanent code just kept (40084): kept without an agent id")
                }
                Err(Failure::Retry(e)) => {
                    tracing::error!(app = %app.name, corp_id, error = %e, "get_auth_info failed after the exchange: kept without an agent id, asked again before the create_auth is delivered")
                }
            }
            Ok(Some(corp_id))
        }
        Kept::Removed => {
            tracing::warn!(app = %app.name, corp_id, "install not kept: the corp removed the app after installing it");
            Ok(None)
        }
        Kept::Older => {
            tracing::warn!(app = %app.name, corp_id, "install not kept: the corp's kept install is newer (two exchanges ended out of order)");
            Ok(None)
        }
    }
}

/// Exchanges between asking WeCom for a permanent code and keeping it.
static SPENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many AuthCodes may be spent at WeCom while their installs are not kept yet: a stop
/// waits for them (within its drain limit), as for requests in flight.
pub fn exchanges_in_flight() -> usize {
    SPENDING.load(std::sync::atomic::Ordering::Acquire)
}

/// One exchange counted in [`exchanges_in_flight`] while it lives.
struct Spending;

impl Spending {
    fn start() -> Spending {
        SPENDING.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Spending
    }
}

impl Drop for Spending {
    fn drop(&mut self) {
        SPENDING.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What became of an install whose AuthCode is spent.
enum Kept {
    Kept,
    /// The corp removed the app after this install (a `cancel_auth` applied meanwhile).
    Removed,
    /// A newer install of the corp is kept (a `reset_permanent_code`, a reinstall, whose
    /// exchange ended first): its permanent code is the one that works.
    Older,
}

/// Did the corp remove the app after the install of `when` (a `cancel_auth` applied before the
/// exchange ended)?
async fn removed_after(store: &dyn Store, suite_id: &str, corp_id: &str, when: Moment) -> bool {
    let revoked = install::corp_revocation_key(suite_id, corp_id);
    let Some(at) = crate::revocation::revoked_at(store, &revoked).await else {
        return false;
    };
    let cancelled = install::cancelled_key(suite_id, corp_id);
    let arrived = install::cancel_arrived_key(suite_id, corp_id);
    let removal = Moment {
        at,
        wecom: crate::revocation::revoked_at(store, &cancelled).await,
        received_ms: crate::revocation::revoked_at(store, &arrived)
            .await
            .unwrap_or(0),
    };
    removal.after_or_arrived_after(&when)
}

/// Keeps an install whose AuthCode is spent, and the record that it was, trying again with
/// growing waits for as long as the store refuses (a full disk, Redis away): the permanent code
/// exists nowhere else, and exchanging the code again is refused (40078), so giving up here
/// would lose the install for good. The event waits meanwhile: the CRM hears of the install
/// once it is kept. Unless, read in the same step as the write, the corp removed the app after
/// it or a newer install is kept.
async fn keep_until_stored(
    provider: &Provider,
    app: &App,
    suite_id: &str,
    install: Install,
    record: &str,
) -> Kept {
    let store = &**provider.store();
    let installs = provider.installs();
    let corp_id = install.corp_id.clone();
    let when = install.moment();
    let mut wait = Duration::from_secs(1);
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let _writing = installs.writing(&corp_id).await;
            let kept = installs.kept(store, app, &corp_id).await?;
            let outcome = if removed_after(store, suite_id, &corp_id, when).await {
                Kept::Removed
            } else if kept.as_ref().is_some_and(|k| k.moment().after(&when)) {
                Kept::Older
            } else {
                // A new permanent code of an app the corp has (a 代开发 app's
                // `reset_permanent_code`): its agent id and name stay until `get_auth_info`
                // tells them again, so sign-ins and the JS-SDK go on meanwhile.
                let mut install = install.clone();
                if let Some(k) = kept.filter(|_| install.agent_id == 0) {
                    install.agent_id = k.agent_id;
                    if install.corp_name.is_empty() {
                        install.corp_name = k.corp_name;
                    }
                }
                installs.keep(store, app, install).await?;
                Kept::Kept
            };
            store
                .put_durable_fact(record, &corp_id, install::EXCHANGE_RECORD)
                .await?;
            Ok::<_, StoreError>(outcome)
        };
        match attempt.await {
            Ok(outcome) => {
                if failures > 0 {
                    tracing::warn!(app = %app.name, corp_id, failures, "install kept once the store took it");
                }
                return outcome;
            }
            Err(e) => {
                failures += 1;
                // Said at once, then every few minutes while it lasts.
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::error!(app = %app.name, corp_id, failures, error = %e, "an install the store did not take: its permanent code is held here and kept as soon as the store takes writes (do not stop the gateway)");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Another instance spent the code (its endpoint's exchange and this one's worker, say): its
/// record appears once it has kept the install, within a few seconds.
async fn spent_elsewhere(store: &dyn Store, record: &str) -> bool {
    for wait in [0, 250, 500, 1000, 2000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if matches!(store.get_fact(record).await, Ok(Some(_))) {
            return true;
        }
    }
    false
}

/// 40084: WeCom takes the permanent code no more (the corp removed the app since, or the code
/// was replaced). Asking again cannot help.
const PERMANENT_CODE_REFUSED: i64 = 40084;

/// Why `get_auth_info` told nothing.
enum InfoFailure {
    /// WeCom refused the permanent code ([`PERMANENT_CODE_REFUSED`]) at the last try.
    CodeRefused,
    /// Anything else: a later try may succeed.
    Retry(String),
}

/// `get_auth_info`: the app's agent id in the corp, and the corp's name.
async fn auth_info(
    provider: &Provider,
    app: &App,
    corp_id: &str,
    permanent_code: &str,
) -> Result<(u64, Option<String>), InfoFailure> {
    let mut last = InfoFailure::Retry(String::new());
    // Right after an exchange: a short retry rather than an install without its agent id.
    for wait in [0, 200, 800] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let answer = suite_call(
            provider,
            app,
            "/cgi-bin/service/v2/get_auth_info",
            json!({ "auth_corpid": corp_id, "permanent_code": permanent_code }),
        )
        .await;
        match answer {
            Ok(Ok(v)) => {
                let agent = install::read_agent_id(&v).map_err(InfoFailure::Retry)?;
                return Ok((agent, install::read_corp_name(&v)));
            }
            Ok(Err(PERMANENT_CODE_REFUSED)) => last = InfoFailure::CodeRefused,
            Ok(Err(code)) => last = InfoFailure::Retry(format!("errcode {code}")),
            Err(Failure::Retry(e)) => last = InfoFailure::Retry(e),
        }
    }
    Err(last)
}

/// An install kept without its agent id (`get_auth_info` failed right after the exchange):
/// the authorisation info again, as for `change_auth`. A permanent code WeCom refuses (40084)
/// is not asked about again: asked while the AuthCode lived, it held every later event of the
/// suite, every corp's, for ten minutes. (What to make of the refusal is not clear here: the
/// corp removed the app, or a new code is on its way; its `cancel_auth` or its exchange says.)
async fn agent_if_missing(provider: &Provider, app: &App, corp_id: &str) -> Result<(), Failure> {
    let store = &**provider.store();
    let corp = provider
        .installs()
        .corp(store, app, corp_id)
        .await
        .map_err(|e| Failure::Retry(e.to_string()))?;
    match corp {
        Some(c) if c.install.agent_id == 0 => refresh(provider, app, corp_id).await,
        _ => Ok(()),
    }
}

/// How long the delivery worker waits for a `change_auth`'s refresh before it forwards the
/// event without it; the refresh goes on apart from the queue.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How long a refresh that fails is tried again (growing waits) before it waits for the next
/// `change_auth`.
const REFRESH_PATIENCE: Duration = Duration::from_secs(10 * 60);

/// `change_auth`'s refresh, apart from the app's queue: a WeCom that hangs or refuses
/// `get_auth_info` must not hold every later event of the app (each try of the three calls
/// waits 5 s). The worker waits [`REFRESH_WAIT`] for it, so that the CRM normally hears of the
/// change once the install shows it; one refresh per corp runs at a time.
async fn refresh_apart(provider: &Provider, app: &Arc<App>, corp_id: &str) {
    let key = format!("refresh:{}:{corp_id}", app.name);
    let task = tokio::spawn({
        let (provider, app, corp_id) = (provider.clone(), app.clone(), corp_id.to_owned());
        async move {
            let _one = Exchanging::of(&key).await;
            let clock = crate::clock::clock();
            let until = clock.now_ms() + REFRESH_PATIENCE.as_millis() as u64;
            let mut wait = Duration::from_secs(1);
            loop {
                match refresh(&provider, &app, &corp_id).await {
                    Ok(()) => return,
                    Err(Failure::Retry(why))
                        if clock.now_ms() + (wait.as_millis() as u64) < until =>
                    {
                        tracing::warn!(app = %app.name, corp_id, error = %why, "authorisation info not refreshed; retrying");
                    }
                    Err(Failure::Retry(why)) => {
                        tracing::error!(app = %app.name, corp_id, error = %why, "authorisation info not refreshed: kept as it was until the next change_auth");
                        return;
                    }
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    });
    if tokio::time::timeout(REFRESH_WAIT, task).await.is_err() {
        tracing::warn!(app = %app.name, corp_id, "change_auth forwarded while its refresh goes on");
    }
}

/// `change_auth`: the authorisation info again (the agent id, the corp's name). A permanent
/// code WeCom refuses is not asked about again: the install stays as it was (its removal or
/// its new code is on its way).
async fn refresh(provider: &Provider, app: &App, corp_id: &str) -> Result<(), Failure> {
    match update(provider, app, corp_id).await? {
        Update::Changed(agent_id) => {
            tracing::info!(app = %app.name, corp_id, agent_id, "authorisation changed: install refreshed")
        }
        Update::Unchanged => {}
        Update::CodeRefused => {
            tracing::error!(app = %app.name, corp_id, "authorisation info not refreshed: WeCom refuses the install's permanent code (40084); not asked again")
        }
    }
    Ok(())
}

/// What [`update`] did.
enum Update {
    /// The install took the agent id (and corp name) WeCom tells now.
    Changed(u64),
    /// Nothing new, no install, or the install changed meanwhile.
    Unchanged,
    /// WeCom refused the install's permanent code.
    CodeRefused,
}

/// The kept install of `corp_id` with the agent id and corp name `get_auth_info` tells now.
async fn update(provider: &Provider, app: &App, corp_id: &str) -> Result<Update, Failure> {
    let store = &**provider.store();
    let retry = |e: StoreError| Failure::Retry(e.to_string());
    let Some(corp) = provider
        .installs()
        .corp(store, app, corp_id)
        .await
        .map_err(retry)?
    else {
        tracing::warn!(app = %app.name, corp_id, "change_auth for a corp without an install: ignored");
        return Ok(Update::Unchanged);
    };
    let (agent_id, name) =
        match auth_info(provider, app, corp_id, &corp.install.permanent_code).await {
            Ok(info) => info,
            Err(InfoFailure::CodeRefused) => return Ok(Update::CodeRefused),
            Err(InfoFailure::Retry(why)) => return Err(Failure::Retry(why)),
        };
    let mut install = corp.install.clone();
    install.agent_id = agent_id;
    if let Some(n) = name {
        install.corp_name = n;
    }
    if install != corp.install {
        let installs = provider.installs();
        let _writing = installs.writing(corp_id).await;
        // Removed or replaced while WeCom was asked: what was read is not brought back.
        if installs.kept(store, app, corp_id).await.map_err(retry)? != Some(corp.install.clone()) {
            tracing::info!(app = %app.name, corp_id, "install changed during its refresh: the refresh is dropped");
            return Ok(Update::Unchanged);
        }
        installs.keep(store, app, install).await.map_err(retry)?;
        return Ok(Update::Changed(agent_id));
    }
    Ok(Update::Unchanged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::MemoryStore;

    fn msg(xml: &str) -> XmlMessage {
        XmlMessage::parse(xml).unwrap()
    }

    #[test]
    fn instructions_are_read_from_their_info_type() {
        let cases: &[(&str, Option<Instruction>)] = &[
            (
                "<xml><SuiteId>s</SuiteId><InfoType>suite_ticket</InfoType><TimeStamp>1700000000</TimeStamp><SuiteTicket>T</SuiteTicket></xml>",
                Some(Instruction::SuiteTicket(SuiteTicket { timestamp: 1_700_000_000, ticket: "T".into() })),
            ),
            (
                "<xml><SuiteId>s</SuiteId><InfoType>create_auth</InfoType><TimeStamp>1</TimeStamp><AuthCode>C</AuthCode></xml>",
                Some(Instruction::Exchange { auth_code: "C".into() }),
            ),
            (
                "<xml><SuiteId>dk</SuiteId><InfoType>reset_permanent_code</InfoType><TimeStamp>1</TimeStamp><AuthCode>C</AuthCode></xml>",
                Some(Instruction::Exchange { auth_code: "C".into() }),
            ),
            (
                "<xml><InfoType>change_auth</InfoType><AuthCorpId>wwA</AuthCorpId></xml>",
                Some(Instruction::ChangeAuth { corp_id: "wwA".into() }),
            ),
            (
                "<xml><InfoType>cancel_auth</InfoType><AuthCorpId>wwA</AuthCorpId></xml>",
                Some(Instruction::CancelAuth { corp_id: "wwA".into() }),
            ),
            ("<xml><InfoType>create_auth</InfoType></xml>", Some(Instruction::Other)),
            ("<xml><InfoType>change_contact</InfoType></xml>", Some(Instruction::Other)),
            ("<xml><MsgType>event</MsgType><Event>change_contact</Event></xml>", None),
        ];
        for (xml, want) in cases {
            assert_eq!(&read(&msg(xml)), want, "{xml}");
        }
    }

    #[tokio::test]
    async fn the_newest_suite_ticket_wins() {
        let store = MemoryStore::new(crate::clock::clock().clone());
        let t = |timestamp, ticket: &str| SuiteTicket {
            timestamp,
            ticket: ticket.into(),
        };
        async fn kept(s: &MemoryStore) -> String {
            let v = s.get_fact(&suite_ticket_key("s1")).await.unwrap();
            SuiteTicket::decode(v.as_deref().unwrap()).unwrap().ticket
        }
        let now = 1_000;
        assert!(keep_ticket(&store, "s1", &t(100, "A"), now).await.unwrap());
        assert!(keep_ticket(&store, "s1", &t(200, "B"), now).await.unwrap());
        assert!(
            !keep_ticket(&store, "s1", &t(100, "A"), now).await.unwrap(),
            "an older one late"
        );
        assert!(
            !keep_ticket(&store, "s1", &t(200, "B"), now).await.unwrap(),
            "a retry"
        );
        assert_eq!(kept(&store).await, "B");
        assert!(keep_ticket(&store, "s1", &t(300, "C"), now).await.unwrap());
        assert_eq!(kept(&store).await, "C");
        // Another suite's ticket is its own.
        assert!(keep_ticket(&store, "s2", &t(1, "X"), now).await.unwrap());
        assert_eq!(kept(&store).await, "C");
        // A ticket dated in the future (milliseconds) counts as now: the next one, ten minutes
        // on, wins over it.
        assert!(keep_ticket(&store, "s1", &t(900_000, "MS"), now)
            .await
            .unwrap());
        assert_eq!(kept(&store).await, "MS");
        assert!(keep_ticket(&store, "s1", &t(1_600, "D"), 1_600)
            .await
            .unwrap());
        assert_eq!(kept(&store).await, "D");
        // Not a ticket: no time, or not plain.
        let msg = |ticket: &str, ts: &str| {
            XmlMessage::parse(&format!(
                "<xml><InfoType>suite_ticket</InfoType><SuiteTicket>{ticket}</SuiteTicket><TimeStamp>{ts}</TimeStamp></xml>"
            ))
            .unwrap()
        };
        assert!(matches!(
            read(&msg("T1", "12")),
            Some(Instruction::SuiteTicket(_))
        ));
        assert!(matches!(read(&msg("T1", "soon")), Some(Instruction::Other)));
        assert!(matches!(read(&msg("T 1", "12")), Some(Instruction::Other)));
    }
}
