//! The one WeCom / WeChat API client of the gateway (SPEC section 11). Login, the JS-SDK and
//! the qyapi endpoint all call through it, so tokens are fetched, cached, refreshed and retried
//! in exactly one place.

mod cache;
mod fallback;
mod fetch;
mod redis_store;
mod stack;
mod store;
mod target;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tower::{BoxError, ServiceBuilder, ServiceExt};

use crate::config::model::{App, StoreBackend, StoreSettings};

pub use cache::{freshness, now_ms, CacheKey, Freshness, DEFAULT_LOCK_TTL};
pub use fallback::FallbackStore;
pub use redis_store::RedisStore;
pub use store::{Cached, MemoryStore, Store, StoreError};

use cache::TokenCache;
use stack::{Attempt, HttpService, RetryPolicy, TokenLayer};
use target::Target;

/// A WeCom call, or a WeChat one, may take this long per try (SPEC section 15).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The app's access token (WeCom `gettoken` with the app secret, WeChat `cgi-bin/token`).
    Access,
    /// The token of the contact secret, the only one `externalcontact/*` accepts.
    Contact,
    /// The corp jsapi ticket (`get_jsapi_ticket`; WeChat `ticket/getticket?type=jsapi`).
    CorpTicket,
    /// The agent jsapi ticket (`ticket/get?type=agent_config`).
    AgentTicket,
}

impl TokenKind {
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Contact => "contact",
            TokenKind::CorpTicket => "corp_ticket",
            TokenKind::AgentTicket => "agent_ticket",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("provider answered errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider answer not understood: {0}")]
    BadAnswer(String),
}

#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: http::Method,
    /// `/cgi-bin/user/get`
    pub path: String,
    /// Without `access_token`, in the caller's order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// 0 when absent (WeChat successes, binary media).
    pub errcode: i64,
}

impl ApiResponse {
    pub fn json(&self) -> Result<serde_json::Value, ProviderError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ProviderError::BadAnswer(format!("not JSON (HTTP {}): {e}", self.status)))
    }
}

