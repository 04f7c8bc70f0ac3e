//! Login (SPEC section 8): the pure parts — return URLs, state, sealed cookies, provider URLs,
//! the assertion — and the code exchange. The HTTP handlers in `proxy::login_endpoints` only
//! translate between these and requests.

pub mod assertion;
pub mod authorize;
pub mod callback_limit;
pub mod exchange;
pub mod return_url;
pub mod revocation;
pub mod seal;
pub mod session;
pub mod state;

pub use return_url::ReturnUrl;

/// Seconds since the epoch: what session and login cookies are timed in.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
