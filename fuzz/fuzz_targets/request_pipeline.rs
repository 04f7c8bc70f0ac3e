//! The request pipeline's pure parts under arbitrary input: nginx's path normalisation, route
//! selection, the protected area of a request (both readings of `;`), the `Cookie` header read
//! as bytes, the qyapi endpoint's literal-path check and the return URL. Beyond "never panics",
//! each part's promise is checked:
//!
//! - a normalised path has no empty or dot segment;
//! - a path under a protected prefix is protected (or refused), however it is read (nginx's
//!   decoding, a Servlet container's `;`, an upstream that does not decode), and a request
//!   served by a login route is protected;
//! - the Servlet reading has no `;`, `\`, empty or dot segment;
//! - the gateway's cookies never survive the strip, and nothing else is lost;
//! - a qyapi path that passes the check is the path the HTTP client sends, byte for byte;
//! - a return URL always stays on the public origin.
//!
//! Input: the first line is a request target, the second a `Cookie` header, the third a
//! second path (the URI after a rewrite). Run from `fuzz/`:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run request_pipeline`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use once_cell::sync::Lazy;
use wecom_gateway::config::Config;
use wecom_gateway::routing::{self, AreaError, Routed};
use wecom_gateway::{cookies, login, qyapi};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "https://crm.example.com"
[session]
secret = "0123456789abcdef0123456789abcdef"
[apps.crm]
kind = "wecom"
corp_id = "ww1"
agent_id = 1
secret = "s"
[apps.mp]
kind = "wechat_mp"
app_id = "wx1"
secret = "s"
[upstreams.crm]
url = "http://127.0.0.1:9"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
[[routes]]
location = "~* \\.(js|css|png)$"
upstream = "crm"
[[routes]]
location = "^~ /sidebar/public/"
upstream = "crm"
[[routes]]
location = "~ ^/mp/"
upstream = "crm"
login = "mp"
[[routes]]
location = "= /exact/"
upstream = "crm"
login = "crm"
[[routes]]
location = "/api/"
upstream = "crm"
[[routes]]
location = "/"
upstream = "crm"
"#;

static GATEWAY: Lazy<Config> = Lazy::new(|| {
    wecom_gateway::config::load_str("fuzz.toml", CONFIG, std::path::Path::new("."))
        .expect("the fuzz config compiles")
});

fn segments(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/').skip(1)
}

/// Under a protected prefix, by the plain reading.
fn under_protected_prefix(path: &[u8]) -> bool {
    path.starts_with(b"/sidebar/") || path.starts_with(b"/mp/") || path == b"/exact/"
}

fn check_path(config: &Config, path: &[u8], rewritten: &[u8]) {
    let raw = path;
    let table = &config.routes;
    let Ok(norm) = nginx_compat::normalize_path(path) else {
        return;
    };
    assert!(norm.starts_with(b"/"));
    let n = norm.len();
    for (i, seg) in segments(&norm).enumerate() {
        let last = segments(&norm).count() == i + 1;
        assert!(!seg.is_empty() || last, "empty segment in {norm:?}");
        assert!(seg != b"." && seg != b"..", "dot segment in {norm:?}");
    }
    assert!(n >= 1);

    let routed = routing::route(table, &norm);
    if let Routed::Redirect(i) = routed {
        let mut with_slash = norm.clone();
        with_slash.push(b'/');
        // The route's location may carry a modifier (`^~ /p/`): its pattern is what `/p` lacks.
        let location = nginx_compat::Location::parse(&table.routes[i].location)
            .expect("a compiled route's location parses");
        assert_eq!(location.pattern().as_bytes(), &with_slash[..]);
    }
    let area = routing::protecting(table, &norm, &norm, raw);
    if under_protected_prefix(&norm) {
        assert!(!matches!(area, Ok(None)), "{norm:?} escaped its area");
    }
    if let Routed::Route(i) = routed {
        if table.routes[i].login.is_some() {
            assert!(!matches!(area, Ok(None)), "{norm:?} served by a login route");
        }
    }
    if norm.iter().any(|&b| b == b';' || b == b'\\') {
        match routing::servlet_reading(&norm) {
            Ok(r) => {
                assert!(r.starts_with(b"/"));
                assert!(!r.iter().any(|&b| b == b';' || b == b'\\'), "{r:?}");
                for (i, seg) in segments(&r).enumerate() {
                    let last = segments(&r).count() == i + 1;
                    assert!(!seg.is_empty() || last, "{r:?}");
                    assert!(seg != b"." && seg != b"..", "{r:?}");
                }
                if under_protected_prefix(&r) {
                    assert!(!matches!(area, Ok(None)), "{norm:?} read as {r:?} escaped");
                }
            }
            Err(e) => assert_eq!(e, AreaError::AboveRoot),
        }
    }
    // Read without decoding, as an upstream receives the untouched request-target.
    if let Some(literal) = routing::undecoded(raw) {
        if under_protected_prefix(&literal) {
            assert!(!matches!(area, Ok(None)), "{raw:?} undecoded escaped its area");
        }
    }
    // A rewrite into an area or out of one keeps the login.
    if let Ok(rw) = nginx_compat::normalize_path(rewritten) {
        let both = routing::protecting(table, &rw, &norm, raw);
        if under_protected_prefix(&rw) || under_protected_prefix(&norm) {
            assert!(!matches!(both, Ok(None)), "{norm:?} -> {rw:?} escaped");
        }
    }
}

fn check_cookies(header: &[u8]) {
    let lines: Vec<&[u8]> = header.split(|&b| b == b'\r').collect();
    let all = cookies::pairs(lines.iter().copied());
    let _ = cookies::text_pairs(lines.iter().copied());
    let ours = all
        .iter()
        .filter(|(n, _)| cookies::is_ours(n, Some("sid")))
        .count();
    match cookies::without_ours(lines.iter().copied(), Some("sid")) {
        Some(kept) => {
            let again = cookies::pairs([kept.as_slice()]);
            assert!(again.iter().all(|(n, _)| !cookies::is_ours(n, Some("sid"))));
            assert_eq!(again.len(), all.len() - ours, "{header:?} -> {kept:?}");
        }
        None => assert_eq!(all.len(), ours),
    }
}

fn check_qyapi(config: &Config, target: &[u8]) {
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let path = target.split('?').next().unwrap_or_default();
    if qyapi::request::literal(&config.apps, path).is_ok() {
        let url = url::Url::parse(&format!("http://qyapi.example{path}")).expect("a plain path");
        assert_eq!(url.path(), path, "the client would send another path");
    }
}

fn check_return_url(config: &Config, raw: &[u8]) {
    let Ok(raw) = std::str::from_utf8(raw) else {
        return;
    };
    let r = login::ReturnUrl::parse(raw, &config.server.public_url);
    let abs = r.absolute();
    assert!(abs.starts_with("https://crm.example.com/"), "{raw:?} -> {abs}");
    assert!(!r.relative().starts_with("//"), "{raw:?} -> {abs}");
    let u = url::Url::parse(&abs).expect("absolute");
    assert_eq!(u.host_str(), Some("crm.example.com"), "{raw:?} -> {abs}");
}

fuzz_target!(|data: &[u8]| {
    let config = &*GATEWAY;
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let cookie = lines.next().unwrap_or_default();
    let rewritten = lines.next().unwrap_or_default();
    let (path, _) = nginx_compat::split_request_uri(target);
    check_path(config, path, rewritten);
    check_cookies(cookie);
    check_qyapi(config, target);
    check_return_url(config, target);
});
