//! The file format of `gateway.toml` (SPEC section 4), exactly as users write it.
//!
//! Every table refuses unknown keys. String values pass through [`values`] so that
//! `"${NAME}"` is read from the environment and durations are checked where they are written;
//! the checks that need more than one value (an unknown upstream, a secret that is too short)
//! happen in [`super::compile`], which keeps the spans recorded here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use super::values::{self, Text};
pub use crate::domain::{CallbackFormat, LoginMode};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub server: Spanned<Server>,
    pub session: Option<Spanned<Session>>,
    #[serde(default)]
    pub store: Store,
    #[serde(default)]
    pub apps: BTreeMap<String, Spanned<App>>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<Upstream>>,
    #[serde(default)]
    pub routes: Vec<Spanned<Route>>,
    #[serde(default)]
    pub rewrite: Vec<Spanned<Rewrite>>,
    #[serde(default)]
    pub nginx: Nginx,
    #[serde(default)]
    pub emulator: Emulator,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Spanned<Text>,
    pub public_url: Spanned<Text>,
    pub admin_listen: Option<Spanned<Text>>,
    pub qyapi_listen: Option<Spanned<Text>>,
    #[serde(default)]
    pub qyapi_allow: Vec<Spanned<Text>>,
    pub threads: Option<Spanned<usize>>,
    pub prefix: Option<Spanned<Text>>,
    #[serde(default)]
    pub trust_host_header: bool,
    pub keepalive_timeout: Option<Spanned<Text>>,
    pub header_timeout: Option<Spanned<Text>>,
    pub max_connections: Option<Spanned<usize>>,
    pub large_client_header_buffers: Option<Spanned<Text>>,
    pub forward_auth_key: Option<Spanned<Text>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub secret: Spanned<Text>,
    pub cookie_name: Option<Spanned<Text>>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub ttl: Option<Duration>,
    pub policy_ttl: Option<Spanned<Text>>,
    pub assertion_secret: Option<Spanned<Text>>,
    pub assertion_audience: Option<Spanned<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// `None`: not written (the default, `local`).
    #[serde(default)]
    pub backend: Option<StoreBackend>,
    /// `local`: the database file, relative to the config file.
    pub path: Option<Spanned<Text>>,
    pub redis_url: Option<Spanned<Text>>,
    pub key_prefix: Option<Text>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub lock_ttl: Option<Duration>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// One file on this machine (SPEC section 21): one instance, survives restarts and kill -9.
    #[default]
    Local,
    Memory,
    Redis,
}

/// One credential set. The keys of both kinds live in one table so that a key of the wrong
/// kind can be reported at its own line ("`agent_id` is a WeCom key") instead of as a vague
/// "unknown field" from an internally tagged enum, which loses the spans.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub kind: Spanned<AppKind>,
    pub corp_id: Option<Spanned<Text>>,
    pub agent_id: Option<Spanned<u64>>,
    pub app_id: Option<Spanned<Text>>,
    /// Every kind but the suites', whose secret is `suite_secret`.
    pub secret: Option<Spanned<Text>>,
    /// `wecom_suite` / `wecom_custom` (SPEC section 20): the suite (or 代开发 template) id and
    /// secret from the provider's console.
    pub suite_id: Option<Spanned<Text>>,
    pub suite_secret: Option<Spanned<Text>>,
    /// The provider's own corp id: the receive id of WeCom's URL check of a suite's callback
    /// URLs (its messages carry the suite id or the installing corp's id).
    pub provider_corp_id: Option<Spanned<Text>>,
    pub contact_secret: Option<Spanned<Text>>,
    pub login: Option<Spanned<LoginMode>>,
    pub scope: Option<Spanned<Text>>,
    #[serde(default)]
    pub return_query: BTreeMap<String, Spanned<Text>>,
    pub api_base: Option<Spanned<Text>>,
    pub authorize_url: Option<Spanned<Text>>,
    pub qr_login_url: Option<Spanned<Text>>,
    pub jssdk_urls: Option<Vec<Spanned<Text>>>,
    pub miniprogram: Option<Spanned<bool>>,
    pub reauth_after: Option<Spanned<Text>>,
    /// SPEC section 18: WeCom's callbacks of this app, and where they go.
    pub callback: Option<Spanned<Callback>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    pub token: Spanned<Text>,
    pub encoding_aes_key: Spanned<Text>,
    pub forward: Option<Spanned<Text>>,
    pub forward_path: Option<Spanned<Text>>,
    #[serde(default)]
    pub format: CallbackFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppKind {
    Wecom,
    WechatMp,
    /// A WeChat mini-program (SPEC section 19): `app_id` and `secret` like an Official
    /// Account, signing in only from the mini-program (`wx.login`).
    WechatMini,
    /// A service provider's third-party app (第三方应用), installed by many corps (SPEC 20).
    WecomSuite,
    /// A custom-developed app (代开发): per corp, the permanent code is the app's secret.
    WecomCustom,
}

