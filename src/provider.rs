//! The gateway's one WeCom / WeChat client (SPEC section 11), over the `wecom-api` crate.
//! Login, the JS-SDK and the qyapi endpoint all call through it, so tokens are fetched, cached,
//! refreshed and retried in exactly one place. This module only picks an app's target for a
//! kind and counts what the client reports.

use std::sync::Arc;
use std::time::Duration;

use wecom_api::{Client, Clock, FactCache, MemoryStore, Observer, RetryReason, Store, TokenTarget};

pub use wecom_api::{ApiError, ApiRequest, ApiResponse, TokenKind};

use crate::config::model::{App, DEFAULT_LOCK_TTL};
use crate::metrics::{labels, METRICS};

#[derive(Clone)]
pub struct Provider {
    client: Client,
    /// Member facts for access rules, through the same cache machinery as tokens.
    facts: FactCache,
    /// The corps that installed the suite apps, with their targets (SPEC section 20).
    installs: Arc<crate::suite::Installs>,
}

impl Provider {
    pub fn new(store: Arc<dyn Store>, lock_ttl: Duration, clock: Clock) -> Provider {
        let client = Client::builder(store.clone(), lock_ttl)
            .clock(clock.clone())
            .observer(Arc::new(Metrics))
            .build();
        let facts = FactCache::new(store, client.clone(), clock, lock_ttl);
        Provider {
            client,
            facts,
            installs: Arc::default(),
        }
    }

    /// One process, its own memory, its own clock.
    pub fn memory() -> Provider {
        let clock = Clock::system();
        Provider::new(
            Arc::new(MemoryStore::new(clock.clone())),
            DEFAULT_LOCK_TTL,
            clock,
        )
    }

    /// The facts of access rules (SPEC section 17), cached for `policy_ttl` in the store.
    pub fn facts(&self) -> &FactCache {
        &self.facts
    }

    /// The installs of the suite apps (SPEC section 20).
    pub fn installs(&self) -> &crate::suite::Installs {
        &self.installs
    }

    /// A valid token or ticket of `kind` of one installed corp (its own targets).
    pub async fn corp_token(
        &self,
        corp: &crate::suite::Corp,
        kind: TokenKind,
    ) -> Result<Arc<str>, ApiError> {
        self.client.token(corp.targets.get(kind)?).await
    }

    /// [`Provider::replace_token`] for one installed corp's token or ticket.
    pub async fn replace_corp_token(
        &self,
        corp: &crate::suite::Corp,
        kind: TokenKind,
        failed: &str,
    ) -> Result<Arc<str>, ApiError> {
        self.client
            .replace_token(corp.targets.get(kind)?, failed)
            .await
    }

    /// A call with the `kind` token of one installed corp (see [`Client::call`]).
    pub async fn corp_call(
        &self,
        corp: &crate::suite::Corp,
        kind: TokenKind,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.client.call(corp.targets.get(kind)?, req).await
    }

    /// Where tokens, tickets and other shared values live (memory or Redis).
    pub fn store(&self) -> &Arc<dyn Store> {
        self.client.store()
    }

    /// A valid token or ticket of `kind` for `app`, from the cache (early refresh, single flight).
    pub async fn token(&self, app: &App, kind: TokenKind) -> Result<Arc<str>, ApiError> {
        self.client.token(app.targets.get(kind)?).await
    }

    /// Replaces a token or ticket that the provider refused out of band: compare-and-expire
    /// `failed`, then one fetch (see [`Client::replace_token`]).
    pub async fn replace_token(
        &self,
        app: &App,
        kind: TokenKind,
        failed: &str,
    ) -> Result<Arc<str>, ApiError> {
        self.client
            .replace_token(app.targets.get(kind)?, failed)
            .await
    }

    /// Calls `{app.api_base}{req.path}` with the `kind` token injected (see [`Client::call`]).
    /// `Ok` also when errcode != 0.
    pub async fn call(
        &self,
        app: &App,
        kind: TokenKind,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.client.call(app.targets.get(kind)?, req).await
    }

    /// [`Provider::call`] whose tries may each take `timeout` (see
    /// [`wecom_api::Client::call_patiently`]).
    pub async fn call_patiently(
        &self,
        app: &App,
        kind: TokenKind,
        req: ApiRequest,
        timeout: std::time::Duration,
    ) -> Result<ApiResponse, ApiError> {
        self.client
            .call_patiently(app.targets.get(kind)?, req, timeout)
            .await
    }

    /// A call without a token (WeChat `sns/oauth2/access_token`, `sns/userinfo` with a user's
    /// web token): the per-try timeout, no token retry.
    pub async fn call_plain(&self, app: &App, req: ApiRequest) -> Result<ApiResponse, ApiError> {
        self.client.call_plain(app.targets.base(), req).await
    }
}

/// What the client reports, counted in the gateway's registry. Labels come from the
/// configuration (app names) or fixed sets (kinds, reasons, store operations, errcodes).
pub struct Metrics;

impl Observer for Metrics {
    fn fetched(&self, target: &TokenTarget, result: Result<(), &ApiError>) {
        let label = match result.map_err(ApiError::root) {
            Ok(()) => "ok",
            Err(ApiError::NotSent(_)) => "unreachable",
            Err(ApiError::Api { errcode, .. }) => labels::errcode(*errcode),
            Err(ApiError::Timeout) => "timeout",
            Err(ApiError::Unreachable(_)) => "unreachable",
            Err(ApiError::BadAnswer(_)) => "bad_answer",
        };
        METRICS
            .token_fetches
            .with_label_values(&[target.app(), target.kind().label(), label])
            .inc();
    }

    fn retried(&self, target: &TokenTarget, why: RetryReason) {
        METRICS
            .qyapi_retries
            .with_label_values(&[target.app(), why.label()])
            .inc();
    }

    fn store_failed(&self, _store: &'static str, op: &'static str) {
        METRICS.store_errors.with_label_values(&[op]).inc();
    }
}
