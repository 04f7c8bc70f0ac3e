//! An upstream of several servers (`servers = [...]`, an nginx `upstream` block's): shared out
//! as nginx shares them out, a server that cannot be reached passed over, and a request that
//! reached one not sent to another when it may have been carried out.

mod common;

use std::io::Read;
use std::net::SocketAddr;

use common::upstream::{self, Echo, Upstream};
use common::{client, Gateway, TempDir};

/// The name of the echo server that answered, from an answer body.
fn answered_by(body: &str) -> String {
    serde_json::from_str::<Echo>(body)
        .unwrap_or_else(|e| panic!("not an echo answer ({e}): {body}"))
        .name
}

/// A server that takes a request and closes the connection without a word: the request
/// reached it (a POST may have been carried out). Counts the requests it took.
fn breaker() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = taken.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (addr, taken)
}

/// A server that cannot be reached is passed over: every request is answered, a POST too (it
/// was never sent), and the others share the load.
#[tokio::test]
async fn a_server_that_cannot_be_reached_is_passed_over() {
    let a = upstream::echo("a");
    let b = upstream::echo("b");
    let closed = upstream::closed_addr();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"{}\" }}, {{ url = \"http://{closed}\" }}, {{ url = \"{}\" }}]\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        a.url(),
        b.url()
    ));
    let c = client();
    let mut names = Vec::new();
    for i in 0..9 {
        let req = if i % 3 == 0 {
            c.post(gw.url("/form")).body("x=1")
        } else {
            c.get(gw.url("/page"))
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
        names.push(answered_by(&resp.text().await.unwrap()));
    }
    assert!(
        names.contains(&"a".to_owned()) && names.contains(&"b".to_owned()),
        "{names:?}"
    );
    assert_eq!(a.hits() + b.hits(), 9);
}

/// A server that took the request and broke: a GET goes on to the next server; a POST is not
/// sent again (it may have been carried out) and gets the gateway's 502.
#[tokio::test]
async fn a_post_that_reached_a_server_is_not_sent_to_another() {
    let good = upstream::echo("good");
    let (bad, taken) = breaker();
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"http://{bad}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        good.url()
    ));
    let c = client();
    let mut post_502 = 0;
    for _ in 0..6 {
        let resp = c.post(gw.url("/order")).body("qty=1").send().await.unwrap();
        match resp.status().as_u16() {
            200 => {}
            502 => post_502 += 1,
            s => panic!("POST answered {s}"),
        }
    }
    let posts_at_good = good.hits();
    for _ in 0..6 {
        let resp = c.get(gw.url("/page")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let took = taken.load(std::sync::atomic::Ordering::SeqCst);
    assert!(post_502 > 0, "a POST reached the breaking server");
    assert_eq!(
        post_502 + posts_at_good,
        6,
        "each POST was sent once: {post_502} broken, {posts_at_good} at the good server"
    );
    assert!(
        took >= post_502,
        "{took} taken, {post_502} POSTs answered 502"
    );
}

/// Every server failed: nginx's "no live upstreams", the gateway's 502; the log says it.
#[tokio::test]
async fn no_live_server_is_a_502() {
    let (x, y) = (upstream::closed_addr(), upstream::closed_addr());
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"http://{x}\" }}, {{ url = \"http://{y}\" }}]\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
    ));
    let c = client();
    for _ in 0..3 {
        let resp = c.get(gw.url("/")).send().await.unwrap();
        assert_eq!(resp.status(), 502);
        assert!(resp.headers().contains_key("x-request-id"));
    }
    gw.wait_log("no live upstreams");
}

/// GET through `proxy` from `source` (a loopback address of the client's choosing: `ip_hash`
/// reads it), on a connection of its own; the echo server's name.
async fn name_from(proxy: u16, source: [u8; 4]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut s = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], proxy)))
        .await
        .unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: crm\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    answered_by(body)
}

