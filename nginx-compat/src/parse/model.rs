//! The typed configuration: servers, their locations, rewrite-module statements and the
//! per-location settings nginx merges from the enclosing level. Built by [`super::build`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Directive, IncludeResolver, ParseError, Pos};
use crate::location::{Location, LocationSet};
use crate::mime::MimeTypes;
use crate::regex::NgxRegex;
use crate::vars::Template;

/// A directive (or a part of one) this crate does not implement; printed as
/// `FILE:LINE: directive 'x' is not supported` so nothing is ever silently dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub directive: String,
    pub pos: Pos,
    /// What exactly is not supported, when it is not the whole directive.
    pub detail: Option<String>,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: directive '{}' is not supported",
            self.pos, self.directive
        )?;
        match (&self.detail, remedy(&self.directive)) {
            (Some(d), _) => write!(f, " ({d})")?,
            (None, Some(r)) => write!(f, " ({r})")?,
            (None, None) => {}
        }
        Ok(())
    }
}

/// What to do instead, for the directive families a CRM's nginx file most often has that the
/// gateway does not do itself.
fn remedy(directive: &str) -> Option<&'static str> {
    let d = directive;
    if d.starts_with("ssl_") || d == "ssl" || d == "http2" || d.starts_with("http2_") {
        Some("TLS ends in front of the gateway, at the load balancer or an nginx kept there: remove this line and set [server] public_url = \"https://...\"")
    } else if d.starts_with("fastcgi_") {
        Some("the gateway speaks HTTP to its upstreams: keep PHP-FPM behind an HTTP server (nginx, Apache, Swoole) and proxy_pass to that")
    } else if d.starts_with("uwsgi_") {
        Some("the gateway speaks HTTP to its upstreams: have uWSGI speak HTTP too (`http-socket = 127.0.0.1:8001` in its ini) and proxy_pass http://127.0.0.1:8001")
    } else if ["scgi_", "grpc_"].iter().any(|p| d.starts_with(p)) {
        Some("the gateway speaks HTTP/1.x to its upstreams: keep the app server behind an HTTP server and proxy_pass to that")
    } else if d.starts_with("limit_req")
        || d.starts_with("limit_conn")
        || d.starts_with("limit_rate")
    {
        Some("the gateway does not limit request rates, connections or bandwidth: keep the limit in the proxy or load balancer in front")
    } else if d.starts_with("auth_basic") {
        Some("protect the location with a login route instead, or keep the password in the proxy in front")
    } else if d.starts_with("sub_filter") {
        Some("the gateway does not rewrite answer bodies: change the page in the CRM")
    } else if d.starts_with("proxy_cache") {
        Some("the gateway keeps no cache of answers: keep the cache in a proxy or CDN in front, or remove the line and every request goes to the upstream")
    } else if d == "stub_status" {
        Some("the gateway's own counters are served at [server] admin_listen's /metrics")
    } else if d.starts_with("auth_request") {
        Some("the gateway is the login: give the location's route `login = \"APP\"` (or keep the check in the proxy in front)")
    } else if d.starts_with("proxy_ssl") {
        Some("the gateway speaks plain HTTP to its upstreams: proxy_pass to an http:// address (a TLS-speaking upstream behind a local proxy)")
    } else if d == "more_set_headers" {
        Some("use add_header NAME VALUE always (a `Server` needs none: the gateway's answers name no server software, and the upstream's is never passed on)")
    } else if d == "stream" {
        Some("TCP and UDP proxying (a database, Redis or MQTT port) stays in nginx: the gateway proxies HTTP; keep the block in a file nginx loads, not one the gateway includes")
    } else if d.contains("_by_lua") || d.starts_with("lua_") {
        Some("OpenResty's Lua runs in OpenResty: keep the location there, in front of the gateway, or do its work in the CRM")
    } else if d == "geo" {
        Some("a geo block belongs to the http level: beside the server block, or in the main nginx.conf")
    } else if d.starts_with("brotli") {
        Some("the gateway compresses with gzip only: remove the line (gzip on still serves every client that takes gzip)")
    } else if d == "mirror" || d.starts_with("mirror_") {
        Some("the gateway does not copy requests to a second upstream: keep the mirror in the proxy in front")
    } else if d.starts_with("secure_link") {
        Some("sign the link in the CRM and check it there, or give the location a login route")
    } else if d == "empty_gif" {
        Some("serve a 1x1 GIF file with root/alias instead")
    } else if d == "ssi" || d.starts_with("ssi_") {
        Some("the gateway does not rewrite answer bodies: assemble the page in the CRM")
    } else if d == "split_clients" {
        Some("the gateway does not split clients by percentage: keep the split in the proxy in front, or a map on a cookie the CRM sets")
    } else if d == "more_clear_headers" {
        Some("use proxy_hide_header NAME for an upstream's header (`Server`, `X-Powered-By`...); the upstream's Server is never passed on")
    } else if d == "proxy_pass_header" {
        Some("the gateway passes on every upstream header but `Server`, `X-Accel-*` and `X-Pad`, and never those: remove this line")
    } else {
        None
    }
}

