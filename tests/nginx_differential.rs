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
use support::{fill, seen};

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

#[test]
fn gateway_answers_like_nginx() {
    let dir = TempDir::new("ngx-gw-diff");
    // `{{ROOT}}/www` is the document root.
    support::doc_root(dir.path());
    let root = dir.path().to_path_buf();
    let up = support::start_echo();
    let groups = cases::GROUPS;
    let servers: Vec<(String, String)> = groups
        .iter()
        .map(|g| (fill(g.http, &root, up), fill(g.body, &root, up)))
        .collect();
    let (_nginx, ports) = common::nginx::start(&dir.path().join("nginx"), groups.len(), |ports| {
        support::servers_http(&servers, ports)
    });

    let mut total = 0;
    let mut failures = Vec::new();
    // What the corpus exercised, so that it cannot pass by everything being a 404.
    let (mut files, mut proxied, mut gzipped) = (0, 0, 0);
    for ((g, nginx_port), (http, body)) in groups.iter().zip(&ports).zip(&servers) {
        let rules = match g.toml {
            Some(t) => t.to_owned(),
            None => {
                let path = dir.path().join(format!("{}.conf", g.name));
                let text = if http.contains("server {") {
                    // Another server block beside the site (nginx's catch-all, one that only
                    // redirects its names): the file holds both, that one first.
                    let catch_all = http.replace("{{PORT}}", "80");
                    format!(
                        "{catch_all}\nserver {{ listen 80; server_name localhost;\n{body}\n}}\n"
                    )
                } else {
                    format!("{http}\nserver_name localhost;\n{body}\n")
                };
                std::fs::write(&path, text).unwrap();
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

#[test]
fn an_nginx_whose_port_another_process_holds_is_started_again_on_another() {
    // The case the retry is for: a port picked free and then taken before nginx binds it.
    // Until nginx has bound its listeners, an answer on the port is the other process's.
    let dir = TempDir::new("ngx-taken");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let http = format!("server {{ listen 127.0.0.1:{port}; return 204; }}");
    let e = common::nginx::try_start(dir.path(), &http, &[port])
        .err()
        .expect("nginx cannot listen where another process does");
    assert!(e.contains("Address already in use"), "{e}");

    let first = std::cell::Cell::new(Some(port));
    let (_nginx, ports) = common::nginx::start(dir.path(), 1, |ports| {
        // The first pick is the taken port; the next is a free one.
        let p = first.take().unwrap_or(ports[0]);
        format!("server {{ listen 127.0.0.1:{p}; return 204; }}")
    });
    assert_ne!(ports[0], port);
    assert_eq!(support::send(ports[0], "GET /").status, 204);
}
