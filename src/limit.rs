//! Requests per key per minute, for what costs a provider call a client can repeat at will (a
//! sign-in code's exchange, a customer's verification): past the limit the caller answers 429
//! before the provider is asked, instead of spending the corp's API quota and the gateway
//! address's. Per process; keys not seen for a while are forgotten once many are tracked.

use std::hash::Hash;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Keys remembered before the idle ones are forgotten.
const MAX_TRACKED: usize = 10_000;

pub struct PerMinute<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> PerMinute<K> {
    /// `n` a minute, refilled evenly, and `n` at once.
    pub fn new(n: u32) -> PerMinute<K> {
        PerMinute {
            limiter: RateLimiter::keyed(Quota::per_minute(
                NonZeroU32::new(n).expect("a positive limit"),
            )),
        }
    }

    /// May `key` go on now? Counts it if so.
    pub fn allow(&self, key: &K) -> bool {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).is_ok()
    }
}
