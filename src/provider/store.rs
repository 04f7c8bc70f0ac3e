//! Where tokens and tickets live between fetches. The memory store serves one process; the
//! Redis store ([`super::redis_store`]) implements the same trait so that a cluster shares one
//! token per key and one refresh at a time (SPEC section 11).

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
}

impl MemoryStore {
    /// Forgets `key` whatever its value: the shared store said it is gone.
    pub(crate) fn forget(&self, key: &str) {
        self.values.remove(key);
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        Ok(self.values.get(key).map(|v| v.clone()))
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.values.insert(key.to_owned(), value.clone());
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
