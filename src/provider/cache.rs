//! The one token and ticket cache of the gateway (SPEC section 11): keys per app and kind,
//! early refresh, background refresh of values in use, single flight, compare-and-expire.
//!
//! The decisions ([`CacheKey::derive`], [`freshness`]) are plain functions; [`TokenCache`]
//! only sequences them around a [`Store`] and a fetch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::store::{Cached, Store, StoreError};
use super::target::Creds;
use super::{ProviderError, TokenKind};

/// (api_base, corp or app id, agent and secret fingerprint, kind): never one key per corp, so
/// two apps of one corp never use each other's token (WECOM_API.md, pain 4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub api_base: Arc<str>,
    pub owner: String,
    pub holder: String,
    pub kind: TokenKind,
}

impl CacheKey {
    pub(crate) fn derive(api_base: &str, creds: &Creds, kind: TokenKind) -> CacheKey {
        let (owner, holder) = match (creds, kind) {
            (Creds::Wecom { corp_id, .. }, TokenKind::Contact) => {
                let fp = match creds {
                    Creds::Wecom {
                        contact_secret: Some(s),
                        ..
                    } => s.fingerprint(),
                    _ => "none".to_owned(),
                };
                (corp_id.clone(), format!("contact.{fp}"))
            }
            (
                Creds::Wecom {
                    corp_id,
                    agent_id,
                    secret,
                    ..
                },
                _,
            ) => (
                corp_id.clone(),
                format!("{agent_id}.{}", secret.fingerprint()),
            ),
            (Creds::WechatMp { app_id, secret }, _) => (app_id.clone(), secret.fingerprint()),
        };
        CacheKey {
            api_base: api_base.into(),
            owner,
            holder,
            kind,
        }
    }

    /// The key in the [`Store`].
    pub fn store_key(&self) -> String {
        format!(
            "token:{}:{}:{}:{}",
            self.kind.label(),
            self.api_base,
            self.owner,
            self.holder
        )
    }
}

/// What a fetch brings back.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub value: String,
    pub expires_in: u64,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// How to fetch the value of one key; called at most once per refresh.
pub type Fetch = Arc<dyn Fn() -> BoxFuture<Result<Fetched, ProviderError>> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Still valid, but refreshed in the background by the next use.
    Stale,
    Expired,
}

