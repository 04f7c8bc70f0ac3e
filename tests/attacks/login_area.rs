//! Item 4: a login route protects a path *area* (SPEC section 5, step 6), whichever location
//! finally handles the request: a regex `[[routes]]` entry, a location of an included nginx
//! file (with `proxy_pass` or static files), the location a `rewrite ... last` lands in, or the
//! public route a Servlet container's reading of `;` would hand the protected path to.

use crate::common::browser::{Browser, WXWORK_UA};
use crate::world::{Setup, World};

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
    ("/favicon.ico", 200),
    ("/old", 200),
];

async fn check(w: &World, cases: &[(&str, u16)]) {
    let mut anon = Browser::new(WXWORK_UA);
    for (path, want) in cases {
        let r = anon.get_json(&w.gw.url(path), &[]).await;
        assert_eq!(r.status().as_u16(), *want, "anonymous {path}");
        if *want == 401 {
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "login_required", "{path}");
        }
    }
    let mut member = w.member().await;
    for (path, want) in cases {
        let r = member.get_json(&w.gw.url(path), &[]).await;
        assert_eq!(r.status().as_u16(), 200, "member {path}");
        let text = r.text().await.unwrap();
        if *want == 401 && !path.contains("/assets/") {
            assert!(
                text.contains("\"x-wecom-userid\":\"zhangsan\""),
                "{path}: {text}"
            );
        }
        if path.contains("/assets/") {
            assert_eq!(text, "the app\n");
        }
    }
}

async fn redirects_to_the_slash(w: &World) {
    let mut anon = Browser::new(WXWORK_UA);
    for (path, want) in [
        ("/sidebar", "/sidebar/"),
        ("/sidebar?tab=1", "/sidebar/?tab=1"),
    ] {
        let r = anon.get(&w.gw.url(path)).await;
        assert_eq!(r.status(), 301, "{path}");
        let loc = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(loc.ends_with(want), "{path} -> {loc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_route_a_missing_slash_or_a_path_parameter_does_not_lift_login() {
    let w = World::with(Setup {
        rest: ROUTES,
        ..Setup::default()
    })
    .await;
    redirects_to_the_slash(&w).await;
    check(&w, WALKAROUNDS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_of_an_included_nginx_file_does_not_lift_login() {
    let w = World::with(Setup {
        rest: WITH_INCLUDE,
        files: &[("legacy.conf", LEGACY_CONF)],
        ..Setup::default()
    })
    .await;
    std::fs::create_dir_all(w.files.path().join("www/sidebar/assets")).unwrap();
    std::fs::write(
        w.files.path().join("www/sidebar/assets/app.txt"),
        "the app\n",
    )
    .unwrap();
    redirects_to_the_slash(&w).await;
    check(&w, WALKAROUNDS).await;
    check(&w, INCLUDE_WALKAROUNDS).await;
}
