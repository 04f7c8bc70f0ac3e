//! The machinery of the differential test: one nginx process serving every group on its own
//! loopback port, an echo upstream that shows the request it received, a document root with
//! real files, and a raw HTTP/1.0 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// nginx's page tail with `server_tokens off`.
pub const NGINX_TAIL: &str = "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// An upstream address nothing listens on: nginx answers 502.
pub const DEAD: &str = "127.0.0.1:1";

#[path = "../../../tests/common/ports.rs"]
mod ports;
pub use ports::free_ports;
#[path = "../../../tests/common/nginx.rs"]
pub mod nginx;

/// A directory of the test's, removed at the end.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch_dir(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("ngx-diff-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    Scratch(dir)
}

/// The files the static groups serve (under `{{ROOT}}`).
pub fn make_doc_root(dir: &Path) -> PathBuf {
    let www = dir.join("www");
    let files: &[(&str, &str)] = &[
        ("index.html", "<h1>index</h1>\n"),
        ("app.js", "console.log(1);\n"),
        ("style.css", "body{}\n"),
        ("assets/logo.png", "PNG"),
        ("assets/app.1234.js", "bundle\n"),
        ("docs/index.htm", "docs\n"),
        ("404.html", "custom not found\n"),
        ("50x.html", "custom upstream error\n"),
        ("spa/index.html", "<div id=app></div>\n"),
        ("spa/main.js", "main\n"),
        ("a b.txt", "space\n"),
        ("maint.html", "maintenance\n"),
        ("alias-target/x.txt", "via alias\n"),
        ("alias-target/sub/index.html", "alias index\n"),
    ];
    for (name, text) in files {
        let p = www.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    std::fs::create_dir_all(www.join("empty")).unwrap();
    www
}

/// nginx with a server per `(http-level text, server body)`, each on a port of its own, and
/// those ports in the same order.
pub fn start_nginx(dir: &Path, servers: &[(String, String)]) -> (nginx::Nginx, Vec<u16>) {
    nginx::start(dir, servers.len(), |ports| {
        let mut http = String::new();
        let mut body = String::new();
        for ((http_level, server), port) in servers.iter().zip(ports) {
            http.push_str(http_level);
            http.push('\n');
            body.push_str(&format!(
                "server {{ listen 127.0.0.1:{port}; server_name localhost;\n{server}\n}}\n"
            ));
        }
        format!("{http}\n{body}")
    })
}

/// What the echo upstream answers, decided by `X-Echo-*` request headers (which nginx passes
/// on like any other header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoPlan {
    pub status: u16,
    pub delay_ms: u64,
    pub headers: Vec<(String, String)>,
    /// The answer's `Content-Type` (`text/plain` unless asked for another).
    pub content_type: String,
}

impl EchoPlan {
    pub fn from_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> EchoPlan {
        let mut plan = EchoPlan {
            status: 200,
            delay_ms: 0,
            headers: Vec::new(),
            content_type: "text/plain".into(),
        };
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value).into_owned();
            match name.to_ascii_lowercase().as_str() {
                "x-echo-status" => plan.status = value.parse().unwrap_or(200),
                "x-echo-delay-ms" => plan.delay_ms = value.parse().unwrap_or(0),
                "x-echo-location" => plan.headers.push(("Location".into(), value)),
                "x-echo-cache-control" => plan.headers.push(("Cache-Control".into(), value)),
                "x-echo-last-modified" => plan.headers.push(("Last-Modified".into(), value)),
                "x-echo-expires" => plan.headers.push(("Expires".into(), value)),
                "x-echo-content-type" => plan.content_type = value,
                _ => {}
            }
        }
        plan
    }
}

/// An upstream that answers every request with the request it received: body
/// `ECHO\n` + the raw request head + `\nBODY <length>`.
pub fn start_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = echo_one(conn);
            });
        }
    });
    port
}

fn echo_one(conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" {
            break;
        }
    }
    let parsed = parse_head(&head[..head.len() - 2]);
    let length: usize = parsed
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let plan = EchoPlan::from_headers(parsed.headers.iter().map(|(n, v)| (n.as_str(), &v[..])));
    if plan.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(plan.delay_ms));
    }
    let mut out = b"ECHO\n".to_vec();
    out.extend_from_slice(&head[..head.len() - 2]);
    out.extend_from_slice(format!("\nBODY {length}").as_bytes());
    let head_only = parsed.first_line.starts_with(b"HEAD ");
    // The head also travels in a header, so that an answer to HEAD shows it too.
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    let mut resp = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nX-Echo-Head: {hex}\r\n",
        plan.status,
        plan.content_type,
        out.len()
    );
    for (n, v) in &plan.headers {
        resp.push_str(&format!("{n}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    let mut w = conn;
    w.write_all(resp.as_bytes())?;
    if !head_only {
        w.write_all(&out)?;
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub first_line: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A message head without its final CRLF CRLF.
pub fn parse_head(raw: &[u8]) -> Head {
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first_line = lines.next().unwrap_or_default().to_vec();
    let headers = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let c = l.iter().position(|&b| b == b':').unwrap_or(l.len());
            let v = l.get(c + 1..).unwrap_or_default();
            let v = v.strip_prefix(b" ").unwrap_or(v);
            (String::from_utf8_lossy(&l[..c]).into_owned(), v.to_vec())
        })
        .collect();
    Head {
        first_line,
        headers,
    }
}

/// One request of a case: `METHOD TARGET` then `| Name: value` header lines. A
/// `Content-Length` header makes the client send that many bytes of body.
#[derive(Debug, Clone)]
pub struct Spec {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Spec {
    pub fn parse(s: &str) -> Spec {
        let mut parts = s.split(" | ");
        let first = parts.next().unwrap();
        let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
        let mut headers: Vec<(String, String)> = parts
            .map(|h| {
                let (n, v) = h.split_once(": ").expect("header as Name: value");
                (n.to_owned(), v.to_owned())
            })
            .collect();
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            headers.insert(0, ("Host".into(), "localhost".into()));
        }
        Spec {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
        }
    }

    pub fn body_len(&self) -> usize {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }
}

/// What came back from nginx.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The connection closed without a byte (`return 444`).
    pub closed: bool,
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

pub fn send(port: u16, spec: &Spec) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{} {} HTTP/1.0\r\n", spec.method, spec.target).into_bytes();
    for (n, v) in &spec.headers {
        req.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req.extend(std::iter::repeat_n(b'x', spec.body_len()));
    // nginx may answer (413) and close before reading the body; what it said still counts.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    if raw.is_empty() {
        return Reply {
            closed: true,
            status: 0,
            headers: Vec::new(),
            body: Vec::new(),
        };
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = parse_head(&raw[..split]);
    let status = std::str::from_utf8(&head.first_line[9..12])
        .unwrap()
        .parse()
        .unwrap();
    Reply {
        closed: false,
        status,
        headers: head.headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// `Date` as nginx wrote it, in seconds since the epoch (for `expires`).
pub fn parse_http_date(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    // "Tue, 14 Nov 2023 22:13:20 GMT"
    let mut it = s.split([' ', ':', ',']).filter(|p| !p.is_empty());
    let _wd = it.next()?;
    let d: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?;
    let y: i64 = it.next()?.parse().ok()?;
    let (hh, mm, ss): (i64, i64, i64) = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    const M: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = M.iter().position(|x| *x == mon)? as i64 + 1;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86400 + hh * 3600 + mm * 60 + ss)
}
