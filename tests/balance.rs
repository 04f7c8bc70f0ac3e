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
