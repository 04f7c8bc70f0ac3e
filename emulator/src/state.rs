//! The emulated servers' memory: who is logged in, issued tokens, tickets, codes, faults and
//! call counts. Plain data behind one lock; handlers only translate HTTP to these methods.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

use crate::callbacks::Hub;
use crate::provider::ProviderState;
use crate::scenario::{CorpData, Scenario};

/// Unix time in milliseconds, as seen by the emulated servers (real time plus the test offset).
pub type Millis = u64;

/// Shared handle to the emulated world; cheap to clone into handlers.
#[derive(Clone)]
pub struct EmulatorState {
    inner: Arc<Mutex<World>>,
    /// The callbacks in flight and their log: outside the world's lock, which is never held
    /// across a network call.
    pub(crate) hub: Arc<Hub>,
}

impl EmulatorState {
    pub fn new(scenario: Scenario) -> Self {
        let hub = Arc::new(Hub::new(&scenario));
        EmulatorState {
            inner: Arc::new(Mutex::new(World::new(scenario))),
            hub,
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct World {
    /// The scenario as loaded: `reset` goes back to it.
    pub scenario: Scenario,
    /// Every corp as it is now (control calls change them); the home corp first.
    pub corps: Vec<CorpData>,
    clock_offset: Duration,
    /// The member signed in on the emulated device, and their corp.
    pub current_user: String,
    pub current_corp: String,
    pub current_wechat_user: Option<String>,
    pub current_contact: Option<String>,
    pub entry: String,
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) latest_token: HashMap<String, String>,
    pub(crate) gettoken_log: HashMap<String, VecDeque<Millis>>,
    /// Per corp: a ticket of corp A never signs for corp B.
    pub(crate) tickets: HashMap<(String, TicketKind), Ticket>,
    pub(crate) codes: HashMap<String, Code>,
    /// ticket -> ((corp, userid), expiry)
    pub(crate) user_tickets: HashMap<String, ((String, String), Millis)>,
    pub(crate) web_tokens: HashMap<String, WebToken>,
    pub(crate) faults: HashMap<String, Fault>,
    calls: BTreeMap<String, CallCount>,
    pub(crate) media_seq: u64,
    pub(crate) provider: ProviderState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An app (agent) secret's token: works only for that app's APIs.
    Agent(u64),
    /// The "客户联系" secret's token: the one `externalcontact/*` accepts.
    Contact,
    /// An Official Account's basic `cgi-bin/token`.
    Wechat,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    /// The corp it was issued for (empty for an Official Account's).
    pub corp: String,
    pub kind: TokenKind,
    /// Issued for a suite's app (`get_corp_token`, or a 代开发 app's `gettoken`): dies with
    /// the install.
    pub suite: Option<String>,
    pub expires_at: Millis,
    /// WeChat: a newer token was issued at this time; this one dies `wechat_token_overlap` later.
    pub superseded_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// `get_jsapi_ticket`: signs `wx.config`.
    Corp,
    /// `ticket/get?type=agent_config`: signs `wx.agentConfig` of that agent.
    Agent(u64),
    /// Official Account `ticket/getticket?type=jsapi`.
    Wechat,
}

#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub value: String,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Member(String),
    WechatUser(String),
    /// Someone who is not a member of the corp (a customer opening the app's page from a
    /// chat): WeCom names them by an openid and, when they are a customer, an external_userid.
    Visitor {
        openid: String,
        external_userid: Option<String>,
    },
}

/// What a code may be exchanged by: they are not interchangeable at WeCom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodePurpose {
    /// The authorize or QR page of a self-built (or 代开发) app: `auth/getuserinfo`.
    OAuth,
    /// `wx.qy.login` / `wx.login` in a mini-program: `jscode2session`.
    MiniProgram,
    /// A third-party app's authorize or `ServiceApp` QR page: `service/auth/getuserinfo3rd`.
    ThirdParty(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub subject: Subject,
    /// The member's corp (empty for WeChat users).
    pub corp: String,
    pub purpose: CodePurpose,
    pub scope: String,
    /// The app the member authorised; its token must exchange the code.
    pub agent_id: Option<u64>,
    pub issued_at: Millis,
    pub used: bool,
}

#[derive(Debug, Clone)]
pub struct WebToken {
    pub openid: String,
    pub scope: String,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    Errcode(i64),
    HttpStatus(u16),
    DelayMs(u64),
    /// The errcode, answered this many ms late (a WeCom slow and failing at once).
    SlowErrcode(i64, u64),
    /// The call done at once, its answer sent this many ms later: what it does (a code spent)
    /// is done even when the caller stopped waiting.
    LateMs(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub kind: FaultKind,
    pub remaining: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallCount {
    pub total: u64,
    pub by_errcode: BTreeMap<String, u64>,
}

impl World {
    fn new(scenario: Scenario) -> Self {
        let current_user = scenario.members[0].userid.clone();
        let start = scenario.start.clone();
        let current_corp = scenario.corp.corp_id.clone();
        let current_wechat_user = scenario.wechat_users.first().map(|u| u.openid.clone());
        World {
            corps: scenario.all_corps(),
            scenario,
            clock_offset: Duration::ZERO,
            current_user,
            current_corp,
            current_wechat_user,
            current_contact: start.current_contact,
            entry: start.entry.unwrap_or_else(|| "normal".to_string()),
            tokens: HashMap::new(),
            latest_token: HashMap::new(),
            gettoken_log: HashMap::new(),
            tickets: HashMap::new(),
            codes: HashMap::new(),
            user_tickets: HashMap::new(),
            web_tokens: HashMap::new(),
            faults: HashMap::new(),
            calls: BTreeMap::new(),
            media_seq: 0,
            provider: ProviderState::default(),
        }
    }

    /// The home corp (the top of the scenario file).
    pub fn home(&self) -> &CorpData {
        &self.corps[0]
    }

    pub fn corp(&self, corp_id: &str) -> Option<&CorpData> {
        self.corps.iter().find(|c| c.corp_id == corp_id)
    }

    pub fn corp_mut(&mut self, corp_id: &str) -> Option<&mut CorpData> {
        self.corps.iter_mut().find(|c| c.corp_id == corp_id)
    }

    /// The corp a token was issued for; a token always names a corp that exists.
    pub(crate) fn corp_of(&self, corp_id: &str) -> Result<&CorpData, i64> {
        self.corp(corp_id).ok_or(40014)
    }

    /// Back to the scenario's start: no tokens, codes, faults or counts, the real clock.
    pub fn reset(&mut self) {
        *self = World::new(self.scenario.clone());
    }

    pub fn now(&self) -> Millis {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        (real + self.clock_offset).as_millis() as Millis
    }

    /// Moves the emulated clock forward, so expiry is tested without sleeping.
    pub fn advance(&mut self, by: Duration) {
        self.clock_offset += by;
    }

    pub(crate) fn ttl_ms(d: Duration) -> Millis {
        d.as_millis() as Millis
    }

    /// Every token and ticket expires now: the next use answers 42001.
    pub fn expire_tokens(&mut self) {
        let now = self.now();
        for t in self.tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
        for t in self.tickets.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
        for t in self.web_tokens.values_mut() {
            t.expires_at = t.expires_at.min(now);
        }
        for (_, exp) in self.user_tickets.values_mut() {
            *exp = (*exp).min(now);
        }
        self.provider.expire_tokens(now);
    }

    pub fn set_fault(&mut self, api: String, kind: FaultKind, count: u32) {
        if count == 0 {
            self.faults.remove(&api);
        } else {
            self.faults.insert(
                api,
                Fault {
                    kind,
                    remaining: count,
                },
            );
        }
    }

    /// Takes one use of the fault armed for `api`, if any.
    pub fn take_fault(&mut self, api: &str) -> Option<FaultKind> {
        let fault = self.faults.get_mut(api)?;
        fault.remaining -= 1;
        let kind = fault.kind.clone();
        if fault.remaining == 0 {
            self.faults.remove(api);
        }
        Some(kind)
    }

    pub fn record_call(&mut self, api: &str, outcome: &str) {
        let count = self.calls.entry(api.to_string()).or_default();
        count.total += 1;
        *count.by_errcode.entry(outcome.to_string()).or_default() += 1;
    }

    pub fn calls(&self) -> &BTreeMap<String, CallCount> {
        &self.calls
    }
}

pub(crate) fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}
