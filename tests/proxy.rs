//! The public listener in front of test upstreams: SPEC section 5 steps 1, 2, 5, 8 and 9.

mod common;

use std::time::{Duration, Instant};

use common::upstream::{self, Echo};
use common::world::{App, World};
use common::{client, parse_status, raw_request};

#[tokio::test]
async fn proxies_method_path_query_body_and_headers() {
    let w = World::new().start().await;
    let gw = w.gw();
    let resp = client()
        .put(gw.url("/api/customers/42?tab=1&x=%20y"))
        .header("X-Custom", "v1")
        .header("Content-Type", "application/json")
        .body(r#"{"name":"王小明"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.method, "PUT");
    assert_eq!(
        echo.uri, "/api/customers/42?tab=1&x=%20y",
        "the raw URI goes upstream unchanged"
    );
    assert_eq!(echo.body, r#"{"name":"王小明"}"#);
    assert_eq!(echo.header("x-custom"), Some("v1"));
    assert_eq!(echo.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let w = World::new().start().await;
    let gw = w.gw();
    // Raw request: reqwest would normalise header case, and underscores must be tested as sent.
    let raw = "GET /whoever HTTP/1.1\r\nHost: 127.0.0.1\r\nX-WeCom-UserId: boss\r\nx_wecom_userid: boss\r\n\
X-WECOM-USERID: boss\r\nX-Gateway-Assertion: forged\r\nx_gateway_assertion: forged\r\nX-WeChat-OpenId: o1\r\n\
X-WeCom-External-UserId: wm1\r\nx-wecom_external-unionid: u1\r\nX_WECHAT_UNIONID: u2\r\nX-Kept: yes\r\n\
Connection: close\r\n\r\n";
    let resp = raw_request(gw.port, raw.as_bytes()).unwrap();
    assert_eq!(parse_status(&resp), Some(200));
    let body = &resp[resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
    let body = String::from_utf8_lossy(body);
    let json_start = body.find('{').unwrap();
    let echo: Echo = serde_json::from_str(body[json_start..].trim_end().trim_end_matches("\r\n0"))
        .unwrap_or_else(|_| {
            // chunked framing: take the JSON object only
            let end = body.rfind('}').unwrap();
            serde_json::from_str(&body[json_start..=end]).unwrap()
        });
    for name in echo.headers.keys() {
        let folded = name.replace('_', "-");
        assert!(
            !(folded.starts_with("x-wecom-")
                || folded.starts_with("x-wechat-")
                || folded.starts_with("x-gateway-")),
            "spoofed header {name} reached the upstream"
        );
    }
    assert_eq!(echo.header("x-kept"), Some("yes"));
}

#[tokio::test]
async fn forwarding_headers_and_request_id() {
    let w = World::new().start().await;
    let gw = w.gw();
    let c = client();

    let resp = c
        .get(gw.url("/a"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Request-Id", "abc-123")
        // What public_url says wins over a client's claims, and no copy of them goes along.
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "abc-123",
        "the client sees the id it can quote"
    );
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(
        echo.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(echo.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        echo.header("x-forwarded-host"),
        Some(format!("127.0.0.1:{}", gw.port).as_str())
    );
    assert_eq!(echo.header("x-request-id"), Some("abc-123"));

    // An id that is not plain is replaced by a generated one.
    let echo: Echo = c
        .get(gw.url("/a"))
        .header("X-Request-Id", "bad id<script>")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rid = echo.header("x-request-id").unwrap();
    assert_eq!(rid.len(), 32);
    assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()));

    let echo: Echo = c
        .get(gw.url("/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.header("x-forwarded-for"), Some("127.0.0.1"));
}

#[tokio::test]
async fn gateway_cookies_and_hop_by_hop_headers_stay_at_the_gateway() {
    let w = World::new().start().await;
    let gw = w.gw();
    let echo: Echo = client()
        .get(gw.url("/a"))
        .header("Cookie", "crm_sid=1; wgw_session=SECRET; wgw_login=L")
        .header("Connection", "X-Hop")
        .header("X-Hop", "1")
        .header("Proxy-Authorization", "Basic eA==")
        .header("WGW-Contact", "ticket")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo.header("cookie"), Some("crm_sid=1"));
    assert_eq!(echo.header("x-hop"), None);
    assert_eq!(echo.header("proxy-authorization"), None);
    assert_eq!(echo.header("wgw-contact"), None);
}

/// nginx's location order, pinned like http_location.t: one line per request and the route
/// that must answer it.
#[tokio::test]
async fn location_matching_follows_nginx_order() {
    let names = ["exact", "noregex", "regex1", "regex2", "prefix", "root"];
    let ups: Vec<_> = names.iter().map(|n| upstream::echo(n)).collect();
    let (mut upstreams, mut routes) = (String::new(), String::new());
    for (n, u) in names.iter().zip(&ups) {
        upstreams.push_str(&format!("[upstreams.{n}]\nurl = \"{}\"\n", u.url()));
    }
    for (loc, up) in [
        ("= /exact", "exact"),
        ("^~ /static/", "noregex"),
        ("~ \\\\.php$", "regex1"),
        ("~* \\\\.(PNG|jpg)$", "regex2"),
        ("/static/long/", "prefix"),
        ("/", "root"),
    ] {
        routes.push_str(&format!(
            "[[routes]]\nlocation = \"{loc}\"\nupstream = \"{up}\"\n"
        ));
    }
    let w = World::new().toml(&upstreams).routes(&routes).start().await;
    let gw = w.gw();
    let cases = [
        ("/exact", "exact"),
        ("/exact/", "root"),
        ("/static/a.php", "noregex"),
        ("/static/long/a.php", "regex1"),
        ("/static/long/a.txt", "prefix"),
        ("/x/a.php", "regex1"),
        ("/x/a.png", "regex2"),
        ("/x/A.JPG", "regex2"),
        ("/x/a.PHP", "root"),
        ("/", "root"),
        ("/static/../a.php", "regex1"),
        ("/%73tatic/a.php", "noregex"),
        ("//static//a.php", "noregex"),
        ("/exact?x=1", "exact"),
    ];
    let c = client();
    for (path, want) in cases {
        let echo: Echo = c
            .get(gw.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(echo.name, want, "{path}");
    }
}

#[tokio::test]
async fn malformed_paths_get_400_with_a_request_id() {
    let w = World::new().start().await;
    let gw = w.gw();
    for path in ["/../etc/passwd", "/a/../../b", "/%zz", "/a%00b"] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        let resp = raw_request(gw.port, raw.as_bytes()).unwrap();
        assert_eq!(parse_status(&resp), Some(400), "{path}");
        let text = String::from_utf8_lossy(&resp);
        assert!(
            text.contains("\"error\":\"bad_request\"") && text.contains("request_id"),
            "{path}: {text}"
        );
    }
}

#[tokio::test]
async fn upstream_down_is_a_quick_502_in_json_or_html() {
    let dead = upstream::closed_addr();
    let w = World::new().crm_at(&format!("http://{dead}")).start().await;
    let gw = w.gw();
    let c = client();
    let start = Instant::now();
    let resp = c
        .get(gw.url("/a"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "refused connections fail fast"
    );
    assert_eq!(resp.status(), 502);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "upstream_unavailable");
    assert_eq!(v["request_id"], rid.as_str());

    let resp = c
        .get(gw.url("/a"))
        .header("Accept", "text/html,*/*")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("request id"));

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("wgw_upstream_errors_total{kind=\"connect\",upstream=\"crm\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn slow_upstream_is_a_504_at_read_timeout() {
    let w = World::new()
        .crm_keys("read_timeout = \"300ms\"")
        .start()
        .await;
    let gw = w.gw();
    let resp = client().get(gw.url("/slow?ms=3000")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "upstream_unavailable");
    // And a fast one on the same route still works.
    assert_eq!(
        client()
            .get(gw.url("/slow?ms=1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn no_route_is_404() {
    let w = World::new()
        .routes("[[routes]]\nlocation = \"/app/\"\nupstream = \"crm\"\n")
        .start()
        .await;
    let gw = w.gw();
    let resp = client().get(gw.url("/other")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "not_found");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let w = World::new().start().await;
    let gw = w.gw();
    let c = client();
    for _ in 0..3 {
        assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    }
    gw.wait_metric("wgw_requests_total{route=\"/\",status=\"200\"} 3")
        .await;
    gw.wait_metric("wgw_request_duration_seconds_count{route=\"/\"} 3")
        .await;
    assert_eq!(
        c.get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn login_routes_keep_the_fragment_for_navigations_and_answer_401_to_apis() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm"))
        .routes("[[routes]]\nlocation = \"/sidebar/\"\nupstream = \"crm\"\nlogin = \"crm\"\n")
        .start()
        .await;
    let gw = w.gw();
    let c = client();
    let resp = c
        .get(gw.url("/sidebar/?a=1"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("location.hash"), "{page}");
    assert!(
        page.contains("/_gateway/login?app=crm&amp;return_to=%2Fsidebar%2F%3Fa%3D1"),
        "{page}"
    );

    let resp = c
        .get(gw.url("/sidebar/api"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "login_required");
    assert!(v["login_url"]
        .as_str()
        .unwrap()
        .starts_with("/_gateway/login?app=crm&return_to="));
}

/// `Upgrade` counts only where `Connection` lists it (RFC 9110 7.8): without it the request
/// is a plain one, as a front proxy reusing its connection reads it, and the CRM is not asked
/// to switch protocols (a switch would make the connection a raw tunnel past the gateway's
/// checks for whatever the front proxy sends on it next).
#[tokio::test]
async fn an_upgrade_not_listed_in_connection_is_not_passed_on() {
    use std::io::Write;
    let w = World::new().start().await;
    let gw = w.gw();
    for connection in ["", "Connection: close\r\n", "Connection: keep-alive, x\r\n"] {
        let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!("GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n{connection}\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let r = common::raw::read_response(&mut s, &mut Vec::new());
        assert_eq!(r.status, 200, "{connection:?}");
        let echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let headers = &echo["headers"];
        assert!(
            headers.get("upgrade").is_none(),
            "{connection:?}: {headers}"
        );
        assert_ne!(
            headers["connection"], "upgrade",
            "{connection:?}: {headers}"
        );
    }
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    use std::io::{Read, Write};
    // An upstream that answers the handshake with 101 and then echoes bytes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
        assert!(
            text.contains("upgrade: websocket") && text.contains("connection: upgrade"),
            "{text}"
        );
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    let w = World::new().crm_at(&format!("http://{addr}")).start().await;
    let gw = w.gw();
    let mut s = std::net::TcpStream::connect(gw.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed during handshake");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(parse_status(&got), Some(101));
    s.write_all(b"ping-frame").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping-frame");
    // Once the tunnel ends, its line and count say 101, not 0.
    drop(s);
    gw.wait_log("path=/ws");
    let line = gw
        .log()
        .lines()
        .find(|l| l.contains("path=/ws"))
        .unwrap()
        .to_owned();
    assert!(line.contains("status=101"), "{line}");
    assert!(gw.metrics().await.contains("status=\"101\""));
}

#[tokio::test]
async fn logs_one_line_per_request_and_never_a_secret() {
    let w = World::new().args(&["--log-format", "json"]).start().await;
    let gw = w.gw();
    let c = client();
    c.get(gw.url("/cb?code=CODE-SECRET-1&access_token=TOKEN-SECRET-2"))
        .header("Cookie", "wgw_session=COOKIE-SECRET-3")
        .header("X-Request-Id", "rid-log-1")
        .send()
        .await
        .unwrap();
    gw.wait_log("rid-log-1");
    let log = gw.log();
    let line = log.lines().find(|l| l.contains("rid-log-1")).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["path"], "/cb");
    assert_eq!(v["status"], 200);
    assert_eq!(v["route"], "/");
    for secret in ["CODE-SECRET-1", "TOKEN-SECRET-2", "COOKIE-SECRET-3"] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

/// `Expect: 100-continue` is answered by the gateway, as nginx answers it, and not passed to
/// an upstream that would never answer it; the upstream's `Keep-Alive` (hop-by-hop) stays
/// with the gateway; the connection is kept for the next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_and_keep_alive_stay_between_their_own_hops() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = heads.clone();
    // An upstream that never sends `100` and names its own idle time.
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    seen.lock().unwrap().push(head.to_ascii_lowercase());
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5, max=100\r\n\r\nok")
                        .unwrap();
                }
            });
        }
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.raw]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"raw\"\n"
    ));
    let gw_port = gw.port;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
        // A bound on a hang (the body is never sent without the 100), not a timing check.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(
            b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
        let mut pending = Vec::new();
        let first = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(first.status, 100, "the gateway's own 100 Continue");
        s.write_all(b"hello").unwrap();
        let r = common::raw::read_response(&mut s, &mut pending);
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        assert_eq!(r.header("connection"), Some("keep-alive"));
        assert_eq!(r.header("keep-alive"), None, "the upstream's idle time");
        s.write_all(b"GET /y HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let again = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(again.status, 200, "the connection was kept");
    })
    .await
    .unwrap();
    let heads = heads.lock().unwrap();
    assert!(heads[0].starts_with("post /x") && heads[0].contains("content-length: 5"));
    assert!(!heads[0].contains("expect:"), "{}", heads[0]);
}

/// A CRM that answers a POST at once without reading its body and keeps the connection (as
/// Python's own `http.server` does): the body left on the connection would be read as the
/// start of the next request sent on it, another client's, with its identity headers. The
/// connection is not reused after a request with a body answered with anything but a
/// success; the next client's request is its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_the_upstream_left_unread_never_becomes_the_next_clients_request() {
    use std::io::Write;
    // It reads no body: what follows a request's head is read as the next request.
    let (port, lines) = raw_crm(|line, _, _, w| {
        let answer = if line.starts_with("POST /accept") {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_owned()
        } else if line.starts_with("POST") {
            "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope".to_owned()
        } else {
            let body = line.trim_end().to_owned();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        w.write_all(answer.as_bytes())
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.naive]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"naive\"\n"
    ));
    let gw_port = gw.port;
    tokio::task::spawn_blocking(move || {
        let smuggled = "GET /smuggled HTTP/1.1\r\nX-Ignore: ";
        let late = "GET /late HTTP/1.1\r\nX-WeCom-UserId: boss\r\n\r\n";
        for round in 0..8 {
            let mut a = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
            a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            if round % 2 == 0 {
                // Refused at once, the body sent whole.
                write!(
                    a,
                    "POST /early HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{smuggled}",
                    smuggled.len()
                )
                .unwrap();
                let mut pending = Vec::new();
                let r = common::raw::read_response(&mut a, &mut pending);
                assert_eq!(r.status, 413);
            } else {
                // Accepted (a 200) before the body has come: what comes after is left unread.
                // (A body longer than the gateway reads whole before asking the upstream.)
                let first = "x".repeat(70_000);
                write!(
                    a,
                    "POST /accept HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{first}",
                    late.len() + first.len()
                )
                .unwrap();
                let mut pending = Vec::new();
                let r = common::raw::read_response(&mut a, &mut pending);
                assert_eq!(r.status, 200);
                // What comes after a complete answer is not the upstream's: not sent on.
                let _ = a.write_all(late.as_bytes());
                std::thread::sleep(Duration::from_millis(100));
            }
            // Another client, on connections of its own, on every worker thread's pool.
            for _ in 0..4 {
                let mut b = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
                b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                b.write_all(b"GET /plain HTTP/1.1\r\nHost: h\r\n\r\n")
                    .unwrap();
                let mut pending = Vec::new();
                let r = common::raw::read_response(&mut b, &mut pending);
                assert_eq!(
                    String::from_utf8_lossy(&r.body),
                    "GET /plain HTTP/1.1",
                    "another request's answer"
                );
            }
        }
    })
    .await
    .unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        !lines.iter().any(|l| l.contains("GET /late")),
        "what followed a complete answer reached the upstream: {lines:?}"
    );
}

/// A CRM handler that answers without reading the body (an early 401, a GET handler), on a
/// server that keeps its connection (Python's `http.server`): the body's bytes would be read
/// as a request of their own, with the headers the client wrote in them, before any answer
/// came back. Asked to close after a request with a body, the server reads no further (as
/// behind nginx's default HTTP/1.0 hop): the smuggled request is never read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_inside_a_body_the_crm_does_not_read_is_never_read_as_one() {
    use std::io::Write;
    let (port, lines) = raw_crm(|line, _, _, w| {
        let answer = if line.starts_with("POST /api/needs-token") {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\ntoken"
        } else {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        };
        w.write_all(answer.as_bytes())
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.naive]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"naive\"\n"
    ));
    let gw_port = gw.port;
    tokio::task::spawn_blocking(move || {
        let smuggled = "POST /api/transfer?to=attacker HTTP/1.1\r\nHost: crm\r\n\
                        X-WeCom-UserId: boss\r\nContent-Length: 0\r\n\r\n";
        for (method, path, framing) in [
            ("POST", "/api/needs-token", "length"),
            ("GET", "/index.html", "length"),
            ("POST", "/api/needs-token", "chunked"),
        ] {
            let mut a = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
            a.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let head = format!("{method} {path} HTTP/1.1\r\nHost: h\r\n");
            let request = if framing == "length" {
                format!("{head}Content-Length: {}\r\n\r\n{smuggled}", smuggled.len())
            } else {
                format!(
                    "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
                    smuggled.len()
                )
            };
            a.write_all(request.as_bytes()).unwrap();
            let mut pending = Vec::new();
            let r = common::raw::read_response(&mut a, &mut pending);
            assert!(
                matches!(r.status, 200 | 401),
                "{method} {path}: {}",
                r.status
            );
        }
        // Whatever the CRM would have read next, it has had the time to.
        let mut b = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        b.write_all(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        let mut pending = Vec::new();
        assert_eq!(common::raw::read_response(&mut b, &mut pending).status, 200);
    })
    .await
    .unwrap();
    let lines = lines.lock().unwrap();
    assert!(
        !lines.iter().any(|l| l.contains("/api/transfer")),
        "the CRM read the request inside a body: {lines:?}"
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
}

/// `103 Early Hints` sent by the CRM while the request's body is still coming is passed on and
/// is no answer: the final 200, after the whole body, leaves the client's connection open for
/// its next request (it was closed, as after an early answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_during_an_upload_leave_the_connection_open() {
    use std::io::{Read, Write};
    let (port, _) = raw_crm(|line, length, r, w| {
        if line.starts_with("POST") {
            w.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")?;
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body)?;
        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.up]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"up\"\n"
    ));
    let gw_port = gw.port;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw_port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // Longer than the gateway reads whole before asking the upstream: sent on as it comes.
        let first = "h".repeat(70_000);
        write!(
            s,
            "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{first}",
            first.len() + 5
        )
        .unwrap();
        let mut pending = Vec::new();
        let hints = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(hints.status, 103);
        s.write_all(b"world").unwrap();
        let r = common::raw::read_response(&mut s, &mut pending);
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        assert_eq!(r.header("connection"), Some("keep-alive"));
        s.write_all(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        let again = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(again.status, 200, "the connection was kept");
    })
    .await
    .unwrap();
}

