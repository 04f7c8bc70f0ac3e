//! Header policy of the public listener: what the client may not send (SPEC section 5, step 2),
//! what the upstream is told (step 8), and what is hop-by-hop.

use http::header::{HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// Prefixes of the headers only the gateway may set. Compared case-insensitively with every
/// byte but a letter or digit read as `-` ([`fold`]): many back ends (CGI, PHP, Django's `META`,
/// wsgiref) fold `-` into `_`, so `x_wecom_userid` would arrive as the same variable as the real
/// header, and PHP makes a `.` in a variable's name a `_` too.
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
    if c.is_ascii_alphanumeric() {
        c.to_ascii_lowercase()
    } else {
        b'-'
    }
}

/// Names the public listener reads, removes or sets on every request, parsed once: looking a
/// header up by `&str` parses and hashes the name on each call.
pub mod names {
    use http::header::HeaderName;

    pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    pub const X_GATEWAY_ASSERTION: HeaderName = HeaderName::from_static("x-gateway-assertion");
    pub const WGW_CONTACT: HeaderName = HeaderName::from_static("wgw-contact");
    pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
    pub const X_REWRITE_URL: HeaderName = HeaderName::from_static("x-rewrite-url");
    pub const X_ACCEL_REDIRECT: HeaderName = HeaderName::from_static("x-accel-redirect");
    pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
}

/// A header the gateway sets, as pingora's header maps take it: the parsed name and the
/// spelling sent on the wire. Built at compile time, so setting one neither parses the name
/// nor allocates its spelling (a `&str` name is parsed on every insert).
pub type Sent = (HeaderName, &'static str);

/// `name` must be a lowercase header name (checked at compile time by `from_static`).
pub const fn sent(name: &'static str) -> Sent {
    (HeaderName::from_static(name), name)
}

/// The headers the gateway sets on proxied requests and their answers (SPEC sections 5 and 7).
pub mod sent {
    use super::{sent, Sent};

    pub const X_GATEWAY_ASSERTION: Sent = sent("x-gateway-assertion");
    pub const X_WECHAT_APPID: Sent = sent("x-wechat-appid");
    pub const X_WECHAT_OPENID: Sent = sent("x-wechat-openid");
    pub const X_WECHAT_UNIONID: Sent = sent("x-wechat-unionid");
    pub const X_WECOM_CORPID: Sent = sent("x-wecom-corpid");
    pub const X_WECOM_AGENTID: Sent = sent("x-wecom-agentid");
    pub const X_WECOM_USERID: Sent = sent("x-wecom-userid");
    pub const X_WECOM_OPENID: Sent = sent("x-wecom-openid");
    pub const X_WECOM_OPENUSERID: Sent = sent("x-wecom-openuserid");
    pub const X_WECOM_EXTERNAL_USERID: Sent = sent("x-wecom-external-userid");
    pub const X_WECOM_EXTERNAL_UNIONID: Sent = sent("x-wecom-external-unionid");
}

/// Hop-by-hop headers (RFC 9110 section 7.6.1) plus the non-standard ones proxies still see.
/// `Upgrade` is handled apart: it is kept on a WebSocket handshake.
const HOP_BY_HOP: [HeaderName; 7] = [
    http::header::CONNECTION,
    names::KEEP_ALIVE,
    names::PROXY_CONNECTION,
    http::header::TE,
    http::header::TRAILER,
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
];

/// Removes every reserved identity header, whatever its spelling.
pub fn strip_reserved(req: &mut RequestHeader) {
    // Nearly every request has none: look before collecting anything.
    while let Some(name) = req
        .headers
        .keys()
        .find(|n| is_reserved(n.as_str().as_bytes()))
        .cloned()
    {
        req.remove_header(&name);
    }
}

/// What the gateway reads of every request as it arrives, found in one look at its headers
/// rather than a hash lookup each: the first `X-Request-Id` and `Accept` values, whether it
/// names its host, and whether it carries a header only the gateway may set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Asked<'a> {
    pub request_id: Option<&'a [u8]>,
    pub accept: Option<&'a [u8]>,
    pub host: bool,
    /// A `Host` header nginx refuses (`ngx_http_validate_host`): empty, or with a `/`, a
    /// backslash, a blank or control byte, or `..` in it.
    pub host_invalid: bool,
    pub reserved: bool,
    /// `Content-Length` is not one number in one field (`4, 4`, or twice): the engine takes a
    /// list of equal values, as RFC 9110 lets a recipient, but would pass it on as it is, and
    /// a CRM may read it otherwise; nginx refuses it.
    pub length_list: bool,
    /// `Expect: 100-continue`: the client holds its body back for a `100 Continue`.
    pub expect_continue: bool,
    /// `Transfer-Encoding` other than exactly `chunked` (`gzip, chunked`): the engine takes
    /// the last coding and drops the others, so the CRM would read a compressed body as plain;
    /// nginx answers 501.
    pub coding_unknown: bool,
    /// A `Transfer-Encoding` header at all, and whether it came more than once (nginx takes
    /// one: "client sent duplicate header line").
    pub coding: bool,
    pub coding_twice: bool,
    /// A `Content-Length` header at all: beside `Transfer-Encoding` it is the classic request
    /// smuggling pair (one hop reads the length, the next the chunks); nginx refuses it.
    pub length: bool,
}

