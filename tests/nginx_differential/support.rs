//! One nginx for every group, an echo upstream whose answer the request chooses
//! (`X-Echo-Status`, `X-Echo-Location`, `X-Echo-Delay-Ms`), a document root, and a raw
//! HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use std::time::Duration;

/// The `http` block of one nginx with a `server` per `(http-level text, server body)`, the
/// `i`th listening on `ports[i]` (`{{PORT}}` in the http-level text: a catch-all server
/// beside it).
pub fn servers_http(servers: &[(String, String)], ports: &[u16]) -> String {
    let mut http = String::new();
    for ((h, body), port) in servers.iter().zip(ports) {
        http.push_str(&h.replace("{{PORT}}", &port.to_string()));
        http.push_str(&format!(
            "\nserver {{ listen 127.0.0.1:{port}; server_name localhost;\n{body}\n}}\n"
        ));
    }
    http
}

/// Files for the static groups.
pub fn doc_root(dir: &Path) -> PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("files")).unwrap();
    // 12,345 bytes: "12K" without exact sizes.
    std::fs::write(www.join("files/big.bin"), vec![b'x'; 12_345]).unwrap();
    for (name, text) in [
        ("index.html", "<h1>index</h1>\n"),
        (
            "app.js",
            "console.log('a fairly long line of javascript to be compressed');\n",
        ),
        ("assets/logo.png", "PNG"),
        ("404.html", "custom not found\n"),
        ("50x.html", "custom upstream error\n"),
        ("spa/index.html", "<div id=app></div>\n"),
        // For `autoindex`: names to escape, to cut (by bytes, and by characters under
        // `charset utf-8`), a hidden one, sizes for `autoindex_exact_size off`.
        ("files/a b.txt", "a b\n"),
        ("files/x&y\"<q>.html", "x\n"),
        ("files/sub/inner.txt", "inner\n"),
        ("files/客户资料.txt", "客户\n"),
        (
            "files/a-very-long-file-name-that-nginx-cuts-at-fifty-characters.txt",
            "long\n",
        ),
        (
            "files/客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料客户资料.txt",
            "long\n",
        ),
        ("files/.hidden", "hidden\n"),
        ("files/colon:name.txt", "c\n"),
        ("files/empty/.keep", ""),
        // For `gzip_static`: a file with its `.gz` (not checked by nginx: any bytes), one
        // without.
        ("gz/app.js", "plain\n"),
        ("gz/app.js.gz", "\u{1f}\u{8b} compressed ahead of time"),
        ("gz/only.css", "plain css\n"),
        // Only the `.gz` (a build that deleted its originals).
        ("gz/gz-only.js.gz", "\u{1f}\u{8b} only compressed"),
    ] {
        let p = www.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    // For `if_modified_since`: a file of a known time, 2001-09-09 01:46:40 UTC.
    let known = www.join("ims/app.js");
    std::fs::create_dir_all(known.parent().unwrap()).unwrap();
    std::fs::write(&known, "known time\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&known)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    www
}

/// An upstream that answers with the request head it received (body `ECHO\n` + head), with
/// the status, `Location`, `Content-Type`, delay and further header lines (`X-Echo-Header:
/// Name: value`) the request's `X-Echo-*` headers ask for.
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
    let text = String::from_utf8_lossy(&head).into_owned();
    let header = |name: &str| {
        text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    if let Some(ms) = header("x-echo-delay-ms").and_then(|v| v.parse().ok()) {
        // The behaviour under test: a slow upstream, as the case asks.
        std::thread::sleep(Duration::from_millis(ms));
    }
    let status: u16 = header("x-echo-status")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut out = b"ECHO\n".to_vec();
    out.extend_from_slice(&head[..head.len() - 2]);
    let content_type = header("x-echo-content-type").unwrap_or_else(|| "text/plain".into());
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        out.len()
    );
    if let Some(l) = header("x-echo-location") {
        resp.push_str(&format!("Location: {l}\r\n"));
    }
    // Each `X-Echo-Set-Cookie` asked for becomes a Set-Cookie, in order.
    for l in text.lines() {
        if let Some((n, v)) = l.split_once(':') {
            if n.eq_ignore_ascii_case("x-echo-set-cookie") {
                resp.push_str(&format!("Set-Cookie: {}\r\n", v.trim()));
            }
            // `X-Echo-Header: Name: value` becomes that header line.
            if n.eq_ignore_ascii_case("x-echo-header") {
                resp.push_str(&format!("{}\r\n", v.trim()));
            }
        }
    }
    resp.push_str("\r\n");
    let mut w = conn;
    w.write_all(resp.as_bytes())?;
    if !text.starts_with("HEAD ") {
        w.write_all(&out)?;
    }
    Ok(())
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub closed: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `METHOD TARGET | Name: value | ...` sent as HTTP/1.1 with `Connection: close`; a
/// `Content-Length` header sends that many bytes.
pub fn send(port: u16, spec: &str) -> Reply {
    let mut parts = spec.split(" | ");
    let first = parts.next().unwrap();
    let (method, target) = first.split_once(' ').unwrap();
    // "GET /x HTTP/1.0": a request of that version (else HTTP/1.1).
    let (target, version) = target
        .strip_suffix(" HTTP/1.0")
        .map_or((target, "HTTP/1.1"), |t| (t, "HTTP/1.0"));
    let mut headers: Vec<(String, String)> = parts
        .map(|h| {
            let (n, v) = h.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        headers.insert(0, ("Host".into(), "localhost".into()));
    }
    let body_len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut req = format!("{method} {target} {version}\r\n").into_bytes();
    for (n, v) in &headers {
        req.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req.extend(std::iter::repeat_n(b'x', body_len));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
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
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        closed: false,
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < eol + 2 + size {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 4 + size).min(b.len())..];
    }
}

/// Response headers that are not the configuration's doing.
const IGNORED: &[&str] = &[
    "server",
    "date",
    "content-type",
    "content-length",
    "connection",
    "transfer-encoding",
    "x-request-id",
    "last-modified",
    "etag",
    "vary",
    "location",
    "keep-alive",
    "x-content-type-options",
];

#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub closed: bool,
    pub status: u16,
    pub location: Option<String>,
    pub headers: Vec<String>,
    pub body: Option<String>,
    pub upstream: Option<Vec<String>>,
    /// `Content-Type` when it carries a charset label: the types of files and pages are the
    /// gateway's own where the nginx file writes none, the label is `charset`'s doing.
    pub content_type: Option<String>,
}

