//! Three nginx files as CRM teams have them (`nginx-compat/tests/realistic/`): a Vue SPA with
//! its API, WeChat Official Account pages with `#` rewrites, and the WeCom sidebar with its
//! WebSocket and uploads. Each imports with no unsupported line, `check` accepts the TOML
//! `import-nginx` prints, and the gateway running that TOML answers each file's requests as
//! a real nginx running the file does.

mod common;
#[path = "nginx_differential/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, server_table, Gateway, TempDir};

struct Realistic {
    file: &'static str,
    /// The upstream address the file names (replaced by the echo upstream's in the run).
    upstream: &'static str,
    /// The document root the file names (replaced by a directory with these files).
    root: &'static str,
    files: &'static [(&'static str, &'static str)],
    up_headers: &'static [&'static str],
    requests: &'static [&'static str],
}

const BUNDLE: &str = "/* app bundle */ function mount(){return document.getElementById('app')} \
    mount(); console.log('the customer list, the order form and the chat sidebar live here'); \
    window.__CRM__={version:'3.2.1',api:'/api/',features:['customers','orders','wecom']}; \
    function list(){return fetch('/api/customers?page=1').then(function(r){return r.json()})} \
    function order(id){return fetch('/api/orders/'+id).then(function(r){return r.json()})}\n";

const FILES: &[Realistic] = &[
    Realistic {
        file: "vue-spa.conf",
        upstream: "127.0.0.1:8080",
        root: "/srv/crm/dist",
        files: &[
            ("index.html", "<!doctype html><div id=app></div><script src=/static/js/app.1234.js></script>\n"),
            ("static/js/app.1234.js", BUNDLE),
            ("static/css/app.1234.css", "body{margin:0}\n"),
            ("maintenance.html", "<h1>We are updating the CRM, back in a minute</h1>\n"),
        ],
        up_headers: &["host", "x-real-ip", "x-forwarded-for", "x-forwarded-proto", "content-length"],
        requests: &[
            "GET / | Host: crm.example.com",
            "HEAD / | Host: crm.example.com",
            "GET /customers/42 | Host: crm.example.com",
            "GET /customers/42?tab=orders | Host: crm.example.com",
            "GET /index.html | Host: crm.example.com",
            "GET /static/js/app.1234.js | Host: crm.example.com | Accept-Encoding: gzip, deflate",
            "GET /static/js/app.1234.js | Host: crm.example.com",
            "GET /static/css/app.1234.css | Host: crm.example.com",
            "GET /static/js/missing.js | Host: crm.example.com",
            "GET /api/customers?page=1 | Host: crm.example.com | X-Forwarded-For: 10.1.1.1",
            "GET /api/customers/7 | Host: crm.example.com | Accept-Encoding: gzip",
            "POST /api/upload | Host: crm.example.com | Content-Length: 1000",
            "GET /api | Host: crm.example.com",
            "GET /api/orders | Host: crm.example.com | X-Echo-Status: 503",
            "GET /api/orders | Host: crm.example.com | X-Echo-Status: 404",
            "GET /maintenance.html | Host: crm.example.com",
            "GET /api/actuator/health | Host: crm.example.com",
            "DELETE /customers/42 | Host: crm.example.com",
        ],
    },
    Realistic {
        file: "wechat-oa.conf",
        upstream: "127.0.0.1:9000",
        root: "/srv/wx/h5",
        files: &[
            ("index.html", "<!doctype html><div id=app></div>\n"),
            ("app.js", "wx.ready(function(){});\n"),
            ("logo.png", "PNG"),
        ],
        up_headers: &["host", "x-forwarded-for"],
        requests: &[
            "GET /wx/auth?code=0a1B2c&state=STATE | Host: wx.example.com",
            "GET /member/center | Host: wx.example.com",
            "GET /member/coupons?from=menu | Host: wx.example.com",
            "GET /activity/12 | Host: wx.example.com",
            "GET /activity/12?from=menu | Host: wx.example.com",
            "GET /activity/x | Host: wx.example.com",
            "GET /MP_verify_AbCdEf123456.txt | Host: wx.example.com",
            "GET / | Host: wx.example.com",
            "GET /app.js | Host: wx.example.com",
            "GET /logo.png | Host: wx.example.com",
            "GET /missing.png | Host: wx.example.com",
            "GET /api/user/info?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M | Host: wx.example.com",
            "POST /api/pay/notify | Host: wx.example.com | Content-Length: 12",
            "GET /old-entry.html | Host: wx.example.com",
            "GET /share/abc | Host: wx.example.com | User-Agent: Mozilla/5.0 MicroMessenger/8.0.40",
            "GET /share/abc | Host: wx.example.com | User-Agent: curl/8.0",
            "GET /deep/route | Host: wx.example.com",
        ],
    },
    Realistic {
        file: "sidebar.conf",
        upstream: "127.0.0.1:9100",
        root: "/srv/sidebar/dist",
        files: &[
            ("sidebar/index.html", "<!doctype html><div id=sidebar></div>\n"),
            ("sidebar/js/sidebar.js", "WeComGateway.ready();\n"),
        ],
        up_headers: &["host", "x-real-ip", "upgrade", "content-length"],
        requests: &[
            "GET / | Host: sidebar.example.com",
            "GET /sidebar | Host: sidebar.example.com",
            "GET /sidebar/ | Host: sidebar.example.com",
            "GET /sidebar/?entry=single_chat_tools | Host: sidebar.example.com",
            "GET /sidebar/customer/7 | Host: sidebar.example.com",
            "GET /sidebar/js/sidebar.js | Host: sidebar.example.com",
            "GET /sidebar/api/contacts?cursor=x | Host: sidebar.example.com",
            "GET /sidebar/ws | Host: sidebar.example.com | Upgrade: websocket | Connection: Upgrade",
            "GET /sidebar/ws | Host: sidebar.example.com",
            "POST /sidebar/upload | Host: sidebar.example.com | Content-Length: 100",
            "POST /sidebar/upload | Host: sidebar.example.com | Content-Length: 12000",
            "GET /sidebar/upload | Host: sidebar.example.com",
            "PUT /sidebar/upload | Host: sidebar.example.com | Content-Length: 5",
            "POST /sidebar/uploads | Host: sidebar.example.com | Content-Length: 3",
        ],
    },
];

