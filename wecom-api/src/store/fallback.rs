//! A shared store with the process's own copy underneath (SPEC section 15: Redis unreachable,
//! the gateway keeps serving). The shared store is the truth while it answers; every value read
//! from it or written to it is also kept here, so that when it stops answering:
//!
//! - valid tokens are still served from the local copy;
//! - a refresh takes the local lock, so it is single flight within the process (each process
//!   may then fetch once for itself, which WeCom tolerates; a request never fails for it);
//! - the shared store is left alone for [`REST`] after a failure instead of costing every
//!   request a timeout, then tried again, so the gateway recovers by itself;
//! - the failure is logged once a minute, never per request and never with a value.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Cached, MemoryStore, Store, StoreError};
use crate::observe::Observer;
use crate::throttle::Throttle;
use crate::Clock;

/// After a failure, requests skip the shared store this long (one request then tries again).
const REST: Duration = Duration::from_secs(1);
/// Lock ids handed out by the local store carry this mark, so `unlock` knows where to go.
const LOCAL: &str = "local:";
/// How long a record read from the shared store is kept here: the longest a session may live
/// (a `ttl` of up to 30 days), and so the longest a record that ends sessions is kept in the
/// shared store (a revocation kept longer than its record only refuses a session that has
/// ended anyway). Copies are of records read, few.
pub const COPIED_FACT_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

pub struct FallbackStore<S> {
    shared: S,
    local: MemoryStore,
    clock: Clock,
    observer: Arc<dyn Observer>,
    /// Unix ms before which the shared store is not asked (0: ask it).
    resting_until: AtomicU64,
    /// The last exchange with the shared store failed.
    down: AtomicBool,
    logged: Throttle<()>,
}

impl<S: Store> FallbackStore<S> {
    pub fn new(shared: S, clock: Clock, observer: Arc<dyn Observer>) -> FallbackStore<S> {
        FallbackStore {
            shared,
            local: MemoryStore::new(clock.clone()),
            clock,
            observer,
            resting_until: AtomicU64::new(0),
            down: AtomicBool::new(false),
            logged: Throttle::per_minute(),
        }
    }

    /// Whether the shared store is left alone now. After a failure, for [`REST`]; then one
    /// request asks it again, and the others go on with this process's copy while it does
    /// (a store that does not answer costs that one request its timeout: every request in
    /// flight waited it out each time the rest ended).
    fn resting(&self) -> bool {
        let now = self.clock.now_ms();
        let until = self.resting_until.load(Ordering::Relaxed);
        if now < until {
            return true;
        }
        if !self.down.load(Ordering::Relaxed) {
            return false;
        }
        let probing = now + REST.as_millis() as u64;
        self.resting_until
            .compare_exchange(until, probing, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    }

    fn failed(&self, op: &'static str, e: &StoreError) {
        self.observer.store_failed(self.shared.name(), op);
        let now = self.clock.now_ms();
        self.resting_until
            .store(now + REST.as_millis() as u64, Ordering::Relaxed);
        self.down.store(true, Ordering::Relaxed);
        if self.logged.due((), now) {
            tracing::warn!(
                store = self.shared.name(),
                op,
                error = %e,
                "token store unreachable: serving from this process's copy (logged once a minute)"
            );
        }
    }

    /// The records `found` (read from the shared store for `keys`) has, kept in this process's
    /// copy unless it holds the same already: a record written again (a member's revocation,
    /// its time moved on by a later `delete_user`) replaces the older copy, which would
    /// otherwise answer while the shared store does not.
    async fn keep_copies(&self, keys: &[&str], found: &[Option<String>]) -> Result<(), StoreError> {
        let here = self.local.get_facts(keys).await?;
        for ((key, there), here) in keys.iter().zip(found).zip(here) {
            if let Some(value) = there {
                if here.as_ref() != Some(value) {
                    self.local.put_fact(key, value, COPIED_FACT_TTL).await?;
                }
            }
        }
        Ok(())
    }

    fn answered(&self) {
        self.resting_until.store(0, Ordering::Relaxed);
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(store = self.shared.name(), "token store reachable again");
        }
    }
}

