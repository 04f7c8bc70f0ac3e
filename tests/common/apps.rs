//! The apps a test's gateway has, their ids and secrets read from the emulator's scenario:
//! the one place that writes `[apps]`.

use emulator::Scenario;

pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef";
pub const ASSERTION_SECRET: &str = "test-assertion-secret-0123456789abcdef";

/// The ids and secrets of a scenario, as a gateway config and a test name them.
#[derive(Debug, Clone)]
pub struct Ids {
    pub corp_id: String,
    pub agent_id: u64,
    pub agent_secret: String,
    pub contact_secret: String,
    pub mp_app_id: String,
    pub mp_secret: String,
    pub mini_app_id: String,
    pub mini_secret: String,
    /// The first member: who the emulator logs in.
    pub member: String,
    /// The first external contact, and its unionid.
    pub customer: String,
    pub customer_unionid: String,
    /// The service provider's corp, and each suite's id and secret.
    pub provider_corp: String,
    pub suites: Vec<(String, String)>,
}

impl Ids {
    pub fn of(s: &Scenario) -> Ids {
        let agent = s.agents.first().expect("a scenario has an agent");
        let customer = s.external_contacts.first();
        Ids {
            corp_id: s.corp.corp_id.clone(),
            agent_id: agent.agent_id,
            agent_secret: agent.secret.clone(),
            contact_secret: s.corp.contact_secret.clone(),
            mp_app_id: s
                .wechat_mp
                .as_ref()
                .map(|m| m.app_id.clone())
                .unwrap_or_default(),
            mp_secret: s
                .wechat_mp
                .as_ref()
                .map(|m| m.secret.clone())
                .unwrap_or_default(),
            mini_app_id: s
                .wechat_mini
                .as_ref()
                .map(|m| m.app_id.clone())
                .unwrap_or_default(),
            mini_secret: s
                .wechat_mini
                .as_ref()
                .map(|m| m.secret.clone())
                .unwrap_or_default(),
            member: s
                .members
                .first()
                .map(|m| m.userid.clone())
                .unwrap_or_default(),
            customer: customer
                .map(|c| c.external_userid.clone())
                .unwrap_or_default(),
            customer_unionid: customer.and_then(|c| c.unionid.clone()).unwrap_or_default(),
            provider_corp: s
                .provider
                .as_ref()
                .map(|p| p.corp_id.clone())
                .unwrap_or_default(),
            suites: s
                .suites
                .iter()
                .map(|x| (x.suite_id.clone(), x.suite_secret.clone()))
                .collect(),
        }
    }
}

/// The ids of the emulator's default scenario.
pub fn ids() -> &'static Ids {
    static IDS: std::sync::OnceLock<Ids> = std::sync::OnceLock::new();
    IDS.get_or_init(|| Ids::of(&Scenario::default()))
}

/// The default scenario's corp, agent, first customer and its unionid, by name.
pub fn corp_id() -> &'static str {
    &ids().corp_id
}

pub fn agent_id() -> u64 {
    ids().agent_id
}

pub fn customer() -> &'static str {
    &ids().customer
}

pub fn customer_unionid() -> &'static str {
    &ids().customer_unionid
}

#[derive(Clone, PartialEq)]
enum Kind {
    Wecom,
    Mp,
    Mini,
    /// `wecom_suite` (a third-party suite) or `wecom_custom` (代开发) of this suite id.
    Suite(&'static str, String),
}

/// One `[apps.NAME]` table, its credentials taken from the scenario.
#[derive(Clone)]
pub struct App {
    name: String,
    kind: Kind,
    contact: bool,
    agent_id: Option<u64>,
    secret: Option<String>,
    api_base: Option<String>,
    lines: Vec<String>,
}

impl App {
    /// The scenario's corp and first agent, logging in through the emulator.
    pub fn wecom(name: &str) -> App {
        App::new(name, Kind::Wecom)
    }

    /// The scenario's Official Account.
    pub fn mp(name: &str) -> App {
        App::new(name, Kind::Mp)
    }

    /// The scenario's mini-program.
    pub fn mini(name: &str) -> App {
        App::new(name, Kind::Mini)
    }

    /// The scenario's third-party suite `suite_id`, installed by corps.
    pub fn suite(name: &str, suite_id: &str) -> App {
        App::new(name, Kind::Suite("wecom_suite", suite_id.into()))
    }

    /// The scenario's custom-developed (代开发) suite `suite_id`.
    pub fn custom_suite(name: &str, suite_id: &str) -> App {
        App::new(name, Kind::Suite("wecom_custom", suite_id.into()))
    }

