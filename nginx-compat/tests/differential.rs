//! The same configuration and requests against the real nginx and against the crate, byte for
//! byte: status, `Location`, a closed connection (444), the headers `add_header`/`expires`
//! set, the bodies of answers nginx makes itself (its pages, `return` texts, files), the
//! `Content-Type` of `return` answers and files where the configuration has `types` or
//! `default_type`, and for a proxied request the exact request line and header lines the
//! upstream received.
//!
//! One nginx process serves every group on its own port. Proxied requests reach a real echo
//! upstream (`{{UP}}` in a group) that answers with the request it got; `{{DEAD}}` is an
//! address nothing listens on (502). Static groups serve real files under `{{ROOT}}`. The
//! crate's side is the crate's own answers to the same requests: [`Server::handle`], then
//! for a proxied request what the echo upstream does, [`Server::upstream_answered`] /
//! [`Server::upstream_failed`], [`Server::proxy_redirect`] and [`Server::response_headers`],
//! exactly what the gateway calls.

#[path = "differential/harness.rs"]
mod harness;

use std::path::Path;

use harness::{EchoPlan, Reply, Spec, DEAD, NGINX_TAIL};
use nginx_compat::eval::{http_date, HeaderMode};
use nginx_compat::{special_page, Action, Body, Config, FileKind, FileSystem, Request, Server};

pub struct Group {
    pub name: &'static str,
    /// Directives of the `http` level (`map`).
    pub http: &'static str,
    pub body: &'static str,
    pub requests: &'static [&'static str],
}

impl Group {
    const fn new(
        name: &'static str,
        body: &'static str,
        requests: &'static [&'static str],
    ) -> Self {
        Group {
            name,
            http: "",
            body,
            requests,
        }
    }
}

#[path = "differential/cases.rs"]
mod cases;
#[path = "differential/cases_proxy.rs"]
mod cases_proxy;
#[path = "differential/cases_static.rs"]
mod cases_static;

/// The real disk, as nginx sees it.
struct Disk;

impl FileSystem for Disk {
    fn kind(&self, path: &[u8]) -> FileKind {
        use std::os::unix::ffi::OsStrExt;
        match std::fs::metadata(std::ffi::OsStr::from_bytes(path)) {
            Ok(m) if m.is_dir() => FileKind::Dir,
            Ok(_) => FileKind::File,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => FileKind::Denied,
            Err(_) => FileKind::Missing,
        }
    }
}

/// What a reply is compared on.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    closed: bool,
    status: u16,
    location: Option<String>,
    /// Headers other than the ones nginx or the upstream always send, sorted.
    headers: Vec<String>,
    /// The body of an answer made without an upstream; `None` for proxied ones.
    body: Option<String>,
    /// `Content-Type`, compared only where the crate gives one (`Server::content_type` of a
    /// `return` answer or a file, under a configuration that wrote `types` or
    /// `default_type`).
    content_type: Option<String>,
    /// The upstream request line and header lines.
    upstream: Option<Vec<String>>,
}

impl Seen {
    /// A connection closed without an answer (`return 444`).
    fn closed() -> Seen {
        Seen {
            closed: true,
            status: 0,
            location: None,
            headers: Vec::new(),
            body: None,
            content_type: None,
            upstream: None,
        }
    }
}

/// Headers that are not the configuration's doing (or are compared elsewhere).
const IGNORED: &[&str] = &[
    "server",
    "date",
    "content-type",
    "content-length",
    "connection",
    "location",
    "accept-ranges",
    "last-modified",
    "etag",
    "transfer-encoding",
    "x-echo-head",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn other_headers<'a>(h: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<String> {
    let mut out: Vec<String> = h
        .filter(|(n, _)| !IGNORED.contains(&n.to_ascii_lowercase().as_str()))
        .map(|(n, v)| format!("{}: {}", n.to_ascii_lowercase(), text(v)))
        .collect();
    out.sort();
    out
}

/// nginx's reply, with the echo body read back into the request the upstream got.
fn seen_from_nginx(r: &Reply) -> Seen {
    if r.closed {
        return Seen::closed();
    }
    let from_header: Option<Vec<u8>> = r.header("x-echo-head").map(|h| {
        (0..h.len() / 2)
            .map(|i| {
                u8::from_str_radix(std::str::from_utf8(&h[2 * i..2 * i + 2]).unwrap(), 16).unwrap()
            })
            .collect()
    });
    let echoed = from_header.as_deref().or(Some(&r.body[..]));
    let (body, upstream) = match echoed.and_then(|b| b.strip_prefix(b"ECHO\n")) {
        Some(echo) => {
            let end = echo
                .windows(6)
                .rposition(|w| w == b"\nBODY ")
                .unwrap_or(echo.len());
            let head = harness::parse_head(&echo[..end]);
            let mut lines = vec![text(&head.first_line)];
            lines.extend(
                head.headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", text(v))),
            );
            (None, Some(lines))
        }
        None => (Some(text(&r.body)), None),
    };
    Seen {
        closed: false,
        status: r.status,
        location: r.header("location").map(text),
        headers: other_headers(r.headers.iter().map(|(n, v)| (n.as_str(), &v[..]))),
        body,
        content_type: r.header("content-type").map(text),
        upstream,
    }
}

