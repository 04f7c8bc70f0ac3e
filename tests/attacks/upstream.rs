//! What passes between the CRM and the browser through the gateway: the CRM cannot set the
//! gateway's cookies (a session fixed by the CRM, or by whatever the CRM reflects into a
//! `Set-Cookie`), and the CRM is told the host of `public_url`, not whatever `Host` a client
//! made up (the CRM builds absolute links and password-reset mails from it).

use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;

use crate::common::client;
use crate::common::upstream::{self, Echo};
use crate::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_cannot_set_the_gateways_cookies() {
    let crm = upstream::serve(Router::new().fallback(any(|| async {
        (
            axum::response::AppendHeaders([
                ("set-cookie", "wgw_session=fixed-by-the-crm; Path=/"),
                ("set-cookie", "WGW_login_abc=x; Path=/_gateway/"),
                ("set-cookie", "my_session=also-ours; Path=/"),
                // Nameless: a browser stores the value alone and sends `wgw_session=...`.
                ("set-cookie", "=wgw_session=nameless; Path=/"),
                ("set-cookie", " = my_session; Path=/"),
                ("set-cookie", "=crm_flag=1; Path=/"),
                ("set-cookie", "crm_sid=kept; Path=/; HttpOnly"),
            ]),
            "ok",
        )
            .into_response()
    })));
    let w = World::new()
        .session("cookie_name = \"my_session\"")
        .crm(crm)
        .start()
        .await;
    let r = client().get(w.gw().url("/page")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        set,
        vec!["=crm_flag=1; Path=/", "crm_sid=kept; Path=/; HttpOnly"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_host_header_does_not_reach_the_crm_as_x_forwarded_host() {
    for (trust, want_client_host) in [("", false), ("trust_host_header = true\n", true)] {
        let w = World::new().server(trust).start().await;
        let gw = w.gw();
        let r = client()
            .get(gw.url("/reset-password"))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        let echo: Echo = r.json().await.unwrap();
        let want = if want_client_host {
            "evil.example".to_owned()
        } else {
            format!("127.0.0.1:{}", gw.port)
        };
        assert_eq!(
            echo.header("x-forwarded-host"),
            Some(want.as_str()),
            "{trust}"
        );
    }
}

/// The headers the gateway writes, spelled with `_` by a client: a CRM whose framework folds
/// `_` into `-` (CGI, PHP's built-in server, wsgiref) would read them as the gateway's, and may
/// keep the first. None reaches the CRM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_headers_spelled_with_underscores_do_not_reach_the_crm() {
    let w = World::new().start().await;
    let r = client()
        .get(w.gw().url("/public-page"))
        .header("X_Forwarded_Host", "evil.example")
        .header("x_forwarded_proto", "http")
        .header("x_request_id", "forged")
        .header("X_Forwarded_For", "9.9.9.9")
        .header("x_crm_own", "kept")
        .send()
        .await
        .unwrap();
    let echo: Echo = r.json().await.unwrap();
    for name in [
        "x_forwarded_host",
        "x_forwarded_proto",
        "x_request_id",
        "x_forwarded_for",
    ] {
        assert_eq!(echo.header(name), None, "{name}");
    }
    assert_ne!(echo.header("x-request-id"), Some("forged"));
    assert_eq!(echo.header("x_crm_own"), Some("kept"), "other names pass");
}

/// A world whose only routes are the nginx file `conf`, included.
/// What the CRM received for a GET of `path` with the client's `headers`.
async fn sent_with(w: &World, path: &str, headers: &[(&str, &str)]) -> Echo {
    let mut req = client().get(w.gw().url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap().json().await.unwrap()
}

async fn with_nginx_file(conf: &str) -> World {
    World::new()
        .routes("[nginx]\ninclude = [\"{files}/crm.conf\"]\n")
        .files(&[("crm.conf", conf)])
        .start()
        .await
}

/// `X-Original-URL` / `X-Rewrite-URL` name a path that IIS rewrites, Symfony before 4.1 and
/// Zend/Laminas route on instead of the request's own: a client's copy would reach a login
/// area's handler through a public path. Neither reaches the CRM; one the nginx file sets
/// (`proxy_set_header`) is the operator's and does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_name_the_path_the_crm_routes_on() {
    let w = World::new().start().await;
    let r = client()
        .get(w.gw().url("/public-page"))
        .header("x-original-url", "/sidebar/admin")
        .header("X-Rewrite-URL", "/sidebar/admin")
        // What a CGI-style server (PHP's, wsgiref) reads as the same variable.
        .header("X_Original_URL", "/sidebar/admin")
        .header("x.rewrite.url", "/sidebar/admin")
        // And framing a folding server would read beside the real one.
        .header("Transfer_Encoding", "chunked")
        .header("content.length", "50")
        .send()
        .await
        .unwrap();
    let echo: Echo = r.json().await.unwrap();
    assert_eq!(echo.uri, "/public-page");
    for name in [
        "x-original-url",
        "x-rewrite-url",
        "x_original_url",
        "x.rewrite.url",
        "transfer_encoding",
        "content.length",
    ] {
        assert_eq!(echo.header(name), None, "{name}");
    }

    let w = with_nginx_file(
        "location /legacy/ { proxy_set_header X-Original-URL $request_uri; proxy_pass http://crm; }\n",
    )
    .await;
    let r = client()
        .get(w.gw().url("/legacy/x?a=1"))
        .header("x-original-url", "/sidebar/admin")
        .send()
        .await
        .unwrap();
    let echo: Echo = r.json().await.unwrap();
    assert_eq!(echo.header("x-original-url"), Some("/legacy/x?a=1"));
}

/// The host, port, path prefix and scheme a CRM builds links and password-reset mails with are
/// the gateway's (`X-Forwarded-Host`, `-Proto`): a client's RFC 7239 `Forwarded` (Spring's
/// `ForwardedHeaderFilter` and Rack read its `host=` first), `X-Forwarded-Port`, `-Prefix`,
/// `-Server`, `-Scheme`, `-Ssl`, `Front-End-Https` or `X-Url-Scheme` does not reach it. One
/// the nginx file sets is the operator's and does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_name_the_host_or_scheme_the_crm_builds_links_with() {
    let claims = [
        ("Forwarded", "for=1.1.1.1;host=evil.example;proto=https"),
        ("X-Forwarded-Port", "8443"),
        ("X-Forwarded-Prefix", "/evil"),
        ("X-Forwarded-Server", "evil.example"),
        ("X-Forwarded-Scheme", "https"),
        ("X-Forwarded-Ssl", "on"),
        ("Front-End-Https", "on"),
        ("X-Url-Scheme", "https"),
        ("X_Forwarded_Port", "8443"),
        ("X-Forwarded-Protocol", "http"),
        ("X-Original-Host", "evil.example"),
        ("X-Host", "evil.example"),
        ("X-Proxied-Https", "on"),
        ("X-ARR-SSL", "on"),
        ("CloudFront-Forwarded-Proto", "https"),
        ("Proxy-auth-cert", "forged"),
        ("Proxy-ssl-id", "forged"),
        ("X-Original-URI", "/sidebar/admin"),
        ("X-Forwarded-Uri", "/sidebar/admin"),
        ("X-Forwarded-Path", "/sidebar/admin"),
    ];
    let w = with_nginx_file(
        "location / { proxy_pass http://crm; }\n\
         location /legacy/ { proxy_set_header X-Forwarded-Port 443; proxy_pass http://crm; }\n",
    )
    .await;
    for path in ["/public-page", "/legacy/x"] {
        let echo = sent_with(&w, path, &claims).await;
        for (name, _) in claims {
            let got = echo.header(&name.to_ascii_lowercase());
            match (path, name) {
                ("/legacy/x", "X-Forwarded-Port") => assert_eq!(got, Some("443"), "{path}"),
                _ => assert_eq!(got, None, "{path} {name}"),
            }
        }
        assert!(echo.header("x-forwarded-host").is_some(), "{path}");
    }
}

/// The client's address as proxies and CDNs name it (`X-Real-IP`, `True-Client-IP`,
/// `CF-Connecting-IP`...), which CRMs read for allow-lists, login rate limits and audit logs:
/// a client's own copy does not reach the CRM; a `[[routes]]` entry's `X-Real-IP` is the
/// client's address, as nearly every nginx file sets it; a location of the file passes what
/// it sets (nothing without a line, as nginx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_name_the_address_the_crm_sees() {
    let claims = [
        ("X-Real-IP", "6.6.6.6"),
        ("X_Real_IP", "6.6.6.6"),
        ("True-Client-IP", "6.6.6.6"),
        ("X-Client-IP", "6.6.6.6"),
        ("Client-IP", "6.6.6.6"),
        ("CF-Connecting-IP", "6.6.6.6"),
        ("X-Cluster-Client-IP", "6.6.6.6"),
        ("Fastly-Client-IP", "6.6.6.6"),
        ("Proxy-Client-IP", "6.6.6.6"),
        ("WL-Proxy-Client-IP", "6.6.6.6"),
        ("X-Originating-IP", "6.6.6.6"),
        ("X-Remote-IP", "6.6.6.6"),
        ("X-Remote-Addr", "6.6.6.6"),
        ("X-Forwarded", "for=6.6.6.6"),
        ("Forwarded-For", "6.6.6.6"),
    ];
    let w = with_nginx_file(
        "location / { proxy_pass http://crm; }\n\
         location /legacy/ { proxy_set_header X-Real-IP 10.1.2.3; proxy_pass http://crm; }\n",
    )
    .await;
    for path in ["/public-page", "/legacy/x"] {
        let echo = sent_with(&w, path, &claims).await;
        for (name, _) in &claims[1..] {
            assert_eq!(
                echo.header(&name.to_ascii_lowercase()),
                None,
                "{path} {name}"
            );
        }
        // The file's own line, else none (nginx's), never the client's; repeated values would
        // be joined: one copy, the right one.
        let want = (path == "/legacy/x").then_some("10.1.2.3");
        assert_eq!(echo.header("x-real-ip"), want, "{path}");
    }
    // A `[[routes]]` entry: the gateway's.
    let w = World::new().start().await;
    let echo: Echo = client()
        .get(w.gw().url("/public-page"))
        .header("X-Real-IP", "6.6.6.6")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.header("x-real-ip"), Some("127.0.0.1"));
}
