//! Records that something handed out earlier no longer opens (SPEC sections 18 and 21), kept
//! in the store so that every instance reads them. Sessions, bearer tokens and contact
//! tickets are sealed values, not server state: ending one early means remembering the time
//! it was ended, and refusing whatever was issued at or before that time.
//!
//! - a **member**: `revoked:member:{corp}:{userid}` — every session (cookie or bearer token)
//!   of that person issued up to the time it holds. Written by `change_contact/delete_user`;
//!   read whenever a session opens. Kept one session `ttl`: nothing older is still open.
//! - a **contact pair**: `revoked:contact:{digest of corp, member, contact}` — every page
//!   ticket of that (member, customer) issued up to its time. Written by `del_follow_user` /
//!   `del_external_contact`; read when a `WGW-Contact` ticket opens. Kept as long as a ticket
//!   lives.
//!
//! Each value is the time (Unix seconds) as a token-store entry whose `expires_at` is when it
//! may be forgotten; a later revocation never gives way to an earlier one.

use sha2::{Digest, Sha256};
use wecom_api::{Cached, Store, StoreError};

/// The member record's key. Corp and userid cannot collide across the `:` (a corp id has none).
pub fn member_key(corp: &str, userid: &str) -> String {
    format!("revoked:member:{corp}:{userid}")
}

/// The pair record's key: a digest, so that ids holding `:` never meet under one key.
pub fn contact_key(corp: &str, userid: &str, external_userid: &str) -> String {
    let mut h = Sha256::new();
    for part in [corp, userid, external_userid] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("revoked:contact:{}", hex::encode(&h.finalize()[..16]))
}

/// Records that whatever `key` covers, issued at or before `at` (Unix s), no longer opens,
/// until `at + keep_secs`. A record already holding a later time is left alone.
pub async fn record(
    store: &dyn Store,
    key: &str,
    at: u64,
    keep_secs: u64,
) -> Result<(), StoreError> {
    if let Some(existing) = store.get(key).await? {
        if existing.value.parse::<u64>().is_ok_and(|t| t >= at) {
            return Ok(());
        }
    }
    let value = Cached {
        value: at.to_string().into(),
        fetched_at: at.saturating_mul(1000),
        expires_at: at.saturating_add(keep_secs).saturating_mul(1000),
    };
    store.set(key, &value).await
}

/// The time of the revocation `key` holds now, if any. A store that does not answer counts as
/// "none" (fail open): the fallback store still serves what this process wrote, and failing
/// closed would sign everyone out while Redis is down.
pub async fn revoked_at(store: &dyn Store, key: &str, now_ms: u64) -> Option<u64> {
    match store.get(key).await {
        Ok(Some(c)) if c.expires_at > now_ms => c.value.parse().ok(),
        _ => None,
    }
}

/// Was something issued at `issued_at` (Unix s) revoked by the record `key`?
pub async fn is_revoked(store: &dyn Store, key: &str, issued_at: u64, now_ms: u64) -> bool {
    revoked_at(store, key, now_ms)
        .await
        .is_some_and(|at| issued_at <= at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::{Clock, MemoryStore};

    #[tokio::test]
    async fn a_record_refuses_what_was_issued_up_to_its_time_and_lapses() {
        let clock = Clock::system();
        let store = MemoryStore::new(clock.clone());
        let now = clock.now_secs();
        let key = member_key("ww1", "zhangsan");
        assert!(!is_revoked(&store, &key, now - 10, clock.now_ms()).await);
        record(&store, &key, now, 3600).await.unwrap();
        assert!(is_revoked(&store, &key, now - 10, clock.now_ms()).await);
        assert!(is_revoked(&store, &key, now, clock.now_ms()).await);
        assert!(
            !is_revoked(&store, &key, now + 1, clock.now_ms()).await,
            "issued after"
        );
        record(&store, &key, now - 100, 3600).await.unwrap();
        assert!(
            is_revoked(&store, &key, now - 10, clock.now_ms()).await,
            "an earlier record never replaces a later one"
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(
            !is_revoked(&store, &key, now - 10, clock.now_ms()).await,
            "lapsed"
        );
    }

    #[test]
    fn pair_keys_never_meet_across_separators() {
        assert_ne!(
            contact_key("ww1", "a:b", "c"),
            contact_key("ww1", "a", "b:c")
        );
        assert_ne!(contact_key("ww1", "ab", "c"), contact_key("ww1", "a", "bc"));
        assert_eq!(contact_key("ww1", "a", "b"), contact_key("ww1", "a", "b"));
    }
}
