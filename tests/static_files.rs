//! The SPA front end of seed 004 hosted from an `[nginx] include`: `root`, `index`,
//! `try_files $uri $uri/ /index.html`, content types, validators, HEAD, Range, and no way out
//! of the document root.

mod common;

use common::upstream::{self, Echo};
use common::{client, parse_status, raw_request, Gateway, TempDir};

const INDEX: &str = "<!doctype html><title>spa</title><div id=app></div>";
const APP_JS: &str = "console.log('spa');\n";

struct Spa {
    gw: Gateway,
    _dir: TempDir,
    _up: upstream::Upstream,
}

fn start() -> Spa {
    let up = upstream::echo("crm");
    let dir = TempDir::new("spa");
    let d = dir.path();
    std::fs::create_dir_all(d.join("html/mobile/assets")).unwrap();
    std::fs::write(d.join("html/mobile/index.html"), INDEX).unwrap();
    std::fs::write(d.join("html/mobile/assets/app.js"), APP_JS).unwrap();
    std::fs::write(d.join("html/mobile/assets/site.css"), "body{}").unwrap();
    std::fs::write(d.join("secret.txt"), "outside the root").unwrap();
    std::os::unix::fs::symlink(d.join("secret.txt"), d.join("html/mobile/leak.txt")).unwrap();
    std::os::unix::fs::symlink(d, d.join("html/mobile/up")).unwrap();
    // Seed 004's complete example, in a server block with an API location.
    std::fs::write(
        d.join("crm.conf"),
        "server {\n\
           listen 80;\n\
           location / {\n\
             root html/mobile;\n\
             index index.html index.htm;\n\
             try_files $uri $uri/ /index.html;\n\
             index index.html index.htm;\n\
             rewrite ^/login(.*) /#/login permanent;\n\
           }\n\
           location /api/ { proxy_pass http://crm; }\n\
           location ~ ^/re/(.*)$ { alias html/mobile/$1; }\n\
         }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        d.join("crm.conf").display()
    ));
    Spa {
        gw,
        _dir: dir,
        _up: up,
    }
}

#[tokio::test]
async fn deep_links_fall_back_to_index_html_and_assets_have_their_types() {
    let spa = start();
    let c = client();
    let cases: &[(&str, u16, &str, &str)] = &[
        ("/deep/link", 200, "text/html", INDEX),
        ("/deep/link?x=1", 200, "text/html", INDEX),
        ("/", 200, "text/html", INDEX),
        ("/assets/app.js", 200, "application/javascript", APP_JS),
        ("/assets/site.css", 200, "text/css", "body{}"),
    ];
    for (uri, status, ctype, body) in cases {
        let resp = c.get(spa.gw.url(uri)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), *status, "GET {uri}");
        assert_eq!(resp.headers()["content-type"], *ctype, "GET {uri}");
        assert_eq!(resp.text().await.unwrap(), *body, "GET {uri}");
    }
    let resp = c.get(spa.gw.url("/login?from=wx")).send().await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.headers()["location"],
        format!("http://127.0.0.1:{}/#/login?from=wx", spa.gw.port).as_str()
    );
    let echo: Echo = c
        .get(spa.gw.url("/api/customers?id=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        echo.uri, "/api/customers?id=1",
        "static outcomes never hit an upstream, API calls do"
    );
}

#[tokio::test]
async fn validators_head_and_ranges() {
    let spa = start();
    let c = client();
    let url = spa.gw.url("/assets/app.js");
    let resp = c.get(&url).send().await.unwrap();
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let modified = resp.headers()["last-modified"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.contains('-'),
        "nginx's ETag form: {etag}"
    );

    let r = c
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304, "If-None-Match with the current ETag");
    // ngx_http_not_modified_header_filter clears the type: a 304 has none.
    assert_eq!(
        r.headers().get("content-type"),
        None,
        "a 304's Content-Type"
    );
    let r = c
        .get(&url)
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304, "If-Modified-Since equal to Last-Modified");
    let r = c
        .get(&url)
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        APP_JS.len().to_string().as_str()
    );
    assert_eq!(r.bytes().await.unwrap().len(), 0, "HEAD has no body");

    let r = c
        .get(&url)
        .header("range", "bytes=0-6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-6/{}", APP_JS.len()).as_str()
    );
    assert_eq!(r.text().await.unwrap(), &APP_JS[..7]);
    let r = c
        .get(&url)
        .header("range", "bytes=-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.unwrap(), &APP_JS[APP_JS.len() - 3..]);
    let r = c
        .get(&url)
        .header("range", "bytes=999-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", APP_JS.len()).as_str()
    );
}

