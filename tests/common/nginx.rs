//! A Debian nginx of a test's own: in the foreground, one worker, its prefix in a directory the
//! test gives. (Also the nginx-compat crate's differential test's, through a `#[path]`: it
//! needs `free_ports` beside it.)

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx with `http(ports)` in its `http` block, listening on the `n` free ports it is given.
/// When another process took one of them between their pick and nginx's bind, nginx starts
/// again on new ones (up to five times).
pub fn start(dir: &Path, n: usize, http: impl Fn(&[u16]) -> String) -> (Nginx, Vec<u16>) {
    let mut last = String::new();
    for _ in 0..5 {
        let ports = super::free_ports(n);
        match try_start(dir, &http(&ports), &ports) {
            Ok(nginx) => return (nginx, ports),
            Err(e) if e.contains("Address already in use") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("nginx found no free ports in five tries: {last}")
}

/// nginx with `http` in its `http` block, ready once it has bound every listener (it writes
/// its pid file after that) and `ports` accept connections; `Err` with its log if it exits.
pub fn try_start(dir: &Path, http: &str, ports: &[u16]) -> Result<Nginx, String> {
    assert!(
        Path::new(NGINX).exists(),
        "this test needs the Debian nginx at {NGINX} (apt-get install nginx)"
    );
    let d = dir.display();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let pid = dir.join("nginx.pid");
    let _ = std::fs::remove_file(&pid);
    let conf = format!(
        "daemon off; master_process off; worker_processes 1;\n\
         error_log {d}/logs/error.log; pid {d}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; server_tokens off; client_body_temp_path {d}/cb;\n\
         proxy_temp_path {d}/pt; fastcgi_temp_path {d}/ft; uwsgi_temp_path {d}/ut;\n\
         scgi_temp_path {d}/st;\n{http}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let stderr = std::fs::File::create(dir.join("logs/stderr.log")).unwrap();
    let mut child = Command::new(NGINX)
        .args(["-p", &d.to_string(), "-c", "nginx.conf"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start nginx");
    let deadline = Instant::now() + Duration::from_secs(20);
    // A listener another process holds makes nginx retry its bind for a few seconds and then
    // exit; until the pid file exists, an answer on the port may be that other process's.
    let ready = || {
        pid.exists()
            && ports
                .iter()
                .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
    };
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            let log = |name: &str| std::fs::read_to_string(dir.join("logs").join(name));
            return Err(format!(
                "nginx exited ({status}): {}{}",
                log("stderr.log").unwrap_or_default(),
                log("error.log").unwrap_or_default()
            ));
        }
        assert!(Instant::now() < deadline, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Nginx { child })
}
