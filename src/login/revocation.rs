//! Ending sessions before their `ttl` (SPEC sections 18 and 21). A session is a sealed cookie,
//! not server state, so ending one means remembering, in the store (shared by a cluster), that
//! it no longer opens:
//!
//! - `revoked:sid:{sid}` — one session, ended by `logout`, kept until that session's own end;
//! - `revoked:member:{corp or app id}:{userid or openid}` — every session of one person issued
//!   at or before the time it holds (section 18's `delete_user`), kept one `ttl`.
//!
//! Both are read when a session cookie opens. A store that does not answer counts as "not
//! revoked": the fallback store still serves what this process wrote, and failing closed
//! would sign everyone out while Redis is down.

use std::sync::Arc;

use super::session::SessionEntry;
use crate::provider::{Cached, Store};

pub fn session_key(sid: &str) -> String {
    format!("revoked:sid:{sid}")
}

/// The person a session is of: corp and userid (or openid) for WeCom, app id and openid for an
/// Official Account.
pub fn member_key(entry: &SessionEntry) -> Option<String> {
    let (owner, who) = match (&entry.wechat_app_id, &entry.corp_id) {
        (Some(app_id), _) => (app_id, entry.openid.as_ref()?),
        (None, Some(corp)) => (corp, entry.userid.as_ref().or(entry.openid.as_ref())?),
        (None, None) => return None,
    };
    Some(format!("revoked:member:{owner}:{who}"))
}

fn record(value: String, now_secs: u64, until_secs: u64) -> Cached {
    Cached {
        value: value.into(),
        fetched_at: now_secs.saturating_mul(1000),
        expires_at: until_secs.saturating_mul(1000),
    }
}

/// `logout`: this session no longer opens, on any instance.
pub async fn end_session(store: &Arc<dyn Store>, entry: &SessionEntry, now_secs: u64) {
    let Some(sid) = &entry.sid else { return };
    let until = entry.exp.max(now_secs + 1);
    if let Err(e) = store
        .set(&session_key(sid), &record("1".into(), now_secs, until))
        .await
    {
        tracing::warn!(error = %e, "session revocation not stored");
    }
}

/// Every session of `entry`'s person issued up to `now` no longer opens, for `ttl_secs`.
pub async fn end_member(store: &Arc<dyn Store>, member_key: &str, now_secs: u64, ttl_secs: u64) {
    let value = record(now_secs.to_string(), now_secs, now_secs + ttl_secs);
    if let Err(e) = store.set(member_key, &value).await {
        tracing::warn!(error = %e, "member revocation not stored");
    }
}

/// Was this session ended, by itself or with every session of its person?
pub async fn is_revoked(store: &Arc<dyn Store>, entry: &SessionEntry) -> bool {
    let by_sid = async {
        match &entry.sid {
            Some(sid) => matches!(store.get(&session_key(sid)).await, Ok(Some(c)) if current(&c)),
            None => false,
        }
    };
    let by_member = async {
        let Some(key) = member_key(entry) else {
            return false;
        };
        match store.get(&key).await {
            Ok(Some(c)) if current(&c) => c.value.parse::<u64>().is_ok_and(|at| entry.iat <= at),
            _ => false,
        }
    };
    let (a, b) = tokio::join!(by_sid, by_member);
    a || b
}

/// A record past its end is forgotten (the memory store keeps one until it tidies).
fn current(c: &Cached) -> bool {
    c.expires_at > crate::provider::now_ms()
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
    use crate::provider::MemoryStore;

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
            iat,
            exp: iat + 3600,
            contact: None,
        }
    }

    #[tokio::test]
    async fn a_session_ends_alone_and_a_member_with_every_earlier_session() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
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
}
