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
            // A 7 KB target (logged cut) and a 200 KB one (refused as nginx refuses it), with
            // the secrets in their headers.
            for (len, want) in [(7 * 1024, None), (200 * 1024, Some(414))] {
                let target = format!(
                    "GET /{} HTTP/1.1\r\nHost: x\r\n{secrets}Connection: close\r\n\r\n",
                    "a".repeat(len)
                );
                let got = status(&send(p, target.as_bytes()));
                assert!(got.is_some(), "port {p}");
                if want.is_some() {
                    assert_eq!(got, want, "port {p}");
                }
            }
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

/// Waits until the file holds `n` lines besides the readiness probes' (a log file is written
/// by a background thread, so a line can arrive after its answer), up to 10 s; returns them.
fn wait_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.contains("/_gateway/healthz"))
            .map(str::to_owned)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {n} lines:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `access_log` and `log_format` of an nginx file (SPEC 12): each request's line in the file
/// of the level that answered it, in its format, with nginx's escaping; secrets masked as in
/// every other line; `off` and `if=` honoured; SIGUSR1 reopens the file (logrotate), and a
/// SIGTERM writes out every line before the process ends.
#[test]
fn an_nginx_access_log_file_gets_every_line_in_its_format_redacted_and_reopened() {
    let up = upstream::echo("crm");
    let dir = common::TempDir::new("accesslog");
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(
        d.join("site.conf"),
        "log_format main '$remote_addr - $remote_user [$time_local] \"$request\" $status \
           $body_bytes_sent \"$http_referer\" \"$http_user_agent\" rid=$request_id \
           up=$upstream_addr us=$upstream_status c=$http_cookie s=$cookie_sid t=$request_time \
           w=$who m=$msid i=$isid n=$nsid t=$tok k=$kept x=$sent_http_x_sid';\n\
         log_format js escape=json '{\"uri\":\"$uri\",\"args\":\"$args\",\"status\":$status}';\n\
         map $arg_quiet $loggable { default 1; 1 0; }\n\
         map $status $failed { ~^[23] 0; default 1; }\n\
         map $request_time $timed { ~^[0-9]+\\.[0-9][0-9][0-9]$ 1; default 0; }\n\
         map $cookie_sid $who { default anon; ~^(?<msid>.+)$ user; }\n\
         error_log logs/error.log warn;\n\
         server {\n\
           set $kept \"sid=$cookie_sid\";\n\
           if ($cookie_sid ~ ^(?<isid>S.+)$) { set $seen 1; }\n\
           if ($cookie_sid ~ ^(S.+)$) { set $nsid $1; }\n\
           if ($request_uri ~ \"code=([^&]+)\") { set $tok $1; }\n\
           access_log logs/main.log main if=$loggable;\n\
           access_log logs/failed.log main if=$failed;\n\
           access_log logs/timed.log js if=$timed;\n\
           location / { add_header X-Sid \"s=$cookie_sid\"; proxy_pass http://crm; }\n\
           location /js/ { access_log logs/json.log js; return 200 \"ok\\n\"; }\n\
           location /off/ { access_log off; return 204; }\n\
         }\n",
    )
    .unwrap();
    let config = format!(
        "{}[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        server_table(),
        up.url(),
        d.join("site.conf").display()
    );
    let mut gw = Gateway::start_config(&config, &[], &[]);
    let port = gw.port;
    let main = d.join("logs/main.log");
    let json = d.join("logs/json.log");

    let first = send(
        port,
        b"GET /app?code=SECRETCODE&x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\
          Cookie: sid=SECRETSID; lang=zh\r\nReferer: http://x/cb?code=REFCODE\r\n\
          Authorization: Basic YWxpY2U6czNjcmV0\r\nUser-Agent: ua\"q\r\nX-Request-Id: logtest1\r\n\r\n",
    );
    assert_eq!(status(&first), Some(200));
    let rid = "logtest1";
    let quiet = send(
        port,
        b"GET /?quiet=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&quiet), Some(200));
    let js = send(
        port,
        b"GET /js/a?b=%22c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&js), Some(200));
    let off = send(
        port,
        b"GET /off/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&off), Some(204));
    // The gateway's own endpoints are the server level's.
    let own = send(
        port,
        b"GET /_gateway/nothing-here HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&own), Some(404));

    // Two worker threads' lines may come in either order.
    let lines = wait_lines(&main, 2);
    let find = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no line of {what}: {lines:?}"))
    };
    let l = find("GET /app");
    assert!(l.starts_with("127.0.0.1 - alice ["), "{l}");
    assert!(l.contains("\"GET /app?code=***&x=1 HTTP/1.1\" 200 "), "{l}");
    assert!(l.contains(" \"http://x/cb?code=***\" \"ua\\x22q\" "), "{l}");
    assert!(
        l.contains(&format!(
            "rid={rid} up={} us=200 c=*** s=*** t=0.",
            up.url().trim_start_matches("http://")
        )),
        "{l}"
    );
    // A `set` variable made of a cookie is a secret too, and so is a named capture of a
    // regex matched against one (a map's, an `if`'s).
    // And a header the file adds made of one (`$sent_http_x_sid`).
    assert!(
        l.ends_with(" w=user m=*** i=*** n=*** t=*** k=*** x=***"),
        "{l}"
    );
    assert!(!l.contains("SECRETSID") && !l.contains("SECRETCODE"), "{l}");
    let own = find("nothing-here");
    assert!(
        own.contains("\"GET /_gateway/nothing-here HTTP/1.1\" 404 "),
        "{own}"
    );
    assert_eq!(
        wait_lines(&json, 1),
        ["{\"uri\":\"/js/a\",\"args\":\"b=%22c\",\"status\":200}"]
    );
    // A map of `$request_time` (a slow-request log's): every line, the time read as nginx
    // writes it.
    assert!(!wait_lines(&d.join("logs/timed.log"), 1).is_empty());
    // nginx's conditional log of failures (`map $status $failed`): the 404 only.
    let failed = wait_lines(&d.join("logs/failed.log"), 1);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("\"GET /_gateway/nothing-here HTTP/1.1\" 404 "),
        "{failed:?}"
    );

    // logrotate: the file is renamed, the process told; the next line starts a new file.
    std::fs::rename(&main, d.join("logs/main.log.1")).unwrap();
    gw.signal(10);
    gw.wait_log("the access log files are reopened");
    let after = send(
        port,
        b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&after), Some(200));
    let reopened = wait_lines(&main, 1);
    assert!(
        reopened[0].contains("\"GET /after HTTP/1.1\" 200 "),
        "{reopened:?}"
    );
    assert_eq!(wait_lines(&d.join("logs/main.log.1"), 2).len(), 2);

    // Lines queued when SIGTERM comes are written before the process ends.
    for i in 0..50 {
        let r = send(
            port,
            format!("GET /burst/{i} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), Some(200));
    }
    gw.signal(15);
    let exit = gw.wait_exit(Duration::from_secs(40)).expect("stops");
    assert_eq!(exit.code(), Some(0));
    let text = std::fs::read_to_string(&main).unwrap();
    assert_eq!(wait_lines(&main, 51).len(), 51, "{text}");
    assert!(text.ends_with('\n'));

    let everything = [
        text,
        std::fs::read_to_string(d.join("logs/main.log.1")).unwrap(),
        std::fs::read_to_string(&json).unwrap(),
        gw.log(),
    ]
    .concat();
    for secret in [
        "SECRETCODE",
        "SECRETSID",
        "REFCODE",
        "s3cret",
        "YWxpY2U6czNjcmV0",
    ] {
        assert!(!everything.contains(secret), "{secret} reached a log");
    }
    assert!(
        !everything.contains("/off/x"),
        "access_log off wrote a line"
    );
    assert!(!everything.contains("quiet=1"), "if= wrote a line");
}

/// An upstream that fails before answering is written in the access line as nginx writes it:
/// `$upstream_addr` the address tried, `$upstream_status` 502 (refused) or 504 (no answer in
/// time), `$upstream_response_time` the attempt's time, `$upstream_header_time` `-` and
/// `$upstream_connect_time` `-` where no connection was made; an answer's own status and times
/// otherwise. (An outage is when these are read.)
#[test]
fn an_upstream_that_failed_is_logged_with_the_status_nginx_gives_it() {
    let up = upstream::echo("crm");
    // Refused: a port nobody listens on. Silent: connections queue, nothing is answered.
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused_addr = refused.local_addr().unwrap();
    drop(refused);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dir = common::TempDir::new("upfailed");
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::write(
        d.join("site.conf"),
        "log_format up '$request_uri $status a=$upstream_addr s=$upstream_status \
           r=$upstream_response_time h=$upstream_header_time c=$upstream_connect_time';\n\
         server {\n\
           access_log logs/up.log up;\n\
           location /refused/ { proxy_pass http://refused; }\n\
           location /silent/ { proxy_read_timeout 1s; proxy_pass http://silent; }\n\
           location / { proxy_pass http://crm; }\n\
         }\n",
    )
    .unwrap();
    let config = format!(
        "{}[upstreams.crm]\nurl = \"{}\"\n[upstreams.refused]\nurl = \"http://{refused_addr}\"\n\
         [upstreams.silent]\nurl = \"http://{silent_addr}\"\n[nginx]\ninclude = [\"{}\"]\n",
        server_table(),
        up.url(),
        d.join("site.conf").display()
    );
    let gw = Gateway::start_config(&config, &[], &[]);
    for (path, want) in [("/refused/a", 502), ("/silent/a", 504), ("/fine", 200)] {
        let r = send(
            gw.port,
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), Some(want), "{path}");
    }
    let lines = wait_lines(&d.join("logs/up.log"), 3);
    let line = |path: &str| {
        let l = lines.iter().find(|l| l.starts_with(path)).unwrap();
        l.split(' ').map(str::to_owned).collect::<Vec<_>>()
    };
    let time = |field: &str, key: &str| {
        let v = field.strip_prefix(key).unwrap();
        assert!(v.len() == 5 && v.parse::<f64>().is_ok(), "{field}");
        v.parse::<f64>().unwrap()
    };
    let l = line("/refused/a");
    assert_eq!(
        l[1..4],
        [
            "502".to_owned(),
            format!("a={refused_addr}"),
            "s=502".to_owned()
        ]
    );
    time(&l[4], "r=");
    assert_eq!(l[5], "h=-");
    assert_eq!(l[6], "c=-");
    let l = line("/silent/a");
    assert_eq!(
        l[1..4],
        [
            "504".to_owned(),
            format!("a={silent_addr}"),
            "s=504".to_owned()
        ]
    );
    assert!(time(&l[4], "r=") >= 1.0, "{l:?}");
    assert_eq!(l[5], "h=-");
    // Connected (the kernel queued it) and never answered.
    assert!(time(&l[6], "c=") < 1.0, "{l:?}");
    let l = line("/fine");
    assert_eq!(
        l[1..4],
        [
            "200".to_owned(),
            format!("a={}", up.url().trim_start_matches("http://")),
            "s=200".to_owned()
        ]
    );
    let (r, h, c) = (time(&l[4], "r="), time(&l[5], "h="), time(&l[6], "c="));
    assert!(c <= h && h <= r, "{l:?}");
    drop(silent);
}

/// `$args` without arguments is "not found" (`-` in a line) unless something set it empty:
/// a `try_files` fallback, `set $args ""`, a rewrite dropping the arguments a request had.
/// What nginx 1.22 writes for each (an `error_page`, a bare `?`, an `index`: not found).
#[test]
fn args_set_empty_and_args_not_found_are_written_as_nginx_writes_them() {
    let dir = common::TempDir::new("argslog");
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::create_dir_all(d.join("www")).unwrap();
    std::fs::write(d.join("www/index.html"), "hi\n").unwrap();
    std::fs::write(
        d.join("site.conf"),
        format!(
            "log_format a '$request_uri [$args] [$query_string]';\n\
             server {{\n\
               access_log logs/a.log a;\n\
               root {};\n\
               location /tf/ {{ try_files $uri /index.html; }}\n\
               location /ep/ {{ error_page 404 /index.html; }}\n\
               location /epv/ {{ error_page 404 /index.html$is_args; }}\n\
               location /set/ {{ set $args \"\"; return 204; }}\n\
               location /rw/ {{ rewrite ^ /index.html? last; }}\n\
               location /rwa/ {{ rewrite ^ /index.html?a=1 last; }}\n\
               location / {{ }}\n\
             }}\n",
            d.join("www").display()
        ),
    )
    .unwrap();
    let config = format!(
        "{}[nginx]\ninclude = [\"{}\"]\n",
        server_table(),
        d.join("site.conf").display()
    );
    let gw = Gateway::start_config(&config, &[], &[]);
    let asked = [
        "/tf/x",
        "/ep/x",
        "/epv/x",
        "/set/x",
        "/rw/x",
        "/rw/x?q=1",
        "/rwa/x",
        "/index.html",
        "/index.html?",
        "/tf/x?",
    ];
    for path in asked {
        let r = send(
            gw.port,
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(status(&r).is_some(), "{path}");
    }
    let mut lines = wait_lines(&d.join("logs/a.log"), asked.len());
    lines.sort();
    let mut nginx = vec![
        "/tf/x [] []",
        "/ep/x [-] [-]",
        "/epv/x [-] [-]",
        "/set/x [] []",
        "/rw/x [-] [-]",
        "/rw/x?q=1 [] []",
        "/rwa/x [a=1] [a=1]",
        "/index.html [-] [-]",
        "/index.html? [-] [-]",
        "/tf/x? [] []",
    ];
    nginx.sort();
    assert_eq!(lines, nginx);
}

/// A log file that cannot be opened stops the start, at its line, as nginx does; `check`
/// lists `error_log` as loaded with no effect.
#[test]
fn an_access_log_that_cannot_be_opened_is_a_config_error() {
    let dir = common::TempDir::new("badlog");
    let d = dir.path();
    for (conf, want_ok, want) in [
        (
            "server {\n access_log /nonexistent-dir/a.log; }\n",
            false,
            "site.conf:2:2",
        ),
        (
            "error_log /var/log/nginx/error.log warn;\nserver { access_log logs/a.log; }\n",
            true,
            "error_log",
        ),
    ] {
        std::fs::create_dir_all(d.join("logs")).unwrap();
        std::fs::write(d.join("site.conf"), conf).unwrap();
        std::fs::write(
            d.join("gateway.toml"),
            format!(
                "{}[upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n[nginx]\ninclude = [\"{}\"]\n",
                server_table(),
                d.join("site.conf").display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(common::bin())
            .args(["check", "-c"])
            .arg(d.join("gateway.toml"))
            .output()
            .unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.success(), want_ok, "{all}");
        assert!(all.contains(want), "{all}");
        if !want_ok {
            assert!(all.contains("access_log: cannot open"), "{all}");
        }
    }
}

/// The same `log_format`s given to a real nginx and to the gateway, the same requests sent
/// to both: each line reads the same (each server's own port written as PORT), with nginx's
/// escaping, nginx's `-` for an absent value, and `$uri`/`$args` after a rewrite.
#[test]
fn an_access_line_reads_as_nginx_s() {
    let dir = common::TempDir::new("accesslog-diff");
    let d = dir.path();
    std::fs::create_dir_all(d.join("www/static")).unwrap();
    std::fs::write(d.join("www/static/a.txt"), "twelve bytes").unwrap();
    let formats = "default_type text/plain;\nlog_format diff '$request|$status|$body_bytes_sent|$uri|$args|$is_args|\
                   $arg_a|$request_method|$http_user_agent|$http_x_none|$sent_http_content_type|\
                   $sent_http_location|$remote_addr|$server_protocol|$request_uri|$pipe|\
                   $remote_user|$content_length';\n\
                   log_format js escape=json '{\"r\":\"$request\",\"ua\":\"$http_user_agent\",\
                   \"x\":\"$http_x_none\",\"st\":$status}';\n";
    let body = |logs: &str| {
        format!(
            "access_log {logs}.log diff; access_log {logs}.json js;\n\
             location = /hello {{ return 200 \"hello\\n\"; }}\n\
             location /go {{ return 302 /there; }}\n\
             location /static/ {{ root {}; }}\n\
             location /rw/ {{ rewrite ^/rw/(.*)$ /hello?from=$1 last; }}\n",
            d.join("www").display()
        )
    };
    let nginx_logs = d.join("nginx-lines");
    let gw_logs = d.join("gw-lines");
    let (_nginx, ports) = common::nginx::start(&d.join("nginx"), 1, |ports| {
        format!(
            "{formats}server {{ listen 127.0.0.1:{}; server_name localhost;\n{} }}",
            ports[0],
            body(&nginx_logs.display().to_string())
        )
    });
    std::fs::write(
        d.join("site.conf"),
        format!(
            "{formats}server {{ server_name localhost;\n{} }}",
            body(&gw_logs.display().to_string())
        ),
    )
    .unwrap();
    let gw = Gateway::start(&format!(
        "[upstreams.up]\nurl = \"http://127.0.0.1:9\"\n[nginx]\ninclude = [\"{}\"]\n",
        d.join("site.conf").display()
    ));
    let requests: [&[u8]; 7] = [
        b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: a\"b\\c \xc3\xa9\r\nConnection: close\r\n\r\n",
        b"GET /rw/x%20y?q=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /static/a.txt?a=%22&a=2 HTTP/1.0\r\nHost: localhost\r\n\r\n",
        b"HEAD /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /go?a=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /static/../static/a.txt HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic Ym9iOng=\r\nConnection: close\r\n\r\n",
        b"POST /hello HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    ];
    for r in requests {
        let a = send(ports[0], r);
        let b = send(gw.port, r);
        assert_eq!(status(&a), status(&b), "{}", String::from_utf8_lossy(r));
    }
    for ext in ["log", "json"] {
        let norm = |path: &std::path::Path, port: u16| -> Vec<String> {
            wait_lines(path, requests.len())
                .iter()
                .map(|l| {
                    let l = l.replace(&format!(":{port}"), ":PORT");
                    // nginx's own pages end in a line of their server's: their sizes differ.
                    let mut f: Vec<&str> = l.split('|').collect();
                    if f.get(1) == Some(&"302") {
                        f[2] = "PAGE";
                    }
                    f.join("|")
                })
                .collect()
        };
        // Each worker thread's lines keep their order; two threads' may interleave in batches
        // (as two nginx workers' buffered logs do): compared as sets of lines.
        let mut want = norm(&nginx_logs.with_extension(ext), ports[0]);
        let mut got = norm(&gw_logs.with_extension(ext), gw.port);
        want.sort();
        got.sort();
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(g, w, "{ext}");
        }
        assert_eq!(got.len(), want.len());
    }
}

/// A reload naming a file that cannot be opened is refused and the running files stay; one
/// naming a new file writes there from then on.
#[test]
fn a_reload_opens_the_new_files_and_refuses_what_it_cannot_open() {
    let up = upstream::echo("crm");
    let dir = common::TempDir::new("accesslog-reload");
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    let site = |log: &str| {
        std::fs::write(
            d.join("site.conf"),
            format!("server {{ access_log {log}; location / {{ proxy_pass http://crm; }} }}\n"),
        )
        .unwrap();
    };
    site("logs/a.log");
    let config = format!(
        "{}[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
        server_table(),
        up.url(),
        d.join("site.conf").display()
    );
    let gw = Gateway::start_config(&config, &[], &[]);
    let get = |path: &str| {
        let r = send(
            gw.port,
            format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), Some(200), "{path}");
    };
    get("/one");
    assert!(wait_lines(&d.join("logs/a.log"), 1)[0].contains("GET /one "));

    site("/nonexistent-dir/x.log");
    gw.signal(1);
    gw.wait_log("reload: new config refused");
    assert!(gw.log().contains("access_log: cannot open"), "{}", gw.log());
    get("/two");
    assert!(wait_lines(&d.join("logs/a.log"), 2)[1].contains("GET /two "));

    site("logs/b.log");
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    get("/three");
    assert!(wait_lines(&d.join("logs/b.log"), 1)[0].contains("GET /three "));
    assert_eq!(wait_lines(&d.join("logs/a.log"), 2).len(), 2);
}

/// A `WGW_LOG` that is no filter is said on stderr before anything else; the default filter
/// is used (it was replaced silently: an operator asking for debug lines saw none, and no why).
#[test]
fn a_wgw_log_that_is_no_filter_is_said_and_the_default_used() {
    let up = upstream::echo("crm");
    let config = format!(
        "{}\n[upstreams.crm]\nurl = \"{}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
        server_table(),
        up.url()
    );
    let gw = Gateway::start_config(&config, &[("WGW_LOG", "info,[[[=bad")], &[]);
    gw.wait_log("is not a filter");
    assert!(gw.log().contains("wecom-gateway listening"), "{}", gw.log());
}

/// Under `--log-format json` even the reason `run` cannot start is a JSON line (a pipeline that
/// reads the log as JSON would drop a plain one, and with it the only clue), and it is said
/// plainly without it.
#[test]
fn a_gateway_that_cannot_start_says_why_in_the_log_format_asked_for() {
    let dir = common::TempDir::new("fatal-json");
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"not a url\"\n",
    )
    .unwrap();
    for (format, json) in [("json", true), ("text", false)] {
        let out = std::process::Command::new(common::bin())
            .args(["--log-format", format, "run", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{format}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("public_url"), "{format}: {stderr}");
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), json, "{format}: {line}");
            if let Ok(v) = parsed {
                assert_eq!(v["level"], "ERROR", "{line}");
                assert!(
                    v["error"].as_str().unwrap().contains("public_url"),
                    "{line}"
                );
            }
        }
    }
}

