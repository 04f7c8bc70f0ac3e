//! The gateway's own reactions to events (SPEC section 18), written to the store where every
//! instance reads them: [`crate::revocation`] records and the contact cache. Idempotent: the
//! endpoint applies them before queueing and the delivery worker again before forwarding,
//! with the same time ([`super::event::acted_at`]: when the event happened, never later than
//! its arrival), so applying twice, or a replay, changes nothing.

use wecom_api::{Store, StoreError};

use super::event::Reaction;
use crate::jssdk::contact::TICKET_TTL_SECS;
use crate::jssdk::contact_cache::ContactCache;
use crate::revocation;

/// How long a record that ends sessions (a removed member's, a removed corp's, a dropped
/// contact's) is kept: the longest `ttl` a config may give a session
/// ([`crate::config::model::MAX_SESSION_TTL`]), after which nothing it covers is still open.
/// Not the running config's: a session carries its issue time and is held to the running
/// `ttl`, so one sealed under 8 h by an earlier process, or by another instance on the same
/// Redis, opens again under a later 8 h; a record kept for a shorter ttl of the moment would
/// have lapsed by then. Such records are few (a removal is rare) and small.
pub fn revocations_kept_secs() -> u64 {
    crate::config::model::MAX_SESSION_TTL.as_secs()
}

/// Applies `r` as of `at` (Unix s, [`super::event::acted_at`]).
pub async fn apply(
    store: &dyn Store,
    r: &Reaction,
    at: u64,
    kept_secs: u64,
) -> Result<(), StoreError> {
    match r {
        Reaction::EndMember { corp, userid } => {
            let key = revocation::member_key(corp, userid);
            // Also what an instance whose clock runs ahead dated later.
            let until = at.saturating_add(revocation::CLOCK_SKEW_SECS);
            revocation::record(store, &key, until, kept_secs).await?;
        }
        Reaction::DropContact {
            corp,
            userid,
            external_userid,
        } => {
            ContactCache::new(store)
                .forget(corp, userid, external_userid)
                .await?;
            // Kept while anything verified before it may still be presented: a page ticket,
            // or the current contact a session cookie carries.
            let key = revocation::contact_key(corp, userid, external_userid);
            let keep = TICKET_TTL_SECS.max(kept_secs);
            revocation::record(store, &key, at, keep).await?;
        }
    }
    Ok(())
}

/// The log line of `r`, said once: where its event is first queued (it is applied again on
/// WeCom's retries and before the delivery, and says nothing new then).
pub fn tell(r: &Reaction) {
    match r {
        Reaction::EndMember { corp, userid } => {
            tracing::info!(
                corp,
                userid,
                "member removed: every session issued so far ends"
            )
        }
        Reaction::DropContact {
            corp,
            userid,
            external_userid,
        } => tracing::info!(
            corp,
            userid,
            external_userid,
            "contact removed: its verification is dropped and its page tickets refuse"
        ),
    }
}
