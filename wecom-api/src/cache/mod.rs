//! The token and ticket cache (SPEC section 11): keys per app and kind, early refresh,
//! background refresh of values in use, single flight in the process and in the cluster,
//! compare-and-expire.
//!
//! The decisions ([`freshness`], [`is_config_refusal`], [`expiry_of`]) are plain functions in
//! [`decide`]; [`TokenCache`] only sequences them around a [`Store`] and a [`Fetch`].
//!
//! The same machinery caches other values a cluster should fetch once and share, keyed by a
//! [`CacheTarget`] of their own: the gateway's member facts for access rules (SPEC section 17)
//! get the single flight, the store's lock and the background refresh of tokens.

mod decide;
mod memo;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use tokio::sync::OnceCell;

pub use decide::{expiry_of, freshness, is_config_refusal, Freshness};

use crate::error::ApiError;
use crate::fetch::{CacheTarget, Fetch, Fetched};
use crate::local::Local;
use crate::observe::Observer;
use crate::stack::TokenSource;
use crate::store::{Cached, Store, StoreError};
use crate::target::TokenTarget;
use crate::throttle::Throttle;
use crate::Clock;

/// How often a process waiting on another's refresh looks for its value (and for a free lock).
const WAIT_POLL: Duration = Duration::from_millis(50);
/// A fetch refused for a configuration reason is not repeated for this long: every caller
/// meanwhile gets the same errcode, and the daily gettoken quota is not burnt on a secret that
/// cannot work. A corrected secret (SIGHUP) is another key, so it is tried at once.
const REFUSAL_HOLD: Duration = Duration::from_secs(10);
/// A value the provider refused (40014, 42001...) is replaced by a new fetch once in this
/// while, for the whole cluster: WeCom hands back the same value while it is valid, and an API
/// that refuses every token (a fault, a wrong handle) would otherwise cost a gettoken per call
/// for the whole app until the daily quota is gone (45009 for every API of the app). A value
/// WeCom dropped early is still replaced at its first refusal.
pub(crate) const REPLACE_AFTER: Duration = Duration::from_secs(30);
/// How long a refusal of a value another caller is replacing waits for the replacement.
const REPLACEMENT_WAIT: Duration = Duration::from_secs(3);
/// How long a replacement's claim holds: the wait and a fetch (a replacer that died frees it
/// by then).
const REPLACING_HELD: Duration = Duration::from_secs(10);

