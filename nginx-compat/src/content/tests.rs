//! One line per request and expected answer, in the manner of nginx-tests http_try_files.t,
//! http_index.t and http_location.t (static part); the file system is a list of paths.

use super::{Content, FileKind, FileSystem};
use crate::{Config, Outcome, Request};

/// Files end without '/', directories are listed with a trailing '/'.
struct Tree(&'static [&'static str]);

impl FileSystem for Tree {
    fn kind(&self, path: &[u8]) -> FileKind {
        let p = std::str::from_utf8(path).unwrap();
        let bare = p.trim_end_matches('/');
        if self.0.iter().any(|f| *f == bare) && !p.ends_with('/') {
            return FileKind::File;
        }
        if self
            .0
            .iter()
            .any(|f| f.trim_end_matches('/') == bare && f.ends_with('/'))
        {
            return FileKind::Dir;
        }
        FileKind::Missing
    }
}

const SPA: Tree = Tree(&[
    "/srv/spa/",
    "/srv/spa/index.html",
    "/srv/spa/app.js",
    "/srv/spa/assets/",
    "/srv/spa/assets/logo.png",
    "/srv/spa/empty/",
    "/srv/spa/docs/",
    "/srv/spa/docs/index.htm",
    "/srv/alias/",
    "/srv/alias/x.txt",
]);

fn resolve(body: &str, uri: &str) -> Content {
    let cfg = Config::parse(
        "t.conf",
        &format!("server {{ server_name localhost; {body} }}"),
    )
    .unwrap();
    let server = &cfg.servers[0];
    let req = Request::get(uri, "localhost");
    server.resolve(&req, server.evaluate(&req), &SPA)
}

fn file(path: &str) -> Content {
    Content::File {
        path: path.as_bytes().to_vec(),
        root: Vec::new(),
        uri: Vec::new(),
    }
}

/// Compare ignoring the root and URI of a file answer (checked separately).
fn same(a: &Content, b: &Content) -> bool {
    match (a, b) {
        (Content::File { path: p, .. }, Content::File { path: q, .. }) => p == q,
        _ => a == b,
    }
}

const SEED004: &str = "location / { root /srv/spa; index index.html index.htm; \
    try_files $uri $uri/ /index.html; rewrite ^/login(.*) /#/login permanent; }";

#[test]
fn try_files_like_http_try_files_t() {
    let redirect = |l: &str| {
        Content::Outcome(Outcome::Redirect {
            status: 301,
            location: l.as_bytes().to_vec(),
        })
    };
    let cases: &[(&str, &str, Content)] = &[
        (SEED004, "/app.js", file("/srv/spa/app.js")),
        (SEED004, "/deep/link", file("/srv/spa/index.html")),
        (SEED004, "/deep/link?x=1", file("/srv/spa/index.html")),
        (SEED004, "/", file("/srv/spa/index.html")),
        // `$uri/` matches a directory without an index file: nginx's well-known 403.
        (SEED004, "/assets", Content::Forbidden),
        (SEED004, "/assets/", Content::Forbidden),
        (SEED004, "/docs/", file("/srv/spa/docs/index.htm")),
        (
            SEED004,
            "/assets/logo.png",
            file("/srv/spa/assets/logo.png"),
        ),
        (SEED004, "/login", redirect("http://localhost/#/login")),
        (
            "location / { root /srv/spa; try_files $uri =404; }",
            "/nope",
            Content::NotFound,
        ),
        (
            "location / { root /srv/spa; try_files $uri $uri/ =403; }",
            "/nope",
            Content::Outcome(Outcome::Return {
                status: 403,
                body: None,
            }),
        ),
        (
            "location / { root /srv/spa; }",
            "/assets",
            redirect("http://localhost/assets/"),
        ),
        (
            "location / { root /srv/spa; }",
            "/assets?a=b",
            redirect("http://localhost/assets/?a=b"),
        ),
        (
            "location / { root /srv/spa; }",
            "/empty/",
            Content::Forbidden,
        ),
        ("location / { root /srv/spa; }", "/gone/", Content::NotFound),
        ("location / { root /srv/spa; }", "/gone", Content::NotFound),
        (
            "location /files/ { alias /srv/alias/; } location / { return 404; }",
            "/files/x.txt",
            file("/srv/alias/x.txt"),
        ),
        (
            "location / { root /srv/spa; try_files $uri /index.html?from=tf; }",
            "/a",
            file("/srv/spa/index.html"),
        ),
        (
            "location / { root /srv/spa; try_files $uri /loop; }",
            "/a",
            Content::Outcome(Outcome::InternalError(
                "rewrite or internal redirection cycle".into(),
            )),
        ),
        (
            "location / { root /srv/spa; } location /api/ { proxy_pass http://crm; }",
            "/api/x",
            Content::Outcome(Outcome::Proxy {
                location: vec![1],
                uri: b"/api/x".to_vec(),
                args: Vec::new(),
                target: "http://crm".into(),
            }),
        ),
    ];
    for (body, uri, want) in cases {
        let got = resolve(body, uri);
        assert!(
            same(&got, want),
            "{body}\n  GET {uri}: got {got:?}, want {want:?}"
        );
    }
}

#[test]
fn file_answers_name_their_document_root() {
    match resolve(SEED004, "/deep/link") {
        Content::File { root, uri, .. } => {
            assert_eq!(root, b"/srv/spa");
            assert_eq!(uri, b"/index.html");
        }
        other => panic!("{other:?}"),
    }
}
