//! The in-process store: one gateway process, no sharing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;

use super::{lock_id, Cached, Store, StoreError};
use crate::Clock;

/// Facts are swept of expired entries once per this many writes, so a long-running process
/// does not keep every contact it ever verified.
const SWEEP_EVERY: u64 = 256;

/// foldhash, not SipHash: a session's revocation records are read on every authenticated
/// request. Seeded at random per map, so keys a client picks (a login code's replay marker)
/// cannot be chosen to collide.
type Map<V> = DashMap<String, V, foldhash::quality::RandomState>;

#[derive(Default)]
pub struct MemoryStore {
    clock: Clock,
    tokens: Map<Cached>,
    /// Holder id and the Unix ms the lock lapses at.
    locks: Map<(String, u64)>,
    /// Value and the Unix ms it lapses at.
    facts: Map<(String, u64)>,
    /// [`Store::facts_version`].
    version: Version,
    /// [`Store::tokens_version`].
    token_version: Version,
    writes: AtomicU64,
}

impl MemoryStore {
    /// A store whose locks and facts lapse by `clock`.
    pub fn new(clock: Clock) -> MemoryStore {
        MemoryStore {
            clock,
            ..MemoryStore::default()
        }
    }

    /// Forgets `key` whatever its value: the shared store said it is gone.
    pub(crate) fn forget(&self, key: &str) {
        self.tokens.remove(key);
        self.token_version.written();
    }

    /// A token read back from a file at start-up.
    pub(crate) fn insert_token(&self, key: &str, value: Cached) {
        self.tokens.insert(key.to_owned(), value);
        self.token_version.written();
    }

    /// A fact read back from a file at start-up, with the Unix ms it lapses at.
    pub(crate) fn insert_fact(&self, key: &str, value: &str, until: u64) {
        self.facts.insert(key.to_owned(), (value.to_owned(), until));
        self.version.written();
    }

