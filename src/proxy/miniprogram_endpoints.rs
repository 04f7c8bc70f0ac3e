//! `POST {prefix}/miniprogram/login` (SPEC section 19): a mini-program's login code becomes a
//! bearer session token. The mini-program then calls the CRM through the gateway with
//! `Authorization: Bearer TOKEN`, treated exactly like that app's session cookie.

use pingora::proxy::Session;
use serde::Deserialize;

use super::{request, Ctx};
use crate::answers::{self, Answer, Failure, Kind};
use crate::identity::is_plain_id;
use crate::login::exchange::{self, LoginError};
use crate::login::session::SessionEntry;
use crate::login::{bearer, now_secs};
use crate::metrics::{labels, METRICS};
use crate::provider::{ApiError, Provider};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    app: String,
    code: String,
}

pub async fn login(
    session: &mut Session,
    ctx: &Ctx,
    provider: &Provider,
) -> Result<Answer, Failure> {
    let config = &ctx.config;
    let body: LoginBody = request::json_body(
        session,
        4096,
        "expected {\"app\":\"NAME\",\"code\":\"...\"}",
    )
    .await?;
    let settings = config
        .session
        .as_ref()
        .ok_or_else(|| Failure::new(Kind::NotFound, "login is not configured"))?;
    let app = config
        .apps
        .get(&body.app)
        .filter(|a| a.miniprogram)
        .ok_or_else(|| {
            Failure::new(
                Kind::BadRequest,
                "not a mini-program app (miniprogram = true, or kind = \"wechat_mini\")",
            )
        })?;
    // Codes are short tokens; anything else is not sent to WeCom at all.
    if !is_plain_id(&body.code) {
        return Err(Failure::new(
            Kind::BadRequest,
            "the code is not a login code",
        ));
    }
    // Each exchange is a provider call: a client looping made-up codes is cut off as a sign-in
    // callback loop is (as many per address, counted apart), before WeCom's quota pays for it.
    if !crate::login::callback_limit::allow_miniprogram(ctx.remote_ip) {
        METRICS
            .logins
            .with_label_values(&[labels::app(&config.apps, &app.name), "rate_limited"])
            .inc();
        return Err(Failure::new(
            Kind::TooManyRequests,
            "too many sign-ins from this address: wait a minute and try again",
        ));
    }
    let count = |result: &str| {
        METRICS
            .logins
            .with_label_values(&[labels::app(&config.apps, &app.name), result])
            .inc();
    };
    match exchange::miniprogram(provider, app, &body.code).await {
        Ok(identity) => {
            count("ok");
            let ttl = settings.ttl.as_secs();
            let entry = SessionEntry::new(app, &identity, now_secs(), ttl);
            Ok(answers::json(
                200,
                &serde_json::json!({ "token": bearer::issue(settings, &entry), "expires_in": ttl }),
                &ctx.request_id,
            ))
        }
        Err(e) => {
            count(e.result());
            tracing::warn!(app = %app.name, error = %e, request_id = %ctx.request_id, "mini-program login failed");
            Err(match e {
                // A used, expired or foreign code: the mini-program calls wx.qy.login again.
                LoginError::CodeInvalid(_) => Failure::new(
                    Kind::LoginRequired,
                    "the code was refused: call wx.qy.login (wx.login) again",
                ),
                LoginError::Provider(ref p) if matches!(p.root(), ApiError::Timeout) => {
                    Failure::new(
                        Kind::ProviderTimeout,
                        "the sign-in service did not answer in time",
                    )
                }
                LoginError::Provider(ref p) => Failure::provider(p),
                _ => Failure::new(
                    Kind::LoginFailed,
                    "the sign-in service returned an identity that cannot be used",
                ),
            })
        }
    }
}
