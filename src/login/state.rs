//! Login state (SPEC section 8): a random `state` and the encrypted login cookie that carries
//! it through the provider round trip.
//!
//! One cookie per login, named `wgw_login_<state>`: every tab that starts a login gets its own
//! cookie, so parallel logins never overwrite each other, and the callback finds its cookie by
//! the `state` the provider echoes. The cookies live under `{prefix}/` only (the CRM never sees
//! them), expire after 10 minutes; behind https they are `__Host-wgw_login_<state>` for the
//! whole site instead (stripped before the CRM like the gateway's other cookies): a sibling
//! subdomain, or another port of the host, cannot plant a `__Host-` cookie, and a planted login
//! cookie would sign the victim in as whoever planted it (login CSRF), and `{prefix}/login` removes the oldest beyond
//! [`MAX_PENDING`] so a page that triggers logins in a loop cannot push the session cookie out
//! of the browser's per-site cookie budget.

use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

/// A login must come back within this.
pub const LOGIN_TTL_SECS: u64 = 600;
/// Pending logins kept per browser; older ones are dropped when a new one starts.
pub const MAX_PENDING: usize = 8;
const COOKIE_PREFIX: &str = "wgw_login_";
const SECURE_COOKIE_PREFIX: &str = "__Host-wgw_login_";

/// The start of every login cookie's name: `__Host-` behind https.
pub fn cookie_prefix(https: bool) -> &'static str {
    if https {
        SECURE_COOKIE_PREFIX
    } else {
        COOKIE_PREFIX
    }
}

/// 32 letters and digits: providers accept `[a-zA-Z0-9]` up to 128 bytes.
pub fn generate_state() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

/// Could this be a state we issued? Checked before it is used in a cookie name.
pub fn plausible_state(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub fn cookie_name(state: &str, https: bool) -> String {
    format!("{}{state}", cookie_prefix(https))
}

/// Which provider page the login went through: a restart after a bad code takes the same one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// WeCom or WeChat in-app authorize (`connect/oauth2/authorize`).
    Authorize,
    /// WeCom QR login in a desktop browser.
    Qr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub app: String,
    /// The validated return URL, relative (path, query, fragment).
    pub return_to: String,
    pub issued_at: u64,
    /// Set when this login is the automatic restart after a used or invalid code: a second
    /// failure shows an error page instead of restarting again (never a redirect loop).
    pub restarted: bool,
    pub flow: Flow,
    /// A 代开发 app's sign-in (SPEC section 20): the corp it was started for, whose agent and
    /// token the self-built flow uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp: Option<String>,
    /// `return_to` is kept in the store under the state, not here: a long one (a hash route
    /// naming a customer) would take the room several tabs' sign-ins share in the `Cookie`
    /// line, and the oldest would be dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub return_kept: bool,
}

/// A `return_to` longer than this is kept in the store, not in the login cookie.
pub const RETURN_IN_COOKIE_MAX: usize = 64;

/// Where a login's long `return_to` is kept, for [`LOGIN_TTL_SECS`].
pub fn return_key(state: &str) -> String {
    format!("login-return:{state}")
}

impl LoginState {
    pub fn fresh(&self, now: u64) -> bool {
        self.issued_at <= now + 5 && now < self.issued_at + LOGIN_TTL_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_32_random_alphanumerics() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let s = generate_state();
            assert_eq!(s.len(), 32);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()), "{s}");
            assert!(plausible_state(&s));
            assert!(seen.insert(s), "states never repeat");
        }
    }

    #[test]
    fn plausible_states() {
        for (s, ok) in [
            ("abc123", true),
            ("", false),
            ("a-b", false),
            ("a b", false),
            ("a;b", false),
            ("状态", false),
        ] {
            assert_eq!(plausible_state(s), ok, "{s}");
        }
        assert!(plausible_state(&"a".repeat(128)));
        assert!(!plausible_state(&"a".repeat(129)));
    }

    #[test]
    fn login_state_lives_ten_minutes() {
        let st = LoginState {
            state: "s".into(),
            app: "crm".into(),
            return_to: "/".into(),
            issued_at: 1000,
            restarted: false,
            flow: Flow::Authorize,
            corp: None,
            return_kept: false,
        };
        assert!(st.fresh(1000));
        assert!(st.fresh(1599));
        assert!(!st.fresh(1600));
        assert!(!st.fresh(900), "issued in the future");
    }
}
