//! Access tokens and jsapi tickets, with the two servers' different refresh rules.

use crate::state::{random_token, Millis, Ticket, TicketKind, Token, TokenKind, World};

/// What the caller may use a token for; a token outside its scope answers 48002.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Calls made with an app's own token (messages, tickets, OAuth, media).
    AgentOnly,
    /// `externalcontact/*`: only the contact secret's token.
    ContactOnly,
    /// Either a WeCom app token or the contact token.
    AnyWecom,
}

pub struct Issued {
    pub value: String,
    pub expires_in: u64,
}

/// A valid WeCom token: whose corp, and which app's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authed {
    pub corp: String,
    pub kind: TokenKind,
}

impl Authed {
    pub fn agent(&self) -> Option<u64> {
        match self.kind {
            TokenKind::Agent(id) => Some(id),
            _ => None,
        }
    }
}

impl World {
    /// `cgi-bin/gettoken`: within its validity WeCom hands back the same token; after expiry
    /// (or `expire-tokens`) a new one.
    pub fn wecom_gettoken(
        &mut self,
        corpid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Issued, i64> {
        let corpid = corpid.filter(|s| !s.is_empty()).ok_or(41002)?;
        let secret = secret.filter(|s| !s.is_empty()).ok_or(41004)?;
        if self.corp(corpid).is_none() {
            return Err(40013);
        }
        let (kind, suite) = self.secret_kind(corpid, secret).ok_or(40001)?;
        let key = format!("wecom\0{corpid}\0{secret}");
        self.rate_limit(&key)?;
        let now = self.now();
        if let Some(value) = self.latest_token.get(&key) {
            if let Some(t) = self.tokens.get(value).filter(|t| t.expires_at > now) {
                return Ok(Issued {
                    value: value.clone(),
                    expires_in: remaining_secs(t.expires_at, now),
                });
            }
        }
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let value = random_token(64);
        self.tokens.insert(
            value.clone(),
            Token {
                corp: corpid.to_string(),
                kind,
                suite,
                expires_at: now + ttl,
                superseded_at: None,
            },
        );
        self.latest_token.insert(key, value.clone());
        Ok(Issued {
            value,
            expires_in: ttl / 1000,
        })
    }

    /// An app's secret in `corp`: a self-built agent's, the contact secret, or the permanent
    /// code of an installed 代开发 suite (which is that app's secret there).
    fn secret_kind(&self, corp: &str, secret: &str) -> Option<(TokenKind, Option<String>)> {
        let c = self.corp(corp)?;
        if c.contact_secret.as_deref() == Some(secret) {
            return Some((TokenKind::Contact, None));
        }
        if let Some(a) = c.agents.iter().find(|a| a.secret == secret) {
            return Some((TokenKind::Agent(a.agent_id), None));
        }
        let suite = self.custom_suite_by_permanent_code(corp, secret)?;
        Some((
            TokenKind::Agent(suite.agent_id),
            Some(suite.suite_id.clone()),
        ))
    }

    /// A token for a suite's app in `corp` (`get_corp_token`).
    pub(crate) fn issue_suite_corp_token(
        &mut self,
        corp: &str,
        suite: &str,
        agent_id: u64,
    ) -> Issued {
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let key = format!("corp_token\0{corp}\0{suite}");
        let now = self.now();
        if let Some(value) = self.latest_token.get(&key) {
            if let Some(t) = self.tokens.get(value).filter(|t| t.expires_at > now) {
                return Issued {
                    value: value.clone(),
                    expires_in: remaining_secs(t.expires_at, now),
                };
            }
        }
        let value = random_token(64);
        self.tokens.insert(
            value.clone(),
            Token {
                corp: corp.to_string(),
                kind: TokenKind::Agent(agent_id),
                suite: Some(suite.to_string()),
                expires_at: now + ttl,
                superseded_at: None,
            },
        );
        self.latest_token.insert(key, value.clone());
        Issued {
            value,
            expires_in: ttl / 1000,
        }
    }

    /// An install ended: the tokens issued for that suite in that corp die with it.
    pub(crate) fn drop_suite_tokens(&mut self, corp: &str, suite: &str) {
        self.tokens
            .retain(|_, t| !(t.corp == corp && t.suite.as_deref() == Some(suite)));
    }

    /// Official Account `cgi-bin/token`: every call issues a new token, and the previous one
    /// keeps working only `wechat_token_overlap` (5 minutes) longer.
    pub fn wechat_token(
        &mut self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<Issued, i64> {
        if grant_type != Some("client_credential") {
            return Err(40002);
        }
        let appid = appid.filter(|s| !s.is_empty()).ok_or(41002)?;
        let secret = secret.filter(|s| !s.is_empty()).ok_or(41004)?;
        self.check_wechat_app(appid, secret)?;
        let key = format!("wechat\0{appid}\0{secret}");
        self.rate_limit(&key)?;
        Ok(self.issue_wechat_token(key))
    }

    /// A new WeChat token under `key`; the one issued under it before keeps working only the
    /// overlap (5 minutes) longer.
    fn issue_wechat_token(&mut self, key: String) -> Issued {
        let now = self.now();
        if let Some(previous) = self
            .latest_token
            .get(&key)
            .and_then(|v| self.tokens.get_mut(v))
        {
            previous.superseded_at.get_or_insert(now);
        }
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let value = random_token(136);
        self.tokens.insert(
            value.clone(),
            Token {
                corp: String::new(),
                kind: TokenKind::Wechat,
                suite: None,
                expires_at: now + ttl,
                superseded_at: None,
            },
        );
        self.latest_token.insert(key, value.clone());
        Issued {
            value,
            expires_in: ttl / 1000,
        }
    }

    /// `cgi-bin/stable_token`: the Official Account's or the mini-program's credentials; the
    /// token of its own still valid, unless `force` asks for a new one (the previous then
    /// works 5 more minutes, as `cgi-bin/token`'s does).
    pub fn wechat_stable_token(
        &mut self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
        force: bool,
    ) -> Result<Issued, i64> {
        if grant_type != Some("client_credential") {
            return Err(40002);
        }
        let appid = appid.filter(|s| !s.is_empty()).ok_or(41002)?;
        let secret = secret.filter(|s| !s.is_empty()).ok_or(41004)?;
        let mini = self
            .scenario
            .wechat_mini
            .as_ref()
            .is_some_and(|m| m.app_id == appid);
        if mini {
            self.check_wechat_mini(appid, secret)?;
        } else {
            self.check_wechat_app(appid, secret)?;
        }
        let key = format!("stable\0{appid}");
        let now = self.now();
        let current = self
            .latest_token
            .get(&key)
            .and_then(|v| self.tokens.get(v).map(|t| (v.clone(), t.expires_at)))
            .filter(|(_, expires_at)| *expires_at > now);
        if let (Some((value, expires_at)), false) = (&current, force) {
            return Ok(Issued {
                value: value.clone(),
                expires_in: (expires_at - now) / 1000,
            });
        }
        self.rate_limit(&key)?;
        Ok(self.issue_wechat_token(key))
    }

    /// Bad appid 40013; a wrong secret is 40125 at WeChat (not 40001 as at WeCom).
    pub fn check_wechat_app(&self, appid: &str, secret: &str) -> Result<(), i64> {
        let mp = self
            .scenario
            .wechat_mp
            .as_ref()
            .filter(|mp| mp.app_id == appid)
            .ok_or(40013)?;
        if mp.secret != secret {
            return Err(40125);
        }
        Ok(())
    }

    /// The mini-program's credentials: bad appid 40013, wrong secret 40125.
    pub fn check_wechat_mini(&self, appid: &str, secret: &str) -> Result<(), i64> {
        let mini = self
            .scenario
            .wechat_mini
            .as_ref()
            .filter(|m| m.app_id == appid)
            .ok_or(40013)?;
        if mini.secret != secret {
            return Err(40125);
        }
        Ok(())
    }

    fn rate_limit(&mut self, key: &str) -> Result<(), i64> {
        let now = self.now();
        let limit = self.scenario.settings.gettoken_per_minute as usize;
        let log = self.gettoken_log.entry(key.to_string()).or_default();
        while log.front().is_some_and(|&t| t + 60_000 <= now) {
            log.pop_front();
        }
        if log.len() >= limit {
            return Err(45009);
        }
        log.push_back(now);
        Ok(())
    }

    /// Missing 41001, unknown 40014, expired 42001, another secret's token 48002.
    pub fn wecom_token(&self, token: Option<&str>, scope: Scope) -> Result<Authed, i64> {
        let token = token.filter(|s| !s.is_empty()).ok_or(41001)?;
        let t = self
            .tokens
            .get(token)
            .filter(|t| t.kind != TokenKind::Wechat)
            .ok_or(40014)?;
        if t.expires_at <= self.now() {
            return Err(42001);
        }
        // A suite's corp token (third-party or 代开发) is the one its app calls
        // `externalcontact/*` with: such apps have no contact secret, and WeCom accepts their
        // token once the app holds the customer-contact permission, as the emulated suites do.
        let suite_app = t.suite.is_some();
        let allowed = matches!(
            (scope, t.kind),
            (Scope::AnyWecom, _)
                | (Scope::AgentOnly, TokenKind::Agent(_))
                | (Scope::ContactOnly, TokenKind::Contact)
        ) || (scope == Scope::ContactOnly && suite_app);
        if !allowed {
            return Err(48002);
        }
        Ok(Authed {
            corp: t.corp.clone(),
            kind: t.kind,
        })
    }

    /// WeChat answers 40001 ("invalid or not latest") both for unknown tokens and for a
    /// superseded token past its overlap; 42001 when it simply expired.
    pub fn wechat_basic_token(&self, token: Option<&str>) -> Result<(), i64> {
        let token = token.filter(|s| !s.is_empty()).ok_or(41001)?;
        let t = self
            .tokens
            .get(token)
            .filter(|t| t.kind == TokenKind::Wechat)
            .ok_or(40001)?;
        let now = self.now();
        let overlap = World::ttl_ms(self.scenario.settings.wechat_token_overlap);
        if t.superseded_at.is_some_and(|at| at + overlap <= now) {
            return Err(40001);
        }
        if t.expires_at <= now {
            return Err(42001);
        }
        Ok(())
    }

    /// Within its validity a ticket is handed out again; after expiry a new one.
    pub fn ticket(&mut self, corp: &str, kind: TicketKind) -> Issued {
        let now = self.now();
        let kind = ticket_key(corp, kind);
        if let Some(t) = self.tickets.get(&kind).filter(|t| t.expires_at > now) {
            return Issued {
                value: t.value.clone(),
                expires_in: remaining_secs(t.expires_at, now),
            };
        }
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let value = random_token(86);
        self.tickets.insert(
            kind,
            Ticket {
                value: value.clone(),
                expires_at: now + ttl,
            },
        );
        Issued {
            value,
            expires_in: ttl / 1000,
        }
    }

    /// Replaces the home corp's current ticket of `kind`, fresh for `token_ttl` (tests sign
    /// known vectors).
    pub fn set_ticket(&mut self, kind: TicketKind, value: String) {
        let home = self.home().corp_id.clone();
        self.set_ticket_in(&home, kind, value)
    }

    pub fn set_ticket_in(&mut self, corp: &str, kind: TicketKind, value: String) {
        let expires_at = self.now() + World::ttl_ms(self.scenario.settings.token_ttl);
        self.tickets
            .insert(ticket_key(corp, kind), Ticket { value, expires_at });
    }

    /// The home corp's ticket the JS-SDK would sign with right now, if one is valid.
    pub fn valid_ticket(&self, kind: TicketKind) -> Option<&str> {
        self.valid_ticket_in(&self.home().corp_id, kind)
    }

    pub fn valid_ticket_in(&self, corp: &str, kind: TicketKind) -> Option<&str> {
        let now = self.now();
        self.tickets
            .get(&ticket_key(corp, kind))
            .filter(|t| t.expires_at > now)
            .map(|t| t.value.as_str())
    }
}

/// The Official Account's ticket belongs to no corp.
fn ticket_key(corp: &str, kind: TicketKind) -> (String, TicketKind) {
    match kind {
        TicketKind::Wechat => (String::new(), kind),
        _ => (corp.to_string(), kind),
    }
}

pub(crate) fn remaining_secs(expires_at: Millis, now: Millis) -> u64 {
    expires_at.saturating_sub(now).div_ceil(1000)
}