#[cfg(test)]
#[test]
fn the_directives_a_crm_file_often_has_say_what_to_do_instead() {
    for d in [
        "split_clients",
        "more_clear_headers",
        "proxy_pass_header",
        "stream",
        "access_by_lua_block",
        "limit_req",
        "ssl_certificate",
    ] {
        let u = Unsupported {
            directive: d.to_owned(),
            pos: Pos {
                file: Arc::from("a.conf"),
                line: 3,
                col: 1,
            },
            detail: None,
        };
        let text = u.to_string();
        assert!(
            text.starts_with(&format!("a.conf:3: directive '{d}' is not supported (")),
            "{text}"
        );
    }
}

#[derive(Debug)]
pub struct Config {
    pub servers: Vec<Server>,
    /// `map` blocks of the `http` level, shared by every server.
    pub maps: Arc<[Map]>,
    pub unsupported: Vec<Unsupported>,
    /// Directives that load and change nothing the gateway does (how nginx writes to a
    /// socket or sizes its buffers, what its `Server` header names), each with why, for
    /// `check` to list.
    pub noted: Vec<Unsupported>,
    /// Every file an `access_log` names, as written, once each, with where it is first named.
    pub access_log_paths: Vec<(Arc<str>, Pos)>,
}

/// `map $source $name { ... }`.
#[derive(Debug, Clone)]
pub struct Map {
    pub source: Template,
    pub name: String,
    /// Exact keys, compared case-insensitively as nginx's hash does (keys lower-cased).
    pub exact: std::collections::HashMap<Vec<u8>, Template>,
    /// `~re` / `~*re` keys in the order written.
    pub regex: Vec<(NgxRegex, Template)>,
    /// `hostnames`: the value is a host name (a final dot dropped), and keys after the line may
    /// be wildcards. `*.example.com` and `.example.com` are kept as their suffix
    /// (`.example.com`, the latter also as the exact key `example.com`); `www.example.*` as
    /// its prefix (`www.example.`). Lower-cased; the longest that matches wins, after the exact
    /// keys and before the regexes, as `ngx_hash_find_combined` finds them.
    pub hostnames: bool,
    pub wild_head: Vec<(Vec<u8>, Template)>,
    pub wild_tail: Vec<(Vec<u8>, Template)>,
    pub default: Template,
    /// `volatile`: worked out at each use, not once per request.
    pub volatile: bool,
    /// A `geo` block rather than a `map`: its networks decide, `source` giving the address.
    pub geo: Option<Arc<Geo>>,
}

/// `geo [$address] $name { ... }` (`ngx_http_geo_module`, networks, not `ranges`): the value
/// of the most specific network that holds the address (the client's, or the source
/// variable's read as one; one that is none is read as `255.255.255.255`, as nginx reads it).
#[derive(Debug, Clone, Default)]
pub struct Geo {
    /// IPv4 networks by their mask, the longest first: network → value.
    pub v4: Vec<(u32, std::collections::HashMap<u32, Vec<u8>>)>,
    /// IPv6 networks likewise (an IPv4-mapped address is looked up as IPv4).
    pub v6: Vec<(u128, std::collections::HashMap<u128, Vec<u8>>)>,
    /// `proxy`: an address among these is replaced by the one `X-Forwarded-For` names.
    pub proxies: Vec<Net>,
    pub proxy_recursive: bool,
}

impl Geo {
    /// The value for a request: `source` read as an address (`ngx_http_geo_addr`; one that is
    /// none is `255.255.255.255`), replaced, when it is one of the `proxy` networks, by the
    /// one `X-Forwarded-For` (`xff`, its fields joined) names from the right
    /// (`ngx_http_get_forwarded_addr`; past further proxies with `proxy_recursive`).
    pub fn value(&self, source: &[u8], xff: Option<&[u8]>) -> &[u8] {
        let source = std::str::from_utf8(source).ok();
        let Some(mut addr) = source.and_then(parse_addr) else {
            return self.lookup(std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST));
        };
        if let (Some(x), false) = (xff, self.proxies.is_empty()) {
            let in_proxies = |a: std::net::IpAddr| self.proxies.iter().any(|n| n.contains(a));
            let mut len = x.len();
            while in_proxies(addr) && len > 0 {
                // The last field: trailing blanks and commas skipped, back to the one before.
                let mut p = len - 1;
                while p > 0 && matches!(x[p], b' ' | b',') {
                    p -= 1;
                    len -= 1;
                }
                while p > 0 {
                    if matches!(x[p], b' ' | b',') {
                        p += 1;
                        break;
                    }
                    p -= 1;
                }
                let field = std::str::from_utf8(&x[p..len]).ok();
                let Some(found) = field.and_then(addr_port) else {
                    break;
                };
                addr = found;
                if !self.proxy_recursive || p == 0 {
                    break;
                }
                len = p - 1;
            }
        }
        self.lookup(addr)
    }

    /// The value of the most specific network holding `ip` (an empty value when none: no
    /// `default`).
    pub fn lookup(&self, ip: std::net::IpAddr) -> &[u8] {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::IpAddr::V6(v6),
            },
            other => other,
        };
        let found = match ip {
            std::net::IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find_map(|(mask, nets)| nets.get(&(a & mask)))
            }
            std::net::IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find_map(|(mask, nets)| nets.get(&(a & mask)))
            }
        };
        found.map_or(&[][..], Vec::as_slice)
    }
}