    fn new(name: &str, kind: Kind) -> App {
        App {
            name: name.into(),
            kind,
            contact: false,
            agent_id: None,
            secret: None,
            api_base: None,
            lines: Vec::new(),
        }
    }

    /// With the corp's contact secret (`contact_secret`).
    pub fn contact(mut self) -> App {
        self.contact = true;
        self
    }

    /// Another agent id than the scenario's.
    pub fn agent_id(mut self, id: u64) -> App {
        self.agent_id = Some(id);
        self
    }

    /// Another secret than the scenario's (a wrong one).
    pub fn secret(mut self, secret: &str) -> App {
        self.secret = Some(secret.into());
        self
    }

    /// Its API somewhere else than the emulator (a test's own provider).
    pub fn api_base(mut self, url: &str) -> App {
        self.api_base = Some(url.into());
        self
    }

    /// More lines of the table (`reauth_after = "1h"`, `callback = {...}`).
    pub fn with(mut self, lines: &str) -> App {
        self.lines.push(lines.into());
        self
    }

    fn toml(&self, ids: &Ids, emu: &str) -> String {
        let name = &self.name;
        let api = self.api_base.as_deref().unwrap_or(emu);
        let mut t = format!("[apps.{name}]\n");
        match &self.kind {
            Kind::Wecom => {
                let agent_id = self.agent_id.unwrap_or(ids.agent_id);
                let secret = self.secret.as_deref().unwrap_or(&ids.agent_secret);
                t += &format!(
                    "kind = \"wecom\"\ncorp_id = \"{}\"\nagent_id = {agent_id}\nsecret = \"{secret}\"\n",
                    ids.corp_id
                );
                if self.contact {
                    t += &format!("contact_secret = \"{}\"\n", ids.contact_secret);
                }
                t += &format!(
                    "api_base = \"{api}\"\nauthorize_url = \"{emu}/connect/oauth2/authorize\"\n\
                     qr_login_url = \"{emu}/wwlogin/sso/login\"\njssdk_urls = [\"{emu}/emulator/jweixin.js\"]\n"
                );
            }
            Kind::Mp => {
                let secret = self.secret.as_deref().unwrap_or(&ids.mp_secret);
                t += &format!(
                    "kind = \"wechat_mp\"\napp_id = \"{}\"\nsecret = \"{secret}\"\napi_base = \"{api}\"\n\
                     authorize_url = \"{emu}/connect/oauth2/authorize\"\n",
                    ids.mp_app_id
                );
            }
            Kind::Suite(kind, suite_id) => {
                let secret = ids
                    .suites
                    .iter()
                    .find(|(id, _)| id == suite_id)
                    .map(|(_, secret)| secret.as_str())
                    .expect("the suite is in the scenario");
                t += &format!(
                    "kind = \"{kind}\"\nsuite_id = \"{suite_id}\"\nsuite_secret = \"{secret}\"\n\
                     provider_corp_id = \"{}\"\napi_base = \"{api}\"\n\
                     authorize_url = \"{emu}/connect/oauth2/authorize\"\nqr_login_url = \"{emu}/wwlogin/sso/login\"\n",
                    ids.provider_corp
                );
                if *kind == "wecom_suite" {
                    t += &format!("jssdk_urls = [\"{emu}/emulator/jweixin.js\"]\n");
                }
            }
            Kind::Mini => {
                let secret = self.secret.as_deref().unwrap_or(&ids.mini_secret);
                t += &format!(
                    "kind = \"wechat_mini\"\napp_id = \"{}\"\nsecret = \"{secret}\"\napi_base = \"{api}\"\n",
                    ids.mini_app_id
                );
            }
        }
        for l in &self.lines {
            t += l;
            t.push('\n');
        }
        t
    }
}

/// The apps the qyapi tests call WeCom through: `crm` with the contact secret, the Official
/// Account `mp`, and `wrong`, an agent whose secret WeCom refuses.
pub fn qyapi_apps() -> Vec<App> {
    vec![
        App::wecom("crm").contact(),
        App::mp("mp"),
        App::wecom("wrong")
            .agent_id(1000009)
            .secret("not-the-secret"),
    ]
}

/// The `[apps]` tables of `apps` in the corp of `ids`, their APIs at `emu`: for a config a
/// test compiles in-process.
pub fn apps_toml(apps: &[App], ids: &Ids, emu: &str) -> String {
    apps.iter().map(|a| a.toml(ids, emu) + "\n").collect()
}
