//! `ngx_http_special_response_handler`: a status finalizes the request through the location's
//! `error_page` (once per request, while URI changes are left), else nginx's own page.

use super::{Action, Body, Flow};
use crate::parse::model::{ErrorPage, Overwrite, Server};
use crate::vars::Ctx;

impl Server {
    /// `ngx_http_finalize_request(r, code)` for a special status.
    pub(super) fn finalize(&self, cx: &mut Ctx<'_>, code: u16) -> Flow {
        // NGX_HTTP_CLOSE (444), and 408 and 499 which ngx_http_finalize_request also ends with
        // ngx_http_terminate_request: the connection is closed without an answer.
        if matches!(code, 408 | 444 | 499) {
            return Flow::Done(Box::new(Action::Close));
        }
        cx.st.err_status = Some(code);
        // ngx_http_special_response_handler: no keep-alive after these, error page or not.
        if matches!(code, 400 | 413 | 414 | 495 | 496 | 497 | 500 | 501) {
            cx.st.keepalive_off = true;
        }
        let conf = self.here(cx);
        if !cx.st.error_page && cx.st.uri_changes != 0 {
            if let Some(page) = conf.settings.error_pages.iter().find(|p| p.status == code) {
                // recursive_error_pages off: this is the request's only error page.
                cx.st.error_page = true;
                return self.send_error_page(cx, page);
            }
        }
        self.respond(cx, code, Body::Page)
    }

    /// `ngx_http_send_error_page`.
    fn send_error_page(&self, cx: &mut Ctx<'_>, page: &ErrorPage) -> Flow {
        match page.overwrite {
            Overwrite::Keep => {}
            Overwrite::Response => cx.st.err_status = None,
            Overwrite::Code(c) => cx.st.err_status = Some(c),
        }
        let uri = page.value.expand(cx, false);
        if uri.first() == Some(&b'/') {
            // Arguments only where the page has a `?` (nginx 1.22 leaves none set without).
            let (uri, args, set) = if page.value.literal().is_some() {
                let set = page.args.is_some();
                (uri, page.args.clone().unwrap_or_default(), set)
            } else {
                let (u, a) = super::content::split_args(&uri);
                let set = u.len() < uri.len();
                (u.to_vec(), a.to_vec(), set)
            };
            if cx.st.method != "HEAD" {
                cx.st.method = "GET".into();
            }
            return self.internal_redirect(cx, uri, args, set);
        }
        if uri.first() == Some(&b'@') {
            let name = String::from_utf8_lossy(&uri).into_owned();
            return self.named_location(cx, &name);
        }
        let status = match page.overwrite {
            Overwrite::Code(c @ (301 | 302 | 303 | 307 | 308)) => c,
            _ => 302,
        };
        cx.st.err_status = Some(status);
        cx.st.location = Some(uri);
        self.respond(cx, status, Body::Page)
    }
}

/// nginx's own page for a status (`ngx_http_error_pages`), without its tail: the caller adds
/// its own `<hr><center>...</center>` line and the closing tags. `None` for statuses that
/// have no page (their answer has no body).
pub fn special_page(status: u16) -> Option<String> {
    let title = match status {
        301 => "301 Moved Permanently",
        302 => "302 Found",
        303 => "303 See Other",
        307 => "307 Temporary Redirect",
        308 => "308 Permanent Redirect",
        400 => "400 Bad Request",
        401 => "401 Authorization Required",
        402 => "402 Payment Required",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Not Allowed",
        406 => "406 Not Acceptable",
        408 => "408 Request Time-out",
        409 => "409 Conflict",
        410 => "410 Gone",
        411 => "411 Length Required",
        412 => "412 Precondition Failed",
        413 => "413 Request Entity Too Large",
        414 => "414 Request-URI Too Large",
        415 => "415 Unsupported Media Type",
        416 => "416 Requested Range Not Satisfiable",
        421 => "421 Misdirected Request",
        429 => "429 Too Many Requests",
        494 => "400 Request Header Or Cookie Too Large",
        495 => "400 The SSL certificate error",
        496 => "400 No required SSL certificate was sent",
        497 => "400 The plain HTTP request was sent to HTTPS port",
        498 => "404 Not Found",
        500 => "500 Internal Server Error",
        501 => "501 Not Implemented",
        502 => "502 Bad Gateway",
        503 => "503 Service Temporarily Unavailable",
        504 => "504 Gateway Time-out",
        505 => "505 HTTP Version Not Supported",
        507 => "507 Insufficient Storage",
        _ => return None,
    };
    let h1 = match status {
        494..=497 => format!(
            "<center><h1>400 Bad Request</h1></center>\r\n<center>{}</center>\r\n",
            &title[4..]
        ),
        _ => format!("<center><h1>{title}</h1></center>\r\n"),
    };
    Some(format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n{h1}"
    ))
}