impl AppKind {
    /// As written in the file.
    pub fn name(self) -> &'static str {
        match self {
            AppKind::Wecom => "wecom",
            AppKind::WechatMp => "wechat_mp",
            AppKind::WechatMini => "wechat_mini",
            AppKind::WecomSuite => "wecom_suite",
            AppKind::WecomCustom => "wecom_custom",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// One server; or `servers`, several.
    pub url: Option<Spanned<Text>>,
    pub servers: Option<Spanned<Vec<Spanned<UpstreamServer>>>>,
    /// How a request's server is chosen: "round_robin" (default) | "ip_hash".
    pub balance: Option<Spanned<Text>>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub write_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub idle_timeout: Option<Duration>,
}

/// One of `servers = [{ url = "http://10.0.0.2:9000", weight = 2 }, ...]`: nginx's `server`
/// line of an `upstream` block, with its defaults (weight 1, max_fails 1, fail_timeout 10s).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamServer {
    pub url: Spanned<Text>,
    pub weight: Option<Spanned<i64>>,
    pub max_fails: Option<Spanned<i64>>,
    #[serde(default, deserialize_with = "values::opt_duration_or_zero")]
    pub fail_timeout: Option<Duration>,
    #[serde(default)]
    pub backup: bool,
    #[serde(default)]
    pub down: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub location: Spanned<Text>,
    /// None: a login area only (`login` then), whose paths the rule set's others serve.
    pub upstream: Option<Spanned<Text>>,
    pub login: Option<Spanned<Text>>,
    #[serde(default)]
    pub external_contact: ExternalContactMode,
    #[serde(default)]
    pub rewrite: Vec<Spanned<Rewrite>>,
    pub allow: Option<Spanned<AllowLists>>,
}

/// `allow = { departments = [2], tags = [7], users = ["zhangsan"] }` (SPEC section 17). Ids
/// are read as integers here and checked positive in compile, where the span is at hand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowLists {
    #[serde(default)]
    pub departments: Vec<Spanned<i64>>,
    #[serde(default)]
    pub tags: Vec<Spanned<i64>>,
    #[serde(default)]
    pub users: Vec<Spanned<Text>>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalContactMode {
    #[default]
    None,
    Optional,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub pattern: Spanned<Text>,
    pub replacement: Spanned<Text>,
    pub flag: Option<Spanned<RewriteFlag>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewriteFlag {
    Last,
    Break,
    Redirect,
    Permanent,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nginx {
    #[serde(default)]
    pub include: Vec<Spanned<Text>>,
    /// nginx's prefix (`-p`, `--prefix`): where a relative `root` or `alias` starts.
    pub prefix: Option<Spanned<Text>>,
    /// The directory of nginx's main `nginx.conf`: where a relative `include` starts.
    pub conf_dir: Option<Spanned<Text>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Emulator {
    #[serde(default)]
    pub enabled: bool,
    pub listen: Option<Spanned<Text>>,
}
