//! The gateway, not just the crate, answers like nginx: the same rules are given to a real
//! nginx (Debian's, one process serving every group on its own loopback port) and to the
//! gateway (as an `[nginx] include`, or as `[[rewrite]]` tables), both proxy to the same echo
//! upstream, and what a client and the upstream see must be the same: status, a closed
//! connection, Location (each server's own port written as PORT), the headers `add_header`,
//! `expires` and `gzip` set, the body of an answer made without the upstream (nginx's pages
//! compared up to their tail line, which is the gateway's own), and the request target and
//! the headers the nginx file decides at the upstream. Any difference fails with the case.

#[path = "nginx_differential/cases.rs"]
mod cases;
mod common;
#[path = "nginx_differential/support.rs"]
mod support;

use common::{Gateway, TempDir};
use support::Reply;

pub struct Group {
    pub name: &'static str,
    /// `http`-level directives (`map`).
    pub http: &'static str,
    /// The server body; `{{UP}}` is the echo upstream, `{{DEAD}}` an address nothing listens
    /// on, `{{ROOT}}` the directory with the test files.
    pub body: &'static str,
    /// When set, the gateway gets these TOML tables instead of the body as an include.
    pub toml: Option<&'static str>,
    /// Upstream request headers compared (lower-case), besides the request line.
    pub up_headers: &'static [&'static str],
    pub requests: &'static [&'static str],
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
    "accept-ranges",
    "vary",
    "location",
    "keep-alive",
    "x-content-type-options",
];

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    closed: bool,
    status: u16,
    location: String,
    headers: Vec<String>,
    body: Option<String>,
    upstream: Option<Vec<String>>,
}

fn seen(r: &Reply, port: u16, up_headers: &[&str]) -> Seen {
    let location = r
        .header("location")
        .unwrap_or("")
        .replace(&format!(":{port}/"), ":PORT/")
        .replace(&format!(":{port}?"), ":PORT?");
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
    }
}

fn fill(s: &str, root: &std::path::Path, up: u16) -> String {
    s.replace("{{ROOT}}", &root.display().to_string())
        .replace("{{UP}}", &format!("127.0.0.1:{up}"))
        .replace("{{DEAD}}", "127.0.0.1:1")
}

#[test]
fn gateway_answers_like_nginx() {
    let dir = TempDir::new("ngx-gw-diff");
    // `{{ROOT}}/www` is the document root.
    support::doc_root(dir.path());
    let root = dir.path().to_path_buf();
    let up = support::start_echo();
    let groups = cases::GROUPS;
    let ports = support::free_ports(groups.len());
    let servers: Vec<(u16, String, String)> = groups
        .iter()
        .zip(&ports)
        .map(|(g, p)| (*p, fill(g.http, &root, up), fill(g.body, &root, up)))
        .collect();
    let _nginx = support::start_nginx(&dir.path().join("nginx"), &servers);

    let mut total = 0;
    let mut failures = Vec::new();
    // What the corpus exercised, so that it cannot pass by everything being a 404.
    let (mut files, mut proxied, mut gzipped) = (0, 0, 0);
    for ((g, nginx_port), (_, http, body)) in groups.iter().zip(&ports).zip(&servers) {
        let rules = match g.toml {
            Some(t) => t.to_owned(),
            None => {
                let path = dir.path().join(format!("{}.conf", g.name));
                std::fs::write(&path, format!("{http}\nserver_name localhost;\n{body}\n")).unwrap();
                format!("[nginx]\ninclude = [\"{}\"]\n", path.display())
            }
        };
        let gw = Gateway::start(&format!(
            "[upstreams.up]\nurl = \"http://127.0.0.1:{up}\"\n\
             [upstreams.dead]\nurl = \"http://127.0.0.1:1\"\n{rules}"
        ));
        for spec in g.requests {
            total += 1;
            let spec = fill(spec, &root, up);
            let want = seen(
                &support::send(*nginx_port, &spec),
                *nginx_port,
                g.up_headers,
            );
            let got = seen(&support::send(gw.port, &spec), gw.port, g.up_headers);
            proxied += usize::from(want.upstream.is_some());
            gzipped += usize::from(want.headers.iter().any(|h| h == "content-encoding: gzip"));
            files += usize::from(
                want.status == 200
                    && want
                        .body
                        .as_deref()
                        .is_some_and(|b| b.contains("index") || b.contains("console")),
            );
            if want != got {
                failures.push(format!(
                    "[{}] {spec}\n  nginx:   {want:?}\n  gateway: {got:?}",
                    g.name
                ));
            }
        }
    }
    assert!(total >= 100, "only {total} cases");
    assert!(
        files >= 3 && proxied >= 40 && gzipped >= 2,
        "the corpus lost its variety: {files} files, {proxied} proxied, {gzipped} gzipped"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} cases identical ({files} files, {proxied} proxied, {gzipped} gzipped)");
}
