//! Answers nginx makes itself, written as nginx writes them: its pages (with the gateway's own
//! tail line, which names the request id), `return` texts, no body at all for `return 200;`
//! and none and no `Content-Length` for a 204, files streamed from disk, and `444` as a closed
//! connection. Then nginx's response filters: `add_header`, `expires`, `charset`, `gzip`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nginx_compat::{special_page, Action, Body, Request, Response, State};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::response::{apply_edits, gzip};
use crate::config::rules::Rules;
use crate::static_files::{self, Conditions, Served};

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// nginx's page for `status`, ending with the gateway's tail instead of nginx's.
pub fn page(status: u16, request_id: &str) -> Option<String> {
    special_page(status).map(|p| {
        format!(
            "{p}<hr><center>wecom-gateway &middot; request id {}</center>\r\n</body>\r\n</html>\r\n",
            crate::answers::escape_html(request_id)
        )
    })
}

/// The content type nginx gives a `return`'s text or a file in `state` (`r->exten` looked up in
/// `types`, else `default_type`), where the included file stands in a stock `nginx.conf`'s
/// http block: the file's own `types` and `default_type` where it writes them, else that
/// block's `include mime.types;` and `default_type application/octet-stream;`. Empty: none is
/// sent (`default_type "";`).
fn answer_type<'r>(rules: &'r Rules, state: &State) -> &'r str {
    let s = rules.server.settings_for(state);
    let by_exten = match &s.types {
        Some(types) => types.get(&state.exten),
        None => static_files::stock_type(&state.exten),
    };
    by_exten
        .or(s.default_type.as_deref())
        .unwrap_or(static_files::DEFAULT_TYPE)
}

/// The header and body of an answer nginx makes itself; `content_type` is a `return`'s.
pub fn render(r: &Response, request_id: &str, content_type: &str) -> (Box<ResponseHeader>, Bytes) {
    let mut h = ResponseHeader::build(r.status, Some(6)).expect("a status nginx sends");
    // ngx_http_send_response types a `return`'s text, empty or not; a 204 has none.
    let typed = |h: &mut ResponseHeader| {
        if !content_type.is_empty() && r.status != 204 {
            let _ = h.insert_header("content-type", content_type);
        }
    };
    let body: Bytes = match &r.body {
        Body::Text(t) => {
            typed(&mut h);
            Bytes::copy_from_slice(t)
        }
        Body::Empty => {
            typed(&mut h);
            Bytes::new()
        }
        Body::Page => match page(r.status, request_id) {
            Some(p) => {
                let _ = h.insert_header("content-type", "text/html");
                p.into()
            }
            None => Bytes::new(),
        },
    };
    // ngx_http_header_filter: a 204 has neither a body nor a Content-Length; a 304 no body.
    let body = if matches!(r.status, 204 | 304) {
        Bytes::new()
    } else {
        let _ = h.insert_header("content-length", body.len().to_string());
        body
    };
    if let Some(l) = &r.location {
        // A Location that cannot be a header value (a control byte) is an internal error.
        if h.insert_header("location", l.as_slice()).is_err() {
            return render(
                &Response {
                    status: 500,
                    location: None,
                    body: Body::Page,
                    state: r.state.clone(),
                },
                request_id,
                "",
            );
        }
    }
    let _ = h.insert_header("x-request-id", request_id);
    (Box::new(h), body)
}

/// Writes an answer of the rule set (not a proxied one); returns the status it went out
/// with (444 for a closed connection).
pub async fn write(
    session: &mut Session,
    request_id: &str,
    rules: &Rules,
    req: &Request,
    action: Action,
) -> Result<u16> {
    write_carrying(session, request_id, rules, req, action, &[]).await
}

