//! The compiled configuration: what the running gateway reads on the hot path.
//! Nothing here is parsed again after start-up (or after a SIGHUP reload).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use super::file::{AppKind, ExternalContactMode, RewriteFlag, StoreBackend};
/// The gateway's nouns and the credentials the config compiles into.
pub use crate::domain::{
    Allow, App, AssertionKey, Callback, CallbackFormat, Forward, IdentityField, LoginMode, Upstream,
};
use ipnet::IpNet;
use nginx_compat::location::LocationSet;
use url::Url;
pub use wecom_api::{Credentials, Secret};

pub struct Config {
    pub server: ServerSettings,
    pub session: Option<SessionSettings>,
    pub store: StoreSettings,
    pub apps: BTreeMap<String, Arc<App>>,
    /// The apps' names in the order the file writes them (the first is the default sign-in).
    pub app_order: Vec<String>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub routes: Arc<RouteTable>,
    /// The rewrite phase (SPEC section 5 step 4); `None` when no rule exists.
    pub rules: Option<Arc<super::rules::Rules>>,
    pub emulator: EmulatorSettings,
    /// What loads but is probably a mistake: said by `check`, at start and at a reload.
    pub warnings: Vec<String>,
}

impl Config {
    /// An answer of this config may be compressed (`gzip on` somewhere in its nginx rules).
    pub fn compresses(&self) -> bool {
        self.rules.as_ref().is_some_and(|r| r.gzip)
    }
}

pub struct ServerSettings {
    pub listen: String,
    pub public_url: Url,
    /// `scheme://host[:port]` of `public_url`, for same-origin checks.
    pub public_origin: String,
    pub admin_listen: Option<String>,
    pub qyapi_listen: Option<String>,
    pub qyapi_allow: Vec<IpNet>,
    pub threads: usize,
    /// The reserved path prefix, without a trailing slash (`/_gateway`).
    pub prefix: String,
    /// `host[:port]` of `public_url`: the `X-Forwarded-Host` the upstream is told (a value
    /// made once, shared by every request).
    pub public_host: http::HeaderValue,
    /// `X-Forwarded-Host` from the client's `Host` instead (a trusted proxy in front sets it).
    pub trust_host_header: bool,
    /// Idle time allowed between requests on a public connection; zero: no keep-alive.
    pub keepalive_timeout: Duration,
    /// Time allowed for a public request's header to arrive complete.
    pub header_timeout: Duration,
    /// Open public connections beyond which new ones are refused.
    pub max_connections: usize,
    /// `max_connections` was written in the file (not the default).
    pub max_connections_written: bool,
    /// How long a request line or header line, and a whole request head, may be (nginx's
    /// `large_client_header_buffers`): `[server]`'s, else an nginx file's, else nginx's 4 8k.
    pub header_buffers: nginx_compat::HeaderBuffers,
    /// The key a front proxy's forward-auth check presents (`?key=`):
    /// with one, a check without it is refused; without one, only a loopback peer is handed
    /// the request's own cookies and `Authorization` back.
    pub forward_auth_key: Option<wecom_api::Secret>,
}

