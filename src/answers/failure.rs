//! Failures as values and how each becomes an answer: JSON for programs, a short page for
//! people, always with the request id, one shape per kind of failure (SPEC section 5, step 9).
//! Gates and endpoints return a [`Failure`]; [`render`] is the only place it becomes HTTP.

use std::borrow::Cow;

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::{escape_html, json, response, wants_html, with_cookies, Answer};
use crate::provider::ApiError;

/// What went wrong, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    NotFound,
    /// A static path outside its document root, or a directory without an index file.
    Forbidden,
    UpstreamUnavailable,
    UpstreamTimeout,
    Internal,
    MethodNotAllowed,
    /// The OAuth callback without its login cookie, with another `state`, or with a state
    /// already used (SPEC section 8).
    LoginState,
    /// The provider refused the login (a second bad code, any other errcode, no answer).
    LoginFailed,
    /// The callback came back without a code: the person declined, or the URL was cut.
    LoginDeclined,
    /// WeChat's snapshot page ("朋友圈快照"): a virtual visitor who must open the full page.
    SnapshotUser,
    /// A gateway API call whose WeCom call did not answer within 5 s.
    ProviderTimeout,
    /// A route or endpoint that needs a session got none (SPEC sections 5 and 6).
    LoginRequired,
    /// The external contact the page reported is not the member's (84061, 40096, not among
    /// `follow_user`).
    NotYourContact,
    /// An `external_contact = "required"` route without a verified contact (SPEC 5, step 7).
    ExternalContactRequired,
    /// A WeCom API call the gateway needed failed; the answer names the errcode.
    ProviderFailed,
    /// Too many sign-in callbacks from one client address.
    TooManyRequests,
    /// The member is signed in but the route's `allow` does not admit them (SPEC section 17).
    NotAllowed,
    /// The store did not take what must be kept (a callback): try again (WeCom does).
    StoreUnavailable,
    /// Requests of this kind hold all the memory set aside for them: try again.
    Busy,
    /// A member (or a qyapi call) of a corp that has not installed the service-provider app.
    NotInstalled,
    /// A service-provider app whose suite ticket WeCom has not pushed yet: no suite token.
    SuiteNotReady,
    /// A body for one of the gateway's own endpoints did not arrive in time (nginx's
    /// `client_body_timeout` answer).
    RequestTimeout,
    /// A request framed in a way the gateway does not read (a `Transfer-Encoding` other than
    /// `chunked`): nginx's 501.
    NotImplemented,
    /// Two people's session cookies in one browser, still after a sign-in.
    SessionConflict,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::BadRequest | Kind::LoginState => 400,
            Kind::NotFound => 404,
            Kind::Forbidden
            | Kind::LoginDeclined
            | Kind::SnapshotUser
            | Kind::NotYourContact
            | Kind::ExternalContactRequired
            | Kind::NotAllowed
            | Kind::NotInstalled => 403,
            Kind::UpstreamUnavailable | Kind::LoginFailed | Kind::ProviderFailed => 502,
            Kind::UpstreamTimeout | Kind::ProviderTimeout => 504,
            Kind::Internal => 500,
            Kind::MethodNotAllowed => 405,
            Kind::LoginRequired => 401,
            Kind::TooManyRequests => 429,
            Kind::StoreUnavailable | Kind::SuiteNotReady | Kind::Busy => 503,
            Kind::RequestTimeout => 408,
            Kind::NotImplemented => 501,
            Kind::SessionConflict => 409,
        }
    }

    /// The machine-readable `error` field.
    pub fn code(self) -> &'static str {
        match self {
            Kind::BadRequest => "bad_request",
            Kind::NotFound => "not_found",
            Kind::Forbidden => "forbidden",
            Kind::UpstreamUnavailable | Kind::UpstreamTimeout => "upstream_unavailable",
            Kind::Internal => "internal_error",
            Kind::MethodNotAllowed => "method_not_allowed",
            Kind::LoginState => "login_state_invalid",
            Kind::LoginFailed => "login_failed",
            Kind::LoginDeclined => "login_declined",
            Kind::SnapshotUser => "snapshot_user",
            Kind::ProviderTimeout => "provider_timeout",
            Kind::LoginRequired => "login_required",
            Kind::NotYourContact => "not_your_contact",
            Kind::ExternalContactRequired => "external_contact_required",
            Kind::ProviderFailed => "provider_error",
            Kind::TooManyRequests => "too_many_requests",
            Kind::NotAllowed => "not_allowed",
            Kind::StoreUnavailable => "store_unavailable",
            Kind::Busy => "busy",
            Kind::NotInstalled => "not_installed",
            Kind::SuiteNotReady => "suite_not_ready",
            Kind::RequestTimeout => "request_timeout",
            Kind::NotImplemented => "not_implemented",
            Kind::SessionConflict => "session_conflict",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::BadRequest => "Bad request",
            Kind::NotFound => "Not found",
            Kind::Forbidden => "Forbidden",
            Kind::UpstreamUnavailable => "The application is not reachable",
            Kind::UpstreamTimeout => "The application did not answer in time",
            Kind::Internal => "Internal error",
            Kind::MethodNotAllowed => "Method not allowed",
            Kind::LoginState => "This sign-in link is no longer valid",
            Kind::LoginFailed => "Sign-in failed",
            Kind::LoginDeclined => "Sign-in was not completed",
            Kind::SnapshotUser => "Open the full page to sign in",
            Kind::ProviderTimeout => "WeCom did not answer in time",
            Kind::LoginRequired => "Sign-in required",
            Kind::NotYourContact => "Not your customer",
            Kind::ExternalContactRequired => "Open this page from a customer chat",
            Kind::ProviderFailed => "WeCom refused the request",
            Kind::TooManyRequests => "Too many sign-in attempts",
            Kind::NotAllowed => "Not allowed here",
            Kind::StoreUnavailable | Kind::Busy => "Temporarily unavailable",
            Kind::NotInstalled => "Your organisation has not installed this app",
            Kind::SuiteNotReady => "The app is not ready yet",
            Kind::RequestTimeout => "The request did not arrive in time",
            Kind::NotImplemented => "Not implemented",
            Kind::SessionConflict => "Two sign-ins in this browser",
        }
    }
}

