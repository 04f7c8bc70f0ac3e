//! One line per request and expected answer, in the manner of nginx-tests rewrite.t,
//! http_try_files.t, http_error_page.t and proxy.t. Expectations were checked against nginx
//! 1.22 (the differential test runs the same kinds of cases against a real one).

use super::{Action, Body, FileKind, FileSystem, NoFiles};
use crate::{Config, Request};

/// Files end without '/', directories are listed with a trailing '/'.
struct Tree(&'static [&'static str]);

impl FileSystem for Tree {
    fn kind(&self, path: &[u8]) -> FileKind {
        let p = std::str::from_utf8(path).unwrap();
        let bare = p.trim_end_matches('/');
        if self.0.contains(&bare) && !p.ends_with('/') {
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

fn run(body: &str, method: &str, uri: &str, fs: &dyn FileSystem) -> Action {
    let cfg = Config::parse(
        "t.conf",
        &format!("server {{ server_name localhost; {body} }}"),
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let mut req = Request::get(uri, "localhost");
    req.method = method.into();
    cfg.servers[0].handle(&req, fs)
}

/// A short, comparable form of an action.
fn show(a: &Action) -> String {
    match a {
        Action::Close => "close".into(),
        Action::Respond(r) => {
            let body = match &r.body {
                Body::Text(t) => format!(" {:?}", String::from_utf8_lossy(t)),
                Body::Empty => " empty".into(),
                Body::Page => String::new(),
            };
            let loc = r
                .location
                .as_ref()
                .map(|l| format!(" -> {}", String::from_utf8_lossy(l)))
                .unwrap_or_default();
            format!("{}{loc}{body}", r.status)
        }
        Action::File(f) => format!("{} file {}", f.status, String::from_utf8_lossy(&f.path)),
        Action::Proxy(p) => format!(
            "proxy {} {}{}",
            p.authority,
            String::from_utf8_lossy(&p.target),
            p.status.map(|s| format!(" as {s}")).unwrap_or_default()
        ),
    }
}

fn check(cases: &[(&str, &str, &str, &str)], fs: &dyn FileSystem) {
    for (body, method, uri, want) in cases {
        let got = show(&run(body, method, uri, fs));
        assert_eq!(&got, want, "{body}\n  {method} {uri}");
    }
}

#[test]
fn rewrite_redirects_like_rewrite_t() {
    check(
        &[
            (
                "location / { rewrite ^/home/register(.*) /home#/register permanent; }",
                "GET",
                "/home/register?code=1",
                "301 -> http://localhost/home#/register?code=1",
            ),
            (
                "location / { rewrite ^(.*) /x? redirect; }",
                "GET",
                "/a?b=1",
                "302 -> http://localhost/x",
            ),
            (
                "location / { rewrite ^ http://e.x/y?z=1; }",
                "GET",
                "/a?b=1",
                "302 -> http://e.x/y?z=1&b=1",
            ),
            (
                "location / { rewrite ^/(.*) /t/$1 redirect; }",
                "GET",
                "/a%20b",
                "302 -> http://localhost/t/a%20b",
            ),
            (
                "location / { rewrite ^/(.*) /t/$1 redirect; }",
                "GET",
                "/%41",
                "302 -> http://localhost/t/A",
            ),
            (
                "absolute_redirect off; location / { return 301 /n; }",
                "GET",
                "/",
                "301 -> /n",
            ),
            (
                "port_in_redirect off; location / { return 302 /n; }",
                "GET",
                "/",
                "302 -> http://localhost/n",
            ),
            ("location / { return 301; }", "GET", "/", "301 -> "),
            ("location / { rewrite ^ /again last; }", "GET", "/x", "500"),
        ],
        &NoFiles,
    );
}

/// Where no location matches, the server's statements are not run a second time as a
/// location's (nginx skips the location rewrite phase "for server null location"): a `last`
/// that lands outside every location is a 404, not another pass of the server's rewrites.
#[test]
fn the_server_statements_run_once_where_no_location_matches() {
    check(
        &[
            (
                "rewrite ^/x/(.*)$ /$1 last; location /a/ { return 200 a; }",
                "GET",
                "/x/x/a/1",
                "404",
            ),
            (
                "rewrite ^/x/(.*)$ /$1 last; location /a/ { return 200 a; }",
                "GET",
                "/x/a/1",
                "200 \"a\"",
            ),
            (
                "if ($uri ~ ^/admin) { return 403; } rewrite ^/x/(.*)$ /$1 last; \
                 location /s/ { return 200 s; }",
                "GET",
                "/x/admin/foo",
                "404",
            ),
            (
                "rewrite ^/crm(/.*)$ $1 break; location /s/ { return 200 s; }",
                "GET",
                "/crm/crm/s/x",
                "404",
            ),
            // After an internal redirect the server's statements run again, as nginx's.
            (
                "rewrite ^/x/(.*)$ /$1 last; location /a/ { return 200 a; } \
                 location /t/ { try_files $uri /x/a/; }",
                "GET",
                "/t/1",
                "200 \"a\"",
            ),
        ],
        &NoFiles,
    );
}

#[test]
fn returns_and_closes() {
    check(
        &[
            ("location / { return 444; }", "GET", "/", "close"),
            ("location / { return 200; }", "GET", "/", "200 empty"),
            ("location / { return 404 \"no\"; }", "GET", "/", "404 \"no\""),
            ("location / { return 404; }", "GET", "/", "404"),
            (
                "location / { set $v \"a$arg_q\"; if ($v = \"ab\") { return 200 \"eq\"; } return 200 \"$v\"; }",
                "GET",
                "/?q=b",
                "200 \"eq\"",
            ),
            (
                "location / { if ($uri ~ ^/(?<n>\\d+)$) { return 200 \"num $n $1\"; } }",
                "GET",
                "/42",
                "200 \"num 42 42\"",
            ),
            ("location / { set $args x=1; return 200 \"$args$is_args\"; }", "GET", "/?a", "200 \"x=1?\""),
        ],
        &NoFiles,
    );
}

const SEED004: &str = "location / { root /srv/spa; index index.html index.htm; \
    try_files $uri $uri/ /index.html; rewrite ^/login(.*) /#/login permanent; }";

#[test]
fn static_files_like_http_try_files_t() {
    check(
        &[
            (SEED004, "GET", "/app.js", "200 file /srv/spa/app.js"),
            (SEED004, "GET", "/deep/link", "200 file /srv/spa/index.html"),
            (SEED004, "GET", "/", "200 file /srv/spa/index.html"),
            // `$uri/` finds the directory, whose name has no '/': the static module's 301.
            (SEED004, "GET", "/assets", "301 -> http://localhost/assets/"),
            // The directory with its '/' but no index file: nginx's well-known 403.
            (SEED004, "GET", "/assets/", "403"),
            (SEED004, "GET", "/docs/", "200 file /srv/spa/docs/index.htm"),
            (SEED004, "GET", "/login", "301 -> http://localhost/#/login"),
            (SEED004, "POST", "/app.js", "405"),
            (SEED004, "PUT", "/app.js", "405"),
            (SEED004, "HEAD", "/app.js", "200 file /srv/spa/app.js"),
            (
                "root /srv/spa; location / { }",
                "POST",
                "/assets",
                "301 -> http://localhost/assets/",
            ),
            ("root /srv/spa; location / { }", "POST", "/gone", "404"),
            (
                "root /srv/spa; location / { }",
                "GET",
                "/assets?a=b",
                "301 -> http://localhost/assets/?a=b",
            ),
            ("root /srv/spa; location / { }", "GET", "/empty/", "403"),
            ("root /srv/spa; location / { }", "GET", "/gone/", "404"),
            (
                "location /files/ { alias /srv/alias/; }",
                "GET",
                "/files/x.txt",
                "200 file /srv/alias/x.txt",
            ),
            (
                "location / { root /srv/spa; try_files $uri /loop; }",
                "GET",
                "/a",
                "500",
            ),
            (
                "location / { root /srv/spa; try_files $uri =404; }",
                "GET",
                "/nope",
                "404",
            ),
        ],
        &SPA,
    );
}

#[test]
fn named_locations_and_error_pages_like_http_error_page_t() {
    check(
        &[
            (
                "location / { root /srv/spa; try_files $uri @app; } location @app { proxy_pass http://crm; }",
                "GET",
                "/dyn?x=1",
                "proxy crm /dyn?x=1",
            ),
            (
                "error_page 404 /404.html; location / { return 404; } location = /404.html { return 200 \"page\"; }",
                "GET",
                "/x",
                "404 \"page\"",
            ),
            (
                "location / { error_page 404 = /f; return 404; } location /f { return 200 \"f\"; }",
                "GET",
                "/x",
                "200 \"f\"",
            ),
            ("location / { error_page 404 =301 http://e.x/; return 404; }", "GET", "/x", "301 -> http://e.x/"),
            ("location / { error_page 404 http://e.x/; return 404; }", "GET", "/x", "302 -> http://e.x/"),
            (
                "location / { error_page 404 /api/; return 404; } location /api/ { proxy_pass http://crm/v2/; }",
                "POST",
                "/x",
                "proxy crm /v2/ as 404",
            ),
            // Only one error page per request.
            (
                "error_page 404 /nope; location / { return 404; } location /nope { return 404; }",
                "GET",
                "/x",
                "404",
            ),
            // nginx loads a named location written twice; the first answers.
            (
                "location / { try_files $uri @app; } location @app { return 200 \"1\"; } location @app { return 200 \"2\"; }",
                "GET",
                "/x",
                "200 \"1\"",
            ),
        ],
        &NoFiles,
    );
}

#[test]
fn proxy_pass_uri_part_like_proxy_t() {
    check(
        &[
            (
                "location /api/ { proxy_pass http://crm/; }",
                "GET",
                "/api/users?p=1",
                "proxy crm /users?p=1",
            ),
            (
                "location /api/ { proxy_pass http://crm/v1/; }",
                "GET",
                "/api/a%20b",
                "proxy crm /v1/a%20b",
            ),
            (
                "location /api/ { proxy_pass http://crm; }",
                "GET",
                "/api/./x",
                "proxy crm /api/./x",
            ),
            (
                "location /api/ { proxy_pass http://crm/; }",
                "GET",
                "/api",
                "301 -> http://localhost/api/",
            ),
            (
                "location /api/ { rewrite ^/api/(.*) /v2/$1 break; proxy_pass http://crm/x/; }",
                "GET",
                "/api/a",
                "proxy crm /v2/a",
            ),
            (
                "location ~ ^/r/(.*)$ { proxy_pass http://crm/in/$1; }",
                "GET",
                "/r/z?q",
                "proxy crm /in/z",
            ),
            (
                "location /u/ { proxy_pass http://crm$request_uri; }",
                "GET",
                "/u/%41?b",
                "proxy crm /u/%41?b",
            ),
        ],
        &NoFiles,
    );
}

#[test]
fn access_rules_follow_the_rewrite_phase() {
    check(
        &[
            (
                "location / { deny all; return 200 \"rewrite first\"; }",
                "GET",
                "/",
                "200 \"rewrite first\"",
            ),
            (
                "location / { deny all; proxy_pass http://crm; }",
                "GET",
                "/",
                "403",
            ),
            (
                "location / { allow 127.0.0.1; deny all; proxy_pass http://crm; }",
                "GET",
                "/",
                "proxy crm /",
            ),
            (
                "location / { limit_except GET { deny all; } proxy_pass http://crm; }",
                "HEAD",
                "/",
                "proxy crm /",
            ),
            (
                "location / { limit_except GET { deny all; } proxy_pass http://crm; }",
                "POST",
                "/",
                "403",
            ),
            // The location's rewrite statements do not run for a limited method: its access
            // rules are the block's, whatever `return`, `rewrite` or `if` would have done.
            (
                "location / { limit_except GET { deny all; } return 200 \"x\"; }",
                "POST",
                "/",
                "403",
            ),
            (
                "location / { limit_except GET { deny all; } return 200 \"x\"; }",
                "GET",
                "/",
                "200 \"x\"",
            ),
            (
                "location /a/ { limit_except GET { deny all; } rewrite ^ /ok/ last; } \
                 location /ok/ { return 200 \"ok\"; }",
                "DELETE",
                "/a/",
                "403",
            ),
            (
                "location / { limit_except GET { deny all; } \
                 if ($request_method = POST) { return 200 \"if\"; } proxy_pass http://crm; }",
                "POST",
                "/",
                "403",
            ),
        ],
        &NoFiles,
    );
}

#[test]
fn a_match_limit_error_answers_500_not_the_next_location() {
    let body = "location ~ \"(*LIMIT_MATCH=1000)^/(a|aa)+$\" { return 200 \"re\"; } location / { return 200 \"next\"; }";
    let long = format!("/{}b", "a".repeat(40));
    check(
        &[
            (body, "GET", long.as_str(), "500"),
            (body, "GET", "/aa", "200 \"re\""),
        ],
        &NoFiles,
    );
    let rw = "location / { rewrite \"(*LIMIT_MATCH=1000)^/(a|aa)+$\" /x; return 200 \"next\"; }";
    check(&[(rw, "GET", long.as_str(), "500")], &NoFiles);
}

#[test]
fn unsupported_directives_are_listed_with_their_line() {
    let cfg = Config::parse(
        "crm.conf",
        "server {\n listen 80;\n ssl_certificate x.pem;\n location / {\n  proxy_cache crm;\n  \
         return 200 \"$upstream_header_time\";\n }\n location /ws {\n  \
         proxy_set_header Connection $connection_upgrade;\n  proxy_pass http://crm;\n }\n}",
    )
    .unwrap();
    let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        lines,
        [
            "crm.conf:3: directive 'ssl_certificate' is not supported (TLS ends in front of the gateway, at the load balancer or an nginx kept there: remove this line and set [server] public_url = \"https://...\")",
            "crm.conf:5: directive 'proxy_cache' is not supported (the gateway keeps no cache of answers: keep the cache in a proxy or CDN in front, or remove the line and every request goes to the upstream)",
            "crm.conf:6: directive 'return' is not supported (variable $upstream_header_time: not one the gateway provides, and no `map` or `set` read with this file defines it)",
            // A name of nginx's own needs no map; another is most often the main file's.
            "crm.conf:9: directive 'proxy_set_header' is not supported (variable $connection_upgrade: not one the gateway provides, and no `map` or `set` read with this file defines it; a `map` of the main nginx.conf is read with [nginx] conf_dir (import-nginx --conf-dir) set to that file's directory)",
        ]
    );
}

/// The refusals a CRM's file often has beyond the common families each say what to do instead.
#[test]
fn common_refusals_name_a_remedy() {
    let cfg = Config::parse(
        "crm.conf",
        "server {\n geo $w { default 0; 10.0.0.0/8 1; }\n brotli on;\n location / {\n  \
         mirror /m;\n  secure_link $arg_md5;\n  ssi on;\n }\n location = /p.gif { empty_gif; }\n \
         access_log /var/log/x-$host.log;\n}",
    )
    .unwrap();
    let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
    assert!(lines.len() >= 7, "{lines:#?}");
    for line in &lines {
        assert!(line.contains(" ("), "no remedy: {line}");
    }
    assert!(lines.iter().any(|l| l.contains("logrotate")), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("a geo block belongs to the http level")),
        "{lines:#?}"
    );
}

/// The FastCGI timeouts and buffers a stock BaoTa or LNMP `nginx.conf` sets for every site,
/// and how nginx reads files and writes sockets, load as changing nothing; a `fastcgi_pass`
/// is still refused, saying what to do instead.
#[test]
fn another_protocols_tuning_loads_and_its_pass_is_refused() {
    let cfg = Config::parse(
        "nginx.conf",
        "fastcgi_connect_timeout 300; fastcgi_send_timeout 300; fastcgi_read_timeout 300;\n\
         fastcgi_buffer_size 64k; fastcgi_buffers 4 64k; fastcgi_busy_buffers_size 128k;\n\
         fastcgi_temp_file_write_size 256k; fastcgi_intercept_errors on;\n\
         uwsgi_read_timeout 60; aio threads; directio 4m; output_buffers 2 32k;\n\
         postpone_output 1460; proxy_socket_keepalive on;\n\
         server { location / { return 200 \"ok\"; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    assert_eq!(cfg.noted.len(), 14, "{:?}", cfg.noted);
    let cfg = Config::parse(
        "php.conf",
        "server { location ~ \\.php$ { fastcgi_pass 127.0.0.1:9000; fastcgi_index index.php; \
         include_params_here; } }"
            .replace(
                "include_params_here;",
                "fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;",
            )
            .as_str(),
    )
    .unwrap();
    let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "php.conf:1: directive 'fastcgi_pass' is not supported (the gateway speaks HTTP"
        ),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("keep PHP-FPM behind an HTTP server"),
        "{lines:?}"
    );
    // A Django or Flask CRM behind uWSGI: uWSGI speaks HTTP itself.
    let cfg = Config::parse(
        "py.conf",
        "server { location / { uwsgi_pass 127.0.0.1:8001; } }",
    )
    .unwrap();
    let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("have uWSGI speak HTTP too (`http-socket = 127.0.0.1:8001` in its ini)"),
        "{lines:?}"
    );
}