impl<'a> Asked<'a> {
    pub fn of(req: &'a RequestHeader) -> Asked<'a> {
        let mut a = Asked::default();
        let mut lengths = 0;
        // Each name's values come together, first to last: the first one seen is what a
        // lookup of the name returns.
        for (n, v) in req.headers.iter() {
            if n == http::header::HOST {
                a.host = true;
                a.host_invalid |= !valid_host(v.as_bytes());
            } else if n == http::header::ACCEPT {
                a.accept.get_or_insert(v.as_bytes());
            } else if *n == names::X_REQUEST_ID {
                a.request_id.get_or_insert(v.as_bytes());
            } else if n == http::header::CONTENT_LENGTH {
                a.length_list |= lengths > 0 || !is_one_number(v.as_bytes());
                lengths += 1;
                a.length = true;
            } else if n == http::header::TRANSFER_ENCODING {
                a.coding_twice |= a.coding;
                a.coding = true;
                a.coding_unknown |= !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked");
            } else if n == http::header::EXPECT {
                a.expect_continue |= v.as_bytes().eq_ignore_ascii_case(b"100-continue");
            } else {
                a.reserved |= is_reserved(n.as_str().as_bytes());
            }
        }
        a
    }
}

/// A host as nginx accepts one: not empty, no `..`, no `/` or backslash, no blank or control
/// byte (a Host that would become part of a redirect or a log as something else).
fn valid_host(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    !v.is_empty()
        && !v.windows(2).any(|w| w == b"..")
        && !v
            .iter()
            .any(|&b| b <= b' ' || b == 0x7f || b == b'/' || b == b'\\')
}

/// Digits only, as nginx reads a `Content-Length` (the field's own blanks aside), and no more
/// than nginx's signed 64-bit `off_t` holds (beyond it nginx refuses the request; a CRM
/// reading it into a signed 64-bit number would read another length).
pub fn is_one_number(v: &[u8]) -> bool {
    let v = v.trim_ascii();
    !v.is_empty()
        && v.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(v).is_ok_and(|d| d.parse::<i64>().is_ok())
}

/// Which of the headers the gateway acts on an upstream request carries, found in one look at
/// its names (a few, compared without hashing): each step of [`crate::proxy`]'s upstream
/// request then looks a header up only when it is there, where it took a hash lookup or a scan
/// per step (nearly every request has none of them but `Host` and perhaps `Cookie`). Made after
/// the last header is added and before the first is removed: a flag may be left set by a
/// removal (each step looks again), never unset while the header is there.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Present {
    pub connection: bool,
    /// A hop-by-hop header (`Connection` included, `Upgrade` unless `upgrade`).
    pub hop: bool,
    pub host: bool,
    pub cookie: bool,
    pub authorization: bool,
    /// `wgw-contact`, the gateway's own contact header.
    pub contact: bool,
    pub forwarded_for: bool,
    /// A claim about the request the gateway's own headers make ([`is_override`]).
    pub overrides: bool,
    /// A header the gateway writes itself ([`strip_set`]'s names).
    pub set: bool,
}