/// The request lines a [`raw_crm`] read, in order.
type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A CRM written with raw sockets: for each request on a connection, its request line and
/// `Content-Length` go to `answer`, which reads the body (or leaves it) and writes the answer;
/// an error ends the connection. Its port, and the request lines it read.
fn raw_crm<F>(answer: F) -> (u16, Lines)
where
    F: Fn(
            &str,
            usize,
            &mut std::io::BufReader<std::net::TcpStream>,
            &mut std::net::TcpStream,
        ) -> std::io::Result<()>
        + Send
        + Sync
        + 'static,
{
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Lines::default();
    let seen = lines.clone();
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            let (seen, answer) = (seen.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                loop {
                    let (mut line, mut length, mut close) = (String::new(), 0usize, false);
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    seen.lock().unwrap().push(line.clone());
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        let h = h.to_ascii_lowercase();
                        if let Some(v) = h.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        close |= h.starts_with("connection:") && h.contains("close");
                    }
                    // `Connection: close` read: no further request on this connection, as
                    // Python's `http.server` (and most servers) honour it.
                    if answer(&line, length, &mut r, &mut w).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (port, lines)
}

/// An upstream that answers each connection's request with `answer`, then closes.
fn scripted_upstream(answer: &'static [u8]) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(answer);
        }
    });
    addr
}

