//! Who calls WeCom or WeChat, and the kinds of token each credential set can hold.

use crate::secret::Secret;

/// One credential set, as the admin console hands it out.
///
/// An enum so that the service-provider kinds (a suite, the corps that installed it) join as
/// variants with their own fetches (`plan` in [`crate::target`]), not as optional fields.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A WeCom self-built app (自建应用): the corp, the agent and its secret, and optionally the
    /// customer-contact secret (客户联系 Secret), whose token is the one `externalcontact/*`
    /// accepts.
    Wecom {
        corp_id: String,
        agent_id: u64,
        secret: Secret,
        contact_secret: Option<Secret>,
    },
    /// A WeChat Official Account (公众号).
    WechatMp { app_id: String, secret: Secret },
    /// A service provider's suite (第三方应用), or a custom-developed app's template (代开发,
    /// `custom`): the suite's own token comes from its id, secret and the newest suite ticket
    /// WeCom pushed; each corp that installs it gets targets of its own
    /// ([`crate::SuiteTargets::corp`]).
    Suite {
        suite_id: String,
        suite_secret: Secret,
        custom: bool,
    },
}

impl Credentials {
    /// The app's own secret (not the contact secret).
    pub fn secret(&self) -> &Secret {
        match self {
            Credentials::Wecom { secret, .. } | Credentials::WechatMp { secret, .. } => secret,
            Credentials::Suite { suite_secret, .. } => suite_secret,
        }
    }
}

/// The kinds of token and ticket (WECOM_API.md). Each is cached under its own key, per
/// credential set: never one key per corp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The app's access token (WeCom `gettoken` with the app secret, WeChat `cgi-bin/token`).
    Access,
    /// The token of the contact secret, the only one `externalcontact/*` accepts.
    Contact,
    /// The WeCom corp jsapi ticket (`get_jsapi_ticket`), signs `wx.config`.
    CorpTicket,
    /// The WeCom agent jsapi ticket (`ticket/get?type=agent_config`), signs `wx.agentConfig`.
    AgentTicket,
    /// The Official Account's jsapi ticket (`ticket/getticket?type=jsapi`): another API, another
    /// lifetime rule (5 minutes of overlap), so another name than the corp's.
    OaTicket,
    /// A suite's own token (`service/get_suite_token`, sent as `suite_access_token`): the one
    /// the third-party calls take, and the one a corp token is exchanged with.
    Suite,
}

impl TokenKind {
    /// In store keys, metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Contact => "contact",
            TokenKind::CorpTicket => "corp_ticket",
            TokenKind::AgentTicket => "agent_ticket",
            TokenKind::OaTicket => "oa_ticket",
            TokenKind::Suite => "suite",
        }
    }
}