/// Where a sign-in starts: `{prefix}/login?app=APP&return_to=PATH`. A failure that carries one
/// says so in the same way everywhere: `login_url` in JSON, a link in HTML, and for a page
/// navigation that needs a login, the page that carries the `#fragment` along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLink {
    pub prefix: String,
    pub app: String,
    /// Path, query and fragment to come back to.
    pub return_to: String,
}

impl LoginLink {
    pub fn url(&self) -> String {
        format!(
            "{}/login?app={}&return_to={}",
            self.prefix,
            enc(&self.app),
            enc(&self.return_to)
        )
    }
}

/// How the client reads answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A program: JSON.
    Json,
    /// A person (`Accept: text/html`): a short page.
    Html,
    /// A page navigation (`GET`/`HEAD` with `Accept: text/html`): a page, and for a missing
    /// login the page that keeps the `#/route` (SPEC section 5, step 6).
    Navigation,
}

impl Form {
    /// From the request's method and `Accept`.
    pub fn of(method: &http::Method, accept: Option<&[u8]>) -> Form {
        match (wants_html(accept), method) {
            (false, _) => Form::Json,
            (true, &http::Method::GET | &http::Method::HEAD) => Form::Navigation,
            (true, _) => Form::Html,
        }
    }
}

/// A failure as a value: what went wrong, a short human sentence (never request data that
/// could be a secret), and what the answer must also carry.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: Kind,
    pub detail: Cow<'static, str>,
    pub login: Option<Box<LoginLink>>,
    /// The provider's errcode, so the CRM team can look it up.
    pub errcode: Option<i64>,
    /// `Set-Cookie` lines (a spent login cookie is removed even when the login failed).
    pub cookies: Vec<String>,
    /// The request body was not read to its end: the connection is not reused.
    pub close: bool,
}