/// An HTTP/1.0 upstream's answer reaches an HTTP/1.1 client
/// with the gateway's own status line, HTTP/1.1, as nginx's: an `HTTP/1.0` line with chunked
/// framing is a message a strict client reads as badly framed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_upstream_answer_goes_out_as_http_1_1() {
    let old = scripted_upstream(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    );
    let w = World::new().crm_at(&format!("http://{old}")).start().await;
    let resp = raw_request(
        w.gw().port,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.contains("hello"), "{text}");
}

/// An upstream answer framed with a coding other than `chunked` (`xchunked`: read to the
/// connection's end, passed on as it came, a proxy in front could read a second answer in its
/// body) is nginx's 502; no 1xx reaches an HTTP/1.0 client (RFC 9110 15.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_answer_in_an_unknown_coding_is_a_502_and_1_0_clients_get_no_1xx() {
    let smuggling = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: xchunked\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-Poison: 1\r\n\r\npwned!",
    );
    let w = World::new()
        .crm_at(&format!("http://{smuggling}"))
        .start()
        .await;
    let resp = raw_request(
        w.gw().port,
        b"GET /x HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert_eq!(parse_status(&resp), Some(502), "{text}");
    assert!(!text.contains("pwned") && !text.to_ascii_lowercase().contains("xchunked"));

    let hints = scripted_upstream(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    let w = World::new()
        .crm_at(&format!("http://{hints}"))
        .start()
        .await;
    let resp = raw_request(w.gw().port, b"GET /x HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    // Not the status (a request id's hex may hold the digits 103).
    assert!(
        !text.contains(" 103 ") && !text.contains("Early Hints"),
        "{text}"
    );
    // An HTTP/1.1 client gets the early hints.
    let resp = raw_request(
        w.gw().port,
        b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 103 "));
}

const CLOSE_GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// An answer whose length is written as a list or twice: the engine frames it by the number,
/// a client or proxy in front may read the field otherwise; nginx answers 502, so does the
/// gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_length_that_is_not_one_number_is_a_502() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 2,2,2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let up = scripted_upstream(answer);
        let w = World::new().crm_at(&format!("http://{up}")).start().await;
        let text = until_closed(w.gw().port, CLOSE_GET).await;
        assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
        assert!(!text.contains("2, 2") && !text.contains("2,2"), "{text}");
    }
}

/// `raw` sent on a new connection to `port`, everything read until the gateway closes it (10 s
/// at most: a connection kept open fails the read).
async fn until_closed(port: u16, raw: &'static [u8]) -> String {
    let resp = tokio::task::spawn_blocking(move || raw_request(port, raw))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&resp).into_owned()
}

