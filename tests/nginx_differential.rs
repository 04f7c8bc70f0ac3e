//! The gateway, not just the crate, answers like nginx: the same rules are given to a real
//! nginx (Debian's, started on a loopback port) and to the gateway (as an `[nginx] include`,
//! or as `[[rewrite]]` tables), both proxy to the same echo upstream, and status, Location
//! (with each server's own port written as PORT) and the URI the upstream received must be
//! byte-identical. Any difference fails with the case printed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, upstream, Gateway, TempDir};

const NGINX: &str = "/usr/sbin/nginx";

struct Nginx {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(body: &str) -> Nginx {
    assert!(
        std::path::Path::new(NGINX).exists(),
        "this test needs the Debian nginx at {NGINX} (apt-get install nginx)"
    );
    let port = free_port();
    let dir = TempDir::new("nginx");
    let d = dir.path().display();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1;\n\
         error_log {d}/logs/error.log; pid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}/cb; proxy_temp_path {d}/pt;\n\
         fastcgi_temp_path {d}/ft; uwsgi_temp_path {d}/ut; scgi_temp_path {d}/st;\n\
         server {{ listen 127.0.0.1:{port}; server_name localhost;\n{body}\n}} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(NGINX)
        .args(["-p", &d.to_string(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(s)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("logs/error.log"));
            panic!("nginx exited ({s}): {}", log.unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

/// Status, Location with the server's port replaced, and the URI an echo upstream saw.
fn ask(port: u16, target: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head[9..12].parse().unwrap();
    let location = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default()
        .replace(&format!(":{port}/"), ":PORT/");
    let upstream_uri = serde_json::from_slice::<upstream::Echo>(body)
        .map(|e| e.uri)
        .unwrap_or_default();
    (status, location, upstream_uri)
}

struct Group {
    name: &'static str,
    /// nginx server body; `UP` is replaced by the echo upstream's `127.0.0.1:port`.
    body: &'static str,
    /// When set, the gateway gets these TOML tables instead of the body as an include.
    toml: Option<&'static str>,
    requests: &'static [&'static str],
}

const GROUPS: &[Group] = &[
    Group {
        name: "seed004",
        body: "location / {\n\
                 rewrite ^/home/register(.*) /home#/register permanent;\n\
                 rewrite ^/login(.*) /#/login permanent;\n\
                 proxy_pass http://UP;\n\
               }",
        toml: None,
        requests: &[
            "/home/register",
            "/home/register?code=abc&state=x",
            "/home/%72egister",
            "/home//register",
            "/x/../home/register",
            "/login?x=1",
            "/loginx/y",
            "/other?q=1",
            "/a%20b?c=d",
        ],
    },
    Group {
        name: "toml-server-rewrites",
        body: "rewrite ^/home/register(.*) /home#/register permanent;\n\
               rewrite ^/r/(.*)$ /target/$1 redirect;\n\
               rewrite ^/p/(.*)$ /perm/$1? permanent;\n\
               location / { proxy_pass http://UP; }",
        toml: Some(
            "[[rewrite]]\npattern = '^/home/register(.*)'\nreplacement = '/home#/register'\nflag = 'permanent'\n\
             [[rewrite]]\npattern = '^/r/(.*)$'\nreplacement = '/target/$1'\nflag = 'redirect'\n\
             [[rewrite]]\npattern = '^/p/(.*)$'\nreplacement = '/perm/$1?'\nflag = 'permanent'\n\
             [[routes]]\nlocation = '/'\nupstream = 'up'\n",
        ),
        requests: &[
            "/home/register?code=1",
            "/r/a%20b",
            "/r/a+b",
            "/r/caf%C3%A9",
            "/r/x%3Fy?q=1",
            "/p/x?drop=me",
            "/plain",
        ],
    },
    Group {
        name: "internal",
        body: "location / {\n\
                 rewrite ^/u/(\\d+)/(\\w+)$ /user?id=$1&tab=$2 last;\n\
                 rewrite ^/n/(?<name>[a-z]+)/(.*)$ /named/$name/$2 last;\n\
                 rewrite ^/loop /loop last;\n\
                 return 404;\n\
               }\n\
               location /user { proxy_pass http://UP; }\n\
               location /named/ { proxy_pass http://UP; }",
        toml: None,
        requests: &[
            "/u/12/profile",
            "/u/12/profile?x=1",
            "/u/ab/profile",
            "/n/abc/d%20f?k=v",
            "/loop",
            "/named",
        ],
    },
    Group {
        name: "return-if-locations",
        body: "location = /exact { return 201; }\n\
               location ^~ /static/ { return 202 \"static\"; }\n\
               location ~ \\.php$ { return 403; }\n\
               location /go { if ($arg_to) { return 302 /went/$arg_to; } return 204; }\n\
               location /abs { return 301 https://example.com/x?$args; }\n\
               location /spa { root no-such-root; try_files $uri $uri/ =404; }",
        toml: None,
        requests: &[
            "/exact",
            "/exact/more",
            "/static/a.php",
            "/dyn/a.php",
            "/go?to=home",
            "/go",
            "/abs?a=1",
            "/spa/x",
        ],
    },
];

#[test]
fn gateway_answers_like_nginx() {
    let up = upstream::echo("up");
    let up_authority = up.url().trim_start_matches("http://").to_owned();
    let mut total = 0;
    let mut failures = Vec::new();
    for g in GROUPS {
        let body = g.body.replace("UP", &up_authority);
        let ngx = start_nginx(&body);
        let dir = TempDir::new("gw-include");
        let gateway_rules = match g.toml {
            Some(t) => t.to_owned(),
            None => {
                let path: PathBuf = dir.path().join("rules.conf");
                std::fs::write(&path, &body).unwrap();
                format!("[nginx]\ninclude = [\"{}\"]\n", path.display())
            }
        };
        let gw = Gateway::start(&format!(
            "[upstreams.up]\nurl = \"{}\"\n{gateway_rules}",
            up.url()
        ));
        for target in g.requests {
            total += 1;
            let want = ask(ngx.port, target);
            let got = ask(gw.port, target);
            if want != got {
                failures.push(format!(
                    "[{}] GET {target}\n  nginx:   {want:?}\n  gateway: {got:?}",
                    g.name
                ));
            }
        }
    }
    assert!(total >= 20, "only {total} cases");
    assert!(
        failures.is_empty(),
        "{} of {total} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
