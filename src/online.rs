//! `check --online`: whether WeCom takes each app's credentials from this host — its secret,
//! its corp id, and the app's trusted IPs (企业可信IP, which WeCom checks on every call) —
//! told before the first member's sign-in meets a refusal.
//!
//! Each WeCom app's token (and its contact secret's) is fetched once, in this process's own
//! memory: WeCom hands out the token it already holds while it is valid, so the running
//! instances keep theirs. A WeChat app (Official Account, mini-program) is asked for its
//! `stable_token`, which is kept apart from `cgi-bin/token`'s (a new one of those would end the
//! running instances' within five minutes). A suite's token needs the suite ticket WeCom pushes
//! to the running gateway.

use wecom_api::{ApiError, ApiRequest, Credentials, TokenKind};

use crate::config::Config;
use crate::domain::App;
use crate::provider::Provider;

/// What one check found: a line for the operator, and whether it is a refusal.
pub struct Finding {
    pub line: String,
    pub refused: bool,
}

/// Fetches the tokens of every app of `config` that can be checked without disturbing the
/// running instances, in order of the apps' names.
pub async fn check(config: &Config) -> Vec<Finding> {
    let provider = Provider::memory();
    let mut found = Vec::new();
    for (name, app) in &config.apps {
        let checks: &[(TokenKind, &str)] = match &app.credentials {
            Credentials::Wecom {
                contact_secret: Some(_),
                ..
            } => &[
                (TokenKind::Access, "secret"),
                (TokenKind::Contact, "contact_secret"),
            ],
            Credentials::Wecom { .. } => &[(TokenKind::Access, "secret")],
            Credentials::WechatMp { app_id, secret } => {
                // `stable_token` without `force_refresh`: a token of its own, so the running
                // instances' `cgi-bin/token` one is not ended by asking.
                let body = serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": app_id,
                    "secret": secret.expose(),
                    "force_refresh": false,
                });
                let req = ApiRequest::post_json("/cgi-bin/stable_token", &body);
                let answer = provider.call_plain(app, req).await;
                let refused = match answer {
                    Ok(r) if r.errcode == 0 && r.status == 200 => None,
                    Ok(r) => Some(ApiError::Api {
                        errcode: r.errcode,
                        errmsg: r
                            .json()
                            .ok()
                            .and_then(|v| v.get("errmsg")?.as_str().map(str::to_owned))
                            .unwrap_or_else(|| format!("HTTP {}", r.status)),
                    }),
                    Err(e) => Some(e),
                };
                found.push(match refused {
                    None => Finding {
                        line: format!("apps.{name}: secret accepted"),
                        refused: false,
                    },
                    Some(e) => Finding {
                        line: format!(
                            "apps.{name}: secret: {}",
                            refusal(app, TokenKind::Access, &e)
                        ),
                        refused: true,
                    },
                });
                continue;
            }
            Credentials::Suite { .. } => {
                found.push(Finding {
                    line: format!(
                        "apps.{name}: not checked: a suite's token needs the suite ticket WeCom \
                         pushes to the running gateway"
                    ),
                    refused: false,
                });
                continue;
            }
        };
        for &(kind, key) in checks {
            found.push(match provider.token(app, kind).await {
                Ok(_) => Finding {
                    line: format!("apps.{name}: {key} accepted"),
                    refused: false,
                },
                Err(e) => Finding {
                    line: format!("apps.{name}: {key}: {}", refusal(app, kind, &e)),
                    refused: true,
                },
            });
        }
    }
    found
}

/// What a refused fetch says, and what to do about it.
fn refusal(app: &App, kind: TokenKind, e: &ApiError) -> String {
    let base = app.targets.base();
    match e.root() {
        ApiError::Api { errcode, .. } => match wecom_api::advice(*errcode, kind) {
            Some(what) => format!("{e}: {what}"),
            None => e.to_string(),
        },
        ApiError::Timeout | ApiError::Unreachable(_) | ApiError::NotSent(_) => format!(
            "{e}: this host does not reach {base} (an outbound proxy in HTTPS_PROXY, a \
             firewall rule, the name's resolution)"
        ),
        ApiError::BadAnswer(_) => {
            format!("{e}: is {base} WeCom's API (apps.{}.api_base)?", app.name)
        }
    }
}