/// The same `upstream` block in nginx and in the gateway (its `[upstreams]` table saying the
/// same): requests one after the other reach the same servers in the same order, weighted
/// round-robin, and with `ip_hash`, each client address the same server.
#[tokio::test]
async fn servers_are_chosen_as_nginx_chooses_them() {
    let ups: Vec<Upstream> = ["a", "b", "c"].iter().map(|n| upstream::echo(n)).collect();
    for (method, weights) in [("", [5, 1, 1]), ("ip_hash;", [1, 2, 1])] {
        let dir = TempDir::new("balance");
        let servers: String = ups
            .iter()
            .zip(weights)
            .map(|(u, w)| format!("server {} weight={w};\n", u.addr))
            .collect();
        let block = format!("upstream pool {{ {method}\n{servers}}}\n");
        let (_nginx, ports) = common::nginx::start(dir.path(), 1, |p| {
            format!("{block}server {{ listen 127.0.0.1:{}; location / {{ proxy_pass http://pool; }} }}\n", p[0])
        });
        let file = dir.path().join("site.conf");
        std::fs::write(
            &file,
            format!("{block}server {{ location / {{ proxy_pass http://pool; }} }}\n"),
        )
        .unwrap();
        let list: Vec<String> = ups
            .iter()
            .zip(weights)
            .map(|(u, w)| format!("{{ url = \"{}\", weight = {w} }}", u.url()))
            .collect();
        let balance = if method.is_empty() {
            ""
        } else {
            "balance = \"ip_hash\"\n"
        };
        let gw = Gateway::start(&format!(
            "[upstreams.pool]\nservers = [{}]\n{balance}[nginx]\ninclude = [\"{}\"]\n",
            list.join(", "),
            file.display()
        ));
        let sources: Vec<[u8; 4]> = if method.is_empty() {
            vec![[127, 0, 0, 1]; 14]
        } else {
            (0..24).map(|x| [127, 0, x * 7, 1]).collect()
        };
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        for s in &sources {
            theirs.push(name_from(ports[0], *s).await);
        }
        for s in &sources {
            ours.push(name_from(gw.port, *s).await);
        }
        assert_eq!(
            ours,
            theirs,
            "{}",
            if method.is_empty() {
                "round-robin"
            } else {
                method
            }
        );
        let distinct: std::collections::BTreeSet<&String> = ours.iter().collect();
        assert_eq!(distinct.len(), 3, "every server was chosen: {ours:?}");
    }
}

/// `check` refuses an nginx `upstream` block whose servers are not the table's, and says
/// what to write.
#[test]
fn an_upstream_block_unlike_its_table_is_refused_with_what_to_write() {
    let dir = TempDir::new("balance-check");
    let file = dir.path().join("site.conf");
    std::fs::write(
        &file,
        "upstream pool { server 127.0.0.1:9001 weight=2; server 127.0.0.1:9002 backup; }\n\
         server { location / { proxy_pass http://pool; } }\n",
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "{}[upstreams.pool]\nurl = \"http://127.0.0.1:9001\"\n[nginx]\ninclude = [\"{}\"]\n",
            common::server_table(),
            file.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("its servers are not [upstreams.pool]'s")
            && err.contains("{ url = \"http://127.0.0.1:9001\", weight = 2 }")
            && err.contains("{ url = \"http://127.0.0.1:9002\", backup = true }"),
        "{err}"
    );
}

/// `proxy_pass` to the address of one server of a balanced upstream means that server alone,
/// as in nginx: it needs an upstream of its own, not the whole list.
#[test]
fn a_proxy_pass_to_one_servers_address_is_not_the_balanced_upstream() {
    let dir = TempDir::new("balance-one");
    let file = dir.path().join("site.conf");
    std::fs::write(
        &file,
        "server { location / { proxy_pass http://127.0.0.1:9001; } }\n",
    )
    .unwrap();
    let config = dir.path().join("gateway.toml");
    let write = |extra: &str| {
        std::fs::write(
            &config,
            format!(
                "{}[upstreams.pool]\nservers = [{{ url = \"http://127.0.0.1:9001\" }}, {{ url = \"http://127.0.0.1:9002\" }}]\n{extra}[nginx]\ninclude = [\"{}\"]\n",
                common::server_table(),
                file.display()
            ),
        )
        .unwrap();
        std::process::Command::new(common::bin())
            .args(["check", "-c"])
            .arg(&config)
            .output()
            .unwrap()
    };
    let out = write("");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("127.0.0.1:9001"), "{err}");
    let out = write("[upstreams.one]\nurl = \"http://127.0.0.1:9001\"\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server answering a WebSocket upgrade with 101 and a plain request with 200, then holding
/// a tunnel open without a word.
fn websocket_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                use std::io::Write;
                let mut buf = [0u8; 4096];
                let n = conn.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                if req.contains("upgrade: websocket") {
                    let _ = conn.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                    );
                    std::thread::sleep(std::time::Duration::from_secs(30));
                } else {
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    );
                }
            });
        }
    });
    addr
}