/// `ngx_inet_addr`: four dotted decimals, each at most 255, read as nginx reads them (a
/// leading zero is a decimal digit, an empty part a 0); `255.255.255.255` is its "none".
fn inet_addr(v: &str) -> Option<std::net::Ipv4Addr> {
    let (mut addr, mut octet, mut dots) = (0u32, 0u32, 0);
    for c in v.bytes() {
        match c {
            b'0'..=b'9' => {
                octet = octet * 10 + u32::from(c - b'0');
                if octet > 255 {
                    return None;
                }
            }
            b'.' => {
                addr = (addr << 8).wrapping_add(octet);
                octet = 0;
                dots += 1;
            }
            _ => return None,
        }
    }
    let addr = (addr << 8).wrapping_add(octet);
    (dots == 3 && addr != u32::MAX).then(|| std::net::Ipv4Addr::from(addr))
}

/// `ngx_parse_addr`: an IPv4 address as [`inet_addr`] reads it, else an IPv6 one; no port.
fn parse_addr(v: &str) -> Option<std::net::IpAddr> {
    inet_addr(v).map(std::net::IpAddr::V4).or_else(|| {
        v.parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6)
    })
}

/// `ngx_parse_addr_port`: an address, or one with a port (`1.2.3.4:80`, `[::1]:80`, `[::1]`).
fn addr_port(v: &str) -> Option<std::net::IpAddr> {
    if let Some(a) = parse_addr(v) {
        return Some(a);
    }
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
    };
    match v.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']')?;
            let rest = &inner[close + 1..];
            if rest.is_empty() {
                return parse_addr(&inner[..close]);
            }
            port_ok(rest.strip_prefix(':')?).then(|| parse_addr(&inner[..close]))?
        }
        None => {
            let colon = v.find(':')?;
            port_ok(&v[colon + 1..]).then(|| parse_addr(&v[..colon]))?
        }
    }
}

/// `error_page CODE ... [=[RESPONSE]] URI`, one entry per code as nginx stores them.
#[derive(Debug, Clone)]
pub struct ErrorPage {
    pub status: u16,
    pub overwrite: Overwrite,
    /// A URI (`/x`), a named location (`@x`) or a redirect URL.
    pub value: Template,
    /// The arguments of a literal URI, split off at configuration time.
    pub args: Option<Vec<u8>>,
}

/// `if_modified_since off | exact | before`: a file is not modified (304) for an
/// `If-Modified-Since` naming its time exactly (`exact`, nginx's default), or naming it or a
/// later time (`before`); `off` never compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifiedSince {
    Off,
    Exact,
    Before,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// No `=`: the answer keeps the error's status.
    Keep,
    /// `=`: the status of whatever answers the new URI.
    Response,
    /// `=CODE`.
    Code(u16),
}

/// `add_header NAME VALUE [always]`.
#[derive(Debug, Clone)]
pub struct AddHeader {
    pub name: String,
    pub value: Template,
    pub always: bool,
}

/// `expires [modified] $var`.
#[derive(Debug, Clone)]
pub struct ExpiresValue {
    pub modified: bool,
    pub value: Template,
}

/// `expires`: how `Expires` and `Cache-Control` are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    Off,
    Epoch,
    Max,
    /// Seconds from the time of the answer (negative: in the past).
    Access(i64),
    /// `expires modified TIME`: from the answer's `Last-Modified`.
    Modified(i64),
    /// `expires @HHhMMm`: the next such time of day.
    Daily(i64),
}

/// One `allow`/`deny` rule of `ngx_http_access_module`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRule {
    pub deny: bool,
    pub net: Net,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// `all`: matches every client, IPv4 and IPv6.
    All,
    V4 {
        addr: u32,
        mask: u32,
    },
    V6 {
        addr: u128,
        mask: u128,
    },
}

impl Net {
    /// Whether `ip` is in this network; an IPv4-mapped IPv6 address is read as the IPv4 one,
    /// as nginx reads it.
    pub fn contains(self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => std::net::IpAddr::V6(v6),
            },
            other => other,
        };
        match (self, ip) {
            (Net::All, _) => true,
            (Net::V4 { addr, mask }, std::net::IpAddr::V4(a)) => u32::from(a) & mask == addr,
            (Net::V6 { addr, mask }, std::net::IpAddr::V6(a)) => u128::from(a) & mask == addr,
            _ => false,
        }
    }
}

/// `valid_referers none | blocked | server_names | HOST[/URI] | ~REGEX ...`
/// (`ngx_http_referer_module`).
#[derive(Debug, Default)]
pub struct ValidReferers {
    /// `none`: no `Referer` is valid.
    pub none: bool,
    /// `blocked`: a `Referer` without `http://` or `https://` (a firewall's or proxy's) is
    /// valid.
    pub blocked: bool,
    /// `server_names`: the server's own names are valid hosts.
    pub server_names: bool,
    /// Hosts (lower case; `*.x` a subdomain of x, `.x` x or one, `x.*` any ending), each with
    /// the URI prefix its path must start with (empty: any).
    pub hosts: Vec<(String, Vec<u8>)>,
    /// `~REGEX`s, matched against the `Referer` after its `http://` or `https://`.
    pub regexes: Vec<crate::regex::NgxRegex>,
}

/// `proxy_redirect`.
#[derive(Debug, Clone)]
pub enum ProxyRedirect {
    /// Not set anywhere: nginx's implicit `proxy_redirect default` for a location with a
    /// static `proxy_pass`.
    Default,
    Off,
    Rules(Arc<[RedirectRule]>),
}

