//! How a token or ticket is fetched, per [`Plan`]: with the credentials alone over the plain
//! stack (`gettoken`, `cgi-bin/token`), or as an ordinary call over the token stack with the
//! access token (the jsapi tickets, which so get that token's refresh and retry).
//!
//! Each fetcher holds the stack it needs and nothing above it, so a ticket fetch goes down to
//! the credential tokens and never back up into itself.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tower::{BoxError, Service, ServiceExt};

use crate::error::ApiError;
use crate::observe::Observer;
use crate::request::ApiResponse;
use crate::stack::{api_error, Answered, Attempt, To};
use crate::store::Cached;
use crate::target::{Plan, TokenTarget};

/// What a fetch brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: String,
    pub expires_in: u64,
}

/// What a cached value is fetched for: its key, when a fresh value expires, and who hears of
/// its fetches. [`TokenTarget`] is one; the gateway's member facts are another.
pub trait CacheTarget: Clone + Send + Sync + 'static {
    /// The key in the store and of the in-process single flight. Never holds a secret.
    fn key(&self) -> &Arc<str>;

    /// When a value fetched at `now_ms` expires. Tokens: [`crate::expiry_of`] (WeCom hands the same
    /// token back with its old expiry).
    fn expiry(&self, fetched: &Fetched, previous: Option<&Cached>, now_ms: u64) -> u64;

    /// Tells `observer` that a fetch ended.
    fn observe(&self, _observer: &dyn Observer, _result: Result<(), &ApiError>) {}

    /// The warning of a failed fetch (the cache throttles it to one a minute per key).
    fn warn(&self, e: &ApiError);

    /// The warning of a value the provider refused kept as it is: replaced already, the
    /// provider handed the same back (the cache throttles it to one a minute per key).
    fn warn_kept(&self) {}

    /// A failure no retry soon can change: the next requests share it for a few seconds
    /// instead of asking again each ([`crate::is_config_refusal`] at least).
    fn held_back(&self, e: &ApiError) -> bool;
}

/// How the values of a cache are fetched; called at most once per refresh of a key.
pub trait Fetch: Send + Sync + 'static {
    /// What a value is fetched for: a [`TokenTarget`], or another [`CacheTarget`].
    type Target: CacheTarget;

    fn fetch(
        &self,
        target: &Self::Target,
    ) -> impl Future<Output = Result<Fetched, ApiError>> + Send + 'static;
}

/// A stack a fetch can go down: the plain stack or the token stack of [`crate::Client`].
pub(crate) trait Stack:
    Service<Attempt, Response = Answered, Error = BoxError, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Stack for S where
    S: Service<Attempt, Response = Answered, Error = BoxError, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// `gettoken` / `token` with the target's credentials over the plain stack: no token, no
/// token retry.
pub(crate) struct WithCredentials<S> {
    pub plain: S,
    /// Where a suite's newest ticket is read at the moment of its token's fetch.
    pub store: Arc<dyn crate::store::Store>,
}

impl<S: Stack> Fetch for WithCredentials<S> {
    type Target = TokenTarget;

    fn fetch(
        &self,
        target: &TokenTarget,
    ) -> impl Future<Output = Result<Fetched, ApiError>> + Send + 'static {
        let stack = self.plain.clone();
        let store = self.store.clone();
        let target = target.clone();
        async move {
            let request = match target.plan() {
                Plan::Credentials { request } => request.clone(),
                Plan::SuiteTicket {
                    suite_id,
                    secret,
                    ticket_key,
                } => suite_token_request(&*store, suite_id, secret, ticket_key).await?,
                Plan::WithToken { .. } | Plan::Exchanged { .. } => {
                    // A ticket is fetched with a token; it is never sent as one.
                    return Err(ApiError::Api {
                        errcode: 48001,
                        errmsg: format!(
                            "a {} is not fetched with credentials alone",
                            target.kind().label()
                        ),
                    });
                }
            };
            // -1 ("system busy") is tried again as every call's is: 200, 400, 800 ms. The plain
            // stack has no retry layer (a token error cannot happen here: no token is sent).
            let (mut busy, began) = (0, std::time::Instant::now());
            loop {
                let attempt = Attempt::new(To::Plain(target.base().clone()), request.clone());
                let answered = stack.clone().oneshot(attempt).await.map_err(api_error)?;
                match crate::stack::busy_backoff(answered.response.errcode, busy)
                    .filter(|wait| began.elapsed() + *wait < crate::stack::RETRY_BUDGET)
                {
                    Some(wait) => {
                        busy += 1;
                        tokio::time::sleep(wait).await;
                    }
                    None => return read(&answered.response, target.field()),
                }
            }
        }
    }
}

/// `service/get_suite_token` with the newest ticket in the store. No ticket yet (the suite was
/// just configured and WeCom has not pushed one): WeCom's own 41023, "suite_ticket missing",
/// without a call that could only fail.
async fn suite_token_request(
    store: &dyn crate::store::Store,
    suite_id: &str,
    secret: &crate::Secret,
    ticket_key: &str,
) -> Result<crate::request::ApiRequest, ApiError> {
    let kept = store
        .get_fact(ticket_key)
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?;
    let ticket = kept
        .as_deref()
        .and_then(crate::target::SuiteTicket::decode)
        .ok_or_else(|| ApiError::Api {
            errcode: 41023,
            errmsg: format!("no suite_ticket of suite {suite_id} received yet"),
        })?;
    Ok(crate::request::ApiRequest::post_json(
        "/cgi-bin/service/get_suite_token",
        &serde_json::json!({
            "suite_id": suite_id,
            "suite_secret": secret.expose(),
            "suite_ticket": ticket.ticket,
        }),
    ))
}

