//! One `[apps.NAME]` table: the keys its kind takes (refusing the others by name), its
//! credentials and token targets, its login and JS-SDK settings, its callback.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_spanned::Spanned;
use url::Url;
use wecom_api::AppTargets;

use super::checked::{base_url, duration, secret};
use super::error::{ConfigError, Source};
use super::file::{self, AppKind};
use super::model::*;
use super::values::Text;

type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn compile_app(
    name: &str,
    a: &Spanned<file::App>,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    src: &Source<'_>,
) -> Result<App> {
    let app_path = |key: &str| format!("[apps.{name}].{key}");
    let table_span = a.span();
    let a = a.get_ref();
    let kind = *a.kind.get_ref();
    let refuse = |span: std::ops::Range<usize>, key: &str, kind_name: &str| {
        src.error(
            span,
            app_path(key),
            format!("not a key of kind = \"{kind_name}\""),
        )
    };
    let require = |v: &Option<Spanned<Text>>, key: &str| -> Result<String> {
        match v {
            Some(v) if !v.get_ref().as_str().is_empty() => Ok(v.get_ref().as_str().to_owned()),
            Some(v) => Err(src.error(v.span(), app_path(key), "must not be empty")),
            None => Err(src.error(table_span.clone(), app_path(key), "required")),
        }
    };
    let url_or = |v: &Option<Spanned<Text>>, key: &str, default: &str| -> Result<Url> {
        match v {
            Some(v) => base_url(v, &app_path(key), src),
            None => Ok(Url::parse(default).expect("default URL")),
        }
    };
    let app_secret = |v: &Option<Spanned<Text>>, key: &str| -> Result<Secret> {
        match v {
            Some(v) => secret(v, &app_path(key), 1, src),
            None => Err(src.error(table_span.clone(), app_path(key), "required")),
        }
    };
    // Keys of the suites alone, refused elsewhere.
    if !matches!(kind, AppKind::WecomSuite | AppKind::WecomCustom) {
        for (v, key) in [
            (&a.suite_id, "suite_id"),
            (&a.suite_secret, "suite_secret"),
            (&a.provider_corp_id, "provider_corp_id"),
        ] {
            if let Some(v) = v {
                return Err(refuse(v.span(), key, kind.name()));
            }
        }
    }
    let scope_text = a.scope.as_ref().map(|s| s.get_ref().as_str().to_owned());
    let (credentials, scope, api_default, qr_login_url) = match kind {
        AppKind::WecomSuite | AppKind::WecomCustom => {
            let kind_name = kind.name();
            for (v, key) in [
                (&a.corp_id, "corp_id"),
                (&a.app_id, "app_id"),
                (&a.secret, "secret"),
                (&a.contact_secret, "contact_secret"),
            ] {
                if let Some(v) = v {
                    return Err(refuse(v.span(), key, kind_name));
                }
            }
            // Each corp gives the app its own agent id: it comes from the install.
            if let Some(v) = &a.agent_id {
                return Err(refuse(v.span(), "agent_id", kind_name));
            }
            if let Some(v) = &a.miniprogram {
                return Err(refuse(v.span(), "miniprogram", kind_name));
            }
            // The silent re-login of SPEC section 17 is a self-built app's flow.
            if let Some(v) = &a.reauth_after {
                return Err(refuse(v.span(), "reauth_after", kind_name));
            }
            if a.callback.is_none() {
                // Suite tickets and installs arrive only as callbacks.
                return Err(src.error(
                    table_span.clone(),
                    app_path("callback"),
                    "required: suite tickets and installs arrive as callbacks",
                ));
            }
            let scope = scope_text.unwrap_or_else(|| "snsapi_base".into());
            if !matches!(scope.as_str(), "snsapi_base" | "snsapi_privateinfo") {
                let span = a.scope.as_ref().unwrap().span();
                return Err(src.error(
                    span,
                    app_path("scope"),
                    "expected \"snsapi_base\" or \"snsapi_privateinfo\"",
                ));
            }
            let creds = Credentials::Suite {
                suite_id: require(&a.suite_id, "suite_id")?,
                suite_secret: app_secret(&a.suite_secret, "suite_secret")?,
                custom: kind == AppKind::WecomCustom,
            };
            let qr_login_url = url_or(
                &a.qr_login_url,
                "qr_login_url",
                "https://login.work.weixin.qq.com/wwlogin/sso/login",
            )?;
            (
                creds,
                scope,
                "https://qyapi.weixin.qq.com",
                Some(qr_login_url),
            )
        }
        AppKind::Wecom => {
            if let Some(v) = &a.app_id {
                return Err(refuse(v.span(), "app_id", "wecom"));
            }
            let agent_id = match &a.agent_id {
                Some(v) => *v.get_ref(),
                None => {
                    return Err(src.error(table_span.clone(), app_path("agent_id"), "required"))
                }
            };
            let scope = scope_text.unwrap_or_else(|| "snsapi_base".into());
            if !matches!(scope.as_str(), "snsapi_base" | "snsapi_privateinfo") {
                let span = a.scope.as_ref().unwrap().span();
                return Err(src.error(
                    span,
                    app_path("scope"),
                    "expected \"snsapi_base\" or \"snsapi_privateinfo\"",
                ));
            }
            let creds = Credentials::Wecom {
                corp_id: require(&a.corp_id, "corp_id")?,
                agent_id,
                secret: app_secret(&a.secret, "secret")?,
                contact_secret: a
                    .contact_secret
                    .as_ref()
                    .map(|s| secret(s, &app_path("contact_secret"), 1, src))
                    .transpose()?,
            };
            let qr_login_url = url_or(
                &a.qr_login_url,
                "qr_login_url",
                "https://login.work.weixin.qq.com/wwlogin/sso/login",
            )?;
            (
                creds,
                scope,
                "https://qyapi.weixin.qq.com",
                Some(qr_login_url),
            )
        }
        AppKind::WechatMp => {
            for (v, key) in [
                (&a.corp_id, "corp_id"),
                (&a.contact_secret, "contact_secret"),
                (&a.qr_login_url, "qr_login_url"),
            ] {
                if let Some(v) = v {
                    return Err(refuse(v.span(), key, "wechat_mp"));
                }
            }
            if let Some(v) = &a.agent_id {
                return Err(refuse(v.span(), "agent_id", "wechat_mp"));
            }
            if let Some(v) = &a.login {
                return Err(refuse(v.span(), "login", "wechat_mp"));
            }
            // An Official Account has no mini-program login of its own.
            if let Some(v) = &a.miniprogram {
                return Err(refuse(v.span(), "miniprogram", "wechat_mp"));
            }
            if let Some(v) = &a.reauth_after {
                return Err(refuse(v.span(), "reauth_after", "wechat_mp"));
            }
            let scope = scope_text.unwrap_or_else(|| "snsapi_base".into());
            if !matches!(scope.as_str(), "snsapi_base" | "snsapi_userinfo") {
                let span = a.scope.as_ref().unwrap().span();
                return Err(src.error(
                    span,
                    app_path("scope"),
                    "expected \"snsapi_base\" or \"snsapi_userinfo\"",
                ));
            }
            (
                Credentials::WechatMp {
                    app_id: require(&a.app_id, "app_id")?,
                    secret: app_secret(&a.secret, "secret")?,
                },
                scope,
                "https://api.weixin.qq.com",
                None,
            )
        }
        AppKind::WechatMini => {
            // `app_id`, `secret` and `api_base` only: no web login, no JS-SDK.
            for (v, key) in [
                (&a.corp_id, "corp_id"),
                (&a.contact_secret, "contact_secret"),
                (&a.qr_login_url, "qr_login_url"),
                (&a.scope, "scope"),
                (&a.authorize_url, "authorize_url"),
            ] {
                if let Some(v) = v {
                    return Err(refuse(v.span(), key, "wechat_mini"));
                }
            }
            if let Some(v) = &a.agent_id {
                return Err(refuse(v.span(), "agent_id", "wechat_mini"));
            }
            if let Some(v) = &a.login {
                return Err(refuse(v.span(), "login", "wechat_mini"));
            }
            if let Some(v) = &a.miniprogram {
                return Err(refuse(v.span(), "miniprogram", "wechat_mini"));
            }
            if let Some(v) = &a.reauth_after {
                return Err(refuse(v.span(), "reauth_after", "wechat_mini"));
            }
            // The same credential shape as an Official Account's: an app id and its secret.
            (
                Credentials::WechatMp {
                    app_id: require(&a.app_id, "app_id")?,
                    secret: app_secret(&a.secret, "secret")?,
                },
                String::new(),
                "https://api.weixin.qq.com",
                None,
            )
        }
    };
    let mut return_query = Vec::new();
    for (param, field) in &a.return_query {
        let Some(f) = IdentityField::parse(field.get_ref().as_str()) else {
            return Err(src.error(
                field.span(),
                app_path(&format!("return_query.{param}")),
                format!(
                    "unknown identity field (expected one of {})",
                    IdentityField::NAMES.join(", ")
                ),
            ));
        };
        return_query.push((param.clone(), f));
    }
    let mut jssdk_urls = Vec::new();
    for (i, u) in a.jssdk_urls.iter().flatten().enumerate() {
        jssdk_urls
            .push(base_url(u, &app_path(&format!("jssdk_urls[{}]", i + 1)), src)?.to_string());
    }
    if a.jssdk_urls.is_none() {
        jssdk_urls.push("https://res.wx.qq.com/open/js/jweixin-1.2.0.js".to_owned());
    }
    let api_base = url_or(&a.api_base, "api_base", api_default)?;
    let reauth_after = a
        .reauth_after
        .as_ref()
        .map(|v| duration(v, &app_path("reauth_after"), src))
        .transpose()?;
    let callback = match &a.callback {
        None => None,
        Some(cb) => {
            let receive_ids = match &credentials {
                Credentials::Wecom { corp_id, .. } => vec![corp_id.clone()],
                // Instruction callbacks carry the suite id, the URL check the provider's corp
                // id; data callbacks carry an installing corp's id, checked against the
                // installs when they arrive (`crate::suite`).
                Credentials::Suite { suite_id, .. } => std::iter::once(suite_id.clone())
                    .chain(
                        a.provider_corp_id
                            .as_ref()
                            .map(|p| p.get_ref().as_str().to_owned()),
                    )
                    .collect(),
                Credentials::WechatMp { .. } => {
                    return Err(refuse(cb.span(), "callback", kind.name()))
                }
            };
            Some(super::callback::compile(
                name,
                cb,
                receive_ids,
                upstreams,
                src,
            )?)
        }
    };
    Ok(App {
        callback,
        reauth_after,
        name: name.to_owned(),
        targets: AppTargets::new(name, api_base.as_str(), &credentials),
        credentials,
        login: a.login.as_ref().map_or(LoginMode::Auto, |l| *l.get_ref()),
        scope,
        return_query,
        authorize_url: url_or(
            &a.authorize_url,
            "authorize_url",
            "https://open.weixin.qq.com/connect/oauth2/authorize",
        )?,
        qr_login_url,
        jssdk_urls,
        miniprogram: kind == AppKind::WechatMini
            || a.miniprogram.as_ref().is_some_and(|m| *m.get_ref()),
        web_login: kind != AppKind::WechatMini,
    })
}