#[test]
fn bad_config_errors_name_the_position() {
    let e = Config::parse("x.conf", "server {\n location / { rewrite ^( /x; }\n}").unwrap_err();
    assert!(e.to_string().starts_with("x.conf:2:"), "{e}");
    let e = Config::parse("x.conf", "server { location /a {} location /a {} }").unwrap_err();
    assert!(e.to_string().contains("duplicate location"), "{e}");
    let e = Config::parse(
        "x.conf",
        "server { location ~ x { proxy_pass http://a/b; } }",
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot have URI part"), "{e}");
    let e = Config::parse("x.conf", "server { location / { set $uri x; } }").unwrap_err();
    assert!(e.to_string().contains("duplicate \"uri\" variable"), "{e}");
    let e = Config::parse("x.conf", "server { error_page 200 /x; }").unwrap_err();
    assert!(e.to_string().contains("between 300 and 599"), "{e}");
}

/// A header value written over several lines (a long `Content-Security-Policy`) is sent as
/// the folded line clients read from nginx's; a line break that would start a header of its
/// own, or end the header block, is refused where it is written.
#[test]
fn header_values_over_several_lines_are_folded_or_refused() {
    check_headers(
        &[
            (
                "location / { add_header Content-Security-Policy \"default-src 'self';\n    \
                 script-src res.wx.qq.com;\r\n\tframe-ancestors *.work.weixin.qq.com\"; \
                 add_header X-Frame-Options SAMEORIGIN; return 200 ok; }",
                "GET /",
                "200 \"ok\" [Content-Security-Policy: default-src 'self'; script-src \
                 res.wx.qq.com; frame-ancestors *.work.weixin.qq.com, X-Frame-Options: SAMEORIGIN]",
            ),
            (
                "location / { add_header X-A \"\n  a\n  b\"; return 200 ok; }",
                "GET /",
                "200 \"ok\" [X-A: a b]",
            ),
            // A redirect's URL is a header's value; a text body keeps its lines.
            (
                "location / { return 302 \"/a\n  b\"; }",
                "GET /",
                "302 -> http://localhost/a b",
            ),
            (
                "location / { return 200 \"a\nb\"; }",
                "GET /",
                "200 \"a\\nb\"",
            ),
        ],
        &NoFiles,
    );
    for (value, what) in [
        ("\"a\nb\"", "not followed by a space"),
        ("\"a\n\n  b\"", "not followed by a space"),
        ("\"a\n\"", "not followed by a space"),
        ("\"a\rb\"", "carriage return alone"),
        ("\"a\u{1}b\"", "control character"),
    ] {
        for directive in [
            "add_header X-A",
            "proxy_set_header X-A",
            "return 302",
            "default_type",
        ] {
            let e = Config::parse(
                "x.conf",
                &format!("server {{\n location / {{ {directive} {value}; }}\n}}"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("x.conf:2:") && e.contains(what),
                "{directive} {value}: {e}"
            );
        }
    }
}

/// `default_type` over two lines is the folded type clients read from nginx's.
#[test]
fn a_default_type_over_two_lines_is_folded() {
    let cfg = Config::parse(
        "x.conf",
        "server { default_type \"text/plain;\n    charset=utf-8\"; }",
    )
    .unwrap();
    assert_eq!(
        cfg.servers[0].root.settings.default_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
}

/// `ngx_http_core_location`'s nesting rules; each error is the one `nginx -t` prints, at the
/// nested location's line.
#[test]
fn nested_locations_follow_nginx_rules() {
    for (body, want) in [
        (
            "location /b/ {\n location /c/ { return 200 c; } }",
            Err("x.conf:2:2: location \"/c/\" is outside location \"/b/\""),
        ),
        (
            "location /a/ {\n location /a { }\n}",
            Err("x.conf:2:2: location \"/a\" is outside location \"/a/\""),
        ),
        (
            "location /a/ {\n location /A/b { }\n}",
            Err("x.conf:2:2: location \"/A/b\" is outside location \"/a/\""),
        ),
        (
            "location /a {\n location = /b { }\n}",
            Err("x.conf:2:2: location \"/b\" is outside location \"/a\""),
        ),
        (
            "location ~ ^/a {\n location /a/b { }\n}",
            Err("x.conf:2:2: location \"/a/b\" is outside location \"^/a\""),
        ),
        (
            "location = /b {\n location /b/c { }\n}",
            Err("x.conf:2:2: location \"/b/c\" cannot be inside the exact location \"/b\""),
        ),
        (
            "location @n {\n location /b/c { }\n}",
            Err("x.conf:2:2: location \"/b/c\" cannot be inside the named location \"@n\""),
        ),
        (
            "location /b/ {\n location @x { }\n}",
            Err("x.conf:2:2: named location \"@x\" can be on the server level only"),
        ),
        ("location ~ ^/a { location ^/a/b { } }", Ok(())),
        ("location /a { location ~ ^/zz { } }", Ok(())),
        (
            "location /a { location = /a/x { } location ^~ /ab { } location /a { } }",
            Ok(()),
        ),
    ] {
        let got = Config::parse("x.conf", &format!("server {{ {body} }}"))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, want.map_err(String::from), "{body}");
    }
}

/// nginx names the second of two equal locations, where it is written, not the level that
/// holds them (for a server the gateway makes up, that level has no line of its own); the
/// first is named too (it may be in another file, or a `[[routes]]` entry).
#[test]
fn duplicate_locations_are_reported_where_written() {
    for (body, want) in [
        (
            "location /x { }\nlocation /y { }\nlocation /x { }",
            "x.conf:4:1: duplicate location \"/x\" (also at x.conf:2)",
        ),
        (
            "location /a/ {\n location /a/x { }\n location ^~ /a/x { } }",
            "x.conf:4:2: duplicate location \"/a/x\" (also at x.conf:3)",
        ),
        (
            "location = /e { }\nlocation /e { }\nlocation =/e { }",
            "x.conf:4:1: duplicate location \"/e\" (also at x.conf:2)",
        ),
    ] {
        let e = Config::parse("x.conf", &format!("server {{\n{body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
}

/// A quoted location argument is one word: `location '/sp ace'` is a prefix with a space,
/// and a glued modifier keeps the rest verbatim (`'~* ^/S P$'` is the regex " ^/S P$").
#[test]
fn quoted_location_names_keep_their_spaces() {
    check(
        &[
            (
                "location '/sp ace' { return 200 sp; } location / { return 200 root; }",
                "GET",
                "/sp%20ace/x",
                "200 \"sp\"",
            ),
            (
                "location = '/sp ace' { return 200 sp; } location / { return 200 root; }",
                "GET",
                "/sp%20ace",
                "200 \"sp\"",
            ),
            (
                "location '~* ^/S P$' { return 200 re; } location / { return 200 root; }",
                "GET",
                "/s%20p",
                "200 \"root\"",
            ),
        ],
        &NoFiles,
    );
}

/// `check` with request headers (`Name: value` lines after the URI, `|`-separated), showing
/// the headers `add_header`/`expires` put on the answer after it in brackets.
fn check_headers(cases: &[(&str, &str, &str)], fs: &dyn FileSystem) {
    for (body, request, want) in cases {
        let cfg = Config::parse(
            "t.conf",
            &format!("server {{ server_name localhost; {body} }}"),
        )
        .unwrap();
        assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
        let mut parts = request.split(" | ");
        let (method, uri) = parts.next().unwrap().split_once(' ').unwrap();
        let mut req = Request::get(uri, "localhost");
        req.method = method.into();
        for h in parts {
            let (n, v) = h.split_once(": ").unwrap();
            req.headers.push((n.into(), v.as_bytes().to_vec()));
        }
        let server = &cfg.servers[0];
        let action = server.handle(&req, fs);
        let mut got = show(&action);
        let status = match &action {
            Action::Respond(r) => r.status,
            Action::File(f) => f.status,
            _ => 0,
        };
        if let Some(st) = action.state() {
            let edits = server.response_headers(&req, st, status, None, 0, &crate::vars::NoAnswer);
            let shown: Vec<String> = edits
                .iter()
                .map(|e| format!("{}: {}", e.name, String::from_utf8_lossy(&e.value)))
                .collect();
            if !shown.is_empty() {
                got.push_str(&format!(" [{}]", shown.join(", ")));
            }
        }
        assert_eq!(&got, want, "{body}\n  {request}");
    }
}

/// A true `if` in a location makes its block's nameless configuration the request's, and it
/// stays so after the block (`ngx_http_script_if_code`): `try_files` is not inherited into it
/// (so it is gone), `add_header` is inherited only when the block has none, `root`, `expires`
/// and `error_page` set in the block apply, and `proxy_pass` (with its URI part) is
/// inherited. Checked against nginx 1.22.
#[test]
fn a_true_if_in_a_location_takes_its_own_configuration() {
    const UA_SPA: &str = "root /srv/spa; location / { \
        if ($http_user_agent ~* \"(iphone|android)\") { rewrite ^/$ /sub/index.html break; } \
        try_files $uri $uri/ /index.html; }";
    const CORS: &str = "location /api/ { add_header X-Loc api; \
        if ($request_method = OPTIONS) { \
            add_header Access-Control-Allow-Origin *; \
            add_header Access-Control-Allow-Methods 'GET, POST, OPTIONS'; \
            add_header Access-Control-Max-Age 1728000 always; \
            return 204; } \
        return 200 api; }";
    const HEADERS: &str = "add_header X-Server s; location /h/ { add_header X-Loc h; \
        if ($arg_a) { add_header X-A a; } if ($arg_b) { expires epoch; } \
        if ($arg_c) { add_header X-C c always; return 404; } return 200 h; }";
    check_headers(
        &[
            (UA_SPA, "GET /x/y | User-Agent: iPhone", "404"),
            (UA_SPA, "GET /x/y", "200 file /srv/spa/index.html"),
            (UA_SPA, "GET /app.js | User-Agent: iPhone", "200 file /srv/spa/app.js"),
            (
                "root /srv/spa; location /r/ { if ($arg_x) { set $d 1; } try_files $uri /app.js; }",
                "GET /r/z?x=1",
                "404",
            ),
            (
                "root /srv/spa; location /r/ { if ($arg_x) { set $d 1; } try_files $uri /app.js; }",
                "GET /r/z",
                "200 file /srv/spa/app.js",
            ),
            (
                CORS,
                "OPTIONS /api/x",
                "204 empty [Access-Control-Allow-Origin: *, \
                 Access-Control-Allow-Methods: GET, POST, OPTIONS, \
                 Access-Control-Max-Age: 1728000]",
            ),
            (CORS, "GET /api/x", "200 \"api\" [X-Loc: api]"),
            (HEADERS, "GET /h/", "200 \"h\" [X-Loc: h]"),
            (HEADERS, "GET /h/?a=1", "200 \"h\" [X-A: a]"),
            (
                HEADERS,
                "GET /h/?b=1",
                "200 \"h\" [Expires: Thu, 01 Jan 1970 00:00:01 GMT, \
                 Cache-Control: no-cache, X-Loc: h]",
            ),
            // The last true `if` is the one whose configuration applies.
            (HEADERS, "GET /h/?a=1&b=1", "200 \"h\" [Expires: Thu, 01 Jan 1970 00:00:01 GMT, Cache-Control: no-cache, X-Loc: h]"),
            (HEADERS, "GET /h/?a=1&c=1", "404 [X-C: c]"),
            (
                "location /s/ { if ($arg_alt) { root /srv/alias; error_page 404 = /nf; } \
                 rewrite ^/s/(.*)$ /$1 break; } location = /nf { return 200 nf; }",
                "GET /s/x.txt?alt=1",
                "200 file /srv/alias/x.txt",
            ),
            (
                "location /s/ { if ($arg_alt) { root /srv/alias; error_page 404 = /nf; } \
                 rewrite ^/s/(.*)$ /$1 break; } location = /nf { return 200 nf; }",
                "GET /s/none?alt=1",
                "200 \"nf\"",
            ),
            (
                "location /api/ { proxy_pass http://b/; if ($arg_x) { set $d 1; } }",
                "GET /api/x?x=1",
                "proxy b /x?x=1",
            ),
            // The script goes on after the block: a later `return` still answers.
            (
                "location /own/ { if ($arg_x) { proxy_pass http://b; } return 200 no; }",
                "GET /own/x?x=1",
                "200 \"no\"",
            ),
            (
                "location /own/ { if ($arg_x) { proxy_pass http://b; } try_files $uri =404; }",
                "GET /own/x?x=1",
                "proxy b /own/x?x=1",
            ),
        ],
        &SPA,
    );
}

/// One `root` or `alias` per level, as `nginx -t` has it: a second (or both) is refused with
/// its message, not the last one silently taken; a location's own beside the server's loads.
#[test]
fn a_second_root_or_alias_on_one_level_is_refused_as_nginx_refuses_it() {
    for (body, want) in [
        (
            "location /e/ { alias /srv/a/;\n root /srv/html; }",
            "x.conf:2:2: \"root\" directive is duplicate, \"alias\" directive was specified earlier",
        ),
        (
            "location /e/ { root /srv/html;\n alias /srv/a/; }",
            "x.conf:2:2: \"alias\" directive is duplicate, \"root\" directive was specified earlier",
        ),
        (
            "root /a;\n root /b;",
            "x.conf:2:2: \"root\" directive is duplicate",
        ),
        (
            "location /e/ { alias /a/;\n alias /b/; }",
            "x.conf:2:2: \"alias\" directive is duplicate",
        ),
    ] {
        let e = Config::parse("x.conf", &format!("server {{ {body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    Config::parse(
        "x.conf",
        "server { root /a; location /e/ { alias /b/; } location /f/ { root /c; if ($a) { root /d; } } }",
    )
    .unwrap();
}

/// What nginx allows in an `if` (NGX_HTTP_LIF_CONF, NGX_HTTP_SIF_CONF), with its messages.
#[test]
fn if_blocks_refuse_what_nginx_refuses() {
    for (body, want) in [
        (
            "location / { if ($a) {\n try_files $uri =404; } }",
            "x.conf:2:2: \"try_files\" directive is not allowed here",
        ),
        (
            "location / { if ($a) {\n if ($b) { return 200; } } }",
            "x.conf:2:2: \"if\" directive is not allowed here",
        ),
        (
            "location / { if ($a) {\n proxy_set_header X 1; } }",
            "x.conf:2:2: \"proxy_set_header\" directive is not allowed here",
        ),
        (
            "location / { if ($a) {\n alias /x/; } }",
            "x.conf:2:2: \"alias\" directive is not allowed here",
        ),
        (
            "if ($a) {\n add_header X 1; }",
            "x.conf:2:2: \"add_header\" directive is not allowed here",
        ),
        (
            "if ($a) {\n root /x; }",
            "x.conf:2:2: \"root\" directive is not allowed here",
        ),
    ] {
        let e = Config::parse("x.conf", &format!("server {{ {body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    let e = Config::parse(
        "x.conf",
        "server { location / { if ($a) { proxy_pass http://b/x; } } }",
    )
    .unwrap_err();
    assert!(e.to_string().contains("inside \"if\" statement"), "{e}");
}

/// A relative `root` is written out by `$document_root` and `$request_filename` from
/// [`crate::Server::prefix`] (nginx's `-p`), and tested by `-e` at that path; an absolute
/// one as it is. Without a prefix both stay relative, as the crate's file answers are.
#[test]
fn path_variables_start_a_relative_root_at_the_prefix() {
    let body = "location /rel/ { root spa; \
                  if (-e $request_filename) { return 200 \"$document_root|$request_filename\"; } \
                  return 404; } \
                location /abs/ { root /srv/spa; return 200 \"$document_root|$request_filename\"; }";
    let mut cfg = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap();
    let fs = Tree(&["/srv/spa/", "/srv/spa/rel/", "/srv/spa/rel/a.js"]);
    let text = |cfg: &Config, uri: &str| show(&cfg.servers[0].handle(&Request::get(uri, "h"), &fs));
    assert_eq!(text(&cfg, "/rel/a.js"), "404", "spa/rel/a.js, relative");
    assert_eq!(text(&cfg, "/abs/x"), "200 \"/srv/spa|/srv/spa/abs/x\"");
    cfg.servers[0].prefix = b"/srv/".to_vec();
    assert_eq!(
        text(&cfg, "/rel/a.js"),
        "200 \"/srv/spa|/srv/spa/rel/a.js\""
    );
    assert_eq!(text(&cfg, "/rel/b.js"), "404");
    assert_eq!(text(&cfg, "/abs/x"), "200 \"/srv/spa|/srv/spa/abs/x\"");
}

/// How nginx writes to a socket or sizes its buffers, and what its `Server` header names:
/// loaded on every level nginx allows them, checked as nginx checks them, and listed as
/// changing nothing; `keepalive_timeout` is kept, inherited from the http level down.
#[test]
fn transport_directives_load_and_are_noted() {
    let cfg = Config::parse(
        "t.conf",
        "sendfile ON; tcp_nopush on; keepalive_timeout 65; server_tokens off;\n\
         server { tcp_nodelay on; proxy_buffering off; large_client_header_buffers 4 32k;\n\
           location /a { proxy_buffer_size 64k; proxy_buffers 4 64k; proxy_busy_buffers_size 128k;\n\
             proxy_request_buffering off; client_body_buffer_size 1m;\n\
             if ($arg_x) { sendfile off; } }\n\
           location /b { keepalive_timeout 0; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let noted: Vec<String> = cfg
        .noted
        .iter()
        .map(|n| format!("{}:{}", n.pos.line, n.directive))
        .collect();
    assert_eq!(
        noted,
        [
            "1:sendfile",
            "1:tcp_nopush",
            "1:server_tokens",
            "2:tcp_nodelay",
            "2:proxy_buffering",
            "3:proxy_buffer_size",
            "3:proxy_buffers",
            "3:proxy_busy_buffers_size",
            "4:proxy_request_buffering",
            "4:client_body_buffer_size",
            "5:sendfile",
        ]
    );
    let server = &cfg.servers[0];
    assert_eq!(
        server.header_buffers(),
        Some(crate::HeaderBuffers {
            size: 32 * 1024,
            total: 128 * 1024
        })
    );
    let at = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let st = a.state().unwrap().clone();
        server.settings_for(&st).keepalive_timeout
    };
    assert_eq!(at("/a"), Some(std::time::Duration::from_secs(65)));
    assert_eq!(at("/b"), Some(std::time::Duration::ZERO));
    for (body, want) in [
        (
            "\n proxy_buffering maybe;",
            "t.conf:2:2: invalid value \"maybe\" in \"proxy_buffering\" directive, it must be \
             \"on\" or \"off\"",
        ),
        (
            "\n proxy_buffers 0 4k;",
            "t.conf:2:2: \"proxy_buffers\" directive invalid value",
        ),
        (
            "\n server_tokens nginx;",
            "t.conf:2:2: invalid value \"nginx\"",
        ),
        (
            "\n keepalive_timeout soon;",
            "t.conf:2:2: \"keepalive_timeout\" directive invalid value",
        ),
        (
            "location / { if ($arg_x) {\n proxy_buffering off; } }",
            "t.conf:2:2: \"proxy_buffering\" directive is not allowed here",
        ),
        (
            "location / {\n client_header_buffer_size 1k; }",
            "t.conf:2:2: \"client_header_buffer_size\" directive is not allowed here",
        ),
        (
            "\n proxy_buffer_size 1g;",
            "t.conf:2:2: \"proxy_buffer_size\" directive invalid value",
        ),
        (
            "\n proxy_buffers 8 0;",
            "t.conf:2:2: \"proxy_buffers\" directive invalid value",
        ),
        (
            "\n large_client_header_buffers 4 0;",
            "t.conf:2:2: \"large_client_header_buffers\" directive invalid value",
        ),
        (
            "\n large_client_header_buffers 4;",
            "t.conf:2:2: invalid number of arguments in \"large_client_header_buffers\" directive",
        ),
        (
            "\n large_client_header_buffers 00 8k;",
            "t.conf:2:2: \"large_client_header_buffers\" directive invalid value",
        ),
        (
            "\n large_client_header_buffers -1 8k;",
            "t.conf:2:2: \"large_client_header_buffers\" directive invalid value",
        ),
        (
            "\n large_client_header_buffers 4 256;",
            "t.conf:2:2: the \"large_client_header_buffers\" size must be equal to or greater \
             than \"connection_pool_size\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    // The head's bounds: nginx's defaults where no level writes them, the http level's
    // inherited, at most what the gateway reads (noted when more is asked).
    let buffers = |text: &str| {
        let cfg = Config::parse("t.conf", text).unwrap();
        let noted = cfg
            .noted
            .iter()
            .map(|n| n.directive.clone())
            .collect::<Vec<_>>();
        (cfg.servers[0].header_buffers(), noted)
    };
    assert_eq!(buffers("server { }"), (None, vec![]));
    assert_eq!(
        buffers("large_client_header_buffers 2 1k; server { client_header_buffer_size 4k; }"),
        (
            Some(crate::HeaderBuffers {
                size: 1024,
                total: 2048
            }),
            vec!["client_header_buffer_size".to_owned()]
        )
    );
    assert_eq!(
        buffers("server { large_client_header_buffers 8 512k; }"),
        (
            Some(crate::HeaderBuffers {
                size: 512 * 1024,
                total: 1024 * 1024 - 1
            }),
            vec!["large_client_header_buffers".to_owned()]
        )
    );
    // The Keep-Alive header's own timeout is not something the gateway writes.
    let cfg = Config::parse("t.conf", "server { keepalive_timeout 65 60; }").unwrap();
    assert_eq!(cfg.unsupported.len(), 1, "{:?}", cfg.unsupported);
}

/// Lines a copied server-sent-events or tuning snippet carries load: `chunked_transfer_encoding`
/// and `lingering_close`, and nginx's own defaults written out, are noted; an `off` that would
/// change what the upstream is sent is refused with what it asks. `client_body_timeout` is
/// kept per location.
#[test]
fn framing_lines_and_written_out_defaults_load() {
    let cfg = Config::parse(
        "t.conf",
        "merge_slashes on;\n\
         server { lingering_close always; client_body_timeout 30s;\n\
           location /events { chunked_transfer_encoding off; proxy_pass_request_headers on;\n\
             proxy_pass_request_body on; client_body_timeout 2h; }\n\
           location /b { } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let noted: Vec<String> = cfg
        .noted
        .iter()
        .map(|n| format!("{}:{}", n.pos.line, n.directive))
        .collect();
    assert_eq!(
        noted,
        [
            "1:merge_slashes",
            "2:lingering_close",
            "3:chunked_transfer_encoding",
            "3:proxy_pass_request_headers",
            "4:proxy_pass_request_body",
        ]
    );
    let server = &cfg.servers[0];
    let at = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let st = a.state().unwrap().clone();
        server.settings_for(&st).client_body_timeout
    };
    assert_eq!(at("/events"), Some(std::time::Duration::from_secs(7200)));
    assert_eq!(at("/b"), Some(std::time::Duration::from_secs(30)));
    let off = Config::parse(
        "t.conf",
        "server { merge_slashes off; location / { proxy_pass_request_body off; } }",
    )
    .unwrap();
    let refused: Vec<(&str, &str)> = off
        .unsupported
        .iter()
        .map(|u| (u.directive.as_str(), u.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused.iter().all(|(_, d)| d.starts_with("`off`")),
        "{refused:?}"
    );
    for (body, want) in [
        (
            "location / {\n merge_slashes on; }",
            "t.conf:2:2: \"merge_slashes\" directive is not allowed here",
        ),
        (
            "\n lingering_close sometimes;",
            "t.conf:2:2: invalid value \"sometimes\" in \"lingering_close\"",
        ),
        (
            "\n chunked_transfer_encoding maybe;",
            "t.conf:2:2: invalid value \"maybe\" in \"chunked_transfer_encoding\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{{body} }}"))
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with(want), "{body}: {e}");
    }
}

/// `keepalive_timeout 0` anywhere the request passes (a location it leaves by `error_page`,
/// `rewrite ... last` or a named location, the server level an internal redirect passes
/// through) ends keep-alive; so does a 400, 413, 500 or 501 finalized by nginx, error page
/// or not. Elsewhere the answering level's value holds.
#[test]
fn keep_alive_ends_where_nginx_ends_it() {
    use std::time::Duration;
    let body = "location /k0e/ { keepalive_timeout 0; error_page 404 /kok/; return 404; } \
                location /k0rw/ { keepalive_timeout 0; rewrite ^ /kok/ last; } \
                location /k0n/ { keepalive_timeout 0; try_files $uri @nm; } \
                location @nm { return 200 \"n\"; } \
                location /kok/ { keepalive_timeout 30; return 200 \"ok\"; } \
                location /r500 { return 500; } \
                location /t500 { return 500 \"text\"; } \
                location /e500 { error_page 500 /kok/; return 500; } \
                location /r404 { return 404; }";
    let cfg = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap();
    let server = &cfg.servers[0];
    let alive = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        server.keepalive_for(a.state().unwrap())
    };
    let (zero, thirty) = (Some(Duration::ZERO), Some(Duration::from_secs(30)));
    assert_eq!(alive("/kok/"), thirty);
    assert_eq!(alive("/k0e/"), zero, "through error_page");
    assert_eq!(alive("/k0rw/"), zero, "through rewrite last");
    assert_eq!(alive("/k0n/"), zero, "through a named location");
    assert_eq!(alive("/r500"), zero, "nginx's 500 page");
    assert_eq!(alive("/e500"), zero, "a 500 sent to an error page");
    assert_eq!(
        alive("/t500"),
        None,
        "a return with text is not nginx's page"
    );
    assert_eq!(alive("/r404"), None);
    // The server level is passed through on an internal redirect, not on the first lookup.
    let cfg = Config::parse(
        "t.conf",
        "server { keepalive_timeout 0; \
           location /a/ { keepalive_timeout 30; error_page 404 /on/; return 404; } \
           location /b/ { keepalive_timeout 30; rewrite ^ /on/ last; } \
           location /on/ { keepalive_timeout 30; return 200 \"on\"; } }",
    )
    .unwrap();
    let server = &cfg.servers[0];
    let alive = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        server.keepalive_for(a.state().unwrap())
    };
    assert_eq!(alive("/on/"), thirty);
    assert_eq!(
        alive("/a/"),
        zero,
        "an internal redirect passes the server level"
    );
    assert_eq!(alive("/b/"), thirty, "a rewrite does not");
}

/// `log_format` and `access_log` as nginx reads them: a level with any `access_log` replaces
/// the inherited files, several on one level all write, `off` wins on its level, an `if` in a
/// location has its own; formats are looked up without case, `combined` is nginx's; what nginx
/// refuses is refused, and what the gateway cannot write is refused or listed.
#[test]
fn access_logs_inherit_and_replace_as_nginx_s() {
    let cfg = Config::parse(
        "t.conf",
        "log_format main '$remote_addr \"$request\" $status' ' $upstream_cache_status $request_body';\n\
         log_format js escape=json '{\"u\":\"$uri\",\"t\":\"$msec\"}';\n\
         error_log logs/error.log warn; open_log_file_cache max=10;\n\
         access_log logs/access.log MAIN buffer=32k flush=5s;\n\
         server {\n\
           location /a { }\n\
           location /b { access_log b.log; access_log /dev/stdout js if=$arg_log; }\n\
           location /c { access_log b.log js; access_log off; }\n\
           location /d { access_log off; location /d/e { access_log e.log; } }\n\
           location /f { if ($arg_x) { access_log f.log; } } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let noted: Vec<String> = cfg
        .noted
        .iter()
        .map(|n| format!("{}:{}", n.pos.line, n.directive))
        .collect();
    assert_eq!(
        noted,
        [
            "3:error_log",
            "3:open_log_file_cache",
            "1:log_format",
            "1:log_format"
        ]
    );
    assert!(cfg.noted[3]
        .detail
        .as_deref()
        .unwrap()
        .contains("$request_body"));
    assert!(cfg.noted[2]
        .detail
        .as_deref()
        .unwrap()
        .contains("$upstream_cache_status"));
    assert_eq!(
        cfg.access_log_paths
            .iter()
            .map(|p| &*p.0)
            .collect::<Vec<_>>(),
        ["logs/access.log", "b.log", "/dev/stdout", "e.log", "f.log"]
    );
    let server = &cfg.servers[0];
    let at = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let st = a.state().unwrap().clone();
        let s = server.settings_for(&st);
        let files: Vec<String> = s
            .access_files
            .iter()
            .map(|f| {
                let cond = if f.condition.is_some() { " if" } else { "" };
                format!("{} {}{cond}", f.path, f.format.name)
            })
            .collect();
        (s.access_log, files.join(", "))
    };
    assert_eq!(at("/a"), (true, "logs/access.log main".into()));
    assert_eq!(at("/b"), (true, "b.log combined, /dev/stdout js if".into()));
    assert_eq!(at("/c"), (false, String::new()));
    assert_eq!(at("/d"), (false, String::new()));
    assert_eq!(at("/d/e"), (true, "e.log combined".into()));
    assert_eq!(at("/f?x=1"), (true, "f.log combined".into()));
    assert_eq!(at("/f"), (true, "logs/access.log main".into()));

    for (body, want) in [
        (
            "access_log a.log nosuch;",
            "t.conf:2:1: unknown log format \"nosuch\"",
        ),
        (
            "access_log a.log combined flush=5s;",
            "t.conf:2:1: no buffer is defined for access_log \"a.log\"",
        ),
        (
            "access_log a.log combined buffer=0;",
            "t.conf:2:1: invalid buffer size \"0\"",
        ),
        (
            "access_log a.log combined sometimes;",
            "t.conf:2:1: invalid parameter \"sometimes\"",
        ),
        (
            "access_log off now;",
            "t.conf:2:1: invalid parameter \"now\"",
        ),
        (
            "error_log e.log loud;",
            "t.conf:2:1: invalid log level \"loud\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{\n{body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    for (top, want) in [
        (
            "log_format combined '$status';",
            "t.conf:1:1: duplicate \"log_format\" name \"combined\"",
        ),
        (
            "log_format x '$status'; log_format x '$status';",
            "t.conf:1:25: duplicate \"log_format\" name \"x\"",
        ),
        (
            "log_format x escape=xml '$status';",
            "t.conf:1:1: unknown log format escaping \"xml\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("{top}\nserver {{ }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{top}");
    }
    // What the gateway does not write is refused by name: syslog, a path with variables, a
    // compressed log, a variable nginx does not have either.
    for body in [
        "access_log syslog:server=127.0.0.1;",
        "access_log logs/$host.log;",
        "access_log a.log combined gzip;",
    ] {
        let cfg = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap();
        assert_eq!(cfg.unsupported.len(), 1, "{body}: {:?}", cfg.unsupported);
    }
    let cfg = Config::parse(
        "t.conf",
        "log_format x '$no_such_thing'; server { access_log a.log x; }",
    )
    .unwrap();
    assert_eq!(cfg.unsupported.len(), 1, "{:?}", cfg.unsupported);
    assert_eq!(
        cfg.unsupported[0].detail.as_deref(),
        Some(
            "variable $no_such_thing: not one the gateway provides, and no `map` or `set` read \
             with this file defines it; a `map` of the main nginx.conf is read with [nginx] \
             conf_dir (import-nginx --conf-dir) set to that file's directory"
        )
    );
}

/// `underscores_in_headers` and `ignore_invalid_headers` are the server's (http or server
/// level): headers with `_` are dropped unless one of them says otherwise.
#[test]
fn underscored_headers_are_dropped_unless_the_server_keeps_them() {
    let drops = |conf: &str| {
        let cfg = Config::parse("t.conf", conf).unwrap();
        assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
        cfg.servers[0].drops_underscored_headers()
    };
    assert!(drops("server { }"));
    assert!(!drops("underscores_in_headers on; server { }"));
    assert!(!drops("server { underscores_in_headers on; }"));
    assert!(!drops("server { ignore_invalid_headers off; }"));
    assert!(drops(
        "underscores_in_headers on; server { underscores_in_headers off; }"
    ));
    let mut req = Request::get("/", "h");
    req.headers.push(("X_A".into(), b"1".to_vec()));
    req.headers.push(("x-a".into(), b"2".to_vec()));
    assert_eq!(req.header_variable("x_a"), Some(&b"1"[..]));
    for (conf, want) in [
        (
            "server { location / {\n underscores_in_headers on; } }",
            "t.conf:2:2: \"underscores_in_headers\" directive is not allowed here",
        ),
        (
            "server {\n ignore_invalid_headers yes; }",
            "t.conf:2:2: invalid value \"yes\" in \"ignore_invalid_headers\" directive, it must \
             be \"on\" or \"off\"",
        ),
    ] {
        assert_eq!(Config::parse("t.conf", conf).unwrap_err().to_string(), want);
    }
}

/// The tuning lines of a stock or copied `nginx.conf` (hash table sizes, client timeouts,
/// `gzip_buffers`, `proxy_next_upstream`'s answers, ...) load, are checked as nginx
/// checks them, and are listed as changing nothing; `gzip_http_version` and
/// `proxy_hide_header` are kept, with nginx's merge.
#[test]
fn tuning_lines_of_a_stock_nginx_conf_load_and_are_noted() {
    let cfg = Config::parse(
        "t.conf",
        "types_hash_max_size 2048; server_names_hash_bucket_size 128;\n\
         client_header_timeout 60s; client_body_timeout 60; send_timeout 1m;\n\
         reset_timedout_connection on; keepalive_requests 1000; gzip_buffers 4 16k;\n\
         gzip_http_version 1.0; proxy_hide_header X-Powered-By;\n\
         server {\n\
           location /a { proxy_next_upstream error timeout http_502; proxy_next_upstream_tries 2;\n\
             proxy_ignore_client_abort on; }\n\
           location /b { proxy_hide_header Server; proxy_hide_header X-Debug;\n\
             gzip_http_version 1.1; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let noted: Vec<String> = cfg
        .noted
        .iter()
        .map(|n| format!("{}:{}", n.pos.line, n.directive))
        .collect();
    assert_eq!(
        noted,
        [
            "1:types_hash_max_size",
            "1:server_names_hash_bucket_size",
            "2:client_header_timeout",
            "3:reset_timedout_connection",
            "3:keepalive_requests",
            "3:gzip_buffers",
            "6:proxy_next_upstream",
            "7:proxy_ignore_client_abort",
        ]
    );
    let server = &cfg.servers[0];
    let at = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let s = server.settings_for(a.state().unwrap()).clone();
        (s.proxy.hide_headers.join(","), s.gzip.http_10)
    };
    assert_eq!(at("/a"), ("x-powered-by".into(), true));
    assert_eq!(at("/b"), ("server,x-debug".into(), false));
    // `proxy_next_upstream` and `_tries` are kept (the next server of a balanced upstream);
    // `http_502` is what is noted: an answer goes to the client.
    let next = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let s = server.settings_for(a.state().unwrap()).clone();
        (s.proxy.next_upstream, s.proxy.next_upstream_tries)
    };
    assert_eq!(next("/a").1, 2);
    assert!(next("/a").0.error && next("/a").0.timeout && !next("/a").0.non_idempotent);
    assert_eq!(next("/b"), (Default::default(), 0));
    for (body, want) in [
        (
            "\n proxy_next_upstream sometimes;",
            "t.conf:2:2: invalid value \"sometimes\"",
        ),
        (
            "\n gzip_http_version 2.0;",
            "t.conf:2:2: invalid value \"2.0\" in \"gzip_http_version\" directive, it must be \
             \"1.0\" or \"1.1\"",
        ),
        (
            "\n types_hash_max_size 0;",
            "t.conf:2:2: \"types_hash_max_size\" directive invalid value",
        ),
        (
            "\n send_timeout soon;",
            "t.conf:2:2: \"send_timeout\" directive invalid value",
        ),
        (
            "location / {\n client_header_timeout 5s; }",
            "t.conf:2:2: \"client_header_timeout\" directive is not allowed here",
        ),
        (
            "\n gzip_buffers 0 8k;",
            "t.conf:2:2: \"gzip_buffers\" directive invalid value",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
}

/// `proxy_cookie_path` / `proxy_cookie_domain` as nginx reads them: a level's own replace the
/// inherited, `off` empties the level's and makes its later ones do nothing.
#[test]
fn cookie_rewrites_merge_as_nginx_s() {
    let cfg = Config::parse(
        "t.conf",
        "server { proxy_cookie_path /a/ /;\n\
           location /x { proxy_cookie_path off; proxy_cookie_path /b/ /; proxy_pass http://u; }\n\
           location /y { proxy_cookie_domain .a.org b.org; proxy_pass http://u; }\n\
           location /z { proxy_pass http://u; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let server = &cfg.servers[0];
    let rules = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        let p = &server.settings_for(a.state().unwrap()).proxy;
        (p.cookie_paths.len(), p.cookie_domains.len())
    };
    assert_eq!(rules("/x"), (0, 0));
    assert_eq!(rules("/y"), (1, 1));
    assert_eq!(rules("/z"), (1, 0));
    let e = Config::parse("t.conf", "server {\n proxy_cookie_path on; }").unwrap_err();
    assert_eq!(e.to_string(), "t.conf:2:2: invalid parameter \"on\"");
}

/// `geo` blocks are read as `ngx_http_geo_block` reads them; what the gateway does not do
/// (`ranges`) and what nginx refuses are errors at their line.
#[test]
fn geo_blocks_load_and_their_errors_name_the_line() {
    let cfg = Config::parse(
        "t.conf",
        "geo $g { default d; 10.0.0.0/8 ten; }\ngeo $http_x_a $h { 2001:db8::/32 doc; }\n\
         server { location / { return 200 \"$g$h\"; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    for (text, want) in [
        (
            "geo $g { ranges; 10.0.0.1-10.0.0.9 a; }",
            "t.conf:1:10: geo ranges are not supported",
        ),
        (
            "geo $g { 10.0.0.0/33 a; }",
            "t.conf:1:10: invalid network \"10.0.0.0/33\"",
        ),
        (
            "geo $g { 10.0.0.0/8 a b; }",
            "t.conf:1:10: invalid number of the geo parameters",
        ),
        (
            "geo g { default a; }",
            "t.conf:1:1: invalid variable name \"g\"",
        ),
        (
            "geo $src g { default a; }",
            "t.conf:1:1: invalid variable name \"g\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("{text}\nserver {{ }}")).unwrap_err();
        assert!(e.to_string().starts_with(want), "{text}: {e}");
    }
}

/// `proxy_cookie_flags` is read as nginx reads it: `off` alone on its level (before or after
/// another line it is nginx's "is duplicate"), one to four arguments, a name alone refused;
/// a level's own lines replace the inherited ones.
#[test]
fn proxy_cookie_flags_lines_are_read_as_nginx_reads_them() {
    let cfg = Config::parse(
        "t.conf",
        "server {\n proxy_cookie_flags a secure;\n proxy_cookie_flags ~ httponly;\n\
         location /x { proxy_pass http://u; }\n\
         location /y { proxy_cookie_flags b nosecure; proxy_pass http://u; }\n\
         location /z { proxy_cookie_flags off; proxy_pass http://u; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let server = &cfg.servers[0];
    let rules = |uri: &str| {
        let a = server.handle(&Request::get(uri, "h"), &NoFiles);
        server
            .settings_for(a.state().unwrap())
            .proxy
            .cookie_flags
            .len()
    };
    assert_eq!((rules("/x"), rules("/y"), rules("/z")), (2, 1, 0));
    for (body, want) in [
        (
            "proxy_cookie_flags off; proxy_cookie_flags a secure;",
            "t.conf:2:26: \"proxy_cookie_flags\" directive is duplicate",
        ),
        (
            "proxy_cookie_flags a secure; proxy_cookie_flags off;",
            "t.conf:2:31: \"proxy_cookie_flags\" directive is duplicate",
        ),
        (
            "proxy_cookie_flags a;",
            "t.conf:2:2: invalid parameter \"a\"",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{\n {body} }}")).unwrap_err();
        assert_eq!(e.to_string(), want, "{body}");
    }
    let e = Config::parse(
        "t.conf",
        "server {\n proxy_cookie_flags a secure httponly samesite=lax nosecure; }",
    )
    .unwrap_err();
    assert!(e.to_string().contains("invalid number of arguments"), "{e}");
}

/// `autoindex` lists a directory without an index file for GET and HEAD; its options merge
/// whichever order a level writes them in; POST stays nginx's 403.
#[test]
fn autoindex_lists_a_directory_without_an_index_file() {
    let fs = Tree(&["/srv/spa/", "/srv/spa/index.html", "/srv/spa/empty/"]);
    let body = "root /srv/spa;\n\
                location / { autoindex_format json; autoindex on; autoindex_localtime on; }";
    let listing = |method: &str, uri: &str| match run(body, method, uri, &fs) {
        Action::File(f) if f.listing => format!("list {}", String::from_utf8_lossy(&f.path)),
        a => show(&a),
    };
    assert_eq!(listing("GET", "/empty/"), "list /srv/spa/empty/");
    assert_eq!(listing("HEAD", "/empty/"), "list /srv/spa/empty/");
    assert_eq!(listing("POST", "/empty/"), "403");
    assert_eq!(listing("GET", "/nosuch/"), "404");
    // The index module comes first.
    assert!(!listing("GET", "/").starts_with("list"));
    let cfg = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap();
    let a = cfg.servers[0].handle(&Request::get("/empty/", "h"), &fs);
    let opts = cfg.servers[0].settings_for(a.state().unwrap()).autoindex;
    assert_eq!(
        opts,
        Some(crate::parse::model::AutoIndex {
            format: crate::autoindex::Format::Json,
            exact_size: true,
            localtime: true,
        })
    );
    for (conf, want) in [
        (
            "location / {\n autoindex_format yaml; }",
            "t.conf:2:2: invalid value \"yaml\"",
        ),
        (
            "location / { if ($arg_a) {\n autoindex on; } }",
            "t.conf:2:2: \"autoindex\" directive is not allowed here",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{ {conf} }}")).unwrap_err();
        assert_eq!(e.to_string(), want);
    }
}

/// `X-Accel-Redirect` as nginx follows it (proxy.t's x_accel_redirect cases): an internal
/// redirect that reaches `internal` locations, the method GET (HEAD kept), `?args` split and
/// never decoded, a named location by `@`, a climbing URI a 404; `proxy_ignore_headers`
/// parsed as nginx parses it.
#[test]
fn x_accel_redirect_is_an_internal_redirect() {
    let conf = "location /dl { proxy_pass http://crm; }\n\
                location /protected/ { internal; alias /srv/alias/; }\n\
                location @app { proxy_pass http://app; }\n\
                location /api/ { proxy_pass http://crm; }";
    let cfg = Config::parse(
        "t.conf",
        &format!("server {{ server_name localhost; {conf} }}"),
    )
    .unwrap();
    let server = &cfg.servers[0];
    let accel = |method: &str, value: &str| {
        let mut req = Request::get("/dl?id=1", "localhost");
        req.method = method.into();
        let Action::Proxy(p) = server.handle(&req, &SPA) else {
            panic!("proxied")
        };
        show(&server.accel_redirect(&req, p.state.clone(), value.as_bytes(), &SPA))
    };
    assert_eq!(
        accel("GET", "/protected/x.txt"),
        "200 file /srv/alias/x.txt"
    );
    assert_eq!(
        accel("POST", "/protected/x.txt"),
        "200 file /srv/alias/x.txt"
    );
    assert_eq!(accel("GET", "/protected/missing"), "404");
    assert_eq!(accel("GET", "/api/v?a=%20b"), "proxy crm /api/v?a=%20b");
    assert_eq!(accel("GET", "@app"), "proxy app /dl?id=1");
    for unsafe_uri in ["/protected/../x", "protected/x.txt", "/a\0b"] {
        assert_eq!(accel("GET", unsafe_uri), "404", "{unsafe_uri:?}");
    }
    // The location an internal redirect alone may reach is still not reachable directly.
    let direct = server.handle(&Request::get("/protected/x.txt", "localhost"), &SPA);
    assert_eq!(show(&direct), "404");

    let cfg = Config::parse(
        "t.conf",
        "server { proxy_ignore_headers x-accel-redirect Expires; location / { } \
         location /b { proxy_ignore_headers Vary; } }",
    )
    .unwrap();
    let s = &cfg.servers[0];
    let ignored = |uri: &str| {
        let st = s
            .handle(&Request::get(uri, "h"), &NoFiles)
            .state()
            .unwrap()
            .clone();
        s.settings_for(&st).proxy.ignore_accel_redirect
    };
    assert!(ignored("/a"));
    assert!(
        !ignored("/b"),
        "a level's own list replaces the inherited one"
    );
    let e = Config::parse("t.conf", "server { proxy_ignore_headers X-Foo; }").unwrap_err();
    assert_eq!(
        e.to_string(),
        "t.conf:1:10: invalid value \"X-Foo\" in \"proxy_ignore_headers\" directive"
    );
}

/// Tuning lines of common templates that change nothing here load and are listed: nginx's
/// open-file cache, its temporary files, `proxy_cache off` and the no-cache lines beside it,
/// `resolver`. A cache zone is refused, as the gateway keeps no cache.
#[test]
fn tuning_lines_of_templates_load_and_are_noted() {
    let cfg = Config::parse(
        "t.conf",
        "open_file_cache max=1000 inactive=20s; open_file_cache_valid 30s;\n\
         open_file_cache_min_uses 2; open_file_cache_errors on;\n\
         server { resolver 114.114.114.114 valid=300s; resolver_timeout 5s;\n\
           proxy_temp_file_write_size 64k; proxy_max_temp_file_size 0;\n\
           proxy_temp_path /var/tmp/nginx 1 2; client_body_temp_path /var/tmp/body;\n\
           location /sse { proxy_cache off; proxy_cache_bypass $http_upgrade; proxy_no_cache 1;\n\
             proxy_pass http://crm; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let noted: Vec<&str> = cfg.noted.iter().map(|n| n.directive.as_str()).collect();
    assert_eq!(noted.len(), 13, "{noted:?}");
    let cfg = Config::parse("t.conf", "server { location / { proxy_cache crm; } }").unwrap();
    assert_eq!(
        cfg.unsupported.len(),
        1,
        "a cache zone is listed as refused"
    );
    for (body, want) in [
        (
            "open_file_cache max=0;",
            "invalid \"open_file_cache\" parameter",
        ),
        (
            "open_file_cache_valid soon;",
            "\"open_file_cache_valid\" directive invalid value",
        ),
    ] {
        let e = Config::parse("t.conf", &format!("server {{ {body} }}")).unwrap_err();
        assert!(e.to_string().contains(want), "{body}: {e}");
    }
}

/// `add_header X-Cache $upstream_cache_status;` (BaoTa's reverse-proxy template writes it into
/// every site): the gateway keeps no cache, the value is empty and the header not sent, as by
/// nginx without `proxy_cache`; the line is listed. Elsewhere such a variable is refused.
#[test]
fn a_header_of_a_variable_without_a_value_here_is_not_sent() {
    let cfg = Config::parse(
        "t.conf",
        "server { location / { add_header X-Cache $upstream_cache_status; add_header X-A a; \
         return 200 \"ok\"; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    assert_eq!(cfg.noted.len(), 1, "{:?}", cfg.noted);
    let s = &cfg.servers[0];
    let a = s.handle(&Request::get("/", "h"), &NoFiles);
    let st = a.state().unwrap().clone();
    let edits = s.response_headers(
        &Request::get("/", "h"),
        &st,
        200,
        None,
        0,
        &crate::vars::NoAnswer,
    );
    let names: Vec<String> = edits.iter().map(|e| format!("{e:?}")).collect();
    assert!(
        names.iter().any(|e| e.contains("x-a") || e.contains("X-A")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|e| e.to_ascii_lowercase().contains("x-cache")),
        "{names:?}"
    );
    let cfg = Config::parse("t.conf", "server { return 200 $upstream_cache_status; }").unwrap();
    assert_eq!(cfg.unsupported.len(), 1);
}

/// `ngx_http_realip_module` behind Aliyun SLB or a CDN: the address a trusted proxy's header
/// names (`X-Forwarded-For` from the right, past trusted ones with `real_ip_recursive on`);
/// an untrusted connection, a missing header or a non-address keeps the connection's own.
#[test]
fn the_real_client_address_comes_from_trusted_proxies_only() {
    let parse = |conf: &str| Config::parse("t.conf", &format!("server {{ {conf} }}")).unwrap();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
    let xff = |v: &'static str| move |n: &str| (n == "x-forwarded-for").then(|| v.to_owned());
    let cfg = parse("set_real_ip_from 10.0.0.0/8; set_real_ip_from 192.168.1.1; real_ip_header X-Forwarded-For;");
    let s = &cfg.servers[0];
    assert_eq!(
        s.real_ip(ip("10.1.2.3"), xff("1.1.1.1, 2.2.2.2")),
        Some(ip("2.2.2.2"))
    );
    assert_eq!(
        s.real_ip(ip("192.168.1.1"), xff("1.1.1.1, 10.0.0.5")),
        Some(ip("10.0.0.5"))
    );
    assert_eq!(
        s.real_ip(ip("8.8.8.8"), xff("1.1.1.1")),
        None,
        "untrusted peer"
    );
    assert_eq!(s.real_ip(ip("10.1.2.3"), xff("not-an-address")), None);
    assert_eq!(s.real_ip(ip("10.1.2.3"), |_| None), None);
    assert_eq!(
        s.real_ip(ip("::ffff:10.1.2.3"), xff("1.1.1.1")),
        Some(ip("1.1.1.1"))
    );
    let cfg =
        parse("set_real_ip_from 10.0.0.0/8; real_ip_header X-Forwarded-For; real_ip_recursive on;");
    let s = &cfg.servers[0];
    assert_eq!(
        s.real_ip(ip("10.1.2.3"), xff("1.1.1.1, 2.2.2.2, 10.0.0.5")),
        Some(ip("2.2.2.2"))
    );
    assert_eq!(
        s.real_ip(ip("10.1.2.3"), xff("10.0.0.7, 10.0.0.5")),
        Some(ip("10.0.0.7"))
    );
    // nginx's default header is X-Real-IP.
    let cfg = parse("set_real_ip_from 127.0.0.1;");
    let s = &cfg.servers[0];
    let real = |n: &str| (n == "x-real-ip").then(|| "3.3.3.3".to_owned());
    assert_eq!(s.real_ip(ip("127.0.0.1"), real), Some(ip("3.3.3.3")));
    assert_eq!(parse("").servers[0].real_ip(ip("127.0.0.1"), real), None);
    let cfg = parse("real_ip_header proxy_protocol;");
    assert_eq!(cfg.unsupported.len(), 1);
}

/// `$request_id` is the caller's id of the request (the gateway's `X-Request-Id`), in headers
/// as in logs: `add_header X-Request-Id $request_id;` and `proxy_set_header X-Request-Id
/// $request_id;` of tracing guides load.
#[test]
fn request_id_is_the_callers_id() {
    let cfg = Config::parse(
        "t.conf",
        "server { location / { add_header X-Request-Id $request_id; return 200 \"$request_id\"; } }",
    )
    .unwrap();
    assert!(cfg.unsupported.is_empty(), "{:?}", cfg.unsupported);
    let mut req = Request::get("/", "h");
    req.request_id = "0123abcd".into();
    let a = cfg.servers[0].handle(&req, &NoFiles);
    assert_eq!(show(&a), "200 \"0123abcd\"");
}

/// `map`s at the http level beside one server: the answer to `uri`.
fn with_maps(maps: &str, body: &str, uri: &str) -> String {
    let cfg = Config::parse(
        "t.conf",
        &format!("{maps} server {{ server_name localhost; {body} }}"),
    )
    .unwrap();
    show(&cfg.servers[0].handle(&Request::get(uri, "localhost"), &NoFiles))
}

/// A map whose source names itself (a typo), or two maps naming each other, are worked out
/// to nginx's depth (100) and answer as nginx does ("cycle while evaluating variable"), not
/// without end: the process ended on its stack's overflow at the first request.
#[test]
fn a_map_naming_itself_answers_as_nginx_does() {
    assert_eq!(
        with_maps(
            "map $host_ok $host_ok { default 0; crm.example.com 1; }",
            "location / { if ($host_ok = 0) { return 403; } return 200 ok; }",
            "/",
        ),
        "403"
    );
    assert_eq!(
        with_maps(
            "map $uri $a { default $b; /x x; } map $uri $b { default $a; /y y; }",
            "location / { return 200 \"[$a]\"; }",
            "/z",
        ),
        "200 \"[]\""
    );
    // A chain of defaults deeper than nginx's 100 ends empty, as in nginx.
    let mut maps = "map $uri $m0 { default base; }".to_owned();
    for i in 1..=150 {
        maps.push_str(&format!(" map $uri $m{i} {{ default $m{}; }}", i - 1));
    }
    assert_eq!(
        with_maps(&maps, "location / { return 200 \"[$m150]\"; }", "/"),
        "200 \"[]\""
    );
}

/// A map regex's named captures are variables of the request once the map is worked out, as
/// nginx's are (the tenant of `map $host $backend { ~^(?<tenant>\w+)\. ... }` sent in a
/// header): they were set only for the map's own value.
#[test]
fn a_map_regexs_named_captures_are_the_requests_variables() {
    let maps = "map $uri $backend { default none; ~^/t(?<tn>[0-9]+)/ tenant$tn; }";
    assert_eq!(
        with_maps(
            maps,
            "location / { return 200 \"[$backend][$tn]\"; }",
            "/t42/x"
        ),
        "200 \"[tenant42][42]\""
    );
    assert_eq!(
        with_maps(maps, "location / { return 200 \"[$backend][$tn]\"; }", "/x"),
        "200 \"[none][]\""
    );
    // The latest write of the name wins, as in nginx: the map's match over a `set` or a
    // location's capture made before it; a `set` after it over the map's.
    assert_eq!(
        with_maps(
            maps,
            "set $tn preset; location / { return 200 \"[$backend][$tn]\"; }",
            "/t42/x"
        ),
        "200 \"[tenant42][42]\""
    );
    assert_eq!(
        with_maps(
            maps,
            "location ~ ^/(?<tn>t)[0-9]/ { return 200 \"[$tn][$backend][$tn]\"; }",
            "/t4/x"
        ),
        "200 \"[t][tenant4][4]\""
    );
    assert_eq!(
        with_maps(
            maps,
            "location / { set $b $backend; set $tn after; return 200 \"[$b][$tn]\"; }",
            "/t42/x"
        ),
        "200 \"[tenant42][after]\""
    );
    // A later write of the value the name held before the map matched is still the later
    // write (nginx 1.22 answers these so).
    for (body, uri, want) in [
        (
            "set $tn \"\"; location / { set $b $backend; set $tn \"\"; return 200 \"[$b][$tn]\"; }",
            "/t42/x",
            "200 \"[tenant42][]\"",
        ),
        (
            "location / { set $tn 42; set $b $backend; set $tn 42; return 200 \"[$b][$tn]\"; }",
            "/t7/x",
            "200 \"[tenant7][42]\"",
        ),
        (
            "set $tn t; if ($backend) { set $seen 1; } location ~ ^/(?<tn>t)[0-9] { return 200 \"[$backend][$tn]\"; }",
            "/t42/x",
            "200 \"[tenant42][t]\"",
        ),
    ] {
        assert_eq!(with_maps(maps, body, uri), want, "{body}");
    }
}

/// A map is worked out once per request, at its first use, as nginx's variables are (unless
/// `volatile`): a value read before a rewrite stands after it.
#[test]
fn a_map_is_worked_out_once_per_request_unless_volatile() {
    let body = "location / { set $first $mu; rewrite ^/a$ /b; return 200 \"$first $mu\"; }";
    assert_eq!(
        with_maps("map $uri $mu { default other; /a A; }", body, "/a"),
        "200 \"A A\""
    );
    assert_eq!(
        with_maps(
            "map $uri $mu { volatile; default other; /a A; }",
            body,
            "/a"
        ),
        "200 \"A other\""
    );
}

/// A map regex whose match cannot be worked out (PCRE's match limit) gives the default, as
/// nginx's does: a `default 1` that blocks still blocks.
#[test]
fn a_map_regex_that_fails_gives_the_default() {
    let maps = "map $uri $blocked { default 1; \"~(*LIMIT_MATCH=1000)^/(a|aa)+$\" 0; }";
    let long = format!("/{}b", "a".repeat(40));
    assert_eq!(
        with_maps(maps, "location / { return 200 \"[$blocked]\"; }", &long),
        "200 \"[1]\""
    );
}

/// Blocks nested past 64 levels are refused at their line: thousands deep, the parser and the
/// builder ended the process on their stacks (at a reload, where `check` had passed).
#[test]
fn blocks_nested_too_deep_are_refused_not_a_crash() {
    let deep = |n: usize| {
        let mut body = String::new();
        for i in 0..n {
            body.push_str(&format!("location /{} {{ ", "a/".repeat(i + 1)));
        }
        body.push_str(&"} ".repeat(n));
        format!("server {{ {body} }}")
    };
    Config::parse("t.conf", &deep(40)).unwrap();
    let e = Config::parse("t.conf", &deep(5000)).unwrap_err();
    assert!(
        e.to_string()
            .contains("blocks nested deeper than 64 levels"),
        "{e}"
    );
}
