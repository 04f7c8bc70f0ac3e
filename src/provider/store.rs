//! Where tokens and tickets live between fetches. The memory store serves one process; the
//! Redis store ([`super::redis_store`]) implements the same trait so that a cluster shares one
//! token per key and one refresh at a time (SPEC section 11).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;

/// A token or ticket with the times that decide when it is refreshed. Unix milliseconds, so
/// that a shared store means the same thing in every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub value: Arc<str>,
    pub fetched_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("token store: {0}")]
pub struct StoreError(pub String);

/// The seam between the token cache's decisions and where values are kept.
///
/// Keys are opaque strings built by [`super::cache::CacheKey::store_key`]. A Redis
/// implementation maps `set` to `SET PX`, `expire_if` and `unlock` to compare-and-delete
/// scripts and `lock` to `SET NX PX` with a unique value.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError>;

    /// Keeps `value` until its `expires_at`, replacing whatever was there.
    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError>;

    /// Compare-and-expire: forgets the value only if it still is `value`. A failure reported
    /// with an old token must not throw away the new one another caller already fetched.
    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError>;

    /// Takes the refresh lock of `key` for at most `ttl`. `Some(lock id)` when taken; the id
    /// releases only this holder's lock, and a holder that dies frees it by expiry.
    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError>;

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError>;

    /// Keeps `key` for `ttl` unless it is already there: `true` only the first time, in the
    /// whole cluster with a shared store (a login state's first callback; a page's ticket
    /// report allowed once a minute). Redis: `SET NX PX`.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Whether the store answers now, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// `memory`, `redis`: how `/readyz` names the store.
    fn name(&self) -> &'static str;
}

/// The in-process store: one gateway process, no sharing.
#[derive(Default)]
pub struct MemoryStore {
    values: DashMap<String, Cached>,
    locks: DashMap<String, (String, Instant)>,
    /// Writes since expired values were last forgotten.
    writes: AtomicUsize,
}

/// Expired values are forgotten every this many writes, so that claims and revocation
/// records (one per login, one per logout) do not pile up in a long-running process.
const TIDY_EVERY: usize = 1024;

impl MemoryStore {
    /// Forgets `key` whatever its value: the shared store said it is gone.
    pub(crate) fn forget(&self, key: &str) {
        self.values.remove(key);
    }

    fn tidy(&self) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % TIDY_EVERY == TIDY_EVERY - 1 {
            let now = super::cache::now_ms();
            self.values.retain(|_, c| c.expires_at > now);
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        Ok(self.values.get(key).map(|v| v.clone()))
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.values.insert(key.to_owned(), value.clone());
        self.tidy();
        Ok(())
    }

    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        Ok(self
            .values
            .remove_if(key, |_, c| &*c.value == value)
            .is_some())
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let now = Instant::now();
        let id = crate::request_id::generate();
        let mut taken = false;
        self.locks
            .entry(key.to_owned())
            .and_modify(|(holder, until)| {
                if *until <= now {
                    *holder = id.clone();
                    *until = now + ttl;
                    taken = true;
                }
            })
            .or_insert_with(|| {
                taken = true;
                (id.clone(), now + ttl)
            });
        Ok(taken.then_some(id))
    }

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError> {
        self.locks
            .remove_if(key, |_, (holder, _)| holder == lock_id);
        Ok(())
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = super::cache::now_ms();
        let claimed = Cached {
            value: "1".into(),
            fetched_at: now,
            expires_at: now.saturating_add(ttl.as_millis() as u64),
        };
        let mut first = false;
        self.values
            .entry(key.to_owned())
            .and_modify(|c| {
                if c.expires_at <= now {
                    *c = claimed.clone();
                    first = true;
                }
            })
            .or_insert_with(|| {
                first = true;
                claimed.clone()
            });
        self.tidy();
        Ok(first)
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(v: &str) -> Cached {
        Cached {
            value: v.into(),
            fetched_at: 0,
            expires_at: u64::MAX,
        }
    }

    #[tokio::test]
    async fn expire_if_compares_before_it_deletes() {
        let s = MemoryStore::default();
        s.set("k", &cached("new")).await.unwrap();
        assert!(!s.expire_if("k", "old").await.unwrap());
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "new");
        assert!(s.expire_if("k", "new").await.unwrap());
        assert!(s.get("k").await.unwrap().is_none());
        assert!(!s.expire_if("k", "new").await.unwrap());
    }

    #[tokio::test]
    async fn a_claim_is_won_once_until_it_expires() {
        let s = MemoryStore::default();
        assert!(s.claim("k", Duration::from_secs(60)).await.unwrap());
        assert!(!s.claim("k", Duration::from_secs(60)).await.unwrap());
        assert!(s.claim("other", Duration::ZERO).await.unwrap());
        assert!(
            s.claim("other", Duration::from_secs(60)).await.unwrap(),
            "an expired claim is free"
        );
    }

    #[tokio::test]
    async fn expired_values_are_forgotten_as_writes_go_on() {
        let s = MemoryStore::default();
        s.set(
            "old",
            &Cached {
                value: "x".into(),
                fetched_at: 0,
                expires_at: 1,
            },
        )
        .await
        .unwrap();
        for i in 0..TIDY_EVERY {
            s.claim(&format!("c{i}"), Duration::from_secs(60))
                .await
                .unwrap();
        }
        assert!(s.get("old").await.unwrap().is_none());
        assert!(s.get("c1").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn lock_is_exclusive_released_by_its_holder_and_by_expiry() {
        let s = MemoryStore::default();
        let id = s.lock("k", Duration::from_secs(10)).await.unwrap().unwrap();
        assert!(s
            .lock("k", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none());
        s.unlock("k", "someone-else").await.unwrap();
        assert!(s
            .lock("k", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none());
        s.unlock("k", &id).await.unwrap();
        let short = s.lock("k", Duration::ZERO).await.unwrap();
        assert!(short.is_some());
        assert!(
            s.lock("k", Duration::from_secs(10))
                .await
                .unwrap()
                .is_some(),
            "an expired lock is free"
        );
    }
}
