//! Headless Debian Chromium driven through chromedriver's WebDriver HTTP API: a real browser
//! for the tests that run the front end (sdk.js, the demo page). Screenshots land in
//! `target/test-artifacts/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::TempDir;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One chromedriver with one headless Chromium session; both end on drop.
pub struct Chrome {
    driver: Child,
    port: u16,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: TempDir,
}

impl Chrome {
    pub async fn start(user_agent: &str) -> Chrome {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: this test runs sdk.js in headless Chromium; \
                 `scripts/deps.sh` installs Debian's chromium and chromium-driver"
            );
        }
        // Port 0: chromedriver binds a free port and says which on stdout. Once in a full
        // run (many tests opening ports at once) it ended without naming one, its reason
        // unseen; it is started again, up to three times, before the test gives up.
        let (driver, port) = (1..=3)
            .find_map(|_| {
                let mut driver = Command::new(CHROMEDRIVER)
                    .arg("--port=0")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("chromedriver starts");
                match bound_port(driver.stdout.take().unwrap()) {
                    Some(port) => Some((driver, port)),
                    None => {
                        let _ = driver.kill();
                        let _ = driver.wait();
                        None
                    }
                }
            })
            .expect("chromedriver said on which port it listens, in one of three starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|v| v["value"]["ready"] == true),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = TempDir::new("chromium");
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=420,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--user-agent={user_agent}"),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let mut chrome = Chrome {
            driver,
            port,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = chrome.call(reqwest::Method::POST, "/session", caps).await;
        chrome.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        chrome
            .cmd("/timeouts", json!({"script": 30000, "pageLoad": 30000}))
            .await;
        chrome
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method == reqwest::Method::POST {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(
            v["value"].get("error").is_none(),
            "WebDriver {path}: {}",
            v["value"]
        );
        v["value"].clone()
    }

    pub async fn cmd(&self, path: &str, body: Value) -> Value {
        let p = format!("/session/{}{path}", self.session);
        self.call(reqwest::Method::POST, &p, body).await
    }

    pub async fn get(&self, path: &str) -> Value {
        let p = format!("/session/{}{path}", self.session);
        self.call(reqwest::Method::GET, &p, Value::Null).await
    }

    pub async fn open(&self, url: &str) {
        self.cmd("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `body` in the page; it calls `done(value)` when finished.
    pub async fn run(&self, body: &str) -> Value {
        let script = format!("var done = arguments[arguments.length - 1];\n{body}");
        self.cmd("/execute/async", json!({"script": script, "args": []}))
            .await
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closing the session ends Chromium; chromedriver is ours to stop.
            let raw = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = super::raw_request(self.port, raw.as_bytes());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The port of chromedriver's "ChromeDriver was started successfully on port N." line (`None`
/// when it ended first); the rest of its output is read and dropped so that it never blocks on
/// a full pipe.
fn bound_port(stdout: std::process::ChildStdout) -> Option<u16> {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let port = loop {
        let line = lines.next()?.ok()?;
        if let Some(rest) = line.split("successfully on port ").nth(1) {
            break rest.trim_end_matches('.').trim().parse().ok()?;
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Some(port)
}