/// An API call with another target's token over the token stack: the jsapi tickets, and a
/// corp's token exchanged with its suite's.
pub(crate) struct WithToken<S> {
    pub calls: S,
}

impl<S: Stack> Fetch for WithToken<S> {
    type Target = TokenTarget;

    fn fetch(
        &self,
        target: &TokenTarget,
    ) -> impl Future<Output = Result<Fetched, ApiError>> + Send + 'static {
        let stack = self.calls.clone();
        let target = target.clone();
        async move {
            let (Plan::WithToken { via, request } | Plan::Exchanged { via, request }) =
                target.plan()
            else {
                return Err(ApiError::BadAnswer(format!(
                    "{} is fetched with credentials, not a token",
                    target.kind().label()
                )));
            };
            let attempt = Attempt::new(To::Token(via.clone()), request.clone());
            let answered = stack.oneshot(attempt).await.map_err(api_error)?;
            read(&answered.response, target.field())
        }
    }
}

/// `{field, expires_in}` from a success; the provider's errcode otherwise.
pub(crate) fn read(resp: &ApiResponse, field: &str) -> Result<Fetched, ApiError> {
    let v: Value = resp.json()?;
    if resp.errcode == crate::request::UNREADABLE_ERRCODE {
        return Err(ApiError::BadAnswer("an errcode that is no number".into()));
    }
    if resp.errcode != 0 {
        return Err(ApiError::Api {
            errcode: resp.errcode,
            errmsg: v["errmsg"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if resp.status != 200 {
        return Err(ApiError::BadAnswer(format!("HTTP {}", resp.status)));
    }
    let value = v[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadAnswer(format!("no {field} in the answer")))?;
    // Kept and then sent in every call's URL: one that no URL can carry (a 70 KB one, spaces,
    // line breaks) would fail every call before it reached the provider, so no 40014 would
    // ever expire it, for the whole of its `expires_in`.
    if !plausible_credential(value) {
        return Err(ApiError::BadAnswer(format!(
            "a {field} of {} bytes that is not plain text",
            value.len()
        )));
    }
    let expires_in = v["expires_in"].as_u64().unwrap_or(7200);
    Ok(Fetched {
        value: value.to_owned(),
        expires_in,
    })
}

/// WeCom's and WeChat's tokens and tickets are a few hundred visible ASCII characters (their
/// documents ask for 512 bytes of room).
fn plausible_credential(v: &str) -> bool {
    v.len() <= 2048 && v.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::errcode_of;
    use bytes::Bytes;

    fn resp(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status,
            headers: vec![],
            body: Bytes::from(body.to_owned()),
            errcode: errcode_of(body.as_bytes()),
        }
    }

    #[test]
    fn reading_token_answers() {
        let ok = |r: Result<Fetched, ApiError>| r.map(|f| (f.value, f.expires_in));
        let cases: &[(u16, &str, &str, Result<(&str, u64), &str>)] = &[
            (
                200,
                r#"{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}"#,
                "access_token",
                Ok(("T", 7200)),
            ),
            // WeChat successes carry no errcode.
            (
                200,
                r#"{"access_token":"W","expires_in":7000}"#,
                "access_token",
                Ok(("W", 7000)),
            ),
            (
                200,
                r#"{"errcode":0,"errmsg":"ok","ticket":"J","expires_in":7200}"#,
                "ticket",
                Ok(("J", 7200)),
            ),
            (
                200,
                r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
                "access_token",
                Err("40001"),
            ),
            (
                200,
                r#"{"errcode":"60020","errmsg":"not allow"}"#,
                "access_token",
                Err("60020"),
            ),
            (
                200,
                r#"{"errcode":0,"errmsg":"ok"}"#,
                "access_token",
                Err("bad"),
            ),
            (502, "Bad Gateway", "access_token", Err("bad")),
            (200, r#"{"access_token":""}"#, "access_token", Err("bad")),
        ];
        for (status, body, field, want) in cases {
            let got = ok(read(&resp(*status, body), field));
            match (want, &got) {
                (Ok((v, e)), Ok((gv, ge))) => assert_eq!((*v, *e), (gv.as_str(), *ge), "{body}"),
                (Err("bad"), Err(ApiError::BadAnswer(_))) => {}
                (Err(code), Err(ApiError::Api { errcode, .. })) => {
                    assert_eq!(code.parse::<i64>().unwrap(), *errcode, "{body}")
                }
                _ => panic!("{body}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// A token or ticket no URL can carry is not kept: every call would fail before reaching
    /// the provider, and nothing would expire it for its whole life.
    #[test]
    fn a_token_no_url_can_carry_is_a_bad_answer() {
        let long = "L".repeat(70_000);
        for token in [long.as_str(), "a\r\nb", "a b", "令牌", "a\u{7f}b"] {
            let body = serde_json::json!({"errcode": 0, "access_token": token, "expires_in": 7200});
            let got = read(&resp(200, &body.to_string()), "access_token");
            assert!(
                matches!(got, Err(ApiError::BadAnswer(_))),
                "{:?}: {got:?}",
                &token[..token.len().min(20)]
            );
        }
        let longest = "T".repeat(2048);
        let body = serde_json::json!({"access_token": longest, "expires_in": 7200});
        assert!(read(&resp(200, &body.to_string()), "access_token").is_ok());
    }
}