#[async_trait]
impl<S: Store> Store for FallbackStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        if !self.resting() {
            match self.shared.get(key).await {
                Ok(v) => {
                    self.answered();
                    match &v {
                        Some(c) => {
                            if self.local.get(key).await?.as_ref() != Some(c) {
                                self.local.set(key, c).await?;
                            }
                        }
                        // Expired, or expired by a token error in another process.
                        None => self.local.forget(key),
                    }
                    return Ok(v);
                }
                Err(e) => self.failed("get", &e),
            }
        }
        self.local.get(key).await
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.local.set(key, value).await?;
        if !self.resting() {
            match self.shared.set(key, value).await {
                Ok(()) => self.answered(),
                Err(e) => self.failed("set", &e),
            }
        }
        Ok(())
    }

    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let here = self.local.expire_if(key, value).await?;
        if !self.resting() {
            match self.shared.expire_if(key, value).await {
                Ok(there) => {
                    self.answered();
                    return Ok(there);
                }
                Err(e) => self.failed("expire_if", &e),
            }
        }
        Ok(here)
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        if !self.resting() {
            match self.shared.lock(key, ttl).await {
                Ok(id) => {
                    self.answered();
                    return Ok(id);
                }
                Err(e) => self.failed("lock", &e),
            }
        }
        let id = self.local.lock(key, ttl).await?;
        Ok(id.map(|id| format!("{LOCAL}{id}")))
    }

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError> {
        if let Some(id) = lock_id.strip_prefix(LOCAL) {
            return self.local.unlock(key, id).await;
        }
        // Unanswered, the lock still frees itself by expiry.
        if let Err(e) = self.shared.unlock(key, lock_id).await {
            self.failed("unlock", &e);
        }
        Ok(())
    }

    /// The shared store's answer while it answers (this process keeps its own copy of a won
    /// claim); this process's alone when it does not.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        if !self.resting() {
            match self.shared.claim(key, ttl).await {
                Ok(first) => {
                    self.answered();
                    if first {
                        self.local.claim(key, ttl).await?;
                    }
                    return Ok(first);
                }
                Err(e) => self.failed("claim", &e),
            }
        }
        self.local.claim(key, ttl).await
    }

    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        if !self.resting() {
            match self.shared.get_fact(key).await {
                Ok(v) => {
                    self.answered();
                    return Ok(v);
                }
                Err(e) => self.failed("get_fact", &e),
            }
        }
        self.local.get_fact(key).await
    }

    /// The shared store's answer, and for a key it has nothing under, this process's own copy:
    /// what [`Store::get_facts`] reads are records only ever added or moved on (revocations),
    /// so one this
    /// process wrote still holds when the shared store lost it (restarted empty, flushed). A
    /// record read from the shared store is kept here too (for [`COPIED_FACT_TTL`]): while it
    /// does not answer (slow, down, restarted empty), a sign-out made on another instance that
    /// this one has seen still holds here.
    async fn get_facts(&self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        if !self.resting() {
            match self.shared.get_facts(keys).await {
                Ok(mut v) => {
                    self.answered();
                    // Rare: a request with a revoked session.
                    if v.iter().any(Option::is_some) {
                        self.keep_copies(keys, &v).await?;
                    }
                    if v.iter().any(Option::is_none) {
                        let here = self.local.get_facts(keys).await?;
                        for (there, here) in v.iter_mut().zip(here) {
                            if there.is_none() {
                                *there = here;
                            }
                        }
                    }
                    return Ok(v);
                }
                Err(e) => self.failed("get_facts", &e),
            }
        }
        self.local.get_facts(keys).await
    }

    async fn put_fact(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.local.put_fact(key, value, ttl).await?;
        if !self.resting() {
            match self.shared.put_fact(key, value, ttl).await {
                Ok(()) => self.answered(),
                Err(e) => self.failed("put_fact", &e),
            }
        }
        Ok(())
    }

    /// Kept here too (this process honours it while the shared store is away), but sent to the
    /// shared store whether resting or not, and its failure is the answer: a durable write that
    /// only this process has would be lost to the others, and to this one once the shared store
    /// answers again (reads then go there).
    async fn put_durable_fact(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.local.put_fact(key, value, ttl).await?;
        match self.shared.put_fact(key, value, ttl).await {
            Ok(()) => {
                self.answered();
                Ok(())
            }
            Err(e) => {
                self.failed("put_durable_fact", &e);
                Err(e)
            }
        }
    }

    /// Always asks the shared store, resting or not: readiness must say what is true now, and a
    /// success ends the rest at once.
    async fn ping(&self) -> Result<(), StoreError> {
        match self.shared.ping().await {
            Ok(()) => {
                self.answered();
                Ok(())
            }
            Err(e) => {
                self.failed("ping", &e);
                Err(e)
            }
        }
    }

    fn name(&self) -> &'static str {
        self.shared.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Unobserved;
    use std::sync::Mutex;

    /// A memory store that can be switched off, counting what was asked of it.
    #[derive(Default)]
    struct Switchable {
        inner: MemoryStore,
        off: AtomicBool,
        asked: AtomicU64,
        /// Off, it answers only after this many ms (a store that does not answer: the
        /// caller's timeout).
        slow_ms: AtomicU64,
    }

    impl Switchable {
        fn check(&self) -> Result<(), StoreError> {
            self.asked.fetch_add(1, Ordering::Relaxed);
            if self.off.load(Ordering::Relaxed) {
                Err(StoreError("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Store for Arc<Switchable> {
        async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
            let slow = self.slow_ms.load(Ordering::Relaxed);
            if slow > 0 && self.off.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(slow)).await;
            }
            self.check()?;
            self.inner.get(key).await
        }
        async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
            self.check()?;
            self.inner.set(key, value).await
        }
        async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
            self.check()?;
            self.inner.expire_if(key, value).await
        }
        async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
            self.check()?;
            self.inner.lock(key, ttl).await
        }
        async fn unlock(&self, key: &str, id: &str) -> Result<(), StoreError> {
            self.check()?;
            self.inner.unlock(key, id).await
        }
        async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
            self.check()?;
            self.inner.claim(key, ttl).await
        }
        async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
            self.check()?;
            self.inner.get_fact(key).await
        }
        async fn put_fact(&self, key: &str, v: &str, ttl: Duration) -> Result<(), StoreError> {
            self.check()?;
            self.inner.put_fact(key, v, ttl).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            self.check()
        }
        fn name(&self) -> &'static str {
            "switchable"
        }
    }

    /// Records the failed operations it is told about.
    #[derive(Default)]
    struct Failures(Mutex<Vec<&'static str>>);

    impl Observer for Failures {
        fn store_failed(&self, store: &'static str, op: &'static str) {
            assert_eq!(store, "switchable");
            self.0.lock().unwrap().push(op);
        }
    }

    fn cached(clock: &Clock, v: &str) -> Cached {
        Cached {
            value: v.into(),
            fetched_at: clock.now_ms(),
            expires_at: clock.now_ms() + 7_200_000,
        }
    }

    #[tokio::test]
    async fn serves_its_copy_while_the_shared_store_is_down_and_rests_it() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let failures = Arc::new(Failures::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), failures.clone());
        shared.inner.set("k", &cached(&clock, "v1")).await.unwrap();
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v1");

        shared.off.store(true, Ordering::Relaxed);
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v1");
        let asked = shared.asked.load(Ordering::Relaxed);
        for _ in 0..100 {
            assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v1");
        }
        assert_eq!(
            shared.asked.load(Ordering::Relaxed),
            asked,
            "resting: requests do not wait on a dead store"
        );
        assert_eq!(*failures.0.lock().unwrap(), ["get"], "counted once");
        assert!(s.ping().await.is_err());

        // A refresh while down: the local lock, the local copy.
        let id = s.lock("k", Duration::from_secs(10)).await.unwrap().unwrap();
        assert!(id.starts_with(LOCAL));
        assert!(s
            .lock("k", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none());
        s.set("k", &cached(&clock, "v2")).await.unwrap();
        s.unlock("k", &id).await.unwrap();
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v2");

        // After its rest the shared store is asked again, once, by itself.
        clock.advance(REST);
        let asked = shared.asked.load(Ordering::Relaxed);
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v2");
        assert_eq!(shared.asked.load(Ordering::Relaxed), asked + 1);

        // Back: the shared store is the truth again.
        shared.off.store(false, Ordering::Relaxed);
        assert!(s.ping().await.is_ok());
        shared.inner.set("k", &cached(&clock, "v3")).await.unwrap();
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v3");
        let id = s.lock("k", Duration::from_secs(10)).await.unwrap().unwrap();
        assert!(!id.starts_with(LOCAL), "the shared lock again");
    }

    /// When the rest ends, one request asks the shared store again; the others, meanwhile,
    /// are served from this process's copy at once rather than each waiting out the dead
    /// store's timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_request_asks_a_down_store_again_while_the_others_are_served() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = Arc::new(FallbackStore::new(
            shared.clone(),
            clock.clone(),
            Arc::new(Unobserved),
        ));
        shared.inner.set("k", &cached(&clock, "v1")).await.unwrap();
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v1");
        shared.off.store(true, Ordering::Relaxed);
        shared.slow_ms.store(300, Ordering::Relaxed);
        assert_eq!(&*s.get("k").await.unwrap().unwrap().value, "v1");
        for _ in 0..3 {
            clock.advance(REST);
            let asked = shared.asked.load(Ordering::Relaxed);
            let gets: Vec<_> = (0..20)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move { s.get("k").await.unwrap().unwrap().value })
                })
                .collect();
            for g in gets {
                assert_eq!(&*g.await.unwrap(), "v1");
            }
            assert_eq!(
                shared.asked.load(Ordering::Relaxed),
                asked + 1,
                "one asks; the others did not wait on it"
            );
        }
    }

    #[tokio::test]
    async fn a_value_gone_from_the_shared_store_is_gone_here_too() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), Arc::new(Unobserved));
        s.set("k", &cached(&clock, "v1")).await.unwrap();
        // Another process expired it after a token error.
        assert!(shared.inner.expire_if("k", "v1").await.unwrap());
        assert!(s.get("k").await.unwrap().is_none());
        shared.off.store(true, Ordering::Relaxed);
        assert!(
            s.get("k").await.unwrap().is_none(),
            "the copy does not bring back a token known to be bad"
        );
    }

    #[tokio::test]
    async fn facts_are_shared_while_it_answers_and_kept_here_when_it_does_not() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), Arc::new(Unobserved));
        let ttl = Duration::from_secs(600);
        s.put_fact("f", "mine", ttl).await.unwrap();
        assert_eq!(
            shared.inner.get_fact("f").await.unwrap().as_deref(),
            Some("mine")
        );
        shared.inner.put_fact("g", "theirs", ttl).await.unwrap();
        assert_eq!(s.get_fact("g").await.unwrap().as_deref(), Some("theirs"));
        shared.off.store(true, Ordering::Relaxed);
        assert_eq!(s.get_fact("f").await.unwrap().as_deref(), Some("mine"));
        s.put_fact("h", "while down", ttl).await.unwrap();
        assert_eq!(
            s.get_fact("h").await.unwrap().as_deref(),
            Some("while down")
        );
    }

    /// A revocation another instance wrote, once read here, still holds while the shared store
    /// does not answer or after it lost it (restarted empty): a signed-out session must not
    /// open again on this instance because Redis is slow.
    #[tokio::test]
    async fn a_record_read_from_the_shared_store_holds_here_when_it_is_away() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), Arc::new(Unobserved));
        shared
            .inner
            .put_fact("revoked:a", "1", Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(
            s.get_facts(&["revoked:a", "revoked:b"]).await.unwrap(),
            [Some("1".to_owned()), None]
        );
        shared.off.store(true, Ordering::Relaxed);
        assert_eq!(
            s.get_facts(&["revoked:a", "revoked:b"]).await.unwrap(),
            [Some("1".to_owned()), None]
        );
        // As long as the session it may end: up to 30 days.
        clock.advance(Duration::from_secs(29 * 24 * 3600));
        assert_eq!(
            s.get_facts(&["revoked:a", "revoked:b"]).await.unwrap(),
            [Some("1".to_owned()), None]
        );
        // Written again (a later `delete_user` of the member): the copy follows it, and holds
        // the new value while the shared store is away.
        shared.off.store(false, Ordering::Relaxed);
        clock.advance(REST);
        shared
            .inner
            .put_fact("revoked:a", "2", Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(
            s.get_facts(&["revoked:a"]).await.unwrap(),
            [Some("2".to_owned())]
        );
        shared.off.store(true, Ordering::Relaxed);
        assert_eq!(
            s.get_facts(&["revoked:a"]).await.unwrap(),
            [Some("2".to_owned())]
        );
    }

    /// What must not be lost is not called kept when only this process has it: the shared
    /// store's failure is the answer (also while resting), and this process honours it still.
    #[tokio::test]
    async fn a_durable_fact_the_shared_store_did_not_take_is_an_error() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), Arc::new(Unobserved));
        let ttl = Duration::from_secs(600);
        s.put_durable_fact("kept", "1", ttl).await.unwrap();
        assert_eq!(
            shared.inner.get_fact("kept").await.unwrap().as_deref(),
            Some("1")
        );
        shared.off.store(true, Ordering::Relaxed);
        assert!(s.put_durable_fact("revoked", "1", ttl).await.is_err());
        assert!(
            s.put_durable_fact("revoked", "1", ttl).await.is_err(),
            "asked again while resting, and still an error"
        );
        assert_eq!(s.get_fact("revoked").await.unwrap().as_deref(), Some("1"));
        shared.off.store(false, Ordering::Relaxed);
        s.put_durable_fact("revoked", "1", ttl).await.unwrap();
        assert_eq!(
            shared.inner.get_fact("revoked").await.unwrap().as_deref(),
            Some("1")
        );
    }

    /// A revocation this process wrote outlives the shared store losing it (restarted empty,
    /// flushed): records read together are only ever added.
    #[tokio::test]
    async fn records_the_shared_store_lost_are_read_from_this_process() {
        let clock = Clock::system();
        let shared = Arc::new(Switchable::default());
        let s = FallbackStore::new(shared.clone(), clock.clone(), Arc::new(Unobserved));
        let ttl = Duration::from_secs(600);
        s.put_durable_fact("revoked:sid:a", "1", ttl).await.unwrap();
        shared
            .inner
            .put_fact("revoked:sid:b", "1", ttl)
            .await
            .unwrap();
        // Lost by the shared store.
        shared.inner.forget_fact("revoked:sid:a").await.unwrap();
        let got = s
            .get_facts(&["revoked:sid:a", "revoked:sid:b", "revoked:sid:c"])
            .await
            .unwrap();
        assert_eq!(got, [Some("1".into()), Some("1".into()), None]);
    }
}