pub fn seen(r: &Reply, port: u16, up_headers: &[&str]) -> Seen {
    // `return 301;` sends an empty Location, which is not the same as none.
    let location = r.header("location").map(|l| {
        l.replace(&format!(":{port}/"), ":PORT/")
            .replace(&format!(":{port}?"), ":PORT?")
    });
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| !IGNORED.contains(&n.to_ascii_lowercase().as_str()))
        .map(|(n, v)| {
            let fixed = [
                "Thu, 01 Jan 1970 00:00:01 GMT",
                "Thu, 31 Dec 2037 23:55:55 GMT",
            ];
            let v = if n.eq_ignore_ascii_case("expires") && !fixed.contains(&v.as_str()) {
                "<a date>".to_owned()
            } else {
                v.clone()
            };
            format!("{}: {v}", n.to_ascii_lowercase())
        })
        .collect();
    headers.sort();
    let gzipped = r.header("content-encoding").is_some();
    let (body, upstream) = match r.body.strip_prefix(b"ECHO\n") {
        Some(head) => {
            let head = String::from_utf8_lossy(head);
            let mut lines = head.lines();
            let request_line = lines.next().unwrap_or_default();
            // The engine speaks HTTP/1.1 to every upstream; the version is not compared.
            let mut out = vec![request_line
                .rsplit_once(' ')
                .map_or(request_line, |(l, _)| l)
                .to_owned()];
            let all: Vec<(String, String)> = lines
                .filter_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    Some((n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            for want in up_headers {
                let values: Vec<&str> = all
                    .iter()
                    .filter(|(n, _)| n == want)
                    .map(|(_, v)| v.as_str())
                    .collect();
                out.push(format!("{want}: {}", values.join(" | ")));
            }
            (None, Some(out))
        }
        None if gzipped => (None, None),
        None => {
            let text = String::from_utf8_lossy(&r.body).into_owned();
            // nginx's pages end with its own tail line; the gateway's with its own.
            let text = match text.find("<hr><center>") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            (Some(text), None)
        }
    };
    Seen {
        closed: r.closed,
        status: r.status,
        location,
        headers,
        body,
        upstream,
        content_type: r
            .header("content-type")
            .filter(|t| t.to_ascii_lowercase().contains("charset"))
            .map(str::to_owned),
    }
}

pub fn fill(s: &str, root: &std::path::Path, up: u16) -> String {
    s.replace("{{ROOT}}", &root.display().to_string())
        .replace("{{UP}}", &format!("127.0.0.1:{up}"))
        .replace("{{DEAD}}", "127.0.0.1:1")
}