impl Present {
    /// `upgrade`: the request is a WebSocket handshake; `xff`: the gateway writes its own
    /// `X-Forwarded-For`.
    pub fn of(req: &RequestHeader, upgrade: bool, xff: bool) -> Present {
        let mut p = Present::default();
        for n in req.headers.keys() {
            p.connection |= n == http::header::CONNECTION;
            p.hop |= HOP_BY_HOP.contains(n) || (!upgrade && n == http::header::UPGRADE);
            p.host |= n == http::header::HOST;
            p.cookie |= n == http::header::COOKIE;
            p.authorization |= n == http::header::AUTHORIZATION;
            p.contact |= n == names::WGW_CONTACT;
            p.forwarded_for |= n == names::X_FORWARDED_FOR;
            p.overrides |= is_override(n.as_str().as_bytes());
            p.set |= is_set(n, xff);
        }
        p
    }
}

/// Removes hop-by-hop headers, including those the client listed in `Connection`. A WebSocket
/// handshake keeps `Upgrade` and gets `Connection: upgrade` back.
pub fn strip_hop_by_hop(req: &mut RequestHeader, upgrade: bool, present: &Present) {
    if present.connection {
        strip_connection_listed(req);
    }
    if present.hop {
        let hop =
            |n: &HeaderName| HOP_BY_HOP.contains(n) || (!upgrade && n == http::header::UPGRADE);
        while let Some(name) = req.headers.keys().find(|n| hop(n)).cloned() {
            req.remove_header(&name);
        }
    }
    if upgrade {
        let _ = req.insert_header(http::header::CONNECTION, "upgrade");
    }
}

/// Is `n` a header the gateway writes itself: a reserved name whoever added it,
/// `X-Forwarded-Proto`, `-Host`, `X-Request-Id`, and `X-Forwarded-For` when the gateway writes
/// its own (`xff`)? Spelled with `_` too: a CRM whose framework folds `_` into `-` (CGI, PHP's
/// built-in server, wsgiref) would otherwise read the client's `X_Forwarded_Host` as the
/// gateway's, and may keep the first of the two.
///
/// Also a framing header spelled otherwise (`Transfer_Encoding`, `Content.Length`): the engine
/// frames the body by the real one, a folding CRM would read this one beside it.
fn is_set(n: &HeaderName, xff: bool) -> bool {
    let n = n.as_str().as_bytes();
    // Most names are ruled out by their first byte.
    match n.first() {
        Some(b'x') => {
            is_reserved(n)
                || folds_to(n, names::X_FORWARDED_PROTO.as_str())
                || folds_to(n, names::X_FORWARDED_HOST.as_str())
                || folds_to(n, names::X_REQUEST_ID.as_str())
                || (xff && folds_to(n, names::X_FORWARDED_FOR.as_str()))
        }
        Some(b'c') => n != b"content-length" && folds_to(n, "content-length"),
        Some(b't') => n != b"transfer-encoding" && folds_to(n, "transfer-encoding"),
        // The contact ticket spelled otherwise (`WGW_Contact`) is not the gateway's header: a
        // folding CRM would read a ticket the gateway never opened.
        Some(b'w') => n != b"wgw-contact" && folds_to(n, "wgw-contact"),
        _ => false,
    }
}