/// A path with an escaped line end (`%0a`) or a line separator past ASCII does not start a
/// line of its own, in the access line nor in the engine's error line that names the request
/// (an upstream that refuses the connection makes one): a client could otherwise write a whole
/// access line saying someone else opened a protected page.
#[test]
fn a_path_cannot_write_a_log_line_of_its_own() {
    let gw = Gateway::start(
        "[upstreams.crm]\nurl = \"http://127.0.0.1:1\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n",
    );
    let forged = "FORGED%20INFO%20method=GET%20path=/reports/q4%20userid=%22zhangsan%22";
    for sep in ["%0a", "%0d", "%e2%80%a8", "%c2%85"] {
        let raw =
            format!("GET /pub/x{sep}{forged} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let _ = send(gw.port, raw.as_bytes());
    }
    gw.wait_log_count("Fail to proxy", 4);
    gw.wait_log_count("path=\"/pub/x", 4);
    for line in gw.log().lines() {
        assert!(!line.starts_with("FORGED"), "{line}");
        assert!(
            !line.contains('\u{2028}') && !line.contains('\u{85}'),
            "{line}"
        );
    }
}

/// The gateway with a minimal config and its log on `stdout`/`stderr`, listening: the
/// process, a connection to it (10 s reads), and its directory.
fn logging_gateway(
    tag: &str,
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> (std::process::Child, TcpStream, common::TempDir) {
    let dir = common::TempDir::new(tag);
    let port = common::free_port();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nthreads = 2\n"
        ),
    )
    .unwrap();
    let child = std::process::Command::new(common::bin())
        .args(["run", "-c"])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(Instant::now() < deadline, "never listened");
        std::thread::sleep(Duration::from_millis(20));
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (child, s, dir)
}

