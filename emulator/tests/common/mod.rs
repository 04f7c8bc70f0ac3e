#![allow(dead_code)]

pub mod receiver;

use emulator::{Emulator, Scenario};
use serde_json::{json, Value};

pub const CORP: &str = "wwemu0000000000001";
pub const AGENT: u64 = 1000002;
pub const AGENT_SECRET: &str = "emu-agent-secret";
pub const CONTACT_SECRET: &str = "emu-contact-secret";
pub const MP: &str = "wxemu000000000001";
pub const MP_SECRET: &str = "emu-mp-secret";
pub const CALLBACK: &str = "http://crm.test/cb";
pub const MINI: &str = "wxemu000000000002";
pub const MINI_SECRET: &str = "emu-mini-secret";
pub const CORP_B: &str = "wwemucorp000000002";
pub const CORP_C: &str = "wwemucorp000000003";
pub const SUITE: &str = "wwemusuite00000001";
pub const SUITE_SECRET: &str = "emu-suite-secret";
pub const SUITE_AGENT: u64 = 1000005;
pub const CUSTOM_SUITE: &str = "dkemusuite00000001";
pub const CUSTOM_SUITE_SECRET: &str = "emu-custom-suite-secret";
pub const CUSTOM_AGENT: u64 = 1000006;
pub const PROVIDER_CORP: &str = "wwemuprovider00001";

pub struct Harness {
    pub emu: Emulator,
    pub http: reqwest::Client,
}

/// The default scenario with `[settings]` lines added or replaced.
pub fn scenario_with(settings: &[(&str, &str)]) -> Scenario {
    let mut text = Scenario::default_toml().to_string();
    for (key, value) in settings {
        let line = format!("{key} = {value}");
        let existing = text
            .lines()
            .find(|l| l.starts_with(&format!("{key} =")))
            .map(str::to_string);
        text = match existing {
            Some(old) => text.replacen(&old, &line, 1),
            None => text.replacen("[settings]\n", &format!("[settings]\n{line}\n"), 1),
        };
    }
    Scenario::from_toml(&text).expect("test scenario is valid")
}

pub async fn start() -> Harness {
    start_with(Scenario::default()).await
}

pub async fn start_with(scenario: Scenario) -> Harness {
    let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), scenario)
        .await
        .expect("emulator starts");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness { emu, http }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("JSON answer")
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(r.status(), 200, "POST {path}");
        r.json().await.expect("JSON answer")
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.post(&format!("/_emulator/{path}"), body).await
    }

    /// A control call expected to fail: its status.
    pub async fn control_status(&self, path: &str, body: Value) -> u16 {
        self.http
            .post(self.url(&format!("/_emulator/{path}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// GET with a query built from pairs (percent-encoded).
    pub async fn get_q(&self, path: &str, pairs: &[(&str, &str)]) -> Value {
        let mut url = url::Url::parse(&self.url(path)).unwrap();
        url.query_pairs_mut().extend_pairs(pairs);
        let r = self.http.get(url).send().await.expect("GET");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("JSON answer")
    }

    pub async fn advance(&self, by: &str) {
        self.control("advance", json!({ "by": by })).await;
    }

    pub async fn agent_token(&self) -> String {
        let r = self
            .get(&format!(
                "/cgi-bin/gettoken?corpid={CORP}&corpsecret={AGENT_SECRET}"
            ))
            .await;
        r["access_token"].as_str().expect("agent token").to_string()
    }

    pub async fn contact_token(&self) -> String {
        let r = self
            .get(&format!(
                "/cgi-bin/gettoken?corpid={CORP}&corpsecret={CONTACT_SECRET}"
            ))
            .await;
        r["access_token"]
            .as_str()
            .expect("contact token")
            .to_string()
    }

    pub async fn mp_token(&self) -> String {
        let r = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={MP}&secret={MP_SECRET}"
            ))
            .await;
        r["access_token"].as_str().expect("mp token").to_string()
    }

    /// Runs an authorize page and returns the redirect's `Location`.
    pub async fn authorize(&self, query: &str) -> String {
        let r = self
            .http
            .get(self.url(&format!("/connect/oauth2/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            302,
            "authorize {query}: {:?}",
            r.headers().get("x-emulator-error")
        );
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// A WeCom code for the current member, through the in-app authorize page.
    pub async fn wecom_code(&self, scope: &str) -> String {
        let loc = self
            .authorize(&format!(
                "appid={CORP}&redirect_uri={}&response_type=code&scope={scope}&state=s1&agentid={AGENT}",
                enc(CALLBACK)
            ))
            .await;
        code_of(&loc)
    }

    pub async fn wechat_code(&self, scope: &str) -> String {
        let loc = self
            .authorize(&format!(
                "appid={MP}&redirect_uri={}&response_type=code&scope={scope}&state=s1",
                enc(CALLBACK)
            ))
            .await;
        code_of(&loc)
    }

    /// The callback log once nothing is in flight.
    pub async fn callbacks(&self) -> Vec<Value> {
        let v = self.get("/_emulator/callbacks?settled=true").await;
        assert_eq!(
            v["settled"], true,
            "callbacks still in flight after a minute"
        );
        v["callbacks"].as_array().unwrap().clone()
    }

    /// Registers a callback URL as the admin console would.
    pub async fn register(&self, app: &str, url: &str, extra: Value) {
        let mut body = json!({"app": app, "url": url, "token": receiver::TOKEN, "encoding_aes_key": receiver::AES_KEY});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.control("callbacks", body).await;
    }

    pub async fn calls(&self) -> Value {
        self.get("/_emulator/calls").await
    }
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn code_of(location: &str) -> String {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code in redirect")
}

pub fn errcode(v: &Value) -> i64 {
    v["errcode"]
        .as_i64()
        .unwrap_or_else(|| panic!("no errcode in {v}"))
}

/// Asserts a WeCom/WeChat error answer: the code and a realistic message.
pub fn assert_err(v: &Value, code: i64, what: &str) {
    assert_eq!(v["errcode"], json!(code), "{what}: {v}");
    let msg = v["errmsg"].as_str().unwrap_or_default();
    assert!(!msg.is_empty() && msg != "ok", "{what}: errmsg {msg:?}");
}