/// An HTTP/1.0 client reads no chunks: an answer without a length (chunked by the upstream, or
/// ended by its close) reaches it as plain bytes ended by the close, as nginx sends it, also
/// when the client asked to keep the connection alive. An HTTP/1.1 client still gets chunks; a
/// 204 never says it is chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_client_gets_an_answer_without_a_length_unchunked_and_closed() {
    let chunked = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    let until_close = scripted_upstream(b"HTTP/1.1 200 OK\r\n\r\nbody-until-close");
    for (upstream, body) in [(chunked, "hello world"), (until_close, "body-until-close")] {
        let w = World::new()
            .crm_at(&format!("http://{upstream}"))
            .start()
            .await;
        let port = w.gw().port;
        for head in [
            "GET /x HTTP/1.0\r\n\r\n",
            "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ] {
            let text = until_closed(port, head.as_bytes()).await;
            let (head_part, got) = text.split_once("\r\n\r\n").unwrap();
            assert_eq!(got, body, "{head:?}: {text}");
            let lower = head_part.to_ascii_lowercase();
            assert!(!lower.contains("transfer-encoding"), "{text}");
            assert!(lower.contains("connection: close"), "{text}");
        }
        let text = until_closed(port, CLOSE_GET).await.to_ascii_lowercase();
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
    }
    // A 204 that says it is chunked reaches the client without the coding, and nothing after
    // its head: the next answer on the connection starts clean.
    let no_content = scripted_upstream(
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    let w = World::new()
        .crm_at(&format!("http://{no_content}"))
        .start()
        .await;
    let text = until_closed(w.gw().port, CLOSE_GET).await;
    assert!(text.starts_with("HTTP/1.1 204 "), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"), "{text:?}");
}

/// An intercepted upstream error whose `error_page` lands on a `[[routes]]` entry passes the
/// upstream's own answer on (the gateway does not hand a request from an nginx location to a
/// route mid-way); an `X-Accel-Redirect` there is the gateway's 502, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_or_accel_redirect_to_a_route_is_answered_plainly() {
    let missing = scripted_upstream(
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
    );
    let accel = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /fallback.js\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let w = World::new()
        .crm_at(&format!("http://{missing}"))
        .routes(&format!(
            "[upstreams.accel]\nurl = \"http://{accel}\"\n\
             [[routes]]\nlocation = \"~* \\\\.js$\"\nupstream = \"crm\"\n\
             [nginx]\ninclude = [\"{{files}}/legacy.conf\"]\n"
        ))
        .files(&[(
            "legacy.conf",
            "location /ep/ { proxy_pass http://crm; proxy_intercept_errors on; error_page 404 = /fallback.js; }\n\
             location /dl/ { proxy_pass http://accel; }\n",
        )])
        .start()
        .await;
    let get = |path: &'static str| {
        let port = w.gw().port;
        tokio::task::spawn_blocking(move || {
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
            );
            raw_request(port, req.as_bytes()).unwrap()
        })
    };
    let r = get("/ep/x").await.unwrap();
    let text = String::from_utf8_lossy(&r);
    assert_eq!(parse_status(&r), Some(404), "{text}");
    assert!(text.ends_with("not found"), "{text}");
    let r = get("/dl/x").await.unwrap();
    let text = String::from_utf8_lossy(&r);
    assert_eq!(parse_status(&r), Some(502), "{text}");
    assert!(text.contains("upstream_unavailable"), "{text}");
}