#[tokio::test]
async fn nothing_outside_the_document_root_is_served() {
    let spa = start();
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/../../secret.txt",
        "/a%00b",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let resp = raw_request(spa.gw.port, raw.as_bytes()).unwrap();
        assert_eq!(parse_status(&resp), Some(400), "GET {target}");
    }
    let resp = client().get(spa.gw.url("/leak.txt")).send().await.unwrap();
    assert_eq!(resp.status(), 403, "a symlink leaving the root is refused");
    assert!(!resp.text().await.unwrap().contains("outside the root"));
    // An alias made of a capture holds the symlink in its own value: the directory its
    // written part names is the bound.
    for uri in ["/re/up/secret.txt", "/re/leak.txt"] {
        let resp = client().get(spa.gw.url(uri)).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{uri}");
        assert!(!resp.text().await.unwrap().contains("outside the root"));
    }
    let resp = client()
        .get(spa.gw.url("/re/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), APP_JS);
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A 512 MiB file served whole, by HEAD and by `Range: bytes=0-0`: the gateway's peak memory
/// stays far below the file's size (it used to read the whole file per request).
#[tokio::test]
async fn a_large_static_file_is_streamed_with_bounded_memory() {
    const SIZE: u64 = 512 * 1024 * 1024;
    let spa = start();
    let big = spa._dir.path().join("html/mobile/assets/big.bin");
    // Sparse: no disk is used, reads return zeros.
    std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    let before = peak_rss_kib(spa.gw.pid());
    let c = client();
    let url = spa.gw.url("/assets/big.bin");

    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], SIZE.to_string().as_str());

    let r = c
        .get(&url)
        .header("range", "bytes=0-0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-0/{SIZE}").as_str()
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &[0u8]);

    let mut r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut got = 0u64;
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len() as u64;
    }
    assert_eq!(got, SIZE, "the whole file arrives");

    let grew = peak_rss_kib(spa.gw.pid()).saturating_sub(before);
    assert!(
        grew < 64 * 1024,
        "peak memory grew by {grew} KiB serving a {} KiB file",
        SIZE / 1024
    );
}

