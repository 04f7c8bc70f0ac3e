//! The gateway's own endpoints under `server.prefix` (SPEC section 6).

use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, wants_html, Ctx};
use crate::answers::{self, Failure};

/// The rest of the path when it is under the prefix (`/_gateway` or `/_gateway/...`).
pub fn under_prefix<'a>(path: &'a [u8], prefix: &str) -> Option<&'a [u8]> {
    let rest = path.strip_prefix(prefix.as_bytes())?;
    (rest.is_empty() || rest[0] == b'/').then_some(rest)
}

pub async fn handle(session: &mut Session, ctx: &mut Ctx, rest: &[u8]) -> Result<bool> {
    let a = match rest {
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
