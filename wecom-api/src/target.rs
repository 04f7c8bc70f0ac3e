//! What a call or a fetch is made for, computed once per (app, kind) when the configuration is
//! compiled: the credentials, the API base, the key under which the token is cached and stored,
//! the label it is counted under, and how it is fetched.
//!
//! Nothing here is formatted or hashed per call: a call takes a [`TokenTarget`] by reference
//! and clones a pointer.

use std::fmt;
use std::sync::Arc;

use crate::credentials::{Credentials, TokenKind};
use crate::error::ApiError;
use crate::request::ApiRequest;

/// One kind of token of one credential set at one API base. Cheap to clone (a pointer), so
/// that fetches can outlive the request that started them (background refresh).
#[derive(Clone)]
pub struct TokenTarget(Arc<Inner>);

struct Inner {
    /// The app's configured name: a metric label bounded by the configuration.
    app: Arc<str>,
    kind: TokenKind,
    /// `api_base` without a trailing slash.
    base: Arc<str>,
    /// The corp or app id, for logs.
    owner: String,
    /// `token:{kind}:{api_base}:{corp or app}:{agent or secret fingerprint}`: the in-process
    /// single-flight key and the store key. No secret in it.
    key: Arc<str>,
    /// The query parameter the token travels in when a call carries it.
    param: &'static str,
    plan: Plan,
}

/// How a token of this target is fetched (WECOM_API.md).
pub(crate) enum Plan {
    /// With the credentials alone: WeCom `gettoken`, WeChat `cgi-bin/token`. A plain call.
    Credentials { request: ApiRequest },
    /// A suite's token: `service/get_suite_token` with its id and secret and the newest suite
    /// ticket, read from the store at the moment of the fetch (WeCom pushes a new one every 10
    /// minutes; an older one is refused). A plain call, like [`Plan::Credentials`].
    SuiteTicket {
        suite_id: String,
        secret: crate::Secret,
        ticket_key: String,
    },
    /// A corp's token exchanged with the suite token (`service/get_corp_token` with the corp
    /// and its permanent code). `via` is always a [`Plan::SuiteTicket`] target, so the chain
    /// still ends: corp ticket -> corp token -> suite token -> the stored ticket.
    Exchanged {
        via: TokenTarget,
        request: ApiRequest,
    },
    /// An ordinary API call made with another target's token: a jsapi ticket with the access
    /// token, so the ticket fetch gets that token's refresh and retry. `via` is always a
    /// [`Plan::Credentials`] target: the chain ends after one step.
    WithToken {
        via: TokenTarget,
        request: ApiRequest,
    },
}

impl TokenTarget {
    fn new(
        app: &Arc<str>,
        base: &Arc<str>,
        kind: TokenKind,
        owner: &str,
        holder: &str,
        plan: Plan,
    ) -> TokenTarget {
        TokenTarget(Arc::new(Inner {
            app: app.clone(),
            kind,
            base: base.clone(),
            owner: owner.to_owned(),
            key: format!("token:{}:{base}:{owner}:{holder}", kind.label()).into(),
            // The third-party calls take the suite's token under its own name.
            param: match kind {
                TokenKind::Suite => "suite_access_token",
                _ => "access_token",
            },
            plan,
        }))
    }

    pub fn app(&self) -> &str {
        &self.0.app
    }

    pub fn kind(&self) -> TokenKind {
        self.0.kind
    }

    pub fn base(&self) -> &Arc<str> {
        &self.0.base
    }

    pub fn owner(&self) -> &str {
        &self.0.owner
    }

    /// The key in the token store (and of the in-process single flight).
    pub fn key(&self) -> &Arc<str> {
        &self.0.key
    }

    pub(crate) fn param(&self) -> &'static str {
        self.0.param
    }

    pub(crate) fn plan(&self) -> &Plan {
        &self.0.plan
    }

    /// The field of the fetch's answer that holds the value.
    pub(crate) fn field(&self) -> &'static str {
        match self.0.plan {
            Plan::Credentials { .. } | Plan::Exchanged { .. } => "access_token",
            Plan::SuiteTicket { .. } => "suite_access_token",
            Plan::WithToken { .. } => "ticket",
        }
    }
}

/// The secret travels in the fetch's query: only the names are shown.
impl fmt::Debug for TokenTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenTarget")
            .field("app", &self.0.app)
            .field("kind", &self.0.kind)
            .field("key", &self.0.key)
            .finish()
    }
}

