//! The layers of the API client: token injection, the retry policy, the per-try timeout and
//! the HTTP service at the bottom. They are assembled in [`super::Provider::stack`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tower::retry::Policy;
use tower::{BoxError, Layer, Service, ServiceExt};

use super::cache::BoxFuture;
use super::target::Target;
use super::{ApiRequest, ApiResponse, Provider, ProviderError};
use crate::metrics::METRICS;

/// One try of one call, as it travels down the stack.
#[derive(Clone)]
pub(crate) struct Attempt {
    /// `api_base` without a trailing slash.
    pub base: Arc<str>,
    /// The app and kind whose token is injected; `None` for plain calls.
    pub target: Option<Arc<Target>>,
    pub req: ApiRequest,
    /// Set by the token layer: the token this try carries.
    pub token: Option<Arc<str>>,
    /// Set by the retry policy: the token that just failed, to compare-and-expire.
    pub failed: Option<Arc<str>>,
}

/// An answer, with the token that earned it (the policy expires exactly that one).
pub(crate) struct Answered {
    pub response: ApiResponse,
    pub token: Option<Arc<str>>,
}

/// The bottom of the stack: one HTTP exchange, the body read whole.
#[derive(Clone)]
pub(crate) struct HttpService {
    pub client: reqwest::Client,
}

impl Service<Attempt> for HttpService {
    type Response = Answered;
    type Error = ProviderError;
    type Future = BoxFuture<Result<Answered, ProviderError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, a: Attempt) -> Self::Future {
        let client = self.client.clone();
        Box::pin(async move {
            let url = url_of(&a.base, &a.req, a.token.as_deref())?;
            let mut rb = client.request(a.req.method.clone(), url);
            for (name, value) in &a.req.headers {
                rb = rb.header(name.as_str(), value.as_str());
            }
            let resp = rb
                .body(a.req.body.clone())
                .send()
                .await
                .map_err(transport_error)?;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = resp.bytes().await.map_err(transport_error)?;
            let errcode = super::errcode_of(&body);
            Ok(Answered {
                response: ApiResponse {
                    status,
                    headers,
                    body,
                    errcode,
                },
                token: a.token,
            })
        })
    }
}

/// reqwest's errors name the URL, which holds the token: never let it out.
fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unreachable(e.without_url().to_string())
    }
}