/// The crate's answer to the same request, following the upstream's behaviour.
fn seen_from_crate(server: &Server, req: &Request, now: i64) -> (Seen, String) {
    let mut action = server.handle(req, &Disk);
    let mut trace = format!("{action:?}");
    let head_only = req.method == "HEAD";
    for _ in 0..4 {
        // The last: the type nginx's charset filter labels, and whether it is a proxied one.
        let (
            status,
            location,
            body,
            mut headers,
            upstream,
            state,
            last_modified,
            content_type,
            typed,
        ) = match &action {
            Action::Close => return (Seen::closed(), trace),
            Action::Respond(r) => {
                let body = match &r.body {
                    Body::Text(t) => t.clone(),
                    Body::Empty => Vec::new(),
                    Body::Page => special_page(r.status)
                        .map(|p| format!("{p}{NGINX_TAIL}").into_bytes())
                        .unwrap_or_default(),
                };
                let body = if head_only || r.status == 204 || r.status == 304 {
                    Vec::new()
                } else {
                    body
                };
                // nginx's own pages are text/html; a `return` goes through
                // ngx_http_send_response, which sets the type of the URI.
                let content_type = match r.body {
                    Body::Page => None,
                    _ if r.status == 204 => None,
                    Body::Text(_) | Body::Empty => server.content_type(&r.state),
                };
                let typed = match r.body {
                    Body::Page => special_page(r.status).map(|_| "text/html".to_owned()),
                    Body::Text(_) | Body::Empty if r.status != 204 => Some(
                        server
                            .settings_for(&r.state)
                            .content_type_of_exten(&r.state.exten)
                            .to_owned(),
                    ),
                    Body::Text(_) | Body::Empty => None,
                };
                (
                    r.status,
                    r.location.clone(),
                    Some(text(&body)),
                    Vec::new(),
                    None,
                    r.state.clone(),
                    None,
                    content_type.map(str::to_owned),
                    typed.map(|t| (t, false)),
                )
            }
            Action::File(f) => {
                use std::os::unix::ffi::OsStrExt;
                let path = std::ffi::OsStr::from_bytes(&f.path);
                let body = if head_only {
                    Vec::new()
                } else {
                    std::fs::read(path).unwrap()
                };
                let mtime = std::fs::metadata(path)
                    .unwrap()
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                (
                    f.status,
                    f.state.location.clone(),
                    Some(text(&body)),
                    Vec::new(),
                    None,
                    f.state.clone(),
                    Some(mtime),
                    server.content_type(&f.state).map(str::to_owned),
                    Some((
                        server
                            .settings_for(&f.state)
                            .content_type_of_exten(&f.state.exten)
                            .to_owned(),
                        false,
                    )),
                )
            }
            Action::Proxy(p) => {
                let plan =
                    EchoPlan::from_headers(p.headers.iter().map(|(n, v)| (n.as_str(), &v[..])));
                let settings = server.settings(&p.state.loc);
                let failed = if p.authority == DEAD {
                    Some(502)
                } else if plan.delay_ms as u128 > settings.proxy.read_timeout.as_millis() {
                    Some(504)
                } else {
                    None
                };
                if let Some(code) = failed {
                    action = server.upstream_failed(req, p, code, &Disk);
                    trace.push_str(&format!(" -> upstream {code} -> {action:?}"));
                    continue;
                }
                if let Some(a) = server.upstream_answered(req, p, plan.status, &Disk) {
                    action = a;
                    trace.push_str(&format!(
                        " -> upstream {} intercepted -> {action:?}",
                        plan.status
                    ));
                    continue;
                }
                let version = match settings.proxy.http_version {
                    nginx_compat::parse::model::HttpVersion::V10 => "HTTP/1.0",
                    nginx_compat::parse::model::HttpVersion::V11 => "HTTP/1.1",
                };
                let mut lines = vec![format!("{} {} {version}", p.method, text(&p.target))];
                lines.extend(p.headers.iter().map(|(n, v)| format!("{n}: {}", text(v))));
                let mut location = None;
                let mut upstream_headers = Vec::new();
                let mut last_modified = None;
                for (n, v) in &plan.headers {
                    if n == "Location" {
                        location = Some(
                            server
                                .proxy_redirect(req, p, v.as_bytes())
                                .unwrap_or_else(|| v.as_bytes().to_vec()),
                        );
                        continue;
                    }
                    if n == "Last-Modified" {
                        last_modified = harness::parse_http_date(v.as_bytes());
                    }
                    upstream_headers.push((n.clone(), v.as_bytes().to_vec()));
                }
                (
                    p.status.unwrap_or(plan.status),
                    location,
                    None,
                    upstream_headers,
                    Some(lines),
                    p.state.clone(),
                    last_modified,
                    None,
                    Some((plan.content_type.clone(), true)),
                )
            }
        };
        // Where a `charset` applies, the whole `Content-Type` is compared, proxied or not.
        let content_type = match typed {
            Some((t, upstream)) if server.settings_for(&state).charset.is_some() => Some(
                server
                    .charset_content_type(&state, status, t.as_bytes(), upstream)
                    .map_or(t, |v| text(&v)),
            ),
            _ => content_type,
        };
        for edit in server.response_headers(
            req,
            &state,
            status,
            last_modified,
            now,
            &nginx_compat::vars::NoAnswer,
        ) {
            if edit.mode == HeaderMode::Replace {
                headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&edit.name));
                if edit.value.is_empty() {
                    continue;
                }
            }
            headers.push((edit.name, edit.value));
        }
        let seen = Seen {
            closed: false,
            status,
            location: location.map(|l| text(&l)),
            headers: other_headers(headers.iter().map(|(n, v)| (n.as_str(), &v[..]))),
            body,
            content_type,
            upstream,
        };
        return (seen, trace);
    }
    panic!("too many upstream hops: {trace}");
}

