//! Ending sessions before their `ttl` (SPEC sections 18 and 21). A session is a sealed cookie,
//! not server state, so ending one means remembering, in the store (shared by a cluster), that
//! it no longer opens:
//!
//! - `revoked:sid:{sid}` — one session, ended by `logout`, kept until that session's own end;
//! - `revoked:member:{corp or app id}:{userid or openid}` — every session of one person issued
//!   at or before the time it holds (section 18's `delete_user`), kept one `ttl`.
//!
//! Both are store facts, gone at the end of their life, read when a session cookie opens. A store that does not answer counts as "not
//! revoked": the fallback store still serves what this process wrote, and failing closed
//! would sign everyone out while Redis is down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wecom_api::Store;

use super::session::{Records, SessionEntry};

pub fn session_key(sid: &str) -> String {
    ["revoked:sid:", sid].concat()
}

/// The person a session is of: corp and userid (or openid) for WeCom, app id and openid for an
/// Official Account.
pub fn member_key(entry: &SessionEntry) -> Option<String> {
    let (owner, who) = match (&entry.wechat_app_id, &entry.corp_id) {
        (Some(app_id), _) => (app_id, entry.openid.as_ref()?),
        (None, Some(corp)) => (corp, entry.userid.as_ref().or(entry.openid.as_ref())?),
        (None, None) => return None,
    };
    // The record `change_contact/delete_user` writes (crate::revocation): one key format.
    Some(crate::revocation::member_key(owner, who))
}

/// `logout`: this session no longer opens, on any instance. `Err` when the shared store did
/// not keep that (a copy of the cookie would still open elsewhere, or here later).
pub async fn end_session(
    store: &Arc<dyn Store>,
    entry: &SessionEntry,
    now_secs: u64,
) -> Result<(), wecom_api::StoreError> {
    let Some(sid) = &entry.sid else { return Ok(()) };
    let left = Duration::from_secs(entry.exp.saturating_sub(now_secs).max(1));
    store
        .put_durable_fact(&session_key(sid), "1", left)
        .await
        .inspect_err(|e| {
            // Once a minute: each logout of a store refusing writes would log one more.
            if NOT_STORED.due((), crate::clock::clock().now_ms()) {
                tracing::warn!(error = %e, "session revocation not stored (logged once a minute)")
            }
        })
}

/// When a revocation the store refused was last logged.
static NOT_STORED: std::sync::LazyLock<wecom_api::Throttle<()>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// Every session of `entry`'s person issued up to `now` no longer opens, for `ttl_secs`.
pub async fn end_member(store: &Arc<dyn Store>, member_key: &str, now_secs: u64, ttl_secs: u64) {
    let ttl = Duration::from_secs(ttl_secs.max(1));
    if let Err(e) = store
        .put_durable_fact(member_key, &now_secs.to_string(), ttl)
        .await
    {
        tracing::warn!(error = %e, "member revocation not stored");
    }
}

/// Was this session ended, by itself, with every session of its person, or (a service
/// provider's app) with its corp's `cancel_auth`? Every record is read in one store call: a
/// protected request makes it each time, against Redis in a cluster.
pub async fn is_revoked(store: &Arc<dyn Store>, entry: &SessionEntry) -> bool {
    let asked = entry.revocation.get_or_init(|| records(entry));
    if asked.keys.is_empty() {
        return false;
    }
    // An in-process store written to by nothing since the last look has the same answer. Read
    // before the records: a write during the look changes the number, and the next request
    // looks again.
    let version = store.facts_version();
    if version.is_some_and(|v| asked.unrevoked_at.load(Ordering::Relaxed) == v) {
        return false;
    }
    let mut keys = [""; 3];
    for (k, key) in keys.iter_mut().zip(asked.keys.iter()) {
        *k = key;
    }
    // A store that does not answer counts as "not revoked" (the module's note says why).
    let Ok(found) = store.get_facts(&keys[..asked.keys.len()]).await else {
        return false;
    };
    let mut found = found.into_iter();
    let mut next = |asked: bool| if asked { found.next().flatten() } else { None };
    let ended_at = |record: Option<String>| crate::revocation::ends(record.as_deref(), entry.iat);
    // In the order the keys were listed.
    let sid = next(asked.sid).is_some();
    let member = ended_at(next(asked.member));
    let corp = ended_at(next(asked.corp));
    let revoked = sid || member || corp;
    if let (false, Some(v)) = (revoked, version) {
        asked.unrevoked_at.store(v, Ordering::Relaxed);
    }
    revoked
}

