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

/// `logout`: this session no longer opens, on any instance.
pub async fn end_session(store: &Arc<dyn Store>, entry: &SessionEntry, now_secs: u64) {
    let Some(sid) = &entry.sid else { return };
    let left = Duration::from_secs(entry.exp.saturating_sub(now_secs).max(1));
    if let Err(e) = store.put_fact(&session_key(sid), "1", left).await {
        tracing::warn!(error = %e, "session revocation not stored");
    }
}

/// Every session of `entry`'s person issued up to `now` no longer opens, for `ttl_secs`.
pub async fn end_member(store: &Arc<dyn Store>, member_key: &str, now_secs: u64, ttl_secs: u64) {
    let ttl = Duration::from_secs(ttl_secs.max(1));
    if let Err(e) = store.put_fact(member_key, &now_secs.to_string(), ttl).await {
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
    sid || member || corp
}

/// The records that can end `entry`, as [`Records`] keeps them.
fn records(entry: &SessionEntry) -> Records {
    let by_sid = entry.sid.as_deref().map(session_key);
    let by_member = member_key(entry);
    let by_corp = match (entry.installed, &entry.corp_id) {
        (true, Some(corp)) => Some(crate::suite::install::corp_revocation_key(&entry.app, corp)),
        _ => None,
    };
    let (sid, member, corp) = (by_sid.is_some(), by_member.is_some(), by_corp.is_some());
    Records {
        keys: [by_sid, by_member, by_corp].into_iter().flatten().collect(),
        sid,
        member,
        corp,
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
            iat,
            exp: iat + 3600,
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }
    }

    #[tokio::test]
    async fn a_session_ends_alone_and_a_member_with_every_earlier_session() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new(crate::clock::clock().clone()));
        let now = crate::login::now_secs();
        let (a, b) = (member(now - 100, "a"), member(now - 50, "b"));
        assert!(!is_revoked(&store, &a).await);
        end_session(&store, &a, now).await;
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
        installed.sid = None;
        let corp = crate::suite::install::corp_revocation_key("crm", "ww1");
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
