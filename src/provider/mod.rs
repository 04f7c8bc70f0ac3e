//! The minimal provider client the login flow needs: one cached token per (app, kind), a 5 s
//! timeout, one refresh-and-retry on a token error. This is the minimal version; the shared
//! token cache (single flight, early refresh, Redis) replaces it with the same API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::model::{App, Credentials};

/// The provider's answer must come within this (SPEC section 15).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Access,
    Contact,
    CorpTicket,
    AgentTicket,
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

pub struct ApiRequest {
    pub method: http::Method,
    pub path: String,
    /// Without `access_token`: the provider client injects it.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// A GET with `query` (used internally for token and ticket fetches).
fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: http::Method::GET,
        path: path.to_owned(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        headers: Vec::new(),
        body: Bytes::new(),
    }
}

pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// 0 when absent: WeChat successes carry no errcode.
    pub errcode: i64,
}

impl ApiResponse {
    pub fn json(&self) -> Result<serde_json::Value, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| ProviderError::BadAnswer(e.to_string()))
    }

    fn errmsg(&self) -> String {
        self.json()
            .ok()
            .and_then(|v| v.get("errmsg").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }
}

/// The errcodes that mean "this token is no longer good" (WECOM_API.md).
fn is_token_error(errcode: i64) -> bool {
    matches!(errcode, 40001 | 40014 | 42001)
}

#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    tokens: Mutex<HashMap<CacheKey, (Arc<str>, Instant)>>,
}

/// Per app, never per corp only (WECOM_API.md, pain 4).
type CacheKey = (String, String, String, TokenKind);

