//! How each kind of token and ticket is fetched (WECOM_API.md): WeCom `gettoken` with the
//! app's or the contact secret, WeChat `cgi-bin/token`, and the three jsapi tickets, which are
//! ordinary API calls made with the access token (so they get its refresh and retry too).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::cache::{Fetch, Fetched};
use super::target::{Creds, Target};
use super::{ApiRequest, ApiResponse, Provider, ProviderError, TokenKind};
use crate::metrics::{labels, METRICS};

fn get(path: &str, query: Vec<(&str, &str)>) -> ApiRequest {
    ApiRequest {
        method: http::Method::GET,
        path: path.to_owned(),
        query: query
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        headers: Vec::new(),
        body: Bytes::new(),
    }
}

/// The fetch of `target`'s key, counted in `wgw_token_fetches_total`.
pub(crate) fn fetcher(provider: &Provider, target: Arc<Target>) -> Fetch {
    let provider = provider.clone();
    Arc::new(move || {
        let provider = provider.clone();
        let target = target.clone();
        Box::pin(async move {
            let result = fetch(&provider, &target).await;
            let label = match &result {
                Ok(_) => "ok",
                Err(ProviderError::Api { errcode, .. }) => labels::errcode(*errcode),
                Err(ProviderError::Timeout) => "timeout",
                Err(ProviderError::Unreachable(_)) => "unreachable",
                Err(ProviderError::BadAnswer(_)) => "bad_answer",
            };
            METRICS
                .token_fetches
                .with_label_values(&[&*target.app, target.kind.label(), label])
                .inc();
            result
        })
    })
}

async fn fetch(provider: &Provider, target: &Target) -> Result<Fetched, ProviderError> {
    let plain = |req| provider.plain(target.base.clone(), req);
    match (&*target.creds, target.kind) {
        (
            Creds::Wecom {
                corp_id, secret, ..
            },
            TokenKind::Access,
        ) => {
            let req = get(
                "/cgi-bin/gettoken",
                vec![("corpid", corp_id), ("corpsecret", secret.expose())],
            );
            read(&plain(req).await?, "access_token")
        }
        (
            Creds::Wecom {
                corp_id,
                contact_secret,
                ..
            },
            TokenKind::Contact,
        ) => {
            let Some(secret) = contact_secret else {
                return Err(ProviderError::Api {
                    errcode: 41004,
                    errmsg: format!("app {} has no contact_secret", target.app),
                });
            };
            let req = get(
                "/cgi-bin/gettoken",
                vec![("corpid", corp_id), ("corpsecret", secret.expose())],
            );
            read(&plain(req).await?, "access_token")
        }
        (Creds::Wecom { .. }, TokenKind::CorpTicket) => {
            ticket(provider, target, get("/cgi-bin/get_jsapi_ticket", vec![])).await
        }
        (Creds::Wecom { .. }, TokenKind::AgentTicket) => {
            let req = get("/cgi-bin/ticket/get", vec![("type", "agent_config")]);
            ticket(provider, target, req).await
        }
        (Creds::WechatMp { app_id, secret }, TokenKind::Access) => {
            let req = get(
                "/cgi-bin/token",
                vec![
                    ("grant_type", "client_credential"),
                    ("appid", app_id),
                    ("secret", secret.expose()),
                ],
            );
            read(&plain(req).await?, "access_token")
        }
        (Creds::WechatMp { .. }, TokenKind::CorpTicket) => {
            let req = get("/cgi-bin/ticket/getticket", vec![("type", "jsapi")]);
            ticket(provider, target, req).await
        }
        (Creds::WechatMp { .. }, TokenKind::Contact | TokenKind::AgentTicket) => {
            Err(ProviderError::Api {
                errcode: 48001,
                errmsg: format!("an Official Account has no {} token", target.kind.label()),
            })
        }
    }
}

async fn ticket(
    provider: &Provider,
    target: &Target,
    req: ApiRequest,
) -> Result<Fetched, ProviderError> {
    let access = Arc::new(target.with_kind(TokenKind::Access));
    let resp = provider.call_target(access, req).await?;
    read(&resp, "ticket")
}

/// `{field, expires_in}` from a success; the provider's errcode otherwise.
pub(crate) fn read(resp: &ApiResponse, field: &str) -> Result<Fetched, ProviderError> {
    let v: Value = resp.json()?;
    if resp.errcode != 0 {
        return Err(ProviderError::Api {
            errcode: resp.errcode,
            errmsg: v["errmsg"].as_str().unwrap_or_default().to_owned(),
        });
    }
    if resp.status != 200 {
        return Err(ProviderError::BadAnswer(format!("HTTP {}", resp.status)));
    }
    let value = v[field]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProviderError::BadAnswer(format!("no {field} in the answer")))?;
    let expires_in = v["expires_in"].as_u64().unwrap_or(7200);
    Ok(Fetched {
        value: value.to_owned(),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status,
            headers: vec![],
            body: Bytes::from(body.to_owned()),
            errcode: super::super::errcode_of(body.as_bytes()),
        }
    }

    #[test]
    fn reading_token_answers() {
        let ok = |r: Result<Fetched, ProviderError>| r.map(|f| (f.value, f.expires_in));
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
                (Err("bad"), Err(ProviderError::BadAnswer(_))) => {}
                (Err(code), Err(ProviderError::Api { errcode, .. })) => {
                    assert_eq!(code.parse::<i64>().unwrap(), *errcode, "{body}")
                }
                _ => panic!("{body}: want {want:?}, got {got:?}"),
            }
        }
    }
}