#[derive(Debug, Clone)]
pub enum RedirectPattern {
    /// `proxy_redirect default`: the `proxy_pass` URL (or URL + '/') as a prefix.
    Default,
    /// A prefix, compared case-sensitively.
    Prefix(Template),
    Regex(NgxRegex),
}

#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub pattern: RedirectPattern,
    pub replacement: Template,
}

/// One `proxy_cookie_flags` line.
#[derive(Debug, Clone)]
pub struct CookieFlagsRule {
    /// The cookie's name: compared without case (variables allowed), or a caseless `~regex`.
    pub cookie: CookieName,
    /// `secure`, `nosecure`, `httponly`, `nohttponly`, `samesite=strict|lax|none`,
    /// `nosamesite`, possibly from variables; others are ignored, as nginx ignores them.
    pub flags: Vec<Template>,
}

#[derive(Debug, Clone)]
pub enum CookieName {
    Name(Template),
    Regex(NgxRegex),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    V10,
    V11,
}

/// The proxy module's per-location settings.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// `proxy_set_header` as written at the level that set any (nginx's defaults are merged in
    /// when the request is built).
    pub set_headers: Arc<[(String, Template)]>,
    pub redirect: ProxyRedirect,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub send_timeout: Duration,
    pub http_version: HttpVersion,
    pub intercept_errors: bool,
    /// `proxy_hide_header`, lower-cased: the upstream's headers of these names are not passed
    /// to the client. A level with any replaces the inherited ones.
    pub hide_headers: Arc<[String]>,
    /// `proxy_cookie_path`: rewrites of a `Set-Cookie`'s `path` (a prefix compared with case,
    /// or a regex over the whole value); empty when none or `off`.
    pub cookie_paths: Arc<[RedirectRule]>,
    /// `proxy_cookie_domain`: rewrites of a `Set-Cookie`'s `domain` (a name compared without
    /// case and without a leading dot, or a regex).
    pub cookie_domains: Arc<[RedirectRule]>,
    /// `proxy_cookie_flags`: the first rule naming a `Set-Cookie`'s cookie decides the flags
    /// it gets or loses; empty when none or `off`.
    pub cookie_flags: Arc<[CookieFlagsRule]>,
    /// `proxy_ignore_headers X-Accel-Redirect`: the upstream's `X-Accel-Redirect` is not
    /// followed (it is still hidden from the client).
    pub ignore_accel_redirect: bool,
    /// `proxy_next_upstream`: after which failures a request goes on to the upstream's next
    /// server.
    pub next_upstream: NextUpstream,
    /// `proxy_next_upstream_tries`: how many servers a request may try (0: each of them).
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout`: no next server once this long has passed since the first
    /// attempt began (`None`: no limit, nginx's `0`).
    pub next_upstream_timeout: Option<Duration>,
}

/// `proxy_next_upstream`'s kinds the gateway acts on (nginx's default: `error timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextUpstream {
    /// The server could not be reached, or broke the connection before its answer.
    pub error: bool,
    /// Connecting, sending or the answer's header took longer than its timeout.
    pub timeout: bool,
    /// The answer's header could not be read.
    pub invalid_header: bool,
    /// A POST, PATCH or LOCK that reached a server may go to another.
    pub non_idempotent: bool,
}

impl Default for NextUpstream {
    fn default() -> Self {
        NextUpstream {
            error: true,
            timeout: true,
            invalid_header: false,
            non_idempotent: false,
        }
    }
}

/// `gzip_proxied`: which answers to requests that came through a proxy (`Via`) are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GzipProxied {
    pub any: bool,
    pub expired: bool,
    pub no_cache: bool,
    pub no_store: bool,
    pub private: bool,
    pub no_last_modified: bool,
    pub no_etag: bool,
    pub auth: bool,
}

impl GzipProxied {
    /// `gzip_proxied` is not `off`: a request through a proxy (`Via`) may get an answer
    /// compressed, and always a `.gz` that `gzip_static` serves (asked before there is an
    /// answer, every flag passes).
    pub fn is_on(&self) -> bool {
        self.any
            || self.expired
            || self.no_cache
            || self.no_store
            || self.private
            || self.no_last_modified
            || self.no_etag
            || self.auth
    }
}

/// The gzip module's settings; the gateway compresses with its engine's compression.
#[derive(Debug, Clone)]
pub struct Gzip {
    pub on: bool,
    /// Lower-cased MIME types; `text/html` is always included, `*` matches any type.
    pub types: Arc<[String]>,
    pub comp_level: u32,
    pub min_length: u64,
    pub proxied: GzipProxied,
    pub vary: bool,
    /// `gzip_disable`: User-Agent regexes (`msie6` is nginx's special one).
    pub disable: Arc<[GzipDisable]>,
    /// `gzip_http_version 1.0`: requests of HTTP/1.0 are answered compressed too (nginx's
    /// default is 1.1).
    pub http_10: bool,
    /// `gzip_static`: a file's `.gz` beside it is served instead, compressed ahead of time.
    pub static_files: GzipStatic,
}

/// `gzip_static off | on | always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GzipStatic {
    #[default]
    Off,
    /// To a client that takes gzip, as `gzip` would decide (`ngx_http_gzip_ok`).
    On,
    /// To every client.
    Always,
}

#[derive(Debug, Clone)]
pub enum GzipDisable {
    Msie6,
    Regex(NgxRegex),
}