/// The client's word on what the gateway's own headers say of the request, however spelled
/// ([`fold`]), which frameworks read before or beside them:
///
/// - `X-Original-URL`, `X-Rewrite-URL`: a path that IIS rewrites, Symfony before 4.1 and
///   Zend/Laminas route on instead of the request's own, past the login of its area;
/// - `X-Original-URI`, `X-Forwarded-Uri`, `-Path`: the original request as a front proxy
///   describes it (nginx's `auth_request`, Traefik), read by some CRMs as theirs;
/// - RFC 7239's `Forwarded` (Spring's `ForwardedHeaderFilter` and Rack take its `host=` and
///   `proto=` before `X-Forwarded-Host`), `X-Forwarded-Port`, `-Prefix`, `-Server`, `-Scheme`,
///   `-Ssl`, `-Protocol` (Django's usual `SECURE_PROXY_SSL_HEADER`), `X-Original-Host`,
///   `X-Host`, `Front-End-Https`, `X-Url-Scheme`, `X-Proxied-Https`, `X-ARR-SSL`,
///   `CloudFront-Forwarded-Proto`, and Jetty's `Proxy-auth-cert` and `Proxy-ssl-id` (a client
///   certificate a TLS front checked): the host, port, path prefix and scheme links and
///   password-reset mails are built with, which `X-Forwarded-Host` and `-Proto` hold;
/// - the client's address as proxies and CDNs name it: `X-Real-IP` (which the gateway sets,
///   as nearly every nginx file does), `X-Client-IP`, `Client-IP`, `X-Cluster-Client-IP`,
///   `True-Client-IP`, `CF-Connecting-IP`, `Fastly-Client-IP`, `Proxy-Client-IP` and
///   `WL-Proxy-Client-IP` (read first by the `IpUtils.getIpAddr` of RuoYi, JeecgBoot and most
///   Chinese Java CRMs), `X-Originating-IP`, `X-Remote-IP`, `X-Remote-Addr`, `X-Forwarded`,
///   `Forwarded-For`: what CRMs read for allow-lists, login rate limits and audit logs
///   (ThinkPHP's `request()->ip()` takes `X-Real-IP` first).
fn is_override(n: &[u8]) -> bool {
    const X: [&str; 21] = [
        "x-real-ip",
        "x-originating-ip",
        "x-remote-ip",
        "x-remote-addr",
        "x-forwarded",
        "x-client-ip",
        "x-cluster-client-ip",
        "x-original-uri",
        "x-forwarded-uri",
        "x-forwarded-path",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-forwarded-scheme",
        "x-forwarded-ssl",
        "x-forwarded-protocol",
        "x-original-host",
        "x-host",
        "x-url-scheme",
        "x-proxied-https",
        "x-arr-ssl",
    ];
    match n.first() {
        Some(b'x') => {
            folds_to(n, names::X_ORIGINAL_URL.as_str())
                || folds_to(n, names::X_REWRITE_URL.as_str())
                || X.iter().any(|f| folds_to(n, f))
        }
        Some(b'f') => {
            folds_to(n, "forwarded")
                || folds_to(n, "forwarded-for")
                || folds_to(n, "front-end-https")
                || folds_to(n, "fastly-client-ip")
        }
        Some(b'c') => {
            folds_to(n, "cloudfront-forwarded-proto")
                || folds_to(n, "client-ip")
                || folds_to(n, "cf-connecting-ip")
        }
        Some(b't') => folds_to(n, "true-client-ip"),
        Some(b'p') => {
            folds_to(n, "proxy-auth-cert")
                || folds_to(n, "proxy-ssl-id")
                || folds_to(n, "proxy-client-ip")
        }
        Some(b'w') => folds_to(n, "wl-proxy-client-ip"),
        _ => false,
    }
}

/// Removes the client's [`is_override`] headers, but for a name `kept` (one the nginx file
/// sets: the operator's).
pub fn strip_overrides(req: &mut RequestHeader, kept: impl Fn(&str) -> bool) {
    while let Some(name) = req
        .headers
        .keys()
        .find(|n| is_override(n.as_str().as_bytes()) && !kept(n.as_str()))
        .cloned()
    {
        req.remove_header(&name);
    }
}

/// `name` (lower case, as a header map keeps it) is `want` once [`fold`]ed.
fn folds_to(name: &[u8], want: &str) -> bool {
    name.len() == want.len() && name.iter().zip(want.bytes()).all(|(&c, w)| fold(c) == w)
}