/// An output nobody reads (`wecom-gateway run | sleep`, a stuck log shipper) fills its pipe
/// and holds the log's writer in its `write`: a SIGTERM still ends the process, the lines it
/// could not write lost, rather than the stop waiting on the writer for ever.
#[test]
fn a_stop_ends_even_when_nobody_reads_the_log() {
    use std::process::{Command, Stdio};
    // Both pipes kept open and never read.
    let (mut child, mut s, _dir) = logging_gateway("stuck-log", Stdio::piped(), Stdio::piped());
    // Far more access lines than a pipe holds (64 KiB).
    let long = "x".repeat(400);
    for i in 0..2000 {
        s.write_all(format!("GET /nothing/{i}/{long} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut Vec::new());
        assert_eq!(r.status, 404);
    }
    drop(s);
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    exits_cleanly_within(&mut child, 30, "the stop waited on a log nobody reads");
}

/// Waits `secs` for `child` to end with success; kills it and panics with `why` otherwise.
fn exits_cleanly_within(child: &mut std::process::Child, secs: u64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{why}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An `access_log` whose writes fail (a full disk: `/dev/full` answers every write so) loses
/// its lines and says so in the gateway's log, once a minute, as nginx's error log does.
#[test]
fn an_access_log_that_cannot_be_written_says_so() {
    let dir = common::TempDir::new("full-log");
    std::fs::write(
        dir.path().join("site.conf"),
        "access_log /dev/full;\nlocation / { return 200 \"ok\\n\"; }\n",
    )
    .unwrap();
    let gw = Gateway::start_config(
        &format!(
            "{}[nginx]\ninclude = [\"{}\"]\n",
            server_table(),
            dir.path().join("site.conf").display()
        ),
        &[],
        &[],
    );
    for _ in 0..3 {
        let r = send(
            gw.port,
            b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(status(&r), Some(200));
    }
    gw.wait_log("access log: a write failed, its lines are lost");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(gw.log().matches("access log: a write failed").count(), 1);
}

/// Access lines each test below logs through a slow reader: about 1.5 MB.
const SLOW_LINES: usize = 3000;

/// A gateway whose log is read `chunk` bytes at a time, `pause` between reads, with
/// [`SLOW_LINES`] long access lines logged through it; returns the process and the reader,
/// which gives what it read once the process ends.
fn slow_reader_gateway(
    tag: &str,
    chunk: usize,
    pause: Duration,
) -> (
    std::process::Child,
    std::thread::JoinHandle<String>,
    common::TempDir,
) {
    use std::io::Read;
    use std::process::Stdio;
    let (mut child, mut s, dir) = logging_gateway(tag, Stdio::null(), Stdio::piped());
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&all).into_owned(),
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            std::thread::sleep(pause);
        }
    });
    let long = "y".repeat(400);
    for i in 0..SLOW_LINES {
        s.write_all(format!("GET /slow/{i}/{long} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes())
            .unwrap();
        assert_eq!(read_response(&mut s, &mut Vec::new()).status, 404);
    }
    (child, reader, dir)
}

fn send_term(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
}

/// nginx's slow-request log (`map $request_time $slow` with `access_log ... if=$slow`) reads
/// the request's whole time for a request no location of the file handled (a `[[routes]]`
/// entry's): the slow one is written, the quick one not.
#[test]
fn a_slow_request_log_has_the_slow_route_requests() {
    let up = upstream::echo("crm");
    let dir = common::TempDir::new("slowlog");
    let d = dir.path();
    std::fs::write(
        d.join("site.conf"),
        "map $request_time $slow { ~^0\\.[0-4] 0; default 1; }\n\
         server { access_log slow.log combined if=$slow; }\n",
    )
    .unwrap();
    let config = format!(
        "{}[upstreams.crm]\nurl = \"{}\"\n[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n\
         [nginx]\ninclude = [\"{}\"]\n",
        server_table(),
        up.url(),
        d.join("site.conf").display()
    );
    let gw = Gateway::start_config(&config, &[], &[]);
    for target in ["/quick", "/slow?ms=1500"] {
        let r = send(
            gw.port,
            format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status(&r), Some(200), "{target}");
    }
    let lines = wait_lines(&d.join("slow.log"), 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("GET /slow?ms=1500 "), "{lines:?}");
}

/// A slow log reader (a shipper that takes its time) still gets every access line of a
/// normal stop: the stop waits for the writer as long as it writes.
#[test]
fn a_stop_waits_for_a_slow_log_reader_while_it_reads() {
    // 8 KiB every 50 ms: about 160 KB a second, ten seconds of reading.
    let (mut child, reader, _dir) =
        slow_reader_gateway("slow-log", 8192, Duration::from_millis(50));
    send_term(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let text = reader.join().unwrap();
    let lines = text.lines().filter(|l| l.contains("path=/slow/")).count();
    assert_eq!(
        lines, SLOW_LINES,
        "every access line reached the slow reader"
    );
}

/// A second stop signal stops at once, whatever the log's reader still has to take.
#[test]
fn a_second_stop_signal_does_not_wait_for_a_slow_log_reader() {
    // 1 KiB every 20 ms: a minute for the lines.
    let (mut child, _reader, _dir) =
        slow_reader_gateway("slow-log-2", 1024, Duration::from_millis(20));
    send_term(&child);
    std::thread::sleep(Duration::from_secs(1));
    send_term(&child);
    exits_cleanly_within(
        &mut child,
        10,
        "the second signal waited on the log's reader",
    );
}

/// pingora's own debug lines print the headers it sends and a target kept as written: the
/// gateway's assertion and a target's `code=` are masked there too, as text (a header list
/// printed as byte numbers would hide their names from the mask).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_level_the_assertion_and_a_verbatim_target_stay_out_of_the_log() {
    let w = common::world::wecom_and_wechat()
        .env("WGW_LOG", "trace")
        .start()
        .await;
    let mut b = w.member().await;
    let echo = w.echo(&mut b, "/sidebar/page").await;
    let assertion = echo.header("x-gateway-assertion").unwrap().to_owned();
    // The absolute form is kept verbatim beside the URI.
    let port = w.gw().port;
    let raw = format!(
        "GET http://127.0.0.1:{port}/x?code=SECRETCODE HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Request-Id: marker-trace\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(status(&send(port, raw.as_bytes())), Some(200));
    w.gw().wait_log("marker-trace");
    let log = w.gw().log();
    assert!(log.contains("wire_tail"), "pingora's header line is there");
    // Told as text, so that the mask could see it, and masked.
    assert!(
        log.lines()
            .any(|l| l.contains("wire_tail") && l.contains("x-gateway-assertion: ***")),
        "{log}"
    );
    let signature = assertion.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "the assertion reached the log");
    assert!(
        !log.contains("SECRETCODE"),
        "the target's code reached the log"
    );
}
