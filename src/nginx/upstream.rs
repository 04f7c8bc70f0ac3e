//! What the upstream of a location of the nginx file receives, and how long the gateway waits
//! for it.
//!
//! The rule (README, "What the CRM receives"): the request target and the headers the nginx
//! file decides are nginx's — its `proxy_set_header` list with nginx's defaults (`Host:
//! $proxy_host`, and `TE`, `Keep-Alive`, `Expect`, `Upgrade` not passed unless set), every
//! other client header as sent but those nginx drops as it reads the request (a name with `_`,
//! unless `underscores_in_headers on`). The headers that frame the connection stay the engine's
//! (HTTP/1.1 with keep-alive, the body's own framing): nginx's `Connection: close` and its
//! HTTP/1.0 are not copied. A WebSocket upgrade passes only when the file passes `Upgrade`,
//! as with nginx. The gateway's own headers (identity, `X-Request-Id`, `X-Forwarded-*` but an
//! `X-Forwarded-For` the file sets) are then set on top, and its reserved headers and cookies
//! removed, whatever the file says.

use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

use super::Flight;

/// Headers the engine owns on the upstream connection.
const ENGINE: &[&str] = &[
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "expect",
];

/// Headers the gateway sets itself after nginx's, whatever the file says. `X-Forwarded-For` is
/// the file's when it sets one ([`sets_forwarded_for`]): `proxy_set_header X-Forwarded-For
/// $remote_addr;` keeps a client's own list from the CRM, which may trust its first address.
const GATEWAY: &[&str] = &["x-forwarded-proto", "x-forwarded-host", "x-request-id"];

/// A header the nginx file's value does not decide: the engine's framing, the gateway's own,
/// and the identity headers, which nothing but a verified session may set (a
/// `proxy_set_header X-WeCom-UserId $http_x_user` would let any client choose its identity).
fn not_the_files(name: &str) -> bool {
    ENGINE.contains(&name)
        || GATEWAY.contains(&name)
        || crate::headers::is_reserved(name.as_bytes())
}

/// The nginx file sets `X-Forwarded-For` for this request (to a value, or to `""`: none), so
/// the gateway does not write its own.
pub fn sets_forwarded_for(flight: Option<&Flight>) -> bool {
    sets(flight, "x-forwarded-for")
}

/// The nginx file's `proxy_set_header` sets `name` (lowercase) for this request.
pub fn sets(flight: Option<&Flight>, name: &str) -> bool {
    flight.is_some_and(|f| f.proxy.set_names.iter().any(|n| n == name))
}

/// The nginx file's timeouts for this location (`proxy_connect_timeout`,
/// `proxy_read_timeout`, `proxy_send_timeout`; nginx's default is 60s each).
pub fn peer(flight: Option<&Flight>, peer: &mut HttpPeer) {
    let Some(f) = flight else {
        return;
    };
    let p = &f.rules.server.settings_for(&f.proxy.state).proxy;
    peer.options.connection_timeout = Some(p.connect_timeout);
    peer.options.read_timeout = Some(p.read_timeout);
    peer.options.write_timeout = Some(p.send_timeout);
}

/// The nginx file's `client_body_timeout` for this location, where it writes one.
pub fn body_timeout(flight: Option<&Flight>) -> Option<std::time::Duration> {
    let f = flight?;
    f.rules
        .server
        .settings_for(&f.proxy.state)
        .client_body_timeout
}

/// The nginx file's `send_timeout` for this location, where it writes one.
pub fn send_timeout(flight: Option<&Flight>) -> Option<std::time::Duration> {
    let f = flight?;
    f.rules.server.settings_for(&f.proxy.state).send_timeout
}

/// nginx's method, target and headers on the upstream request. `Ok(false)` when the nginx
/// file does not pass a WebSocket upgrade (no `Upgrade` in its headers): the request is then
/// not an upgrade.
pub fn request(req: &mut RequestHeader, flight: Option<&Flight>) -> Result<bool> {
    let Some(f) = flight else {
        return Ok(true);
    };
    let p = &f.proxy;
    // nginx never read them (`ignore_invalid_headers on`, its default): a name with a byte
    // other than a letter, a digit, `-`, or `_` where `underscores_in_headers on` allows it.
    // (`X.Forwarded.For` would reach a PHP CRM as `HTTP_X_FORWARDED_FOR` beside the real one.)
    let server = &f.rules.server;
    let underscores = !server.drops_underscored_headers();
    let invalid = |k: &http::HeaderName| {
        !k.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || (underscores && b == b'_'))
    };
    if server.drops_invalid_headers() && req.headers.keys().any(invalid) {
        let names: Vec<http::HeaderName> =
            req.headers.keys().filter(|k| invalid(k)).cloned().collect();
        for name in names {
            req.remove_header(&name);
        }
    }
    if req.method.as_str() != p.method {
        let m = http::Method::from_bytes(p.method.as_bytes())
            .map_err(|e| Error::because(ErrorType::InternalError, "nginx method", e))?;
        req.set_method(m);
    }
    // Built by nginx's rules from a target the client sent or nginx's escaping: it parses.
    let uri = http::Uri::try_from(p.target.clone())
        .map_err(|e| Error::because(ErrorType::InternalError, "nginx request target", e))?;
    req.set_uri(uri);
    for name in &p.set_names {
        if !not_the_files(name) {
            req.remove_header(name.as_str());
        }
    }
    for (name, value) in &p.headers {
        let lower = name.to_ascii_lowercase();
        if p.set_names.contains(&lower) && !not_the_files(&lower) {
            req.append_header(name.clone(), value.as_slice())?;
        }
    }
    Ok(p.headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("upgrade")))
}
