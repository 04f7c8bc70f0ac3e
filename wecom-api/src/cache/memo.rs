//! Each thread's own copy of the fresh tokens it used, valid while the in-process store holds
//! them unchanged ([`Store::tokens_version`](crate::Store::tokens_version)).
//!
//! Reading a token from the in-process store takes its map's read lock and clones the token's
//! `Arc`: two cache lines every API call moved between the worker cores. A thread that used a
//! token keeps a copy of its own, tagged with the store's tokens version when it was read; any
//! token write changes that version, and the next call reads the store again. A store shared
//! by a cluster has no version: it is asked every time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::store::Cached;

/// Tokens one thread keeps at most (apps x kinds x corps); all forgotten when full.
const MAX_KEPT: usize = 1024;

struct Kept {
    version: u64,
    cached: Cached,
}

type Memo = HashMap<Box<str>, Kept, foldhash::quality::RandomState>;

thread_local! {
    static KEPT: RefCell<Memo> = RefCell::new(HashMap::default());
}

/// This thread's copy of the token under `key`, if it was read at store version `version`.
pub fn get(key: &str, version: u64) -> Option<Cached> {
    KEPT.with_borrow(|kept| {
        kept.get(key)
            .filter(|k| k.version == version)
            .map(|k| k.cached.clone())
    })
}

/// Keeps a copy of `cached`, read from the store at version `version`: a new `Arc` of the
/// thread's own, so that using it shares nothing with the other threads.
pub fn keep(key: &str, version: u64, cached: &Cached) {
    KEPT.with_borrow_mut(|kept| {
        if kept.len() >= MAX_KEPT && !kept.contains_key(key) {
            kept.clear();
        }
        let cached = Cached {
            value: Arc::from(&*cached.value),
            fetched_at: cached.fetched_at,
            expires_at: cached.expires_at,
        };
        kept.insert(key.into(), Kept { version, cached });
    });
}
