//! JS-SDK support (SPEC section 9): the permission signature and the front-end helper.

pub mod signature;

/// The front-end helper served at `{prefix}/sdk.js`; `__WGW_SETTINGS__` is replaced with the
/// page's settings when it is served.
pub const SDK_JS: &str = include_str!("sdk.js");
