//! The gateway's nouns, below everything that uses them: the configuration compiles into them
//! and the features read them, so neither has to import the other. Credentials and secrets
//! are the `wecom-api` crate's; this module holds what only the gateway knows.

pub mod balance;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;
use wecom_api::{AppTargets, CallbackCrypto, Credentials};

/// How a WeCom app logs people in (`login = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMode {
    /// The in-app OAuth inside the WeCom client, the QR login elsewhere.
    Auto,
    Oauth,
    Qr,
}

#[derive(Debug)]
pub struct App {
    pub name: String,
    pub credentials: Credentials,
    /// Every token and ticket this app can hold, with its cache key and API base, built once
    /// here so that no call formats or hashes anything.
    pub targets: AppTargets,
    pub login: LoginMode,
    pub scope: String,
    /// Query parameters appended to the return URL after login: (parameter, identity field).
    pub return_query: Vec<(String, IdentityField)>,
    pub authorize_url: Url,
    /// WeCom's QR login page; `None` for an Official Account, which has no QR login.
    pub qr_login_url: Option<Url>,
    pub jssdk_urls: Vec<String>,
    /// `miniprogram = true` (WeCom apps): `wx.qy.login` codes of this app's mini-program are
    /// exchanged at `{prefix}/miniprogram/login` for bearer sessions (SPEC section 19).
    pub miniprogram: bool,
    /// `false` for `kind = "wechat_mini"`: its people sign in from the mini-program only, never
    /// through `{prefix}/login`.
    pub web_login: bool,
    /// Inside WeCom, a page navigation with a session older than this signs in again silently
    /// (SPEC section 17): another member on the same device is noticed.
    pub reauth_after: Option<Duration>,
    /// WeCom's callbacks of this app (SPEC section 18); `None`: its callback URL is a 404.
    pub callback: Option<Callback>,
}

/// `callback = { token, encoding_aes_key, forward, forward_path, format }`, compiled.
#[derive(Debug)]
pub struct Callback {
    pub crypto: CallbackCrypto,
    /// As written, for the demo's emulator, which must sign with the same pair.
    pub token: wecom_api::Secret,
    pub encoding_aes_key: wecom_api::Secret,
    /// What a plaintext may end with (WECOM_API.md "Callbacks in detail"): the corp id for a
    /// self-built app. A set, because a suite's URL also receives its suite id's messages.
    pub receive_ids: Vec<String>,
    /// What a URL check's `echostr` may also end with: a suite's provider corp id (WeCom
    /// signs a third-party URL check with it, and nothing else).
    pub check_ids: Vec<String>,
    /// Where events go; `None`: the gateway only acts on them itself (SPEC section 18).
    pub forward: Option<Forward>,
    pub format: CallbackFormat,
}

#[derive(Debug)]
pub struct Forward {
    pub upstream: Arc<Upstream>,
    /// An absolute path, possibly with a query.
    pub path: String,
}

/// How a callback reaches the CRM: WeCom's plaintext XML, or its JSON rendering.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackFormat {
    #[default]
    Xml,
    Json,
}

impl CallbackFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            CallbackFormat::Xml => "application/xml",
            CallbackFormat::Json => "application/json",
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

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    /// `host:port` as written, for logs (of the first server, when there are several).
    pub authority: String,
    /// Resolved once at load, as nginx resolves `proxy_pass` hosts at start-up.
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// Several servers (`servers = [...]`, an nginx `upstream` block's): how a request's is
    /// chosen. `None` for one server, `addr`.
    pub balance: Option<Box<balance::Balance>>,
}

/// A verified external contact (SPEC section 9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalContact {
    pub external_userid: String,
    /// Only for WeChat users of a corp bound to an Open Platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// For the page; never a header.
    #[serde(default)]
    pub name: String,
}

/// The HMAC-SHA256 key of `X-Gateway-Assertion`, with its inner and outer pads hashed once at
/// config load: every proxied request of a logged-in user signs an assertion, so the
/// per-request work is only the claims themselves.
#[derive(Clone)]
pub struct AssertionKey {
    mac: Hmac<Sha256>,
    id: u64,
}

impl AssertionKey {
    pub fn new(secret: &[u8]) -> AssertionKey {
        static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        AssertionKey {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"),
            id: KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// A MAC ready for the claims (a copy of the prepared state).
    pub fn mac(&self) -> Hmac<Sha256> {
        self.mac.clone()
    }

    /// Names this key among all made in this process (a copy has its original's): what was
    /// prepared with one key is never used with another.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionKey(<redacted>)")
    }
}

/// Who may enter a route (`allow = { departments, tags, users }`, SPEC section 17): a member
/// is admitted when any one list matches. Compiled once with its route; the decisions made
/// with it live here too, so a reload that changes the rule starts with none.
#[derive(Debug, Default)]
pub struct Allow {
    pub users: Vec<String>,
    pub departments: Vec<u64>,
    pub tags: Vec<u64>,
    /// Per userid: the last decision and the Unix ms until which its facts hold. Requests of a
    /// member already decided read nothing from the store until then (the hot path), and the
    /// decision is logged once per member and route per `policy_ttl`, not per request.
    pub decided: dashmap::DashMap<String, Decided>,
    /// `wgw_access_total{route,result}` of this rule's route, resolved on its first decision
    /// (admitted, refused, error): counting is then an increment, not a label lookup.
    pub counted: std::sync::OnceLock<[prometheus::IntCounter; 3]>,
}

/// A decision of an [`Allow`] for one member, valid until its facts expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decided {
    pub admitted: bool,
    pub until_ms: u64,
}

impl Allow {
    /// `allow` as `check` prints it: `departments=[2] tags=[7] users=[zhangsan]`, the lists
    /// given only.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.departments.is_empty() {
            parts.push(format!("departments={:?}", self.departments));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tags={:?}", self.tags));
        }
        if !self.users.is_empty() {
            parts.push(format!("users=[{}]", self.users.join(",")));
        }
        parts.join(" ")
    }
}

/// Provider values must be plain ASCII ids before they become header values: anything else is
/// refused rather than forwarded (SPEC section 7).
pub fn is_plain_id(v: &str) -> bool {
    (1..=256).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@=+/:".contains(&b))
}

/// Secret comparison that takes the same time wherever the strings differ.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::Digest;
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// An nginx file's `proxy_set_header NAME`: does the gateway write `NAME` itself (whatever the
/// file says), so that `check` can say the file's value is never sent? `X-Forwarded-Proto` and
/// `-Host` (from `public_url`), `X-Request-Id`, and the identity headers (`X-WeCom-*`,
/// `X-WeChat-*`, `X-Gateway-*`), in any spelling a back end folds to them (`_`, `.`).
pub fn gateway_writes_header(name: &str) -> bool {
    let folded: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    ["x-wecom-", "x-wechat-", "x-gateway-"]
        .iter()
        .any(|p| folded.starts_with(p))
        || matches!(
            folded.as_str(),
            "x-forwarded-proto" | "x-forwarded-host" | "x-request-id"
        )
}
