//! The WeCom and WeChat APIs as the gateway and the emulator both need them, and nothing of
//! either: the client (credentials, the kinds of token, the token cache and its stores, the
//! tower stack, typed errors) and the callback crypto (WXBizMsgCrypt) and XML.
//!
//! A qyapi call's path, e.g. the CRM's `GET /crm/cgi-bin/user/get?userid=zhangsan`:
//!
//! 1. The gateway takes the app's [`TokenTarget`] for [`TokenKind::Access`], built when its config compiled.
//! 2. [`Client::call`] sends one [`ApiRequest`] down its thread's call stack, assembled in one place for every thread over handles of the thread's own.
//! 3. The retry layer keeps the request (shared by the tries, not copied), so that a retry can send it again.
//! 4. The token layer asks the credential [`TokenCache`]: a fresh token from the [`Store`] is used; a stale one too, refreshed in the background.
//! 5. A missing or expired token is fetched once per key: one task per process, one process per cluster (the store's lock).
//! 6. That fetch is `gettoken` (WeChat: `token`) with the credentials over the plain stack (HTTP alone): no token layer.
//! 7. The HTTP layer bounds each try at [`CALL_TIMEOUT`] (or the longer time a call was given, 60 s at most), and sends `access_token` first, then the caller's parameters; no retry starts once a call has taken 5 s.
//! 8. On 40001/40014/42001 the retry policy tries once more; the token layer first expires that token if the store still holds it.
//! 9. On -1 it waits 200, 400, 800 ms between tries; any other answer, errcode or not, is returned as it is.
//! 10. The [`Observer`] hears of every fetch and retry, so that the gateway can count them.
//!
//! A jsapi ticket is cached in a second [`TokenCache`] whose fetch is an ordinary call down the
//! same call stack with the app's access token (steps 2 to 9): the chain ends at `gettoken`,
//! and nothing in it calls back into the ticket cache.

mod cache;
pub mod callback;
mod client;
mod clock;
mod connect;
mod credentials;
pub mod directory;
mod error;
mod fetch;
pub mod held;
mod local;
mod observe;
mod request;
mod secret;
mod stack;
pub mod store;
mod target;
mod throttle;
mod transport;
pub mod xml;

pub use cache::{expiry_of, freshness, is_config_refusal, Freshness, TokenCache};
pub use callback::{CallbackCrypto, CryptoError, Plaintext, Sealed};
pub use client::{Client, ClientBuilder, CALL_TIMEOUT};
pub use clock::Clock;
pub use connect::Proxies;
pub use credentials::{Credentials, TokenKind};
pub use directory::FactCache;
pub use error::{advice, ApiError};
pub use fetch::{CacheTarget, Fetch, Fetched};
pub use observe::{Observer, RetryReason, Unobserved};
pub use request::{errcode_of, ApiRequest, ApiResponse, UNREADABLE_ERRCODE};
pub use secret::Secret;
pub use store::{
    Cached, FallbackStore, LocalStore, MemoryStore, RedisStore, Store, StoreError, Sweeper,
};
pub use target::{suite_ticket_key, AppTargets, InstalledCorp, SuiteTicket, TokenTarget};
pub use throttle::Throttle;
pub use xml::{XmlError, XmlMessage, XmlValue};