/// Where the newest suite ticket of `suite_id` is kept (a durable fact of the store).
pub fn suite_ticket_key(suite_id: &str) -> String {
    format!("suite_ticket:{suite_id}")
}

/// A suite ticket as kept: WeCom's `TimeStamp` of the push, and the ticket. The time decides
/// which of two pushes is the newer one (retries and reorderings bring older ones late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteTicket {
    pub timestamp: u64,
    pub ticket: String,
}

impl SuiteTicket {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.timestamp, self.ticket)
    }

    pub fn decode(s: &str) -> Option<SuiteTicket> {
        let (t, ticket) = s.split_once(':')?;
        Some(SuiteTicket {
            timestamp: t.parse().ok()?,
            ticket: ticket.to_owned(),
        })
        .filter(|t| !t.ticket.is_empty())
    }
}

/// A corp as a suite's install knows it: what its targets are built from.
pub struct InstalledCorp<'a> {
    pub corp_id: &'a str,
    pub agent_id: u64,
    pub permanent_code: &'a crate::Secret,
    /// 代开发: the permanent code is the app's secret in the corp (`gettoken`).
    pub custom: bool,
}

/// Every target of one app, built once when the configuration compiles.
#[derive(Debug, Clone)]
pub struct AppTargets {
    app: Arc<str>,
    base: Arc<str>,
    access: TokenTarget,
    contact: Option<TokenTarget>,
    corp_ticket: Option<TokenTarget>,
    agent_ticket: Option<TokenTarget>,
    oa_ticket: Option<TokenTarget>,
}

impl AppTargets {
    /// `app` is the configured name (metric label); `api_base` the API origin, with or without
    /// a trailing slash.
    pub fn new(app: &str, api_base: &str, credentials: &Credentials) -> AppTargets {
        let app: Arc<str> = app.into();
        let base: Arc<str> = api_base.trim_end_matches('/').into();
        let target = |kind, owner: &str, holder: &str, plan| {
            TokenTarget::new(&app, &base, kind, owner, holder, plan)
        };
        let with_token = |via: &TokenTarget, path: &str, query: &[(&str, &str)]| Plan::WithToken {
            via: via.clone(),
            request: ApiRequest::get(path, query),
        };
        match credentials {
            Credentials::Wecom {
                corp_id,
                agent_id,
                secret,
                contact_secret,
            } => {
                let gettoken = |secret: &crate::Secret| Plan::Credentials {
                    request: ApiRequest::get(
                        "/cgi-bin/gettoken",
                        &[("corpid", corp_id), ("corpsecret", secret.expose())],
                    ),
                };
                let holder = format!("{agent_id}.{}", secret.fingerprint());
                let access = target(TokenKind::Access, corp_id, &holder, gettoken(secret));
                let contact = contact_secret.as_ref().map(|s| {
                    let holder = format!("contact.{}", s.fingerprint());
                    target(TokenKind::Contact, corp_id, &holder, gettoken(s))
                });
                let corp_ticket = target(
                    TokenKind::CorpTicket,
                    corp_id,
                    &holder,
                    with_token(&access, "/cgi-bin/get_jsapi_ticket", &[]),
                );
                let agent_ticket = target(
                    TokenKind::AgentTicket,
                    corp_id,
                    &holder,
                    with_token(&access, "/cgi-bin/ticket/get", &[("type", "agent_config")]),
                );
                AppTargets {
                    app: app.clone(),
                    base: base.clone(),
                    access,
                    contact,
                    corp_ticket: Some(corp_ticket),
                    agent_ticket: Some(agent_ticket),
                    oa_ticket: None,
                }
            }
            Credentials::WechatMp { app_id, secret } => {
                let holder = secret.fingerprint();
                let access = target(
                    TokenKind::Access,
                    app_id,
                    &holder,
                    Plan::Credentials {
                        request: ApiRequest::get(
                            "/cgi-bin/token",
                            &[
                                ("grant_type", "client_credential"),
                                ("appid", app_id),
                                ("secret", secret.expose()),
                            ],
                        ),
                    },
                );
                let oa_ticket = target(
                    TokenKind::OaTicket,
                    app_id,
                    &holder,
                    with_token(&access, "/cgi-bin/ticket/getticket", &[("type", "jsapi")]),
                );
                AppTargets {
                    app: app.clone(),
                    base: base.clone(),
                    access,
                    contact: None,
                    corp_ticket: None,
                    agent_ticket: None,
                    oa_ticket: Some(oa_ticket),
                }
            }
            Credentials::Suite {
                suite_id,
                suite_secret,
                ..
            } => {
                let suite = target(
                    TokenKind::Suite,
                    suite_id,
                    &suite_secret.fingerprint(),
                    Plan::SuiteTicket {
                        suite_id: suite_id.clone(),
                        secret: suite_secret.clone(),
                        ticket_key: suite_ticket_key(suite_id),
                    },
                );
                // The suite's own calls (`service/*`) carry the suite token; a corp's calls
                // take that corp's targets, never these.
                AppTargets {
                    app: app.clone(),
                    base: base.clone(),
                    access: suite,
                    contact: None,
                    corp_ticket: None,
                    agent_ticket: None,
                    oa_ticket: None,
                }
            }
        }
    }

