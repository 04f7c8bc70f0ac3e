//! The scenario file (SPEC section 13): who exists in the emulated corp and how the servers behave.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

const DEFAULT_TOML: &str = include_str!("default_scenario.toml");
const DEMO_TOML: &str = include_str!("demo_scenario.toml");

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("scenario: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    #[serde(default)]
    pub settings: Settings,
    pub corp: Corp,
    #[serde(default)]
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub external_contacts: Vec<ExternalContact>,
    #[serde(default)]
    pub wechat_mp: Option<WechatMp>,
    #[serde(default)]
    pub wechat_users: Vec<WechatUser>,
    /// The home corp's departments; empty means the root department 1 alone.
    #[serde(default)]
    pub departments: Vec<Department>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// A WeChat mini-program (`sns/jscode2session`).
    #[serde(default)]
    pub wechat_mini: Option<WechatMini>,
    /// More corps: they install the provider's suites (section 20). Ids and userids may repeat
    /// those of the home corp, as they do at WeCom.
    #[serde(default)]
    pub corps: Vec<CorpData>,
    /// The service provider (服务商) itself.
    #[serde(default)]
    pub provider: Option<Provider>,
    #[serde(default)]
    pub suites: Vec<Suite>,
    /// Registered callback URLs (what the admin console would hold).
    #[serde(default)]
    pub callbacks: Vec<CallbackReceiver>,
    /// Where the emulated WeCom client is when the emulator starts.
    #[serde(default)]
    pub start: Start,
}

/// The emulated client's state at start: the `current-contact` control's values, so that a
/// demo can open in a customer chat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The chat's customer (`getCurExternalContact`); none: not in a customer chat.
    pub current_contact: Option<String>,
    /// `getContext`'s entry, e.g. "single_chat_tools"; default "normal".
    pub entry: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `expires_in` of access tokens and jsapi tickets.
    #[serde(with = "duration_str")]
    pub token_ttl: Duration,
    /// OAuth codes live 5 minutes at WeCom and WeChat.
    #[serde(with = "duration_str")]
    pub code_ttl: Duration,
    /// Per (corp, secret) and per (appid, secret); beyond it 45009.
    pub gettoken_per_minute: u32,
    /// The app's trusted IPs (plain addresses or CIDR); empty means any caller.
    #[serde(deserialize_with = "ip_list", serialize_with = "ip_list_out")]
    pub allowed_ips: Vec<IpNet>,
    /// How long a WeChat `cgi-bin/token` stays valid after a newer one was issued.
    #[serde(with = "duration_str")]
    pub wechat_token_overlap: Duration,
    /// WeCom pages `follow_user` of `externalcontact/get` beyond 500 entries.
    pub follow_user_page_size: usize,
    /// Hosts `redirect_uri` must be on (the app's trusted domain); empty means any.
    pub redirect_domains: Vec<String>,
    /// How long a callback receiver has to answer before WeCom tries again (WeCom: 5 s).
    #[serde(with = "duration_str")]
    pub callback_timeout: Duration,
    /// Tries after the first when a receiver does not answer in time (WeCom: 3).
    pub callback_retries: u32,
    /// The pause before each retry (WeCom does not document it).
    #[serde(with = "duration_str")]
    pub callback_retry_delay: Duration,
    /// How often each suite's ticket is pushed to its instruction URL (WeCom: 10 minutes);
    /// "0s" pushes only when asked (`/_emulator/suites/push-ticket`).
    #[serde(with = "duration_str")]
    pub suite_ticket_interval: Duration,
    /// An install's `AuthCode` is valid 10 minutes, once.
    #[serde(with = "duration_str")]
    pub auth_code_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_ttl: Duration::from_secs(7200),
            code_ttl: Duration::from_secs(300),
            gettoken_per_minute: 600,
            allowed_ips: Vec::new(),
            wechat_token_overlap: Duration::from_secs(300),
            follow_user_page_size: 500,
            redirect_domains: Vec::new(),
            callback_timeout: Duration::from_secs(5),
            callback_retries: 3,
            callback_retry_delay: Duration::from_secs(1),
            suite_ticket_interval: Duration::from_secs(600),
            auth_code_ttl: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Corp {
    pub corp_id: String,
    pub contact_secret: String,
    #[serde(default = "default_corp_name")]
    pub name: String,
}