/// A short digest of a value and the scope it was refused in, to name them in a store key
/// without writing the value there.
fn fingerprint(value: &str, scope: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::new()
        .chain_update(value.as_bytes())
        .chain_update([0u8])
        .chain_update(scope.as_bytes())
        .finalize();
    d[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a refusal that came at `since_ms` still holds at `now_ms`: for `hold_ms` from then;
/// a clock stepped back before it holds it no longer (it would for as long as the step).
fn held(now_ms: u64, since_ms: u64, hold_ms: u64) -> bool {
    now_ms
        .checked_sub(since_ms)
        .is_some_and(|age| age < hold_ms)
}

type Flight = Arc<OnceCell<Result<Cached, ApiError>>>;

impl CacheTarget for TokenTarget {
    fn key(&self) -> &Arc<str> {
        TokenTarget::key(self)
    }

    fn expiry(&self, f: &Fetched, previous: Option<&Cached>, now_ms: u64) -> u64 {
        expiry_of(&f.value, f.expires_in, previous, now_ms)
    }

    fn observe(&self, observer: &dyn Observer, result: Result<(), &ApiError>) {
        observer.fetched(self, result);
    }

    /// Also 48002 (the API not allowed for the app): a ticket refused so would otherwise be
    /// asked for at every page load, against WeCom's 100 tickets an hour.
    /// And 45009/45033 (frequency or concurrency over the limit): asked again at once, the
    /// provider's limit is only pressed harder. And an answer that cannot be read (an HTML
    /// page of WeCom's front, an egress proxy's): each wave of waiting requests would fetch
    /// again, a few dozen times a second.
    fn held_back(&self, e: &ApiError) -> bool {
        is_config_refusal(e)
            || matches!(e, ApiError::BadAnswer(_))
            || matches!(
                e,
                ApiError::Api {
                    errcode: 48002 | 45009 | 45033,
                    ..
                }
            )
    }

    fn warn_kept(&self) {
        tracing::warn!(
            app = self.app(),
            kind = self.kind().label(),
            owner = self.owner(),
            "the provider refuses a token it handed back when asked again: it is asked again \
             in 30 s at most, and calls meanwhile get the provider's answer (logged once a \
             minute per key)"
        );
    }

    fn warn(&self, e: &ApiError) {
        let advice = e
            .errcode()
            .and_then(|c| crate::error::advice(c, self.kind()));
        tracing::warn!(
            app = self.app(),
            kind = self.kind().label(),
            owner = self.owner(),
            api_base = &**self.base(),
            errcode = e.errcode().unwrap_or(0),
            error = %e,
            advice,
            "token fetch failed (logged once a minute per key)"
        );
    }
}

/// Whether this process fetches, after asking the store's lock.
enum Turn {
    /// Another process fetched meanwhile.
    Done(Cached),
    /// This process holds the lock with this id.
    Locked(String),
    /// The lock never came free in time.
    Unlocked,
}

/// A cache of the values one [`Fetch`] brings. Cheap to clone (a pointer); a thread that
/// clones it for every call uses a [`TokenCache::fork`] of its own.
pub struct TokenCache<F> {
    inner: Local<Inner<F>>,
}

impl<F> Clone for TokenCache<F> {
    fn clone(&self) -> Self {
        TokenCache {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<F> {
    store: Arc<dyn Store>,
    fetcher: F,
    clock: Clock,
    lock_ttl: Duration,
    observer: Arc<dyn Observer>,
    /// One refresh per key in this process; every waiter shares its result or its error.
    inflight: DashMap<Arc<str>, Flight>,
    failures_logged: Throttle<Arc<str>>,
    kept_logged: Throttle<Arc<str>>,
    /// The Unix ms of a refusal and the refusal, per key.
    refusals: DashMap<Arc<str>, (u64, ApiError)>,
}

fn store_err(e: StoreError) -> ApiError {
    ApiError::Unreachable(e.to_string())
}

impl<F: Fetch> TokenCache<F> {
    /// `lock_ttl`: how long a refresh may hold the store's lock (`[store].lock_ttl`).
    pub fn new(
        store: Arc<dyn Store>,
        fetcher: F,
        clock: Clock,
        lock_ttl: Duration,
        observer: Arc<dyn Observer>,
    ) -> TokenCache<F> {
        TokenCache {
            inner: Local::new(Arc::new(Inner {
                store,
                fetcher,
                clock,
                lock_ttl,
                observer,
                inflight: DashMap::new(),
                failures_logged: Throttle::per_minute(),
                kept_logged: Throttle::per_minute(),
                refusals: DashMap::new(),
            })),
        }
    }

    /// The same cache (its values, flights and refusals), through a handle whose clones are
    /// counted apart from the others' ([`Local`]).
    pub(crate) fn fork(&self) -> TokenCache<F> {
        TokenCache {
            inner: self.inner.fork(),
        }
    }

    /// A usable value: the cached one, or the result of the one refresh in flight.
    pub async fn get(&self, target: &F::Target) -> Result<Arc<str>, ApiError> {
        let this = &self.inner;
        // Read before the store: a write meanwhile changes it, and the copy kept below is
        // then never used.
        let version = this.store.tokens_version();
        if let Some(kept) = version.and_then(|v| memo::get(target.key(), v)) {
            if freshness(&kept, this.clock.now_ms()) == Freshness::Fresh {
                return Ok(kept.value);
            }
        }
        let cached = this.store.get(target.key()).await.map_err(store_err)?;
        if let Some(c) = cached {
            match freshness(&c, this.clock.now_ms()) {
                Freshness::Fresh => {
                    if let Some(v) = version {
                        memo::keep(target.key(), v, &c);
                    }
                    return Ok(c.value);
                }
                Freshness::Stale => {
                    // Requests keep the still-valid value; one task refreshes it.
                    let cache = self.clone();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let _ = cache.refresh(&target).await;
                    });
                    return Ok(c.value);
                }
                Freshness::Expired => {}
            }
        }
        let c = self.refresh(target).await?;
        if c.expires_at > c.fetched_at && this.clock.now_ms() >= c.expires_at {
            // Alive when asked for, dead now: the flight joined was an early refresh that
            // ended after the expiry (a slow answer, a slow store write: the local store's
            // fsync) with WeCom's same value. One more refresh fetches a live one. (A value
            // dead before it was asked for — WeCom handing back what this process's clock had
            // already buried — is used as WeCom gave it: asking again would get the same.)
            return self.refresh(target).await.map(|c| c.value);
        }
        Ok(c.value)
    }

    /// Compare-and-expire (SPEC section 11): forgets `failed` only if it is still the cached
    /// value. `false` means someone already replaced it; the next `get` returns the new one.
    pub async fn expire_if(&self, target: &F::Target, failed: &str) -> Result<bool, ApiError> {
        self.inner
            .store
            .expire_if(target.key(), failed)
            .await
            .map_err(store_err)
    }

    /// The value that replaces `failed`, refused by the provider for a call of `scope` (its
    /// API path): compare-and-expire, then [`Self::get`]. At most twice per [`REPLACE_AFTER`]
    /// for a value, for the whole cluster (the claims and the record are the store's): the
    /// first refusal replaces it; when the provider handed the same value back (it holds it
    /// valid), one refusal by another API replaces it once more (a value WeCom dropped right
    /// after a false refusal gets its new one), and the refusals after that get what the
    /// replacements brought, `failed` itself when it came back (the provider's answer is then
    /// the caller's). The caller names the scope, so no number of API paths buys more
    /// gettokens than that.
    pub async fn replace(
        &self,
        target: &F::Target,
        failed: &str,
        scope: &str,
    ) -> Result<Arc<str>, ApiError> {
        let this = &self.inner;
        let key = target.key();
        let current = this.store.get(key).await.map_err(store_err)?;
        if current.as_ref().is_none_or(|c| *c.value != *failed) {
            // Replaced already (or forgotten): the current value.
            return self.get(target).await;
        }
        let value = fingerprint(failed, "");
        let done = format!("replaced:{key}:{value}");
        // The record: the scope of the first replacement, then `again` after the second.
        let record = || async { this.store.get_fact(&done).await.map_err(store_err) };
        let scoped = fingerprint(failed, scope);
        let before = record().await?;
        let round = match before.as_deref() {
            None => 1,
            Some(first) if first != "again" && first != scoped => 2,
            Some(_) => return self.kept(target, failed).await,
        };
        // A store that cannot say: replaced, as before the claim existed.
        let claim = format!("replacing:{key}:{value}:{round}");
        let first = this
            .store
            .claim(&claim, REPLACING_HELD)
            .await
            .unwrap_or(true);
        if !first {
            // Another caller replaces it: what it brings. One that never says (its process
            // gone, its store write failed) is replaced for here after a few seconds.
            let deadline = tokio::time::Instant::now() + REPLACEMENT_WAIT;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(WAIT_POLL).await;
                if record().await? != before {
                    return self.kept(target, failed).await;
                }
            }
        }
        self.expire_if(target, failed).await?;
        let replaced = self.get(target).await;
        let said = if round == 1 { scoped.as_str() } else { "again" };
        let _ = this.store.put_fact(&done, said, REPLACE_AFTER).await;
        replaced
    }

    /// The current value after a replacement of `failed` (said once a minute per key when it
    /// is `failed` again).
    async fn kept(&self, target: &F::Target, failed: &str) -> Result<Arc<str>, ApiError> {
        let this = &self.inner;
        let value = self.get(target).await?;
        if *value == *failed
            && this
                .kept_logged
                .due(target.key().clone(), this.clock.now_ms())
        {
            target.warn_kept();
        }
        Ok(value)
    }

    pub(crate) async fn refresh(&self, target: &F::Target) -> Result<Cached, ApiError> {
        let key = target.key();
        let flight = self.inner.inflight.entry(key.clone()).or_default().clone();
        flight
            .get_or_init(|| async {
                let result = self.fetch_once(target).await;
                self.inner
                    .inflight
                    .remove_if(key, |_, f| Arc::ptr_eq(f, &flight));
                result
            })
            .await
            .clone()
    }

    /// One refresh of `target`, called by one task per process at a time (the in-process
    /// single flight of [`Self::refresh`]); across processes the store's lock decides who
    /// fetches.
    async fn fetch_once(&self, target: &F::Target) -> Result<Cached, ApiError> {
        let this = &self.inner;
        let key = target.key();
        // A refresh that ended while this one queued (here or in another process) counts.
        let previous = this.store.get(key).await.map_err(store_err)?;
        if let Some(c) = previous.as_ref() {
            if freshness(c, this.clock.now_ms()) == Freshness::Fresh {
                return Ok(c.clone());
            }
        }
        if let Some(refusal) = this.refusals.get(key) {
            let held_ms = REFUSAL_HOLD.as_millis() as u64;
            if held(this.clock.now_ms(), refusal.0, held_ms) {
                return Err(refusal.1.clone());
            }
        }
        let lock = match self.take_turn(key).await? {
            Turn::Done(c) => return Ok(c),
            Turn::Locked(id) => Some(id),
            Turn::Unlocked => None,
        };
        // The provider's countdown runs from its answer, which left after this request did:
        // counted from the sending, the value dies here no later than there, however slow the
        // answer was to arrive.
        let sent = this.clock.now_ms();
        let result = this.fetcher.fetch(target).await;
        target.observe(&*this.observer, result.as_ref().map(drop));
        let outcome = match result {
            Ok(f) => {
                let c = Cached {
                    expires_at: target.expiry(&f, previous.as_ref(), sent),
                    value: f.value.into(),
                    fetched_at: sent,
                };
                this.store.set(key, &c).await.map(|()| c).map_err(store_err)
            }
            Err(e) => {
                self.log_failure(target, &e);
                if target.held_back(&e) {
                    this.refusals
                        .insert(key.clone(), (this.clock.now_ms(), e.clone()));
                }
                Err(e)
            }
        };
        if let Some(id) = lock {
            let _ = this.store.unlock(key, &id).await;
        }
        outcome
    }

    /// The cluster's single flight: take the store's lock, or wait for the value its holder
    /// stores. A waiter keeps trying the lock, so a holder that died (its lock expired) or
    /// failed (its lock released, no value) is followed by one other process's fetch. The
    /// wait is bounded by twice the lock's lifetime; past that this process fetches unlocked
    /// rather than fail the request.
    async fn take_turn(&self, key: &str) -> Result<Turn, ApiError> {
        let this = &self.inner;
        let deadline = Instant::now() + 2 * this.lock_ttl;
        loop {
            if let Some(id) = this
                .store
                .lock(key, this.lock_ttl)
                .await
                .map_err(store_err)?
            {
                // Another process may have stored its value between our read and our lock.
                let again = self.fresh(key).await;
                if !matches!(again, Ok(None)) {
                    let _ = this.store.unlock(key, &id).await;
                }
                return match again {
                    Ok(None) => Ok(Turn::Locked(id)),
                    Ok(Some(c)) => Ok(Turn::Done(c)),
                    Err(e) => Err(e),
                };
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    key,
                    "refresh lock still held after twice its lifetime: fetching without it"
                );
                return Ok(Turn::Unlocked);
            }
            tokio::time::sleep(WAIT_POLL).await;
            if let Some(c) = self.fresh(key).await? {
                return Ok(Turn::Done(c));
            }
        }
    }

    async fn fresh(&self, key: &str) -> Result<Option<Cached>, ApiError> {
        let this = &self.inner;
        let c = this.store.get(key).await.map_err(store_err)?;
        Ok(c.filter(|c| freshness(c, this.clock.now_ms()) == Freshness::Fresh))
    }

    /// Once a minute per key: a wrong secret must not flood the log with one line per request.
    fn log_failure(&self, target: &F::Target, e: &ApiError) {
        let this = &self.inner;
        if this
            .failures_logged
            .due(target.key().clone(), this.clock.now_ms())
        {
            target.warn(e);
        }
    }
}

/// What the token layer of the stack asks of the credential tokens' cache.
impl<F: Fetch<Target = TokenTarget>> TokenSource for TokenCache<F> {
    async fn token(
        &self,
        target: &TokenTarget,
        failed: Option<Arc<str>>,
        scope: &str,
    ) -> Result<Arc<str>, ApiError> {
        match failed {
            Some(failed) => self.replace(target, &failed, scope).await,
            None => self.get(target).await,
        }
    }
}