    /// The targets of one corp that installed the suite whose targets these are: its token
    /// (exchanged with the suite token, or for a 代开发 app `gettoken` with the permanent code
    /// as the secret) and its two jsapi tickets. Every key carries the corp and the permanent
    /// code's fingerprint: a reinstall is another token, another corp never the same one.
    /// Built once per install (and again when the install changes), never per call.
    pub fn corp(&self, corp: &InstalledCorp<'_>) -> AppTargets {
        let app = &self.app;
        let base = &self.base;
        let suite = &self.access;
        let Plan::SuiteTicket { suite_id, .. } = suite.plan() else {
            // Only a suite's targets have a suite token; anything else has no corps.
            return self.clone();
        };
        let target = |kind, holder: &str, plan| {
            TokenTarget::new(app, base, kind, corp.corp_id, holder, plan)
        };
        let holder = format!(
            "{suite_id}.{}.{}",
            corp.agent_id,
            corp.permanent_code.fingerprint()
        );
        let plan = if corp.custom {
            Plan::Credentials {
                request: ApiRequest::get(
                    "/cgi-bin/gettoken",
                    &[
                        ("corpid", corp.corp_id),
                        ("corpsecret", corp.permanent_code.expose()),
                    ],
                ),
            }
        } else {
            Plan::Exchanged {
                via: suite.clone(),
                request: ApiRequest::post_json(
                    "/cgi-bin/service/get_corp_token",
                    &serde_json::json!({
                        "auth_corpid": corp.corp_id,
                        "permanent_code": corp.permanent_code.expose(),
                    }),
                ),
            }
        };
        let access = target(TokenKind::Access, &holder, plan);
        let with_token = |path: &str, query: &[(&str, &str)]| Plan::WithToken {
            via: access.clone(),
            request: ApiRequest::get(path, query),
        };
        let corp_ticket = target(
            TokenKind::CorpTicket,
            &holder,
            with_token("/cgi-bin/get_jsapi_ticket", &[]),
        );
        let agent_ticket = target(
            TokenKind::AgentTicket,
            &holder,
            with_token("/cgi-bin/ticket/get", &[("type", "agent_config")]),
        );
        AppTargets {
            app: app.clone(),
            base: base.clone(),
            // A third-party app with the customer-contact permission calls
            // `externalcontact/*` with its corp token: there is no separate contact secret.
            contact: Some(access.clone()),
            access,
            corp_ticket: Some(corp_ticket),
            agent_ticket: Some(agent_ticket),
            oa_ticket: None,
        }
    }

    /// The API origin, without a trailing slash (for plain calls, which carry no token).
    pub fn base(&self) -> &Arc<str> {
        &self.base
    }

    pub fn access(&self) -> &TokenTarget {
        &self.access
    }

