//! Step 6 of the pipeline: a route that names an app needs a session of that app. Without one,
//! a navigation gets a tiny page that keeps the `#/route` (the fragment never reaches a server,
//! so only the browser can carry it into `return_to`); anything else gets 401 JSON.

use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use pingora::prelude::*;
use pingora::proxy::Session;

use super::{answer, Ctx};
use crate::answers;
use crate::config::model::App;

pub enum Outcome {
    Continue,
    Answered,
}

pub async fn check(session: &mut Session, ctx: &mut Ctx, app: &Arc<App>) -> Result<Outcome> {
    if let Some(entry) = super::login_endpoints::session_entry(session, &ctx.config, app) {
        ctx.identity = Some(entry.identity());
        ctx.session_contact = entry.contact;
        return Ok(Outcome::Continue);
    }
    let prefix = ctx.config.server.prefix.clone();
    let req = session.req_header();
    let navigation = matches!(req.method, http::Method::GET | http::Method::HEAD)
        && answers::wants_html(req.headers.get(http::header::ACCEPT).map(|v| v.as_bytes()));
    let a = if navigation {
        let here = String::from_utf8_lossy(req.raw_path()).into_owned();
        answers::response(
            200,
            "text/html; charset=utf-8",
            interstitial(&prefix, &app.name, &here).into(),
            &ctx.request_id,
        )
    } else {
        let login_url =
            super::login_endpoints::login_url(&prefix, &app.name, &referer_path(ctx, session));
        answers::json(
            401,
            &serde_json::json!({"error": "login_required", "login_url": login_url, "request_id": ctx.request_id}),
            &ctx.request_id,
        )
    };
    answer(session, ctx, a).await?;
    Ok(Outcome::Answered)
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// For an API call the page to come back to is the one that made it, when it is ours.
fn referer_path(ctx: &Ctx, session: &Session) -> String {
    let origin = &ctx.config.server.public_origin;
    session
        .req_header()
        .headers
        .get(http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix(origin.as_str()))
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or("/")
        .to_owned()
}

/// The hash-preserving page (SPEC section 5, step 6): no external resources; `<noscript>`
/// falls back to a plain link without the fragment.
fn interstitial(prefix: &str, app: &str, here: &str) -> String {
    let base = format!("{prefix}/login?app={}&return_to=", enc(app));
    let js_base = serde_json::to_string(&base)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    let fallback = answers::escape_html(&format!("{base}{}", enc(here)));
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Signing in…</title></head>\
<body><script>location.replace({js_base}+encodeURIComponent(location.pathname+location.search+location.hash));</script>\
<noscript><p><a href=\"{fallback}\">Continue to sign in</a></p></noscript></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::interstitial;

    #[test]
    fn interstitial_carries_the_fragment_through_script_and_escapes_the_fallback() {
        let page = interstitial("/_gateway", "crm", "/sidebar/?a=1&b=\"<x>");
        assert!(page.contains("location.pathname+location.search+location.hash"));
        assert!(page.contains("\"/_gateway/login?app=crm&return_to=\""));
        assert!(page.contains(
            "href=\"/_gateway/login?app=crm&amp;return_to=%2Fsidebar%2F%3Fa%3D1%26b%3D%22%3Cx%3E\""
        ));
        assert!(!page.contains("<x>"));
        assert!(!page.contains("src="), "no external resources");
    }
}
