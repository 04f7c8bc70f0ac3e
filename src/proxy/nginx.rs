//! The nginx file's hooks into the proxy phases: each phase hands `crate::nginx` only what it
//! needs of the request context, and keeps the context's upstream in step with the flight
//! (an `error_page` may send the request to another upstream).

use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;

use super::ctx::Chosen;
use super::Ctx;
use crate::config::rules::Rules;
use crate::nginx::{self, response};
use crate::routing::Final;

/// What the proxy does after the rewrite phase.
pub(super) enum Next {
    /// Go on with route selection's result (`None`: no route).
    Route(Option<usize>),
    /// A location of the nginx file chose the upstream; `ctx.nginx` holds the flight.
    Proxy,
    /// The rule set answers itself: [`write`] it.
    Answer(Box<nginx::Pending>),
}

/// Step 4.
pub(super) fn phase(session: &Session, ctx: &mut Ctx, rules: &std::sync::Arc<Rules>) -> Next {
    match nginx::phase(
        session,
        rules,
        &ctx.config.server,
        ctx.remote_ip,
        &ctx.request_id,
    ) {
        nginx::Next::Route { index, target } => {
            ctx.upstream_uri = target;
            Next::Route(index)
        }
        nginx::Next::Proxy(flight) => {
            ctx.upstream = Some(Chosen::Flight(flight.upstream.clone()));
            let at = rules.server.settings_for(&flight.proxy.state);
            ctx.unlogged = !at.access_log;
            ctx.keepalive = rules.server.keepalive_for(&flight.proxy.state);
            ctx.nginx = Some(flight);
            Next::Proxy
        }
        nginx::Next::Answer(pending) => {
            ctx.unlogged = !pending.logged();
            ctx.keepalive = pending.keepalive_timeout();
            Next::Answer(pending)
        }
    }
}

/// Writes an answer of the rule set; `Ok(true)`: the request is done.
pub(super) async fn write(
    session: &mut Session,
    ctx: &mut Ctx,
    pending: Box<nginx::Pending>,
) -> Result<bool> {
    if let Some(trace) = ctx.trace.as_mut() {
        trace.at = pending.log_place();
    }
    discard_body(session, ctx).await;
    if let Some(t) = pending.send_timeout() {
        session.set_write_timeout(Some(t));
    }
    ctx.answered = Some(pending.write(session, &ctx.request_id).await?);
    // Not after a 444: that closes at once, as nginx closes it (no answer to linger over).
    if ctx.answered != Some(444) && session.get_keepalive().is_none() && !session.is_body_done() {
        linger(session).await;
    }
    Ok(true)
}

/// How long a closing connection still reads what its client sends ([`linger`]).
const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

/// nginx's lingering close: an answer that ends the connection before the body was read (a
/// 413 among them) goes out first, then what the client still sends is read and dropped for
/// at most [`LINGER`], so that a client writing its whole body before it reads (Python's
/// `http.client`, Java's `HttpURLConnection`) reads the answer rather than a reset.
async fn linger(session: &mut Session) {
    if session.as_mut().finish_body().await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(Some(_)) = session.read_request_body().await {}
    })
    .await;
}

/// The most of a body the gateway reads to throw away so that the connection stays open
/// after an answer that did not need it; a longer one closes the connection instead.
const DISCARD_MAX: u64 = 64 * 1024;

/// `ngx_http_discard_request_body`: an answer the rule set makes itself (a `return`, a
/// redirect, a page, a file) does not need the body, and nginx reads it to throw it away so
/// that the client's connection stays open for its next request. The gateway does the same
/// for a body of up to [`DISCARD_MAX`] bytes, unless the answer closes the connection anyway
/// (a 413 among them); past that, or when the body does not arrive, the connection closes
/// after the answer, as it did.
///
/// A body of a declared length is dropped after the answer, as nginx does it: the engine
/// reads it before the connection's next request, so a client that never sends it is
/// answered at once and its connection then closes. A client that waits for `100 Continue`
/// is asked for its body first (answered without it, it could take the connection for its
/// next request and its bytes for this body), and so is a chunked body, whose length is only
/// known once read.
async fn discard_body(session: &mut Session, ctx: &Ctx) {
    if session.is_body_empty() || ctx.keepalive == Some(std::time::Duration::ZERO) {
        return;
    }
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DISCARD_MAX) {
        return;
    }
    if declared.is_none() || super::request::expects_continue(session) {
        let _ = super::request::small_body(session, DISCARD_MAX as usize).await;
        return;
    }
    let d = session.as_downstream_mut();
    d.set_close_on_response_before_downstream_finish(false);
    d.set_total_drain_timeout(Some(super::request::BODY_DEADLINE));
}

/// The paths the login of an area is decided on for a request an nginx location proxies:
/// the one its upstream receives (`proxy_pass` with a URI part replaces the location's
/// prefix), then the URI nginx chose the location for.
pub(super) fn final_paths(ctx: &Ctx) -> Result<Vec<Final>, crate::routing::AreaError> {
    let Some(f) = ctx.nginx.as_deref() else {
        return Ok(Vec::new());
    };
    Ok(vec![
        Final::sent(f.target())?,
        Final::Normal(f.uri().to_vec()),
    ])
}

pub(super) fn peer(session: &mut Session, ctx: &Ctx, peer: &mut HttpPeer) {
    nginx::upstream::peer(ctx.nginx.as_deref(), peer);
    if let Some(t) = nginx::upstream::body_timeout(ctx.nginx.as_deref()) {
        session.set_read_timeout(Some(t));
    }
    if let Some(t) = nginx::upstream::send_timeout(ctx.nginx.as_deref()) {
        session.set_write_timeout(Some(t));
    }
}

