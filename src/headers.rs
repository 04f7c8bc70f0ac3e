//! Header policy of the public listener: what the client may not send (SPEC section 5, step 2),
//! what the upstream is told (step 8), and what is hop-by-hop.

use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// Prefixes of the headers only the gateway may set. Compared case-insensitively with `_` read
/// as `-`: many back ends (CGI, PHP, Django's `META`) fold `-` into `_`, so `x_wecom_userid`
/// would arrive as the same variable as the real header.
const RESERVED_PREFIXES: [&[u8]; 3] = [b"x-wecom-", b"x-wechat-", b"x-gateway-"];

/// Is this a header name the client must never be able to set?
pub fn is_reserved(name: &[u8]) -> bool {
    RESERVED_PREFIXES.iter().any(|p| {
        name.len() >= p.len()
            && name[..p.len()]
                .iter()
                .zip(p.iter())
                .all(|(&c, &want)| fold(c) == want)
    })
}

fn fold(c: u8) -> u8 {
    match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    }
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) plus the non-standard ones proxies still see.
/// `Upgrade` is handled apart: it is kept on a WebSocket handshake.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes every reserved identity header, whatever its spelling.
pub fn strip_reserved(req: &mut RequestHeader) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| is_reserved(n.as_str().as_bytes()))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
}

/// Removes hop-by-hop headers, including those the client listed in `Connection`. A WebSocket
/// handshake keeps `Upgrade` and gets `Connection: upgrade` back.
pub fn strip_hop_by_hop(req: &mut RequestHeader, upgrade: bool) {
    let listed: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "close" && t != "keep-alive")
        .collect();
    for name in listed {
        // A client listing a header the gateway sets itself must not remove it later.
        if !is_reserved(name.as_bytes()) && name != "x-request-id" && name != "host" {
            req.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        req.remove_header(name);
    }
    if upgrade {
        let _ = req.insert_header(http::header::CONNECTION, "upgrade");
    } else {
        req.remove_header("upgrade");
    }
}

/// The gateway's own cookies (`wgw_*` and the configured session cookie) are removed from
/// `Cookie` before it goes upstream: the CRM must not see, log or replay them. Read as bytes,
/// so a header that is not ASCII text loses ours all the same.
pub fn strip_gateway_cookies(req: &mut RequestHeader, session_cookie: Option<&str>) {
    let values = req.headers.get_all(http::header::COOKIE);
    if values.iter().next().is_none() {
        return;
    }
    let kept = crate::cookies::without_ours(values.iter().map(|v| v.as_bytes()), session_cookie);
    req.remove_header(&http::header::COOKIE);
    if let Some(v) = kept.and_then(|k| HeaderValue::from_bytes(&k).ok()) {
        let _ = req.insert_header(http::header::COOKIE, v);
    }
}

/// The CRM cannot set the gateway's cookies: a `Set-Cookie` naming one of them is dropped, so
/// a CRM (or anything the CRM reflects into a header) can neither fix a session nor end one.
pub fn strip_gateway_set_cookies(resp: &mut ResponseHeader, session_cookie: Option<&str>) {
    let set = resp.headers.get_all(http::header::SET_COOKIE);
    let ours = |v: &HeaderValue| {
        let name = v.as_bytes().split(|&b| b == b'=' || b == b';').next();
        name.is_some_and(|n| crate::cookies::is_ours(n, session_cookie))
    };
    if !set.iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = set.iter().filter(|v| !ours(v)).cloned().collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for v in kept {
        let _ = resp.append_header(http::header::SET_COOKIE, v);
    }
}

/// A client-supplied request id is kept when it is short and plain, so ids can be followed
/// across a load balancer; anything else is replaced.
pub fn sane_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_in_every_spelling() {
        let cases: &[(&str, bool)] = &[
            ("X-WeCom-UserId", true),
            ("x-wecom-userid", true),
            ("X-WECOM-USERID", true),
            ("x_wecom_userid", true),
            ("X_WeCom-UserId", true),
            ("x-wechat-openid", true),
            ("X_WECHAT_UNIONID", true),
            ("X-Gateway-Assertion", true),
            ("x_gateway_assertion", true),
            ("X-WeCom-External-UserId", true),
            ("x-wecom", false),
            ("x-wecomx-userid", false),
            ("x-request-id", false),
            ("authorization", false),
            ("x-wechatpay-signature", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_reserved(name.as_bytes()), *want, "{name}");
        }
    }

    #[test]
    fn request_ids() {
        assert!(sane_request_id(b"abc-123_x.y"));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"a b"));
        assert!(!sane_request_id(b"a\"b"));
        assert!(!sane_request_id(&[b'a'; 129]));
    }

    fn req_with(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn gateway_cookies_never_go_upstream() {
        let mut r = req_with(&[
            ("Cookie", "a=1; wgw_session=SECRET; b=2"),
            ("Cookie", "wgw_login=x"),
        ]);
        strip_gateway_cookies(&mut r, Some("wgw_session"));
        let all: Vec<_> = r
            .headers
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(all, vec!["a=1; b=2".to_owned()]);

        let mut r = req_with(&[("Cookie", "wgw_session=SECRET")]);
        strip_gateway_cookies(&mut r, Some("wgw_session"));
        assert!(r.headers.get("cookie").is_none());

        let mut r = req_with(&[("Cookie", "crm_sid=1; my_session=s")]);
        strip_gateway_cookies(&mut r, Some("my_session"));
        assert_eq!(r.headers.get("cookie").unwrap(), "crm_sid=1");
    }

    #[test]
    fn hop_by_hop_and_connection_listed() {
        let mut r = req_with(&[
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("X-Other", "kept"),
        ]);
        strip_hop_by_hop(&mut r, false);
        for gone in ["connection", "x-secret-hop", "keep-alive", "te", "upgrade"] {
            assert!(r.headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(r.headers.get("x-other").unwrap(), "kept");

        let mut r = req_with(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        strip_hop_by_hop(&mut r, true);
        assert_eq!(r.headers.get("upgrade").unwrap(), "websocket");
        assert_eq!(r.headers.get("connection").unwrap(), "upgrade");
    }
}
