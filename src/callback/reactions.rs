//! The gateway's own reactions to events (SPEC section 18), written to the store where every
//! instance reads them: [`crate::revocation`] records and the contact cache. Idempotent: the
//! endpoint applies them before queueing and the delivery worker again before forwarding,
//! with the same time ([`super::event::acted_at`]: when the event happened, never later than
//! its arrival), so applying twice, or a replay, changes nothing.

use wecom_api::{Store, StoreError};

use super::event::Reaction;
use crate::config::model::Config;
use crate::jssdk::contact::TICKET_TTL_SECS;
use crate::jssdk::contact_cache::ContactCache;
use crate::revocation;

/// Sessions live at most this long (the default `[session] ttl`), when no session is set.
const DEFAULT_SESSION_TTL_SECS: u64 = 8 * 3600;

/// How long a member record is kept: one session lifetime, after which nothing it covers is
/// still open anyway.
pub fn session_ttl(config: &Config) -> u64 {
    config
        .session
        .as_ref()
        .map_or(DEFAULT_SESSION_TTL_SECS, |s| s.ttl.as_secs())
}

/// Applies `r` as of `at` (Unix s, [`super::event::acted_at`]).
pub async fn apply(
    store: &dyn Store,
    r: &Reaction,
    at: u64,
    session_ttl_secs: u64,
) -> Result<(), StoreError> {
    match r {
        Reaction::EndMember { corp, userid } => {
            let key = revocation::member_key(corp, userid);
            revocation::record(store, &key, at, session_ttl_secs).await?;
            tracing::info!(
                corp,
                userid,
                "member removed: every session issued so far ends"
            );
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
            let keep = TICKET_TTL_SECS.max(session_ttl_secs);
            revocation::record(store, &key, at, keep).await?;
            tracing::info!(
                corp,
                userid,
                external_userid,
                "contact removed: its verification is dropped and its page tickets refuse"
            );
        }
    }
    Ok(())
}
