//! The server-side code exchange (SPEC section 8): a code becomes a verified [`Identity`].

use serde_json::Value;

use crate::config::model::{App, Credentials};
use crate::identity::{is_plain_id, Identity};
use crate::provider::{ApiError, ApiRequest, ApiResponse, Provider, TokenKind};

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// 40029 invalid code, 40163 code already used: the login restarts once by itself.
    #[error("the provider refused the code (errcode {0})")]
    CodeInvalid(i64),
    #[error(transparent)]
    Provider(#[from] ApiError),
    /// A provider value that is not a plain ASCII id never becomes a header.
    #[error("the provider's {0} is not a plain id")]
    NotPlain(&'static str),
    /// Neither a userid nor an openid came back.
    #[error("the provider named nobody")]
    NoSubject,
    /// WeChat's snapshot page (朋友圈快照页) visitor: a virtual openid that is nobody's.
    #[error("a WeChat snapshot page visitor")]
    SnapshotUser,
    /// A member of a corp that has not installed the service-provider app (SPEC section 20).
    #[error("this organisation has not installed the app")]
    NotInstalled,
    /// What this kind of app cannot do.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl LoginError {
    /// The `result` label of `wgw_logins_total`.
    pub fn result(&self) -> &'static str {
        match self {
            LoginError::CodeInvalid(_) => "code_invalid",
            LoginError::Provider(e) if matches!(e.root(), ApiError::Timeout) => "timeout",
            LoginError::Provider(_) => "provider_error",
            LoginError::NotPlain(_) | LoginError::NoSubject => "bad_identity",
            LoginError::SnapshotUser => "snapshot_user",
            LoginError::NotInstalled => "not_installed",
            LoginError::Unsupported(_) => "unsupported",
        }
    }
}

/// Requests are built here, not in `provider`, so this module depends only on the provider
/// API the shared token cache also offers.
fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: http::Method::GET,
        path: path.to_owned(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        raw_query: String::new(),
        headers: Vec::new(),
        body: bytes::Bytes::new(),
    }
}

fn post_json(path: &str, body: &Value) -> ApiRequest {
    ApiRequest {
        method: http::Method::POST,
        path: path.to_owned(),
        query: Vec::new(),
        raw_query: String::new(),
        headers: vec![(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )],
        body: serde_json::to_vec(body).unwrap_or_default().into(),
    }
}

fn is_code_error(errcode: i64) -> bool {
    matches!(errcode, 40029 | 40163)
}

/// Non-zero errcodes become errors; a refused code is told apart.
fn checked(resp: ApiResponse) -> Result<Value, LoginError> {
    let body = resp.json()?;
    match resp.errcode {
        wecom_api::UNREADABLE_ERRCODE => Err(LoginError::Provider(ApiError::BadAnswer(
            "an errcode that is no number".into(),
        ))),
        // A success only in a success: an error page of WeCom's front (or a redirect) whose
        // body happens to read as JSON names nobody.
        0 if !(200..300).contains(&resp.status) => Err(LoginError::Provider(ApiError::BadAnswer(
            format!("HTTP {}", resp.status),
        ))),
        0 => Ok(body),
        e if is_code_error(e) => Err(LoginError::CodeInvalid(e)),
        errcode => Err(LoginError::Provider(ApiError::Api {
            errcode,
            errmsg: body
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })),
    }
}

/// A field that must be a plain id when present.
fn plain(body: &Value, field: &'static str) -> Result<Option<String>, LoginError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if is_plain_id(s) => Ok(Some(s.clone())),
        Some(_) => Err(LoginError::NotPlain(field)),
    }
}

