//! A balanced upstream's server for each attempt, and the next server after one failed: what
//! nginx's default `proxy_next_upstream error timeout` does. A request goes on to the next
//! server when the one it tried could not be reached, broke or timed out before its answer's
//! header — unless the client has had part of an answer, or a POST, PATCH or LOCK was already
//! sent (it may have been carried out), or its body was too long to keep for a second send.

use std::net::SocketAddr;
use std::time::Instant;

use pingora::prelude::*;
use pingora::{Error, ErrorSource, ErrorType};

use super::ctx::Ctx;

/// The attempt's address: the upstream's, or the next server of a balanced one; an error
/// (nginx's "no live upstreams") when each server is tried, down or failed.
pub(super) fn server(ctx: &mut Ctx) -> Result<SocketAddr> {
    let (up, attempt, client) = ctx.attempt_at();
    let Some(up) = up else {
        return Error::e_explain(ErrorType::InternalError, "no upstream chosen");
    };
    let Some(b) = up.balance.as_deref() else {
        return Ok(up.addr);
    };
    if !std::mem::take(&mut attempt.next) {
        attempt.tried = Default::default();
        attempt.first_at = Some(Instant::now());
    }
    attempt.answered = false;
    attempt.server = None;
    match b.pick(&mut attempt.tried, client, Instant::now()) {
        Some(i) => {
            attempt.server = Some(i);
            Ok(b.servers[i].addr)
        }
        None => {
            tracing::error!(upstream = %up.name, "no live upstreams");
            let mut e = Error::explain(ErrorType::ConnectNoRoute, "no live upstreams");
            e.as_up();
            Err(e)
        }
    }
}

/// The upstream's answer arrived: its server is live again if it was being checked, and the
/// request will not go on to another.
pub(super) fn answered(ctx: &mut Ctx) {
    let (up, attempt, _) = ctx.attempt_at();
    attempt.answered = true;
    if let (Some(b), Some(i)) = (up.and_then(|u| u.balance.as_deref()), attempt.server) {
        b.answered(i);
    }
}

/// The attempt failed: counted against its server; whether the request goes on to the next
/// one (the error is then retried). `sent`: the request reached the server (it was connected).
pub(super) fn failed(session: &Session, ctx: &mut Ctx, e: &Error, sent: bool) -> bool {
    // The nginx file's `proxy_next_upstream` and `_tries` where a location of it proxies; a
    // `[[routes]]` entry goes on as nginx's defaults do.
    let (next, tries, timeout) = ctx
        .nginx
        .as_ref()
        .map_or((Default::default(), 0, None), |f| f.next_upstream());
    let traced = ctx.trace.is_some();
    let (up, attempt, _) = ctx.attempt_at();
    let (Some(b), Some(i)) = (up.and_then(|u| u.balance.as_deref()), attempt.server) else {
        return false;
    };
    if attempt.answered || *e.esource() != ErrorSource::Upstream {
        return false;
    }
    b.failed(i, Instant::now());
    // nginx's `error` and `timeout`: the server could not be reached, broke the connection or
    // did not answer in time. An answer it could not read (a bad header) is `invalid_header`,
    // not among nginx's defaults.
    let listed = match e.etype() {
        ErrorType::InvalidHTTPHeader
        | ErrorType::InvalidH2
        | ErrorType::H1Error
        | ErrorType::H2Error => next.invalid_header,
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            next.timeout
        }
        _ => next.error,
    };
    let within_tries = tries == 0 || attempt.tried.count() < tries;
    let within_time = match (timeout, attempt.first_at) {
        (Some(limit), Some(first)) => first.elapsed() < limit,
        _ => true,
    };
    let method = &session.req_header().method;
    let unsafe_to_repeat = sent
        && !next.non_idempotent
        && (method == http::Method::POST || method == http::Method::PATCH || method == "LOCK");
    let again = b.has_more(&attempt.tried)
        && listed
        && within_tries
        && within_time
        && !unsafe_to_repeat
        && session.response_written().is_none()
        && !session.as_ref().retry_buffer_truncated();
    attempt.next = again;
    // The access line names every attempt, as nginx's `$upstream_addr` and `$upstream_status`.
    let addr = (again && traced).then(|| b.servers[i].label.clone());
    if let (Some(addr), Some(trace)) = (addr, ctx.trace.as_deref_mut()) {
        let status = crate::nginx::response::failed_status(e);
        trace.earlier_addrs.push_str(&addr);
        trace.earlier_addrs.push_str(", ");
        trace.earlier_statuses.push_str(&format!("{status}, "));
    }
    again
}
