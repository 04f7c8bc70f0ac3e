//! Every listener may say port 0: the binary binds before it serves and reports what it got,
//! in one log line and in `--ports-file`, and a `public_url` with port 0 is the public
//! listener's.

mod common;

use common::{client, Gateway};
use serde_json::Value;

fn config() -> String {
    format!(
        "{}qyapi_listen = \"127.0.0.1:0\"\n\n[session]\nsecret = \"test-session-secret-0123456789abcdef\"\n\n\
         [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n\
         authorize_url = \"http://127.0.0.1:9/connect/oauth2/authorize\"\n\n\
         [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\nlogin = \"crm\"\n",
        common::server_table()
    )
}

/// The `redirect_uri` the gateway sends a WeCom client to WeCom with: built on `public_url`.
async fn redirect_uri(gw: &Gateway) -> String {
    let r = client()
        .get(common::browser::login_url(gw, "crm", "/page"))
        .header("user-agent", common::browser::WXWORK_UA)
        .header("accept", common::browser::HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

#[tokio::test]
async fn port_zero_listeners_are_bound_reported_and_public_url_takes_the_public_port() {
    let gw = tokio::task::spawn_blocking(|| Gateway::start_config(&config(), &[], &[]))
        .await
        .unwrap();
    let qyapi = gw.qyapi_port.unwrap();
    let ports = [gw.port, gw.admin_port, qyapi];
    assert!(ports.iter().all(|&p| p != 0), "{ports:?}");
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);

    // The ports file, and the same JSON in the one startup line.
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(gw.dir.path().join("ports.json")).unwrap())
            .unwrap();
    let public = format!("http://127.0.0.1:{}/", gw.port);
    assert_eq!(file["listen"], format!("127.0.0.1:{}", gw.port));
    assert_eq!(file["admin_listen"], format!("127.0.0.1:{}", gw.admin_port));
    assert_eq!(file["qyapi_listen"], format!("127.0.0.1:{qyapi}"));
    assert_eq!(file["public_url"], public.as_str());
    gw.wait_log("wecom-gateway listening");
    let line = gw
        .log()
        .lines()
        .find(|l| l.contains("wecom-gateway listening"))
        .map(str::to_owned)
        .expect("a startup line");
    let json = &line[line.find("ports=").expect("ports=") + "ports=".len()..];
    let logged: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(logged, file);

    // Each listener serves what it should.
    assert_eq!(
        common::http_get_status(gw.admin_port, "/healthz"),
        Some(200)
    );
    assert_eq!(
        common::http_get_status(gw.port, "/_gateway/healthz"),
        Some(200)
    );
    assert!(common::http_get_status(qyapi, "/cgi-bin/gettoken").is_some());

    let callback = format!("{public}_gateway/oauth/callback");
    assert!(redirect_uri(&gw).await.starts_with(&callback));

    // A reload reads port 0 from the file again: the bound ports stay, no restart asked for.
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    assert!(!gw.log().contains("change only on restart"), "{}", gw.log());
    assert!(redirect_uri(&gw).await.starts_with(&callback));

    // Another address for the admin listener: the reload says it waits for a restart, and the
    // listener stays where it is.
    let moved = config().replace(
        "admin_listen = \"127.0.0.1:0\"",
        &format!("admin_listen = \"127.0.0.1:{}\"", common::free_port()),
    );
    assert_ne!(moved, config());
    std::fs::write(&gw.config_path, moved).unwrap();
    gw.signal(1);
    gw.wait_log_count("reload: new config applied", 2);
    assert!(gw.log().contains("change only on restart"), "{}", gw.log());
    assert_eq!(
        common::http_get_status(gw.admin_port, "/healthz"),
        Some(200)
    );

    // The bounds of a request head are the engine's, set at start: a reload names them as
    // waiting for a restart (it said "applied" and went on with the old ones).
    let bounded = config().replace(
        "[server]\n",
        "[server]\nlarge_client_header_buffers = \"4 1k\"\n",
    );
    assert_ne!(bounded, config());
    std::fs::write(&gw.config_path, bounded).unwrap();
    gw.signal(1);
    gw.wait_log_count("reload: new config applied", 3);
    let log = gw.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("change only on restart"))
        .last()
        .unwrap();
    assert!(warned.contains("large_client_header_buffers"), "{warned}");
}