impl Failure {
    pub fn new(kind: Kind, detail: impl Into<Cow<'static, str>>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
            login: None,
            errcode: None,
            cookies: Vec::new(),
            close: false,
        }
    }

    /// No session (of that app) where one is needed.
    pub fn login_required(login: LoginLink) -> Failure {
        if login.app.is_empty() {
            // A configuration of routes and nginx rules only: a link would lead to "unknown
            // app", and the page to a sign-in that cannot be.
            return Failure::new(Kind::LoginRequired, "no app is configured to sign in with");
        }
        Failure::new(Kind::LoginRequired, "sign in first").with_login(login)
    }

    /// A WeCom call behind a gateway endpoint failed: 504 on a timeout, else 502 with the
    /// provider's errcode when it gave one. Transport errors can quote the request URL, token
    /// and all: never echoed.
    pub fn provider(e: &ApiError) -> Failure {
        match e {
            // 41023: no suite ticket yet (a suite configured minutes ago; WeCom pushes one
            // every 10 minutes). Not WeCom refusing: the gateway cannot ask yet.
            ApiError::Api { errcode: 41023, .. } => {
                let mut f = Failure::new(
                    Kind::SuiteNotReady,
                    "no suite_ticket has arrived from WeCom yet: the suite token cannot be fetched (WeCom pushes one every 10 minutes; check the instruction callback URL)",
                );
                f.errcode = Some(41023);
                f
            }
            // WeCom's own text stays in the log: it names the gateway's egress address ("from
            // ip: ..."), and a provider's text is not the gateway's to show its visitors.
            ApiError::Api { errcode, .. } => {
                let mut f = Failure::new(
                    Kind::ProviderFailed,
                    format!("WeCom answered errcode {errcode} (its message is in the gateway's log, under this request id)"),
                );
                f.errcode = Some(*errcode);
                f
            }
            ApiError::Timeout => {
                Failure::new(Kind::ProviderTimeout, "WeCom did not answer in time")
            }
            ApiError::Unreachable(_) => {
                Failure::new(Kind::ProviderFailed, "WeCom could not be reached")
            }
            ApiError::BadAnswer(_) => {
                Failure::new(Kind::ProviderFailed, "WeCom's answer was not understood")
            }
            ApiError::NotSent(e) => Self::provider(e),
        }
    }

    pub fn with_login(mut self, login: LoginLink) -> Failure {
        self.login = Some(Box::new(login));
        self
    }

    pub fn with_cookies(mut self, cookies: impl IntoIterator<Item = String>) -> Failure {
        self.cookies.extend(cookies);
        self
    }

    pub fn closing(mut self) -> Failure {
        self.close = true;
        self
    }
}

/// The provider's errmsg may be anything; only a short printable part is quoted.
pub(super) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The answer for `f`, in the form the client reads.
pub fn render(f: &Failure, request_id: &str, form: Form) -> Answer {
    let answer = match (f.kind, form, &f.login) {
        (Kind::LoginRequired, Form::Navigation, Some(login)) => response(
            200,
            "text/html; charset=utf-8",
            interstitial(login, None).into(),
            request_id,
        ),
        (_, Form::Html | Form::Navigation, _) => page(f, request_id),
        (_, Form::Json, _) => {
            let mut v = serde_json::json!({
                "error": f.kind.code(),
                "message": f.detail,
                "request_id": request_id,
            });
            if let Some(login) = &f.login {
                v["login_url"] = login.url().into();
            }
            if let Some(errcode) = f.errcode {
                v["errcode"] = errcode.into();
            }
            json(f.kind.status(), &v, request_id)
        }
    };
    with_cookies(answer, &f.cookies)
}

/// What happened, the request id to quote, and where a login is concerned a link that starts
/// a fresh one (never an automatic redirect: no loops).
fn page(f: &Failure, request_id: &str) -> Answer {
    let link = match &f.login {
        Some(l) => {
            let label = if f.kind == Kind::LoginRequired {
                "Sign in"
            } else {
                "Try again"
            };
            format!("<p><a href=\"{}\">{label}</a></p>", escape_html(&l.url()))
        }
        // A sign-in link opened again (Back, a reload after signing in) or finished too late:
        // the site itself signs in again if it must, and a person signed in already goes on.
        None if f.kind == Kind::LoginState => "<p><a href=\"/\">Continue</a></p>".to_owned(),
        None => String::new(),
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{detail}</p>{link}\
         <p><small>request id: <code>{rid}</code></small></p></body></html>\n",
        title = f.kind.title(),
        detail = escape_html(&f.detail),
        rid = escape_html(request_id),
    );
    response(
        f.kind.status(),
        "text/html; charset=utf-8",
        body.into(),
        request_id,
    )
}

fn enc(s: &str) -> String {
    crate::login::authorize::enc(s)
}

