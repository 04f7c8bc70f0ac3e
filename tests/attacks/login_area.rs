//! Item 4: a login route protects a path *area* (SPEC section 5, step 6), whichever location
//! finally handles the request: a regex `[[routes]]` entry, a location of an included nginx
//! file (with `proxy_pass` or static files), the location a `rewrite ... last` lands in, or the
//! public route a Servlet container's reading of `;` would hand the protected path to.

use crate::common::browser::{Browser, WXWORK_UA};
use crate::common::{parse_status, raw_request};
use crate::world::{App, World};

const ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"

[[routes]]
location = "~* \\.(js|css|png)$"
upstream = "crm"

[[routes]]
location = "/"
upstream = "crm"
"#;

const WITH_INCLUDE: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"

[[routes]]
location = "~* \\.(js|css|png)$"
upstream = "crm"

[[routes]]
location = "/mp/"
upstream = "crm"
login = "mp"

[[routes]]
location = "/r/"
upstream = "crm"
rewrite = [{ pattern = "^/r/(.*)$", replacement = "/$1", flag = "break" }]

[upstreams.dead]
url = "http://127.0.0.1:1"

[nginx]
include = ["{files}/legacy.conf"]
"#;

const LEGACY_CONF: &str = r#"
server {
    rewrite ^/old/(.*)$ /sidebar/reports/$1 last;
    location / { proxy_pass http://crm; }
    location ~* \.(gif|ico)$ { proxy_pass http://crm; }
    location /sidebar/reports/ { proxy_pass http://crm; }
    location /sidebar/assets/ { root {files}/www; }
    location /pub/ { proxy_pass http://crm/sidebar/; }
    location /pub2/ { root {files}/www; error_page 404 =200 /sidebar/assets/app.txt; }
    location /pub3/ { error_page 502 =200 /sidebar/assets/app.txt; proxy_pass http://dead; }
    location /mp/m/ { error_page 502 =200 /sidebar/assets/app.txt; proxy_pass http://dead; }
    location /sidebar/dead/ { error_page 502 =200 /sidebar/assets/app.txt; proxy_pass http://dead; }
    location ~ ^/files/(.*)$ { proxy_pass http://crm/$1; }
    location /api/ { proxy_pass http://crm/; }
    location /pub4/ { error_page 502 = /api/sidebar; proxy_pass http://dead; }
}
"#;

/// (path, what an anonymous script's call gets, what the CRM or the file system shows a
/// member): 401 = login required.
const WALKAROUNDS: &[(&str, u16)] = &[
    ("/sidebar/api/customers.js", 401),
    ("/sidebar/x/logo.PNG", 401),
    ("/sidebar;x/", 401),
    ("/sidebar;jsessionid=ABC/api", 401),
    ("/x/..;/sidebar/", 401),
    // nginx decodes %2e into a dot segment (the path is /other); an upstream that does not
    // decode reads /sidebar/%2e%2e/other, under /sidebar/.
    ("/sidebar/%2e%2e/other", 401),
    // Literal dot segments (no browser sends them): nginx reads /other, and so does the
    // gateway's route, but the upstream receives the path as sent and most frameworks route
    // on it unresolved, under /sidebar/.
    ("/sidebar/../other", 401),
    ("/sidebar/./../other", 401),
    ("/sid%65bar/../other", 401),
    // Escaped slashes around the dots: nginx reads /other; WSGI/ASGI servers (Flask, Django,
    // Starlette) decode PATH_INFO to /sidebar/../other and route it under /sidebar/.
    ("/sidebar%2F..%2Fother", 401),
    ("/sidebar%2f%2e%2e%2fother", 401),
    // Slashes merged, dot segments kept (Werkzeug's routing, Express): under /sidebar/ too.
    ("//sidebar/../other", 401),
    ("/%2Fsidebar%2F..%2Fother", 401),
    // A doubled slash read as a host and a path (Python's `urlsplit`, old Werkzeug): nginx
    // reads /x/sidebar/api, such a server /sidebar/api.
    ("//x/sidebar/api", 401),
    // And its path read every way a path is: dot segments kept, escapes not decoded.
    ("//x/sidebar/../other", 401),
    ("//x/sidebar/%2e%2e/other", 401),
    ("//x/SIDEBAR/y", 401),
    // The WHATWG parser (Node's `new URL(url, base)`, Deno, Bun) skips every `/` and `\`
    // before the host, and reads `\` as `/`.
    ("///x/sidebar/api", 401),
    ("/\\x/sidebar/api", 401),
    ("/\\/x\\sidebar\\api", 401),
    ("//x/other", 200),
    ("///x/other", 200),
    ("/other/./y", 200),
    // Servers that ignore case (Express, ASP.NET, IIS, ThinkPHP) or a segment's trailing dots
    // and spaces (Windows) route these under /sidebar/ too.
    ("/SIDEBAR/x", 401),
    ("/Sidebar/api", 401),
    ("/sidebar./x", 401),
    ("/sidebar%20/x", 401),
    ("/Other/x", 200),
    // Both at once: a Servlet container's reading and a lenient server's.
    ("/SIDEBAR;x/", 401),
    ("/x/..;/SIDEBAR/", 401),
    ("/sidebar.;x/y", 401),
    ("/sidebar/", 401),
    ("/public.js", 200),
    ("/other;x/y", 200),
    ("/", 200),
];

const INCLUDE_WALKAROUNDS: &[(&str, u16)] = &[
    ("/sidebar/logo.gif", 401),
    ("/sidebar/reports/q1", 401),
    ("/sidebar/assets/app.txt", 401),
    ("/old/q1", 401),
    // The upstream receives /sidebar/reports (a proxy_pass URI part replaces /pub/).
    ("/pub/reports", 401),
    // A missing file's error_page is a file of the area.
    ("/pub2/assets/missing", 401),
    ("/favicon.ico", 200),
    ("/old", 200),
    // `$1` holds what nginx decoded: the CRM receives /sidebar/%2e%2e/x, /sidebar%2f..%2fx.
    ("/files/sidebar/%252e%252e/x", 401),
    ("/files/sidebar%252f..%252fx", 401),
    ("/files/other", 200),
    // The CRM receives /sidebar, the area's index to Express and others (no 301 between).
    ("/api/sidebar", 401),
    ("/api/sidebar?a=1", 401),
    ("/r/sidebar", 401),
    ("/api/other", 200),
    ("/r/other", 200),
];

/// A script's GET sent as raw bytes: no client library gets to resolve the path first.
async fn raw_get(w: &World, path: &str, cookie: &str) -> (u16, String) {
    let cookie = if cookie.is_empty() {
        String::new()
    } else {
        format!("Cookie: {cookie}\r\n")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{cookie}Connection: close\r\n\r\n"
    );
    let port = w.gw().port;
    let resp = tokio::task::spawn_blocking(move || raw_request(port, req.as_bytes()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (parse_status(&resp).unwrap_or(0), body)
}

async fn check(w: &World, cases: &[(&str, u16)]) {
    for (path, want) in cases {
        let (status, body) = raw_get(w, path, "").await;
        assert_eq!(status, *want, "anonymous {path}: {body}");
        if *want == 401 {
            assert!(
                body.contains("\"error\":\"login_required\""),
                "{path}: {body}"
            );
        }
    }
    let member = w.member().await;
    let cookie = member.cookie_header(&w.gw().url("/"));
    for (path, want) in cases {
        let (status, body) = raw_get(w, path, &cookie).await;
        assert_eq!(status, 200, "member {path}: {body}");
        if *want == 401 && !path.contains("/assets/") {
            assert!(
                body.contains("\"x-wecom-userid\":\"zhangsan\""),
                "{path}: {body}"
            );
        }
        if path.contains("/assets/") {
            assert!(body.ends_with("the app\n"), "{path}: {body}");
        }
    }
}

async fn redirects_to_the_slash(w: &World) {
    let mut anon = Browser::new(WXWORK_UA);
    for (path, want) in [
        ("/sidebar", "/sidebar/"),
        ("/sidebar?tab=1", "/sidebar/?tab=1"),
    ] {
        let r = anon.get(&w.gw().url(path)).await;
        assert_eq!(r.status(), 301, "{path}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(loc.ends_with(want), "{path} -> {loc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_route_a_missing_slash_or_a_path_parameter_does_not_lift_login() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(ROUTES)
        .start()
        .await;
    redirects_to_the_slash(&w).await;
    check(&w, WALKAROUNDS).await;
}

/// The WeCom app's area `/sidebar/` and the Official Account's `/mp/`, with `LEGACY_CONF`
/// included and the area's file `www/sidebar/assets/app.txt`.
async fn include_world() -> World {
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(WITH_INCLUDE)
        .files(&[("legacy.conf", LEGACY_CONF)])
        .start()
        .await;
    std::fs::create_dir_all(w.files.path().join("www/sidebar/assets")).unwrap();
    std::fs::write(
        w.files.path().join("www/sidebar/assets/app.txt"),
        "the app\n",
    )
    .unwrap();
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_of_an_included_nginx_file_does_not_lift_login() {
    let w = include_world().await;
    redirects_to_the_slash(&w).await;
    check(&w, WALKAROUNDS).await;
    check(&w, INCLUDE_WALKAROUNDS).await;
    // An upstream's error whose error_page is a file of the area: not followed outside the
    // area's login (the gateway's own 502), for anyone.
    let (status, body) = raw_get(&w, "/pub3/assets/x", "").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");
    // Nor one that proxies to the area's root (the CRM receives /sidebar, its index).
    let (status, body) = raw_get(&w, "/pub4/x", "").await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");
}

/// An `error_page` from one login area into another is not followed for a person signed in
/// to the first one only: any WeChat user can sign in to an Official Account app, and its
/// session is not the WeCom app's login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_does_not_lead_from_one_login_area_into_another() {
    let w = include_world().await;
    let mut wechat = Browser::new(WXWORK_UA);
    w.login(&mut wechat, "mp", "/mp/").await;
    let cookie = wechat.cookie_header(&w.gw().url("/"));
    let (status, body) = raw_get(&w, "/mp/m/x", &cookie).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("upstream_unavailable"), "{body}");
    let (status, _) = raw_get(&w, "/sidebar/dead/x", &cookie).await;
    assert_eq!(status, 401);
    // Within the area whose login the request passed, the error_page is followed.
    let member = w.member().await;
    let cookie = member.cookie_header(&w.gw().url("/"));
    let (status, body) = raw_get(&w, "/sidebar/dead/x", &cookie).await;
    assert_eq!((status, body.as_str()), (200, "the app\n"));
}

/// The CRM's `X-Accel-Redirect` (a protected download) is followed as nginx follows it, but
/// never into a login area the request did not pass: the CRM's own answer goes out then, its
/// `X-Accel-Redirect` hidden as always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_accel_redirect_does_not_lead_into_a_login_area_from_outside() {
    use axum::response::IntoResponse;
    let crm = crate::common::upstream::serve(axum::Router::new().fallback(axum::routing::any(
        |uri: axum::http::Uri| async move {
            let to = uri
                .query()
                .unwrap_or("")
                .trim_start_matches("to=")
                .to_owned();
            (
                axum::response::AppendHeaders([("x-accel-redirect", to)]),
                "the CRM's own answer",
            )
                .into_response()
        },
    )));
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .crm(crm)
        .routes(
            "[[routes]]\nlocation = \"/sidebar/\"\nupstream = \"crm\"\nlogin = \"crm\"\n\
             [nginx]\ninclude = [\"{files}/legacy.conf\"]\n",
        )
        .files(&[(
            "legacy.conf",
            "location /dl/ { proxy_pass http://crm; }\n\
             location /files/ { internal; alias {files}/www/; }\n\
             location /sidebar/assets/ { root {files}/www; }\n\
             location / { root {files}/www; }\n",
        )])
        .start()
        .await;
    std::fs::create_dir_all(w.files.path().join("www/sidebar/assets")).unwrap();
    std::fs::write(w.files.path().join("www/report.txt"), "the report\n").unwrap();
    std::fs::write(
        w.files.path().join("www/sidebar/assets/app.txt"),
        "the app\n",
    )
    .unwrap();
    let (status, body) = raw_get(&w, "/dl/x?to=/files/report.txt", "").await;
    assert_eq!((status, body.as_str()), (200, "the report\n"));
    // Written as nginx matches it (`/./`, `//` are not resolved in an X-Accel-Redirect) or
    // not: the file is the area's either way.
    for to in [
        "/sidebar/assets/app.txt",
        "/./sidebar/assets/app.txt",
        "//sidebar/assets/app.txt",
    ] {
        let (status, body) = raw_get(&w, &format!("/dl/x?to={to}"), "").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "the CRM's own answer"),
            "{to}"
        );
    }
    // A climbing URI is nginx's 404.
    let (status, _) = raw_get(&w, "/dl/x?to=/x/../sidebar/assets/app.txt", "").await;
    assert_eq!(status, 404);
    let port = w.gw().port;
    let head = tokio::task::spawn_blocking(move || {
        raw_request(
            port,
            b"GET /dl/x?to=/sidebar/assets/app.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
    })
    .await
    .unwrap();
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(!head.contains("x-accel-redirect"), "{head}");
}

/// A single-page front end the nginx file serves from disk, with its API: the whole site under
/// the login.
const SPA_CONF: &str = r#"
server {
    root {files}/dist;
    location / { try_files $uri $uri/ /index.html; }
    location /api/ { proxy_pass http://crm; }
    location = /MP_verify_abc.txt { return 200 "abc"; }
}
"#;

/// A login area without `upstream` protects every path it covers and serves none: the nginx
/// file's locations still serve them as they did (a history route of the front end gets
/// `index.html` from disk, `/api/` goes to the CRM with the member's identity). An answer of
/// the file's rewrite phase (`return`: WeChat's domain verification file) comes before any
/// login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_area_only_protects_what_the_nginx_file_serves() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm"))
        .routes(
            "[[routes]]\nlocation = \"/\"\nlogin = \"crm\"\n\n\
             [nginx]\ninclude = [\"{files}/spa.conf\"]\n",
        )
        .files(&[("spa.conf", SPA_CONF)])
        .start()
        .await;
    let dist = w.files.path().join("dist");
    std::fs::create_dir_all(dist.join("static")).unwrap();
    std::fs::write(dist.join("index.html"), "<p>the front end</p>\n").unwrap();
    std::fs::write(dist.join("static/app.js"), "app();\n").unwrap();
    for path in [
        "/",
        "/customer/42",
        "/index.html",
        "/static/app.js",
        "/api/x",
        "/API/x",
    ] {
        let (status, body) = raw_get(&w, path, "").await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("login_required"), "{path}: {body}");
    }
    assert_eq!(
        raw_get(&w, "/MP_verify_abc.txt", "").await,
        (200, "abc".to_owned())
    );
    let member = w.member().await;
    let cookie = member.cookie_header(&w.gw().url("/"));
    for (path, want) in [
        ("/customer/42", "<p>the front end</p>\n"),
        ("/", "<p>the front end</p>\n"),
        ("/static/app.js", "app();\n"),
    ] {
        assert_eq!(
            raw_get(&w, path, &cookie).await,
            (200, want.to_owned()),
            "{path}"
        );
    }
    let (status, body) = raw_get(&w, "/api/x?y=1", &cookie).await;
    assert_eq!(status, 200, "{body}");
    let echo: crate::common::upstream::Echo = serde_json::from_str(&body).unwrap();
    assert_eq!(echo.uri, "/api/x?y=1");
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
}

/// A login area only has no location and so no 301 from its root (`/ng/secret`) to the area
/// (`/ng/secret/`): the root is in the area, or the nginx file's `location /ng/` would hand it
/// to the CRM (which serves `/ng/secret` as `/ng/secret/`, as Express and Laravel do) without
/// a sign-in or the area's `allow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_area_onlys_root_is_in_the_area() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm"))
        .routes(
            "[[routes]]\nlocation = \"/ng/secret/\"\nlogin = \"crm\"\n\
             allow = { users = [\"nobody\"] }\n\n\
             [nginx]\ninclude = [\"{files}/ng.conf\"]\n",
        )
        .files(&[("ng.conf", "location /ng/ { proxy_pass http://crm; }\n")])
        .start()
        .await;
    for path in [
        "/ng/secret",
        "/ng/secret/",
        "/ng/secret/x",
        "/ng/secret.json",
        "/ng/Secret",
    ] {
        let (status, body) = raw_get(&w, path, "").await;
        assert_eq!(status, 401, "{path}: {body}");
    }
    let member = w.member().await;
    let cookie = member.cookie_header(&w.gw().url("/"));
    for path in ["/ng/secret", "/ng/secret/"] {
        let (status, body) = raw_get(&w, path, &cookie).await;
        assert_eq!(status, 403, "{path}: not allowed: {body}");
    }
    let (status, body) = raw_get(&w, "/ng/secrets", "").await;
    assert_eq!(status, 200, "outside the area: {body}");
}

/// A login area only has no location of its own: without `login` it would be nothing, and
/// its rewrites would never run; both are refused.
#[test]
fn a_route_without_upstream_is_a_login_area_or_refused() {
    let dir = crate::common::TempDir::new("area-only");
    let base = "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\
                [session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
                [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
                [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n\
                [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n";
    let check = |extra: &str| {
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let out = std::process::Command::new(crate::common::bin())
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = check("[[routes]]\nlocation = \"/\"\nlogin = \"crm\"\n");
    assert!(ok, "{out}");
    assert!(out.contains("(area only)"), "{out}");
    let (ok, out) = check("[[routes]]\nlocation = \"/x/\"\n");
    assert!(!ok);
    assert!(out.contains("[[routes]][2].upstream: missing"), "{out}");
    // The reason reads as one sentence (no run of blanks where the source breaks its line).
    assert!(
        out.contains("or is a login area only (`login` without `upstream`: it protects its paths"),
        "{out}"
    );
    let (ok, out) = check(
        "[[routes]]\nlocation = \"/x/\"\nlogin = \"crm\"\n\
         rewrite = [{ pattern = \"^/x/(.*)$\", replacement = \"/$1\" }]\n",
    );
    assert!(!ok);
    assert!(out.contains("[[routes]][2].rewrite"), "{out}");
    assert!(
        out.contains("its rewrites would never run (write them"),
        "{out}"
    );
}
