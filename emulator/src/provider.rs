//! The service provider's side of WeCom (SPEC section 20): suite tickets, suite tokens, installs
//! with their single-use AuthCode, permanent codes, and the open_userid of a member as the
//! provider sees it. Plain state; `service.rs` puts it on HTTP.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::scenario::Suite;
use crate::state::{random_token, Millis, World};
use crate::tokens::{remaining_secs, Issued};

/// A suite ticket is valid 30 minutes; WeCom pushes a new one every 10.
const SUITE_TICKET_TTL_MS: Millis = 30 * 60_000;
/// `get_pre_auth_code`: `expires_in` 1200.
const PRE_AUTH_CODE_TTL_MS: Millis = 1_200_000;

#[derive(Default)]
pub(crate) struct ProviderState {
    /// suite -> the tickets pushed, newest last.
    suite_tickets: HashMap<String, Vec<(String, Millis)>>,
    /// token -> (suite, expiry)
    suite_tokens: HashMap<String, (String, Millis)>,
    latest_suite_token: HashMap<String, String>,
    pre_auth_codes: HashMap<String, (String, Millis)>,
    auth_codes: HashMap<String, AuthCode>,
    /// (suite, corp) -> the install.
    pub(crate) installs: BTreeMap<(String, String), Install>,
}

struct AuthCode {
    suite: String,
    corp: String,
    state: String,
    installer: String,
    issued_at: Millis,
    used: bool,
}

#[derive(Debug, Clone)]
pub struct Install {
    pub permanent_code: String,
    /// The admin who installed it.
    pub auth_userid: String,
    pub state: String,
}

impl ProviderState {
    pub(crate) fn expire_tokens(&mut self, now: Millis) {
        for (_, exp) in self.suite_tokens.values_mut() {
            *exp = (*exp).min(now);
        }
    }
}

impl World {
    /// Whether `agent_id` is an app of `corp`: its own, or an installed suite's.
    pub fn agent_in(&self, corp: &str, agent_id: u64) -> bool {
        self.corp(corp).is_some_and(|c| c.agent(agent_id).is_some())
            || self
                .installed_suites(corp)
                .iter()
                .any(|s| s.agent_id == agent_id)
    }

    /// The suites `corp` has installed.
    pub fn installed_suites(&self, corp: &str) -> Vec<&Suite> {
        self.provider
            .installs
            .keys()
            .filter(|(_, c)| c == corp)
            .filter_map(|(s, _)| self.scenario.suite(s))
            .collect()
    }

    pub fn install(&self, suite: &str, corp: &str) -> Option<&Install> {
        self.provider
            .installs
            .get(&(suite.to_string(), corp.to_string()))
    }

    /// A 代开发 app's permanent code is its secret in the corp.
    pub(crate) fn custom_suite_by_permanent_code(
        &self,
        corp: &str,
        secret: &str,
    ) -> Option<&Suite> {
        self.installed_suites(corp)
            .into_iter()
            .filter(|s| s.is_custom())
            .find(|s| {
                self.install(&s.suite_id, corp)
                    .is_some_and(|i| i.permanent_code == secret)
            })
    }

    /// A new ticket, as the push every 10 minutes brings it.
    pub fn new_suite_ticket(&mut self, suite: &str) -> String {
        let ticket = random_token(43);
        let now = self.now();
        let tickets = self
            .provider
            .suite_tickets
            .entry(suite.to_string())
            .or_default();
        tickets.retain(|(_, at)| at + SUITE_TICKET_TTL_MS > now);
        tickets.push((ticket.clone(), now));
        ticket
    }

    /// `get_suite_token`: id 40083, secret 40080 (or 40083 for a 代开发 "secret" mix-up),
    /// ticket missing 41023, unknown or older than 30 minutes 40085.
    pub fn suite_token(
        &mut self,
        suite_id: Option<&str>,
        secret: Option<&str>,
        ticket: Option<&str>,
    ) -> Result<Issued, i64> {
        let suite_id = suite_id.filter(|s| !s.is_empty()).ok_or(40083)?;
        let suite = self.scenario.suite(suite_id).ok_or(40083)?;
        if secret != Some(suite.suite_secret.as_str()) {
            return Err(40080);
        }
        let ticket = ticket.filter(|s| !s.is_empty()).ok_or(41023)?;
        let now = self.now();
        let fresh = self.provider.suite_tickets.get(suite_id).is_some_and(|ts| {
            ts.iter()
                .any(|(t, at)| t == ticket && at + SUITE_TICKET_TTL_MS > now)
        });
        if !fresh {
            return Err(40085);
        }
        let p = &mut self.provider;
        if let Some(value) = p.latest_suite_token.get(suite_id) {
            if let Some((_, exp)) = p.suite_tokens.get(value).filter(|(_, e)| *e > now) {
                return Ok(Issued {
                    value: value.clone(),
                    expires_in: remaining_secs(*exp, now),
                });
            }
        }
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let value = random_token(64);
        let p = &mut self.provider;
        p.suite_tokens
            .insert(value.clone(), (suite_id.to_string(), now + ttl));
        p.latest_suite_token
            .insert(suite_id.to_string(), value.clone());
        Ok(Issued {
            value,
            expires_in: ttl / 1000,
        })
    }

