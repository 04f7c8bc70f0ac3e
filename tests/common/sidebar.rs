//! The sidebar's world: the emulator as WeCom, an upstream as the CRM, the gateway in front
//! with a WeCom app whose JS-SDK is the emulator's, and routes for each `external_contact` mode.

use emulator::{Emulator, Scenario};
use serde_json::{json, Value};

use super::browser::{self, Browser, WXWORK_UA};
use super::upstream::{self, Upstream};
use super::{client, Gateway};

pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef";
pub const ASSERTION_SECRET: &str = "test-assertion-secret-0123456789abcdef";
pub const CORP_ID: &str = "wwemu0000000000001";
pub const AGENT_ID: u64 = 1000002;
pub const CUSTOMER: &str = "wmEmuCustomer001";
pub const CUSTOMER_UNIONID: &str = "oEmuUnion001";

pub struct Sidebar {
    pub emu: Emulator,
    pub up: Upstream,
    pub gw: Gateway,
}

/// Which CRM the gateway fronts.
pub enum Crm {
    /// The echo upstream: tests read the headers it received.
    Echo,
    /// An upstream that is already running (the demo CRM of a browser test).
    At(String),
}

pub fn config(emu: &str, up: &str, contact_secret: bool) -> String {
    let contact_secret = if contact_secret {
        "contact_secret = \"emu-contact-secret\""
    } else {
        ""
    };
    format!(
        r#"
[session]
secret = "{SESSION_SECRET}"
assertion_secret = "{ASSERTION_SECRET}"

[apps.crm]
kind = "wecom"
corp_id = "{CORP_ID}"
agent_id = {AGENT_ID}
secret = "emu-agent-secret"
{contact_secret}
login = "auto"
api_base = "{emu}"
authorize_url = "{emu}/connect/oauth2/authorize"
qr_login_url = "{emu}/wwlogin/sso/login"
jssdk_urls = ["{emu}/emulator/jweixin.js"]

[upstreams.crm]
url = "{up}"

[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/customer/"
upstream = "crm"
login = "crm"
external_contact = "required"

[[routes]]
location = "/staff/"
upstream = "crm"
login = "crm"

[[routes]]
location = "/"
upstream = "crm"
"#
    )
}

impl Sidebar {
    pub async fn start() -> Sidebar {
        Self::start_with(Scenario::default(), Crm::Echo, true).await
    }

    pub async fn start_with(scenario: Scenario, crm: Crm, contact_secret: bool) -> Sidebar {
        let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), scenario)
            .await
            .unwrap();
        let up = upstream::echo("crm");
        let up_url = match crm {
            Crm::Echo => up.url(),
            Crm::At(url) => url,
        };
        let body = config(&emu.base_url(), &up_url, contact_secret);
        let gw = tokio::task::spawn_blocking(move || Gateway::start(&body))
            .await
            .unwrap();
        Sidebar { emu, up, gw }
    }

    /// A WeCom client logged in as the emulator's current member (zhangsan).
    pub async fn logged_in(&self) -> Browser {
        let mut b = Browser::new(WXWORK_UA);
        browser::login(&mut b, &self.gw, &self.emu.base_url(), "crm", "/sidebar/").await;
        b
    }

    pub fn emu_url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    /// A call to the emulator's control API that must succeed.
    pub async fn control(&self, path: &str, body: Value) {
        let r = client()
            .post(self.emu_url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    /// Time passes for WeCom and the gateway alike: both clocks move forward by `by`.
    pub async fn advance(&self, by: &str) {
        self.control("/_emulator/advance", json!({ "by": by }))
            .await;
        self.gw.advance(by).await;
    }

    pub async fn emu_calls(&self, api: &str) -> u64 {
        super::emulator_calls(&self.emu_url(""), api).await.0
    }

    /// `{prefix}/jssdk/config` for `page`: status and body.
    pub async fn jssdk_config(&self, b: &mut Browser, query: &str) -> (u16, Value) {
        let r = b
            .get_json(
                &self.gw.url(&format!("/_gateway/jssdk/config?{query}")),
                &[],
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// What the emulator's JS-SDK says of `payload` (`config` or `agentConfig`) on the page
    /// `href`: the `errMsg` its callback would get.
    pub async fn emulator_verdict(&self, kind: &str, payload: &Value, href: &str) -> String {
        let mut req = payload.clone();
        req["kind"] = json!(kind);
        req["url"] = json!(href);
        let v: Value = client()
            .post(self.emu_url("/_emulator/jssdk/verify"))
            .json(&req)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["errMsg"].as_str().unwrap_or_default().to_owned()
    }

    /// The emulator's sidebar is open on a chat with `external_userid`.
    pub async fn chat_with(&self, external_userid: &str) {
        self.control(
            "/_emulator/current-contact",
            json!({"external_userid": external_userid}),
        )
        .await;
    }

    /// `POST {prefix}/external-contact`: status and body.
    pub async fn verify_contact(&self, b: &mut Browser, external_userid: &str) -> (u16, Value) {
        let r = b
            .post_json(
                &self.gw.url("/_gateway/external-contact"),
                &json!({ "external_userid": external_userid }),
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// The claims of `X-Gateway-Assertion`, verified with the test's secret.
pub fn assertion_claims(jwt: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["wecom-gateway"]);
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .expect("the assertion verifies")
    .claims
}
