//! The client: its stacks built once, its two caches, and the calls it offers.

use std::sync::Arc;
use std::time::Duration;

use tower::retry::{Retry, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};

use crate::cache::TokenCache;
use crate::error::ApiError;
use crate::fetch::{WithCredentials, WithToken};
use crate::local::Local;
use crate::observe::{Observer, Unobserved};
use crate::request::{ApiRequest, ApiResponse};
use crate::stack::{api_error, Attempt, HttpService, RetryPolicy, To, TokenLayer, TokenService};
use crate::store::Store;
use crate::target::{Plan, TokenTarget};
use crate::transport::Transport;
use crate::{Clock, Proxies};

pub use crate::stack::CALL_TIMEOUT;

/// Plain calls: one HTTP exchange, bounded by its call's timeout per try.
type PlainStack = HttpService;
/// Calls with a credential token (a suite's own calls, the exchange of a corp token): retry,
/// token injection from the credential tokens, timeout, HTTP.
type CredentialCallStack = Retry<RetryPolicy, TokenService<CredentialTokens, HttpService>>;
/// Every other call: the same layers, injecting any token (a corp's exchanged one too).
type CallStack = Retry<RetryPolicy, TokenService<Tiered, HttpService>>;
/// Tokens fetched with credentials alone (and a suite's, with its stored ticket).
type CredentialTokens = TokenCache<WithCredentials<PlainStack>>;
/// Corp tokens exchanged with a suite token, over the credential call stack.
type CorpTokens = TokenCache<WithToken<CredentialCallStack>>;

/// What the call stack injects: a credential token, or a corp's exchanged one. Two caches, so
/// that each fetch goes only down: ticket -> corp token -> suite token -> stored ticket.
#[derive(Clone)]
pub(crate) struct Tiered {
    credentials: CredentialTokens,
    corps: CorpTokens,
}

impl crate::stack::TokenSource for Tiered {
    async fn token(
        &self,
        target: &TokenTarget,
        failed: Option<Arc<str>>,
        scope: &str,
    ) -> Result<Arc<str>, ApiError> {
        match target.plan() {
            Plan::Exchanged { .. } => self.corps.token(target, failed, scope).await,
            _ => self.credentials.token(target, failed, scope).await,
        }
    }
}

/// What the call stack is made of: handles a thread can fork ([`Local`]), so that the clones
/// of its stack count in its own allocations.
struct Parts {
    observer: Local<dyn Observer>,
    credentials: CredentialTokens,
    corps: CorpTokens,
    transport: Local<Transport>,
}

impl Parts {
    fn fork(&self) -> Parts {
        Parts {
            observer: self.observer.fork(),
            credentials: self.credentials.fork(),
            corps: self.corps.fork(),
            transport: self.transport.fork(),
        }
    }

    /// The call stack over these parts: retry, token injection from either cache, the per-try
    /// timeout, HTTP.
    fn calls(&self) -> CallStack {
        ServiceBuilder::new()
            .layer(RetryLayer::new(RetryPolicy::new(self.observer.clone())))
            .layer(TokenLayer {
                source: Tiered {
                    credentials: self.credentials.clone(),
                    corps: self.corps.clone(),
                },
            })
            .service(HttpService {
                transport: self.transport.clone(),
            })
    }
}

/// The WeCom / WeChat API client: tokens fetched, cached, refreshed and retried in one place.
/// Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    plain: PlainStack,
    parts: Parts,
    /// Each thread's call stack, over its own fork of the parts: a call clones the stack
    /// (tower's `oneshot` takes it by value, the retry layer keeps a copy), and those clones
    /// then write no reference count the other threads write.
    calls: thread_local::ThreadLocal<CallStack>,
    /// Tickets, fetched by calls that carry a credential token or a corp's.
    tickets: TokenCache<WithToken<CallStack>>,
    store: Arc<dyn Store>,
    clock: Clock,
}

pub struct ClientBuilder {
    store: Arc<dyn Store>,
    lock_ttl: Duration,
    clock: Clock,
    observer: Arc<dyn Observer>,
    proxies: Proxies,
}

impl ClientBuilder {
    /// The outbound proxies calls go through (default: the environment's `HTTPS_PROXY`,
    /// `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, read once here).
    pub fn proxies(mut self, proxies: Proxies) -> Self {
        self.proxies = proxies;
        self
    }