    fn sweep_now_and_then(&self, now: u64) {
        let n = self.writes.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.facts.retain(|_, (_, until)| *until > now);
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        Ok(self.tokens.get(key).map(|v| v.clone()))
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.tokens.insert(key.to_owned(), value.clone());
        self.token_version.written();
        Ok(())
    }

    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let expired = self
            .tokens
            .remove_if(key, |_, c| &*c.value == value)
            .is_some();
        if expired {
            self.token_version.written();
        }
        Ok(expired)
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        let until = now.saturating_add(ms(ttl));
        let id = lock_id();
        let mut taken = false;
        self.locks
            .entry(key.to_owned())
            .and_modify(|(holder, lapses)| {
                if *lapses <= now {
                    *holder = id.clone();
                    *lapses = until;
                    taken = true;
                }
            })
            .or_insert_with(|| {
                taken = true;
                (id.clone(), until)
            });
        Ok(taken.then_some(id))
    }

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError> {
        self.locks
            .remove_if(key, |_, (holder, _)| holder == lock_id);
        Ok(())
    }

    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now_ms();
        Ok(self
            .facts
            .get(key)
            .filter(|f| f.1 > now)
            .map(|f| f.0.clone()))
    }

    async fn get_facts(&self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        let now = self.clock.now_ms();
        Ok(keys
            .iter()
            .map(|key| {
                self.facts
                    .get(*key)
                    .filter(|f| f.1 > now)
                    .map(|f| f.0.clone())
            })
            .collect())
    }

    async fn put_fact(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        self.facts.insert(
            key.to_owned(),
            (value.to_owned(), now.saturating_add(ms(ttl))),
        );
        self.version.written();
        self.sweep_now_and_then(now);
        Ok(())
    }

    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = self.clock.now_ms();
        let until = now.saturating_add(ms(ttl));
        let mut first = false;
        self.facts
            .entry(key.to_owned())
            .and_modify(|(value, lapses)| {
                if *lapses <= now {
                    *value = "1".to_owned();
                    *lapses = until;
                    first = true;
                }
            })
            .or_insert_with(|| {
                first = true;
                ("1".to_owned(), until)
            });
        if first {
            self.version.written();
        }
        self.sweep_now_and_then(now);
        Ok(first)
    }

    fn facts_version(&self) -> Option<u64> {
        Some(self.version.0.load(Ordering::SeqCst))
    }

    fn tokens_version(&self) -> Option<u64> {
        Some(self.token_version.0.load(Ordering::SeqCst))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// Numbers for [`Store::facts_version`] and [`Store::tokens_version`], from one counter for
/// every store of the process, so that no two writes (of one store or two, of facts or of
/// tokens) have the same.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

struct Version(AtomicU64);

impl Default for Version {
    fn default() -> Self {
        Version(AtomicU64::new(VERSIONS.fetch_add(1, Ordering::SeqCst)))
    }
}

impl Version {
    /// After a value was written: a swap, not a store, so that a reader that sees the new number
    /// sees this write whichever of two racing writers' numbers it reads.
    fn written(&self) {
        let next = VERSIONS.fetch_add(1, Ordering::SeqCst);
        self.0.swap(next, Ordering::SeqCst);
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
        let clock = Clock::system();
        let s = MemoryStore::new(clock.clone());
        let ten = Duration::from_secs(10);
        let id = s.lock("k", ten).await.unwrap().unwrap();
        assert!(s.lock("k", ten).await.unwrap().is_none());
        s.unlock("k", "someone-else").await.unwrap();
        assert!(s.lock("k", ten).await.unwrap().is_none());
        s.unlock("k", &id).await.unwrap();
        let holder = s.lock("k", ten).await.unwrap();
        assert!(holder.is_some());
        assert_ne!(holder.as_deref(), Some(id.as_str()), "unique per taking");
        // The clock is real time plus what the test adds: leave real time a second to pass
        // between the taking and the check, however loaded the machine.
        clock.advance(Duration::from_secs(9));
        assert!(s.lock("k", ten).await.unwrap().is_none(), "not lapsed yet");
        clock.advance(Duration::from_secs(1));
        assert!(
            s.lock("k", ten).await.unwrap().is_some(),
            "a lapsed lock is free"
        );
    }

    #[tokio::test]
    async fn a_claim_is_won_once_until_it_lapses() {
        let clock = Clock::system();
        let s = MemoryStore::new(clock.clone());
        assert!(s.claim("k", Duration::from_secs(60)).await.unwrap());
        assert!(!s.claim("k", Duration::from_secs(60)).await.unwrap());
        assert_eq!(s.get_fact("k").await.unwrap().as_deref(), Some("1"));
        clock.advance(Duration::from_secs(60));
        assert!(
            s.claim("k", Duration::from_secs(60)).await.unwrap(),
            "lapsed"
        );
    }

    #[tokio::test]
    async fn several_facts_are_read_in_the_order_asked_each_with_its_own_life() {
        let clock = Clock::system();
        let s = MemoryStore::new(clock.clone());
        s.put_fact("f", "v", Duration::from_secs(600))
            .await
            .unwrap();
        s.put_fact("g", "w", Duration::from_secs(1200))
            .await
            .unwrap();
        assert_eq!(
            s.get_facts(&["other", "g", "f"]).await.unwrap(),
            vec![None, Some("w".into()), Some("v".into())]
        );
        clock.advance(Duration::from_secs(600));
        assert_eq!(
            s.get_facts(&["f", "g"]).await.unwrap(),
            vec![None, Some("w".into())],
            "one lapsed, one not"
        );
        assert!(s.get_facts(&[]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn facts_lapse_by_the_clock_and_are_swept() {
        let clock = Clock::system();
        let s = MemoryStore::new(clock.clone());
        s.put_fact("f", "v", Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(s.get_fact("f").await.unwrap().as_deref(), Some("v"));
        assert_eq!(s.get_fact("other").await.unwrap(), None);
        clock.advance(Duration::from_secs(600));
        assert_eq!(s.get_fact("f").await.unwrap(), None, "lapsed");
        for i in 0..SWEEP_EVERY {
            s.put_fact(&format!("n{i}"), "v", Duration::from_secs(1))
                .await
                .unwrap();
        }
        assert!(!s.facts.contains_key("f"), "swept");
        assert!(s.facts.len() as u64 <= SWEEP_EVERY);
    }
}