/// An `X-Accel-Redirect` answer's cookies are set on the file it leads to, as nginx sets them
/// (jQuery's fileDownload waits for its `fileDownload=true` on the download), with the
/// location's `proxy_cookie_path`; one naming the gateway's session is dropped there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accel_redirect_answers_cookies_are_set_on_the_file_but_never_the_gateways() {
    let accel = scripted_upstream(
        b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/report.txt\r\n\
          Set-Cookie: fileDownload=true; path=/\r\n\
          Set-Cookie: wgw_session=fixed; path=/\r\n\
          Set-Cookie: sid=1; Path=/api/v1\r\n\
          Content-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    let w = World::new()
        .session("")
        .routes(&format!(
            "[upstreams.accel]\nurl = \"http://{accel}\"\n\
             [nginx]\ninclude = [\"{{files}}/legacy.conf\"]\n"
        ))
        .files(&[(
            "legacy.conf",
            "location /dl/ { proxy_pass http://accel; proxy_cookie_path /api/ /; }\n\
             location /protected/ { internal; alias {files}/www/; }\n",
        )])
        .start()
        .await;
    std::fs::create_dir_all(w.files.path().join("www")).unwrap();
    std::fs::write(w.files.path().join("www/report.txt"), "the report\n").unwrap();
    let port = w.gw().port;
    let r = tokio::task::spawn_blocking(move || {
        raw_request(
            port,
            b"GET /dl/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&r);
    assert_eq!(parse_status(&r), Some(200), "{text}");
    assert!(text.ends_with("the report\n"), "{text}");
    let cookies: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix("Set-Cookie: ")
                .or_else(|| l.strip_prefix("set-cookie: "))
        })
        .collect();
    assert_eq!(
        cookies,
        ["fileDownload=true; path=/", "sid=1; Path=/v1"],
        "{text}"
    );
}

/// Server-sent events compressed on the way (`gzip_types text/event-stream`): each event
/// reaches the browser as the upstream sends it, as through nginx, which flushes its gzip
/// filter for an unbuffered upstream. The upstream sends its second event only once the client
/// has read the first, so an answer held back until the stream ends never completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_server_sent_events_arrive_as_they_are_sent() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sse = listener.local_addr().unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
              Transfer-Encoding: chunked\r\n\r\nb\r\ndata: one\n\n\r\n",
        );
        if wait.recv_timeout(Duration::from_secs(20)).is_ok() {
            let _ = s.write_all(b"b\r\ndata: two\n\n\r\n0\r\n\r\n");
        }
    });
    let w = World::new()
        .routes(&format!(
            "[upstreams.sse]\nurl = \"http://{sse}\"\n\
             [nginx]\ninclude = [\"{{files}}/legacy.conf\"]\n"
        ))
        .files(&[(
            "legacy.conf",
            "location /sse/ { gzip on; gzip_min_length 1; gzip_types text/event-stream; \
             proxy_buffering off; proxy_pass http://sse; }\n",
        )])
        .start()
        .await;
    let port = w.gw().port;
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // A gateway that held the events back fails here rather than hanging the test.
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /sse/x HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut buf).expect("the head in time");
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        assert!(head.contains("content-encoding: gzip"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        // What arrived decoded so far, chunk framing taken off.
        let decoded = |raw: &[u8]| {
            let mut body = Vec::new();
            let mut at = head_end;
            while let Some(eol) = raw[at..].windows(2).position(|w| w == b"\r\n") {
                let size = usize::from_str_radix(
                    std::str::from_utf8(&raw[at..at + eol]).unwrap().trim(),
                    16,
                )
                .unwrap();
                if raw.len() < at + eol + 2 + size + 2 {
                    break;
                }
                body.extend_from_slice(&raw[at + eol + 2..at + eol + 2 + size]);
                at += eol + 2 + size + 2;
            }
            let mut d = flate2::write::GzDecoder::new(Vec::new());
            let _ = d.write_all(&body);
            let _ = d.flush();
            String::from_utf8_lossy(d.get_ref()).into_owned()
        };
        while !decoded(&raw).contains("data: one") {
            let n = s
                .read(&mut buf)
                .expect("the first event before the stream ends");
            assert!(n > 0, "closed before the first event");
            raw.extend_from_slice(&buf[..n]);
        }
        assert!(!decoded(&raw).contains("data: two"));
        go.send(()).unwrap();
        while !raw.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).expect("the end of the stream");
            assert!(n > 0, "closed before the end");
            raw.extend_from_slice(&buf[..n]);
        }
        assert_eq!(decoded(&raw), "data: one\n\ndata: two\n\n");
    })
    .await
    .unwrap();
}

