//! The gateway's one clock: tokens, sessions, login states, contact tickets and assertions
//! are all timed by it, so that a test can move it and every
//! part of the gateway sees the same moment.

use std::sync::LazyLock;

use wecom_api::Clock;

static CLOCK: LazyLock<Clock> = LazyLock::new(Clock::system);

/// The process's clock (the system's, unless a test moved it).
pub fn clock() -> &'static Clock {
    &CLOCK
}

/// Seconds since the epoch: what session and login cookies are timed in.
pub fn now_secs() -> u64 {
    CLOCK.now_secs()
}
