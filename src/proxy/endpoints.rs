//! The gateway's own endpoints under `server.prefix` (SPEC section 6).

use pingora::proxy::Session;

use super::{
    callback_endpoint, forward_auth, jssdk_endpoints, login_endpoints, miniprogram_endpoints, Ctx,
};
use crate::answers::{self, Answer, Failure, Form, Kind};
use crate::callback::Callbacks;
use crate::provider::Provider;

/// The rest of the path when it is under the prefix (`/_gateway` or `/_gateway/...`).
pub fn under_prefix<'a>(path: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix.as_bytes())?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

pub async fn handle(
    session: &mut Session,
    ctx: &mut Ctx,
    rest: &[u8],
    provider: &Provider,
    callbacks: &Callbacks,
) -> Result<Answer, Failure> {
    if let Some(app) = rest.strip_prefix(b"/callback/") {
        return callback_endpoint::handle(session, ctx, app, callbacks).await;
    }
    use http::Method;
    let method = session.req_header().method.clone();
    let read = matches!(method, Method::GET | Method::HEAD);
    if matches!(
        rest,
        b"/whoami" | b"/jssdk/config" | b"/external-contact" | b"/miniprogram/login"
    ) {
        // Called by scripts: always JSON.
        ctx.form = Form::Json;
    }
    match rest {
        b"/login" if read => login_endpoints::login(session, ctx, provider).await,
        b"/oauth/callback" if read => login_endpoints::callback(session, ctx, provider).await,
        b"/logout" if read || method == Method::POST => {
            login_endpoints::logout(session, ctx, provider).await
        }
        b"/whoami" if read => login_endpoints::whoami(session, ctx, provider).await,
        b"/jssdk/config" if read => jssdk_endpoints::config(session, ctx, provider).await,
        b"/external-contact" if method == Method::POST => {
            jssdk_endpoints::external_contact(session, ctx, provider).await
        }
        // Any method: nginx's `error_page 401 = @signin` keeps the original request's.
        b"/signin" => forward_auth::signin(session, ctx),
        b"/miniprogram/login" if method == Method::POST => {
            miniprogram_endpoints::login(session, ctx, provider).await
        }
        b"/sdk.js" if read => Ok(jssdk_endpoints::sdk_js(session, ctx, provider).await),
        b"/login"
        | b"/oauth/callback"
        | b"/logout"
        | b"/whoami"
        | b"/jssdk/config"
        | b"/external-contact"
        | b"/sdk.js"
        | b"/miniprogram/login" => Err(Failure::new(
            Kind::MethodNotAllowed,
            "method not allowed here",
        )),
        b"/healthz" => Ok(answers::response(
            200,
            "text/plain; charset=utf-8",
            "ok\n".into(),
            &ctx.request_id,
        )),
        _ => Err(Failure::new(Kind::NotFound, "no such gateway endpoint")),
    }
}

#[cfg(test)]
mod tests {
    use super::under_prefix;

    #[test]
    fn prefix_is_a_whole_segment() {
        assert_eq!(
            under_prefix(b"/_gateway/login", "/_gateway"),
            Some(&b"/login"[..])
        );
        assert_eq!(under_prefix(b"/_gateway", "/_gateway"), Some(&b""[..]));
        assert_eq!(under_prefix(b"/_gatewayx/login", "/_gateway"), None);
        assert_eq!(under_prefix(b"/app/_gateway/login", "/_gateway"), None);
    }
}