fn realistic_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("nginx-compat/tests/realistic")
}

fn import(path: &Path) -> (i32, String, String) {
    let out = Command::new(bin())
        .arg("import-nginx")
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The TOML without its `[server]` table (the test's own goes first).
fn without_server_table(toml: &str) -> String {
    let start = toml.find("[server]").unwrap();
    let end = toml[start..]
        .find("\n\n")
        .map_or(toml.len(), |i| start + i + 2);
    format!("{}{}", &toml[..start], &toml[end..])
}

#[test]
fn each_realistic_file_imports_with_no_unsupported_line_and_check_accepts_it() {
    for r in FILES {
        let path = realistic_dir().join(r.file);
        let (code, toml, stderr) = import(&path);
        assert_eq!((code, stderr.as_str()), (0, ""), "{}:\n{toml}", r.file);
        let dir = TempDir::new("realistic-check");
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, &toml).unwrap();
        let out = Command::new(bin())
            .args(["check", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}\n{toml}",
            r.file,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn each_realistic_file_answers_through_the_gateway_as_through_nginx() {
    let up = support::start_echo();
    let echo = format!("127.0.0.1:{up}");
    let mut total = 0;
    let mut failures = Vec::new();
    for r in FILES {
        let dir = TempDir::new("realistic");
        let root = dir.path().join("root");
        for (name, text) in r.files {
            let p = root.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let original = std::fs::read_to_string(realistic_dir().join(r.file)).unwrap();
        let text = original
            .replace(r.upstream, &echo)
            .replace(r.root, &root.display().to_string());
        // nginx listens where the test says; the gateway gets the file as it is.
        let (_nginx, ports) = common::nginx::start(&dir.path().join("nginx"), 1, |ports| {
            let listen = format!("listen 127.0.0.1:{};", ports[0]);
            format!(
                "include /etc/nginx/mime.types; default_type application/octet-stream;\n{}",
                text.replace("listen 80;", &listen)
            )
        });
        let nginx_port = ports[0];

        let conf = dir.path().join(r.file);
        std::fs::write(&conf, &text).unwrap();
        let (code, toml, stderr) = import(&conf);
        assert_eq!(code, 0, "{stderr}");
        let config = format!("{}\n{}", server_table(), without_server_table(&toml));
        let gw = Gateway::start_config(&config, &[], &[]);
        for spec in r.requests {
            total += 1;
            let want = support::seen(&support::send(nginx_port, spec), nginx_port, r.up_headers);
            let got = support::seen(&support::send(gw.port, spec), gw.port, r.up_headers);
            if std::env::var_os("SHOW").is_some() {
                eprintln!("{spec}\n    {want:?}");
            }
            if want != got {
                failures.push(format!(
                    "[{}] {spec}\n  nginx:   {want:?}\n  gateway: {got:?}",
                    r.file
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} requests differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
