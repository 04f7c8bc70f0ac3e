//! The rule set's answer, translated into what the proxy does next. Pure: reads the file
//! system only through [`DiskFs`] as nginx's content phase would.

use std::sync::Arc;

use nginx_compat::eval::NoFiles;
use nginx_compat::{Action, FileSystem, LocRef, Proxy, Request};

use super::DiskFs;
use crate::config::model::Upstream;
use crate::config::rules::Rules;

pub enum Decision {
    /// Continue with `[[routes]]` entry `index`; `target` is the request target to send when
    /// a rewrite changed it.
    Route {
        index: usize,
        target: Option<Vec<u8>>,
    },
    /// Nothing matched and no nginx file serves files: the gateway's own 404.
    NoRoute,
    /// A location of the nginx file with `proxy_pass`.
    Upstream {
        proxy: Box<Proxy>,
        upstream: Arc<Upstream>,
    },
    /// An answer made without an upstream (also a file, or a closed connection).
    Answer(Box<Action>),
}

/// Evaluates the rules for one request.
pub fn decide(rules: &Rules, req: &Request) -> Decision {
    let disk;
    let fs: &dyn FileSystem = match &rules.static_base {
        Some(base) => {
            disk = DiskFs { base };
            &disk
        }
        None => &NoFiles,
    };
    classify(rules, req, rules.server.handle(req, fs), fs)
}

/// What an [`Action`] of the rule set means for the gateway. Also used for the actions that
/// replace an upstream's answer (an `error_page`).
pub fn classify(rules: &Rules, req: &Request, action: Action, fs: &dyn FileSystem) -> Decision {
    match action {
        Action::Proxy(mut p) => {
            sendable(&mut p.target);
            if let Some(index) = rules.route_of(&p.state.loc) {
                let target = (p.target != req.uri).then(|| p.target.clone());
                return Decision::Route { index, target };
            }
            match rules.upstream(&p.authority) {
                Some(up) => Decision::Upstream {
                    proxy: p,
                    upstream: up.clone(),
                },
                // A proxy_pass with variables naming no configured upstream: nginx (without a
                // resolver) finalizes with 502, so its error_page applies; and logs why, as
                // here (once a minute: the name may come from the request).
                None => {
                    if UNNAMED.due((), crate::clock::clock().now_ms()) {
                        let at = rules.server.conf(&p.state.loc).map(|c| c.pos.to_string());
                        let name: String = p.authority.chars().take(64).collect();
                        tracing::warn!(
                            location = at.as_deref().unwrap_or("-"),
                            upstream = ?name,
                            "a proxy_pass with variables names no [upstreams] entry: 502 \
                             (logged once a minute)"
                        );
                    }
                    Decision::Answer(Box::new(rules.server.upstream_failed(req, &p, 502, fs)))
                }
            }
        }
        Action::Respond(r)
            if rules.static_base.is_none()
                && r.state.loc == LocRef::default()
                && matches!(r.status, 403..=405) =>
        {
            Decision::NoRoute
        }
        other => Decision::Answer(Box::new(other)),
    }
}

/// When a `proxy_pass` naming no upstream was last logged.
static UNNAMED: std::sync::LazyLock<wecom_api::Throttle<()>> =
    std::sync::LazyLock::new(wecom_api::Throttle::per_minute);

/// A target built from decoded variables (`proxy_pass http://crm$uri`, `rewrite ... ?u=$uri`)
/// can hold what a request line cannot: nginx sends a space, a control byte or a lone `%` raw
/// (an invalid request the CRM refuses), and a `#` would end the path there. They are sent
/// escaped, as `%XX`, and so are bytes that are not UTF-8; UTF-8 text stays as it is, as nginx
/// sends it, and so does every `%XX` already there, and a quote, `<`, `>` or a backtick (which
/// a client may send unencoded: a CRM checking a webhook's signature over its raw target gets
/// it as it was signed). A lone `%` is escaped in the path only (where the gateway reads the
/// target's escapes to tell which area it falls in); in the query it is sent as nginx sends
/// it: a client's `?q=%u4e2d` (JavaScript's `escape()`, which ASP.NET and old Java utilities
/// decode) reaches the CRM as it was written.
fn sendable(target: &mut Vec<u8>) {
    let utf8 = std::str::from_utf8(target).is_ok();
    let t = &target[..];
    let query = t.iter().position(|&b| b == b'?').unwrap_or(t.len());
    let lone_percent = |i: usize| {
        !(t.len() > i + 2 && t[i + 1].is_ascii_hexdigit() && t[i + 2].is_ascii_hexdigit())
    };
    let unsafe_at = |i: usize| {
        let b = t[i];
        b <= b' '
            || b == 0x7f
            || b == b'#'
            || (b == b'%' && i < query && lone_percent(i))
            || (!utf8 && b >= 0x80)
    };
    if !(0..t.len()).any(unsafe_at) {
        return;
    }
    let mut out = Vec::with_capacity(t.len() + 8);
    for (i, &b) in t.iter().enumerate() {
        if unsafe_at(i) {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
    *target = out;
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    #[test]
    fn a_target_is_sent_escaped_only_where_a_request_line_cannot_hold_it() {
        for (target, want) in [
            (&b"/p/x?u=/a b"[..], &b"/p/x?u=/a%20b"[..]),
            (b"/i2/a\tb#c", b"/i2/a%09b%23c"),
            (b"/k/\xe4\xb8\xad", b"/k/\xe4\xb8\xad"),
            (b"/k/\xff", b"/k/%FF"),
            (b"/plain/%20?a=1&b=2", b"/plain/%20?a=1&b=2"),
            (b"/q/a\"b<c>d`e?x=\"<>`", b"/q/a\"b<c>d`e?x=\"<>`"),
            (b"/p/a%b%2", b"/p/a%25b%252"),
            (b"/p/a%b?q=%u4e2d&r=%ZZ&s=%", b"/p/a%25b?q=%u4e2d&r=%ZZ&s=%"),
        ] {
            let mut t = target.to_vec();
            super::sendable(&mut t);
            assert_eq!(t, want, "{}", String::from_utf8_lossy(target));
            let text = String::from_utf8(t).unwrap();
            assert!(http::Uri::try_from(text.as_str()).is_ok(), "{text}");
        }
    }
}