#[test]
fn a_taken_port_stops_the_start_with_the_key_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = common::TempDir::new("listeners");
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        config().replace(
            "admin_listen = \"127.0.0.1:0\"",
            &format!("admin_listen = \"{addr}\""),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["run", "-c"])
        .arg(&path)
        .arg("--ports-file")
        .arg(dir.path().join("ports.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("[server].admin_listen: cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(
        !dir.path().join("ports.json").exists(),
        "no ports file for a failed start"
    );
}

/// The admin and qyapi listeners answer requests sent back to back on one connection, each in
/// order, as the public listener does (the engine closed the connection on the bytes read past
/// the first request: a pipelining client lost every call after its first).
#[tokio::test]
async fn the_admin_and_qyapi_listeners_answer_pipelined_requests() {
    use std::io::Write;
    let gw = tokio::task::spawn_blocking(|| Gateway::start_config(&config(), &[], &[]))
        .await
        .unwrap();
    let qyapi = gw.qyapi_port.unwrap();
    for (port, paths) in [
        (gw.admin_port, ["/healthz", "/readyz", "/healthz"]),
        (
            qyapi,
            ["/cgi-bin/gettoken", "/nope", "/cgi-bin/gettoken?corpid=x"],
        ),
    ] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let all: String = paths
            .iter()
            .map(|p| format!("GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
            .collect();
        s.write_all(all.as_bytes()).unwrap();
        let mut pending = Vec::new();
        for p in paths {
            let r = common::raw::read_response(&mut s, &mut pending);
            assert!((200..600).contains(&r.status), "{port} {p}");
        }
    }
}

/// The admin and qyapi listeners refuse what the public one refuses (a CONNECT answered 200
/// is a tunnel opened; a TRACE or CONNECT on qyapi reached WeCom with the token), the admin's
/// read-only pages take GET and HEAD only, and an HTTP/1.0 client that did not ask to keep its
/// connection gets it closed after the answer, as HTTP/1.0 reads to the end of the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_and_qyapi_listeners_refuse_what_the_public_one_refuses() {
    use std::io::{Read, Write};
    let gw = tokio::task::spawn_blocking(|| Gateway::start_config(&config(), &[], &[]))
        .await
        .unwrap();
    let (admin, qyapi) = (gw.admin_port, gw.qyapi_port.unwrap());
    let exchange = |port: u16, request: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut pending = Vec::new();
        let r = common::raw::read_response(&mut s, &mut pending);
        (r, s)
    };
    for (port, request, status) in [
        (admin, "CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (admin, "TRACE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (admin, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (admin, "get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (
            qyapi,
            "CONNECT /cgi-bin/user/get HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
        ),
        (
            qyapi,
            "TRACE /cgi-bin/user/get HTTP/1.1\r\nHost: x\r\n\r\n",
            405,
        ),
        (qyapi, "GET /cgi-bin/gettoken HTTP/1.1\r\n\r\n", 400),
        (
            qyapi,
            "POST /cgi-bin/message/send HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}",
            400,
        ),
    ] {
        let (r, _) = exchange(port, request);
        assert_eq!(r.status, status, "{port} {request:?}");
    }
    let (r, _) = exchange(admin, "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // A malformed one has an id to find its log line by, as on the other listeners.
    let (r, _) = exchange(admin, "CONNECT /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let rid = r.header("x-request-id").expect("a request id").to_owned();
    tokio::task::block_in_place(|| gw.wait_log(&rid));
    assert!(
        gw.log()
            .lines()
            .any(|l| l.contains(&rid) && l.contains("malformed request refused")),
        "{}",
        gw.log()
    );
    // HTTP/1.0: closed after the answer unless the client asked to keep it.
    for port in [admin, qyapi] {
        let path = if port == admin {
            "/healthz"
        } else {
            "/cgi-bin/gettoken"
        };
        let (r, mut s) = exchange(port, &format!("GET {path} HTTP/1.0\r\n\r\n"));
        assert_ne!(r.header("connection"), Some("keep-alive"), "{port}");
        let mut rest = [0u8; 16];
        assert_eq!(s.read(&mut rest).unwrap(), 0, "{port}: left open");
        let (_, mut s) = exchange(
            port,
            &format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
        );
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .unwrap();
        let r = common::raw::read_response(&mut s, &mut Vec::new());
        assert!((200..500).contains(&r.status), "{port}: not kept");
    }
}
