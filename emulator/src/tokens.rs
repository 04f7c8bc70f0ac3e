//! Access tokens and jsapi tickets, with the two servers' different refresh rules.

use crate::scenario::Scenario;
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
        if corpid != self.scenario.corp.corp_id {
            return Err(40013);
        }
        let kind = secret_kind(&self.scenario, secret).ok_or(40001)?;
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
                kind,
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
                kind: TokenKind::Wechat,
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
    pub fn wecom_token(&self, token: Option<&str>, scope: Scope) -> Result<TokenKind, i64> {
        let token = token.filter(|s| !s.is_empty()).ok_or(41001)?;
        let t = self
            .tokens
            .get(token)
            .filter(|t| t.kind != TokenKind::Wechat)
            .ok_or(40014)?;
        if t.expires_at <= self.now() {
            return Err(42001);
        }
        let allowed = matches!(
            (scope, t.kind),
            (Scope::AnyWecom, _)
                | (Scope::AgentOnly, TokenKind::Agent(_))
                | (Scope::ContactOnly, TokenKind::Contact)
        );
        if allowed {
            Ok(t.kind)
        } else {
            Err(48002)
        }
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
    pub fn ticket(&mut self, kind: TicketKind) -> Issued {
        let now = self.now();
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

    /// Replaces the current ticket of `kind`, fresh for `token_ttl` (tests sign known vectors).
    pub fn set_ticket(&mut self, kind: TicketKind, value: String) {
        let expires_at = self.now() + World::ttl_ms(self.scenario.settings.token_ttl);
        self.tickets.insert(kind, Ticket { value, expires_at });
    }

    /// The ticket the JS-SDK would sign with right now, if one is valid.
    pub fn valid_ticket(&self, kind: TicketKind) -> Option<&str> {
        let now = self.now();
        self.tickets
            .get(&kind)
            .filter(|t| t.expires_at > now)
            .map(|t| t.value.as_str())
    }
}

fn secret_kind(scenario: &Scenario, secret: &str) -> Option<TokenKind> {
    if scenario.corp.contact_secret == secret {
        return Some(TokenKind::Contact);
    }
    scenario
        .agents
        .iter()
        .find(|a| a.secret == secret)
        .map(|a| TokenKind::Agent(a.agent_id))
}

fn remaining_secs(expires_at: Millis, now: Millis) -> u64 {
    expires_at.saturating_sub(now).div_ceil(1000)
}
