//! The compiled configuration: what the running gateway reads on the hot path.
//! Nothing here is parsed again after start-up (or after a SIGHUP reload).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use nginx_compat::location::LocationSet;
use url::Url;

pub use super::file::{AppKind, ExternalContactMode, LoginMode, RewriteFlag, StoreBackend};

pub struct Config {
    pub server: ServerSettings,
    pub session: Option<SessionSettings>,
    pub store: StoreSettings,
    pub apps: BTreeMap<String, Arc<App>>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    pub routes: Arc<RouteTable>,
    pub nginx_includes: Vec<std::path::PathBuf>,
    /// The rewrite phase (SPEC section 5 step 4); `None` when no rule exists.
    pub rules: Option<Arc<super::rules::Rules>>,
    pub emulator: EmulatorSettings,
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
}

impl ServerSettings {
    pub fn https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Key material that must never be printed.
#[derive(Clone)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A short, stable, non-reversible name for the secret, used in cache keys so that two
    /// apps of one corp never share a token (WECOM_API.md, pain 4).
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub struct SessionSettings {
    pub secret: Secret,
    /// AES-256-GCM key of the session and login cookies, derived from `secret` once at load.
    pub key: cookie::Key,
    pub cookie_name: String,
    pub ttl: Duration,
    pub assertion_secret: Option<Secret>,
    /// The keyed HMAC of `assertion_secret`, prepared once at load.
    pub assertion_key: Option<crate::login::assertion::AssertionKey>,
}

pub struct StoreSettings {
    pub backend: StoreBackend,
    pub redis_url: Option<Secret>,
    pub key_prefix: String,
    /// How long one process may hold a key's refresh lock; a holder that dies frees it after
    /// this long, so it is also the longest a cluster waits for a lost refresh.
    pub lock_ttl: std::time::Duration,
}

#[derive(Debug)]
pub struct App {
    pub name: String,
    pub credentials: Credentials,
    pub secret: Secret,
    pub login: LoginMode,
    pub scope: String,
    /// Query parameters appended to the return URL after login: (parameter, identity field).
    pub return_query: Vec<(String, IdentityField)>,
    pub api_base: Url,
    pub authorize_url: Url,
    pub jssdk_urls: Vec<String>,
}

#[derive(Debug)]
pub enum Credentials {
    Wecom {
        corp_id: String,
        agent_id: u64,
        contact_secret: Option<Secret>,
        qr_login_url: Url,
    },
    WechatMp {
        app_id: String,
    },
}

impl App {
    pub fn kind(&self) -> AppKind {
        match self.credentials {
            Credentials::Wecom { .. } => AppKind::Wecom,
            Credentials::WechatMp { .. } => AppKind::WechatMp,
        }
    }
}

/// The identity values `return_query` may append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityField {
    UserId,
    OpenId,
    UnionId,
    CorpId,
    AgentId,
    ExternalUserId,
}

impl IdentityField {
    pub const NAMES: &'static [&'static str] = &[
        "userid",
        "openid",
        "unionid",
        "corp_id",
        "agent_id",
        "external_userid",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "userid" => Self::UserId,
            "openid" => Self::OpenId,
            "unionid" => Self::UnionId,
            "corp_id" => Self::CorpId,
            "agent_id" => Self::AgentId,
            "external_userid" => Self::ExternalUserId,
            _ => return None,
        })
    }
}

pub struct Upstream {
    pub name: String,
    /// `host:port` as written, for logs.
    pub authority: String,
    /// Resolved once at load, as nginx resolves `proxy_pass` hosts at start-up.
    pub addr: SocketAddr,
    /// Host header value when the client's is not kept.
    pub host: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
}

pub struct Route {
    pub location: String,
    pub upstream: Arc<Upstream>,
    pub login: Option<Arc<App>>,
    pub external_contact: ExternalContactMode,
}

/// The routes, compiled into nginx's location matcher once.
pub struct RouteTable {
    pub routes: Vec<Route>,
    pub matcher: LocationSet<usize>,
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

impl Config {
    /// The route table as `check` prints it.
    pub fn describe_routes(&self) -> String {
        let mut out = String::new();
        for route in &self.routes.routes {
            let login = route
                .login
                .as_ref()
                .map_or("public".to_owned(), |a| format!("login={}", a.name));
            out.push_str(&format!(
                "{:<32} -> {:<12} {} external_contact={:?}\n",
                route.location,
                route.upstream.name,
                login,
                format!("{:?}", route.external_contact).to_lowercase()
            ));
        }
        out
    }
}