    /// The target of `kind`; an app that cannot hold that kind gets the errcode WeCom would
    /// give (41004: no contact secret; 48001: not a kind of this app).
    pub fn get(&self, kind: TokenKind) -> Result<&TokenTarget, ApiError> {
        let found = match kind {
            TokenKind::Access => Some(&self.access),
            TokenKind::Contact => self.contact.as_ref(),
            TokenKind::CorpTicket => self.corp_ticket.as_ref(),
            TokenKind::AgentTicket => self.agent_ticket.as_ref(),
            TokenKind::OaTicket => self.oa_ticket.as_ref(),
            TokenKind::Suite => Some(&self.access).filter(|a| a.kind() == TokenKind::Suite),
        };
        // Only a WeCom app has a corp ticket, and only a WeCom app can have a contact secret.
        let wecom = self.corp_ticket.is_some();
        found.ok_or_else(|| match kind {
            TokenKind::Contact if wecom => ApiError::Api {
                errcode: 41004,
                errmsg: format!("app {} has no contact_secret", self.app),
            },
            _ => ApiError::Api {
                errcode: 48001,
                errmsg: format!("app {} has no {} token", self.app, kind.label()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    fn wecom(corp: &str, agent: u64, secret: &str, contact: Option<&str>) -> Credentials {
        Credentials::Wecom {
            corp_id: corp.into(),
            agent_id: agent,
            secret: Secret::new(secret.into()),
            contact_secret: contact.map(|s| Secret::new(s.into())),
        }
    }

    fn key(base: &str, c: &Credentials, kind: TokenKind) -> String {
        AppTargets::new("app", base, c)
            .get(kind)
            .unwrap()
            .key()
            .to_string()
    }

    #[test]
    fn keys_never_shared_across_apps_kinds_or_bases() {
        let a = wecom("ww1", 1000001, "s1", Some("c"));
        let b = wecom("ww1", 1000002, "s2", Some("c"));
        let rotated = wecom("ww1", 1000001, "s1-new", Some("c"));
        let mp = Credentials::WechatMp {
            app_id: "wx1".into(),
            secret: Secret::new("m".into()),
        };
        let q = "https://qyapi.weixin.qq.com";
        let distinct = [
            key(q, &a, TokenKind::Access),
            key(q, &b, TokenKind::Access),
            key(q, &rotated, TokenKind::Access),
            key("http://127.0.0.1:9100", &a, TokenKind::Access),
            key(q, &a, TokenKind::Contact),
            key(q, &a, TokenKind::CorpTicket),
            key(q, &a, TokenKind::AgentTicket),
            key(q, &b, TokenKind::AgentTicket),
            key(q, &mp, TokenKind::Access),
            key(q, &mp, TokenKind::OaTicket),
        ];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert_ne!(x, y);
            }
            assert!(!x.contains("s1") && !x.contains("s2"), "secret in key {x}");
        }
        // Two apps sharing the contact secret share its token: it is one secret's token.
        assert_eq!(
            key(q, &a, TokenKind::Contact),
            key(q, &b, TokenKind::Contact)
        );
        // A trailing slash in the base is the same base.
        assert_eq!(
            key(q, &a, TokenKind::Access),
            key(&format!("{q}/"), &a, TokenKind::Access)
        );
    }

    #[test]
    fn store_keys_keep_their_wave_1_shape() {
        // Redis keys are shared by every instance of a cluster, across an upgrade too.
        let a = wecom("ww1", 1000002, "s1", Some("c"));
        let fp = Secret::new("s1".into()).fingerprint();
        assert_eq!(
            key("http://e/", &a, TokenKind::Access),
            format!("token:access:http://e:ww1:1000002.{fp}")
        );
        assert_eq!(
            key("http://e", &a, TokenKind::AgentTicket),
            format!("token:agent_ticket:http://e:ww1:1000002.{fp}")
        );
    }

    #[test]
    fn kinds_an_app_cannot_hold_are_refused_with_errcodes() {
        let no_contact = AppTargets::new("crm", "http://e", &wecom("ww1", 1, "s", None));
        let mp = AppTargets::new(
            "mp",
            "http://e",
            &Credentials::WechatMp {
                app_id: "wx1".into(),
                secret: Secret::new("m".into()),
            },
        );
        let cases: &[(&AppTargets, TokenKind, Option<i64>)] = &[
            (&no_contact, TokenKind::Access, None),
            (&no_contact, TokenKind::Contact, Some(41004)),
            (&no_contact, TokenKind::CorpTicket, None),
            (&no_contact, TokenKind::AgentTicket, None),
            (&no_contact, TokenKind::OaTicket, Some(48001)),
            (&mp, TokenKind::Access, None),
            (&mp, TokenKind::Contact, Some(48001)),
            (&mp, TokenKind::CorpTicket, Some(48001)),
            (&mp, TokenKind::AgentTicket, Some(48001)),
            (&mp, TokenKind::OaTicket, None),
        ];
        for (targets, kind, want) in cases {
            let got = targets.get(*kind).map(|t| t.kind());
            match want {
                None => assert_eq!(got, Ok(*kind)),
                Some(code) => assert_eq!(got.unwrap_err().errcode(), Some(*code), "{kind:?}"),
            }
        }
    }

    #[test]
    fn tickets_are_fetched_with_the_access_token_of_the_same_app() {
        let t = AppTargets::new("crm", "http://e", &wecom("ww1", 1, "s", None));
        for kind in [TokenKind::CorpTicket, TokenKind::AgentTicket] {
            match t.get(kind).unwrap().plan() {
                Plan::WithToken { via, .. } => assert_eq!(via.key(), t.access().key()),
                _ => panic!("{kind:?} is fetched with the access token"),
            }
        }
        assert!(matches!(t.access().plan(), Plan::Credentials { .. }));
        let shown = format!("{:?}", t.access());
        assert!(
            !shown.contains("corpsecret") && !shown.contains("\"s\""),
            "{shown}"
        );
    }

    fn suite(custom: bool) -> AppTargets {
        AppTargets::new(
            "saas",
            "http://e",
            &Credentials::Suite {
                suite_id: "wws1".into(),
                suite_secret: Secret::new("suite-secret".into()),
                custom,
            },
        )
    }

    fn corp(t: &AppTargets, corp_id: &str, code: &str, custom: bool) -> AppTargets {
        t.corp(&InstalledCorp {
            corp_id,
            agent_id: 1000005,
            permanent_code: &Secret::new(code.into()),
            custom,
        })
    }

    #[test]
    fn every_corp_of_a_suite_has_its_own_keys_and_the_chain_ends_at_the_stored_ticket() {
        let s = suite(false);
        let suite_token = s.get(TokenKind::Suite).unwrap();
        assert_eq!(suite_token.param(), "suite_access_token");
        assert!(
            matches!(suite_token.plan(), Plan::SuiteTicket { ticket_key, .. } if ticket_key == "suite_ticket:wws1")
        );
        let a = corp(&s, "wwA", "pcA", false);
        let b = corp(&s, "wwB", "pcB", false);
        let a2 = corp(&s, "wwA", "pcA-after-reinstall", false);
        let mut keys = Vec::new();
        for t in [&a, &b, &a2] {
            for kind in [
                TokenKind::Access,
                TokenKind::CorpTicket,
                TokenKind::AgentTicket,
            ] {
                keys.push(t.get(kind).unwrap().key().to_string());
            }
        }
        for (i, x) in keys.iter().enumerate() {
            assert!(!x.contains("pc"), "a permanent code in {x}");
            for y in &keys[i + 1..] {
                assert_ne!(x, y);
            }
        }
        assert!(keys[0].contains(":wwA:"), "{}", keys[0]);
        // corp token <- suite token <- ticket; the tickets ride on the corp token.
        match a.access().plan() {
            Plan::Exchanged { via, request } => {
                assert_eq!(via.key(), suite_token.key());
                assert_eq!(request.path, "/cgi-bin/service/get_corp_token");
            }
            _ => panic!("a third-party corp token is exchanged with the suite token"),
        }
        match a.get(TokenKind::CorpTicket).unwrap().plan() {
            Plan::WithToken { via, .. } => assert_eq!(via.key(), a.access().key()),
            _ => panic!("a corp ticket is fetched with the corp token"),
        }
        assert_eq!(a.access().param(), "access_token");
        assert_eq!(a.access().field(), "access_token");
        // Its contact calls take the corp token too (no contact secret).
        assert_eq!(a.get(TokenKind::Contact).unwrap().key(), a.access().key());
        // The suite itself has no corp tickets.
        assert_eq!(
            s.get(TokenKind::CorpTicket).unwrap_err().errcode(),
            Some(48001)
        );
    }

    #[test]
    fn a_custom_apps_corp_token_is_gettoken_with_the_permanent_code() {
        let c = corp(&suite(true), "wwA", "pcA", true);
        match c.access().plan() {
            Plan::Credentials { request } => {
                assert_eq!(request.path, "/cgi-bin/gettoken");
                assert!(request.query.contains(&("corpid".into(), "wwA".into())));
                assert!(request.query.contains(&("corpsecret".into(), "pcA".into())));
            }
            _ => panic!("代开发 tokens come from gettoken"),
        }
        assert!(!format!("{:?}", c.access()).contains("pcA"));
    }
}