fn default_corp_name() -> String {
    "模拟企业".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub agent_id: u64,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub userid: String,
    pub name: String,
    #[serde(default)]
    pub mobile: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub position: String,
    #[serde(default = "default_department")]
    pub department: Vec<u64>,
    /// "0" unknown, "1" male, "2" female, as WeCom spells it.
    #[serde(default)]
    pub gender: String,
}

fn default_department() -> Vec<u64> {
    vec![1]
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalContact {
    pub external_userid: String,
    pub name: String,
    /// 1 WeChat user, 2 WeCom user.
    #[serde(rename = "type")]
    pub kind: u8,
    /// Present only for WeChat users of a corp bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    #[serde(default)]
    pub corp_name: String,
    #[serde(default)]
    pub position: String,
    #[serde(default)]
    pub gender: u8,
    pub follow_user: Vec<String>,
}

/// A department; the root is 1 with `parentid` 0, as at WeCom.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub parentid: u64,
    #[serde(default)]
    pub order: u64,
}

/// A tag: its members and whole departments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tag {
    pub tagid: u64,
    pub tagname: String,
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub departments: Vec<u64>,
}

/// One corp whole: the home corp is written at the top level of the file, the others under
/// `[[corps]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpData {
    pub corp_id: String,
    #[serde(default = "default_corp_name")]
    pub name: String,
    /// The "客户联系" secret; a corp that only installs suites may have none.
    #[serde(default)]
    pub contact_secret: Option<String>,
    #[serde(default)]
    pub agents: Vec<Agent>,
    #[serde(default)]
    pub members: Vec<Member>,
    #[serde(default)]
    pub external_contacts: Vec<ExternalContact>,
    #[serde(default)]
    pub departments: Vec<Department>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// The provider's own corp id: the receive id of its URL verifications.
    pub corp_id: String,
}

/// A third-party suite (应用套件), or a custom-developed (代开发) one when its id starts `dk`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    pub suite_id: String,
    pub suite_secret: String,
    /// The agent id the suite's app gets in every corp that installs it.
    pub agent_id: u64,
    #[serde(default = "default_suite_name")]
    pub name: String,
}

fn default_suite_name() -> String {
    "模拟应用".to_string()
}