impl ServerSettings {
    pub fn https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

pub struct SessionSettings {
    /// AES-256-GCM key of the session and login cookies, derived from `secret` once at load.
    pub key: cookie::Key,
    pub cookie_name: String,
    pub ttl: Duration,
    /// How long member facts for access rules are cached (SPEC section 17).
    pub policy_ttl: Duration,
    pub assertion_secret: Option<Secret>,
    /// The keyed HMAC of `assertion_secret`, prepared once at load.
    pub assertion_key: Option<AssertionKey>,
    /// The assertion's `aud` claim, when set.
    pub assertion_audience: Option<String>,
    /// Tells these settings from every other `[session]` loaded in this process: what was
    /// opened under `key` is remembered per generation (`crate::login::session`), so a reload
    /// with another secret reuses nothing.
    pub generation: u64,
}

impl SessionSettings {
    /// A generation no settings had before.
    pub fn next_generation() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}

impl SessionSettings {
    /// Settings with this secret, cookie name and lifetime and no assertion (tests seal
    /// cookies with them).
    pub fn new(secret: &Secret, cookie_name: &str, ttl: Duration) -> SessionSettings {
        SessionSettings {
            key: cookie::Key::derive_from(secret.expose().as_bytes()),
            cookie_name: cookie_name.to_owned(),
            ttl,
            policy_ttl: Duration::from_secs(300),
            assertion_secret: None,
            assertion_key: None,
            assertion_audience: None,
            generation: SessionSettings::next_generation(),
        }
    }
}

/// How long a refresh may hold the store's lock by default (`[store].lock_ttl`): two provider
/// timeouts, so that a live holder keeps it through a slow gettoken, and a dead one blocks the
/// cluster's refresh of that key no longer than this.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(10);

/// The longest `[session] ttl`: also how long a record that ends sessions is kept
/// ([`crate::callback::reactions::revocations_kept_secs`]).
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// `[session] policy_ttl` when not set: how long access-rule facts are cached (SPEC 17).
pub const DEFAULT_POLICY_TTL: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct StoreSettings {
    pub backend: StoreBackend,
    /// `local`: the database file, resolved against the config file's directory.
    pub path: std::path::PathBuf,
    pub redis_url: Option<Secret>,
    /// A `redis_url` written beside `backend = "local"` or `"memory"`: not used (said at
    /// `check` and at start, [`UNUSED_REDIS_URL`]).
    pub unused_redis_url: bool,
    pub key_prefix: String,
    /// How long one process may hold a key's refresh lock; a holder that dies frees it after
    /// this long, so it is also the longest a cluster waits for a lost refresh.
    pub lock_ttl: Duration,
}

/// What `check` and the start say of a `redis_url` the chosen backend does not use.
pub const UNUSED_REDIS_URL: &str = "redis_url is not used with this backend: this instance \
    keeps its own tokens, sessions and events; instances meant to share them need \
    backend = \"redis\"";

impl StoreSettings {
    /// Whether `other` names the same store the same way: the store is opened once, at start,
    /// so a reload that changes it changes nothing until a restart.
    pub fn same_as(&self, other: &StoreSettings) -> bool {
        self.backend == other.backend
            && self.path == other.path
            && self.redis_url.as_ref().map(|u| u.expose())
                == other.redis_url.as_ref().map(|u| u.expose())
            && self.key_prefix == other.key_prefix
            && self.lock_ttl == other.lock_ttl
    }
}

pub struct Route {
    pub location: String,
    /// `None`: a login area only. It protects its paths (login, `allow`, the external
    /// contact) and serves none: the nginx file's locations and the other routes serve them,
    /// as if it were not there (an SPA the file serves from disk, under a login).
    pub upstream: Option<Arc<Upstream>>,
    pub login: Option<Arc<App>>,
    pub external_contact: ExternalContactMode,
    /// Who of the login's members may enter (SPEC section 17); `None`: every one.
    pub allow: Option<Arc<Allow>>,
}

/// The routes, compiled into nginx's location matcher once.
pub struct RouteTable {
    pub routes: Vec<Route>,
    /// Every route, in nginx's order; a prefix route `/p/` answers `/p` with a 301.
    pub matcher: LocationSet<usize>,
    /// The protected areas: the login routes alone, in nginx's order, so that of two
    /// overlapping areas the most specific decides (`routing::protecting`).
    pub areas: LocationSet<usize>,
    /// `areas` as servers that ignore case read them: prefix and exact paths lowercased,
    /// regexes caseless; matched with a lowercased path (`routing::protecting`).
    pub folded_areas: LocationSet<usize>,
    /// Some area's pattern has an upper-case letter: every path is also read folded.
    pub areas_have_upper: bool,
    /// Some area is exact or a regex: a path is also read without its trailing `/`.
    pub areas_exact: bool,
    /// The prefix areas named with a final `/`, by that name without it (`/p/admin` of
    /// `/p/admin/`), as written and lowercased: the area's own root (`routing::area_of`).
    pub area_roots: Vec<(Box<[u8]>, usize)>,
    pub folded_area_roots: Vec<(Box<[u8]>, usize)>,
    /// The roots of login areas without a location of their own (a route with no `upstream`):
    /// no 301 of a route stands before their literal `/p`, which whatever serves it would
    /// otherwise get without a sign-in. Read as in the area.
    pub open_area_roots: Vec<(Box<[u8]>, usize)>,
}

impl RouteTable {
    /// `Err` when PCRE gave up on a regex location: never read as "no route".
    pub fn find(&self, path: &[u8]) -> Result<Option<&Route>, nginx_compat::regex::MatchError> {
        Ok(self.matcher.find(path)?.map(|m| &self.routes[*m.value]))
    }
}

pub struct EmulatorSettings {
    pub enabled: bool,
    pub listen: SocketAddr,
}

/// `host[:port]` of a public URL as a header value (a URL's serialization is printable ASCII).
pub fn url_host(url: &url::Url) -> Result<http::HeaderValue, http::header::InvalidHeaderValue> {
    http::HeaderValue::from_str(&url[url::Position::BeforeHost..url::Position::AfterPort])
}