/// The login code of the app's mini-program (SPEC section 19): `wx.qy.login`'s for a WeCom app,
/// `/cgi-bin/miniprogram/jscode2session` with the app's token; `wx.login`'s for a WeChat
/// mini-program, `/sns/jscode2session` with its app id and secret. The `session_key` it returns is
/// the mini-program's own secret with WeChat and is dropped here: it never leaves this function.
pub async fn miniprogram(
    provider: &Provider,
    app: &App,
    code: &str,
) -> Result<Identity, LoginError> {
    let (corp_id, agent_id) = match &app.credentials {
        Credentials::Wecom {
            corp_id, agent_id, ..
        } => (corp_id, agent_id),
        Credentials::Suite { .. } => {
            return Err(LoginError::Unsupported(
                "mini-program login is not offered for service-provider apps",
            ))
        }
        // `wx.login`'s code of a WeChat mini-program: its own openid, the shared unionid.
        Credentials::WechatMp { app_id, secret } => {
            let resp = provider
                .call_plain(
                    app,
                    get(
                        "/sns/jscode2session",
                        &[
                            ("appid", app_id),
                            ("secret", secret.expose()),
                            ("js_code", code),
                            ("grant_type", "authorization_code"),
                        ],
                    ),
                )
                .await?;
            let body = checked(resp)?;
            return Ok(Identity {
                wechat_app_id: Some(app_id.clone()),
                openid: Some(plain(&body, "openid")?.ok_or(LoginError::NoSubject)?),
                unionid: plain(&body, "unionid")?,
                ..Identity::default()
            });
        }
    };
    let resp = provider
        .call(
            app,
            TokenKind::Access,
            get(
                "/cgi-bin/miniprogram/jscode2session",
                &[("js_code", code), ("grant_type", "authorization_code")],
            ),
        )
        .await?;
    let body = checked(resp)?;
    // A code of another corp's mini-program must not become a member of this one.
    if plain(&body, "corpid")?.as_deref() != Some(corp_id.as_str()) {
        return Err(LoginError::NotPlain("corpid"));
    }
    let userid = plain(&body, "userid")?.ok_or(LoginError::NoSubject)?;
    Ok(Identity {
        corp_id: Some(corp_id.clone()),
        agent_id: Some(*agent_id),
        userid: Some(userid),
        ..Identity::default()
    })
}

/// `installed`: a 代开发 app's corp, chosen when its sign-in started.
pub async fn exchange(
    provider: &Provider,
    app: &App,
    installed: Option<&crate::suite::Corp>,
    code: &str,
) -> Result<Identity, LoginError> {
    match &app.credentials {
        Credentials::Suite { custom: true, .. } => match installed {
            Some(corp) => custom(provider, corp, code).await,
            None => Err(LoginError::NotInstalled),
        },
        Credentials::Suite { .. } => third_party(provider, app, code).await,
        Credentials::Wecom {
            corp_id, agent_id, ..
        } => {
            let resp = provider
                .call(
                    app,
                    TokenKind::Access,
                    get("/cgi-bin/auth/getuserinfo", &[("code", code)]),
                )
                .await?;
            let body = checked(resp)?;
            let userid = plain(&body, "userid")?;
            let openid = plain(&body, "openid")?;
            if userid.is_none() && openid.is_none() {
                return Err(LoginError::NoSubject);
            }
            if let (Some(userid), Some(ticket)) =
                (&userid, body.get("user_ticket").and_then(Value::as_str))
            {
                user_detail(provider, app, userid, ticket).await;
            }
            Ok(Identity {
                corp_id: Some(corp_id.clone()),
                agent_id: Some(*agent_id),
                // A member is named by userid alone; openid is for non-members (an empty or null
                // userid is none).
                openid: openid.filter(|_| userid.is_none()),
                userid,
                ..Identity::default()
            })
        }
        Credentials::WechatMp { app_id, secret } => {
            let resp = provider
                .call_plain(
                    app,
                    get(
                        "/sns/oauth2/access_token",
                        &[
                            ("appid", app_id),
                            ("secret", secret.expose()),
                            ("code", code),
                            ("grant_type", "authorization_code"),
                        ],
                    ),
                )
                .await?;
            let body = checked(resp)?;
            // The visitor of a page shared to Moments sees a snapshot and gets a virtual openid
            // that stands for nobody: it must never become a session (WECOM_API.md).
            if is_snapshot_user(&body) {
                return Err(LoginError::SnapshotUser);
            }
            let openid = plain(&body, "openid")?.ok_or(LoginError::NoSubject)?;
            let mut unionid = plain(&body, "unionid")?;
            // The scope the person consented to: ask for the profile, whose unionid is the
            // one to trust when the code answer left it out.
            if app.scope == "snsapi_userinfo" {
                // The per-user web token, not the basic one (WECOM_API.md).
                let web_token = body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ApiError::BadAnswer("no web access_token".into()))?;
                let info = provider
                    .call_plain(
                        app,
                        get(
                            "/sns/userinfo",
                            &[
                                ("access_token", web_token),
                                ("openid", &openid),
                                ("lang", "zh_CN"),
                            ],
                        ),
                    )
                    .await?;
                let info = checked(info)?;
                if plain(&info, "openid")?.as_deref() != Some(openid.as_str()) {
                    return Err(LoginError::Provider(ApiError::BadAnswer(
                        "userinfo names another openid".into(),
                    )));
                }
                unionid = plain(&info, "unionid")?.or(unionid);
            }
            Ok(Identity {
                wechat_app_id: Some(app_id.clone()),
                openid: Some(openid),
                unionid,
                ..Identity::default()
            })
        }
    }
}