impl Suite {
    /// 代开发 apps: the permanent code is the app's secret in the corp (`gettoken`).
    pub fn is_custom(&self) -> bool {
        self.suite_id.starts_with("dk")
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReceiverKind {
    /// A self-built app's URL: the corp's events, receive id = corp id.
    #[default]
    App,
    /// A suite's instruction URL: suite_ticket, create_auth, ...; receive id = suite id.
    Instruction,
    /// A suite's data URL: events of every corp that installed it; receive id = that corp.
    Data,
}

/// A callback URL as the admin console holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackReceiver {
    /// A name for the log and the control API (the gateway's app name, typically).
    pub app: String,
    pub url: String,
    pub token: String,
    pub encoding_aes_key: String,
    #[serde(default)]
    pub kind: ReceiverKind,
    /// App receivers: the corp whose events it gets (default: the home corp).
    #[serde(default)]
    pub corp_id: Option<String>,
    /// App receivers: the `AgentID` of the envelope.
    #[serde(default)]
    pub agent_id: Option<u64>,
    /// Instruction and data receivers: the suite.
    #[serde(default)]
    pub suite_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatMini {
    pub app_id: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatMp {
    pub app_id: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatUser {
    pub openid: String,
    /// Only when the account is bound to an Open Platform account.
    #[serde(default)]
    pub unionid: Option<String>,
    pub nickname: String,
    #[serde(default)]
    pub sex: u8,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub headimgurl: String,
    /// A "snapshot page" visitor: WeChat gives a virtual openid and `is_snapshotuser: 1`.
    #[serde(default)]
    pub is_snapshotuser: bool,
    /// The same person's openid in the mini-program (openids are per app; the unionid is not).
    #[serde(default)]
    pub mini_openid: Option<String>,
}

impl Scenario {
    /// The built-in scenario, exactly SPEC section 13's example.
    pub fn default_toml() -> &'static str {
        DEFAULT_TOML
    }

    /// The demo scenario's text.
    pub fn demo_toml() -> &'static str {
        DEMO_TOML
    }

    /// The scenario of `wecom-gateway demo`: the default one with a second member and a second
    /// customer, so switching both can be shown.
    pub fn demo() -> Scenario {
        Scenario::from_toml(DEMO_TOML).expect("the demo scenario parses")
    }

    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        let invalid = |m: String| Err(ScenarioError::Invalid(m));
        if self.settings.follow_user_page_size == 0 {
            return invalid("settings.follow_user_page_size must be at least 1".into());
        }
        let corps = self.all_corps();
        for (i, corp) in corps.iter().enumerate() {
            corp.validate().map_err(ScenarioError::Invalid)?;
            if corps[..i].iter().any(|c| c.corp_id == corp.corp_id) {
                return invalid(format!("corp {} appears twice", corp.corp_id));
            }
        }
        if let Some(c) = &self.start.current_contact {
            if self.home().external_contact(c).is_none() {
                return invalid(format!(
                    "start.current_contact {c} is not an external contact"
                ));
            }
        }
        if self.wechat_mp.is_some() && self.wechat_users.is_empty() {
            return invalid("[wechat_mp] needs at least one [[wechat_users]]".into());
        }
        if self.wechat_mini.is_some() && !self.wechat_users.iter().any(|u| u.mini_openid.is_some())
        {
            return invalid("[wechat_mini] needs a [[wechat_users]] with a mini_openid".into());
        }
        if !self.suites.is_empty() && self.provider.is_none() {
            return invalid("[[suites]] need a [provider] corp_id".into());
        }
        for (i, suite) in self.suites.iter().enumerate() {
            if self.suites[..i]
                .iter()
                .any(|s| s.suite_id == suite.suite_id)
            {
                return invalid(format!("suite {} appears twice", suite.suite_id));
            }
            if let Some(c) = corps.iter().find(|c| c.agent(suite.agent_id).is_some()) {
                return invalid(format!(
                    "suite {}: agent_id {} is already an agent of corp {}",
                    suite.suite_id, suite.agent_id, c.corp_id
                ));
            }
        }
        for r in &self.callbacks {
            crate::callbacks::check_receiver(self, r).map_err(ScenarioError::Invalid)?;
        }
        Ok(())
    }

    /// The home corp, as the top level of the file describes it.
    pub fn home(&self) -> CorpData {
        CorpData {
            corp_id: self.corp.corp_id.clone(),
            name: self.corp.name.clone(),
            contact_secret: Some(self.corp.contact_secret.clone()),
            agents: self.agents.clone(),
            members: self.members.clone(),
            external_contacts: self.external_contacts.clone(),
            departments: self.departments.clone(),
            tags: self.tags.clone(),
        }
        .with_root()
    }

    /// Every corp, the home corp first.
    pub fn all_corps(&self) -> Vec<CorpData> {
        std::iter::once(self.home())
            .chain(self.corps.iter().map(|c| c.clone().with_root()))
            .collect()
    }

    pub fn suite(&self, suite_id: &str) -> Option<&Suite> {
        self.suites.iter().find(|s| s.suite_id == suite_id)
    }

    pub fn member(&self, userid: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.userid == userid)
    }

    pub fn agent(&self, agent_id: u64) -> Option<&Agent> {
        self.agents.iter().find(|a| a.agent_id == agent_id)
    }

    pub fn external_contact(&self, id: &str) -> Option<&ExternalContact> {
        self.external_contacts
            .iter()
            .find(|c| c.external_userid == id)
    }

    /// The WeChat user behind a mini-program openid.
    pub fn mini_user(&self, mini_openid: &str) -> Option<&WechatUser> {
        self.wechat_users
            .iter()
            .find(|u| u.mini_openid.as_deref() == Some(mini_openid))
    }

    pub fn wechat_user(&self, openid: &str) -> Option<&WechatUser> {
        self.wechat_users.iter().find(|u| u.openid == openid)
    }

    pub fn ip_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.settings.allowed_ips.is_empty()
            || self.settings.allowed_ips.iter().any(|n| n.contains(&ip))
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::from_toml(DEFAULT_TOML).expect("the built-in scenario is valid")
    }
}

mod duration_str {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }

    pub fn serialize<S: serde::Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }
}

fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not an IP address or network"))
                })
        })
        .collect()
}

fn ip_list_out<S: serde::Serializer>(v: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|n| n.to_string()))
}

#[cfg(test)]
mod tests;