fn fill(s: &str, root: &Path, up: u16) -> String {
    s.replace("{{ROOT}}", &root.display().to_string())
        .replace("{{UP}}", &format!("127.0.0.1:{up}"))
        .replace("{{DEAD}}", DEAD)
}

#[test]
fn crate_matches_nginx() {
    let groups: Vec<&Group> = cases::GROUPS
        .iter()
        .chain(cases_proxy::GROUPS)
        .chain(cases_static::GROUPS)
        .collect();
    let scratch = harness::scratch_dir("crate");
    let dir = &scratch.0;
    // `{{ROOT}}/www` is the document root.
    harness::make_doc_root(dir);
    let root = dir.clone();
    let up = harness::start_echo();
    let bodies: Vec<(String, String)> = groups
        .iter()
        .map(|g| {
            // A root that does not exist, unless the group sets its own at server level.
            let default_root = if g.body.trim_start().starts_with("root ") {
                String::new()
            } else {
                format!("root {}/none;\n", root.display())
            };
            (
                fill(g.http, &root, up),
                format!("{default_root}{}", fill(g.body, &root, up)),
            )
        })
        .collect();
    let (_nginx, ports) = harness::start_nginx(dir, &bodies);

    let mut total = 0;
    let mut failures = Vec::new();
    // What the corpus exercised, so that it cannot pass by everything being a 404.
    let (mut files, mut proxied, mut closed, mut pages, mut typed) = (0, 0, 0, 0, 0);
    for ((g, port), (http, body)) in groups.iter().zip(&ports).zip(&bodies) {
        let conf = format!("{http}\nserver {{ listen 80; server_name localhost;\n{body}\n}}");
        // `include` names real files, as nginx reads them (`/etc/nginx/mime.types`).
        let cfg = Config::parse_with("case.conf", &conf, &mut |p: &str| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?;
            Ok(vec![(p.to_owned(), text)])
        })
        .unwrap_or_else(|e| panic!("group {}: {e}", g.name));
        assert!(
            cfg.unsupported.is_empty(),
            "group {}: {:?}",
            g.name,
            cfg.unsupported
        );
        let server = &cfg.servers[0];
        for spec_text in g.requests {
            total += 1;
            let spec = Spec::parse(&fill(spec_text, &root, up));
            let reply = harness::send(*port, &spec);
            let now = reply
                .header("date")
                .and_then(harness::parse_http_date)
                .unwrap_or(0);
            let req = Request {
                method: spec.method.clone(),
                uri: spec.target.as_bytes().to_vec(),
                http_version: nginx_compat::gzip::HTTP_11,
                scheme: "http".into(),
                port: *port,
                headers: spec
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
                    .collect(),
                remote_addr: "127.0.0.1".into(),
                remote_port: None,
                started: None,
                local_addr: "127.0.0.1".into(),
                request_id: String::new(),
                maps: Default::default(),
            };
            let mut want = seen_from_nginx(&reply);
            let (got, trace) = seen_from_crate(server, &req, now);
            if got.content_type.is_none() {
                want.content_type = None;
            }
            typed += usize::from(got.content_type.is_some());
            files += usize::from(trace.starts_with("File"));
            proxied += usize::from(want.upstream.is_some());
            closed += usize::from(want.closed);
            pages += usize::from(
                want.body
                    .as_deref()
                    .is_some_and(|b| b.contains("<center><h1>")),
            );
            if want != got {
                failures.push(format!(
                    "[{}] {spec_text}\n  config: {}\n  nginx: {want:?}\n  crate: {got:?}\n  trace: {trace}\n  (nginx's Date: {})",
                    g.name,
                    g.body.split_whitespace().collect::<Vec<_>>().join(" "),
                    http_date(now),
                ));
            }
        }
    }
    assert!(total >= 400, "only {total} cases");
    assert!(
        files >= 25 && proxied >= 100 && closed >= 3 && pages >= 50 && typed >= 20,
        "the corpus lost its variety: {files} files, {proxied} proxied, {closed} closed, \
         {pages} pages, {typed} content types"
    );
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} cases identical ({files} files, {proxied} proxied, {closed} closed, {pages} nginx pages, {typed} content types)");
}
