//! The world of these tests, in one place: the emulator with its provider, suite `saas`
//! configured in a gateway with a qyapi listener, the CRM that receives the forwarded
//! instructions and a page upstream that echoes what it is sent.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::callbacks::{Backend, Crm};
use crate::common::upstream::{echo, Upstream};
use crate::common::{client, free_port, http_get_status, server_table, Gateway};

pub const SUITE: &str = "wwemusuite00000001";
pub const SUITE_SECRET: &str = "emu-suite-secret";
pub const PROVIDER_CORP: &str = "wwemuprovider00001";
pub const SUITE_AGENT: u64 = 1000005;
pub const CORP_A: &str = "wwemucorp000000002";
pub const CORP_B: &str = "wwemucorp000000003";
pub const HOME_CORP: &str = "wwemu0000000000001";
pub const CUSTOM_SUITE: &str = "dkemusuite00000001";
pub const CUSTOM_SECRET: &str = "emu-custom-suite-secret";
pub const TOKEN: &str = "SuiteToken123";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const SESSION_SECRET: &str = "provider-apps-session-secret-0123456789";
pub const ASSERTION_SECRET: &str = "provider-apps-assertion-secret-0123456789";

/// The emulator's default scenario with timely callbacks, tickets pushed only when asked, and
/// `extra` more corps (`wwemuextra0000NNN`, one member `zhangsan` each) for the stampede.
pub fn scenario(extra: usize) -> emulator::Scenario {
    let mut text = emulator::Scenario::default_toml()
        .replace("callback_timeout = \"5s\"", "callback_timeout = \"2s\"")
        .replace(
            "suite_ticket_interval = \"600s\"",
            "suite_ticket_interval = \"0s\"",
        );
    for i in 0..extra {
        text.push_str(&format!(
            "\n[[corps]]\ncorp_id = \"{}\"\nname = \"extra{i}\"\n[[corps.members]]\nuserid = \"zhangsan\"\nname = \"张三{i}\"\n",
            extra_corp(i)
        ));
    }
    emulator::Scenario::from_toml(&text).unwrap()
}

pub fn extra_corp(i: usize) -> String {
    format!("wwemuextra0000{i:03}")
}

pub struct Saas {
    pub emu: emulator::Emulator,
    pub crm: Crm,
    pub page: Upstream,
    pub gw: Option<Gateway>,
    pub qyapi_port: u16,
    pub backend: Backend,
    pub http: reqwest::Client,
}

impl Saas {
    pub async fn start(backend: Backend, extra_corps: usize) -> Saas {
        let emu = emulator::Emulator::start("127.0.0.1:0".parse().unwrap(), scenario(extra_corps))
            .await
            .unwrap();
        let mut s = Saas {
            emu,
            crm: Crm::start(),
            page: echo("page"),
            gw: None,
            qyapi_port: free_port(),
            backend,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(1100)
                .build()
                .unwrap(),
        };
        let (port, admin) = (free_port(), free_port());
        let config = s.config(port, admin);
        let qyapi = s.qyapi_port;
        s.gw = Some(
            tokio::task::spawn_blocking(move || {
                let gw = Gateway::start_config(&config, port, admin, &[], &[]);
                wait_port(qyapi);
                gw
            })
            .await
            .unwrap(),
        );
        s.register().await;
        s
    }

    pub fn gw(&self) -> &Gateway {
        self.gw.as_ref().unwrap()
    }

    fn config(&self, port: u16, admin: u16) -> String {
        let emu = self.emu.base_url();
        let store = match &self.backend {
            Backend::Local => "[store]\nbackend = \"local\"\npath = \"saas.db\"\n".to_owned(),
            Backend::Memory => "[store]\nbackend = \"memory\"\n".to_owned(),
            Backend::Redis(url) => {
                format!("[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"wgw-saas:\"\n")
            }
        };
        format!(
            r#"{server}qyapi_listen = "127.0.0.1:{qyapi}"

{store}
[session]
secret = "{SESSION_SECRET}"
assertion_secret = "{ASSERTION_SECRET}"

[apps.saas]
kind = "wecom_suite"
suite_id = "{SUITE}"
suite_secret = "{SUITE_SECRET}"
provider_corp_id = "{PROVIDER_CORP}"
api_base = "{emu}"
authorize_url = "{emu}/connect/oauth2/authorize"
qr_login_url = "{emu}/wwlogin/sso/login"
jssdk_urls = ["{emu}/emulator/jweixin.js"]
callback = {{ token = "{TOKEN}", encoding_aes_key = "{AES_KEY}", forward = "crm", forward_path = "/wecom/suite" }}

[apps.custom]
kind = "wecom_custom"
suite_id = "{CUSTOM_SUITE}"
suite_secret = "{CUSTOM_SECRET}"
provider_corp_id = "{PROVIDER_CORP}"
api_base = "{emu}"
authorize_url = "{emu}/connect/oauth2/authorize"
qr_login_url = "{emu}/wwlogin/sso/login"
callback = {{ token = "{TOKEN}", encoding_aes_key = "{AES_KEY}", forward = "crm", forward_path = "/wecom/custom" }}

[upstreams.crm]
url = "{crm}"

[upstreams.page]
url = "{page}"

[[routes]]
location = "/app/"
upstream = "page"
login = "saas"

[[routes]]
location = "/custom/"
upstream = "page"
login = "custom"

[[routes]]
location = "/"
upstream = "page"
"#,
            server = server_table(port, admin),
            qyapi = self.qyapi_port,
            crm = self.crm.server.url(),
            page = self.page.url(),
        )
    }

