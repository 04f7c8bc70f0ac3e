//! What a call or a fetch is made for: one app's credentials and one kind of token, owned so
//! that fetches can outlive the request that started them (background refresh).

use std::sync::Arc;

use crate::config::model::{App, Credentials, Secret};

use super::cache::CacheKey;
use super::TokenKind;

#[derive(Debug, Clone)]
pub(crate) enum Creds {
    Wecom {
        corp_id: String,
        agent_id: u64,
        secret: Secret,
        contact_secret: Option<Secret>,
    },
    WechatMp {
        app_id: String,
        secret: Secret,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The app's name, for metrics and logs.
    pub app: Arc<str>,
    pub kind: TokenKind,
    /// `api_base` without a trailing slash.
    pub base: Arc<str>,
    pub creds: Arc<Creds>,
    pub key: CacheKey,
}

pub(crate) fn base_of(app: &App) -> Arc<str> {
    app.api_base.as_str().trim_end_matches('/').into()
}

impl Target {
    pub fn new(app: &App, kind: TokenKind) -> Target {
        let creds = match &app.credentials {
            Credentials::Wecom {
                corp_id,
                agent_id,
                contact_secret,
                ..
            } => Creds::Wecom {
                corp_id: corp_id.clone(),
                agent_id: *agent_id,
                secret: app.secret.clone(),
                contact_secret: contact_secret.clone(),
            },
            Credentials::WechatMp { app_id } => Creds::WechatMp {
                app_id: app_id.clone(),
                secret: app.secret.clone(),
            },
        };
        let base = base_of(app);
        Target {
            app: app.name.as_str().into(),
            kind,
            key: CacheKey::derive(&base, &creds, kind),
            base,
            creds: Arc::new(creds),
        }
    }

    /// The same app, another kind (a ticket is fetched with the access token).
    pub fn with_kind(&self, kind: TokenKind) -> Target {
        Target {
            kind,
            key: CacheKey::derive(&self.base, &self.creds, kind),
            ..self.clone()
        }
    }
}
