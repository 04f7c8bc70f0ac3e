//! Test support: the one test world ([`world::World`]: emulator, CRM, gateway instances, Redis)
//! and below it the real `wecom-gateway` binary on port 0 ([`Gateway`], which reads the ports
//! the binary reports), small upstreams, readiness by polling endpoints (never fixed sleeps).
#![allow(dead_code)]

pub mod apps;
pub mod browser;
pub mod callbacks;
pub mod chrome;
pub mod made_up;
pub mod nginx;
pub mod numbering;
pub mod ports;
pub mod raw;
pub mod redis_server;
pub mod sidebar;
pub mod upstream;
pub mod world;

pub use ports::free_ports;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1, for the programs that cannot bind port 0 and report what they
/// got (nginx, redis-server, the demo's configured addresses): bound and released, so another
/// process may take it in between; their starters try again on another port when it is taken.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wecom-gateway"))
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n: u64 = rand_u64();
        let p = std::env::temp_dir().join(format!("wgw-test-{tag}-{}-{n:x}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

/// A running gateway process. Killed on drop; its log is kept in a file for assertions.
pub struct Gateway {
    pub child: Option<Child>,
    pub dir: TempDir,
    /// The ports the process bound (its listeners say port 0) and reported.
    pub port: u16,
    pub admin_port: u16,
    pub qyapi_port: Option<u16>,
    /// The in-process emulator's port (`[emulator] enabled = true`).
    pub emulator_port: Option<u16>,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
}

/// The environment variable that enables `POST /_test/advance` on the admin listener.
pub const CLOCK_CONTROL: &str = "WGW_TEST_CLOCK";

/// The `[server]` table every test config starts with: every listener on port 0 (the gateway
/// binds and reports them), `public_url` on the port `listen` gets.
pub fn server_table() -> String {
    "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nthreads = 2\n".to_owned()
}

/// What `--ports-file` holds.
#[derive(serde::Deserialize)]
struct Ports {
    listen: std::net::SocketAddr,
    admin_listen: Option<std::net::SocketAddr>,
    qyapi_listen: Option<std::net::SocketAddr>,
    emulator: Option<std::net::SocketAddr>,
}

/// A key of [`Gateway::start_config`]'s `env` that is not passed on: the open-files limit
/// (soft and hard) the process starts under.
pub const NOFILE: &str = "WGW_TEST_HARNESS_NOFILE";

impl Gateway {
    /// Starts the gateway with `body` appended to [`server_table`].
    pub fn start(body: &str) -> Gateway {
        Self::start_config(&format!("{}\n{}", server_table(), body), &[], &[])
    }

    /// Starts the gateway on a whole config (its own `[server]` table, with an
    /// `admin_listen`).
    pub fn start_config(config: &str, env: &[(&str, &str)], args: &[&str]) -> Gateway {
        Self::start_command("run", config, env, args)
    }

    /// Starts `wecom-gateway COMMAND -c CONFIG` (`run` or `demo`) and waits until it is ready.
    pub fn start_command(
        command: &str,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Gateway {
        Self::try_start_command(command, config, env, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `wecom-gateway demo` on one of the repository's demo configs (`gateway.toml`,
    /// `saas.toml`): the gateway's listeners on port 0 (reported), the emulator and the demo
    /// CRM on free ports, since the apps and the upstream name them. Those two are picked
    /// before the process binds them, so another process may take one first: then new ones
    /// are picked. Returns the gateway and the emulator's and the CRM's ports.
    pub fn start_demo(file: &str) -> (Gateway, u16, u16) {
        let original =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let mut tries = 0;
        loop {
            let (emu, crm) = (free_port(), free_port());
            let mut text = original.clone();
            for (from, to) in [(8080, 0), (9090, 0), (8081, 0), (9100, emu), (9000, crm)] {
                text = text.replace(&format!("127.0.0.1:{from}"), &format!("127.0.0.1:{to}"));
            }
            match Self::try_start_command("demo", &text, &[], &[]) {
                Ok(gw) => return (gw, emu, crm),
                Err(e) if e.contains("Address already in use") && tries < 5 => tries += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// [`Gateway::start_command`], the process's exit and its log an `Err` when it does not
    /// become ready.
    pub fn try_start_command(
        command: &str,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Result<Gateway, String> {
        let dir = TempDir::new("gw");
        let config_path = dir.path().join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        // [`NOFILE`] in `env`: the process starts under that open-files limit (util-linux's
        // `prlimit`, which execs the gateway: the pid stays the gateway's).
        let nofile = env.iter().find(|(k, _)| *k == NOFILE).map(|(_, v)| *v);
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        cmd.args(args).arg(command).arg("-c").arg(&config_path);
        cmd.arg("--ports-file").arg(dir.path().join("ports.json"));
        // The test clock control (debug builds only), unless the test says otherwise.
        cmd.env(CLOCK_CONTROL, "1");
        cmd.envs(env.iter().copied().filter(|(k, _)| *k != NOFILE));
        cmd.stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("spawn wecom-gateway");
        let mut gw = Gateway {
            child: Some(child),
            dir,
            port: 0,
            admin_port: 0,
            qyapi_port: None,
            emulator_port: None,
            config_path,
            log_path,
        };
        gw.try_wait_ready()?;
        Ok(gw)
    }

    /// Starts the process again (after it exited or was killed) on the same config, directory
    /// and log, and on the ports it had: the config file now names them instead of port 0.
    pub fn restart(mut self) -> Gateway {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let pinned = self.pin_ports(&std::fs::read_to_string(&self.config_path).unwrap());
        std::fs::write(&self.config_path, pinned).unwrap();
        let _ = std::fs::remove_file(self.ports_path());
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("run").arg("-c").arg(&self.config_path);
        cmd.arg("--ports-file").arg(self.ports_path());
        cmd.env(CLOCK_CONTROL, "1");
        cmd.stdout(Stdio::null()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn wecom-gateway"));
        self.wait_ready();
        self
    }

    /// `config` with each port-0 listener (and `public_url`) on the port this process bound.
    fn pin_ports(&self, config: &str) -> String {
        let mut out = String::new();
        for line in config.lines() {
            let key = line.split('=').next().unwrap_or_default().trim();
            let port = match key {
                "listen" => Some(self.port),
                "public_url" => Some(self.port),
                "admin_listen" => Some(self.admin_port),
                "qyapi_listen" => self.qyapi_port,
                _ => None,
            };
            match port {
                Some(p) if line.trim_end().ends_with(":0\"") => {
                    out.push_str(&line.trim_end().replace(":0\"", &format!(":{p}\"")));
                }
                _ => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }

    fn ports_path(&self) -> PathBuf {
        self.dir.path().join("ports.json")
    }

    fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready() {
            panic!("{e}");
        }
    }

    /// Waits for the ports file (written once every listener is bound), then for the
    /// readiness endpoints.
    fn try_wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Err(format!(
                    "gateway exited early with {status}:\n{}",
                    self.log()
                ));
            }
            if let Ok(text) = std::fs::read_to_string(self.ports_path()) {
                let ports: Ports = serde_json::from_str(&text).expect("the ports file is JSON");
                self.port = ports.listen.port();
                self.admin_port = ports.admin_listen.map_or(0, |a| a.port());
                self.qyapi_port = ports.qyapi_listen.map(|a| a.port());
                self.emulator_port = ports.emulator.map(|a| a.port());
            }
            if self.port != 0
                && http_get_status(self.admin_port, "/healthz") == Some(200)
                && http_get_status(self.port, "/_gateway/healthz") == Some(200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("gateway not ready after 30s:\n{}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.admin_port, path)
    }

    /// Moves the gateway's clock forward by `by` (`"7201s"`), as the emulator's `advance`
    /// moves the emulator's: expiries without sleeping.
    pub async fn advance(&self, by: &str) {
        let r = client()
            .post(self.admin_url("/_test/advance"))
            .json(&serde_json::json!({ "by": by }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// The Prometheus text of the admin listener.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `/metrics` has `line` (at most 30 s): a request is counted when its answer
    /// has gone out, so a client can read `/metrics` before its last request is in it.
    pub async fn wait_metric(&self, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = self.metrics().await;
            if metrics.contains(line) {
                return;
            }
            assert!(Instant::now() < deadline, "no {line} in\n{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: i32) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until the log contains `needle` (a readiness signal for reloads), up to 10 s.
    pub fn wait_log(&self, needle: &str) {
        self.wait_log_count(needle, 1);
    }

    /// Waits until the log contains `needle` `n` times, up to 10 s: the log is written by a
    /// background thread, so a line can arrive after the answer it belongs to.
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(needle).count() < n {
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?} {n} times:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A bare-bones HTTP/1.1 GET over a TcpStream, for readiness checks and raw requests.
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let raw = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    raw_request(port, raw.as_bytes())
        .ok()
        .and_then(|r| parse_status(&r))
}

pub fn raw_request(port: u16, raw: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(raw)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

pub fn parse_status(resp: &[u8]) -> Option<u16> {
    let line = resp.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `/_emulator/calls` of the emulator at `base` for one API path: its total and its count by
/// errcode.
pub async fn emulator_calls(base: &str, api: &str) -> (u64, serde_json::Value) {
    let v: serde_json::Value = client()
        .get(format!("{base}/_emulator/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = &v["calls"][api];
    (c["total"].as_u64().unwrap_or(0), c["by_errcode"].clone())
}

/// A reqwest client that never follows redirects, so tests see every hop.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
