//! Once a minute per key: a wrong secret or a dead Redis must not write one log line per
//! request, and the line that is written says so.

use std::hash::Hash;
use std::time::Duration;

use dashmap::DashMap;

/// Says "due" at most once per `every` for each key. Times are the [`crate::Clock`]'s Unix
/// milliseconds, passed in, so the decision is a plain function of its inputs.
#[derive(Debug)]
pub struct Throttle<K: Eq + Hash> {
    every_ms: u64,
    last: DashMap<K, u64>,
}

impl<K: Eq + Hash> Throttle<K> {
    pub fn new(every: Duration) -> Self {
        Throttle {
            every_ms: every.as_millis() as u64,
            last: DashMap::new(),
        }
    }

    /// The usual interval of the gateway's repeated warnings.
    pub fn per_minute() -> Self {
        Self::new(Duration::from_secs(60))
    }

    /// Whether the event of `key` at `now_ms` should be told; telling it starts the interval.
    pub fn due(&self, key: K, now_ms: u64) -> bool {
        let mut due = false;
        self.last
            .entry(key)
            .and_modify(|last| {
                if now_ms.saturating_sub(*last) >= self.every_ms {
                    *last = now_ms;
                    due = true;
                }
            })
            .or_insert_with(|| {
                due = true;
                now_ms
            });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_per_key() {
        let t = Throttle::per_minute();
        let cases: &[(&str, u64, bool)] = &[
            ("a", 1_000, true),
            ("a", 1_001, false),
            ("b", 1_001, true),
            ("a", 60_999, false),
            ("a", 61_000, true),
            ("a", 61_000, false),
            // A clock that went back (another process's view) does not unlock it early.
            ("a", 30_000, false),
            ("b", 61_001, true),
        ];
        for (key, now, want) in cases {
            assert_eq!(t.due(*key, *now), *want, "{key} at {now}");
        }
    }
}
