//! A control for the integration tests: `POST /_test/advance {"by": "3s"}` on the admin
//! listener moves the gateway's clock forward, as `/_emulator/advance` moves the emulator's, so
//! that token, ticket and session expiries are tested without sleeping.
//!
//! Never reachable in production, by three locks that each suffice:
//! - this module exists in debug builds only: a release build (what is deployed, what `bench/`
//!   measures) has no such route, whatever its environment or configuration;
//! - it answers only when the process started with `WGW_TEST_CLOCK=1` in its environment, which
//!   no configuration file can set, and the gateway says so in its log at start;
//! - it answers only to a loopback peer, even when `admin_listen` is wider.
//!
//! All it can do is move the clock forward: tokens look older, sessions end sooner. It never
//! extends a lifetime.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

/// The environment variable that turns the control on (exactly `1`).
pub const ENV: &str = "WGW_TEST_CLOCK";

/// The path on the admin listener.
pub const PATH: &str = "/_test/advance";

/// A body larger than this is not an advance.
pub const MAX_BODY: usize = 256;

static ENABLED: LazyLock<bool> = LazyLock::new(|| std::env::var(ENV).is_ok_and(|v| v == "1"));

/// Whether this process was started with the control on.
pub fn enabled() -> bool {
    *ENABLED
}

/// The environment variable (exactly `1`, debug builds only) that makes callback delivery
/// retry after milliseconds where it would wait seconds, so that a test sees an event given up
/// on (ten tries and a day) without waiting the minutes of the real backoff.
pub const FAST_RETRY_ENV: &str = "WGW_TEST_FAST_RETRY";

static FAST_RETRY: LazyLock<bool> =
    LazyLock::new(|| std::env::var(FAST_RETRY_ENV).is_ok_and(|v| v == "1"));

/// Whether delivery retries are shortened a thousandfold (this module is not in a release
/// build).
pub fn fast_retry() -> bool {
    *FAST_RETRY
}

/// The environment variable (a number of bytes, debug builds only) that moves the bound of the
/// API bodies held at once ([`wecom_api::held`]) down to one a test can reach, every byte
/// counted.
pub const HELD_MAX_ENV: &str = "WGW_TEST_HELD_MAX";

/// The bound `HELD_MAX_ENV` asks for, if any.
pub fn held_max() -> Option<usize> {
    std::env::var(HELD_MAX_ENV).ok()?.parse().ok()
}

/// Why an advance is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NotLoopback,
    BadBody(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    /// A humantime duration, e.g. "7201s".
    by: String,
}

/// How far `body` asks to move the clock, if `peer` may ask.
pub fn parse(peer: Option<IpAddr>, body: &[u8]) -> Result<Duration, Refused> {
    if !peer.is_some_and(|ip| ip.is_loopback() || is_mapped_loopback(ip)) {
        return Err(Refused::NotLoopback);
    }
    let a: Advance =
        serde_json::from_slice(body).map_err(|e| Refused::BadBody(format!("body: {e}")))?;
    humantime::parse_duration(&a.by).map_err(|e| Refused::BadBody(format!("by: {e}")))
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_loopback_peer_with_a_duration_moves_the_clock() {
        let lo: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let cases: &[(Option<&str>, &str, Result<Duration, ()>)] = &[
            (
                Some("127.0.0.1"),
                r#"{"by":"3s"}"#,
                Ok(Duration::from_secs(3)),
            ),
            (
                Some("::1"),
                r#"{"by":"7201s"}"#,
                Ok(Duration::from_secs(7201)),
            ),
            (
                Some("::ffff:127.0.0.1"),
                r#"{"by":"1ms"}"#,
                Ok(Duration::from_millis(1)),
            ),
            (Some("10.0.0.5"), r#"{"by":"3s"}"#, Err(())),
            (Some("::ffff:10.0.0.5"), r#"{"by":"3s"}"#, Err(())),
            (None, r#"{"by":"3s"}"#, Err(())),
            (Some("127.0.0.1"), r#"{"by":"-3s"}"#, Err(())),
            (Some("127.0.0.1"), r#"{"by":"3s","back":true}"#, Err(())),
            (Some("127.0.0.1"), "", Err(())),
        ];
        for (peer, body, want) in cases {
            let peer = peer.map(|p| p.parse().unwrap());
            let got = parse(peer, body.as_bytes()).map_err(drop);
            assert_eq!(got, *want, "{peer:?} {body}");
        }
        assert_eq!(parse(None, b"{}"), Err(Refused::NotLoopback));
        assert!(matches!(parse(lo, b"{}"), Err(Refused::BadBody(_))));
    }
}
