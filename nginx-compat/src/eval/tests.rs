//! One line per request and expected answer, in the manner of nginx-tests rewrite.t,
//! rewrite_if.t and http_absolute_redirect.t. Expectations were checked against nginx 1.22.

use crate::{Config, Outcome, Request};

fn eval(body: &str, uri: &str) -> Outcome {
    let cfg = Config::parse(
        "t.conf",
        &format!("server {{ server_name localhost; {body} }}"),
    )
    .unwrap();
    cfg.servers[0].evaluate(&Request::get(uri, "localhost"))
}

fn redirect(status: u16, loc: &str) -> Outcome {
    Outcome::Redirect {
        status,
        location: loc.as_bytes().to_vec(),
    }
}

#[test]
fn rewrite_redirects_like_rewrite_t() {
    let cases: &[(&str, &str, Outcome)] = &[
        (
            "location / { rewrite ^/home/register(.*) /home#/register permanent; }",
            "/home/register?code=1",
            redirect(301, "http://localhost/home#/register?code=1"),
        ),
        (
            "location / { rewrite ^(.*) /x? redirect; }",
            "/a?b=1",
            redirect(302, "http://localhost/x"),
        ),
        (
            "location / { rewrite ^ http://e.x/y?z=1; }",
            "/a?b=1",
            redirect(302, "http://e.x/y?z=1&b=1"),
        ),
        (
            "location / { rewrite ^/(.*) /t/$1 redirect; }",
            "/a%20b",
            redirect(302, "http://localhost/t/a%20b"),
        ),
        (
            "location / { rewrite ^/(.*) /t/$1 redirect; }",
            "/%41",
            redirect(302, "http://localhost/t/A"),
        ),
        (
            "absolute_redirect off; location / { return 301 /n; }",
            "/",
            redirect(301, "/n"),
        ),
        (
            "port_in_redirect off; location / { return 302 /n; }",
            "/",
            redirect(302, "http://localhost/n"),
        ),
    ];
    for (body, uri, want) in cases {
        assert_eq!(&eval(body, uri), want, "{body} GET {uri}");
    }
}

#[test]
fn internal_rewrites_and_the_cycle_limit() {
    let body =
        "location / { rewrite ^/a(.*) /b$1?x=$1 last; } location /b { proxy_pass http://up; }";
    assert_eq!(
        eval(body, "/a1?o=2"),
        Outcome::Proxy {
            location: vec![1],
            uri: b"/b1".to_vec(),
            args: b"x=1&o=2".to_vec(),
            target: "http://up".into()
        }
    );
    let cycle = eval("location / { rewrite ^ /again last; }", "/x");
    assert!(matches!(cycle, Outcome::InternalError(_)), "{cycle:?}");
}

#[test]
fn if_and_set_like_rewrite_if_t() {
    let body = r#"location / { set $v "a$arg_q"; if ($v = "ab") { return 200 "eq"; }
                  if ($uri ~ ^/(?<n>\d+)$) { return 200 "num $n $1"; } return 200 "$v"; }"#;
    let ret = |s: &str| Outcome::Return {
        status: 200,
        body: Some(s.as_bytes().to_vec()),
    };
    assert_eq!(eval(body, "/?q=b"), ret("eq"));
    assert_eq!(eval(body, "/42"), ret("num 42 42"));
    assert_eq!(eval(body, "/z?q=c"), ret("ac"));
}

#[test]
fn unsupported_directives_are_listed_with_their_line() {
    let cfg = Config::parse(
        "crm.conf",
        "server {\n listen 80;\n gzip on;\n location / {\n  proxy_set_header Host $host;\n }\n}",
    )
    .unwrap();
    let lines: Vec<String> = cfg.unsupported.iter().map(|u| u.to_string()).collect();
    assert_eq!(
        lines,
        [
            "crm.conf:3: directive 'gzip' is not supported",
            "crm.conf:5: directive 'proxy_set_header' is not supported"
        ]
    );
}

#[test]
fn bad_config_errors_name_the_position() {
    let e = Config::parse("x.conf", "server {\n location / { rewrite ^( /x; }\n}").unwrap_err();
    assert!(e.to_string().starts_with("x.conf:2:"), "{e}");
    let e = Config::parse("x.conf", "server { location /a {} location /a {} }").unwrap_err();
    assert!(e.to_string().contains("duplicate location"), "{e}");
}
