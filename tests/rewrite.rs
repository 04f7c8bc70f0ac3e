//! SPEC section 5 step 4: `[[rewrite]]`, route `rewrite` lists and `[nginx] include` rules,
//! answered by the real gateway. One line per request and expected answer, as nginx-tests'
//! rewrite.t.

mod common;

use common::upstream::{self, Echo};
use common::{bin, client, Gateway, TempDir};

/// (request target, status, Location) — Location "" means none expected.
type Case = (&'static str, u16, &'static str);

async fn check(gw: &Gateway, cases: &[Case]) {
    let c = client();
    let base = format!("http://127.0.0.1:{}", gw.port);
    for (uri, status, location) in cases {
        let resp = c.get(gw.url(uri)).send().await.unwrap();
        let got_loc = resp
            .headers()
            .get("location")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let want = location.replace("{BASE}", &base);
        assert_eq!(
            (resp.status().as_u16(), got_loc.as_str()),
            (*status, want.as_str()),
            "GET {uri}"
        );
    }
}

#[tokio::test]
async fn seed_004_hash_route_rewrites_redirect_like_nginx() {
    let up = upstream::echo("crm");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.crm]
url = "{}"

[[routes]]
location = "/"
upstream = "crm"

[[rewrite]]
pattern = '^/home/register(.*)'
replacement = "/home#/register"
flag = "permanent"

[[rewrite]]
pattern = '^/login(.*)'
replacement = "/#/login"
flag = "permanent"
"#,
        up.url()
    ));
    check(
        &gw,
        &[
            ("/home/register", 301, "{BASE}/home#/register"),
            (
                "/home/register?code=abc&state=x",
                301,
                "{BASE}/home#/register?code=abc&state=x",
            ),
            ("/home/register/extra", 301, "{BASE}/home#/register"),
            ("/home/%72egister", 301, "{BASE}/home#/register"),
            ("/login", 301, "{BASE}/#/login"),
            ("/login?x=1", 301, "{BASE}/#/login?x=1"),
            ("/home", 200, ""),
            ("/other?q=1", 200, ""),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_route_rewrite_with_last_changes_the_route_and_the_upstream_uri() {
    let old = upstream::echo("old");
    let new = upstream::echo("new");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.old]
url = "{}"
[upstreams.new]
url = "{}"

[[routes]]
location = "/legacy/"
upstream = "old"
rewrite = [{{ pattern = '^/legacy/(.*)$', replacement = '/v2/$1', flag = "last" }}]

[[routes]]
location = "/v2/"
upstream = "new"

[[routes]]
location = "/"
upstream = "old"
"#,
        old.url(),
        new.url()
    ));
    let c = client();
    let echo: Echo = c
        .get(gw.url("/legacy/customers/7?tab=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.name, "new", "the rewritten URI selects the /v2/ route");
    assert_eq!(
        echo.uri, "/v2/customers/7?tab=1",
        "proxy_pass without a URI part sends the rewritten URI and the args"
    );
    let echo: Echo = c
        .get(gw.url("/plain/x%20y?a=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo.name.as_str(), echo.uri.as_str()),
        ("old", "/plain/x%20y?a=1"),
        "an unrewritten request goes upstream as the client wrote it"
    );
}

#[tokio::test]
async fn return_and_bad_paths_answer_in_the_rewrite_phase() {
    let up = upstream::echo("crm");
    let dir = TempDir::new("ngx-return");
    std::fs::write(
        dir.path().join("crm.conf"),
        "location = /admin { return 403; }\n\
         location /gone { return 410 \"gone for good\"; }\n\
         location /old { return 302 /new$is_args$args; }\n\
         location /crm/ { proxy_pass http://crm; }\n",
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        up.url(),
        dir.path().join("crm.conf").display()
    ));
    check(
        &gw,
        &[
            ("/admin", 403, ""),
            ("/gone/x", 410, ""),
            ("/old?a=b", 302, "{BASE}/new?a=b"),
            ("/crm", 301, "{BASE}/crm/"),
            ("/nothing-here", 404, ""),
        ],
    )
    .await;
    let c = client();
    let body = c.get(gw.url("/gone")).send().await.unwrap().text().await;
    assert_eq!(body.unwrap(), "gone for good");
    let echo: Echo = c
        .get(gw.url("/crm/x?y=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (echo.name.as_str(), echo.uri.as_str()),
        ("crm", "/crm/x?y=1"),
        "proxy_pass http://crm reaches [upstreams.crm] through the include"
    );
    let raw = common::raw_request(
        gw.port,
        b"GET /../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(common::parse_status(&raw), Some(400));
}

fn check_config(toml: &str, tag: &str) -> (bool, String) {
    let dir = TempDir::new(tag);
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_regex_is_a_config_error_at_its_line() {
    let (ok, err) = check_config(
        "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n\
         [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n\
         rewrite = [{ pattern = '^/(a', replacement = '/b' }]\n",
        "badre",
    );
    assert!(!ok);
    assert!(
        err.contains(":9:") && err.contains("[[routes]][1].rewrite[1].pattern"),
        "{err}"
    );
    assert!(err.contains("pcre2_compile() failed"), "{err}");
}

#[test]
fn unsupported_and_unknown_nginx_directives_are_config_errors_with_file_and_line() {
    let dir = TempDir::new("ngx-unsup");
    std::fs::write(
        dir.path().join("crm.conf"),
        "server {\n  listen 80;\n  ssl_certificate crm.pem;\n  location / {\n    proxy_buffering off;\n    proxy_pass http://crm;\n  }\n}\n",
    )
    .unwrap();
    let toml = |up: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\n\
             [upstreams.{up}]\nurl = \"http://127.0.0.1:9\"\n\
             [nginx]\ninclude = [\"{}\"]\n",
            dir.path().join("crm.conf").display()
        )
    };
    let (ok, err) = check_config(&toml("crm"), "unsup");
    assert!(!ok);
    assert!(
        err.contains("crm.conf:3: directive 'ssl_certificate' is not supported")
            && err.contains("crm.conf:5: directive 'proxy_buffering' is not supported"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("crm.conf"),
        "location / {\n  proxy_pass http://crn;\n}\n",
    )
    .unwrap();
    let (ok, err) = check_config(&toml("crm"), "unknown");
    assert!(!ok);
    assert!(
        err.contains("crm.conf:2:") && err.contains("unknown upstream (known: crm)"),
        "{err}"
    );
}
