//! The same configuration and requests against the real nginx and against the crate:
//! status, Location and (for `return` bodies and proxy markers) the body must match byte for
//! byte. In the nginx copy every `proxy_pass http://NAME;` becomes
//! a `proxy_pass` to a closed port plus `add_header X-Proxy "NAME|$uri|$args" always;`, so a
//! proxied request shows up as a 502 carrying the final URI and arguments nginx proxied; the
//! root does not exist, so a static outcome is a 404.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nginx_compat::{Config, Outcome, Request};

const NGINX: &str = "/usr/sbin/nginx";

struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_nginx(tag: &str, server_body: &str) -> Nginx {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "the differential test needs the Debian nginx at {NGINX} (apt-get install nginx)"
    );
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ngx-diff-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let d = dir.display();
    let body = proxy_markers(server_body);
    let conf = format!(
        "daemon off; master_process off; worker_processes 1;\n\
         error_log {d}/logs/error.log; pid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/pt;\n\
         fastcgi_temp_path {d}/ft; uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;\n\
         server {{ listen 127.0.0.1:{port}; server_name localhost; root {d}/no-such-root;\n{body}\n}} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new(NGINX)
        .args(["-p", &dir.display().to_string(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    let mut ngx = Nginx { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = ngx.child.try_wait() {
            let log = std::fs::read_to_string(ngx.dir.join("logs/error.log")).unwrap_or_default();
            panic!("nginx exited ({status}) for config {tag}: {log}");
        }
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    ngx
}

fn proxy_markers(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("proxy_pass http://") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "proxy_pass http://".len()..];
        let end = after.find(';').expect("proxy_pass ends with ;");
        out.push_str(&format!(
            "proxy_pass http://127.0.0.1:1; add_header X-Proxy \"{}|$uri|$args\" always",
            &after[..end]
        ));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

struct Answer {
    status: u16,
    location: Option<Vec<u8>>,
    proxy: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn send(port: u16, uri: &str, extra: &str) -> Answer {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {uri} HTTP/1.0\r\nHost: localhost\r\n{extra}\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = &raw[..split];
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split(|&b| b == b'\n');
    let status_line = lines.next().unwrap();
    let status = std::str::from_utf8(&status_line[9..12])
        .unwrap()
        .parse()
        .unwrap();
    let mut location = None;
    let mut proxy = None;
    for l in lines {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let Some(c) = l.iter().position(|&b| b == b':') else {
            continue;
        };
        let (k, v) = (
            &l[..c],
            l[c + 1..].strip_prefix(b" ").unwrap_or(&l[c + 1..]),
        );
        if k.eq_ignore_ascii_case(b"location") {
            location = Some(v.to_vec());
        }
        if k.eq_ignore_ascii_case(b"x-proxy") {
            proxy = Some(v.to_vec());
        }
    }
    Answer {
        status,
        location,
        proxy,
        body,
    }
}

/// What the crate's outcome must look like on the wire.
fn expected(o: &Outcome) -> (u16, Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) {
    match o {
        Outcome::Redirect { status, location } => (*status, Some(location.clone()), None, None),
        Outcome::Return { status, body } => (*status, None, None, body.clone()),
        Outcome::Proxy {
            uri, args, target, ..
        } => {
            let mut m = target.trim_start_matches("http://").as_bytes().to_vec();
            m.push(b'|');
            m.extend_from_slice(uri);
            m.push(b'|');
            m.extend_from_slice(args);
            (502, None, Some(m), None)
        }
        Outcome::Static { .. } => (404, None, None, None),
        Outcome::BadRequest => (400, None, None, None),
        Outcome::InternalError(_) => (500, None, None, None),
    }
}

struct Group {
    name: &'static str,
    body: &'static str,
    requests: &'static [&'static str],
}

fn show(b: &Option<Vec<u8>>) -> String {
    b.as_ref()
        .map_or("-".into(), |v| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn crate_matches_nginx() {
    let mut total = 0;
    let mut failures = Vec::new();
    for g in GROUPS {
        let crate_conf = format!(
            "server {{ listen 80; server_name localhost;\n{}\n}}",
            g.body
        );
        let cfg = Config::parse("case.conf", &crate_conf)
            .unwrap_or_else(|e| panic!("group {}: {e}", g.name));
        assert!(
            cfg.unsupported.is_empty(),
            "group {}: {:?}",
            g.name,
            cfg.unsupported
        );
        let server = &cfg.servers[0];
        let ngx = start_nginx(g.name, g.body);
        for uri in g.requests {
            total += 1;
            let mut req = Request::get(uri, "localhost");
            req.port = ngx.port;
            let outcome = server.evaluate(&req);
            let (status, location, proxy, body) = expected(&outcome);
            let got = send(ngx.port, uri, "");
            let body_ok = body.as_ref().is_none_or(|b| *b == got.body);
            if got.status != status
                || got.location != location
                || (proxy.is_some() && got.proxy != proxy)
                || !body_ok
            {
                failures.push(format!(
                    "[{}] GET {uri}\n  config: {}\n  nginx: {} location={} proxy={} body={:?}\n  crate: {} location={} proxy={} body={} ({outcome:?})",
                    g.name,
                    g.body.replace('\n', " "),
                    got.status,
                    show(&got.location),
                    show(&got.proxy),
                    String::from_utf8_lossy(&got.body).chars().take(60).collect::<String>(),
                    status,
                    show(&location),
                    show(&proxy),
                    show(&body),
                ));
            }
        }
    }
    assert!(total >= 150, "only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} cases identical");
}

include!("differential/cases.rs");