    /// The suites' instruction URLs, registered at the emulator as in the provider's console.
    async fn register(&self) {
        for (app, suite) in [("saas", SUITE), ("custom", CUSTOM_SUITE)] {
            self.control(
                "/_emulator/callbacks",
                json!({
                    "app": app,
                    "url": self.gw().url(&format!("/_gateway/callback/{app}")),
                    "token": TOKEN,
                    "encoding_aes_key": AES_KEY,
                    "kind": "instruction",
                    "suite_id": suite,
                }),
            )
            .await;
        }
    }

    /// The suite's data URL (the same endpoint): events of every corp that installed it, each
    /// encrypted for that corp.
    pub async fn register_data(&self) {
        self.control(
            "/_emulator/callbacks",
            json!({
                "app": "saas-data",
                "url": self.gw().url("/_gateway/callback/saas"),
                "token": TOKEN,
                "encoding_aes_key": AES_KEY,
                "kind": "data",
                "suite_id": SUITE,
            }),
        )
        .await;
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = client()
            .post(format!("{}{path}", self.emu.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// The emulator's callback log once nothing is in flight: every callback answered.
    pub async fn settled(&self) -> Value {
        client()
            .get(format!(
                "{}/_emulator/callbacks?settled=true",
                self.emu.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn push_ticket(&self) {
        self.push_ticket_of(SUITE).await;
    }

    pub async fn push_ticket_of(&self, suite: &str) {
        self.control("/_emulator/suites/push-ticket", json!({"suite_id": suite}))
            .await;
        self.settled().await;
    }

    /// `corp` installs the suite; returns once the CRM got the `create_auth` the gateway
    /// forwards after keeping the install.
    pub async fn install(&self, corp: &str) {
        self.install_of(SUITE, corp).await;
    }

    pub async fn install_of(&self, suite: &str, corp: &str) {
        let before = self.forwarded("create_auth").len();
        self.control(
            "/_emulator/suites/install",
            json!({"suite_id": suite, "corp_id": corp}),
        )
        .await;
        self.wait_forwarded("create_auth", before + 1).await;
    }

    /// The instructions of `info_type` the CRM has taken.
    pub fn forwarded(&self, info_type: &str) -> Vec<String> {
        let tag = format!("<InfoType><![CDATA[{info_type}]]></InfoType>");
        self.crm
            .taken()
            .into_iter()
            .map(|r| r.body)
            .filter(|b| {
                b.contains(&tag) || b.contains(&format!("<InfoType>{info_type}</InfoType>"))
            })
            .collect()
    }

    pub async fn wait_forwarded(&self, info_type: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.forwarded(info_type);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} {info_type} never reached the CRM; log:\n{}",
                self.gw().log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn qyapi(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.qyapi_port)
    }

    /// GET on the qyapi endpoint with optional headers: (status, JSON).
    pub async fn qy(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut rb = self.http.get(self.qyapi(path));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `/_emulator/calls` for one API: its total.
    pub async fn calls(&self, api: &str) -> u64 {
        crate::common::emulator_calls(&self.emu.base_url(), api)
            .await
            .0
    }

    /// Kills the gateway with SIGKILL (or stops it) and starts it again on the same config,
    /// ports and directory.
    pub async fn restart(&mut self, kill: bool) {
        let gw = self.gw.take().unwrap();
        if kill {
            gw.signal(9);
        }
        let qyapi = self.qyapi_port;
        let gw = tokio::task::spawn_blocking(move || {
            let gw = gw.restart();
            wait_port(qyapi);
            gw
        })
        .await
        .unwrap();
        self.gw = Some(gw);
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get_status(port, "/").is_none() {
        assert!(Instant::now() < deadline, "qyapi listener never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
}
