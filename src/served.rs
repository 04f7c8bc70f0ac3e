//! How the admin and qyapi listeners serve their apps. pingora's own way of serving a
//! [`ServeHttp`] logs a malformed request's error with the request's raw bytes in it (cookies,
//! `Authorization`, tickets: issue 13 item 8) and answers it nothing. Here a malformed request
//! gets a 400 with a request id, and the log says what was wrong, never what was sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::v1::server::{REQUEST_HEADER_TOO_LARGE, REQUEST_LINE_TOO_LONG};
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};

/// Idle time allowed between requests on an admin or qyapi connection, as pingora's default.
const KEEPALIVE_SECS: u64 = 60;

pub struct Served<T> {
    app: T,
    options: HttpServerOptions,
}

impl<T> Served<T> {
    pub fn new(app: T, options: HttpServerOptions) -> Self {
        Served { app, options }
    }
}

impl<T: ServeHttp + Send + Sync + 'static> HttpServerApp for Served<T> {
    // The trait's `async_trait` signature, written out: the macro boxes the future with
    // `Box::pin(future)`, which builds the whole request's future (the session, the app's
    // answer, the writes) on the stack and then copies it into the box, once per request. Here
    // it is built in the box.
    fn process_new_http<'life0, 'life1, 'async_trait>(
        self: &'life0 Arc<Self>,
        http: ServerSession,
        shutdown: &'life1 ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        let mut boxed = Box::new_uninit();
        boxed.write(self.serve(http, shutdown));
        // SAFETY: initialised by the write just above.
        Box::into_pin(unsafe { boxed.assume_init() })
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

impl<T: ServeHttp + Send + Sync + 'static> Served<T> {
    async fn serve(
        self: &Arc<Self>,
        mut http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match http.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                refuse_malformed(http, &e).await;
                return None;
            }
        }
        // The engine read whether the client keeps the connection (HTTP/1.1 unless it says
        // `close`; HTTP/1.0 only when it says `keep-alive`): kept, for this listener's time.
        let wanted = http.get_keepalive().is_some();
        http.set_keepalive((wanted && !*shutdown.borrow()).then_some(KEEPALIVE_SECS));
        // Requests sent back to back are all answered, in order, as on the public listener
        // (without it the engine closes the connection on the bytes read past this request).
        http.set_pipelining_enabled(true);
        // A client that stops reading its answer (a media download) is closed after nginx's
        // `send_timeout` without progress, as on the public listener, not held with the answer.
        http.set_write_timeout(Some(crate::connection::SEND_TIMEOUT));
        let (parts, body) = self.app.response(&mut http).await.into_parts();
        let header: ResponseHeader = parts.into();
        if let Err(e) = write(&mut http, Box::new(header), body.into()).await {
            tracing::debug!(error = e.etype().as_str(), "answer not written");
            return None;
        }
        let settings = HttpPersistentSettings::for_session(&http);
        match http.finish().await {
            Ok(reusable) => reusable.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }
}

async fn write(
    http: &mut ServerSession,
    header: Box<ResponseHeader>,
    body: Bytes,
) -> pingora::Result<()> {
    http.write_response_header(header).await?;
    if !body.is_empty() {
        http.write_response_body(body, true).await?;
    }
    Ok(())
}

/// A request that could not be read: a 400 when it was malformed (the client is there and
/// waiting), nothing when the client left or was too slow.
async fn refuse_malformed(mut http: ServerSession, e: &Error) {
    let Some((header, body)) = malformed_response(&http, e) else {
        tracing::debug!(error = e.etype().as_str(), "request not read");
        return;
    };
    http.set_keepalive(None);
    if write(&mut http, Box::new(header), body).await.is_ok() {
        let _ = http.finish().await;
    }
}

/// The answer to a request whose header could not be read, when it was malformed (the client
/// is there and waiting; `None` when it left or was too slow): a 400 with a request id, in
/// JSON, closing the connection; the refusal is logged with the parser's reason and that id.
/// The proxy's listener answers so too (pingora's `malformed_request_response`).
pub(crate) fn malformed_response(
    http: &ServerSession,
    e: &Error,
) -> Option<(ResponseHeader, Bytes)> {
    if *e.etype() != ErrorType::InvalidHTTPHeader {
        return None;
    }
    let rid = crate::request_id::generate();
    // nginx's 414 for a request line past `large_client_header_buffers`, and its 400 ("Request
    // Header Or Cookie Too Large") for a header line or a head past them.
    let too_long = match e.context.as_ref().map(|c| c.as_str()) {
        Some(c @ REQUEST_LINE_TOO_LONG) => Some((414, "uri_too_long", c)),
        Some(c @ REQUEST_HEADER_TOO_LARGE) => Some((400, "request_header_too_large", c)),
        _ => None,
    };
    // The cause is the parser's fixed message (or one of the two above); any other context
    // holds the raw bytes.
    let cause = match too_long {
        Some((_, _, c)) => c.to_owned(),
        None => e.cause.as_ref().map_or_else(String::new, |c| c.to_string()),
    };
    tracing::info!(
        client = %http.client_addr().map_or_else(String::new, |a| a.to_string()),
        cause,
        request_id = %rid,
        "malformed request refused"
    );
    let (status, error, _) = too_long.unwrap_or((400, "bad_request", ""));
    let body = format!("{{\"error\":\"{error}\",\"request_id\":\"{rid}\"}}\n");
    let mut header = ResponseHeader::build(status, Some(5)).ok()?;
    header
        .insert_header("content-type", "application/json")
        .ok()?;
    header.insert_header("content-length", body.len()).ok()?;
    header.insert_header("x-request-id", rid.as_str()).ok()?;
    header.insert_header("connection", "close").ok()?;
    Some((header, Bytes::from(body)))
}