/// Takes out of the upstream request's map every header the gateway sets itself (they are
/// written after the map: `RequestHeader::append_wire_header`), as [`Present::of`] found them
/// with the same `xff`.
pub fn strip_set(req: &mut RequestHeader, xff: bool, present: &Present) {
    if !present.set {
        return;
    }
    while let Some(name) = req.headers.keys().find(|n| is_set(n, xff)).cloned() {
        req.remove_header(&name);
    }
}

/// An upstream's answer header meant for the proxy, never passed on (nginx's
/// `ngx_http_proxy_hide_headers`): `X-Accel-*` and `X-Pad`.
pub fn is_for_the_proxy(n: &HeaderName) -> bool {
    let n = n.as_str();
    n.starts_with("x-accel-") || n == "x-pad"
}

pub fn strip_for_the_proxy(resp: &mut ResponseHeader) {
    while let Some(name) = resp.headers.keys().find(|n| is_for_the_proxy(n)).cloned() {
        resp.remove_header(&name);
    }
}

/// Removes `name` if the request has it: a lookup where pingora's removal costs two.
pub fn remove_present(req: &mut RequestHeader, name: &HeaderName) {
    if req.headers.contains_key(name) {
        req.remove_header(name);
    }
}

/// The headers a client named in `Connection` are hop-by-hop too.
/// Whether a `Connection` field lists `upgrade`.
pub fn connection_lists_upgrade(req: &RequestHeader) -> bool {
    req.headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
}

fn strip_connection_listed(req: &mut RequestHeader) {
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
    let ours = |v: &HeaderValue| sets_gateway_cookie(v.as_bytes(), session_cookie);
    if !set.iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = set.iter().filter(|v| !ours(v)).cloned().collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for v in kept {
        let _ = resp.append_header(http::header::SET_COOKIE, v);
    }
}

/// Whether a `Set-Cookie` value sets one of the gateway's cookies.
pub fn sets_gateway_cookie(value: &[u8], session_cookie: Option<&str>) -> bool {
    let pair = value.split(|&b| b == b';').next().unwrap_or_default();
    let (name, value) = match pair.iter().position(|&b| b == b'=') {
        Some(i) => (&pair[..i], &pair[i + 1..]),
        None => (pair, &[][..]),
    };
    // A cookie without a name (`=wgw_session=x`) is stored by browsers as its value alone
    // and sent back as `wgw_session=x`: the gateway's cookie, set by the CRM.
    let name = if name.trim_ascii().is_empty() {
        value.split(|&b| b == b'=').next().unwrap_or_default()
    } else {
        name
    };
    crate::cookies::is_ours(name, session_cookie)
}

/// `X-Forwarded-For` with the client's address appended to what earlier proxies said, written
/// straight into the value's bytes.
pub fn forwarded_for(prev: Option<&HeaderValue>, ip: std::net::IpAddr) -> HeaderValue {
    // A value that is not text, or only blanks, is not a list worth keeping.
    let prev = prev
        .filter(|v| v.to_str().is_ok_and(|t| !t.trim().is_empty()))
        .map(HeaderValue::as_bytes);
    // The address first, on the stack, so that the value's buffer is allocated at its exact
    // length: `Bytes` then adopts it as it is, where a buffer with spare room costs a second
    // allocation for its shared header.
    let mut buf = [0u8; 46];
    let text = ip_text(ip, &mut buf);
    let mut out = Vec::with_capacity(prev.map_or(0, |p| p.len() + 2) + text.len());
    if let Some(p) = prev {
        out.extend_from_slice(p);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(text);
    // Earlier proxies' value came from a valid header value, and an address is plain ASCII.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).unwrap_or_else(|_| {
        HeaderValue::from_str(&ip.to_string()).expect("an address is a header value")
    })
}

/// `ip` as text, written into `buf` (the longest address, with an IPv4 tail, is 45 bytes).
pub fn ip_text(ip: std::net::IpAddr, buf: &mut [u8; 46]) -> &[u8] {
    let len = match ip {
        std::net::IpAddr::V4(ip) => {
            let mut n = 0;
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                n += push_decimal(&mut buf[n..], octet);
            }
            n
        }
        std::net::IpAddr::V6(ip) => {
            use std::io::Write;
            // At most 45 characters (a full address with an IPv4 tail).
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{ip}");
            cursor.position() as usize
        }
    };
    &buf[..len]
}