/// `{base}{path}?access_token=T&other=params`, the caller's parameters in their order.
pub(crate) fn url_of(
    base: &str,
    req: &ApiRequest,
    token: Option<&str>,
) -> Result<url::Url, ProviderError> {
    let mut url = url::Url::parse(&format!("{base}{}", req.path))
        .map_err(|e| ProviderError::Unreachable(format!("bad API URL: {e}")))?;
    url.set_query(None);
    if token.is_some() || !req.query.is_empty() {
        let mut q = url.query_pairs_mut();
        if let Some(t) = token {
            q.append_pair("access_token", t);
        }
        for (k, v) in &req.query {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// Injects the current token of the attempt's app and kind. On a retry after a token error
/// it first expires the failed token, only if the cache still holds it.
#[derive(Clone)]
pub(crate) struct TokenLayer {
    pub provider: Provider,
}

impl<S> Layer<S> for TokenLayer {
    type Service = TokenService<S>;
    fn layer(&self, inner: S) -> TokenService<S> {
        TokenService {
            provider: self.provider.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct TokenService<S> {
    provider: Provider,
    inner: S,
}

impl<S> Service<Attempt> for TokenService<S>
where
    S: Service<Attempt, Response = Answered, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Answered;
    type Error = BoxError;
    type Future = BoxFuture<Result<Answered, BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut a: Attempt) -> Self::Future {
        let provider = self.provider.clone();
        let inner = self.inner.clone();
        Box::pin(async move {
            if let Some(target) = a.target.clone() {
                let token = provider.token_of(&target, a.failed.take()).await?;
                a.token = Some(token);
            }
            inner.oneshot(a).await
        })
    }
}

/// What to do with an answer (SPEC section 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Done,
    /// 40001/40014/42001: expire the failed token, fetch once, try once more.
    RefreshToken,
    /// -1 "system busy": wait, then try again.
    Backoff(Duration),
}

pub(crate) const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];
const BUSY_RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Per-call retry state; tower clones the policy for each call, so every call starts afresh.
#[derive(Debug, Clone, Default)]
pub(crate) struct RetryPolicy {
    token_refreshed: bool,
    busy_retries: u32,
}

impl RetryPolicy {
    /// One token refresh per call, never a loop; at most three busy retries, 200/400/800 ms.
    pub fn decide(&self, errcode: i64) -> Decision {
        if TOKEN_ERRORS.contains(&errcode) && !self.token_refreshed {
            Decision::RefreshToken
        } else if errcode == -1 && self.busy_retries < BUSY_RETRIES {
            Decision::Backoff(FIRST_BACKOFF * 2u32.pow(self.busy_retries))
        } else {
            Decision::Done
        }
    }
}

impl Policy<Attempt, Answered, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Attempt,
        result: &mut Result<Answered, BoxError>,
    ) -> Option<Self::Future> {
        // Transport failures and timeouts are not retried: the call may have been done.
        let answered = result.as_ref().ok()?;
        let app = req.target.as_ref().map_or("-", |t| &*t.app);
        match self.decide(answered.response.errcode) {
            Decision::Done => None,
            Decision::RefreshToken => {
                self.token_refreshed = true;
                req.failed = answered.token.clone();
                METRICS
                    .qyapi_retries
                    .with_label_values(&[app, "token_expired"])
                    .inc();
                Some(tokio::time::sleep(Duration::ZERO))
            }
            Decision::Backoff(wait) => {
                self.busy_retries += 1;
                METRICS
                    .qyapi_retries
                    .with_label_values(&[app, "system_busy"])
                    .inc();
                Some(tokio::time::sleep(wait))
            }
        }
    }

    fn clone_request(&mut self, req: &Attempt) -> Option<Attempt> {
        Some(req.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_decisions() {
        let fresh = RetryPolicy::default();
        let refreshed = RetryPolicy {
            token_refreshed: true,
            busy_retries: 0,
        };
        let busy = |n| RetryPolicy {
            token_refreshed: false,
            busy_retries: n,
        };
        let ms = Duration::from_millis;
        let cases: &[(&RetryPolicy, i64, Decision)] = &[
            (&fresh, 0, Decision::Done),
            (&fresh, 40001, Decision::RefreshToken),
            (&fresh, 40014, Decision::RefreshToken),
            (&fresh, 42001, Decision::RefreshToken),
            (&refreshed, 40014, Decision::Done),
            (&refreshed, 42001, Decision::Done),
            (&fresh, -1, Decision::Backoff(ms(200))),
            (&busy(1), -1, Decision::Backoff(ms(400))),
            (&busy(2), -1, Decision::Backoff(ms(800))),
            (&busy(3), -1, Decision::Done),
            (&refreshed, -1, Decision::Backoff(ms(200))),
            (&fresh, 45009, Decision::Done),
            (&fresh, 45033, Decision::Done),
            (&fresh, 40013, Decision::Done),
            (&fresh, 60020, Decision::Done),
            (&fresh, 48002, Decision::Done),
        ];
        for (policy, errcode, want) in cases {
            assert_eq!(
                policy.decide(*errcode),
                *want,
                "{policy:?} errcode {errcode}"
            );
        }
    }

    #[test]
    fn url_puts_the_token_first_and_keeps_parameter_order() {
        let req = ApiRequest {
            method: http::Method::GET,
            path: "/cgi-bin/user/get".into(),
            query: vec![
                ("userid".into(), "zhang san".into()),
                ("b".into(), "2".into()),
                ("a".into(), "1&x=y".into()),
            ],
            headers: vec![],
            body: bytes::Bytes::new(),
        };
        let url = url_of("http://127.0.0.1:9", &req, Some("T")).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/cgi-bin/user/get?access_token=T&userid=zhang+san&b=2&a=1%26x%3Dy"
        );
        let url = url_of("https://qyapi.weixin.qq.com", &req, None).unwrap();
        assert!(url
            .as_str()
            .ends_with("/cgi-bin/user/get?userid=zhang+san&b=2&a=1%26x%3Dy"));
    }
}