/// Per-location settings that nginx merges from the enclosing level.
#[derive(Debug, Clone)]
pub struct Settings {
    pub root: Template,
    /// A `root` is written at this level or one enclosing it (else `root` is nginx's default,
    /// `html`).
    pub root_written: bool,
    /// `alias` replaces the matched part of the location that declared it; inherited by the
    /// locations nested in it that set neither `root` nor `alias` (`ngx_http_core_merge_loc_conf`
    /// takes the parent's `root` and `alias` together), which still map by the declaring
    /// location's name ([`Settings::alias_skip`]).
    pub alias: Option<Template>,
    /// How many bytes of the URI `alias` replaces: the declaring prefix location's name (nginx's
    /// `clcf->alias`); `None` when a regex location declared it, whose alias is the whole path.
    pub alias_skip: Option<usize>,
    pub index: Vec<Template>,
    pub absolute_redirect: bool,
    pub port_in_redirect: bool,
    pub server_name_in_redirect: bool,
    /// A level with any `error_page` replaces all inherited ones.
    pub error_pages: Arc<[ErrorPage]>,
    /// Bytes; 0 means no limit. nginx's default is 1m.
    pub client_max_body_size: u64,
    /// `internal`: only internal redirects may use the location.
    pub internal: bool,
    /// A level with any `allow`/`deny` replaces all inherited ones.
    pub access: Arc<[AccessRule]>,
    /// A level with any `add_header` replaces all inherited ones.
    pub add_headers: Arc<[AddHeader]>,
    pub expires: Expires,
    /// `expires $var` (or `expires modified $var`): `expires` read at each answer, from the
    /// value (nginx's usual `map $sent_http_content_type $expires`); a value that is no
    /// `expires` value, or `off`, sets nothing.
    pub expires_value: Option<Arc<ExpiresValue>>,
    pub proxy: ProxySettings,
    pub gzip: Gzip,
    /// `types`: None when no level wrote one (nginx's built-in `html`, `gif` and `jpg` then
    /// apply). A level with a `types` block replaces the inherited map, never extends it.
    pub types: Option<Arc<MimeTypes>>,
    /// `default_type`: None when no level wrote one (nginx's default is `text/plain`).
    pub default_type: Option<Arc<str>>,
    /// `access_log off;` turns a request's access lines off: the gateway's own (its output)
    /// and the files'.
    pub access_log: bool,
    /// `access_log PATH [FORMAT] [if=...]`: the files a request's line goes to, besides the
    /// gateway's own output. A level with any `access_log` replaces the inherited ones.
    pub access_files: Arc<[AccessLogFile]>,
    /// `log_not_found`: whether a missing file is an error line. The gateway writes none for a
    /// missing file either way (its access line has the 404), so both values read the same.
    pub log_not_found: bool,
    /// `charset`: the name an answer of a `charset_types` type is labelled with (`; charset=`),
    /// spelled as the configuration first wrote it (nginx keeps one name per charset, whatever
    /// the case of later mentions); None is `off`.
    pub charset: Option<Arc<str>>,
    /// `source_charset`: None is nginx's default (the answer is taken as it is). Set and other
    /// than `charset`, it would take a `charset_map`, which the gateway does not have: the load
    /// refuses it, as nginx refuses it without a map.
    pub source_charset: Option<Arc<str>>,
    /// `override_charset`: an answer that names its own charset is relabelled too.
    pub override_charset: bool,
    /// `charset_types`, lowercased; `*` is any type.
    pub charset_types: Arc<[String]>,
    /// `keepalive_timeout`: how long the client's connection stays open, idle, after a
    /// request this level answers (0: closed after it). None where no level writes one: the
    /// gateway's own `[server] keepalive_timeout` applies.
    pub keepalive_timeout: Option<Duration>,
    /// `client_body_timeout`: the longest the client may leave between two reads of a request
    /// body (a 408 then). None where no level writes one: the engine's 60 s, nginx's default.
    pub client_body_timeout: Option<Duration>,
    /// `send_timeout`: the longest a client may leave unread what it is sent, between two
    /// writes (the connection closes then). None where no level writes one: the gateway's
    /// 60 s, nginx's default.
    pub send_timeout: Option<Duration>,
    /// `autoindex on`: how a directory without an index file is listed (None: `off`).
    pub autoindex: Option<AutoIndex>,
    /// `underscores_in_headers` (server level): a request header whose name has `_` is valid.
    pub underscores_in_headers: bool,
    /// `ignore_invalid_headers` (server level): an invalid header (with `underscores_in_headers
    /// off`, one whose name has `_`) is dropped as the request is read: no variable sees it and
    /// it is not proxied.
    pub ignore_invalid_headers: bool,
    /// `autoindex_format`, `autoindex_exact_size`, `autoindex_localtime`, merged whether or
    /// not `autoindex` is on at the level.
    pub autoindex_options: AutoIndex,
    /// `etag`: a static file's answer carries its ETag (nginx's default `on`).
    pub etag: bool,
    /// `if_modified_since`: how a file's time is compared with `If-Modified-Since`.
    pub if_modified_since: ModifiedSince,
    /// `valid_referers`: what `$invalid_referer` accepts; None where no level writes one.
    pub referers: Option<Arc<ValidReferers>>,
    /// `large_client_header_buffers` (server level); None where no level writes one.
    pub header_buffers: Option<HeaderBuffers>,
    /// `set_real_ip_from`: the proxies whose word on the client's address is taken. A level
    /// with any replaces the inherited ones.
    pub real_ip_from: Arc<[Net]>,
    /// `real_ip_header`, lower-cased (nginx's default `X-Real-IP`).
    pub real_ip_header: Arc<str>,
    /// `real_ip_recursive on`: trusted proxies' addresses are skipped in `X-Forwarded-For`.
    pub real_ip_recursive: bool,
}

