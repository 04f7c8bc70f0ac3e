//! The world of these tests, in one place: the emulator with its provider, suite `saas`
//! configured in a gateway with a qyapi listener, the CRM that receives the forwarded
//! instructions and a page upstream that echoes what it is sent.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::callbacks::{placeholder, Backend, Crm};
use crate::common::client;
use crate::common::upstream::{echo, Upstream};
pub use crate::common::world::ASSERTION_SECRET;
use crate::common::world::{App, World};

pub const SUITE: &str = "wwemusuite00000001";
pub const SUITE_AGENT: u64 = 1000005;
pub const CORP_A: &str = "wwemucorp000000002";
pub const CORP_B: &str = "wwemucorp000000003";
pub const HOME_CORP: &str = "wwemu0000000000001";
pub const CUSTOM_SUITE: &str = "dkemusuite00000001";
pub const TOKEN: &str = "SuiteToken123";
pub const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

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

/// The third-party suite's secret, as the scenario has it.
pub fn suite_secret() -> String {
    let ids = crate::common::world::Ids::of(&scenario(0));
    ids.suites
        .into_iter()
        .find(|(id, _)| id == SUITE)
        .unwrap()
        .1
}

pub fn extra_corp(i: usize) -> String {
    format!("wwemuextra0000{i:03}")
}

pub struct Saas {
    pub world: World,
    pub crm: Crm,
    pub page: Upstream,
    pub backend: Backend,
}

impl std::ops::Deref for Saas {
    type Target = World;
    fn deref(&self) -> &World {
        &self.world
    }
}

/// `/app/` behind a login of the suite, `/custom/` of the 代开发 suite, the rest public; all
/// on the page upstream.
const ROUTES: &str = r#"
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
"#;

impl Saas {
    pub async fn start(backend: Backend, extra_corps: usize) -> Saas {
        Saas::start_instances(backend, extra_corps, 1).await
    }

    /// `instances` gateways on the one store; WeCom's callbacks go to the first.
    pub async fn start_instances(backend: Backend, extra_corps: usize, instances: usize) -> Saas {
        Saas::start_with(backend, extra_corps, instances, &[]).await
    }

    /// The same, with environment variables for the gateways (debug builds'
    /// `WGW_TEST_FAST_RETRY`).
    pub async fn start_with(
        backend: Backend,
        extra_corps: usize,
        instances: usize,
        env: &[(&str, &str)],
    ) -> Saas {
        Saas::start_keyed(backend, extra_corps, instances, env, "").await
    }

    /// One gateway whose third-party app `saas` has `keys` too (`reauth_after = "1m"`).
    pub async fn start_saas_keys(backend: Backend, keys: &str) -> Saas {
        Saas::start_keyed(backend, 0, 1, &[], keys).await
    }

    async fn start_keyed(
        backend: Backend,
        extra_corps: usize,
        instances: usize,
        env: &[(&str, &str)],
        saas_keys: &str,
    ) -> Saas {
        let store = match &backend {
            Backend::Local => "[store]\nbackend = \"local\"\npath = \"saas.db\"\n".to_owned(),
            Backend::Memory => "[store]\nbackend = \"memory\"\n".to_owned(),
            Backend::Redis(url) => {
                format!("[store]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"wgw-saas:\"\n")
            }
        };
        let callback = |path: &str| {
            format!("callback = {{ token = \"{TOKEN}\", encoding_aes_key = \"{AES_KEY}\", forward = \"crm\", forward_path = \"{path}\" }}")
        };
        let (crm, crm_server) = Crm::start();
        let page = echo("page");
        let mut world = World::new();
        for (k, v) in env {
            world = world.env(k, v);
        }
        let world = world
            .scenario(scenario(extra_corps))
            .qyapi()
            .store(&store)
            .session("")
            .app(
                App::suite("saas", SUITE)
                    .with(&format!("{}\n{saas_keys}", callback("/wecom/suite"))),
            )
            .app(App::custom_suite("custom", CUSTOM_SUITE).with(&callback("/wecom/custom")))
            .crm(crm_server)
            .toml(&format!("[upstreams.page]\nurl = \"{}\"\n", page.url()))
            .routes(ROUTES)
            .instances(instances)
            .start()
            .await;
        let s = Saas {
            world,
            crm,
            page,
            backend,
        };
        s.register().await;
        s
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

    /// `corp` installs the suite while WeCom's `api` behaves as `fault` says (the emulator's
    /// `/_emulator/faults`: errcode, delay_ms, late_ms, count); returns once WeCom heard
    /// `success`, the exchange still under way.
    pub async fn install_under(&self, api: &str, mut fault: Value, corp: &str) {
        fault["api"] = api.into();
        self.control("/_emulator/faults", fault).await;
        self.control(
            "/_emulator/suites/install",
            json!({"suite_id": SUITE, "corp_id": corp}),
        )
        .await;
    }

    /// `corp` installs the suite while WeCom answers the exchange of its AuthCode 3 s late,
    /// this once; returns once WeCom heard `success`, the exchange still under way.
    pub async fn install_while_the_exchange_is_slow(&self, corp: &str) {
        self.control(
            "/_emulator/faults",
            json!({"api": "/cgi-bin/service/v2/get_permanent_code", "delay_ms": 3000, "count": 1}),
        )
        .await;
        self.control(
            "/_emulator/suites/install",
            json!({"suite_id": SUITE, "corp_id": corp}),
        )
        .await;
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

    /// Kills the gateway with SIGKILL (or stops it) and starts it again on the same config,
    /// ports and directory.
    pub async fn restart(&mut self, kill: bool) {
        let gw = std::mem::replace(&mut self.world.gateways[0], placeholder());
        if kill {
            gw.signal(9);
        }
        let gw = tokio::task::spawn_blocking(move || gw.restart())
            .await
            .unwrap();
        self.world.gateways[0] = gw;
    }
}