/// A WebSocket's server answered (101): a tunnel that then stays quiet past `read_timeout` is
/// no failure of the server's, which stays in the upstream as nginx keeps it.
#[tokio::test]
async fn a_quiet_websocket_does_not_take_its_server_out() {
    let (x, y) = (websocket_server(), websocket_server());
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"http://{x}\" }}, {{ url = \"http://{y}\" }}]\n\
         read_timeout = \"500ms\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n"
    ));
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
        std::io::Write::write_all(
            &mut s,
            b"GET /ws HTTP/1.1\r\nHost: crm\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
        tunnels.push(s);
    }
    // Past read_timeout the gateway ends each quiet tunnel: the client reads its end.
    for mut t in tunnels {
        tokio::task::spawn_blocking(move || {
            t.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            let mut rest = Vec::new();
            let _ = t.read_to_end(&mut rest);
        })
        .await
        .unwrap();
    }
    let c = client();
    for i in 0..4 {
        let resp = c.get(gw.url("/page")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "request {i}: {}", gw.log());
    }
    assert!(!gw.log().contains("temporarily disabled"), "{}", gw.log());
}

/// A server that answers with a header it cannot read is no `error` or `timeout` of nginx's
/// default `proxy_next_upstream`: a 502, and the request goes to no other server.
#[tokio::test]
async fn an_unreadable_answer_is_not_sent_on_to_another_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bad = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = std::io::Write::write_all(
                &mut conn,
                b"HTTP/1.1 200 OK\r\nBad Header Line\r\nContent-Length: 2\r\n\r\nok",
            );
        }
    });
    let good = upstream::echo("good");
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"http://{bad}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        good.url()
    ));
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            c.get(gw.url("/page"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(good.hits(), 2, "{statuses:?}");
}

/// Many servers: a request tries every one (pingora's own limit is 16 attempts), and a `down`
/// server is not one of a request's tries (a timeout stays a 504, not "no live upstreams").
#[tokio::test]
async fn a_request_tries_every_server_and_down_ones_are_not_tries() {
    let good = upstream::echo("good");
    let mut list: Vec<String> = (0..20)
        .map(|_| format!("{{ url = \"http://{}\" }}", upstream::closed_addr()))
        .collect();
    list.push(format!("{{ url = \"{}\" }}", good.url()));
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{}]\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        list.join(", ")
    ));
    let resp = client().get(gw.url("/page")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(gw);

    let (a, b) = (upstream::echo("a"), upstream::echo("b"));
    let gw = Gateway::start(&format!(
        "[upstreams.crm]\nservers = [{{ url = \"{}\" }}, {{ url = \"{}\" }}, {{ url = \"http://{}\", down = true }}]\n\
         read_timeout = \"300ms\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        a.url(),
        b.url(),
        upstream::closed_addr()
    ));
    let resp = client().get(gw.url("/slow?ms=2000")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(!gw.log().contains("no live upstreams"), "{}", gw.log());
}

/// An `error_page` from a balanced upstream with no live server to another one with none: the
/// access line names the upstreams (nginx writes the name when no server was reached), and
/// nothing panics.
#[tokio::test]
async fn no_live_server_twice_through_an_error_page() {
    let dir = TempDir::new("balance-errpage");
    let log = dir.path().join("access.log");
    let closed =
        |n: usize| -> Vec<SocketAddr> { (0..n).map(|_| upstream::closed_addr()).collect() };
    let (a, b) = (closed(3), closed(2));
    let block = |s: &[SocketAddr]| -> String { s.iter().map(|x| format!("server {x};")).collect() };
    let table = |s: &[SocketAddr]| -> String {
        s.iter()
            .map(|x| format!("{{ url = \"http://{x}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // `b`'s servers are down: no attempt reaches one, after `a`'s last (the third) failed.
    let (a_block, b_block) = (block(&a), block(&b).replace(';', " down;"));
    let file = dir.path().join("site.conf");
    std::fs::write(
        &file,
        format!(
            "upstream a {{ {a_block} }}\nupstream b {{ {b_block} }}\n\
             log_format up '$uri $status $upstream_addr';\n\
             server {{ access_log {} up;\n location / {{ proxy_pass http://a; error_page 502 = @b; }}\n\
             location @b {{ proxy_pass http://b; }} }}\n",
            log.display()
        ),
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.a]\nservers = [{}]\n[upstreams.b]\nservers = [{}]\n[nginx]\ninclude = [\"{}\"]\n",
        table(&a),
        table(&b).replace(" }", ", down = true }"),
        file.display()
    ));
    for _ in 0..3 {
        let resp = client().get(gw.url("/x")).send().await.unwrap();
        assert_eq!(resp.status(), 502);
    }
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("/x ")).collect();
        if lines.len() >= 3 {
            assert!(lines.iter().all(|l| l.starts_with("/x 502 ")), "{text}");
            // No server of `b` was reached: its name, as nginx writes it.
            assert!(lines.iter().all(|l| l.ends_with(" b")), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "3 access lines: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `proxy_next_upstream off`, `proxy_next_upstream_tries 1` and `non_idempotent` in the nginx
/// file, against a real nginx with the same file: the same answers in the same order.
#[tokio::test]
async fn proxy_next_upstream_is_honoured_as_nginx_honours_it() {
    let good = upstream::echo("good");
    let (breaking, _) = breaker();
    let closed = upstream::closed_addr();
    let dir = TempDir::new("balance-next");
    let block = format!(
        "upstream pool {{ server {closed} max_fails=0; server {}; }}\n\
         upstream post {{ server {breaking} max_fails=0; server {}; }}\n",
        good.addr, good.addr
    );
    let locations = "location /off/ { proxy_next_upstream off; proxy_pass http://pool; }\n\
         location /one/ { proxy_next_upstream_tries 1; proxy_pass http://pool; }\n\
         location /post/ { proxy_next_upstream error timeout non_idempotent; proxy_pass http://post; }\n\
         location /dup/ { proxy_next_upstream error; proxy_next_upstream non_idempotent; proxy_pass http://post; }\n\
         location /OFF/ { proxy_next_upstream Off; proxy_next_upstream error; proxy_pass http://pool; }\n\
         location /plain/ { proxy_pass http://post; }\n\
         location / { proxy_pass http://pool; }\n";
    let (_nginx, ports) = common::nginx::start(dir.path(), 1, |p| {
        format!(
            "{block}server {{ listen 127.0.0.1:{}; {locations} }}\n",
            p[0]
        )
    });
    let file = dir.path().join("site.conf");
    std::fs::write(&file, format!("{block}server {{ {locations} }}\n")).unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.pool]\nservers = [{{ url = \"http://{closed}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [upstreams.post]\nservers = [{{ url = \"http://{breaking}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [nginx]\ninclude = [\"{}\"]\n",
        good.url(),
        good.url(),
        file.display()
    ));
    let c = client();
    let mut answers = Vec::new();
    for port in [ports[0], gw.port] {
        let mut got = Vec::new();
        for (method, path) in [
            ("GET", "/off/a"),
            ("GET", "/off/b"),
            ("GET", "/one/a"),
            ("GET", "/one/b"),
            ("GET", "/a"),
            ("GET", "/b"),
            ("POST", "/post/a"),
            ("POST", "/post/b"),
            ("POST", "/plain/a"),
            ("POST", "/plain/b"),
            ("POST", "/dup/a"),
            ("POST", "/dup/b"),
            ("GET", "/OFF/a"),
            ("GET", "/OFF/b"),
        ] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let req = match method {
                "POST" => c.post(url).body("x=1"),
                _ => c.get(url),
            };
            got.push(format!(
                "{method} {path} {}",
                req.send().await.unwrap().status().as_u16()
            ));
        }
        answers.push(got);
    }
    assert_eq!(answers[1], answers[0], "the gateway, then nginx");
    for line in [
        "GET /off/a 502",
        "GET /one/a 502",
        "POST /plain/a 502",
        "GET /OFF/a 502",
    ] {
        assert!(
            answers[1].iter().any(|l| l == line),
            "{line}: {:?}",
            answers[1]
        );
    }
    for resent in ["POST /post/", "POST /dup/"] {
        assert!(!answers[1]
            .iter()
            .any(|l| l.starts_with(resent) && l.ends_with("502")));
    }
}

/// `proxy_next_upstream_timeout`: once that long has passed since the first attempt, no next
/// server (nginx's 504), where without it a third server would answer.
#[tokio::test]
async fn proxy_next_upstream_timeout_ends_the_tries() {
    let hanging = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming().flatten() {
                held.push(conn);
            }
        });
        addr
    };
    let (x, y) = (hanging(), hanging());
    let good = upstream::echo("good");
    let dir = TempDir::new("balance-next-timeout");
    let file = dir.path().join("site.conf");
    std::fs::write(
        &file,
        format!(
            "upstream pool {{ server {x} max_fails=0; server {y} max_fails=0; server {}; }}\n\
             server {{ proxy_read_timeout 400ms;\n\
             location /bounded/ {{ proxy_next_upstream_timeout 300ms; proxy_pass http://pool; }}\n\
             location / {{ proxy_pass http://pool; }} }}\n",
            good.addr
        ),
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.pool]\nservers = [{{ url = \"http://{x}\", max_fails = 0 }}, {{ url = \"http://{y}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [nginx]\ninclude = [\"{}\"]\n",
        good.url(),
        file.display()
    ));
    let c = client();
    // The first request starts at the first server, which does not answer in 400ms: past
    // 300ms, no next one. The second starts at the second, then goes on to the third.
    let r = c.get(gw.url("/bounded/x")).send().await.unwrap();
    assert_eq!(r.status(), 504, "no next server past 300ms");
    let r = c.get(gw.url("/plain")).send().await.unwrap();
    assert_eq!(r.status(), 200, "without the bound, a next server answers");
}

/// Every attempt in the access line, as nginx writes `$upstream_addr` and `$upstream_status`
/// (`a, b` / `502, 200`), compared with a real nginx on the same file.
#[tokio::test]
async fn the_access_line_names_every_attempt_as_nginx_does() {
    let good = upstream::echo("good");
    let closed = upstream::closed_addr();
    let dir = TempDir::new("balance-log");
    let (theirs, ours) = (dir.path().join("nginx.log"), dir.path().join("gateway.log"));
    let site = |log: &std::path::Path| {
        format!(
            "upstream pool {{ server {closed} max_fails=0; server {}; }}\n\
             log_format up '$uri|$status|$upstream_addr|$upstream_status';\n\
             server {{ access_log {} up; location / {{ proxy_pass http://pool; }} }}\n",
            good.addr,
            log.display()
        )
    };
    let (_nginx, ports) = common::nginx::start(dir.path(), 1, |p| {
        site(&theirs).replace("server {", &format!("server {{ listen 127.0.0.1:{};", p[0]))
    });
    let file = dir.path().join("site.conf");
    std::fs::write(&file, site(&ours)).unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.pool]\nservers = [{{ url = \"http://{closed}\", max_fails = 0 }}, {{ url = \"{}\" }}]\n\
         [nginx]\ninclude = [\"{}\"]\n",
        good.url(),
        file.display()
    ));
    let c = client();
    for port in [ports[0], gw.port] {
        for path in ["/a", "/b"] {
            let r = c
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let lines = |f: &std::path::Path| -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let got: Vec<String> = text
                .lines()
                .filter(|l| l.starts_with("/a|") || l.starts_with("/b|"))
                .map(str::to_owned)
                .collect();
            if got.len() >= 2 || std::time::Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let (theirs, ours) = (lines(&theirs), lines(&ours));
    assert_eq!(ours, theirs);
    assert!(
        ours.iter()
            .any(|l| l.ends_with(&format!("|{closed}, {}|502, 200", good.addr))),
        "{ours:?}"
    );
}