/// `large_client_header_buffers NUMBER SIZE`: a request's line (the request line and each
/// header line) must fit in SIZE bytes, and its whole head in NUMBER × SIZE; both at most 1 MiB
/// ([`HEADER_BUFFERS_MAX`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBuffers {
    pub size: usize,
    pub total: usize,
}

/// The longest request head the gateway reads (its engine's bound).
pub const HEADER_BUFFERS_MAX: u64 = 1024 * 1024 - 1;

/// nginx's `connection_pool_size` on a 64-bit machine: the least `large_client_header_buffers`
/// size it accepts.
pub const CONNECTION_POOL_SIZE: u64 = 512;

/// How `autoindex` lists a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoIndex {
    pub format: crate::autoindex::Format,
    pub exact_size: bool,
    pub localtime: bool,
}

/// One `access_log PATH [FORMAT] [buffer=] [flush=] [if=COND]`.
#[derive(Debug, Clone)]
pub struct AccessLogFile {
    /// As written; a relative path starts at nginx's prefix, which the caller knows.
    pub path: Arc<str>,
    pub format: Arc<crate::log::LogFormat>,
    /// `if=`: no line when its value is empty or `0`.
    pub condition: Option<Template>,
}

/// nginx's `charset_types` when the configuration writes none; a level's `charset_types`
/// replaces them with `text/html` and its own.
pub const CHARSET_TYPES: &[&str] = &[
    "text/html",
    "text/xml",
    "text/plain",
    "text/vnd.wap.wml",
    "application/javascript",
    "application/rss+xml",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            root: Template::literal_of("html"),
            root_written: false,
            alias: None,
            alias_skip: None,
            index: vec![Template::literal_of("index.html")],
            absolute_redirect: true,
            port_in_redirect: true,
            server_name_in_redirect: false,
            error_pages: Arc::from(Vec::new()),
            client_max_body_size: 1024 * 1024,
            internal: false,
            access: Arc::from(Vec::new()),
            add_headers: Arc::from(Vec::new()),
            expires: Expires::Off,
            expires_value: None,
            proxy: ProxySettings {
                set_headers: Arc::from(Vec::new()),
                redirect: ProxyRedirect::Default,
                connect_timeout: Duration::from_secs(60),
                read_timeout: Duration::from_secs(60),
                send_timeout: Duration::from_secs(60),
                http_version: HttpVersion::V10,
                intercept_errors: false,
                hide_headers: Arc::from(Vec::new()),
                ignore_accel_redirect: false,
                next_upstream: NextUpstream::default(),
                next_upstream_tries: 0,
                next_upstream_timeout: None,
                cookie_paths: Arc::from(Vec::new()),
                cookie_domains: Arc::from(Vec::new()),
                cookie_flags: Arc::from(Vec::new()),
            },
            gzip: Gzip {
                on: false,
                types: Arc::from(vec!["text/html".to_owned()]),
                comp_level: 1,
                min_length: 20,
                proxied: GzipProxied::default(),
                vary: false,
                disable: Arc::from(Vec::new()),
                http_10: false,
                static_files: GzipStatic::Off,
            },
            types: None,
            default_type: None,
            access_log: true,
            access_files: Arc::from(Vec::new()),
            log_not_found: true,
            charset: None,
            source_charset: None,
            override_charset: false,
            charset_types: CHARSET_TYPES.iter().map(|t| (*t).to_owned()).collect(),
            keepalive_timeout: None,
            client_body_timeout: None,
            send_timeout: None,
            underscores_in_headers: false,
            ignore_invalid_headers: true,
            header_buffers: None,
            etag: true,
            if_modified_since: ModifiedSince::Exact,
            referers: None,
            real_ip_from: Arc::from(Vec::new()),
            real_ip_header: Arc::from("x-real-ip"),
            real_ip_recursive: false,
            autoindex: None,
            autoindex_options: AutoIndex {
                format: crate::autoindex::Format::Html,
                exact_size: true,
                localtime: false,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    Uri(Template),
    Code(u16),
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryFiles {
    pub candidates: Vec<TryCandidate>,
    pub fallback: Fallback,
}

/// A `try_files` name; one written with a trailing '/' tests for a directory, and the '/' is
/// dropped from the name (`ngx_http_try_files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryCandidate {
    pub name: Template,
    pub dir: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Last,
    Break,
    None,
}

#[derive(Debug, Clone)]
pub struct Rewrite {
    pub regex: NgxRegex,
    /// The replacement up to its first `?` (all of it for a redirect).
    pub uri: Template,
    /// The replacement after the first `?` of an internal rewrite.
    pub args: Option<Template>,
    /// The replacement contains a `?` (a redirect then appends old args with `&`).
    pub has_args: bool,
    /// Unless the replacement ends in `?`, the request's arguments are appended.
    pub add_args: bool,
    /// Some(301|302) for a redirect.
    pub redirect: Option<u16>,
    pub flag: Flag,
}

#[derive(Debug, Clone)]
pub enum Cond {
    /// `if ($var)`: false when empty or "0".
    Truth(String),
    Eq {
        var: String,
        value: Template,
        negate: bool,
    },
    Regex {
        var: String,
        regex: NgxRegex,
        negate: bool,
    },
    /// `-f`, `-d`, `-e` (and `!` forms), answered by the caller's file system.
    File {
        op: FileTest,
        negate: bool,
        path: Template,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTest {
    File,
    Dir,
    Exists,
}

#[derive(Debug, Clone)]
pub enum Stmt {
    Rewrite(Rewrite),
    Return {
        code: u16,
        text: Option<Template>,
    },
    Set {
        name: String,
        value: Template,
    },
    If {
        cond: Cond,
        body: Vec<Stmt>,
        /// In a location: the index of the block's configuration in the location's
        /// [`LocConf::ifs`], which a true condition makes the request's (nginx's
        /// `r->loc_conf = if_code->loc_conf`). None on the server level, where nginx gives an
        /// `if` no configuration of its own.
        conf: Option<usize>,
    },
    Break,
}

/// `proxy_pass URL`.
#[derive(Debug, Clone)]
pub struct ProxyPass {
    /// The URL as written.
    pub url: String,
    pub kind: PassKind,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub enum PassKind {
    /// No variables: the target is known at configuration time.
    Static(PassTarget),
    /// Variables: evaluated per request, then read as a URL.
    Dynamic(Template),
}

/// A `proxy_pass` URL split as `ngx_parse_url` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassTarget {
    /// `host[:port]` as written, the upstream the gateway maps it to.
    pub authority: String,
    /// `$proxy_host`: the host, with the port unless it is 80.
    pub host_header: String,
    /// `$proxy_port`.
    pub port: String,
    /// The URI part (from the first `/`), empty when there is none.
    pub uri: Vec<u8>,
}

/// `limit_except METHOD ... { allow/deny }`: the rules for every other method.
#[derive(Debug, Clone)]
pub struct LimitExcept {
    /// Upper-case method names that are *not* limited (GET implies HEAD).
    pub methods: Vec<String>,
    pub access: Arc<[AccessRule]>,
}

/// What a configuration level is: the server itself, a location, or a named location.
#[derive(Debug, Clone)]
pub enum Head {
    Server,
    Location(Location),
    Named(String),
}

/// One configuration level: the server's own, a location's, or a named location's.
#[derive(Debug)]
pub struct LocConf {
    pub head: Head,
    pub stmts: Vec<Stmt>,
    pub settings: Arc<Settings>,
    pub proxy_pass: Option<ProxyPass>,
    pub try_files: Option<TryFiles>,
    pub limit_except: Option<LimitExcept>,
    pub children: LocationSet<LocConf>,
    /// The configurations of the level's `if` blocks, in the order written:
    /// nginx makes each a nameless location merged from the enclosing level. It has the
    /// enclosing location's name; its settings are inherited unless the block sets them
    /// (`add_header` lists replace, not extend); `proxy_pass` is inherited, `try_files` is not.
    pub ifs: Vec<LocConf>,
    pub pos: Pos,
}

impl LocConf {
    /// A level with its settings and nothing else yet: the builder adds its statements,
    /// directives and children as it reads them.
    pub fn new(head: Head, settings: Arc<Settings>, pos: Pos) -> LocConf {
        LocConf {
            head,
            stmts: Vec::new(),
            settings,
            proxy_pass: None,
            try_files: None,
            limit_except: None,
            children: LocationSet::new(Vec::new()).expect("empty set"),
            ifs: Vec::new(),
            pos,
        }
    }

    /// The location's name as nginx's `clcf->name` (empty for the server level).
    pub fn name(&self) -> &str {
        match &self.head {
            Head::Server => "",
            Head::Location(l) => l.pattern(),
            Head::Named(n) => n,
        }
    }

    /// A regex location (`~`, `~*`).
    pub fn is_regex(&self) -> bool {
        matches!(&self.head, Head::Location(l) if l.modifier().is_regex())
    }
}

/// Where a request is configured: a path of indices from the server level down through nested
/// locations (empty: the server level), or a named location.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LocRef {
    Path(Vec<usize>),
    Named(usize),
}

impl Default for LocRef {
    fn default() -> Self {
        LocRef::Path(Vec::new())
    }
}

#[derive(Debug)]
pub struct Server {
    pub names: Vec<String>,
    /// The `~regex` names, compiled (caseless, as nginx compiles them): a Host none of the
    /// other names is sets their named captures as variables (`server_name
    /// ~^(?<tenant>[a-z0-9]+)\.crm\.example\.com$;` and `$tenant`).
    pub name_regexes: Vec<NgxRegex>,
    pub listen: Vec<String>,
    /// The server level: its statements, settings and (as children) its locations.
    pub root: LocConf,
    /// `location @name` blocks, which only `try_files` and `error_page` reach.
    pub named: Vec<LocConf>,
    pub maps: Arc<[Map]>,
    pub pos: Pos,
    /// Where relative `root` and `alias` paths start, ending with `/` (nginx's `-p`), for the
    /// variables that write a path out (`$request_filename`, `$document_root`). Empty: they
    /// stay relative, as the paths of the crate's other answers are (the caller's
    /// [`crate::FileSystem`] resolves those).
    pub prefix: Vec<u8>,
}

impl Server {
    /// `$server_name`: the first name, as nginx uses it.
    pub fn server_name(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// The server's locations (the server level's children).
    pub fn locations(&self) -> &LocationSet<LocConf> {
        &self.root.children
    }

    /// Every configuration level of the server: itself, its locations at any depth, its
    /// named locations and their `if` blocks.
    fn each_conf<'c>(&'c self, f: &mut impl FnMut(&'c LocConf)) {
        fn walk<'c>(c: &'c LocConf, f: &mut impl FnMut(&'c LocConf)) {
            f(c);
            for i in &c.ifs {
                walk(i, f);
            }
            for (_, child) in c.children.iter() {
                walk(child, f);
            }
        }
        walk(&self.root, f);
        for n in &self.named {
            walk(n, f);
        }
    }

    /// Every value an `add_header NAME ...;` of the server gives the header `name` (its
    /// `$sent_http_*`), wherever it is written.
    pub fn add_header_values(&self, name: &str) -> Vec<&Template> {
        let mut out = Vec::new();
        self.each_conf(&mut |c| {
            for h in c.settings.add_headers.iter() {
                if h.name.eq_ignore_ascii_case(name) {
                    out.push(&h.value);
                }
            }
        });
        out
    }

    /// Every value a `set $name ...;` of the server gives `name`, wherever it is written.
    pub fn set_values(&self, name: &str) -> Vec<&Template> {
        fn stmts<'c>(list: &'c [Stmt], name: &str, out: &mut Vec<&'c Template>) {
            for st in list {
                match st {
                    Stmt::Set { name: n, value } if n == name => out.push(value),
                    Stmt::If { body, .. } => stmts(body, name, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        self.each_conf(&mut |c| stmts(&c.stmts, name, &mut out));
        out
    }

    /// The `if` regexes whose match reaches the variable `name`, with what each is matched
    /// against: one with a named capture `name` (`if ($cookie_sid ~ ^(?<sid>.+)$)`), or one
    /// whose block `set`s `name` from its numbered captures (`set $tok $1;`). The variable is a
    /// piece of what they matched.
    pub fn if_captures_into(&self, name: &str) -> Vec<(&str, &NgxRegex)> {
        fn sets_capture(list: &[Stmt], name: &str) -> bool {
            list.iter().any(|st| match st {
                Stmt::Set { name: n, value } => {
                    n == name
                        && value
                            .parts
                            .iter()
                            .any(|p| matches!(p, crate::vars::Part::Capture(_)))
                }
                Stmt::If { body, .. } => sets_capture(body, name),
                _ => false,
            })
        }
        fn stmts<'c>(list: &'c [Stmt], name: &str, out: &mut Vec<(&'c str, &'c NgxRegex)>) {
            for st in list {
                if let Stmt::If { cond, body, .. } = st {
                    if let Cond::Regex { var, regex, .. } = cond {
                        let named = regex
                            .capture_names()
                            .any(|(_, n)| n.eq_ignore_ascii_case(name));
                        if named || sets_capture(body, name) {
                            out.push((var, regex));
                        }
                    }
                    stmts(body, name, out);
                }
            }
        }
        let mut out = Vec::new();
        self.each_conf(&mut |c| stmts(&c.stmts, name, &mut out));
        out
    }

    /// Every variable the formats of the server's access log files read.
    pub fn log_variables(&self) -> std::collections::BTreeSet<&str> {
        let mut out = std::collections::BTreeSet::new();
        self.each_conf(&mut |c| {
            for f in c.settings.access_files.iter() {
                out.extend(f.format.vars());
            }
        });
        out
    }

    /// The configuration level a [`LocRef`] names.
    pub fn conf(&self, at: &LocRef) -> Option<&LocConf> {
        match at {
            LocRef::Named(i) => self.named.get(*i),
            LocRef::Path(path) => {
                let mut conf = &self.root;
                for i in path {
                    conf = conf.children.get(*i)?.1;
                }
                Some(conf)
            }
        }
    }

    /// The settings of the level `at` names (the server's own when it names nothing); a
    /// request inside a true `if` block has that block's: see `Server::settings_for`.
    pub fn settings(&self, at: &LocRef) -> &Settings {
        self.conf(at).map_or(&self.root.settings, |c| &c.settings)
    }

    pub fn named_index(&self, name: &str) -> Option<usize> {
        self.named.iter().position(|c| c.name() == name)
    }
}

impl Config {
    /// Parse a file that may not `include` anything.
    pub fn parse(file: &str, src: &str) -> Result<Config, ParseError> {
        Config::parse_with(file, src, &mut |p: &str| {
            Err(format!("include \"{p}\" cannot be resolved here"))
        })
    }

    /// Parse, resolving `include` through the caller (this crate reads no files).
    pub fn parse_with(
        file: &str,
        src: &str,
        resolve: &mut IncludeResolver<'_>,
    ) -> Result<Config, ParseError> {
        let dirs = super::parse_directives(file, src, resolve)?;
        Config::from_directives(&dirs)
    }

    /// Build from directives the caller assembled (the gateway turns its TOML rules into a
    /// synthetic server this way, keeping the TOML file's positions in errors).
    pub fn from_directives(dirs: &[Directive]) -> Result<Config, ParseError> {
        super::build::build(dirs)
    }
}
