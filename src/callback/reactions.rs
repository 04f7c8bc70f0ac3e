//! The gateway's own reactions to events (SPEC section 18), written to the store where every
//! instance reads them: [`crate::revocation`] records and the contact cache. Idempotent: the
//! endpoint applies them before queueing and the delivery worker again before forwarding,
//! with the same time ([`super::event::acted_at`]: when the event happened, never later than
//! its arrival), so applying twice, or a replay, changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};

use wecom_api::{Store, StoreError};

use super::event::Reaction;
use crate::config::model::Config;
use crate::jssdk::contact::TICKET_TTL_SECS;
use crate::jssdk::contact_cache::ContactCache;
use crate::revocation;

/// Sessions live at most this long (the default `[session] ttl`), when no session is set.
const DEFAULT_SESSION_TTL_SECS: u64 = 8 * 3600;

/// The longest session `ttl` this process has run with ([`note_session_ttl`]).
static LONGEST_SESSION_TTL_SECS: AtomicU64 = AtomicU64::new(0);

fn config_ttl(config: &Config) -> u64 {
    config
        .session
        .as_ref()
        .map_or(DEFAULT_SESSION_TTL_SECS, |s| s.ttl.as_secs())
}

/// Notes the `ttl` of a config this process runs (at start and at each reload applied).
pub fn note_session_ttl(config: &Config) {
    LONGEST_SESSION_TTL_SECS.fetch_max(config_ttl(config), Ordering::Relaxed);
}

/// How long a member record is kept: the longest session lifetime this process has run with,
/// after which nothing it covers is still open. Not only the running config's: a session
/// carries its issue time and is held to the running `ttl`, so one sealed under an 8 h ttl
/// opens again when a reload restores 8 h after a shorter ttl, and a record kept for the
/// shorter one would have lapsed by then.
pub fn session_ttl(config: &Config) -> u64 {
    config_ttl(config).max(LONGEST_SESSION_TTL_SECS.load(Ordering::Relaxed))
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