impl Provider {
    pub fn memory() -> Provider {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("TLS backend available");
        Provider {
            inner: Arc::new(Inner {
                http,
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub async fn token(&self, app: &App, kind: TokenKind) -> Result<Arc<str>, ProviderError> {
        let key = cache_key(app, kind);
        if let Some((value, until)) = self.inner.tokens.lock().unwrap().get(&key) {
            if Instant::now() < *until {
                return Ok(value.clone());
            }
        }
        let req = match (kind, &app.credentials) {
            (TokenKind::Access, Credentials::Wecom { corp_id, .. }) => get(
                "/cgi-bin/gettoken",
                &[("corpid", corp_id), ("corpsecret", app.secret.expose())],
            ),
            (
                TokenKind::Contact,
                Credentials::Wecom {
                    corp_id,
                    contact_secret,
                    ..
                },
            ) => {
                let secret = contact_secret.as_ref().unwrap_or(&app.secret);
                get(
                    "/cgi-bin/gettoken",
                    &[("corpid", corp_id), ("corpsecret", secret.expose())],
                )
            }
            (TokenKind::Access | TokenKind::Contact, Credentials::WechatMp { app_id }) => get(
                "/cgi-bin/token",
                &[
                    ("grant_type", "client_credential"),
                    ("appid", app_id),
                    ("secret", app.secret.expose()),
                ],
            ),
            (TokenKind::CorpTicket, Credentials::Wecom { .. }) => {
                return self.ticket(app, "/cgi-bin/get_jsapi_ticket", &[]).await
            }
            (TokenKind::AgentTicket, Credentials::Wecom { .. }) => {
                return self
                    .ticket(app, "/cgi-bin/ticket/get", &[("type", "agent_config")])
                    .await
            }
            (_, Credentials::WechatMp { .. }) => {
                return self
                    .ticket(app, "/cgi-bin/ticket/getticket", &[("type", "jsapi")])
                    .await
            }
        };
        let resp = self.send(app, req, None).await?;
        self.remember(key, &resp, "access_token")
    }

    async fn ticket(
        &self,
        app: &App,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Arc<str>, ProviderError> {
        let kind = match path {
            "/cgi-bin/ticket/get" => TokenKind::AgentTicket,
            _ => TokenKind::CorpTicket,
        };
        // Boxed: a ticket needs the access token, fetched through the same cache.
        let access = Box::pin(self.token(app, TokenKind::Access)).await?;
        let resp = self.send(app, get(path, query), Some(&access)).await?;
        self.remember(cache_key(app, kind), &resp, "ticket")
    }

    fn remember(
        &self,
        key: CacheKey,
        resp: &ApiResponse,
        field: &str,
    ) -> Result<Arc<str>, ProviderError> {
        if resp.errcode != 0 {
            return Err(ProviderError::Api {
                errcode: resp.errcode,
                errmsg: resp.errmsg(),
            });
        }
        let v = resp.json()?;
        let value: Arc<str> = v
            .get(field)
            .and_then(|t| t.as_str())
            .ok_or_else(|| ProviderError::BadAnswer(format!("no {field}")))?
            .into();
        let expires_in = v.get("expires_in").and_then(|e| e.as_u64()).unwrap_or(7200);
        // Refresh a little early so a call never carries a token about to lapse.
        let lifetime = Duration::from_secs(expires_in.saturating_sub(expires_in / 10));
        self.inner
            .tokens
            .lock()
            .unwrap()
            .insert(key, (value.clone(), Instant::now() + lifetime));
        Ok(value)
    }

    /// `{app.api_base}{path}` with the kind's token injected as `access_token`; token errors
    /// are retried once after a refresh. Ok also when errcode != 0.
    pub async fn call(
        &self,
        app: &App,
        kind: TokenKind,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        let token = self.token(app, kind).await?;
        let resp = self.send(app, clone_req(&req), Some(&token)).await?;
        if !is_token_error(resp.errcode) {
            return Ok(resp);
        }
        // Expire only the value that failed: another caller may have refreshed already.
        let key = cache_key(app, kind);
        {
            let mut tokens = self.inner.tokens.lock().unwrap();
            if tokens.get(&key).is_some_and(|(v, _)| *v == token) {
                tokens.remove(&key);
            }
        }
        let token = self.token(app, kind).await?;
        self.send(app, req, Some(&token)).await
    }

    /// No token injected (WeChat `sns/oauth2/access_token`, `sns/userinfo`), 5 s timeout.
    pub async fn call_plain(
        &self,
        app: &App,
        req: ApiRequest,
    ) -> Result<ApiResponse, ProviderError> {
        self.send(app, req, None).await
    }

    async fn send(
        &self,
        app: &App,
        req: ApiRequest,
        token: Option<&str>,
    ) -> Result<ApiResponse, ProviderError> {
        let base = app.api_base.as_str().trim_end_matches('/');
        let mut url = url::Url::parse(&format!("{base}{}", req.path))
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(t) = token {
                q.append_pair("access_token", t);
            }
            for (k, v) in &req.query {
                q.append_pair(k, v);
            }
        }
        let mut builder = self.inner.http.request(req.method, url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let resp = builder.body(req.body).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::BadAnswer(format!("HTTP status {status}")));
        }
        let errcode = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("errcode").and_then(|e| e.as_i64()))
            .unwrap_or(0);
        Ok(ApiResponse {
            status,
            headers,
            body,
            errcode,
        })
    }
}

fn clone_req(r: &ApiRequest) -> ApiRequest {
    ApiRequest {
        method: r.method.clone(),
        path: r.path.clone(),
        query: r.query.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
    }
}

fn cache_key(app: &App, kind: TokenKind) -> CacheKey {
    let id = match &app.credentials {
        Credentials::Wecom {
            corp_id, agent_id, ..
        } => format!("{corp_id}/{agent_id}"),
        Credentials::WechatMp { app_id } => app_id.clone(),
    };
    (
        app.api_base.as_str().to_owned(),
        id,
        app.secret.fingerprint(),
        kind,
    )
}

fn transport(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        ProviderError::Unreachable(without_url(&e))
    }
}

/// reqwest's message names the URL, whose query may hold a secret or a token.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken answer"
    } else {
        "request failed"
    };
    kind.to_owned()
}
