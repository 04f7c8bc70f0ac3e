//! The cache against fake fetches and the memory store: single flight in a process and across
//! processes sharing a store, refusals, compare-and-expire, background refresh. Time moves by
//! the clock, not by sleeping.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::*;
use crate::fetch::Fetched;
use crate::observe::Unobserved;
use crate::store::MemoryStore;
use crate::{AppTargets, Credentials, Secret};

const TTL: Duration = Duration::from_secs(10);

fn target(corp: &str) -> TokenTarget {
    let creds = Credentials::Wecom {
        corp_id: corp.into(),
        agent_id: 1,
        secret: Secret::new("s".into()),
        contact_secret: None,
    };
    AppTargets::new("crm", "http://e", &creds).access().clone()
}

/// A fetch handing out `v1`, `v2`, ... after a short pause (the provider's latency, so that
/// waiters pile up), counting its calls. Corps in `refuse` get their errcode instead; queued
/// answers go first.
/// A [`Fake`] refusal that is no errcode: an answer that cannot be read.
const UNREADABLE: i64 = i64::MIN;

#[derive(Default)]
struct Fake {
    calls: AtomicUsize,
    refuse: HashMap<&'static str, i64>,
    queued: Mutex<VecDeque<Fetched>>,
}

impl Fake {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The next fetch answers `value`, living `expires_in` seconds.
    fn answer(&self, value: &str, expires_in: u64) {
        self.queued.lock().unwrap().push_back(Fetched {
            value: value.into(),
            expires_in,
        });
    }
}

impl Fetch for Arc<Fake> {
    type Target = TokenTarget;

    fn fetch(
        &self,
        target: &TokenTarget,
    ) -> impl Future<Output = Result<Fetched, ApiError>> + Send + 'static {
        let fake = self.clone();
        let owner = target.owner().to_owned();
        async move {
            let n = fake.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
            if let Some(errcode) = fake.refuse.get(owner.as_str()) {
                // An answer that is no provider's (an HTML page of a front or a proxy).
                if *errcode == UNREADABLE {
                    return Err(ApiError::BadAnswer("an HTML page".into()));
                }
                return Err(ApiError::Api {
                    errcode: *errcode,
                    errmsg: "refused".into(),
                });
            }
            let queued = fake.queued.lock().unwrap().pop_front();
            Ok(queued.unwrap_or(Fetched {
                value: format!("v{n}"),
                expires_in: 7200,
            }))
        }
    }
}

fn cache(store: Arc<dyn Store>, fake: &Arc<Fake>, clock: &Clock) -> TokenCache<Arc<Fake>> {
    TokenCache::new(
        store,
        fake.clone(),
        clock.clone(),
        TTL,
        Arc::new(Unobserved),
    )
}

