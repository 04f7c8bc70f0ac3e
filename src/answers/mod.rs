//! The one place where the gateway's own answers are built (SPEC section 5, step 9): failures
//! rendered from values ([`failure`]), and the answers that are not failures — redirects,
//! scripts, nginx `return`, the qyapi endpoint's WeCom-shaped errors.

mod failure;

use bytes::Bytes;
use pingora::http::ResponseHeader;

use failure::printable;
pub use failure::{render, signin, Failure, Form, Kind, LoginLink};

use crate::provider::ApiError;

/// A response head and its body, written by the gateway itself.
pub type Answer = (Box<ResponseHeader>, Bytes);

/// Does the client want a page rather than JSON? Browsers navigating send `text/html`.
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// The forward-auth check's refusal for want of a session (SPEC section 19): always `401`,
/// since nginx's `auth_request` passes on only 401 and 403 (the page a navigation gets in
/// proxy mode is a `200`); the body as step 6 renders it, the interstitial for a navigation;
/// and the login URL in `X-Gateway-Login-Url`, for `auth_request_set`.
pub fn forward_auth_login(f: &Failure, request_id: &str, form: Form) -> Answer {
    let (mut h, body) = render(f, request_id, form);
    let _ = h.set_status(401);
    if let Some(login) = &f.login {
        let _ = h.insert_header("x-gateway-login-url", login.url());
    }
    (h, body)
}

/// A script the gateway serves (`sdk.js`): it may be cached briefly, by the browser only,
/// since its settings can depend on the session.
pub fn script(body: String, request_id: &str) -> Answer {
    let (mut h, body) = response(
        200,
        "application/javascript; charset=utf-8",
        body.into(),
        request_id,
    );
    let _ = h.insert_header("cache-control", "private, max-age=300");
    let _ = h.insert_header("vary", "Cookie");
    (h, body)
}

/// A `302` to `location` (already validated by the caller), setting `cookies`.
pub fn redirect(location: &str, cookies: &[String], request_id: &str) -> Answer {
    let (mut h, body) = response(302, "text/plain; charset=utf-8", Bytes::new(), request_id);
    let _ = h.insert_header("location", location);
    with_cookies((h, body), cookies)
}

/// Adds `Set-Cookie` lines to an answer.
pub fn with_cookies((mut h, body): Answer, cookies: &[String]) -> Answer {
    for c in cookies {
        let _ = h.append_header("set-cookie", c.as_str());
    }
    (h, body)
}

/// A JSON answer.
pub fn json(status: u16, value: &serde_json::Value, request_id: &str) -> Answer {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    response(status, "application/json", body.into(), request_id)
}

/// Any answer the gateway writes itself: never cached, never sniffed.
pub fn response(status: u16, content_type: &str, body: Bytes, request_id: &str) -> Answer {
    let mut h = ResponseHeader::build(status, Some(5)).expect("valid status");
    let _ = h.insert_header("content-type", content_type);
    let _ = h.insert_header("content-length", body.len().to_string());
    let _ = h.insert_header("cache-control", "no-store");
    let _ = h.insert_header("x-content-type-options", "nosniff");
    // The gateway's pages (sign-in, errors) are framed by the site itself at most: another
    // site framing them could dress them up (clickjacking).
    if content_type.starts_with("text/html") {
        let _ = h.insert_header("x-frame-options", "SAMEORIGIN");
        let _ = h.insert_header("content-security-policy", "frame-ancestors 'self'");
    }
    let _ = h.insert_header("x-request-id", request_id);
    (Box::new(h), body)
}

/// A redirect decided by the rewrite phase: nginx's status and Location bytes, exactly.
/// `None` when the Location cannot be carried in a header (a control byte).
pub fn nginx_redirect(status: u16, location: &[u8], request_id: &str) -> Option<Answer> {
    let (mut h, body) = nginx_return(status, None, request_id);
    h.insert_header("location", location).ok()?;
    Some((h, body))
}

