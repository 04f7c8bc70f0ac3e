//! Records that something handed out earlier no longer opens (SPEC sections 18 and 21), kept
//! in the store so that every instance reads them. Sessions, bearer tokens and contact
//! tickets are sealed values, not server state: ending one early means remembering the time
//! it was ended, and refusing whatever was issued at or before that time.
//!
//! - a **member**: `revoked:member:{corp}:{userid}` — every session (cookie or bearer token)
//!   of that person issued up to the time it holds. Written by `change_contact/delete_user`;
//!   read whenever a session opens. Kept as long as the longest `ttl` a config may set (30
//!   days): nothing older is still open, whatever ttl sealed it.
//! - a **contact pair**: `revoked:contact:{digest of corp, member, contact}` — every page
//!   ticket of that (member, customer) issued up to its time. Written by `del_follow_user` /
//!   `del_external_contact`; read when a `WGW-Contact` ticket opens. Kept as long as a ticket
//!   lives.
//!
//! Each is a store fact (`Store::put_fact`, the same in every backend: a Redis key with a TTL,
//! a row of the local file, a memory entry) holding the time in Unix seconds, forgotten when
//! nothing it covers can still be open; a later revocation never gives way to an earlier one.

use sha2::{Digest, Sha256};
use std::time::Duration;

use wecom_api::{Store, StoreError};

/// The member record's key: `owner` is the corp id (or an Official Account's app id), `who`
/// the userid (or openid). Corp and userid cannot collide across the `:` (neither id has one).
///
/// This is the one API for ending a person's sessions, whatever carries them: the session
/// cookie's check ([`crate::login::revocation::is_revoked`]) reads this record, and so must
/// any other credential that stands for a member (a bearer token): refuse it when it was
/// issued at or before the time [`revoked_at`] returns for this key.
pub fn member_key(corp: &str, userid: &str) -> String {
    // Joined, not `format!`ted: a protected request builds it every time.
    ["revoked:member:", corp, ":", userid].concat()
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
/// until `at + keep_secs`. A record already holding a later time is left alone: an old event
/// applied again (the delivery worker repeats the endpoint's reaction) never reopens what a
/// newer one closed.
pub async fn record(
    store: &dyn Store,
    key: &str,
    at: u64,
    keep_secs: u64,
) -> Result<(), StoreError> {
    if let Some(existing) = store.get_fact(key).await? {
        if existing.parse::<u64>().is_ok_and(|t| t >= at) {
            return Ok(());
        }
    }
    let until_ms = at.saturating_add(keep_secs).saturating_mul(1000);
    let left = until_ms.saturating_sub(crate::clock::clock().now_ms());
    if left == 0 {
        // Nothing it covers is still open.
        return Ok(());
    }
    store
        .put_durable_fact(key, &at.to_string(), Duration::from_millis(left))
        .await
}

/// The time of the revocation `key` holds now, if any. A store that does not answer counts as
/// "none" (fail open): the fallback store still serves what this process wrote, and failing
/// closed would sign everyone out while Redis is down.
pub async fn revoked_at(store: &dyn Store, key: &str) -> Option<u64> {
    read(store, key).await?.parse().ok()
}

/// A record, read as records are ([`Store::get_facts`]: a fallback store answers one the
/// shared store lost from its own copy).
async fn read(store: &dyn Store, key: &str) -> Option<String> {
    store.get_facts(&[key]).await.ok()?.pop().flatten()
}

/// How far apart the instances' clocks may be: a session may say it was issued this far ahead
/// of the clock that reads it, and a member's record ends the sessions dated up to this far
/// after the `delete_user` (it is written so). A session stamped by an instance whose
/// clock runs 50 s fast would otherwise date itself after the `delete_user` that ended its
/// member, and outlive it everywhere. (A member deleted and added back within that minute
/// signs in once it is over.)
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Does a record's stored value (its time, as [`record`] writes it) end what was issued at
/// `issued_at`? For callers that read several records in one store call.
pub fn ends(record: Option<&str>, issued_at: u64) -> bool {
    record
        .and_then(|at| at.parse::<u64>().ok())
        .is_some_and(|at| issued_at <= at)
}

/// Was something issued at `issued_at` (Unix s) revoked by the record `key`?
pub async fn is_revoked(store: &dyn Store, key: &str, issued_at: u64) -> bool {
    let record = read(store, key).await;
    ends(record.as_deref(), issued_at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::MemoryStore;

    #[tokio::test]
    async fn a_record_refuses_what_was_issued_up_to_its_time_and_lapses() {
        let clock = crate::clock::clock();
        let store = MemoryStore::new(clock.clone());
        let now = clock.now_secs();
        let key = member_key("ww1", "zhangsan");
        assert!(!is_revoked(&store, &key, now - 10).await);
        record(&store, &key, now, 3600).await.unwrap();
        assert!(is_revoked(&store, &key, now - 10).await);
        assert!(is_revoked(&store, &key, now).await);
        assert!(!is_revoked(&store, &key, now + 1).await, "issued after");
        record(&store, &key, now - 100, 3600).await.unwrap();
        assert!(
            is_revoked(&store, &key, now - 10).await,
            "an earlier record never replaces a later one"
        );
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(!is_revoked(&store, &key, now - 10).await, "lapsed");
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
