//! SPEC section 5 step 4: `[[rewrite]]`, route `rewrite` lists and `[nginx] include` rules,
//! answered by the real gateway. One line per request and expected answer, as nginx-tests'
//! rewrite.t.

mod common;

use common::upstream::{self, Echo};
use common::{bin, client, Gateway, TempDir};

/// (request target, status, Location) — Location "" means none expected.
type Case = (&'static str, u16, &'static str);

async fn check(gw: &Gateway, cases: &[Case]) {
    let c = client();
    let base = format!("http://127.0.0.1:{}", gw.port);
    for (uri, status, location) in cases {
        let resp = c.get(gw.url(uri)).send().await.unwrap();
        let got_loc = resp
            .headers()
            .get("location")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let want = location.replace("{BASE}", &base);
        assert_eq!(
            (resp.status().as_u16(), got_loc.as_str()),
            (*status, want.as_str()),
            "GET {uri}"
        );
    }
}

#[tokio::test]
async fn seed_004_hash_route_rewrites_redirect_like_nginx() {
    let up = upstream::echo("crm");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.crm]
url = "{}"

[[routes]]
location = "/"
upstream = "crm"

[[rewrite]]
pattern = '^/home/register(.*)'
replacement = "/home#/register"
flag = "permanent"

[[rewrite]]
pattern = '^/login(.*)'
replacement = "/#/login"
flag = "permanent"
"#,
        up.url()
    ));
    check(
        &gw,
        &[
            ("/home/register", 301, "{BASE}/home#/register"),
            (
                "/home/register?code=abc&state=x",
                301,
                "{BASE}/home#/register?code=abc&state=x",
            ),
            ("/home/register/extra", 301, "{BASE}/home#/register"),
            ("/home/%72egister", 301, "{BASE}/home#/register"),
            ("/login", 301, "{BASE}/#/login"),
            ("/login?x=1", 301, "{BASE}/#/login?x=1"),
            ("/home", 200, ""),
            ("/other?q=1", 200, ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_route_rewrite_with_last_changes_the_route_and_the_upstream_uri() {
    let old = upstream::echo("old");
    let new = upstream::echo("new");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.old]
url = "{}"
[upstreams.new]
url = "{}"

[[routes]]
location = "/legacy/"
upstream = "old"
rewrite = [{{ pattern = '^/legacy/(.*)$', replacement = '/v2/$1', flag = "last" }}]

[[routes]]
location = "/v2/"
upstream = "new"

[[routes]]
location = "/"
upstream = "old"
"#,
        old.url(),
        new.url()
    ));
    let c = client();
    let echo: Echo = c
        .get(gw.url("/legacy/customers/7?tab=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.name, "new", "the rewritten URI selects the /v2/ route");
    assert_eq!(
        echo.uri, "/v2/customers/7?tab=1",
        "proxy_pass without a URI part sends the rewritten URI and the args"
    );
    let echo: Echo = c
        .get(gw.url("/plain/x%20y?a=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo.name.as_str(), echo.uri.as_str()),
        ("old", "/plain/x%20y?a=1"),
        "an unrewritten request goes upstream as the client wrote it"
    );
}

#[tokio::test]
async fn return_and_bad_paths_answer_in_the_rewrite_phase() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-return");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location = /admin { return 403; }\n\
         location /gone { return 410 \"gone for good\"; }\n\
         location /old { return 302 /new$is_args$args; }\n\
         location /crm/ { proxy_pass http://crm; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    check(
        &gw,
        &[
            ("/admin", 403, ""),
            ("/gone/x", 410, ""),
            ("/old?a=b", 302, "{BASE}/new?a=b"),
            ("/crm", 301, "{BASE}/crm/"),
            ("/nothing-here", 404, ""),
        ],
    )
    .await;
    let c = client();
    let body = c.get(gw.url("/gone")).send().await.unwrap().text().await;
    assert_eq!(body.unwrap(), "gone for good");
    let echo: Echo = c
        .get(gw.url("/crm/x?y=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo.name.as_str(), echo.uri.as_str()),
        ("crm", "/crm/x?y=1"),
        "proxy_pass http://crm reaches [upstreams.crm] through the include"
    );
    let raw = common::raw_request(
        gw.port,
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(common::parse_status(&raw), Some(400));
}

fn check_config(toml: &str, tag: &str) -> (bool, String) {
    let dir = TempDir::new(tag);
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let out = run_check(&path);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wecom-gateway check -c path`.
fn run_check(path: &std::path::Path) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["check", "-c"])
        .arg(path)
        .output()
        .unwrap()
}

/// What `check` prints for a config that loads.
fn check_listing(path: &std::path::Path) -> String {
    let out = run_check(path);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}

#[test]
fn a_bad_regex_is_a_config_error_at_its_line() {
    let (ok, err) = check_config(
        "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n\
         [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n\
         rewrite = [{ pattern = '^/(a', replacement = '/b' }]\n",
        "badre",
    );
    assert!(!ok);
    assert!(
        err.contains(":9:") && err.contains("[[routes]][1].rewrite[1].pattern"),
        "{err}"
    );
    assert!(err.contains("pcre2_compile() failed"), "{err}");
}

#[test]
fn unsupported_and_unknown_nginx_directives_are_config_errors_with_file_and_line() {
    let dir = TempDir::new("ngx-unsup");
    std::fs::write(
        dir.path().join("crm.conf"),
        "server {\n  listen 80;\n  ssl_certificate crm.pem;\n  location / {\n    proxy_cache crm;\n    proxy_pass http://crm;\n  }\n}\n",
    )
    .unwrap();
    let toml = |up: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n\
             [upstreams.{up}]\nurl = \"http://127.0.0.1:9\"\n\
             [nginx]\ninclude = [\"{}\"]\n",
            dir.path().join("crm.conf").display()
        )
    };
    let (ok, err) = check_config(&toml("crm"), "unsup");
    assert!(!ok);
    assert!(
        err.contains("crm.conf:3: directive 'ssl_certificate' is not supported")
            && err.contains("crm.conf:5: directive 'proxy_cache' is not supported"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("crm.conf"),
        "location / {\n  proxy_pass http://crn;\n}\n",
    )
    .unwrap();
    let (ok, err) = check_config(&toml("crm"), "unknown");
    assert!(!ok);
    assert!(
        err.contains("crm.conf:2:")
            && err.contains("unknown upstream (known: crm = 127.0.0.1:9)")
            && err.contains("by NAME or by its url's host:port"),
        "{err}"
    );
}

/// Starts the gateway with an nginx server body as its include.
fn with_include(body: &str, up: &upstream::Upstream) -> (Gateway, TempDir) {
    let dir = TempDir::new("ngx-include");
    std::fs::write(dir.path().join("crm.conf"), body).unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    (gw, dir)
}

/// The head and body of a raw HTTP/1.1 exchange (`Connection: close`).
fn exchange(port: u16, request: &str) -> (String, Vec<u8>) {
    let raw = common::raw_request(port, request.as_bytes()).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    (
        String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase(),
        raw[split..].to_vec(),
    )
}

/// nginx's framing of its own answers: `return 200;` has an empty body (Content-Length: 0),
/// a 204 has no Content-Length at all (also for HEAD), `return 301;` an empty Location, and
/// `return 444` closes the connection without a byte.
#[tokio::test]
async fn return_edges_are_framed_as_nginx_frames_them() {
    let up = upstream::echo("crm");
    let (gw, _dir) = with_include(
        "location /r200 { return 200; }\n\
         location /r204 { return 204; }\n\
         location /bare { return 301; }\n\
         location /close { return 444; }\n",
        &up,
    );
    let (head, body) = exchange(
        gw.port,
        "GET /r200 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 0\r\n"), "{head}");
    assert!(body.is_empty(), "return 200; has no body");
    for method in ["GET", "HEAD"] {
        let (head, body) = exchange(
            gw.port,
            &format!("{method} /r204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        );
        assert!(head.starts_with("http/1.1 204"), "{head}");
        assert!(!head.contains("content-length"), "{method} 204: {head}");
        assert!(!head.contains("transfer-encoding"), "{method} 204: {head}");
        assert!(body.is_empty());
    }
    let (head, _) = exchange(
        gw.port,
        "GET /bare HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 301"), "{head}");
    assert!(
        head.contains("\r\nlocation: \r\n"),
        "an empty Location: {head}"
    );
    let raw = common::raw_request(
        gw.port,
        b"GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(raw.is_empty(), "444 closes without an answer: {raw:?}");
    let raw = common::raw_request(gw.port, b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(raw.is_empty(), "also on a keep-alive connection: {raw:?}");
    // With a body still coming: closed at once, not after reading it (no answer to linger
    // over; a test that waited for the close would fail on its read timeout here).
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"POST /close HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
        .unwrap();
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("444 with a body coming: {other:?}"),
    }
}

/// A regex PCRE gives up on (its match limit) is nginx's 500, in an nginx file, in a TOML
/// regex route and in a rewrite: never a miss that lets the next location (or no login)
/// handle the request.
#[tokio::test]
async fn a_pcre_match_limit_error_answers_500_never_the_next_location() {
    let up = upstream::echo("crm");
    let evil = format!("/{}b", "a".repeat(40));
    let (gw, _dir) = with_include(
        "location ~ \"(*LIMIT_MATCH=10000)^/(a|aa)+$\" { return 200 \"matched\"; }\n\
         location / { proxy_pass http://crm; }\n",
        &up,
    );
    let c = client();
    let r = c.get(gw.url(&evil)).send().await.unwrap();
    assert_eq!(r.status(), 500, "include: {}", r.text().await.unwrap());
    // The error line names the rule, as nginx's does.
    gw.wait_log("pcre2_match() failed");
    assert!(
        gw.log()
            .contains("using \"(*LIMIT_MATCH=10000)^/(a|aa)+$\""),
        "{}",
        gw.log()
    );
    let r = c.get(gw.url("/aa")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "matched");

    // Only [[routes]], no rule at all: the route table itself.
    let routes = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n\
         [[routes]]\nlocation = '~ (*LIMIT_MATCH=10000)^/(a|aa)+$'\nupstream = 'crm'\n\
         [[routes]]\nlocation = '/'\nupstream = 'crm'\n",
        up.url()
    ));
    let r = c.get(routes.url(&evil)).send().await.unwrap();
    assert_eq!(r.status(), 500, "route table");

    // A rewrite's regex.
    let rewrite = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n\
         [[rewrite]]\npattern = '(*LIMIT_MATCH=10000)^/(a|aa)+$'\nreplacement = '/x'\n\
         [[routes]]\nlocation = '/'\nupstream = 'crm'\n",
        up.url()
    ));
    let r = c.get(rewrite.url(&evil)).send().await.unwrap();
    assert_eq!(r.status(), 500, "rewrite");
}

/// `client_max_body_size` also holds for a chunked body, whose length nobody declared.
#[tokio::test]
async fn a_chunked_body_over_client_max_body_size_is_refused_with_413() {
    let up = upstream::echo("crm");
    let (gw, _dir) = with_include(
        "client_max_body_size 16;\nlocation / { proxy_pass http://crm; }\n",
        &up,
    );
    let small =
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                 8\r\n12345678\r\n0\r\n\r\n";
    let (head, body) = exchange(gw.port, small);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let echo: Echo = serde_json::from_slice(&body).unwrap();
    assert_eq!(echo.body, "12345678");
    let big =
        "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
               10\r\n1234567812345678\r\n10\r\n1234567812345678\r\n0\r\n\r\n";
    let (head, _) = exchange(gw.port, big);
    assert!(head.starts_with("http/1.1 413"), "{head}");

    let declared = "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\nConnection: close\r\n\r\n\
                    12345678123456781";
    let (head, _) = exchange(gw.port, declared);
    assert!(head.starts_with("http/1.1 413"), "{head}");
}

/// A chunked body over `client_max_body_size` is refused before the upstream is asked, as
/// nginx, which reads the body first: the CRM never sees the request's head.
#[test]
fn a_chunked_body_over_client_max_body_size_never_reaches_the_upstream() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = heads.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 1024];
            if matches!(s.read(&mut buf), Ok(n) if n > 0) {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let dir = TempDir::new("ngx-maxbody");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location /small/ { client_max_body_size 10k; proxy_pass http://crm; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"http://{addr}\"\n[nginx]\ninclude = [\"{}\"]\n",
        dir.path().join("crm.conf").display()
    ));
    let body = "b".repeat(20_000);
    let (head, _) = exchange(
        gw.port,
        &format!(
            "POST /small/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4e20\r\n{body}\r\n0\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 413"), "{head}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(heads.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// nginx's catch-all server beside the site (`listen 80 default_server; server_name _; return
/// 444;`, the "禁止IP访问" block of compliance checklists) loads: a request whose `Host` the
/// site's `server_name` does not name (an IP, another domain, none) gets what the catch-all
/// answers (444: the connection closed without a byte), the gateway's own paths included; the
/// site's names (exact, `*.` wildcards, any case, with a port) are served. `check` says so. A
/// site without a name beside such a catch-all is refused: nginx would refuse every request.
#[test]
fn a_catch_all_server_refuses_the_hosts_the_site_does_not_name() {
    use std::io::{Read, Write};
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-catchall");
    let write = |text: &str| std::fs::write(dir.path().join("crm.conf"), text).unwrap();
    write(
        "server { listen 80 default_server; server_name _; return 444; }\n\
         server { listen 443 ssl default_server; server_name _;\n\
           ssl_certificate /etc/ssl/a.pem; ssl_certificate_key /etc/ssl/a.key; return 444; }\n\
         server { listen 80; server_name crm.example.com *.crm.example.com;\n\
           location / { proxy_pass http://crm; } }\n",
    );
    let config = format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    );
    let gw = Gateway::start(&config);
    for host in [
        "crm.example.com",
        "CRM.Example.com:8080",
        "a.crm.example.com",
    ] {
        let (head, _) = exchange(
            gw.port,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert!(head.starts_with("http/1.1 200"), "{host}: {head}");
    }
    for request in [
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: evil.example.org\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET /_gateway/whoami HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n",
        "GET /x HTTP/1.0\r\n\r\n",
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            got.is_empty(),
            "{request:?}: {}",
            String::from_utf8_lossy(&got)
        );
    }
    let before = up.hits();
    assert_eq!(before, 3, "only the site's hosts reached the CRM");
    let stdout = check_listing(&gw.config_path);
    assert!(
        stdout.contains("does not name is answered by a closed connection (444)"),
        "{stdout}"
    );
    drop(gw);

    // A public_url whose host the site does not name: its sign-ins would meet the catch-all
    // (said by `check`, not refused: a proxy in front may set a Host the site names).
    let toml = dir.path().join("other-host.toml");
    std::fs::write(
        &toml,
        format!("[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"https://crm2.example.com\"\n{config}"),
    )
    .unwrap();
    let stdout = check_listing(&toml);
    assert!(
        stdout.contains("(crm2.example.com) is not among the site's server_name"),
        "{stdout}"
    );

    // `return 403`: the status, with a request id.
    write(
        "server { listen 80 default_server; server_name _; return 403; }\n\
         server { listen 80; server_name crm.example.com; location / { proxy_pass http://crm; } }\n",
    );
    let gw = Gateway::start(&config);
    let (head, _) = exchange(
        gw.port,
        "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 403"), "{head}");
    assert!(head.contains("x-request-id"), "{head}");
    drop(gw);

    // A catch-all sending the others to the site's host: the gateway's own paths too, but
    // `healthz`; the site's host is served; `check` says a public_url elsewhere would meet it.
    write(
        "server { listen 80 default_server; server_name _;
           return 301 https://crm.example.com$request_uri; }
         server { listen 80; server_name crm.example.com; location / { proxy_pass http://crm; } }
",
    );
    let gw = Gateway::start(&config);
    for (target, host, want) in [
        ("/x?a=1", "10.0.0.1", "https://crm.example.com/x?a=1"),
        (
            "/_gateway/whoami",
            "evil.example.org",
            "https://crm.example.com/_gateway/whoami",
        ),
    ] {
        let (head, _) = exchange(
            gw.port,
            &format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert!(head.starts_with("http/1.1 301"), "{head}");
        assert!(head.contains(&format!("location: {want}\r\n")), "{head}");
        assert!(head.contains("x-request-id"), "{head}");
    }
    let (head, _) = exchange(
        gw.port,
        "GET /_gateway/healthz HTTP/1.1\r\nHost: 10.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let (head, _) = exchange(
        gw.port,
        "GET /y HTTP/1.1\r\nHost: crm.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    drop(gw);
    let stdout = check_listing(&toml);
    assert!(
        stdout.contains("would meet its redirect unless a proxy in front"),
        "{stdout}"
    );

    // A block sending `www.` to the bare name, after the site's and without a catch-all: its
    // names get its redirect; a host no block names is the site's (nginx's first block).
    write(
        "server { listen 80; server_name crm.example.com; location / { proxy_pass http://crm; } }\n\
         server { listen 80; server_name www.crm.example.com;\n\
           return 301 https://crm.example.com$request_uri; }\n",
    );
    let gw = Gateway::start(&config);
    let (head, _) = exchange(
        gw.port,
        "GET /w?x=1 HTTP/1.1\r\nHost: WWW.crm.example.com\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 301"), "{head}");
    assert!(
        head.contains("location: https://crm.example.com/w?x=1\r\n"),
        "{head}"
    );
    let before = up.hits();
    for host in ["crm.example.com", "10.0.0.1"] {
        let (head, _) = exchange(
            gw.port,
            &format!("GET /y HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert!(head.starts_with("http/1.1 200"), "{host}: {head}");
    }
    assert_eq!(up.hits(), before + 2);
    drop(gw);

    // A site that names no host: every request would be the catch-all's.
    write(
        "server { listen 80 default_server; server_name _; return 444; }\n\
         server { listen 80; location / { proxy_pass http://crm; } }\n",
    );
    let toml = dir.path().join("gw.toml");
    std::fs::write(
        &toml,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n{config}"
        ),
    )
    .unwrap();
    let out = run_check(&toml);
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("answers every host the site's server_name does not name, and it names none"),
        "{text}"
    );
    assert!(text.contains("give the site its server_name"), "{text}");
}

/// A body over `client_max_body_size` that its client sends whole before reading (Python's
/// `http.client`, Java's `HttpURLConnection`): the 413 is read, not a reset, as nginx's
/// lingering close lets it be.
#[test]
fn a_client_sending_a_body_too_large_reads_its_413() {
    use std::io::{Read, Write};
    let up = upstream::echo("crm");
    let (gw, _dir) = with_include(
        "client_max_body_size 1k;\nlocation / { proxy_pass http://crm; }\n",
        &up,
    );
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let body = vec![b'x'; 4 * 1024 * 1024];
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body)
        .expect("the whole body sent, not cut by a reset");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(up.hits(), 0);
}

/// A range of a file nginx compresses for other clients says it varies (`gzip_vary on`), as
/// nginx's gzip filter marks it before its range filter cuts the range: a cache in front
/// does not hand the plain range to a client that takes gzip, nor the reverse.
#[test]
fn a_range_of_a_file_gzip_compresses_says_it_varies() {
    let up = upstream::echo("crm");
    let (gw, dir) = with_include(
        "root www;\ngzip on; gzip_vary on; gzip_min_length 1; gzip_types text/plain;\n\
         location / { }\n",
        &up,
    );
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/a.txt"), "hello, ranges and gzip\n").unwrap();
    let (head, body) = exchange(
        gw.port,
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("http/1.1 206"), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    assert_eq!(body, b"hello");
}

/// A body sent again to the `error_page` location's upstream (the first answered 503) counts/// A body sent again to the `error_page` location's upstream (the first answered 503) counts
/// once against `client_max_body_size`: it was counted twice, so a failover of uploads over
/// half the limit answered 413.
#[tokio::test]
async fn a_body_sent_again_by_error_page_counts_once_against_client_max_body_size() {
    let down = upstream::serve(
        axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    let backup = upstream::echo("backup");
    let dir = TempDir::new("ngx-refail");
    std::fs::write(
        dir.path().join("crm.conf"),
        "client_max_body_size 2k;\n\
         location /iefb/ { proxy_pass http://crm; proxy_intercept_errors on;\n\
           error_page 503 = @fallback; }\n\
         location @fallback { proxy_pass http://backup; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[upstreams.backup]\nurl = \"{}\"\n\
         [nginx]\ninclude = [\"{}\"]\n",
        down.url(),
        backup.url(),
        dir.path().join("crm.conf").display()
    ));
    let body = "b".repeat(1500);
    let (head, answer) = exchange(
        gw.port,
        &format!(
            "POST /iefb/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1500\r\nConnection: close\r\n\r\n{body}"
        ),
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let echo: Echo = serde_json::from_slice(&answer).unwrap();
    assert_eq!(echo.body.len(), 1500);
    // Over the limit it is still refused.
    let body = "b".repeat(2100);
    let (head, _) = exchange(
        gw.port,
        &format!(
            "POST /iefb/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n834\r\n{body}\r\n0\r\n\r\n"
        ),
    );
    assert!(head.starts_with("http/1.1 413"), "{head}");
}

/// A `return`'s text, and a file, are typed as nginx types them: by the extension through the
/// file's `types` and `default_type`, else a stock `nginx.conf`'s (`mime.types`,
/// `application/octet-stream`); a 204 has none, `default_type ""` sends none.
#[tokio::test]
async fn answers_are_typed_by_extension_types_and_default_type() {
    let dir = TempDir::new("ngx-types");
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    std::fs::write(dir.path().join("www/a.foo"), "foo").unwrap();
    std::fs::write(dir.path().join("www/b.css"), "b{}").unwrap();
    std::fs::write(
        dir.path().join("crm.conf"),
        format!(
            "root {}/www;\n\
             location ~ \\.png$ {{ return 200 \"x\"; }}\n\
             location /health {{ return 200 \"ok\"; }}\n\
             location = /empty.json {{ return 200; }}\n\
             location = /nc {{ return 204; }}\n\
             location /t/ {{ default_type text/plain; return 200 \"t\"; }}\n\
             location /none/ {{ default_type \"\"; return 200 \"n\"; }}\n\
             location /files/ {{\n\
               types {{ text/x-custom foo; }}\n\
               rewrite ^/files/(.*)$ /$1 break;\n\
             }}\n\
             location / {{ }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[nginx]\ninclude = [\"{}\"]\n",
        dir.path().join("crm.conf").display()
    ));
    let c = client();
    for (uri, want) in [
        ("/logo.png", Some("image/png")),
        ("/health", Some("application/octet-stream")),
        ("/empty.json", Some("application/json")),
        ("/nc", None),
        // The regex location wins for .png; here only the file's default_type is its own.
        ("/t/x.unknown", Some("text/plain")),
        ("/t/x.css", Some("text/css")),
        ("/none/x", None),
        ("/files/a.foo", Some("text/x-custom")),
        // A `types` block replaces the whole map: css is not in this one.
        ("/files/b.css", Some("application/octet-stream")),
        ("/b.css", Some("text/css")),
    ] {
        let r = c.get(gw.url(uri)).send().await.unwrap();
        assert!(r.status().is_success(), "GET {uri}: {}", r.status());
        let got = r.headers().get("content-type").map(|v| v.to_str().unwrap());
        assert_eq!(got, want, "GET {uri}");
    }
}

/// A target made of decoded variables can hold a space or a `#` (nginx sends them raw: an
/// invalid request line): the CRM gets them escaped, never a 500 or a 400 from the gateway.
#[tokio::test]
async fn a_target_made_of_decoded_variables_is_sent_escaped() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-escape");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location /s/ { rewrite ^/s/(.*)$ /p/x?u=$uri last; }\n\
         location /p/ { proxy_pass http://crm; }\n\
         location /i/ { proxy_pass http://crm/v$uri; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    let c = client();
    for (asked, sent) in [
        ("/s/a%20b", "/p/x?u=/s/a%20b"),
        ("/i/a%20b%23c", "/v/i/a%20b%23c"),
        // A quote, `<`, `>` and a backtick raw, as nginx sends them.
        ("/i/a%22b%3Cc%3Ed%60e", "/v/i/a\"b<c>d`e"),
        ("/i/a%25b", "/v/i/a%25b"),
        // Not UTF-8 (an old client's GBK path): sent as the same bytes, escaped.
        ("/i/%FF%C3%28", "/v/i/%FF%C3("),
        ("/s/q%22x", "/p/x?u=/s/q\"x"),
    ] {
        let r = c.get(gw.url(asked)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {asked}");
        let echo: Echo = r.json().await.unwrap();
        assert_eq!(echo.uri, sent, "GET {asked}");
    }
}

/// A `proxy_pass` with variables naming no `[upstreams]` entry is nginx's 502 (no resolver),
/// and the log says which location and name, as nginx's error log does, once a minute.
#[tokio::test]
async fn a_proxy_pass_naming_no_upstream_is_a_502_the_log_explains() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-unnamed");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location /v/ { proxy_pass http://$arg_to; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    let c = client();
    let r = c.get(gw.url("/v/x?to=crm")).send().await.unwrap();
    assert_eq!(r.status(), 200, "a configured name goes");
    for _ in 0..3 {
        let r = c.get(gw.url("/v/x?to=nowhere")).send().await.unwrap();
        assert_eq!(r.status(), 502);
    }
    gw.wait_log("names no [upstreams] entry");
    let log = gw.log();
    assert_eq!(
        log.matches("names no [upstreams] entry").count(),
        1,
        "{log}"
    );
    assert!(
        log.contains("crm.conf:1") && log.contains("nowhere"),
        "{log}"
    );
}

/// The lines of almost every nginx file: `access_log off;` (honoured: no access line for the
/// request) and `log_not_found` (the gateway writes no error line for a missing file anyway);
/// an access log naming a format nobody defined is refused as nginx refuses it (files of
/// their own are `tests/logging.rs`'s).
#[tokio::test]
async fn access_log_off_and_log_not_found_load_and_access_log_off_is_honoured() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-access-log");
    let conf = dir.path().join("crm.conf");
    std::fs::write(
        &conf,
        "location = /favicon.ico { log_not_found off; access_log off; }\n\
         location = /robots.txt { allow all; log_not_found off; access_log off; return 200 \"ok\"; }\n\
         location /quiet/ { access_log off; proxy_pass http://crm; }\n\
         location / { proxy_pass http://crm; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        conf.display()
    ));
    let c = client();
    for (path, status) in [
        ("/favicon.ico", 404),
        ("/robots.txt", 200),
        ("/quiet/x", 200),
    ] {
        let r = c.get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "GET {path}");
    }
    let r = c.get(gw.url("/loud")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Lines keep their order: once the last request's is there, the others' would be too.
    gw.wait_log("path=/loud");
    let log = gw.log();
    for quiet in ["path=/favicon.ico", "path=/robots.txt", "path=/quiet/x"] {
        assert!(!log.contains(quiet), "{quiet} logged:\n{log}");
    }

    std::fs::write(
        &conf,
        "location / { access_log /var/log/nginx/crm.log main; }\n",
    )
    .unwrap();
    let (ok, err) = check_config(
        &format!("[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n[nginx]\ninclude = [\"{}\"]\n", conf.display()),
        "access-log-file",
    );
    assert!(!ok);
    assert!(
        err.contains("crm.conf:1:") && err.contains("unknown log format \"main\""),
        "{err}"
    );
}

/// `keepalive_timeout` of the location that answers, itself or through its upstream: `0`
/// closes the connection after the answer, as nginx does, and elsewhere it is kept. `check`
/// lists the directives that load with no effect, with why.
#[test]
fn keepalive_timeout_is_the_answering_locations_and_check_lists_what_changes_nothing() {
    use std::io::{Read, Write};
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-keepalive");
    std::fs::write(
        dir.path().join("crm.conf"),
        "sendfile on;\n\
         location /short/ { keepalive_timeout 0; return 200 \"s\"; }\n\
         location /api/ { keepalive_timeout 0; proxy_pass http://crm; }\n\
         location /via/ { keepalive_timeout 0; error_page 404 /kok/; return 404; }\n\
         location /kok/ { return 200 \"ok\"; }\n\
         location /r500 { return 500; }\n\
         location /dead/ { proxy_pass http://dead; }\n\
         location / { return 200 \"k\"; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[upstreams.dead]\nurl = \"http://127.0.0.1:1\"\n\
         [nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    // `/via/` passes a `keepalive_timeout 0` on its way to `/kok/`; nginx closes after its
    // 500 page; a failed upstream's 502 closes (the engine does not reuse that connection).
    for (path, want, status) in [
        ("/", "keep-alive", 200),
        ("/kok/", "keep-alive", 200),
        ("/short/", "close", 200),
        ("/api/x", "close", 200),
        ("/via/", "close", 404),
        ("/r500", "close", 500),
        ("/dead/x", "close", 502),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        let mut pending = Vec::new();
        let r = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(
            (r.status, r.header("connection")),
            (status, Some(want)),
            "GET {path}"
        );
        if want == "close" {
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty() && pending.is_empty(), "GET {path}: closed");
        }
    }
    let stdout = check_listing(&gw.config_path);
    assert!(
        stdout.contains("loaded, with no effect on what the gateway does:")
            && stdout.contains("crm.conf:1: sendfile: how nginx writes to the socket"),
        "{stdout}"
    );
}

/// A snippet included by several locations (`include proxy_params;`) is noted once by
/// `check`, not once per location that includes it.
#[test]
fn a_snippet_included_by_many_locations_is_noted_once() {
    let up = upstream::echo("crm");
    let snippets = TempDir::new("ngx-snippet");
    let snippet = snippets.path().join("proxy_params");
    std::fs::write(
        &snippet,
        "proxy_buffering off;\nproxy_set_header Host $host;\n",
    )
    .unwrap();
    let body = format!(
        "location /a/ {{ include {0}; proxy_pass http://crm; }}\n\
         location /b/ {{ include {0}; proxy_pass http://crm; }}\n\
         location /c/ {{ include {0}; proxy_pass http://crm; }}\n",
        snippet.display()
    );
    let (gw, _dir) = with_include(&body, &up);
    let stdout = check_listing(&gw.config_path);
    let line = "proxy_params:1: proxy_buffering";
    assert_eq!(stdout.matches(line).count(), 1, "{stdout}");
}

/// A whole `nginx.conf`: nginx's process settings are noted, the http level's settings are
/// every server's (here `charset`), and a second server block is still refused.
#[test]
fn a_whole_nginx_conf_loads_with_its_http_level_settings() {
    use std::io::Write;
    let up = upstream::echo("crm");
    let conf = "user www-data;\nworker_processes auto;\npid /run/nginx.pid;\n\
                events { worker_connections 768; }\n\
                http {\n  sendfile on;\n  default_type text/plain;\n  charset utf-8;\n\
                  keepalive_timeout 65;\n\
                  server {\n    listen 80;\n    location / { return 200 \"hi\"; }\n  }\n}\n";
    let (gw, dir) = with_include(conf, &up);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
    let r = common::raw::read_response(&mut s, &mut Vec::new());
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; charset=utf-8"),
        "the http level's default_type and charset"
    );
    let stdout = check_listing(&gw.config_path);
    assert!(
        stdout.contains("crm.conf:1: user: how nginx runs its processes")
            && stdout.contains("crm.conf:4: events:"),
        "{stdout}"
    );
    std::fs::write(
        dir.path().join("crm.conf"),
        format!(
            "{}server {{ listen 81; }}\n}}\n",
            conf.trim_end().trim_end_matches('}')
        ),
    )
    .unwrap();
    let (ok, err) = check_config(&std::fs::read_to_string(&gw.config_path).unwrap(), "two");
    assert!(!ok && err.contains("the gateway serves one site"), "{err}");
    // The usual pair (a redirect to https first): the message says which to keep.
    std::fs::write(
        dir.path().join("crm.conf"),
        "server { listen 80; server_name crm.example.com; return 301 https://$host$request_uri; }\n\
         server { listen 443 ssl; location / { proxy_pass http://crm; } }\n",
    )
    .unwrap();
    let (ok, err) = check_config(&std::fs::read_to_string(&gw.config_path).unwrap(), "pair");
    assert!(
        !ok && err.contains("crm.conf:1: directive 'server' is not supported (it only redirects"),
        "{err}"
    );
}

/// An answer the nginx file makes itself does not need the request's body: it is read and
/// thrown away (as `ngx_http_discard_request_body` does), so a client's keep-alive connection
/// serves its next request; past 64 KiB, or with a 413, the connection closes instead.
#[test]
fn a_body_an_answer_does_not_need_is_discarded_and_the_connection_kept() {
    use std::io::Write;
    let dir = TempDir::new("ngx-discard");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location = /ping { return 200 \"pong\"; }\n\
         location = /small { client_max_body_size 10; return 200 \"s\"; }\n\
         location / { return 204; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[nginx]\ninclude = [\"{}\"]\n",
        dir.path().join("crm.conf").display()
    ));
    let connect = || {
        let s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s
    };
    // Two POSTs with bodies (one chunked), then a GET, on one connection.
    let mut s = connect();
    let mut pending = Vec::new();
    s.write_all(b"POST /ping HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("keep-alive"))
    );
    s.write_all(
        b"POST /other HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .unwrap();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!(
        (r.status, r.header("connection")),
        (204, Some("keep-alive"))
    );
    s.write_all(b"GET /ping HTTP/1.1\r\nHost: h\r\n\r\n")
        .unwrap();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!(r.status, 200);

    // A body past 64 KiB is not read: the connection closes after the answer.
    let mut s = connect();
    let big = vec![b'x'; 70 * 1024];
    s.write_all(
        format!(
            "POST /ping HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            big.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let _ = s.write_all(&big);
    let mut pending = Vec::new();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));

    // nginx's 413 closes; its body is not read either.
    let mut s = connect();
    s.write_all(
        b"POST /small HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n01234567890123456789",
    )
    .unwrap();
    let mut pending = Vec::new();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));

    // A body declared and never sent: the answer comes at once all the same (the engine
    // waits for the body only before the connection's next request).
    let mut s = connect();
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    s.write_all(b"POST /ping HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut pending = Vec::new();
    let r = common::raw::read_response(&mut s, &mut pending);
    assert_eq!(r.status, 200);

    // Expect: 100-continue: asked for, the body comes, and the connection stays.
    let r = common::raw::after_continue(
        gw.port,
        "POST /ping HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        b"abc",
    );
    assert_eq!(
        (r.status, r.header("connection")),
        (200, Some("keep-alive"))
    );
}

/// nginx's variables of the connection and the process load in every directive and carry
/// their values: `proxy_set_header X-Real-Port $remote_port;` (with `X-Real-IP`, a common
/// pair), `$server_protocol`, `$hostname`, `X-Request-Start "t=${msec}"` (the queue-time
/// header of APM agents), `$time_iso8601`. They were refused as unknown.
#[tokio::test]
async fn connection_and_process_variables_carry_their_values() {
    use std::io::{Read, Write};
    let up = upstream::echo("crm");
    let (gw, _dir) = with_include(
        "location / {\n\
           proxy_set_header X-Real-Port $remote_port;\n\
           proxy_set_header X-Proto $server_protocol;\n\
           proxy_set_header X-Host-Name $hostname;\n\
           proxy_set_header X-Request-Start \"t=${msec}\";\n\
           proxy_set_header X-Time $time_iso8601;\n\
           proxy_set_header X-Pid $pid;\n\
           add_header X-Response-Time $request_time;\n\
           proxy_set_header X-Rt $request_time;\n\
           proxy_pass http://crm;\n\
         }\n",
        &up,
    );
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let port = s.local_addr().unwrap().port();
        write!(
            s,
            "GET /x {version}\r\nHost: crm.example\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&raw[..at]);
        assert!(head.contains(" 200 "), "{head}");
        // The time so far, as nginx writes it (seconds, three decimals).
        let rt = head
            .lines()
            .find_map(|l| l.strip_prefix("X-Response-Time: "))
            .unwrap_or_else(|| panic!("{head}"));
        let (s, ms) = rt.split_once('.').unwrap();
        assert!(
            s.parse::<u64>().is_ok() && ms.len() == 3 && ms.parse::<u32>().is_ok(),
            "{rt}"
        );
        let echo: Echo = serde_json::from_slice(&raw[at..]).unwrap();
        let port_sent = port.to_string();
        assert_eq!(echo.header("x-real-port"), Some(port_sent.as_str()));
        assert_eq!(echo.header("x-proto"), Some(version));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(echo.header("x-host-name"), Some(host.trim()));
        let start = echo.header("x-request-start").unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let (secs, millis) = start
            .strip_prefix("t=")
            .and_then(|t| t.split_once('.'))
            .unwrap_or_else(|| panic!("X-Request-Start: {start:?}"));
        assert_eq!(millis.len(), 3, "{start}");
        let t: f64 = format!("{secs}.{millis}").parse().unwrap();
        assert!((now - t).abs() < 30.0, "{start} against {now}");
        let time = echo.header("x-time").unwrap_or_default();
        assert!(
            time.len() == 25 && time.as_bytes()[10] == b'T',
            "$time_iso8601: {time:?}"
        );
        assert!(echo
            .header("x-pid")
            .is_some_and(|p| p.parse::<u32>().is_ok()));
        // The time so far as the request is sent on.
        let rt = echo.header("x-rt").unwrap_or_default();
        assert!(
            rt.len() >= 5 && rt.as_bytes()[rt.len() - 4] == b'.',
            "{rt:?}"
        );
    }
}

/// A location of the nginx file under the gateway's prefix is never reached (the gateway's
/// endpoints answer there): `check` says so, as it refuses a `[[routes]]` entry there.
#[test]
fn a_file_location_under_the_gateways_prefix_is_said_to_be_unreachable() {
    let up = upstream::echo("crm");
    let conf = "location /_gateway/ { proxy_pass http://crm; }\n\
                location = /_gateway/auth { return 200; }\n\
                location / { proxy_pass http://crm; }\n";
    let (gw, _dir) = with_include(conf, &up);
    let stdout = check_listing(&gw.config_path);
    for loc in ["location /_gateway/:", "location = /_gateway/auth:"] {
        assert!(
            stdout.contains(&format!(
                "{loc} under [server].prefix \"/_gateway\", the gateway's own paths"
            )),
            "{loc}\n{stdout}"
        );
    }
    assert!(!stdout.contains("location /: under"), "{stdout}");
}