fn memory(clock: &Clock) -> Arc<dyn Store> {
    Arc::new(MemoryStore::new(clock.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_one_fetch_for_many_waiters() {
    let clock = Clock::system();
    let fake = Arc::new(Fake::default());
    let cache = cache(memory(&clock), &fake, &clock);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move { cache.get(&target("ww")).await }));
    }
    for t in tasks {
        assert_eq!(&*t.await.unwrap().unwrap(), "v1");
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_a_store_fetch_once_between_them() {
    // Three caches over one store stand for three gateway processes over one Redis.
    let clock = Clock::system();
    let store = memory(&clock);
    let fake = Arc::new(Fake::default());
    let caches: Vec<_> = (0..3)
        .map(|_| cache(store.clone(), &fake, &clock))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let cache = caches[i % 3].clone();
        tasks.push(tokio::spawn(async move { cache.get(&target("ww")).await }));
    }
    for t in tasks {
        assert_eq!(&*t.await.unwrap().unwrap(), "v1");
    }
    assert_eq!(fake.calls(), 1);
}

/// A memory store that tells when a lock was asked for and refused, and counts the token reads
/// that reach it.
#[derive(Default)]
struct Spy {
    inner: MemoryStore,
    refused: AtomicUsize,
    asked: Notify,
    gets: AtomicUsize,
}

#[async_trait]
impl Store for Spy {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.inner.set(key, value).await
    }
    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        self.inner.expire_if(key, value).await
    }
    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let id = self.inner.lock(key, ttl).await?;
        if id.is_none() {
            self.refused.fetch_add(1, Ordering::SeqCst);
            self.asked.notify_waiters();
        }
        Ok(id)
    }
    async fn unlock(&self, key: &str, id: &str) -> Result<(), StoreError> {
        self.inner.unlock(key, id).await
    }
    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_fact(key).await
    }
    async fn put_fact(&self, key: &str, v: &str, ttl: Duration) -> Result<(), StoreError> {
        self.inner.put_fact(key, v, ttl).await
    }
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.claim(key, ttl).await
    }
    fn tokens_version(&self) -> Option<u64> {
        self.inner.tokens_version()
    }
    fn name(&self) -> &'static str {
        "spy"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lock_is_waited_out_then_one_process_fetches() {
    let clock = Clock::system();
    let spy = Arc::new(Spy {
        inner: MemoryStore::new(clock.clone()),
        ..Spy::default()
    });
    let store: Arc<dyn Store> = spy.clone();
    // A process took the lock and died: nobody releases it.
    let t = target("ww");
    store.lock(t.key(), TTL).await.unwrap().unwrap();
    let fake = Arc::new(Fake::default());
    let (a, b) = (
        cache(store.clone(), &fake, &clock),
        cache(store.clone(), &fake, &clock),
    );
    let waiting = spy.refused.load(Ordering::SeqCst);
    let (ta, tb) = (t.clone(), t.clone());
    let x = tokio::spawn(async move { a.get(&ta).await });
    let y = tokio::spawn(async move { b.get(&tb).await });
    // Both processes found the lock held, and keep asking.
    while spy.refused.load(Ordering::SeqCst) < waiting + 4 {
        spy.asked.notified().await;
    }
    assert_eq!(
        fake.calls(),
        0,
        "nobody fetches while the holder's lock lives"
    );
    clock.advance(TTL);
    let (x, y) = (x.await.unwrap().unwrap(), y.await.unwrap().unwrap());
    assert_eq!((&*x, &*y), ("v1", "v1"));
    assert_eq!(
        fake.calls(),
        1,
        "once it lapsed, one of them fetched for both"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_gets_the_one_fetch_error() {
    let clock = Clock::system();
    let fake = Arc::new(Fake {
        refuse: HashMap::from([("ww", 40001)]),
        ..Fake::default()
    });
    let cache = cache(memory(&clock), &fake, &clock);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move { cache.get(&target("ww")).await }));
    }
    for t in tasks {
        match t.await.unwrap() {
            Err(ApiError::Api { errcode: 40001, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn a_refused_fetch_is_held_back_for_a_while_and_busy_is_not() {
    let clock = Clock::system();
    let fake = Arc::new(Fake {
        refuse: HashMap::from([("bad-secret", 40001), ("busy", -1)]),
        ..Fake::default()
    });
    let cache = cache(memory(&clock), &fake, &clock);
    for _ in 0..5 {
        let r = cache.get(&target("bad-secret")).await;
        assert!(matches!(r, Err(ApiError::Api { errcode: 40001, .. })));
    }
    assert_eq!(fake.calls(), 1, "a bad secret is asked once");
    clock.advance(REFUSAL_HOLD);
    let _ = cache.get(&target("bad-secret")).await;
    assert_eq!(fake.calls(), 2, "and again once the hold is over");

    for _ in 0..3 {
        let _ = cache.get(&target("busy")).await;
    }
    assert_eq!(fake.calls(), 5, "system busy may pass: asked again");
}

/// A refusal holds for its ten seconds from when it came, and not for the size of a step
/// back of the clock (NTP) taken meanwhile.
#[test]
fn a_refusal_holds_from_when_it_came_and_not_past_a_clock_stepped_back() {
    let hold = REFUSAL_HOLD.as_millis() as u64;
    assert!(super::held(4_000_000, 4_000_000, hold));
    assert!(super::held(4_000_000 + hold - 1, 4_000_000, hold));
    assert!(!super::held(4_000_000 + hold, 4_000_000, hold));
    assert!(
        !super::held(4_000_000 - 3_600_000, 4_000_000, hold),
        "an hour back"
    );
}

#[tokio::test]
async fn stale_failure_after_a_refresh_keeps_the_new_token() {
    let clock = Clock::system();
    let fake = Arc::new(Fake::default());
    let cache = cache(memory(&clock), &fake, &clock);
    let t = target("ww");
    let v1 = cache.get(&t).await.unwrap();
    // The first failure with v1 expires it; the refresh brings v2.
    assert!(cache.expire_if(&t, &v1).await.unwrap());
    let v2 = cache.get(&t).await.unwrap();
    assert_eq!(&*v2, "v2");
    // A late failure, also made with v1, must leave v2 alone.
    assert!(!cache.expire_if(&t, &v1).await.unwrap());
    assert_eq!(&*cache.get(&t).await.unwrap(), "v2");
    assert_eq!(
        &*cache.replace(&t, &v1, "/cgi-bin/user/get").await.unwrap(),
        "v2"
    );
    assert_eq!(fake.calls(), 2);
}

/// An API refusing every token (a fault, a wrong handle), WeCom handing the same token back
/// while it is valid: the first refusal replaces it (a token WeCom dropped early gets its new
/// one), the next ones keep what that brought rather than fetching again per call (the daily
/// gettoken quota, and with it every API of the app, would go); after `REPLACE_AFTER`, one
/// refusal replaces it again. Concurrent refusals wait for the one replacement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_refused_again_after_its_replacement_is_not_fetched_again_per_call() {
    let clock = Clock::system();
    let fake = Arc::new(Fake::default());
    let cache = cache(memory(&clock), &fake, &clock);
    let t = target("ww");
    fake.answer("same", 7200);
    fake.answer("same", 7200);
    fake.answer("same", 7200);
    let same = cache.get(&t).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (cache, t, same) = (cache.clone(), t.clone(), same.clone());
        tasks.push(tokio::spawn(async move {
            cache.replace(&t, &same, "/cgi-bin/user/get").await
        }));
    }
    for task in tasks {
        assert_eq!(&*task.await.unwrap().unwrap(), "same");
    }
    assert_eq!(fake.calls(), 2, "one replacement for a hundred refusals");
    for _ in 0..20 {
        assert_eq!(
            &*cache.replace(&t, &same, "/cgi-bin/user/get").await.unwrap(),
            "same"
        );
    }
    assert_eq!(fake.calls(), 2, "and none for the refusals after it");
    clock.advance(super::REPLACE_AFTER);
    assert_eq!(
        &*cache.replace(&t, &same, "/cgi-bin/user/get").await.unwrap(),
        "same"
    );
    assert_eq!(fake.calls(), 3, "one per while");
    // A value that did change: the refusals of the old one all get the new one, fetched once.
    let mut tasks = Vec::new();
    clock.advance(super::REPLACE_AFTER);
    for _ in 0..100 {
        let (cache, t, same) = (cache.clone(), t.clone(), same.clone());
        tasks.push(tokio::spawn(async move {
            cache.replace(&t, &same, "/cgi-bin/user/get").await
        }));
    }
    for task in tasks {
        assert_eq!(&*task.await.unwrap().unwrap(), "v4");
    }
    assert_eq!(fake.calls(), 4);
}

/// One API refusing every token holds back no other: a refusal of the same value by another
/// API (WeCom dropped it early, after a false refusal replaced it with itself) replaces it at
/// once. And a claim whose holder never said it was done (its process gone) holds the others
/// only for their wait: then they replace it themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_apis_refusal_replaces_at_once_and_a_dead_claim_holds_a_moment_only() {
    let clock = Clock::system();
    let fake = Arc::new(Fake::default());
    let store = memory(&clock);
    let cache = cache(store.clone(), &fake, &clock);
    let t = target("ww");
    fake.answer("same", 7200);
    fake.answer("same", 7200);
    let same = cache.get(&t).await.unwrap();
    // A fault of user/get: replaced once, by the same value.
    assert_eq!(
        &*cache.replace(&t, &same, "/cgi-bin/user/get").await.unwrap(),
        "same"
    );
    assert_eq!(
        &*cache.replace(&t, &same, "/cgi-bin/user/get").await.unwrap(),
        "same"
    );
    assert_eq!(fake.calls(), 2);
    // WeCom drops it: another API's refusal replaces it now.
    let v3 = cache
        .replace(&t, &same, "/cgi-bin/message/send")
        .await
        .unwrap();
    assert_eq!(&*v3, "v3");
    assert_eq!(fake.calls(), 3);

    // A replacer that claimed v3 for department/list and died.
    let claim = format!("replacing:{}:{}:1", t.key(), super::fingerprint(&v3, ""));
    assert!(store.claim(&claim, Duration::from_secs(10)).await.unwrap());
    let started = std::time::Instant::now();
    let v4 = cache
        .replace(&t, &v3, "/cgi-bin/department/list")
        .await
        .unwrap();
    assert_eq!(&*v4, "v4");
    assert!(
        started.elapsed() >= super::REPLACEMENT_WAIT,
        "waited for the claim's holder first"
    );
    assert_eq!(fake.calls(), 4);
}

/// The caller names the API path: refusals of one value by a hundred paths (an API faulty for
/// every token, or paths made up to burn the quota) replace it twice at most in the while, the
/// second time for another API than the first's (a value WeCom dropped right after a false
/// refusal), not once per path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_many_apis_replace_a_value_handed_back_twice_at_most() {
    let clock = Clock::system();
    let fake = Arc::new(Fake::default());
    let cache = cache(memory(&clock), &fake, &clock);
    let t = target("ww");
    for _ in 0..3 {
        fake.answer("same", 7200);
    }
    let same = cache.get(&t).await.unwrap();
    for i in 0..50 {
        let path = format!("/cgi-bin/made/up/{i}");
        assert_eq!(&*cache.replace(&t, &same, &path).await.unwrap(), "same");
    }
    assert_eq!(fake.calls(), 3, "the value, and two replacements");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (cache, t, same) = (cache.clone(), t.clone(), same.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .replace(&t, &same, &format!("/cgi-bin/other/{i}"))
                .await
        }));
    }
    for task in tasks {
        assert_eq!(&*task.await.unwrap().unwrap(), "same");
    }
    assert_eq!(fake.calls(), 3, "none for concurrent ones either");
    // After the while: again twice at most, also when they come at once.
    clock.advance(super::REPLACE_AFTER);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (cache, t, same) = (cache.clone(), t.clone(), same.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .replace(&t, &same, &format!("/cgi-bin/third/{i}"))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert!(fake.calls() <= 5, "{} gettokens", fake.calls());
}