pub(super) fn upstream_request(req: &mut RequestHeader, ctx: &mut Ctx) -> Result<()> {
    if !nginx::upstream::request(req, ctx.nginx.as_deref())? {
        ctx.upgrade = false;
    }
    Ok(())
}

/// The nginx file writes this request's `X-Forwarded-For` itself.
pub(super) fn sets_forwarded_for(ctx: &Ctx) -> bool {
    nginx::upstream::sets_forwarded_for(ctx.nginx.as_deref())
}

/// The nginx file sets header `name` (lowercase) on this request's upstream request.
pub(super) fn sets(ctx: &Ctx, name: &str) -> bool {
    nginx::upstream::sets(ctx.nginx.as_deref(), name)
}

pub(super) fn request_body(ctx: &mut Ctx, body: Option<&Bytes>) -> Result<()> {
    response::request_body(ctx.nginx.as_deref_mut(), body)
}

pub(super) fn upstream_answered(ctx: &mut Ctx, status: u16) -> Result<()> {
    let r = response::upstream_answered(&mut ctx.nginx, status);
    if r.is_err() && refused_into_area(ctx, false) {
        // The upstream's own answer goes to the client instead.
        return Ok(());
    }
    sync_upstream(ctx);
    r
}

/// `X-Accel-Redirect` in the upstream's answer: followed as nginx follows it, unless it leads
/// into a login area the request did not pass (then the upstream's answer goes out, its
/// `X-Accel-*` headers hidden as always).
pub(super) fn accel_redirect(ctx: &mut Ctx, resp: &ResponseHeader) -> Result<()> {
    let cookie = ctx.config.session.as_ref().map(|s| s.cookie_name.as_str());
    let r = response::accel_redirect(&mut ctx.nginx, resp, cookie);
    if r.is_err() && refused_into_area(ctx, false) {
        return Ok(());
    }
    sync_upstream(ctx);
    r
}

pub(super) fn response(session: &mut Session, resp: &mut ResponseHeader, ctx: &Ctx) {
    let server = ctx.upstream_server().unwrap_or_default();
    response::upstream_response(session, resp, ctx.nginx.as_deref(), server);
}

pub(super) fn fail_to_connect(ctx: &mut Ctx, e: Box<Error>) -> Box<Error> {
    let mut e = response::upstream_failed(&mut ctx.nginx, ctx.answered.is_some(), e);
    if refused_into_area(ctx, e.retry()) {
        e.set_retry(false);
    }
    sync_upstream(ctx);
    e
}

pub(super) fn error_while_proxy(
    peer: &HttpPeer,
    session: &mut Session,
    e: Box<Error>,
    ctx: &mut Ctx,
    client_reused: bool,
) -> Box<Error> {
    let answered = ctx.answered.is_some();
    let mut e =
        response::error_while_proxy(peer, session, e, &mut ctx.nginx, answered, client_reused);
    if refused_into_area(ctx, e.retry()) {
        e.set_retry(false);
    }
    sync_upstream(ctx);
    e
}

/// An `error_page` that leads a request into a login area (a file of the area, or a location
/// proxying into it) other than the one whose login and rules it passed is not followed: a
/// visitor without a session, or one signed in to another app (any WeChat user can sign in to
/// an Official Account app), or a member that area's rules keep out, would reach it. The
/// flight drops it, so the gateway's own failure answer (or the upstream's answer) goes out.
/// Returns whether it did.
///
/// `retrying`: the failed upstream's error is tried again (an `error_page` to a proxied
/// location sets the flight's new target and leaves the retry to the error itself).
fn refused_into_area(ctx: &mut Ctx, retrying: bool) -> bool {
    let Some(f) = ctx.nginx.as_deref() else {
        return false;
    };
    // An `X-Accel-Redirect` URI is not normalised (`/./sidebar/x` is a file of /sidebar/): it
    // is read as written, and as nginx's location matching reads it.
    let paths = match (&f.pending, f.reproxy || retrying) {
        (Some(nginx_compat::Action::File(a)), _) => Final::sent(&a.state.uri).map(|p| vec![p]),
        (_, true) => final_paths(ctx),
        _ => return false,
    };
    let routes = &ctx.config.routes;
    let admitted = ctx.admitted;
    let into_area = |p: &Final| match p.area(routes) {
        Ok(Some(i)) => {
            routes.routes[i].login.is_some()
                && !admitted.is_some_and(|a| a == i || crate::routing::same_gate(routes, a, i))
        }
        Ok(None) => false,
        Err(_) => true,
    };
    let into = match paths {
        Ok(paths) => paths.iter().any(into_area),
        Err(_) => true,
    };
    if into {
        if let Some(f) = ctx.nginx.as_deref_mut() {
            f.pending = None;
            f.reproxy = false;
        }
    }
    into
}

/// Writes the answer an `error_page` gave an upstream's error, if there is one.
pub(super) async fn write_pending(session: &mut Session, ctx: &mut Ctx) -> Option<u16> {
    let status =
        response::write_pending(session, ctx.nginx.as_deref_mut(), &ctx.request_id).await?;
    ctx.answered = Some(status);
    Some(status)
}

/// The upstream the next attempt goes to is the flight's.
fn sync_upstream(ctx: &mut Ctx) {
    if let Some(f) = &ctx.nginx {
        ctx.upstream = Some(Chosen::Flight(f.upstream.clone()));
    }
}