/// `return CODE [TEXT]`: the text as the body, or nginx's short page for the status.
pub fn nginx_return(status: u16, text: Option<&[u8]>, request_id: &str) -> Answer {
    let status = if (200..600).contains(&status) {
        status
    } else {
        500
    };
    match text {
        // These statuses carry no body on the wire.
        _ if status == 204 || status == 304 => {
            response(status, "text/plain", Bytes::new(), request_id)
        }
        Some(t) => response(
            status,
            "text/plain; charset=utf-8",
            Bytes::copy_from_slice(t),
            request_id,
        ),
        None => {
            let code = http::StatusCode::from_u16(status).ok();
            let reason = code.and_then(|c| c.canonical_reason()).unwrap_or("");
            let body = format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n\
                 <center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            );
            response(status, "text/html", body.into(), request_id)
        }
    }
}

/// The internal qyapi endpoint answers as WeCom does, `{errcode, errmsg}`, so that SDKs read
/// the gateway's own refusals like any other WeCom error.
pub fn wecom_error(status: u16, errcode: i64, errmsg: &str, request_id: &str) -> Answer {
    json(
        status,
        &serde_json::json!({"errcode": errcode, "errmsg": errmsg, "request_id": request_id}),
        request_id,
    )
}

/// The qyapi endpoint's errcode for a call WeCom gave no answer to. Not WeCom's `-1`
/// ("system busy, try again"), which SDKs retry by themselves (WxJava, up to five times): a
/// `message/send` that timed out after WeCom carried it out would be sent again each time.
pub const NO_ANSWER: i64 = -2;

/// A failed WeCom call of the qyapi endpoint in WeCom's shape: a failed gettoken keeps its
/// errcode (40001 bad secret, 60020 ...) with 200 as WeCom sends it; no answer at all (none in
/// time, none that could be read, the provider unreachable) is the gateway's own errcode
/// [`NO_ANSWER`] with 504 or 502. The second value is what the call came to, for its metric
/// and log line.
pub fn wecom_provider_error(e: &ApiError, request_id: &str) -> (Answer, Errcode) {
    let (status, errcode, label) = match e {
        // No suite ticket yet: the gateway cannot ask WeCom at all (SPEC section 20).
        ApiError::Api { errcode: 41023, .. } => (503, 41023, Errcode::Code(41023)),
        ApiError::Api { errcode, .. } => (200, *errcode, Errcode::Code(*errcode)),
        ApiError::Timeout => (504, NO_ANSWER, Errcode::Failed("timeout")),
        ApiError::Unreachable(_) => (502, NO_ANSWER, Errcode::Failed("unreachable")),
        ApiError::BadAnswer(_) => (502, NO_ANSWER, Errcode::Failed("bad_answer")),
        // Nothing was sent: WeCom's "system busy", which SDKs retry by themselves.
        ApiError::NotSent(_) => (503, -1, Errcode::Failed("no_token")),
    };
    let msg = match e {
        ApiError::Timeout | ApiError::Unreachable(_) | ApiError::BadAnswer(_) => format!(
            "{e}: the call may have been carried out; the gateway did not retry it \
             (errcode {NO_ANSWER} is the gateway's)"
        ),
        ApiError::NotSent(_) => format!("{e}: it can be made again"),
        // Passed on as WeCom wrote it (SDKs show it), but never with a credential in it: a
        // provider quoting the URL it was called with would hand back the secret.
        ApiError::Api { errmsg, .. } => crate::redact::redact(&printable(errmsg)).into_owned(),
    };
    (wecom_error(status, errcode, &msg, request_id), label)
}

/// What a qyapi call came to, for its metric and log line: WeCom's `errcode`, or why there
/// is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errcode {
    Code(i64),
    /// `timeout`, `unreachable`, `bad_answer`, or `no_token` (not sent).
    Failed(&'static str),
}

/// A page asking to sign out, its button a POST to `action` (the logout URL as asked): what a
/// sign-out link followed from another site gets instead of signing out at once.
pub fn confirm_logout(action: &str, request_id: &str) -> Answer {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Sign out?</title></head>\
         <body><h1>Sign out?</h1><p>Another site sent you to sign out of this one.</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">Sign out</button></form>\
         <p><small>request id: <code>{rid}</code></small></p></body></html>\n",
        action = escape_html(action),
        rid = escape_html(request_id),
    );
    response(200, "text/html; charset=utf-8", body.into(), request_id)
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