/// `gzip_static` (`ngx_http_gzip_static_handler`): the file's `.gz` beside it, to serve instead
/// with `Content-Encoding: gzip`, for a GET or HEAD of a file (not an error page's), when the
/// client takes gzip (`on`) or whatever it takes (`always`); and whether the answer varies by
/// `Accept-Encoding` (a `.gz` is there), which `gzip_vary on` then says.
fn gzip_static(
    session: &Session,
    s: &nginx_compat::Settings,
    state: &State,
    path: &std::path::Path,
    status: u16,
) -> (Option<std::path::PathBuf>, bool) {
    use nginx_compat::parse::model::GzipStatic;
    let req = session.req_header();
    let mode = s.gzip.static_files;
    if mode == GzipStatic::Off
        || status != 200
        || !matches!(req.method, http::Method::GET | http::Method::HEAD)
        || state.uri.ends_with(b"/")
    {
        return (None, false);
    }
    let ok = mode == GzipStatic::Always || super::response::gzip_static_ok(req, s);
    if !ok && !s.gzip.vary {
        return (None, false);
    }
    let mut gz = path.as_os_str().to_owned();
    gz.push(".gz");
    let gz = std::path::PathBuf::from(gz);
    if !gz.is_file() {
        return (None, false);
    }
    (ok.then_some(gz), true)
}

/// [`write`], a file's answer taking `carried` (an `X-Accel-Redirect` answer's headers that
/// nginx keeps: its `Content-Type` wins over the file's, its cookies are set).
pub async fn write_carrying(
    session: &mut Session,
    request_id: &str,
    rules: &Rules,
    req: &Request,
    action: Action,
    carried: &[(http::HeaderName, http::HeaderValue)],
) -> Result<u16> {
    match action {
        Action::Close => {
            // Nothing is written and the connection is not kept: the client sees it close.
            session.set_keepalive(None);
            Ok(444)
        }
        Action::Respond(r) => {
            let ct = answer_type(rules, &r.state);
            respond(session, request_id, rules, req, &r, ct, None).await
        }
        Action::File(f) if f.listing => listing(session, request_id, rules, req, f).await,
        Action::File(f) => {
            let Some(base) = &rules.static_base else {
                // No nginx file serves files; the rule set never asks for one then.
                return write_page(session, request_id, rules, req, &f.state, 404).await;
            };
            let disk = super::DiskFs { base };
            let (path, root) = (disk.full(&f.path), disk.full(&f.root));
            let settings = rules.server.settings_for(&f.state);
            let (gz, vary) = gzip_static(session, settings, &f.state, &path, f.status);
            let path = gz.clone().unwrap_or(path);
            let hdr = &session.req_header().headers;
            let get = |n: http::header::HeaderName| hdr.get(n).map(|v| v.as_bytes().to_vec());
            let (inm, ims, range, if_range) = (
                get(http::header::IF_NONE_MATCH),
                get(http::header::IF_MODIFIED_SINCE),
                get(http::header::RANGE),
                get(http::header::IF_RANGE),
            );
            let (im, ius) = (
                get(http::header::IF_MATCH),
                get(http::header::IF_UNMODIFIED_SINCE),
            );
            let cond = Conditions {
                if_none_match: inm.as_deref(),
                if_modified_since: ims.as_deref(),
                if_match: im.as_deref(),
                if_unmodified_since: ius.as_deref(),
                // A `.gz` is answered whole (nginx's gzip_static allows no ranges).
                range: range.as_deref().filter(|_| gz.is_none()),
                if_range: if_range.as_deref(),
                etag: settings.etag,
                modified_since: settings.if_modified_since,
            };
            match static_files::open(&path, &root, &cond, f.status).await {
                Served::Reply(mut reply) => {
                    // nginx's gzip header filter runs before its range filter: a file it
                    // compresses for this client goes whole (compressed), not the range asked;
                    // one it compresses for others says so on the range too.
                    if reply.header.status == 206 && gz.is_none() {
                        let mut whole = ResponseHeader::build(200, Some(2)).expect("a status");
                        let t = answer_type(rules, &f.state);
                        if !t.is_empty() {
                            let _ = whole.insert_header("content-type", t);
                        }
                        if let Ok(m) = tokio::fs::metadata(&path).await {
                            let _ = whole.insert_header("content-length", m.len().to_string());
                        }
                        match super::response::gzip_decision(session.req_header(), settings, &whole)
                        {
                            super::response::Gzip::Compress => {
                                let cond = Conditions {
                                    range: None,
                                    ..cond
                                };
                                if let Served::Reply(r) =
                                    static_files::open(&path, &root, &cond, f.status).await
                                {
                                    reply = r;
                                }
                            }
                            super::response::Gzip::VaryOnly
                                if settings.gzip.vary
                                    && !super::response::varies_on_encoding(&reply.header) =>
                            {
                                let _ = reply.header.append_header("vary", "Accept-Encoding");
                            }
                            _ => {}
                        }
                    }
                    let _ = reply.header.insert_header("x-request-id", request_id);
                    if gz.is_some() {
                        let _ = reply.header.insert_header("content-encoding", "gzip");
                        reply.header.remove_header("accept-ranges");
                    }
                    if vary && settings.gzip.vary {
                        let _ = reply.header.append_header("vary", "Accept-Encoding");
                    }
                    // Typed as the rule set types the file, where the answer has a type (a
                    // 304 or 416 has none).
                    if reply
                        .header
                        .headers
                        .contains_key(http::header::CONTENT_TYPE)
                    {
                        match answer_type(rules, &f.state) {
                            "" => {
                                let _ = reply.header.remove_header("content-type");
                            }
                            t => {
                                let _ = reply.header.insert_header("content-type", t);
                            }
                        }
                    }
                    for (name, value) in carried {
                        let typed = reply
                            .header
                            .headers
                            .contains_key(http::header::CONTENT_TYPE);
                        if *name == http::header::SET_COOKIE {
                            let _ = reply.header.append_header(name.clone(), value.clone());
                        } else if *name != http::header::CONTENT_TYPE || typed {
                            let _ = reply.header.insert_header(name.clone(), value.clone());
                        }
                    }
                    let head_only = session.req_header().method == http::Method::HEAD;
                    let body = reply.body.filter(|_| !head_only);
                    let end = body.is_none();
                    let status = send(
                        session,
                        rules,
                        req,
                        &f.state,
                        &mut reply.header,
                        Some(reply.mtime),
                        end,
                    )
                    .await?;
                    if let Some(b) = body {
                        if let Err(e) = static_files::stream(session, b).await {
                            session.set_keepalive(None);
                            // A client that left mid-download is nginx's info, not a warning.
                            if crate::connection::client_went_away(&e) {
                                tracing::info!(request_id = %request_id, "static file: the client left: {}", e.etype().as_str());
                            } else {
                                tracing::warn!(request_id = %request_id, "static file: {e}");
                            }
                        }
                    }
                    Ok(status)
                }
                Served::Unsatisfiable(len) => {
                    // ngx_http_range_not_satisfiable: nginx's page, with the file's length.
                    let r = Response {
                        status: 416,
                        location: None,
                        body: Body::Page,
                        state: f.state.clone(),
                    };
                    let ct = answer_type(rules, &r.state);
                    respond(session, request_id, rules, req, &r, ct, Some(len)).await
                }
                Served::PreconditionFailed => {
                    write_page(session, request_id, rules, req, &f.state, 412).await
                }
                Served::Forbidden => {
                    write_page(session, request_id, rules, req, &f.state, 403).await
                }
                Served::NotFound => {
                    write_page(session, request_id, rules, req, &f.state, 404).await
                }
            }
        }
        Action::Proxy(_) => Error::e_explain(
            ErrorType::InternalError,
            "a proxied request reached the answer writer",
        ),
    }
}