/// The answer of `{prefix}/signin` (SPEC section 19) for a failure that carries a login: the
/// interstitial for a navigation, otherwise as [`render`] has it.
pub fn signin(f: &Failure, request_id: &str, form: Form) -> Answer {
    match (form, &f.login) {
        (Form::Navigation, Some(login)) => response(
            200,
            "text/html; charset=utf-8",
            interstitial(login, Some(&format!("{}/signin", login.prefix))).into(),
            request_id,
        ),
        _ => render(f, request_id, form),
    }
}

/// The hash-preserving page (SPEC section 5, step 6): no external resources; its script sends
/// the browser to the login with the whole location, `#fragment` included (only the browser
/// knows it); `<noscript>` falls back to a plain link without the fragment.
///
/// Shown at `signin_path` itself (a proxy that redirects to `{prefix}/signin` rather than
/// serving it in place), the location is the sign-in page's own, and coming back to it would
/// sign in again and again: there the page goes back to `return_to`, with the fragment the
/// browser carried across the redirect.
fn interstitial(login: &LoginLink, signin_path: Option<&str>) -> String {
    let base = format!(
        "{}/login?app={}&return_to=",
        login.prefix,
        utf8_percent_encode(&login.app, NON_ALPHANUMERIC)
    );
    let js = |s: &str| {
        serde_json::to_string(s)
            .unwrap_or_default()
            .replace('<', "\\u003c")
    };
    let fallback = escape_html(&format!(
        "{base}{}",
        utf8_percent_encode(&login.return_to, NON_ALPHANUMERIC)
    ));
    let here = match signin_path {
        None => "location.pathname+location.search".to_owned(),
        Some(own) => format!(
            "(location.pathname==={}?{}:location.pathname+location.search)",
            js(own),
            js(login.return_to.split('#').next().unwrap_or("/"))
        ),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>Signing in…</title></head>\
<body><script>location.replace({base}+encodeURIComponent({here}+location.hash));</script>\
<noscript><p><a href=\"{fallback}\">Continue to sign in</a></p></noscript></body></html>\n",
        base = js(&base),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answers::Answer;

    fn body(a: &Answer) -> String {
        String::from_utf8(a.1.to_vec()).unwrap()
    }

    fn link() -> LoginLink {
        LoginLink {
            prefix: "/_gateway".into(),
            app: "crm".into(),
            return_to: "/sidebar/?a=1&b=\"<x>".into(),
        }
    }

    #[test]
    fn accept_and_method_decide_the_form() {
        use http::Method;
        let html = Some(&b"text/html,application/xhtml+xml;q=0.9"[..]);
        let cases: &[(Method, Option<&[u8]>, Form)] = &[
            (Method::GET, html, Form::Navigation),
            (Method::HEAD, Some(b"TEXT/HTML"), Form::Navigation),
            (Method::POST, html, Form::Html),
            (Method::GET, Some(b"application/json"), Form::Json),
            (Method::GET, Some(b"*/*"), Form::Json),
            (Method::GET, None, Form::Json),
        ];
        for (m, accept, want) in cases {
            assert_eq!(Form::of(m, *accept), *want, "{m} {accept:?}");
        }
    }

    #[test]
    fn every_failure_names_its_error_and_the_request_id_in_both_forms() {
        for kind in [
            Kind::BadRequest,
            Kind::UpstreamUnavailable,
            Kind::LoginDeclined,
            Kind::ExternalContactRequired,
            Kind::TooManyRequests,
            Kind::NotAllowed,
        ] {
            let f = Failure::new(kind, "detail");
            let a = render(&f, "rid1", Form::Json);
            assert_eq!(a.0.status.as_u16(), kind.status());
            let v: serde_json::Value = serde_json::from_slice(&a.1).unwrap();
            assert_eq!(v["error"], kind.code());
            assert_eq!(v["request_id"], "rid1");
            let p = render(&f, "rid1", Form::Html);
            assert_eq!(p.0.status.as_u16(), kind.status());
            assert!(body(&p).contains("rid1"));
            assert_eq!(p.0.headers.get("x-request-id").unwrap(), "rid1");
        }
    }

    /// Without an app to sign in with, no link to a sign-in that would be refused: the 401
    /// says so, and a navigation gets the page that says so, not the interstitial.
    #[test]
    fn login_required_without_an_app_names_no_sign_in() {
        let f = Failure::login_required(LoginLink {
            app: String::new(),
            ..link()
        });
        let a = render(&f, "r", Form::Json);
        assert_eq!(a.0.status.as_u16(), 401);
        let v: serde_json::Value = serde_json::from_slice(&a.1).unwrap();
        assert_eq!(v["error"], "login_required");
        assert!(v.get("login_url").is_none(), "{v}");
        assert!(v["message"].as_str().unwrap().contains("no app"), "{v}");
        let page = render(&f, "r", Form::Navigation);
        assert_eq!(page.0.status.as_u16(), 401);
        assert!(!body(&page).contains("/login?app="), "{}", body(&page));
    }

    #[test]
    fn login_required_has_one_shape_everywhere() {
        let f = Failure::login_required(link());
        let a = render(&f, "r", Form::Json);
        assert_eq!(a.0.status.as_u16(), 401);
        let v: serde_json::Value = serde_json::from_slice(&a.1).unwrap();
        assert_eq!(v["error"], "login_required");
        assert_eq!(
            v["login_url"],
            "/_gateway/login?app=crm&return_to=%2Fsidebar%2F%3Fa%3D1%26b%3D%22%3Cx%3E"
        );
        // A navigation gets the page that carries the fragment through script.
        let page = render(&f, "r", Form::Navigation);
        assert_eq!(page.0.status.as_u16(), 200);
        let page = body(&page);
        assert!(page.contains("location.pathname+location.search+location.hash"));
        assert!(page.contains("\"/_gateway/login?app=crm&return_to=\""));
        assert!(page.contains(
            "href=\"/_gateway/login?app=crm&amp;return_to=%2Fsidebar%2F%3Fa%3D1%26b%3D%22%3Cx%3E\""
        ));
        assert!(!page.contains("<x>"));
        assert!(!page.contains("src="), "no external resources");
    }

    #[test]
    fn a_login_failure_page_has_the_request_id_and_a_retry_link_never_a_redirect() {
        let f = Failure::new(Kind::LoginFailed, "code refused").with_login(LoginLink {
            prefix: "/_gateway".into(),
            app: "crm".into(),
            return_to: "/".into(),
        });
        let a = render(&f, "rid-9", Form::Navigation);
        assert_eq!(a.0.status.as_u16(), 502);
        let page = body(&a);
        assert!(page.contains("rid-9"));
        assert!(page.contains("href=\"/_gateway/login?app=crm&amp;return_to=%2F\""));
        assert!(page.contains("Try again"));
        assert!(!page.contains("http-equiv"), "no automatic redirect");
    }

    #[test]
    fn a_sign_in_link_no_longer_valid_leads_on_to_the_site() {
        let f = Failure::new(
            Kind::LoginState,
            "the sign-in did not start in this browser",
        );
        let a = render(&f, "rid-7", Form::Navigation);
        assert_eq!(a.0.status.as_u16(), 400);
        let page = body(&a);
        assert!(page.contains("rid-7"));
        assert!(page.contains("<a href=\"/\">Continue</a>"), "{page}");
    }

    #[test]
    fn html_failure_escapes_and_cookies_ride_along() {
        let f = Failure::new(Kind::BadRequest, "<script>").with_cookies(["a=; Max-Age=0".into()]);
        let a = render(&f, "r<1>", Form::Html);
        assert_eq!(a.0.status.as_u16(), 400);
        let page = body(&a);
        assert!(page.contains("&lt;script&gt;") && page.contains("r&lt;1&gt;"));
        assert_eq!(a.0.headers.get("set-cookie").unwrap(), "a=; Max-Age=0");
    }

    #[test]
    fn provider_failures_carry_the_errcode_never_transport_details() {
        let f = Failure::provider(&ApiError::Api {
            errcode: 60011,
            errmsg: "no privilege\r\n".into(),
        });
        let v: serde_json::Value = serde_json::from_slice(&render(&f, "r", Form::Json).1).unwrap();
        assert_eq!(
            (v["error"].as_str(), v["errcode"].as_i64()),
            (Some("provider_error"), Some(60011))
        );
        let f = Failure::provider(&ApiError::Unreachable(
            "http://x/?access_token=SECRET".into(),
        ));
        assert!(!body(&render(&f, "r", Form::Json)).contains("SECRET"));
        assert_eq!(Failure::provider(&ApiError::Timeout).kind.status(), 504);
    }
}
