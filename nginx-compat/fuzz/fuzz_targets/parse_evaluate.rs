//! Arbitrary config text plus a request target: parsing and evaluation must never panic.
//! Run with `cargo +nightly fuzz run parse_evaluate` from nginx-compat/.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_compat::{normalize_path, Config, Request};

fuzz_target!(|data: &[u8]| {
    // First line: the request target; the rest: a server body.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (uri, conf) = data.split_at(split);
    let _ = normalize_path(uri);
    let Ok(conf) = std::str::from_utf8(conf) else { return };
    let Ok(cfg) = Config::parse("fuzz.conf", conf) else { return };
    let mut req = Request::get("/", "localhost");
    req.uri = uri.to_vec();
    for server in &cfg.servers {
        let _ = server.evaluate(&req);
    }
});