/// The records that can end `entry`, as [`Records`] keeps them.
fn records(entry: &SessionEntry) -> Records {
    let by_sid = entry.sid.as_deref().map(session_key);
    let by_member = member_key(entry);
    let by_corp = match (entry.installed, &entry.suite, &entry.corp_id) {
        (true, Some(suite), Some(corp)) => {
            Some(crate::suite::install::corp_revocation_key(suite, corp))
        }
        _ => None,
    };
    let (sid, member, corp) = (by_sid.is_some(), by_member.is_some(), by_corp.is_some());
    Records {
        keys: [by_sid, by_member, by_corp].into_iter().flatten().collect(),
        sid,
        member,
        corp,
        unrevoked_at: AtomicU64::new(0),
    }
}

/// `entries` without the revoked ones.
pub async fn live(store: &Arc<dyn Store>, entries: Vec<SessionEntry>) -> Vec<SessionEntry> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        if !is_revoked(store, &e).await {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::MemoryStore;

    fn member(iat: u64, sid: &str) -> SessionEntry {
        SessionEntry {
            app: "crm".into(),
            sid: Some(sid.into()),
            corp_id: Some("ww1".into()),
            agent_id: Some(1),
            userid: Some("zhangsan".into()),
            openid: None,
            wechat_app_id: None,
            unionid: None,
            open_userid: None,
            installed: false,
            suite: None,
            iat,
            exp: iat + 3600,
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }
    }

    /// A memory store that counts the fact reads reaching it; `versioned: false` hides its
    /// facts version, as a store shared by a cluster has none.
    struct Counting {
        inner: MemoryStore,
        versioned: bool,
        reads: std::sync::atomic::AtomicUsize,
    }

    fn counting(versioned: bool) -> Arc<Counting> {
        Arc::new(Counting {
            inner: MemoryStore::new(crate::clock::clock().clone()),
            versioned,
            reads: Default::default(),
        })
    }

    #[async_trait::async_trait]
    impl Store for Counting {
        async fn get(&self, key: &str) -> Result<Option<wecom_api::Cached>, wecom_api::StoreError> {
            self.inner.get(key).await
        }
        async fn set(
            &self,
            key: &str,
            value: &wecom_api::Cached,
        ) -> Result<(), wecom_api::StoreError> {
            self.inner.set(key, value).await
        }
        async fn expire_if(&self, key: &str, value: &str) -> Result<bool, wecom_api::StoreError> {
            self.inner.expire_if(key, value).await
        }
        async fn lock(
            &self,
            key: &str,
            ttl: Duration,
        ) -> Result<Option<String>, wecom_api::StoreError> {
            self.inner.lock(key, ttl).await
        }
        async fn unlock(&self, key: &str, id: &str) -> Result<(), wecom_api::StoreError> {
            self.inner.unlock(key, id).await
        }
        async fn get_fact(&self, key: &str) -> Result<Option<String>, wecom_api::StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.get_fact(key).await
        }
        async fn get_facts(
            &self,
            keys: &[&str],
        ) -> Result<Vec<Option<String>>, wecom_api::StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.get_facts(keys).await
        }
        async fn put_fact(
            &self,
            key: &str,
            value: &str,
            ttl: Duration,
        ) -> Result<(), wecom_api::StoreError> {
            self.inner.put_fact(key, value, ttl).await
        }
        async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, wecom_api::StoreError> {
            self.inner.claim(key, ttl).await
        }
        fn facts_version(&self) -> Option<u64> {
            self.inner.facts_version().filter(|_| self.versioned)
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }

    #[tokio::test]
    async fn an_unrevoked_answer_is_kept_until_the_in_process_store_is_written() {
        let counting = counting(true);
        let store: Arc<dyn Store> = counting.clone();
        let reads = || counting.reads.load(Ordering::SeqCst);
        let now = crate::login::now_secs();
        let a = member(now - 100, "a");
        assert!(!is_revoked(&store, &a).await);
        assert!(!is_revoked(&store, &a).await);
        assert_eq!(reads(), 1, "nothing written since the first look");
        // Any write may be a record of this session: the next request looks again.
        store
            .put_fact("unrelated", "1", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(!is_revoked(&store, &a).await);
        assert_eq!(reads(), 2);
        end_session(&store, &a, now).await.unwrap();
        assert!(is_revoked(&store, &a).await);
        assert!(is_revoked(&store, &a).await);
        assert_eq!(reads(), 4, "an ended session is never taken from memory");
        // Another in-process store never shares a version with this one.
        let other: Arc<dyn Store> = Arc::new(MemoryStore::new(crate::clock::clock().clone()));
        let b = member(now - 100, "b");
        assert!(!is_revoked(&store, &b).await);
        end_session(&other, &b, now).await.unwrap();
        assert!(is_revoked(&other, &b).await);
    }

    #[tokio::test]
    async fn a_shared_store_is_asked_on_every_request() {
        let counting = counting(false);
        let store: Arc<dyn Store> = counting.clone();
        let a = member(crate::login::now_secs() - 100, "a");
        for _ in 0..3 {
            assert!(!is_revoked(&store, &a).await);
        }
        assert_eq!(counting.reads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_session_ends_alone_and_a_member_with_every_earlier_session() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(crate::clock::clock().clone()));
        let now = crate::login::now_secs();
        let (a, b) = (member(now - 100, "a"), member(now - 50, "b"));
        assert!(!is_revoked(&store, &a).await);
        end_session(&store, &a, now).await.unwrap();
        assert!(is_revoked(&store, &a).await);
        assert!(
            !is_revoked(&store, &b).await,
            "another session of the member"
        );
        end_member(&store, &member_key(&b).unwrap(), now - 10, 3600).await;
        assert!(is_revoked(&store, &b).await);
        assert!(!is_revoked(&store, &member(now, "c")).await, "issued after");
        let mut wechat = member(now - 100, "w");
        wechat.wechat_app_id = Some("wx1".into());
        wechat.openid = Some("o1".into());
        assert_eq!(member_key(&wechat).unwrap(), "revoked:member:wx1:o1");
        assert!(!is_revoked(&store, &wechat).await);
    }

    /// The records are read together; each still decides alone, whichever others exist.
    #[tokio::test]
    async fn an_installed_apps_session_ends_with_its_corp_and_each_record_counts_alone() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(crate::clock::clock().clone()));
        let now = crate::login::now_secs();
        let mut installed = member(now - 100, "i");
        installed.installed = true;
        installed.suite = Some("wwsuite1".into());
        installed.sid = None;
        let corp = crate::suite::install::corp_revocation_key("wwsuite1", "ww1");
        let member_record = member_key(&installed).unwrap();
        assert!(!is_revoked(&store, &installed).await);
        // A member record older than the session does not end it; the corp's then does.
        crate::revocation::record(&*store, &member_record, now - 200, 3600)
            .await
            .unwrap();
        assert!(!is_revoked(&store, &installed).await);
        crate::revocation::record(&*store, &corp, now - 10, 3600)
            .await
            .unwrap();
        assert!(is_revoked(&store, &installed).await);
        // The record is the suite's: a session of the suite under another app name (two apps
        // naming it, or the app renamed since) ends with it too; another suite's does not.
        let renamed = SessionEntry {
            app: "portal".into(),
            ..installed.clone()
        };
        assert!(is_revoked(&store, &renamed).await);
        let other_suite = SessionEntry {
            suite: Some("wwsuite2".into()),
            ..installed.clone()
        };
        assert!(!is_revoked(&store, &other_suite).await);
        // Not installed: the corp's record is not this session's.
        let mut own = installed.clone();
        own.installed = false;
        assert!(!is_revoked(&store, &own).await);
        // With a sid and no record of it, the member's record still decides. (A changed entry
        // is a new one: what was worked out for `own` stays with it.)
        let with_sid = SessionEntry {
            sid: Some("s".into()),
            ..own.clone()
        };
        crate::revocation::record(&*store, &member_record, now - 50, 3600)
            .await
            .unwrap();
        assert!(is_revoked(&store, &with_sid).await);
        let later = SessionEntry {
            iat: now - 20,
            ..with_sid.clone()
        };
        assert!(!is_revoked(&store, &later).await, "issued after the record");
        // Neither userid nor openid: nothing to look up.
        let nobody = SessionEntry {
            sid: None,
            corp_id: None,
            userid: None,
            ..member(now, "n")
        };
        assert!(!is_revoked(&store, &nobody).await);
    }
}