    /// The clock tokens are timed by (default: the system's).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Who is told of fetches, retries and store failures (default: nobody).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// The stacks, assembled here and in [`Parts::calls`], nowhere else. Retry sits outside
    /// token injection so that each try carries the token current at that moment (the retry
    /// after a token error carries the refreshed one); the timeout bounds each try, not the
    /// call. The ticket cache fetches through the call stack, whose token layer reads the
    /// credential cache, which fetches through the plain stack: a chain that ends.
    pub fn build(self) -> Client {
        let transport = Local::new(Arc::new(crate::stack::transport(
            CALL_TIMEOUT,
            Duration::from_secs(60),
            self.proxies,
        )));
        let observer = Local::new(self.observer.clone());
        let http = HttpService {
            transport: transport.clone(),
        };
        // Each try is bounded by its call's own timeout, in the HTTP service: one timer per
        // try.
        let plain: PlainStack = http.clone();
        let credentials = TokenCache::new(
            self.store.clone(),
            WithCredentials {
                plain: plain.clone(),
                store: self.store.clone(),
            },
            self.clock.clone(),
            self.lock_ttl,
            self.observer.clone(),
        );
        let credential_calls: CredentialCallStack = ServiceBuilder::new()
            .layer(RetryLayer::new(RetryPolicy::new(observer.clone())))
            .layer(TokenLayer {
                source: credentials.clone(),
            })
            .service(http);
        let corps = TokenCache::new(
            self.store.clone(),
            WithToken {
                calls: credential_calls,
            },
            self.clock.clone(),
            self.lock_ttl,
            self.observer.clone(),
        );
        let parts = Parts {
            observer,
            credentials,
            corps,
            transport,
        };
        let tickets = TokenCache::new(
            self.store.clone(),
            WithToken {
                calls: parts.calls(),
            },
            self.clock.clone(),
            self.lock_ttl,
            self.observer,
        );
        Client {
            inner: Arc::new(Inner {
                plain,
                parts,
                calls: thread_local::ThreadLocal::new(),
                tickets,
                store: self.store,
                clock: self.clock,
            }),
        }
    }
}

impl Client {
    /// `lock_ttl`: how long one process may hold a key's refresh lock in the store.
    pub fn builder(store: Arc<dyn Store>, lock_ttl: Duration) -> ClientBuilder {
        ClientBuilder {
            store,
            lock_ttl,
            clock: Clock::system(),
            observer: Arc::new(Unobserved),
            proxies: Proxies::from_env(),
        }
    }

    /// Where tokens, tickets and facts live (memory or Redis).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// A valid token or ticket of `target`, from the cache (early refresh, single flight).
    pub async fn token(&self, target: &TokenTarget) -> Result<Arc<str>, ApiError> {
        match target.plan() {
            Plan::Credentials { .. } | Plan::SuiteTicket { .. } => {
                self.inner.parts.credentials.get(target).await
            }
            Plan::Exchanged { .. } => self.inner.parts.corps.get(target).await,
            Plan::WithToken { .. } => self.inner.tickets.get(target).await,
        }
    }

    /// Replaces a token or ticket that the provider refused out of band (the JS-SDK reporting
    /// `invalid signature` for a ticket WeCom dropped early): compare-and-expire `failed`, then
    /// the cache fetches once. When another caller already replaced it, that value is returned
    /// and nothing is fetched.
    pub async fn replace_token(
        &self,
        target: &TokenTarget,
        failed: &str,
    ) -> Result<Arc<str>, ApiError> {
        // Its own scope: a report of the JS-SDK, not an API's refusal.
        const SCOPE: &str = "out-of-band";
        match target.plan() {
            Plan::Credentials { .. } | Plan::SuiteTicket { .. } => {
                self.inner
                    .parts
                    .credentials
                    .replace(target, failed, SCOPE)
                    .await
            }
            Plan::Exchanged { .. } => self.inner.parts.corps.replace(target, failed, SCOPE).await,
            Plan::WithToken { .. } => self.inner.tickets.replace(target, failed, SCOPE).await,
        }
    }

    /// Calls `{api_base}{req.path}` with `target`'s token injected as `access_token`.
    /// Token errors: one compare-and-expire, one refresh, one retry; -1: up to three retries
    /// with backoff; everything else is returned as is. `Ok` also when errcode != 0.
    pub async fn call(
        &self,
        target: &TokenTarget,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        self.call_patiently(target, req, CALL_TIMEOUT).await
    }

    /// [`Client::call`] whose tries may each take `timeout` (60 s at most): for a call whose
    /// answer must not be lost to a slow provider, nobody waiting on it (an AuthCode's
    /// exchange: asked again, a spent code is refused).
    pub async fn call_patiently(
        &self,
        target: &TokenTarget,
        req: ApiRequest,
        timeout: Duration,
    ) -> Result<ApiResponse, ApiError> {
        let attempt = Attempt::patient(To::Token(target.clone()), req, timeout);
        let this = &*self.inner;
        let calls = this.calls.get_or(|| this.parts.fork().calls());
        let answered = calls.clone().oneshot(attempt).await;
        answered.map(|a| a.response).map_err(api_error)
    }

    /// The same client without a token (WeChat `sns/oauth2/access_token`, `sns/userinfo` with
    /// a user's web token): the per-try timeout, no token retry.
    pub async fn call_plain(
        &self,
        api_base: &Arc<str>,
        req: ApiRequest,
    ) -> Result<ApiResponse, ApiError> {
        let attempt = Attempt::new(To::Plain(api_base.clone()), req);
        let answered = self.inner.plain.clone().oneshot(attempt).await;
        answered.map(|a| a.response).map_err(api_error)
    }
}
