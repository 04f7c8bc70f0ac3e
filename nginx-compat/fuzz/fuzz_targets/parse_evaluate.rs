//! Arbitrary config text plus a request: parsing, every phase of the evaluation and the
//! questions a proxied request asks later must never panic or loop.
//! Run with `cargo +nightly fuzz run parse_evaluate` from nginx-compat/.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_compat::eval::{FileKind, FileSystem};
use nginx_compat::{normalize_path, Action, Config, Request};

/// A file system where a path's kind follows its last byte, so every branch is reachable.
struct Mixed;

impl FileSystem for Mixed {
    fn kind(&self, path: &[u8]) -> FileKind {
        match path.last().map(|b| b % 4) {
            Some(0) => FileKind::File,
            Some(1) => FileKind::Dir,
            Some(2) => FileKind::Denied,
            _ => FileKind::Missing,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // First line: METHOD SP target; second: a header value; the rest: a config.
    let mut lines = data.splitn(3, |&b| b == b'\n');
    let (Some(first), Some(header), Some(conf)) = (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let (method, uri) = match first.iter().position(|&b| b == b' ') {
        Some(i) => (&first[..i], &first[i + 1..]),
        None => (&b"GET"[..], first),
    };
    let _ = normalize_path(uri);
    let Ok(conf) = std::str::from_utf8(conf) else { return };
    let Ok(cfg) = Config::parse("fuzz.conf", conf) else { return };
    let mut req = Request::get("/", "localhost");
    req.method = String::from_utf8_lossy(method).into_owned();
    req.uri = uri.to_vec();
    req.headers.push(("X-Fuzz".into(), header.to_vec()));
    req.headers.push(("Content-Length".into(), header.to_vec()));
    for server in &cfg.servers {
        let action = server.handle(&req, &Mixed);
        if let Some(st) = action.state() {
            let _ = server.response_headers(&req, st, 200, Some(0), 1_700_000_000);
            let _ = server.response_headers(&req, st, 500, None, 1_700_000_000);
        }
        if let Action::Proxy(p) = &action {
            let _ = server.proxy_redirect(&req, p, header);
            let _ = server.upstream_answered(&req, p, 404, &Mixed);
            let _ = server.upstream_failed(&req, p, 502, &Mixed);
        }
    }
});