/// A file cut short while it is being sent ends that response early; the gateway neither
/// panics nor stops serving.
#[tokio::test]
async fn a_file_that_shrinks_while_it_is_sent_ends_the_response_without_a_panic() {
    use std::io::{Read, Write};
    const SIZE: u64 = 64 * 1024 * 1024;
    let spa = start();
    let big = spa._dir.path().join("html/mobile/assets/shrinking.bin");
    std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();

    let mut s = std::net::TcpStream::connect(("127.0.0.1", spa.gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(b"GET /assets/shrinking.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 64 * 1024];
    s.read_exact(&mut first).unwrap();
    assert!(first.starts_with(b"HTTP/1.1 200"));
    // The client stopped reading; the gateway is held by TCP back-pressure. Cut the file.
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(1024)
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        ((first.len() + rest.len()) as u64) < SIZE,
        "the body ends early"
    );
    let r = client()
        .get(spa.gw.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the gateway still serves");
    assert!(!spa.gw.log().contains("panicked"), "{}", spa.gw.log());
}

/// A file kept where distributions keep it (`/etc/nginx/conf.d/crm.conf`, served by nginx
/// with its prefix elsewhere): `root html/mobile` starts at `[nginx].prefix` as at nginx's
/// `-p`, and `include proxy_params` at `[nginx].conf_dir`, the main `nginx.conf`'s directory.
/// Without them a root that is not there is named when the config loads.
#[tokio::test]
async fn relative_roots_and_includes_start_where_nginx_starts_them() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("spa-layout");
    let d = dir.path();
    std::fs::create_dir_all(d.join("share/html/mobile")).unwrap();
    std::fs::write(d.join("share/html/mobile/index.html"), INDEX).unwrap();
    std::fs::create_dir_all(d.join("etc/conf.d")).unwrap();
    std::fs::write(
        d.join("etc/proxy_params"),
        "proxy_set_header X-Real-IP $remote_addr;\n",
    )
    .unwrap();
    std::fs::write(
        d.join("etc/conf.d/crm.conf"),
        "server {\n\
           location / {\n\
             root html/mobile;\n\
             try_files $uri $uri/ /index.html;\n\
           }\n\
           location /api/ {\n\
             include proxy_params;\n\
             proxy_pass http://crm;\n\
           }\n\
         }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\nprefix = \"{}\"\nconf_dir = \"{}\"\n",
        up.url(),
        d.join("etc/conf.d/crm.conf").display(),
        d.join("share").display(),
        d.join("etc").display(),
    ));
    let c = client();
    let resp = c.get(gw.url("/deep/link")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), INDEX);
    let echo: Echo = c
        .get(gw.url("/api/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.header("x-real-ip"), Some("127.0.0.1"));

    // Without prefix: the root is looked for beside the file, and the log says so at load.
    std::fs::write(
        d.join("etc/conf.d/crm.conf"),
        "server {\n  location / {\n    root html/mobile;\n    try_files $uri $uri/ /index.html;\n  }\n}\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        d.join("etc/conf.d/crm.conf").display(),
    ));
    let missing = d.join("etc/conf.d/html/mobile");
    let log = gw.log();
    assert!(
        log.contains("crm.conf:2") && log.contains(&missing.display().to_string()),
        "{log}"
    );
}

/// `etag off` (security scanners' advice): a file's answer carries no ETag, and an
/// `If-None-Match` with the one it had is no longer a 304; `Last-Modified` still serves.
/// A gateway serving `conf` (written as `crm.conf` in `dir`) as its nginx include, beside an
/// echo upstream `crm`.
fn serving(dir: &TempDir, conf: &str) -> (Gateway, upstream::Upstream) {
    std::fs::write(dir.path().join("crm.conf"), conf).unwrap();
    let up = upstream::echo("crm");
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    (gw, up)
}

#[tokio::test]
async fn etag_off_leaves_files_without_etags() {
    let dir = TempDir::new("etag-off");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/app.js"), APP_JS).unwrap();
    let (gw, _up) = serving(
        &dir,
        "location /on/ { alias www/; }\nlocation /off/ { alias www/; etag off; }\n",
    );
    let c = client();
    let on = c.get(gw.url("/on/app.js")).send().await.unwrap();
    let tag = on.headers()["etag"].to_str().unwrap().to_owned();
    let off = c.get(gw.url("/off/app.js")).send().await.unwrap();
    assert!(off.headers().get("etag").is_none());
    assert!(off.headers().get("last-modified").is_some());
    let again = c
        .get(gw.url("/off/app.js"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let again = c
        .get(gw.url("/on/app.js"))
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

/// `gzip_vary on`: an answer of a type nginx compresses says `Vary: Accept-Encoding` whether or
/// not this client gets it compressed (a client without `Accept-Encoding`, one `gzip_disable`
/// names), so a cache in front keeps both copies apart; once, in nginx's spelling of the value.
/// A type it
/// does not compress gets none. A HEAD is told what its GET would get (nginx runs its gzip
/// header filter before it knows the body is dropped): `Vary`, and with `Accept-Encoding` the
/// headers of the compressed answer.
#[tokio::test]
async fn gzip_vary_marks_every_answer_of_a_compressed_type_once() {
    let dir = TempDir::new("gzip-vary");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/app.js"), APP_JS.repeat(20)).unwrap();
    std::fs::write(dir.path().join("www/logo.png"), [0u8; 300]).unwrap();
    let (gw, _up) = serving(
        &dir,
        "gzip on; gzip_vary on; gzip_min_length 1; gzip_types application/javascript;\n\
         gzip_disable \"MSIE [1-6]\\.\";\nlocation /s/ { alias www/; }\n",
    );
    let port = gw.port;
    let head = move |req: &'static str| {
        let raw = raw_request(port, req.as_bytes()).unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap().to_owned();
        let vary: Vec<String> = head
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("vary").then(|| v.trim().to_owned())
            })
            .collect();
        (head, vary)
    };
    let one = vec!["Accept-Encoding".to_owned()];
    for req in [
        "GET /s/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /s/app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nUser-Agent: Mozilla/4.0 (compatible; MSIE 6.0)\r\nConnection: close\r\n\r\n",
    ] {
        let (h, vary) = tokio::task::spawn_blocking(move || head(req)).await.unwrap();
        assert_eq!(vary, one, "{h}");
        assert!(!h.to_ascii_lowercase().contains("content-encoding"), "{h}");
    }
    let (h, vary) = tokio::task::spawn_blocking(move || {
        head("GET /s/app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(vary, one, "{h}");
    assert!(
        h.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{h}"
    );
    let (h, vary) = tokio::task::spawn_blocking(move || {
        head("GET /s/logo.png HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(vary.is_empty(), "{h}");
    let (h, vary) = tokio::task::spawn_blocking(move || {
        head("HEAD /s/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(vary, one, "{h}");
    assert!(h.to_ascii_lowercase().contains("content-length: "), "{h}");
    let (h, vary) = tokio::task::spawn_blocking(move || {
        head("HEAD /s/app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
    })
    .await
    .unwrap();
    assert_eq!(vary, one, "{h}");
    let lower = h.to_ascii_lowercase();
    assert!(lower.contains("content-encoding: gzip"), "{h}");
    assert!(lower.contains("etag: w/\""), "{h}");
    assert!(!lower.contains("content-length"), "{h}");
    assert!(!lower.contains("accept-ranges"), "{h}");
}