    /// The suite a `suite_access_token` belongs to: missing 41022, unknown 40082, expired 42009.
    pub fn check_suite_token(&self, token: Option<&str>) -> Result<String, i64> {
        let token = token.filter(|s| !s.is_empty()).ok_or(41022)?;
        let (suite, exp) = self.provider.suite_tokens.get(token).ok_or(40082)?;
        if *exp <= self.now() {
            return Err(42009);
        }
        Ok(suite.clone())
    }

    pub fn pre_auth_code(&mut self, suite: &str) -> Issued {
        let code = random_token(40);
        let exp = self.now() + PRE_AUTH_CODE_TTL_MS;
        self.provider
            .pre_auth_codes
            .insert(code.clone(), (suite.to_string(), exp));
        Issued {
            value: code,
            expires_in: PRE_AUTH_CODE_TTL_MS / 1000,
        }
    }

    /// The install page's `pre_auth_code` of this suite, still valid.
    pub fn pre_auth_code_valid(&self, suite: &str, code: &str) -> bool {
        let now = self.now();
        self.provider
            .pre_auth_codes
            .get(code)
            .is_some_and(|(s, exp)| s == suite && *exp > now)
    }

    /// An admin of `corp` authorises the suite (an install, or a 代开发 reset): a single-use
    /// AuthCode valid `auth_code_ttl`. Err when either is unknown.
    pub fn issue_auth_code(
        &mut self,
        suite: &str,
        corp: &str,
        state: &str,
    ) -> Result<String, String> {
        self.scenario
            .suite(suite)
            .ok_or_else(|| format!("no suite {suite}"))?;
        let c = self.corp(corp).ok_or_else(|| format!("no corp {corp}"))?;
        let installer = c.members[0].userid.clone();
        let code = random_token(64);
        let issued_at = self.now();
        self.provider.auth_codes.insert(
            code.clone(),
            AuthCode {
                suite: suite.to_string(),
                corp: corp.to_string(),
                state: state.to_string(),
                installer,
                issued_at,
                used: false,
            },
        );
        Ok(code)
    }

    /// `get_permanent_code`: the AuthCode, once, within its validity, of this suite (40078
    /// otherwise). A new permanent code replaces the install's old one.
    pub fn exchange_auth_code(
        &mut self,
        suite: &str,
        code: Option<&str>,
    ) -> Result<(String, Install), i64> {
        let code = code.filter(|s| !s.is_empty()).ok_or(40078)?;
        let now = self.now();
        let ttl = World::ttl_ms(self.scenario.settings.auth_code_ttl);
        let c = self.provider.auth_codes.get_mut(code).ok_or(40078)?;
        if c.used || c.suite != suite || c.issued_at + ttl <= now {
            return Err(40078);
        }
        c.used = true;
        let corp = c.corp.clone();
        let install = Install {
            permanent_code: random_token(43),
            auth_userid: c.installer.clone(),
            state: c.state.clone(),
        };
        self.provider
            .installs
            .insert((suite.to_string(), corp.clone()), install.clone());
        // The previous permanent code's tokens end with it.
        self.drop_suite_tokens(&corp, suite);
        Ok((corp, install))
    }

    /// An install's permanent code: missing 41025, wrong or of a removed install 40084.
    pub fn check_permanent_code(
        &self,
        suite: &str,
        corp: Option<&str>,
        code: Option<&str>,
    ) -> Result<String, i64> {
        let code = code.filter(|s| !s.is_empty()).ok_or(41025)?;
        let corp = corp.filter(|s| !s.is_empty()).ok_or(40084)?;
        match self.install(suite, corp) {
            Some(i) if i.permanent_code == code => Ok(corp.to_string()),
            _ => Err(40084),
        }
    }

    /// The admin removed the app: its permanent code and tokens die.
    pub fn cancel_install(&mut self, suite: &str, corp: &str) -> bool {
        let removed = self
            .provider
            .installs
            .remove(&(suite.to_string(), corp.to_string()))
            .is_some();
        self.drop_suite_tokens(corp, suite);
        removed
    }

    /// The member's id as this provider sees it: stable per (provider, corp, userid), never the
    /// userid itself.
    pub fn open_userid(&self, corp: &str, userid: &str) -> String {
        let provider = self
            .scenario
            .provider
            .as_ref()
            .map(|p| p.corp_id.as_str())
            .unwrap_or_default();
        let digest = Sha256::digest(format!("{provider}\0{corp}\0{userid}"));
        format!("wo{}", &hex::encode(digest)[..30])
    }
}