/// The upstream's `Server` header (its software and version) is not passed to clients, as
/// nginx hides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstreams_server_header_is_hidden() {
    use std::io::Write;
    let (port, _) = raw_crm(|_, _, _, w| {
        w.write_all(
            b"HTTP/1.1 200 OK\r\nServer: Jetty(9.4.43)\r\nServer: Apache\r\nX-Powered-By: Express\r\nContent-Length: 4\r\n\r\nbody",
        )
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
    ));
    let r = common::client().get(gw.url("/page")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(!r.headers().contains_key("server"), "{:?}", r.headers());
    assert_eq!(r.headers()["x-powered-by"], "Express");
    assert_eq!(r.text().await.unwrap(), "body");
}

/// An `X-Accel-Redirect` from a `[[routes]]` upstream is not followed (a route names no
/// internal locations; an included nginx file's are followed as nginx does): the answer goes
/// out without it, and the log says so, once a minute, rather than leave a CRM that relies on
/// it to guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x_accel_redirect_on_a_route_is_dropped_and_said() {
    use std::io::Write;
    let (port, _) = raw_crm(|_, _, _, w| {
        w.write_all(
            b"HTTP/1.1 200 OK\r\nX-Accel-Redirect: /protected/file.pdf\r\nContent-Length: 4\r\n\r\nbody",
        )
    });
    let gw = common::Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"http://127.0.0.1:{port}\"\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
    ));
    let c = common::client();
    for _ in 0..2 {
        let r = c.get(gw.url("/download")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(!r.headers().contains_key("x-accel-redirect"));
        assert_eq!(r.text().await.unwrap(), "body");
    }
    gw.wait_log("X-Accel-Redirect is not followed on a [[routes]] entry");
    assert_eq!(
        gw.log().matches("X-Accel-Redirect is not followed").count(),
        1,
        "once a minute:\n{}",
        gw.log()
    );
    assert!(!gw.log().contains("/protected/file.pdf"), "{}", gw.log());
}