/// `autoindex`: the directory's listing in the location's format (`nginx_compat::autoindex`).
async fn listing(
    session: &mut Session,
    request_id: &str,
    rules: &Rules,
    req: &Request,
    f: nginx_compat::FileAnswer,
) -> Result<u16> {
    use nginx_compat::autoindex::{self, Format, Options};
    let Some(base) = &rules.static_base else {
        return write_page(session, request_id, rules, req, &f.state, 404).await;
    };
    let settings = rules.server.settings_for(&f.state);
    let Some(opts) = settings.autoindex else {
        return write_page(session, request_id, rules, req, &f.state, 404).await;
    };
    // A jsonp listing without a callback is json; a callback nginx refuses is a 400.
    let (format, callback) = match opts.format {
        Format::Jsonp => match autoindex::jsonp_callback(&f.state.args) {
            Ok(Some(cb)) => (Format::Jsonp, Some(cb.to_vec())),
            Ok(None) => (Format::Json, None),
            Err(_) => return write_page(session, request_id, rules, req, &f.state, 400).await,
        },
        other => (other, None),
    };
    let disk = super::DiskFs { base };
    let mut entries = match static_files::list(&disk.full(&f.path), &disk.full(&f.root)).await {
        Ok(e) => e,
        Err(Served::Forbidden) => {
            return write_page(session, request_id, rules, req, &f.state, 403).await
        }
        Err(_) => return write_page(session, request_id, rules, req, &f.state, 404).await,
    };
    autoindex::sort(&mut entries);
    let body = autoindex::render(
        &entries,
        &Options {
            format,
            uri: &f.state.uri,
            utf8: settings
                .charset
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case("utf-8")),
            exact_size: opts.exact_size,
            utc_offset: if opts.localtime { utc_offset() } else { 0 },
            callback: callback.as_deref(),
        },
    );
    let r = Response {
        status: 200,
        location: None,
        body: Body::Text(body),
        state: f.state,
    };
    respond(
        session,
        request_id,
        rules,
        req,
        &r,
        format.content_type(),
        None,
    )
    .await
}

