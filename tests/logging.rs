//! What reaches the log (issue 13 item 8, SPEC sections 14 and 16): no secret from a request,
//! malformed or not, on any port and whoever writes the line; no line of unbounded length; and
//! every request's line, also when SIGTERM stops the gateway under load.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::raw::read_response;
use common::upstream;
use common::{server_table, Gateway};

const SECRETS: [&str; 4] = [
    "SECRETCOOKIE",
    "SECRETBEARER",
    "SECRETTICKET",
    "SECRETLOGIN",
];

fn headers_with_secrets() -> String {
    "Cookie: theme=dark, wgw_session=SECRETCOOKIE; wgw_login_0a=SECRETLOGIN\r\n\
     Authorization: Bearer SECRETBEARER\r\nWGW-Contact: SECRETTICKET\r\n"
        .to_owned()
}

fn send(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = std::io::Read::read(&mut s, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn status(resp: &[u8]) -> Option<u16> {
    common::parse_status(resp)
}

#[test]
fn malformed_requests_on_every_port_log_no_secret_and_no_huge_line() {
    for format in ["text", "json"] {
        let up = upstream::echo("crm");
        let config = format!(
            "{}qyapi_listen = \"127.0.0.1:0\"\n[upstreams.crm]\nurl = \"{}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
            server_table(),
            up.url()
        );
        // Debug level: pingora's own lines about bad requests are written too.
        let gw = Gateway::start_config(&config, &[("WGW_LOG", "debug")], &["--log-format", format]);
        let (port, admin, qyapi) = (gw.port, gw.admin_port, gw.qyapi_port.unwrap());
        let secrets = headers_with_secrets();
        for p in [port, admin, qyapi] {
            // A raw space in the request line, and a header name with a space in it.
            let bad_line = format!("GET /a b HTTP/1.1\r\nHost: x\r\n{secrets}\r\n");
            let bad_name = format!("GET / HTTP/1.1\r\nHost: x\r\n{secrets}Bad Name: 1\r\n\r\n");
            for raw in [bad_line, bad_name] {
                let resp = send(p, raw.as_bytes());
                assert_eq!(status(&resp), Some(400), "port {p}: {raw:?}");
                if p != port {
                    assert!(String::from_utf8_lossy(&resp).contains("x-request-id"));
                }
            }
            // A 200 KB target, with the secrets in its headers.
            let huge = format!(
                "GET /{} HTTP/1.1\r\nHost: x\r\n{secrets}Connection: close\r\n\r\n",
                "a".repeat(200 * 1024)
            );
            assert!(status(&send(p, huge.as_bytes())).is_some(), "port {p}");
        }
        // Lines are written in order: once this request's line is there, all above are.
        let marker = format!(
            "GET /done HTTP/1.1\r\nHost: x\r\nX-Request-Id: marker-{format}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(status(&send(port, marker.as_bytes())), Some(200));
        gw.wait_log(&format!("marker-{format}"));

        let log = gw.log();
        for secret in SECRETS {
            assert!(!log.contains(secret), "{format}: {secret} reached the log");
        }
        let longest = log.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 9 * 1024, "{format}: a {longest}-byte line");
        assert!(
            log.contains("bytes cut]"),
            "{format}: the huge target was cut"
        );
        assert!(
            log.contains("malformed request refused"),
            "{format}: admin/qyapi say what was wrong"
        );
    }
}

#[test]
fn every_request_line_arrives_redacted_when_sigterm_stops_the_gateway_under_load() {
    let up = upstream::echo("crm");
    let config = format!(
        "{}[upstreams.crm]\nurl = \"{}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        server_table(),
        up.url()
    );
    let mut gw = Gateway::start_config(&config, &[], &[]);
    let port = gw.port;

    let answered = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let answered = answered.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                // Keep-alive connections, a new one whenever the gateway closes one, until the
                // gateway no longer accepts (or 30 s, a bound the test never nears).
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut n = 0u64;
                'connections: while Instant::now() < deadline {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    let mut pending = Vec::new();
                    loop {
                        n += 1;
                        let rid = format!("load-{c}-{n}");
                        let req = format!(
                            "GET /r/access_token=SECRETTOKEN{n} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {rid}\r\n\r\n"
                        );
                        if s.write_all(req.as_bytes()).is_err() {
                            continue 'connections;
                        }
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            read_response(&mut s, &mut pending)
                        }));
                        match r {
                            Ok(r) if r.status == 200 => {
                                answered.lock().unwrap().insert(rid);
                                if r.header("connection") == Some("close") {
                                    continue 'connections;
                                }
                            }
                            _ => continue 'connections,
                        }
                    }
                }
            })
        })
        .collect();

    // Under load: stop once a good number of requests were answered.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.lock().unwrap().len() < 2000 {
        assert!(Instant::now() < deadline, "load never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    gw.signal(15);
    stop.store(true, Ordering::SeqCst);
    let exit = gw
        .wait_exit(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("did not stop:\n{}", gw.log()));
    assert_eq!(exit.code(), Some(0));
    for c in clients {
        c.join().unwrap();
    }

    let log = gw.log();
    assert!(!log.contains("SECRETTOKEN"), "a token reached the log");
    let logged: BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split("request_id=").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    let answered = answered.lock().unwrap();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|r| !logged.contains(r.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no log line, e.g. {:?}",
        missing.len(),
        answered.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
}
