//! Where tokens, tickets and other short-lived shared values live between fetches.
//!
//! [`MemoryStore`] serves one process and forgets at exit; [`LocalStore`] serves one process
//! and keeps everything in a file (SPEC section 21); [`RedisStore`] implements the same trait
//! so that a cluster shares one token per key and one refresh at a time (SPEC section 11);
//! [`FallbackStore`] keeps this process's copy under a shared store for when it stops
//! answering (SPEC section 15).

mod fallback;
mod local;
mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use fallback::FallbackStore;
pub use local::{LocalStore, Sweeper};
pub use memory::MemoryStore;
pub use redis::{decode, encode, RedisStore};

/// A token or ticket with the times that decide when it is refreshed. Unix milliseconds, so
/// that a shared store means the same thing in every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub value: Arc<str>,
    /// When the request that fetched it was sent (Unix ms): the provider's countdown for the
    /// value was already running when its answer arrived.
    pub fetched_at: u64,
    pub expires_at: u64,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("token store: {0}")]
pub struct StoreError(pub String);

/// The seam between the token cache's decisions and where values are kept.
///
/// Token keys are the [`crate::TokenTarget::key`]s. A Redis implementation maps `set` to
/// `SET PX`, `expire_if` and `unlock` to compare-and-delete scripts and `lock` to `SET NX PX`
/// with a unique value.
///
/// Facts are the other short-lived values a cluster shares (a verified external contact):
/// plain strings under their own keys, gone when their `ttl` ends. They are never tokens, so
/// they never pass through the token cache's decisions.
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

    /// A fact stored by [`Store::put_fact`] and not yet expired.
    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Several facts, in the order of `keys`: what a protected request reads on every call
    /// (its revocation records), in one round trip where the store has one (Redis `MGET`).
    /// By default one [`Store::get_fact`] after the other. Only for records that are only
    /// ever added until they lapse: a fallback store answers a key the shared store lost
    /// from its own copy.
    async fn get_facts(&self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.push(self.get_fact(key).await?);
        }
        Ok(found)
    }

    /// Keeps `value` under `key` for `ttl`, replacing whatever was there. A zero `ttl`
    /// forgets the fact, in every implementation.
    async fn put_fact(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;

    /// Forgets a fact (a verification that no longer holds).
    async fn forget_fact(&self, key: &str) -> Result<(), StoreError> {
        self.put_fact(key, "", Duration::ZERO).await
    }

    /// [`Store::put_fact`] for what must not be lost (SPEC section 21: revocations, installs,
    /// suite tickets; a zero `ttl` forgets, as there): `Ok` only once the store the cluster
    /// shares has it. A store that keeps a copy of its own to serve from while the shared one
    /// does not answer keeps it there as well, and still reports the failure, so that the
    /// caller can say it was not kept (WeCom then sends its callback again). By default
    /// [`Store::put_fact`], which every single-process store keeps as it says.
    async fn put_durable_fact(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.put_fact(key, value, ttl).await
    }

    /// Keeps the fact `key` for `ttl` unless it is already there: `true` only the first time,
    /// in the whole cluster with a shared store (a login state's first callback; a page's
    /// ticket report allowed once a minute). Redis: `SET NX PX`.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Where this process sees every write of a fact (the in-process stores): a number that
    /// changes with every write and is never the same for two writes or two stores. A reader
    /// that found no fact under its keys at one number may keep that answer while the number
    /// stays (a fact only lapses without a write). `None` (a store shared by a cluster, the
    /// default): every read asks.
    fn facts_version(&self) -> Option<u64> {
        None
    }

    /// The same for tokens: a number that changes with every `set`, `expire_if` that expired
    /// and token read back at start-up, where this process sees them all. A reader that got a
    /// token at one number may use it again while the number stays and the token is fresh.
    fn tokens_version(&self) -> Option<u64> {
        None
    }

    /// Whether the store answers now, for `/readyz`.
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// `memory`, `local`, `redis`: how `/readyz` names the store.
    fn name(&self) -> &'static str;
}

/// A lock id nobody else holds: 128 random bits.
fn lock_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}
