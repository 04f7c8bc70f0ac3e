//! The gateway's own endpoints under `server.prefix` (SPEC section 6).

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, callback_endpoint, jssdk_endpoints, login_endpoints, wants_html, Ctx};
use crate::answers::{self, Failure};
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
) -> Result<bool> {
    if let Some(app) = rest.strip_prefix(b"/callback/") {
        return callback_endpoint::handle(session, ctx, app, callbacks).await;
    }
    use http::Method;
    let method = session.req_header().method.clone();
    let read = matches!(method, Method::GET | Method::HEAD);
    let a = match rest {
        b"/login" if read => return login_endpoints::login(session, ctx).await,
        b"/oauth/callback" if read => {
            return login_endpoints::callback(session, ctx, provider).await
        }
        b"/logout" if read || method == Method::POST => {
            return login_endpoints::logout(session, ctx).await
        }
        b"/whoami" if read => return login_endpoints::whoami(session, ctx).await,
        b"/jssdk/config" if read => return jssdk_endpoints::config(session, ctx, provider).await,
        b"/external-contact" if method == Method::POST => {
            return jssdk_endpoints::external_contact(session, ctx, provider).await
        }
        b"/sdk.js" if read => return jssdk_endpoints::sdk_js(session, ctx).await,
        b"/login" | b"/oauth/callback" | b"/logout" | b"/whoami" | b"/jssdk/config"
        | b"/external-contact" | b"/sdk.js" => answers::failure(
            Failure::MethodNotAllowed,
            "method not allowed here",
            &ctx.request_id,
            wants_html(session),
        ),
        b"/healthz" => answers::response(
            200,
            "text/plain; charset=utf-8",
            "ok\n".into(),
            &ctx.request_id,
        ),
        _ => answers::failure(
            Failure::NotFound,
            "no such gateway endpoint",
            &ctx.request_id,
            wants_html(session),
        ),
    };
    answer(session, ctx, a).await
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
