//! A real `redis-server` on a free loopback port, without persistence, stopped on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, TempDir};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

fn binary() -> PathBuf {
    for p in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v redis-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match found {
        Some(p) if !p.is_empty() => p.into(),
        _ => panic!(
            "redis-server is not installed: the shared-store tests need it (`make deps` installs it)"
        ),
    }
}

impl RedisServer {
    /// redis-server cannot bind port 0 and report it (port 0 turns TCP off): it gets a free
    /// port, and another one when some other process took that port first.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            child: None,
            port: free_port(),
            dir: TempDir::new("redis"),
        };
        for _ in 0..5 {
            if r.launch() {
                return r;
            }
            r.port = free_port();
        }
        panic!("redis-server never started:\n{}", r.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// (Re)starts the server on its port, empty, and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(
            self.launch(),
            "redis-server did not start again:\n{}",
            self.log()
        );
    }

    /// Starts the server on its port and waits until it answers PING (true) or exits (false:
    /// the port was taken).
    fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).unwrap();
        let child = Command::new(binary())
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            if let Ok(Some(_)) = self.child.as_mut().unwrap().try_wait() {
                self.child = None;
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Kills the server (as a crash would) and waits until its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// `CONFIG SET` each pair, as an operator would.
    pub async fn config_set(&self, pairs: &[(&str, &str)]) {
        let mut conn = self.conn().await;
        for (k, v) in pairs {
            let _: () = redis::cmd("CONFIG")
                .arg("SET")
                .arg(k)
                .arg(v)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    /// Redis at its `maxmemory` with `noeviction`: it answers, and takes no write.
    pub async fn take_no_writes(&self) {
        self.config_set(&[("maxmemory-policy", "noeviction"), ("maxmemory", "1")])
            .await;
    }

    /// A connection for the test's own looks into Redis.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