/// Writes `n` in decimal at the start of `out`; returns how many bytes.
fn push_decimal(out: &mut [u8], n: u8) -> usize {
    let mut len = 0;
    if n >= 100 {
        out[len] = b'0' + n / 100;
        len += 1;
    }
    if n >= 10 {
        out[len] = b'0' + n / 10 % 10;
        len += 1;
    }
    out[len] = b'0' + n % 10;
    len + 1
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
            // PHP makes `.` in a variable's name `_`; wsgiref keeps it: folded all the same.
            ("X.WeCom.UserId", true),
            ("x-wecom.userid", true),
            ("x~wechat~openid", true),
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
    fn forwarded_for_appends_the_client() {
        let v4: std::net::IpAddr = "10.0.120.7".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        let cases: &[(Option<HeaderValue>, std::net::IpAddr, &str)] = &[
            (None, v4, "10.0.120.7"),
            (None, "0.0.0.0".parse().unwrap(), "0.0.0.0"),
            (None, "255.9.100.10".parse().unwrap(), "255.9.100.10"),
            (Some(h("203.0.113.9")), v4, "203.0.113.9, 10.0.120.7"),
            (Some(h("a, b")), v6, "a, b, 2001:db8::1"),
            (
                None,
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            (
                None,
                "::ffff:255.255.255.255".parse().unwrap(),
                "::ffff:255.255.255.255",
            ),
            (Some(h("  ")), v4, "10.0.120.7"),
            (
                Some(HeaderValue::from_bytes(b"\xff").unwrap()),
                v4,
                "10.0.120.7",
            ),
        ];
        for (prev, ip, want) in cases {
            assert_eq!(forwarded_for(prev.as_ref(), *ip), *want, "{prev:?}");
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

    fn hop_by_hop(r: &mut RequestHeader, upgrade: bool) {
        let present = Present::of(r, upgrade, false);
        strip_hop_by_hop(r, upgrade, &present);
    }

    #[test]
    fn one_look_at_an_arriving_request_reads_what_lookups_would() {
        let r = req_with(&[
            ("accept", "text/html"),
            ("X-Request-Id", "first"),
            ("Host", "a"),
            ("Accept", "*/*"),
            ("x-request-id", "second"),
        ]);
        let a = Asked::of(&r);
        assert_eq!(
            a.request_id,
            r.headers.get("x-request-id").map(|v| v.as_bytes())
        );
        assert_eq!(a.request_id, Some(&b"first"[..]));
        assert_eq!(a.accept, Some(&b"text/html"[..]));
        assert!(a.host && !a.reserved);
        for reserved in ["X-WeCom-UserId", "x_wechat_openid", "X-Gateway-Assertion"] {
            let r = req_with(&[("Accept", "*/*"), (reserved, "v")]);
            let a = Asked::of(&r);
            assert!(a.reserved && !a.host, "{reserved}");
        }
        assert_eq!(Asked::of(&req_with(&[("X-Other", "1")])), Asked::default());
        for bad in [" ", "a/b", "a b", "a..b", "a\\b", "evil.example/x?"] {
            assert!(
                Asked::of(&req_with(&[("Host", bad)])).host_invalid,
                "{bad:?}"
            );
        }
        for good in [
            "a",
            "crm.example.com:8443",
            "[::1]:80",
            "127.0.0.1",
            "a_b-c",
        ] {
            assert!(
                !Asked::of(&req_with(&[("Host", good)])).host_invalid,
                "{good}"
            );
        }
        for (lengths, list) in [
            (&[" 12 "][..], false),
            (&["4, 4"][..], true),
            (&["4,4"][..], true),
            (&["4", "4"][..], true),
            (&["4x"][..], true),
        ] {
            let pairs: Vec<_> = lengths.iter().map(|v| ("Content-Length", *v)).collect();
            assert_eq!(
                Asked::of(&req_with(&pairs)).length_list,
                list,
                "{lengths:?}"
            );
        }
    }

    #[test]
    fn one_look_finds_each_header_the_upstream_steps_act_on_in_any_case() {
        let none = req_with(&[("Accept", "*/*"), ("X-Other", "1")]);
        assert_eq!(Present::of(&none, false, true), Present::default());
        let cases: [(&str, fn(&Present) -> bool); 10] = [
            ("CONNECTION", |p| p.connection && p.hop),
            ("WGW_Contact", |p| p.set),
            ("wgw.contact", |p| p.set),
            ("keep-alive", |p| p.hop),
            ("Proxy-Authorization", |p| p.hop),
            ("Host", |p| p.host),
            ("cookie", |p| p.cookie),
            ("Authorization", |p| p.authorization),
            ("WGW-Contact", |p| p.contact),
            ("x_wecom_userid", |p| p.set),
        ];
        for (name, found) in cases {
            let p = Present::of(&req_with(&[("Accept", "*/*"), (name, "v")]), false, true);
            assert!(found(&p), "{name}: {p:?}");
            assert_eq!(
                [
                    p.connection,
                    p.hop,
                    p.host,
                    p.cookie,
                    p.authorization,
                    p.contact,
                    p.set
                ]
                .iter()
                .filter(|f| **f)
                .count(),
                if name == "CONNECTION" { 2 } else { 1 },
                "{name} sets no other flag: {p:?}"
            );
        }
        for set in [
            "X-Forwarded-Proto",
            "x-forwarded-host",
            "X-Request-Id",
            "X-Gateway-Anything",
        ] {
            assert!(
                Present::of(&req_with(&[(set, "v")]), false, false).set,
                "{set}"
            );
        }
        // A client's X-Forwarded-For is the gateway's to replace only when it writes its own.
        let xff = req_with(&[("X-Forwarded-For", "10.0.0.1")]);
        let p = Present::of(&xff, false, true);
        assert!(p.forwarded_for && p.set);
        let p = Present::of(&xff, false, false);
        assert!(p.forwarded_for && !p.set);
        // Upgrade is hop-by-hop except on a WebSocket handshake.
        let up = req_with(&[("Upgrade", "websocket")]);
        assert!(Present::of(&up, false, true).hop);
        assert!(!Present::of(&up, true, true).hop);
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
        hop_by_hop(&mut r, false);
        for gone in ["connection", "x-secret-hop", "keep-alive", "te", "upgrade"] {
            assert!(r.headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(r.headers.get("x-other").unwrap(), "kept");

        let mut r = req_with(&[("Connection", "Upgrade"), ("Upgrade", "websocket")]);
        hop_by_hop(&mut r, true);
        assert_eq!(r.headers.get("upgrade").unwrap(), "websocket");
        assert_eq!(r.headers.get("connection").unwrap(), "upgrade");

        // Every hop-by-hop name, in any case, each of them twice, among the headers that stay.
        let hops = [
            "Keep-Alive",
            "PROXY-CONNECTION",
            "te",
            "Trailer",
            "Proxy-Authenticate",
            "Proxy-Authorization",
            "Upgrade",
        ];
        let mut all = vec![("Accept", "*/*")];
        for h in hops {
            all.extend([(h, "1"), ("X-Between", "kept"), (h, "2")]);
        }
        let mut r = req_with(&all);
        hop_by_hop(&mut r, false);
        for gone in hops {
            assert!(r.headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(r.headers.get_all("x-between").iter().count(), hops.len());
        assert_eq!(r.headers.get("accept").unwrap(), "*/*");
        let mut r = req_with(&[("X-Wgw-Test", "1")]);
        remove_present(&mut r, &HeaderName::from_static("wgw-contact"));
        assert_eq!(r.headers.len(), 1);
        let mut r = req_with(&[("WGW-Contact", "ticket")]);
        remove_present(&mut r, &HeaderName::from_static("wgw-contact"));
        assert!(r.headers.is_empty());
    }
}