/// The local time zone's offset from UTC now, in seconds (nginx's cached `gmtoff`).
fn utc_offset() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: localtime_r only writes the `tm` it is given.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            0
        } else {
            tm.tm_gmtoff
        }
    }
}

/// Writes a response nginx makes itself, typed `content_type` (a text's). `unsatisfiable`: the
/// 416 of a range past the end of a file this long, with its `Content-Range`, and the headers
/// its 200 would have had (nginx runs its headers filter before the range filter).
async fn respond(
    session: &mut Session,
    request_id: &str,
    rules: &Rules,
    req: &Request,
    r: &Response,
    content_type: &str,
    unsatisfiable: Option<u64>,
) -> Result<u16> {
    let (mut h, body) = render(r, request_id, content_type);
    let filtered = match unsatisfiable {
        Some(len) => {
            let _ = h.insert_header("content-range", format!("bytes */{len}"));
            200
        }
        None => r.status,
    };
    let head_only = session.req_header().method == http::Method::HEAD;
    let has_body = !head_only && !body.is_empty();
    let status = send_as(
        session, rules, req, &r.state, &mut h, None, !has_body, filtered,
    )
    .await?;
    if has_body {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(status)
}

async fn write_page(
    session: &mut Session,
    request_id: &str,
    rules: &Rules,
    req: &Request,
    state: &State,
    status: u16,
) -> Result<u16> {
    let r = Response {
        status,
        location: None,
        body: Body::Page,
        state: state.clone(),
    };
    Box::pin(write(session, request_id, rules, req, Action::Respond(r))).await
}

/// nginx's `charset` label on the answer's `Content-Type` (`upstream`: a proxied answer's).
pub fn charset(rules: &Rules, state: &State, h: &mut ResponseHeader, upstream: bool) {
    let Some(ct) = h.headers.get(http::header::CONTENT_TYPE) else {
        return;
    };
    let status = h.status.as_u16();
    if let Some(v) = rules
        .server
        .charset_content_type(state, status, ct.as_bytes(), upstream)
    {
        let _ = h.insert_header(http::header::CONTENT_TYPE, v.as_slice());
    }
}

/// nginx's header filters on an answer, then the header itself (`end`: nothing follows).
/// Returns the status sent.
async fn send(
    session: &mut Session,
    rules: &Rules,
    req: &Request,
    state: &State,
    h: &mut Box<ResponseHeader>,
    last_modified: Option<i64>,
    end: bool,
) -> Result<u16> {
    let status = h.status.as_u16();
    send_as(session, rules, req, state, h, last_modified, end, status).await
}

/// [`send`], with `add_header` and `expires` applied as for `filtered` (nginx runs its headers
/// filter before the range filter: a file's 416 gets them as its 200 would).
#[allow(clippy::too_many_arguments)]
async fn send_as(
    session: &mut Session,
    rules: &Rules,
    req: &Request,
    state: &State,
    h: &mut Box<ResponseHeader>,
    last_modified: Option<i64>,
    end: bool,
    filtered: u16,
) -> Result<u16> {
    let status = h.status.as_u16();
    let answer = super::response::AnswerVars {
        status: filtered,
        headers: &h.headers,
        upstream: None,
    };
    let edits =
        rules
            .server
            .response_headers(req, state, filtered, last_modified, now_secs(), &answer);
    charset(rules, state, h, false);
    apply_edits(h, &edits);
    gzip(session, rules.server.settings_for(state), h);
    session.write_response_header(h.clone(), end).await?;
    Ok(status)
}