/// A small request body is read whole before the CRM is asked, as nginx's default
/// `proxy_request_buffering on` reads it: a client trickling its body holds no CRM worker
/// meanwhile (the CRM sees nothing until the body is complete), and a chunked body reaches the
/// CRM with its length (a server that reads no chunked body, Python's `http.server`, gets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_is_read_whole_before_the_crm_is_asked_and_sent_with_its_length() {
    use std::io::Write;
    let up = upstream::echo("crm");
    let gw = common::Gateway::start(&format!(
        "[upstreams.crm]\nurl = \"{}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        up.url()
    ));
    let port = gw.port;
    let hits = std::sync::Arc::new(up);
    let seen = hits.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"POST /form HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .unwrap();
        // Half a body, a while: the CRM has not been asked.
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(seen.hits(), 0, "the CRM was asked before the body was complete");
        s.write_all(b"6\r\n world\r\n0\r\n\r\n").unwrap();
        let mut pending = Vec::new();
        let r = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(r.status, 200);
        let echo: Echo = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(echo.body, "hello world");
        assert_eq!(echo.header("content-length"), Some("11"));
        assert_eq!(echo.header("transfer-encoding"), None);
        // A longer chunked body goes on as it comes, chunked.
        let big = "b".repeat(100_000);
        write!(
            s,
            "POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            big.len()
        )
        .unwrap();
        let r = common::raw::read_response(&mut s, &mut pending);
        assert_eq!(r.status, 200);
        let echo: Echo = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(echo.body.len(), 100_000);
        assert_eq!(echo.header("transfer-encoding"), Some("chunked"));
    })
    .await
    .unwrap();
    assert_eq!(hits.hits(), 2);
}
