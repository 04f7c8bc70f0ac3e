//! The token cache's decisions, as plain functions of their inputs.

use crate::error::ApiError;
use crate::store::Cached;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Still valid, but refreshed in the background by the next use.
    Stale,
    Expired,
}

/// A value is stale `min(300 s, lifetime / 10)` before its expiry. For an Official Account
/// token this also keeps the 5-minute rule harmless: the token we replace early stays valid
/// at WeChat for 5 minutes after the new one is issued, longer than it had left anyway.
pub fn freshness(c: &Cached, now_ms: u64) -> Freshness {
    let lifetime = c.expires_at.saturating_sub(c.fetched_at);
    let early = (lifetime / 10).min(300_000);
    if now_ms >= c.expires_at {
        Freshness::Expired
    } else if now_ms >= c.expires_at - early {
        Freshness::Stale
    } else {
        Freshness::Fresh
    }
}

/// gettoken answers that no retry can change: bad secret or id, untrusted IP, no such token.
pub fn is_config_refusal(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::Api {
            errcode: 40001 | 40013 | 40125 | 40164 | 41002 | 41004 | 48001 | 60020
                // A suite's id or secret (40083, 40080), a permanent code that is no more.
                | 40080 | 40083 | 40084,
            ..
        }
    )
}

/// The longest lifetime believed from a provider. WeCom and WeChat say 7200 s; an answer
/// claiming years (a broken proxy in between, a test double) would pin a value that the
/// provider has long forgotten, and overflow a store's TTL arithmetic.
pub const MAX_LIFETIME_SECS: u64 = 86_400;

/// The shortest lifetime believed for a value not seen before. An answer saying `0` (or a few
/// seconds) would make every request fetch again, burning the provider's quota (a ticket's is
/// 100 an hour); a value that really dies sooner is refused as expired and fetched again then.
pub const MIN_LIFETIME_SECS: u64 = 60;

/// When a refetched value expires. WeCom hands out the same token or ticket again until it
/// expires, with the seconds it has left rounded up: an early refresh gets the old value back,
/// and its death must not be postponed by that rounding. `now_ms` is when the request was sent.
/// A value this clock had already buried when WeCom handed it back alive (the clock stepped
/// forward: NTP, a resumed VM) lives as long as WeCom says: kept dead, every request would
/// fetch it again until WeCom changes it, and burn the quota.
pub fn expiry_of(value: &str, expires_in_secs: u64, previous: Option<&Cached>, now_ms: u64) -> u64 {
    let lifetime_ms = expires_in_secs.clamp(MIN_LIFETIME_SECS, MAX_LIFETIME_SECS) * 1000;
    let expires_at = now_ms.saturating_add(lifetime_ms);
    match previous {
        Some(p) if *p.value == *value && p.expires_at > now_ms => expires_at.min(p.expires_at),
        _ => expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(value: &str, fetched: u64, expires: u64) -> Cached {
        Cached {
            value: value.into(),
            fetched_at: fetched,
            expires_at: expires,
        }
    }

    #[test]
    fn freshness_windows() {
        let h2 = 7_200_000;
        let cases: &[(Cached, u64, Freshness)] = &[
            // 7200 s lifetime: stale 300 s before expiry (min(300 s, 720 s)).
            (c("t", 0, h2), 0, Freshness::Fresh),
            (c("t", 0, h2), h2 - 300_001, Freshness::Fresh),
            (c("t", 0, h2), h2 - 300_000, Freshness::Stale),
            (c("t", 0, h2), h2 - 1, Freshness::Stale),
            (c("t", 0, h2), h2, Freshness::Expired),
            (c("t", 0, h2), h2 + 5, Freshness::Expired),
            // 60 s lifetime: stale 6 s before expiry.
            (c("t", 0, 60_000), 53_999, Freshness::Fresh),
            (c("t", 0, 60_000), 54_000, Freshness::Stale),
            // Zero lifetime: expired at once.
            (c("t", 10, 10), 10, Freshness::Expired),
        ];
        for (cached, now, want) in cases {
            assert_eq!(freshness(cached, *now), *want, "{cached:?} at {now}");
        }
    }

    #[test]
    fn a_value_handed_back_early_keeps_its_first_expiry() {
        let old = c("same", 0, 10_250);
        let cases: &[(&str, u64, Option<&Cached>, u64, u64)] = &[
            // The same ticket, its 250 ms left rounded up to a second: not postponed.
            ("same", 1, Some(&old), 10_000, 10_250),
            // Another ticket: its own lifetime counts.
            ("new", 7200, Some(&old), 10_000, 7_210_000),
            ("new", 7200, None, 10_000, 7_210_000),
            // The same value said to have nothing left: it keeps its first expiry, never gains.
            ("same", 0, Some(&old), 10_000, 10_250),
            // The same value handed back alive when this clock had buried it (stepped
            // forward): WeCom's lifetime counts, else every request would fetch it again.
            ("same", 300, Some(&old), 20_000, 320_000),
            // An absurd lifetime is believed for a day at most, and never overflows.
            ("new", u64::MAX, None, 10_000, 10_000 + 86_400_000),
            ("new", u64::MAX, None, u64::MAX - 5, u64::MAX),
            ("new", 86_401, None, 0, 86_400_000),
            // A new value said to last no time at all is believed for a minute.
            ("new", 0, Some(&old), 10_000, 70_000),
            ("new", 5, None, 10_000, 70_000),
        ];
        for (value, expires_in, previous, now, want) in cases {
            assert_eq!(
                expiry_of(value, *expires_in, *previous, *now),
                *want,
                "{value} {expires_in}s"
            );
        }
    }

    #[test]
    fn refusals_are_the_errcodes_no_retry_changes() {
        let api = |errcode| ApiError::Api {
            errcode,
            errmsg: String::new(),
        };
        for code in [40001, 40013, 40125, 40164, 41002, 41004, 48001, 60020] {
            assert!(is_config_refusal(&api(code)), "{code}");
        }
        for e in [api(-1), api(45009), api(42001), ApiError::Timeout] {
            assert!(!is_config_refusal(&e), "{e:?}");
        }
    }
}