/// A value is stale `min(300 s, lifetime / 10)` before its expiry. For an Official Account
/// token this also keeps the 5-minute rule harmless: the token we replace early stays valid
/// at WeChat for 5 minutes after the new one is issued, longer than it had left anyway.
pub fn freshness(c: &Cached, now_ms: u64) -> Freshness {
    let lifetime = c.expires_at.saturating_sub(c.fetched_at);
    let early = (lifetime / 10).min(300_000);
    if now_ms >= c.expires_at {
        Freshness::Expired
    } else if now_ms >= c.expires_at - early {
        Freshness::Stale
    } else {
        Freshness::Fresh
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// How long a refresh may hold the store's lock by default (`[store].lock_ttl`): two provider
/// timeouts, so that a live holder keeps it through a slow gettoken, and a dead one blocks the
/// cluster's refresh of that key no longer than this.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(10);
/// How often a process waiting on another's refresh looks for its value (and for a free lock).
const WAIT_POLL: Duration = Duration::from_millis(50);
/// A failing fetch (bad secret, IP not trusted) is logged at most this often per key.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);
/// A fetch refused for a configuration reason is not repeated for this long: every caller
/// meanwhile gets the same errcode, and the daily gettoken quota is not burnt on a secret that
/// cannot work. A corrected secret (SIGHUP) is another key, so it is tried at once.
const REFUSAL_HOLD: Duration = Duration::from_secs(10);

/// gettoken answers that no retry can change: bad secret or id, untrusted IP, no such token.
pub fn is_config_refusal(e: &ProviderError) -> bool {
    matches!(
        e,
        ProviderError::Api {
            errcode: 40001 | 40013 | 40125 | 40164 | 41002 | 41004 | 48001 | 60020,
            ..
        }
    )
}

type Flight = Arc<OnceCell<Result<Cached, ProviderError>>>;

/// Whether this process fetches, after asking the store's lock.
enum Turn {
    /// Another process fetched meanwhile.
    Done(Cached),
    /// This process holds the lock with this id.
    Locked(String),
    /// The lock never came free in time.
    Unlocked,
}

pub struct TokenCache {
    store: Arc<dyn Store>,
    lock_ttl: Duration,
    /// One refresh per key in this process; every waiter shares its result or its error.
    inflight: DashMap<CacheKey, Flight>,
    failures_logged: DashMap<CacheKey, Instant>,
    refusals: DashMap<CacheKey, (Instant, ProviderError)>,
}

fn store_err(e: StoreError) -> ProviderError {
    ProviderError::Unreachable(e.to_string())
}

impl TokenCache {
    #[cfg(test)]
    pub fn new(store: Arc<dyn Store>) -> Arc<TokenCache> {
        Self::with_lock_ttl(store, DEFAULT_LOCK_TTL)
    }

    pub fn with_lock_ttl(store: Arc<dyn Store>, lock_ttl: Duration) -> Arc<TokenCache> {
        Arc::new(TokenCache {
            store,
            lock_ttl,
            inflight: DashMap::new(),
            failures_logged: DashMap::new(),
            refusals: DashMap::new(),
        })
    }

    /// A usable value: the cached one, or the result of the one refresh in flight.
    pub async fn get(
        self: &Arc<Self>,
        key: &CacheKey,
        fetch: Fetch,
    ) -> Result<Arc<str>, ProviderError> {
        let cached = self.store.get(&key.store_key()).await.map_err(store_err)?;
        if let Some(c) = cached {
            match freshness(&c, now_ms()) {
                Freshness::Fresh => return Ok(c.value),
                Freshness::Stale => {
                    // Requests keep the still-valid value; one task refreshes it.
                    let this = self.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        let _ = this.refresh(&key, fetch).await;
                    });
                    return Ok(c.value);
                }
                Freshness::Expired => {}
            }
        }
        self.refresh(key, fetch).await.map(|c| c.value)
    }

    /// Compare-and-expire (SPEC section 11): forgets `failed` only if it is still the cached
    /// value. `false` means someone already replaced it; the next `get` returns the new one.
    pub async fn expire_if(&self, key: &CacheKey, failed: &str) -> Result<bool, ProviderError> {
        self.store
            .expire_if(&key.store_key(), failed)
            .await
            .map_err(store_err)
    }

    async fn refresh(
        self: &Arc<Self>,
        key: &CacheKey,
        fetch: Fetch,
    ) -> Result<Cached, ProviderError> {
        let flight = self.inflight.entry(key.clone()).or_default().clone();
        let this = self.clone();
        flight
            .get_or_init(|| async {
                let result = this.fetch_once(key, fetch).await;
                this.inflight.remove_if(key, |_, f| Arc::ptr_eq(f, &flight));
                result
            })
            .await
            .clone()
    }

    /// One refresh of `key`, called by one task per process at a time (the in-process single
    /// flight of [`Self::refresh`]); across processes the store's lock decides who fetches.
    async fn fetch_once(&self, key: &CacheKey, fetch: Fetch) -> Result<Cached, ProviderError> {
        let skey = key.store_key();
        // A refresh that ended while this one queued (here or in another process) counts.
        let previous = self.store.get(&skey).await.map_err(store_err)?;
        if let Some(c) = previous.as_ref() {
            if freshness(c, now_ms()) == Freshness::Fresh {
                return Ok(c.clone());
            }
        }
        if let Some(refusal) = self.refusals.get(key) {
            if refusal.0.elapsed() < REFUSAL_HOLD {
                return Err(refusal.1.clone());
            }
        }
        let lock = match self.take_turn(&skey).await? {
            Turn::Done(c) => return Ok(c),
            Turn::Locked(id) => Some(id),
            Turn::Unlocked => None,
        };
        let result = fetch().await;
        let outcome = match result {
            Ok(f) => {
                let now = now_ms();
                let mut expires_at = now + f.expires_in.saturating_mul(1000);
                // WeCom hands out the same token or ticket again until it expires, with the
                // seconds it has left rounded up: an early refresh gets the old value back,
                // and its death must not be postponed by that rounding.
                if let Some(p) = previous.as_ref().filter(|p| *p.value == *f.value) {
                    expires_at = expires_at.min(p.expires_at);
                }
                let c = Cached {
                    value: f.value.into(),
                    fetched_at: now,
                    expires_at,
                };
                self.store
                    .set(&skey, &c)
                    .await
                    .map(|()| c)
                    .map_err(store_err)
            }
            Err(e) => {
                self.log_failure(key, &e);
                if is_config_refusal(&e) {
                    self.refusals
                        .insert(key.clone(), (Instant::now(), e.clone()));
                }
                Err(e)
            }
        };
        if let Some(id) = lock {
            let _ = self.store.unlock(&skey, &id).await;
        }
        outcome
    }

    /// The cluster's single flight: take the store's lock, or wait for the value its holder
    /// stores. A waiter keeps trying the lock, so a holder that died (its lock expired) or
    /// failed (its lock released, no value) is followed by one other process's fetch. The
    /// wait is bounded by twice the lock's lifetime; past that this process fetches unlocked
    /// rather than fail the request.
    async fn take_turn(&self, skey: &str) -> Result<Turn, ProviderError> {
        let deadline = Instant::now() + 2 * self.lock_ttl;
        loop {
            if let Some(id) = self
                .store
                .lock(skey, self.lock_ttl)
                .await
                .map_err(store_err)?
            {
                // Another process may have stored its value between our read and our lock.
                let again = self.fresh(skey).await;
                if !matches!(again, Ok(None)) {
                    let _ = self.store.unlock(skey, &id).await;
                }
                return match again {
                    Ok(None) => Ok(Turn::Locked(id)),
                    Ok(Some(c)) => Ok(Turn::Done(c)),
                    Err(e) => Err(e),
                };
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    key = skey,
                    "refresh lock still held after twice its lifetime: fetching without it"
                );
                return Ok(Turn::Unlocked);
            }
            tokio::time::sleep(WAIT_POLL).await;
            if let Some(c) = self.fresh(skey).await? {
                return Ok(Turn::Done(c));
            }
        }
    }

    async fn fresh(&self, skey: &str) -> Result<Option<Cached>, ProviderError> {
        let c = self.store.get(skey).await.map_err(store_err)?;
        Ok(c.filter(|c| freshness(c, now_ms()) == Freshness::Fresh))
    }

    /// Once a minute per key: a wrong secret must not flood the log with one line per request.
    fn log_failure(&self, key: &CacheKey, e: &ProviderError) {
        let now = Instant::now();
        let mut due = false;
        self.failures_logged
            .entry(key.clone())
            .and_modify(|last| {
                if now.duration_since(*last) >= FAILURE_LOG_EVERY {
                    *last = now;
                    due = true;
                }
            })
            .or_insert_with(|| {
                due = true;
                now
            });
        if due {
            let errcode = match e {
                ProviderError::Api { errcode, .. } => *errcode,
                _ => 0,
            };
            tracing::warn!(
                kind = key.kind.label(),
                owner = %key.owner,
                api_base = %key.api_base,
                errcode,
                error = %e,
                "token fetch failed (logged once a minute per key)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Secret;
    use crate::provider::store::MemoryStore;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn wecom(corp: &str, agent: u64, secret: &str, contact: Option<&str>) -> Creds {
        Creds::Wecom {
            corp_id: corp.into(),
            agent_id: agent,
            secret: Secret::new(secret.into()),
            contact_secret: contact.map(|s| Secret::new(s.into())),
        }
    }

    #[test]
    fn keys_never_shared_across_apps_kinds_or_bases() {
        let a = wecom("ww1", 1000001, "s1", Some("c"));
        let b = wecom("ww1", 1000002, "s2", Some("c"));
        let rotated = wecom("ww1", 1000001, "s1-new", Some("c"));
        let mp = Creds::WechatMp {
            app_id: "wx1".into(),
            secret: Secret::new("m".into()),
        };
        let k = |base: &str, c: &Creds, kind| CacheKey::derive(base, c, kind).store_key();
        let q = "https://qyapi.weixin.qq.com";
        let distinct = [
            k(q, &a, TokenKind::Access),
            k(q, &b, TokenKind::Access),
            k(q, &rotated, TokenKind::Access),
            k("http://127.0.0.1:9100", &a, TokenKind::Access),
            k(q, &a, TokenKind::Contact),
            k(q, &a, TokenKind::CorpTicket),
            k(q, &a, TokenKind::AgentTicket),
            k(q, &b, TokenKind::AgentTicket),
            k(q, &mp, TokenKind::Access),
            k(q, &mp, TokenKind::CorpTicket),
        ];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert_ne!(x, y);
            }
            assert!(!x.contains("s1") && !x.contains("s2"), "secret in key {x}");
        }
        // Two apps sharing the contact secret share its token: it is one secret's token.
        assert_eq!(k(q, &a, TokenKind::Contact), k(q, &b, TokenKind::Contact));
        assert_eq!(
            k(q, &a, TokenKind::Access),
            k(q, &a.clone(), TokenKind::Access)
        );
    }

    #[test]
    fn freshness_windows() {
        let c = |fetched: u64, expires: u64| Cached {
            value: "t".into(),
            fetched_at: fetched,
            expires_at: expires,
        };
        let h2 = 7_200_000;
        let cases: &[(Cached, u64, Freshness)] = &[
            // 7200 s lifetime: stale 300 s before expiry (min(300 s, 720 s)).
            (c(0, h2), 0, Freshness::Fresh),
            (c(0, h2), h2 - 300_001, Freshness::Fresh),
            (c(0, h2), h2 - 300_000, Freshness::Stale),
            (c(0, h2), h2 - 1, Freshness::Stale),
            (c(0, h2), h2, Freshness::Expired),
            (c(0, h2), h2 + 5, Freshness::Expired),
            // 60 s lifetime: stale 6 s before expiry.
            (c(0, 60_000), 53_999, Freshness::Fresh),
            (c(0, 60_000), 54_000, Freshness::Stale),
            // Zero lifetime: expired at once.
            (c(10, 10), 10, Freshness::Expired),
        ];
        for (cached, now, want) in cases {
            assert_eq!(freshness(cached, *now), *want, "{cached:?} at {now}");
        }
    }

    fn key() -> CacheKey {
        CacheKey::derive("http://e", &wecom("ww", 1, "s", None), TokenKind::Access)
    }

    /// A fetcher handing out `v1`, `v2`, ... after a short pause, counting its calls.
    fn counting(calls: Arc<AtomicUsize>, fail: Option<i64>) -> Fetch {
        Arc::new(move || {
            let calls = calls.clone();
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(30)).await;
                match fail {
                    Some(errcode) => Err(ProviderError::Api {
                        errcode,
                        errmsg: "invalid credential".into(),
                    }),
                    None => Ok(Fetched {
                        value: format!("v{n}"),
                        expires_in: 7200,
                    }),
                }
            })
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_flight_one_fetch_for_many_waiters() {
        let cache = TokenCache::new(Arc::new(MemoryStore::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let cache = cache.clone();
            let fetch = counting(calls.clone(), None);
            tasks.push(tokio::spawn(async move { cache.get(&key(), fetch).await }));
        }
        for t in tasks {
            assert_eq!(&*t.await.unwrap().unwrap(), "v1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_sharing_a_store_fetch_once_between_them() {
        // Three caches over one store stand for three gateway processes over one Redis.
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let caches: Vec<_> = (0..3)
            .map(|_| TokenCache::with_lock_ttl(store.clone(), Duration::from_secs(5)))
            .collect();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..300 {
            let cache = caches[i % 3].clone();
            let fetch = counting(calls.clone(), None);
            tasks.push(tokio::spawn(async move { cache.get(&key(), fetch).await }));
        }
        for t in tasks {
            assert_eq!(&*t.await.unwrap().unwrap(), "v1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_dead_holders_lock_is_waited_out_then_one_process_fetches() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        // A process took the lock and died: nobody releases it.
        let ttl = Duration::from_millis(300);
        store.lock(&key().store_key(), ttl).await.unwrap().unwrap();
        let started = Instant::now();
        let (a, b) = (
            TokenCache::with_lock_ttl(store.clone(), ttl),
            TokenCache::with_lock_ttl(store.clone(), ttl),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let k = key();
        let (x, y) = tokio::join!(
            a.get(&k, counting(calls.clone(), None)),
            b.get(&k, counting(calls.clone(), None)),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!((&*x, &*y), ("v1", "v1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let waited = started.elapsed();
        assert!(
            waited >= ttl && waited < ttl * 2,
            "waited for the expiry, not longer: {waited:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_gets_the_one_fetch_error() {
        let cache = TokenCache::new(Arc::new(MemoryStore::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let fetch = counting(calls.clone(), Some(40001));
            tasks.push(tokio::spawn(async move { cache.get(&key(), fetch).await }));
        }
        for t in tasks {
            match t.await.unwrap() {
                Err(ProviderError::Api { errcode: 40001, .. }) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_refused_fetch_is_not_repeated_at_once_and_busy_is() {
        let cache = TokenCache::new(Arc::new(MemoryStore::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let r = cache
                .get(&key(), counting(calls.clone(), Some(40001)))
                .await;
            assert!(matches!(r, Err(ProviderError::Api { errcode: 40001, .. })));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a bad secret is asked once"
        );

        let busy = Arc::new(AtomicUsize::new(0));
        let other = CacheKey::derive("http://e", &wecom("ww", 2, "s", None), TokenKind::Access);
        for _ in 0..3 {
            let _ = cache.get(&other, counting(busy.clone(), Some(-1))).await;
        }
        assert_eq!(
            busy.load(Ordering::SeqCst),
            3,
            "system busy may pass: asked again"
        );
    }

    #[tokio::test]
    async fn stale_failure_after_a_refresh_keeps_the_new_token() {
        let cache = TokenCache::new(Arc::new(MemoryStore::default()));
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = counting(calls.clone(), None);
        let v1 = cache.get(&key(), fetch.clone()).await.unwrap();
        // The first failure with v1 expires it; the refresh brings v2.
        assert!(cache.expire_if(&key(), &v1).await.unwrap());
        let v2 = cache.get(&key(), fetch.clone()).await.unwrap();
        assert_eq!(&*v2, "v2");
        // A late failure, also made with v1, must leave v2 alone.
        assert!(!cache.expire_if(&key(), &v1).await.unwrap());
        assert_eq!(&*cache.get(&key(), fetch).await.unwrap(), "v2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stale_value_served_while_refreshed_in_background() {
        let store = Arc::new(MemoryStore::default());
        let cache = TokenCache::new(store.clone());
        let now = now_ms();
        store
            .set(
                &key().store_key(),
                &Cached {
                    value: "old".into(),
                    fetched_at: now - 7_000_000,
                    expires_at: now + 100_000,
                },
            )
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let got = cache
            .get(&key(), counting(calls.clone(), None))
            .await
            .unwrap();
        assert_eq!(&*got, "old", "the request does not wait for the refresh");
        for _ in 0..200 {
            if store
                .get(&key().store_key())
                .await
                .unwrap()
                .unwrap()
                .value
                .as_ref()
                == "v1"
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            &*cache
                .get(&key(), counting(calls.clone(), None))
                .await
                .unwrap(),
            "v1"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_early_refresh_that_gets_the_same_value_back_keeps_its_expiry() {
        let store = Arc::new(MemoryStore::default());
        let cache = TokenCache::new(store.clone());
        let now = now_ms();
        let dies = now + 250;
        store
            .set(
                &key().store_key(),
                &Cached {
                    value: "same".into(),
                    fetched_at: now - 2_750,
                    expires_at: dies,
                },
            )
            .await
            .unwrap();
        // WeCom answers with the same ticket and its 250 ms left rounded up to a second.
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch: Fetch = {
            let calls = calls.clone();
            Arc::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async {
                    Ok(Fetched {
                        value: "same".into(),
                        expires_in: 1,
                    })
                })
            })
        };
        assert_eq!(&*cache.refresh(&key(), fetch).await.unwrap().value, "same");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let kept = store.get(&key().store_key()).await.unwrap().unwrap();
        assert_eq!(kept.expires_at, dies, "not postponed by the rounding");

        // Once it died, WeCom issues another: its own expiry counts.
        tokio::time::sleep(Duration::from_millis(dies + 10 - now_ms())).await;
        let fresh: Fetch = Arc::new(|| {
            Box::pin(async {
                Ok(Fetched {
                    value: "new".into(),
                    expires_in: 7200,
                })
            })
        });
        let c = cache.refresh(&key(), fresh).await.unwrap();
        assert_eq!(&*c.value, "new");
        assert!(c.expires_at >= now + 7_199_000);
    }
}
