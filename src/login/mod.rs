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

/// Seconds since the epoch on the gateway's one clock: what session and login cookies are
/// timed in.
pub use crate::clock::now_secs;
