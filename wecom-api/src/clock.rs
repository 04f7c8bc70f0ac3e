//! The one clock: Unix time as the token cache, the stores and the gateway read it.
//!
//! Unix milliseconds rather than `Instant`, because a shared store must mean the same moment
//! in every process of a cluster. Tests move a clock forward with [`Clock::advance`] (as the
//! emulator's `/_emulator/advance` moves its own) instead of sleeping until a token expires.
//! How long to *wait* (a lock poll, a timeout) is not the clock's business: that stays with
//! tokio's timers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock plus an offset that only ever grows. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicU64>,
}

impl Clock {
    /// Real time; a clock of its own, so that tests in one process do not move each other's.
    pub fn system() -> Clock {
        Clock::default()
    }

    pub fn now_ms(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        real.saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    pub fn now_secs(&self) -> u64 {
        self.now_ms() / 1000
    }

    /// Moves this clock (and its clones) forward. Never backward: an expiry once passed stays
    /// passed, as it does in the world.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// How far tests moved this clock.
    pub fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_every_clone_and_only_forward() {
        let a = Clock::system();
        let b = a.clone();
        let other = Clock::system();
        let before = a.now_ms();
        b.advance(Duration::from_secs(3600));
        assert!(a.now_ms() >= before + 3_600_000);
        assert!(
            other.now_ms() < before + 3_600_000,
            "another clock stays put"
        );
        assert_eq!(a.offset(), Duration::from_secs(3600));
        assert_eq!(a.now_secs(), a.now_ms() / 1000);
    }
}