/// A gettoken answered "too often" (45009) or "too many at once" (45033) is not asked again
/// by every call that follows: the limit would only be pressed harder.
#[tokio::test]
async fn a_fetch_over_the_providers_limit_is_held_back() {
    let clock = Clock::system();
    let fake = Arc::new(Fake {
        refuse: HashMap::from([("often", 45009), ("many", 45033)]),
        ..Fake::default()
    });
    let cache = cache(memory(&clock), &fake, &clock);
    for corp in ["often", "many"] {
        for _ in 0..5 {
            assert!(cache.get(&target(corp)).await.is_err());
        }
    }
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn stale_value_served_while_refreshed_in_background() {
    let clock = Clock::system();
    let store = memory(&clock);
    let fake = Arc::new(Fake::default());
    let cache = cache(store.clone(), &fake, &clock);
    let t = target("ww");
    assert_eq!(&*cache.get(&t).await.unwrap(), "v1");
    // Into the last 300 s of its 7200 s.
    clock.advance(Duration::from_secs(7200 - 299));
    assert_eq!(
        &*cache.get(&t).await.unwrap(),
        "v1",
        "the request does not wait for the refresh"
    );
    // The refresh runs in its own task; its value lands in the store.
    let fresh = loop {
        let c = store.get(t.key()).await.unwrap().unwrap();
        if &*c.value != "v1" {
            break c;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(&*fresh.value, "v2");
    assert_eq!(&*cache.get(&t).await.unwrap(), "v2");
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn an_early_refresh_that_gets_the_same_value_back_keeps_its_expiry() {
    let clock = Clock::system();
    let store = memory(&clock);
    let fake = Arc::new(Fake::default());
    let cache = cache(store.clone(), &fake, &clock);
    let t = target("ww");
    fake.answer("same", 120);
    cache.get(&t).await.unwrap();
    let dies = store.get(t.key()).await.unwrap().unwrap().expires_at;
    // 250 ms before it dies WeCom answers with the same ticket, its time left rounded up.
    clock.advance(Duration::from_millis(119_750));
    fake.answer("same", 1);
    assert_eq!(&*cache.refresh(&t).await.unwrap().value, "same");
    let kept = store.get(t.key()).await.unwrap().unwrap();
    assert_eq!(kept.expires_at, dies, "not postponed by the rounding");

    // Once it died, WeCom issues another: its own expiry counts.
    clock.advance(Duration::from_millis(250));
    assert_eq!(&*cache.get(&t).await.unwrap(), "v3");
    let answered = clock.now_ms();
    let c = store.get(t.key()).await.unwrap().unwrap();
    assert_eq!(c.expires_at, c.fetched_at + 7_200_000);
    // Its 7200 s count from when the request left, not from the answer 30 ms later: WeCom's
    // countdown had started before the answer arrived.
    assert!(
        answered - c.fetched_at >= 30,
        "counted from {} ms before the answer",
        answered - c.fetched_at
    );
    assert_eq!(fake.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refresh_answered_after_the_value_died_is_not_served() {
    let clock = Clock::system();
    let store = memory(&clock);
    let fake = Arc::new(Fake::default());
    let cache = cache(store.clone(), &fake, &clock);
    let t = target("ww");
    fake.answer("same", 120);
    cache.get(&t).await.unwrap();
    let dies = store.get(t.key()).await.unwrap().unwrap().expires_at;
    // 100 ms before it dies an early refresh asks; WeCom, for which it still lives, hands the
    // same value back, but the answer takes 30 ms.
    clock.advance(Duration::from_millis(dies - clock.now_ms() - 100));
    fake.answer("same", 1);
    let early = {
        let cache = cache.clone();
        let t = t.clone();
        tokio::spawn(async move { cache.refresh(&t).await })
    };
    while fake.calls() < 2 {
        tokio::task::yield_now().await;
    }
    // The value dies while the answer is on its way; a request now joins that refresh.
    clock.advance(Duration::from_millis(200));
    assert_eq!(
        &*cache.get(&t).await.unwrap(),
        "v3",
        "the value the early refresh brought back is dead"
    );
    early.await.unwrap().unwrap();
    assert_eq!(fake.calls(), 3);
}

/// A memory store whose next `set` waits, once armed, until released: a slow disk.
struct SlowWrite {
    inner: MemoryStore,
    armed: std::sync::atomic::AtomicBool,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl Store for SlowWrite {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.set(key, value).await
    }
    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        self.inner.expire_if(key, value).await
    }
    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        self.inner.lock(key, ttl).await
    }
    async fn unlock(&self, key: &str, id: &str) -> Result<(), StoreError> {
        self.inner.unlock(key, id).await
    }
    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_fact(key).await
    }
    async fn put_fact(&self, key: &str, v: &str, ttl: Duration) -> Result<(), StoreError> {
        self.inner.put_fact(key, v, ttl).await
    }
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.inner.claim(key, ttl).await
    }
    fn name(&self) -> &'static str {
        "slow-write"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_joining_an_early_refresh_that_ends_after_the_expiry_gets_a_live_value() {
    // The early refresh fetches 100 ms before the value dies and WeCom hands back the same
    // value; its store write is slow and ends after the death. A request that joined that
    // refresh must not be given the dead value.
    let clock = Clock::system();
    let slow = Arc::new(SlowWrite {
        inner: MemoryStore::new(clock.clone()),
        armed: std::sync::atomic::AtomicBool::new(false),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let fake = Arc::new(Fake::default());
    let cache = cache(slow.clone(), &fake, &clock);
    let t = target("ww");
    for _ in 0..2 {
        fake.queued.lock().unwrap().push_back(Fetched {
            value: "same".into(),
            expires_in: 100,
        });
    }
    assert_eq!(&*cache.get(&t).await.unwrap(), "same");
    clock.advance(Duration::from_millis(99_900));
    slow.armed.store(true, Ordering::SeqCst);
    let entered = slow.entered.notified();
    assert_eq!(&*cache.get(&t).await.unwrap(), "same", "stale, still valid");
    entered.await;
    // The refresh fetched and is writing; the value dies meanwhile.
    clock.advance(Duration::from_millis(200));
    let s2 = slow.clone();
    tokio::spawn(async move {
        // Once the request below has joined the refresh (it does so at once).
        tokio::time::sleep(Duration::from_millis(50)).await;
        s2.release.notify_one();
    });
    assert_eq!(&*cache.get(&t).await.unwrap(), "v3");
    assert_eq!(fake.calls(), 3);
}

#[tokio::test]
async fn a_thread_uses_its_copy_of_a_fresh_token_until_the_store_changes() {
    let clock = Clock::system();
    let reads = Arc::new(Spy {
        inner: MemoryStore::new(clock.clone()),
        ..Spy::default()
    });
    let gets = || reads.gets.load(Ordering::SeqCst);
    let fake = Arc::new(Fake::default());
    let cache = cache(reads.clone(), &fake, &clock);
    let t = target("ww");
    assert_eq!(&*cache.get(&t).await.unwrap(), "v1");
    assert_eq!(&*cache.get(&t).await.unwrap(), "v1");
    let after_first = gets();
    assert_eq!(&*cache.get(&t).await.unwrap(), "v1");
    assert_eq!(gets(), after_first, "the thread's copy, no store read");
    // A failure with v1 expires it: the copy is not used again.
    assert!(cache.expire_if(&t, "v1").await.unwrap());
    assert_eq!(&*cache.get(&t).await.unwrap(), "v2");
    assert!(gets() > after_first);
    // Another process of the cluster (here: the store written directly) replaces it.
    let far = clock.now_ms() + 3_600_000;
    let other = Cached {
        value: "from-elsewhere".into(),
        fetched_at: clock.now_ms(),
        expires_at: far,
    };
    reads.set(t.key(), &other).await.unwrap();
    assert_eq!(&*cache.get(&t).await.unwrap(), "from-elsewhere");
    // A copy that is no longer fresh is not used: the store decides (stale: served while one
    // refresh runs).
    let before = gets();
    clock.advance(Duration::from_secs(3600 - 299));
    assert_eq!(&*cache.get(&t).await.unwrap(), "from-elsewhere");
    assert!(gets() > before, "read from the store once stale");
}

/// A value refused for good (a bad secret, an API not allowed for the app: 48002) is not asked
/// for again by every request for a few seconds, nor one whose answer cannot be read (an HTML
/// page of WeCom's front or an egress proxy, which every wave of waiting requests would
/// otherwise ask again); a passing failure (-1) is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_for_good_is_held_back_a_passing_failure_is_not() {
    let clock = Clock::system();
    for (errcode, asked) in [(40001, 1), (48002, 1), (UNREADABLE, 1), (-1, 3)] {
        let fake = Arc::new(Fake {
            refuse: HashMap::from([("ww", errcode)]),
            ..Fake::default()
        });
        let cache = cache(memory(&clock), &fake, &clock);
        for _ in 0..3 {
            assert!(cache.get(&target("ww")).await.is_err());
        }
        assert_eq!(fake.calls(), asked, "errcode {errcode}");
    }
}