/// The `errcode` of a JSON object answer (a number, or a numeric string as some WeCom APIs
/// write it); 0 for anything else, e.g. the bytes of `media/get`.
pub(crate) fn errcode_of(body: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Errcode {
        errcode: Option<serde_json::Value>,
    }
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    if start.map(|i| body[i]) != Some(b'{') {
        return 0;
    }
    match serde_json::from_slice::<Errcode>(body)
        .ok()
        .and_then(|e| e.errcode)
    {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

struct Inner {
    client: reqwest::Client,
    /// Tokens, tickets and other short-lived shared values (verified external contacts):
    /// memory, or Redis shared by every instance.
    store: Arc<dyn Store>,
    cache: Arc<TokenCache>,
}

#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

impl Provider {
    pub fn new(store: Arc<dyn Store>) -> Provider {
        Self::with_lock_ttl(store, DEFAULT_LOCK_TTL)
    }

    /// The provider `[store]` asks for: the memory store, or Redis shared by every process of
    /// the cluster with this process's copy underneath for when Redis does not answer.
    pub fn from_settings(settings: &StoreSettings) -> Result<Provider, StoreError> {
        let store: Arc<dyn Store> = match (settings.backend, &settings.redis_url) {
            (StoreBackend::Redis, Some(url)) => Arc::new(FallbackStore::new(RedisStore::open(
                url.expose(),
                &settings.key_prefix,
            )?)),
            (StoreBackend::Redis, None) => {
                return Err(StoreError("redis backend without a redis_url".into()))
            }
            (StoreBackend::Memory, _) => Arc::new(MemoryStore::default()),
        };
        Ok(Self::with_lock_ttl(store, settings.lock_ttl))
    }

    pub fn with_lock_ttl(store: Arc<dyn Store>, lock_ttl: Duration) -> Provider {
        let client = reqwest::Client::builder()
            .connect_timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("the HTTP client builds");
        Provider {
            inner: Arc::new(Inner {
                client,
                cache: TokenCache::with_lock_ttl(store.clone(), lock_ttl),
                store,
            }),
        }
    }

    pub fn memory() -> Provider {
        Provider::new(Arc::new(MemoryStore::default()))
    }

    /// Where tokens, tickets and other shared values live (memory or Redis).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// A valid token or ticket of `kind` for `app`, from the cache (early refresh, single flight).
    pub async fn token(&self, app: &App, kind: TokenKind) -> Result<Arc<str>, ProviderError> {
        self.token_of(&Arc::new(Target::new(app, kind)), None).await
    }

    /// Replaces a token or ticket that the provider refused out of band (the JS-SDK reporting
    /// `invalid signature` for a ticket WeCom dropped early): compare-and-expire `failed`, then
    /// the cache fetches once. When another caller already replaced it, that value is returned
    /// and nothing is fetched.
    pub async fn replace_token(
        &self,
        app: &App,
        kind: TokenKind,
        failed: &str,
    ) -> Result<Arc<str>, ProviderError> {
        self.token_of(&Arc::new(Target::new(app, kind)), Some(failed.into()))
            .await
    }

    /// Calls `{app.api_base}{req.path}` with the `kind` token injected as `access_token`.
    /// Token errors: one compare-and-expire, one refresh, one retry; -1: up to three retries
    /// with backoff; everything else is returned as is. `Ok` also when errcode != 0.
    pub async fn call(
        &self,
        app: &App,
        kind: TokenKind,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        self.call_target(Arc::new(Target::new(app, kind)), req)
            .await
    }

    /// The same client without a token (WeChat `sns/oauth2/access_token`, `sns/userinfo` with
    /// a user's web token): the per-try timeout, no token retry.
    pub async fn call_plain(
        &self,
        app: &App,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        self.plain(target::base_of(app), req).await
    }

    /// The client as a stack, assembled here and nowhere else. Retry sits outside token
    /// injection so that each try carries the token current at that moment (the retry after
    /// a token error carries the refreshed one); the timeout bounds each try, not the call.
    fn stack(
        &self,
    ) -> impl tower::Service<Attempt, Response = stack::Answered, Error = BoxError, Future: Send>
           + Clone
           + Send {
        ServiceBuilder::new()
            .layer(tower::retry::RetryLayer::new(RetryPolicy::default()))
            .layer(TokenLayer {
                provider: self.clone(),
            })
            .layer(tower::timeout::TimeoutLayer::new(CALL_TIMEOUT))
            .service(HttpService {
                client: self.inner.client.clone(),
            })
    }

    /// Plain calls: the timeout and the HTTP service only.
    fn plain_stack(
        &self,
    ) -> impl tower::Service<Attempt, Response = stack::Answered, Error = BoxError, Future: Send>
           + Clone
           + Send {
        ServiceBuilder::new()
            .layer(tower::timeout::TimeoutLayer::new(CALL_TIMEOUT))
            .service(HttpService {
                client: self.inner.client.clone(),
            })
    }

    pub(crate) async fn call_target(
        &self,
        target: Arc<Target>,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        let attempt = Attempt {
            base: target.base.clone(),
            target: Some(target),
            req,
            token: None,
            failed: None,
        };
        // Boxed: a ticket fetch calls back in here with the access token.
        let fut: cache::BoxFuture<_> = Box::pin(self.stack().oneshot(attempt));
        fut.await.map(|a| a.response).map_err(provider_error)
    }

    pub(crate) async fn plain(
        &self,
        base: Arc<str>,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        let attempt = Attempt {
            base,
            target: None,
            req,
            token: None,
            failed: None,
        };
        self.plain_stack()
            .oneshot(attempt)
            .await
            .map(|a| a.response)
            .map_err(provider_error)
    }

    /// The token of `target`; after a token error with `failed`, that one is expired first
    /// (only if still cached) so that the cache fetches a new one.
    pub(crate) async fn token_of(
        &self,
        target: &Arc<Target>,
        failed: Option<Arc<str>>,
    ) -> Result<Arc<str>, ProviderError> {
        let cache = &self.inner.cache;
        if let Some(failed) = failed {
            cache.expire_if(&target.key, &failed).await?;
        }
        cache
            .get(&target.key, fetch::fetcher(self, target.clone()))
            .await
    }
}

fn provider_error(e: BoxError) -> ProviderError {
    if e.is::<tower::timeout::error::Elapsed>() {
        return ProviderError::Timeout;
    }
    match e.downcast::<ProviderError>() {
        Ok(p) => *p,
        Err(e) => ProviderError::Unreachable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_of_answers() {
        let cases: &[(&str, i64)] = &[
            (r#"{"errcode":0,"errmsg":"ok"}"#, 0),
            (
                r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
                42001,
            ),
            (r#"  {"errcode":-1,"errmsg":"system busy"}"#, -1),
            (r#"{"errcode":"45009"}"#, 45009),
            (r#"{"access_token":"x","expires_in":7200}"#, 0),
            (r#"{"base_resp":{"ret":0}}"#, 0),
            ("\u{ff}\u{d8}binary jpeg", 0),
            ("[1,2]", 0),
            ("", 0),
            (r#"{"errcode":40001"#, 0),
        ];
        for (body, want) in cases {
            assert_eq!(errcode_of(body.as_bytes()), *want, "{body}");
        }
    }
}
