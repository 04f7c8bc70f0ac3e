//! A gateway with its qyapi endpoint in front of an in-process emulator: the world the qyapi
//! and provider tests run in.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::Gateway;

pub const CORP_ID: &str = "wwemu0000000000001";
pub const AGENT_ID: u64 = 1000002;
pub const AGENT_SECRET: &str = "emu-agent-secret";
pub const CONTACT_SECRET: &str = "emu-contact-secret";
pub const MP_APP_ID: &str = "wxemu000000000001";
pub const MP_SECRET: &str = "emu-mp-secret";

/// The apps of the default scenario, pointed at the emulator at `emu`.
pub fn apps_toml(emu: &str) -> String {
    format!(
        r#"
[apps.crm]
kind = "wecom"
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "{AGENT_SECRET}"
contact_secret = "{CONTACT_SECRET}"
api_base = "{emu}"

[apps.mp]
kind = "wechat_mp"
app_id = "{MP_APP_ID}"
secret = "{MP_SECRET}"
api_base = "{emu}"

[apps.wrong]
kind = "wecom"
corp_id = "{CORP_ID}"
agent_id = 1000009
secret = "not-the-secret"
api_base = "{emu}"

[upstreams.crm]
url = "http://127.0.0.1:9"

[[routes]]
location = "/"
upstream = "crm"
"#
    )
}

pub struct World {
    pub emulator: emulator::Emulator,
    pub gateway: Gateway,
    pub qyapi_port: u16,
    pub http: reqwest::Client,
}

impl World {
    pub async fn start() -> World {
        Self::start_with(emulator::Scenario::default(), &[]).await
    }

    /// `allow`: the `qyapi_allow` networks (empty = the default, loopback).
    pub async fn start_with(scenario: emulator::Scenario, allow: &[&str]) -> World {
        let emulator = emulator::Emulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), scenario)
            .await
            .expect("emulator starts");
        let allow = if allow.is_empty() {
            String::new()
        } else {
            let nets: Vec<String> = allow.iter().map(|n| format!("\"{n}\"")).collect();
            format!("qyapi_allow = [{}]\n", nets.join(", "))
        };
        let config = format!(
            "{}qyapi_listen = \"127.0.0.1:0\"\n{allow}\n{}",
            super::server_table(),
            apps_toml(&emulator.base_url())
        );
        let gateway = tokio::task::spawn_blocking(move || Gateway::start_config(&config, &[], &[]))
            .await
            .unwrap();
        let qyapi_port = gateway.qyapi_port.unwrap();
        World {
            emulator,
            gateway,
            qyapi_port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(600)
                .build()
                .unwrap(),
        }
    }

    pub fn qyapi(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.qyapi_port, path)
    }

    pub fn emu(&self, path: &str) -> String {
        format!("{}{}", self.emulator.base_url(), path)
    }

    /// GET on the endpoint; the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.qyapi(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn control(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(self.emu(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    pub async fn expire_tokens(&self) {
        self.control("/_emulator/expire-tokens", Value::Null).await;
    }

    pub async fn fault(&self, api: &str, errcode: i64, count: u32) {
        self.control(
            "/_emulator/faults",
            serde_json::json!({"api": api, "errcode": errcode, "count": count}),
        )
        .await;
    }

    /// `/_emulator/calls` for one API: (total, by errcode).
    pub async fn calls(&self, api: &str) -> (u64, Value) {
        super::emulator_calls(&self.emu(""), api).await
    }

    pub async fn gettokens(&self) -> u64 {
        self.calls("/cgi-bin/gettoken").await.0
    }
}