/// A third-party app's code (SPEC section 20): `service/auth/getuserinfo3rd` with the suite
/// token names the corp, the member and the provider's `open_userid`. A member whose corp has
/// not installed the app (anyone can scan a QR code) gets no session.
async fn third_party(provider: &Provider, app: &App, code: &str) -> Result<Identity, LoginError> {
    let resp = provider
        .call(
            app,
            TokenKind::Suite,
            get("/cgi-bin/service/auth/getuserinfo3rd", &[("code", code)]),
        )
        .await?;
    let body = checked(resp)?;
    let corp_id = plain(&body, "corpid")?.ok_or(LoginError::NotInstalled)?;
    // A non-member (`openid` only) has no corp to be of.
    let userid = plain(&body, "userid")?.ok_or(LoginError::NoSubject)?;
    let open_userid = plain(&body, "open_userid")?.ok_or(LoginError::NoSubject)?;
    let corp = provider
        .installs()
        .corp(&**provider.store(), app, &corp_id)
        .await
        .map_err(|e| ApiError::Unreachable(e.to_string()))?
        .ok_or(LoginError::NotInstalled)?;
    Ok(Identity {
        corp_id: Some(corp_id),
        agent_id: corp.install.agent(),
        userid: Some(userid),
        open_userid: Some(open_userid),
        ..Identity::default()
    })
}

/// A 代开发 app's code: the self-built exchange (`auth/getuserinfo`) with the corp's own token,
/// whose permanent code is the app's secret there.
async fn custom(
    provider: &Provider,
    corp: &crate::suite::Corp,
    code: &str,
) -> Result<Identity, LoginError> {
    let resp = provider
        .corp_call(
            corp,
            TokenKind::Access,
            get("/cgi-bin/auth/getuserinfo", &[("code", code)]),
        )
        .await?;
    let body = checked(resp)?;
    // Only a member of that corp; a visitor (openid) has no corp to be of.
    let userid = plain(&body, "userid")?.ok_or(LoginError::NoSubject)?;
    Ok(Identity {
        corp_id: Some(corp.install.corp_id.clone()),
        agent_id: corp.install.agent(),
        userid: Some(userid),
        ..Identity::default()
    })
}

/// `is_snapshotuser: 1`, however a provider spells the one.
fn is_snapshot_user(body: &Value) -> bool {
    match body.get("is_snapshotuser") {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s.trim() == "1",
        Some(Value::Bool(b)) => *b,
        _ => false,
    }
}

/// `snsapi_privateinfo`: the member's details. They may add to what the login knows but never
/// replace the userid of `getuserinfo`; the identity headers of SPEC section 7 carry none of
/// them, so a failure here does not fail the login.
async fn user_detail(provider: &Provider, app: &App, userid: &str, ticket: &str) {
    let req = post_json(
        "/cgi-bin/auth/getuserdetail",
        &serde_json::json!({ "user_ticket": ticket }),
    );
    match provider.call(app, TokenKind::Access, req).await {
        Ok(resp) if resp.errcode == 0 => {
            let other = resp
                .json()
                .ok()
                .and_then(|v| v.get("userid").and_then(Value::as_str).map(str::to_owned))
                .filter(|u| u != userid);
            if other.is_some() {
                tracing::warn!(app = %app.name, "getuserdetail named another userid; ignored");
            }
        }
        Ok(resp) => {
            tracing::info!(app = %app.name, errcode = resp.errcode, "getuserdetail refused")
        }
        Err(e) => tracing::info!(app = %app.name, error = %e, "getuserdetail failed"),
    }
}
