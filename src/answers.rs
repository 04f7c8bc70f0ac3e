//! The one place where failures become HTTP answers: JSON for programs, a short HTML page for
//! people (SPEC section 5, step 9). Every answer carries the request id.

use bytes::Bytes;
use pingora::http::ResponseHeader;

/// What went wrong, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadRequest,
    NotFound,
    /// A static path outside its document root, or a directory without an index file.
    Forbidden,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
    MethodNotAllowed,
    /// The OAuth callback without its login cookie, or with another `state` (SPEC section 8).
    LoginState,
    /// The provider refused the login (a second bad code, or any other errcode).
    LoginFailed,
    /// The provider did not answer within 5 s.
    ProviderTimeout,
    /// A gateway endpoint that needs a session got none (SPEC section 6).
    LoginRequired,
    /// The external contact the page reported is not the member's (84061, 40096, not among
    /// `follow_user`).
    NotYourContact,
    /// An `external_contact = "required"` route without a verified contact (SPEC 5, step 7).
    ExternalContactRequired,
    /// A WeCom API call the gateway needed failed; the answer names the errcode.
    ProviderFailed,
    /// The store did not take what must be kept (a callback): try again (WeCom does).
    StoreUnavailable,
}

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest => 400,
            Failure::NotFound => 404,
            Failure::Forbidden => 403,
            Failure::UpstreamUnavailable => 502,
            Failure::UpstreamTimeout => 504,
            Failure::Internal => 500,
            Failure::MethodNotAllowed => 405,
            Failure::LoginState => 400,
            Failure::LoginFailed | Failure::ProviderTimeout | Failure::ProviderFailed => 502,
            Failure::LoginRequired => 401,
            Failure::NotYourContact | Failure::ExternalContactRequired => 403,
            Failure::StoreUnavailable => 503,
        }
    }

    /// The machine-readable `error` field.
    pub fn code(self) -> &'static str {
        match self {
            Failure::BadRequest => "bad_request",
            Failure::NotFound => "not_found",
            Failure::Forbidden => "forbidden",
            Failure::UpstreamUnavailable | Failure::UpstreamTimeout => "upstream_unavailable",
            Failure::Internal => "internal_error",
            Failure::MethodNotAllowed => "method_not_allowed",
            Failure::LoginState => "login_state_invalid",
            Failure::LoginFailed => "login_failed",
            Failure::ProviderTimeout => "provider_timeout",
            Failure::LoginRequired => "login_required",
            Failure::NotYourContact => "not_your_contact",
            Failure::ExternalContactRequired => "external_contact_required",
            Failure::ProviderFailed => "provider_error",
            Failure::StoreUnavailable => "store_unavailable",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Failure::BadRequest => "Bad request",
            Failure::NotFound => "Not found",
            Failure::Forbidden => "Forbidden",
            Failure::UpstreamUnavailable => "The application is not reachable",
            Failure::UpstreamTimeout => "The application did not answer in time",
            Failure::Internal => "Internal error",
            Failure::MethodNotAllowed => "Method not allowed",
            Failure::LoginState => "This sign-in link is no longer valid",
            Failure::LoginFailed => "Sign-in failed",
            Failure::ProviderTimeout => "The sign-in service did not answer in time",
            Failure::LoginRequired => "Sign-in required",
            Failure::NotYourContact => "Not your customer",
            Failure::ExternalContactRequired => "Open this page from a customer chat",
            Failure::ProviderFailed => "WeCom refused the request",
            Failure::StoreUnavailable => "Temporarily unavailable",
        }
    }
}

/// Does the client want a page rather than JSON? Browsers navigating send `text/html`.
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// Builds the answer for a failure. `detail` is a short human sentence, never containing
/// request data that could be a secret.
pub fn failure(
    f: Failure,
    detail: &str,
    request_id: &str,
    html: bool,
) -> (Box<ResponseHeader>, Bytes) {
    if html {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
             <body><h1>{title}</h1><p>{detail}</p><p><small>request id: <code>{rid}</code></small></p>\
             </body></html>\n",
            title = f.title(),
            detail = escape_html(detail),
            rid = escape_html(request_id),
        );
        response(
            f.status(),
            "text/html; charset=utf-8",
            body.into(),
            request_id,
        )
    } else {
        json(
            f.status(),
            &serde_json::json!({"error": f.code(), "message": detail, "request_id": request_id}),
            request_id,
        )
    }
}

/// A failed WeCom call behind a gateway endpoint: 504 on a timeout, else 502, with the
/// provider's errcode when it gave one so that the CRM team can look it up.
pub fn provider_failure(
    e: &crate::provider::ApiError,
    request_id: &str,
) -> (Box<ResponseHeader>, Bytes) {
    use crate::provider::ApiError;
    // Transport errors can quote the request URL, token and all: never echoed.
    let (status, error, errcode, message) = match e {
        ApiError::Api { errcode, errmsg } => (
            502,
            Failure::ProviderFailed.code(),
            Some(*errcode),
            format!("WeCom answered errcode {errcode}: {errmsg}"),
        ),
        ApiError::Timeout => (
            504,
            Failure::ProviderTimeout.code(),
            None,
            "WeCom did not answer in time".to_owned(),
        ),
        ApiError::Unreachable(_) => (
            502,
            Failure::ProviderFailed.code(),
            None,
            "WeCom could not be reached".to_owned(),
        ),
        ApiError::BadAnswer(_) => (
            502,
            Failure::ProviderFailed.code(),
            None,
            "WeCom's answer was not understood".to_owned(),
        ),
    };
    json(
        status,
        &serde_json::json!({"error": error, "errcode": errcode, "message": message, "request_id": request_id}),
        request_id,
    )
}

