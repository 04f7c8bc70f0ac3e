//! OAuth codes, WeCom user tickets and WeChat web (per-user) tokens.

use crate::state::{random_token, Code, CodePurpose, Subject, WebToken, World};

/// WeCom's `user_ticket` lives 30 minutes.
const USER_TICKET_TTL_MS: u64 = 1_800_000;

pub struct Exchanged {
    pub subject: Subject,
    pub scope: String,
    pub corp: String,
}

impl World {
    /// A code as a page (or `wx.login`) hands it out: for a subject of `corp` (empty for a
    /// WeChat user), to be exchanged only for `purpose`.
    pub fn issue_code(
        &mut self,
        corp: &str,
        subject: Subject,
        scope: &str,
        agent_id: Option<u64>,
        purpose: CodePurpose,
    ) -> String {
        let code = random_token(32);
        let issued_at = self.now();
        self.codes.insert(
            code.clone(),
            Code {
                subject,
                corp: corp.to_string(),
                purpose,
                scope: scope.to_string(),
                agent_id,
                issued_at,
                used: false,
            },
        );
        code
    }

    /// WeCom: unknown, expired, reused, another corp's, another app's or another kind of
    /// code are all 40029. `corp` None: a suite's code, good for any corp.
    pub fn consume_wecom_code(
        &mut self,
        code: Option<&str>,
        corp: Option<&str>,
        agent: Option<u64>,
        purpose: &CodePurpose,
    ) -> Result<Exchanged, i64> {
        let code = code.filter(|s| !s.is_empty()).ok_or(41008)?;
        let now = self.now();
        let ttl = World::ttl_ms(self.scenario.settings.code_ttl);
        let c = self.codes.get_mut(code).ok_or(40029)?;
        let foreign_app = matches!((c.agent_id, agent), (Some(a), Some(b)) if a != b);
        let foreign_corp = corp.is_some_and(|corp| corp != c.corp);
        if c.used
            || c.issued_at + ttl <= now
            || foreign_app
            || foreign_corp
            || c.purpose != *purpose
            || !matches!(c.subject, Subject::Member(_) | Subject::Visitor { .. })
        {
            return Err(40029);
        }
        c.used = true;
        Ok(Exchanged {
            subject: c.subject.clone(),
            scope: c.scope.clone(),
            corp: c.corp.clone(),
        })
    }

    /// WeChat tells reuse (40163 "code been used") apart from an invalid code (40029).
    pub fn consume_wechat_code(
        &mut self,
        code: Option<&str>,
        purpose: &CodePurpose,
    ) -> Result<Exchanged, i64> {
        let code = code.filter(|s| !s.is_empty()).ok_or(41008)?;
        let now = self.now();
        let ttl = World::ttl_ms(self.scenario.settings.code_ttl);
        let c = self.codes.get_mut(code).ok_or(40029)?;
        if !matches!(c.subject, Subject::WechatUser(_)) || c.purpose != *purpose {
            return Err(40029);
        }
        if c.used {
            return Err(40163);
        }
        if c.issued_at + ttl <= now {
            return Err(40029);
        }
        c.used = true;
        Ok(Exchanged {
            subject: c.subject.clone(),
            scope: c.scope.clone(),
            corp: c.corp.clone(),
        })
    }

    pub fn issue_user_ticket(&mut self, corp: &str, userid: &str) -> String {
        let ticket = random_token(64);
        let exp = self.now() + USER_TICKET_TTL_MS;
        self.user_tickets.insert(
            ticket.clone(),
            ((corp.to_string(), userid.to_string()), exp),
        );
        ticket
    }

    /// The member a ticket names, if it is valid and of `corp`.
    pub fn user_ticket(&self, corp: &str, ticket: &str) -> Option<&str> {
        let now = self.now();
        self.user_tickets
            .get(ticket)
            .filter(|((c, _), exp)| *exp > now && c == corp)
            .map(|((_, u), _)| u.as_str())
    }

    pub fn issue_web_token(&mut self, openid: &str, scope: &str) -> (String, u64) {
        let token = random_token(96);
        let ttl = World::ttl_ms(self.scenario.settings.token_ttl);
        let expires_at = self.now() + ttl;
        self.web_tokens.insert(
            token.clone(),
            WebToken {
                openid: openid.to_string(),
                scope: scope.to_string(),
                expires_at,
            },
        );
        (token, ttl / 1000)
    }

    /// `sns/userinfo`: the per-user web token, not the basic one (40001 if confused).
    pub fn web_token(&self, token: Option<&str>) -> Result<&WebToken, i64> {
        let token = token.filter(|s| !s.is_empty()).ok_or(41001)?;
        let t = self.web_tokens.get(token).ok_or(40001)?;
        if t.expires_at <= self.now() {
            return Err(42001);
        }
        Ok(t)
    }
}