/// A script the gateway serves (`sdk.js`): it may be cached briefly, by the browser only,
/// since its settings can depend on the session.
pub fn script(body: String, request_id: &str) -> (Box<ResponseHeader>, Bytes) {
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

/// A failed login as a page for a person: what happened, the request id to quote, and a
/// "try again" link that starts a fresh login (never an automatic redirect: no loops).
pub fn login_failure(
    f: Failure,
    detail: &str,
    request_id: &str,
    retry_url: &str,
) -> (Box<ResponseHeader>, Bytes) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{detail}</p><p><a href=\"{retry}\">Try again</a></p>\
         <p><small>request id: <code>{rid}</code></small></p></body></html>\n",
        title = f.title(),
        detail = escape_html(detail),
        retry = escape_html(retry_url),
        rid = escape_html(request_id),
    );
    response(
        f.status(),
        "text/html; charset=utf-8",
        body.into(),
        request_id,
    )
}

/// A `302` to `location` (already validated by the caller), setting `cookies`.
pub fn redirect(
    location: &str,
    cookies: &[String],
    request_id: &str,
) -> (Box<ResponseHeader>, Bytes) {
    let (mut h, body) = response(302, "text/plain; charset=utf-8", Bytes::new(), request_id);
    let _ = h.insert_header("location", location);
    for c in cookies {
        let _ = h.append_header("set-cookie", c.as_str());
    }
    (h, body)
}

/// Adds `Set-Cookie` lines to an answer.
pub fn with_cookies(
    (mut h, body): (Box<ResponseHeader>, Bytes),
    cookies: &[String],
) -> (Box<ResponseHeader>, Bytes) {
    for c in cookies {
        let _ = h.append_header("set-cookie", c.as_str());
    }
    (h, body)
}

/// A JSON answer.
pub fn json(
    status: u16,
    value: &serde_json::Value,
    request_id: &str,
) -> (Box<ResponseHeader>, Bytes) {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    response(status, "application/json", body.into(), request_id)
}

/// Any answer the gateway writes itself: never cached, never sniffed.
pub fn response(
    status: u16,
    content_type: &str,
    body: Bytes,
    request_id: &str,
) -> (Box<ResponseHeader>, Bytes) {
    let mut h = ResponseHeader::build(status, Some(5)).expect("valid status");
    let _ = h.insert_header("content-type", content_type);
    let _ = h.insert_header("content-length", body.len().to_string());
    let _ = h.insert_header("cache-control", "no-store");
    let _ = h.insert_header("x-content-type-options", "nosniff");
    let _ = h.insert_header("x-request-id", request_id);
    (Box::new(h), body)
}

/// A redirect decided by the rewrite phase: nginx's status and Location bytes, exactly.
/// `None` when the Location cannot be carried in a header (a control byte).
pub fn nginx_redirect(
    status: u16,
    location: &[u8],
    request_id: &str,
) -> Option<(Box<ResponseHeader>, Bytes)> {
    let (mut h, body) = nginx_return(status, None, request_id);
    h.insert_header("location", location).ok()?;
    Some((h, body))
}

/// `return CODE [TEXT]`: the text as the body, or nginx's short page for the status.
pub fn nginx_return(
    status: u16,
    text: Option<&[u8]>,
    request_id: &str,
) -> (Box<ResponseHeader>, Bytes) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_decides_the_form() {
        assert!(wants_html(Some(b"text/html,application/xhtml+xml;q=0.9")));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"application/json")));
        assert!(!wants_html(Some(b"*/*")));
        assert!(!wants_html(None));
    }

    #[test]
    fn json_failure_names_error_and_request_id() {
        let (h, body) = failure(Failure::UpstreamUnavailable, "down", "rid1", false);
        assert_eq!(h.status.as_u16(), 502);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "upstream_unavailable");
        assert_eq!(v["request_id"], "rid1");
    }

    #[test]
    fn login_failure_page_has_request_id_and_retry_link() {
        let (h, body) = login_failure(
            Failure::LoginFailed,
            "code refused",
            "rid-9",
            "/_gateway/login?app=crm&return_to=%2F",
        );
        assert_eq!(h.status.as_u16(), 502);
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("rid-9"));
        assert!(body.contains("href=\"/_gateway/login?app=crm&amp;return_to=%2F\""));
        assert!(!body.contains("http-equiv"), "no automatic redirect");
    }

    #[test]
    fn html_failure_escapes() {
        let (h, body) = failure(Failure::BadRequest, "<script>", "r<1>", true);
        assert_eq!(h.status.as_u16(), 400);
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(body.contains("&lt;script&gt;") && body.contains("r&lt;1&gt;"));
    }
}
