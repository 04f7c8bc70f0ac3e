//! One `[apps.NAME]` table: the keys its kind takes (refusing the others by name), its
//! credentials and token targets, its login and JS-SDK settings, its callback.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde_spanned::Spanned;
use url::Url;
use wecom_api::AppTargets;

use super::checked::{base_url, duration, wecom_secret};
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
    let refuse = |span: Range<usize>, key: &str| {
        src.error(
            span,
            app_path(key),
            format!("not a key of kind = \"{}\"", kind.name()),
        )
    };
    // The first of `keys` the table has, refused: keys another kind of app takes.
    let refuse_present = |keys: &[(Option<Range<usize>>, &str)]| -> Result<()> {
        match keys
            .iter()
            .find_map(|(span, key)| Some((span.clone()?, *key)))
        {
            Some((span, key)) => Err(refuse(span, key)),
            None => Ok(()),
        }
    };
    let scope_of = |allowed: [&str; 2]| -> Result<String> {
        let Some(v) = &a.scope else {
            return Ok("snsapi_base".into());
        };
        let scope = v.get_ref().as_str();
        if !allowed.contains(&scope) {
            return Err(src.error(
                v.span(),
                app_path("scope"),
                format!("expected \"{}\" or \"{}\"", allowed[0], allowed[1]),
            ));
        }
        Ok(scope.to_owned())
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
            Some(v) => super::checked::outbound_url(v, &app_path(key), src),
            None => Ok(Url::parse(default).expect("default URL")),
        }
    };
    let app_secret = |v: &Option<Spanned<Text>>, key: &str| -> Result<Secret> {
        match v {
            Some(v) => wecom_secret(v, &app_path(key), src),
            None => Err(src.error(table_span.clone(), app_path(key), "required")),
        }
    };
    // Keys of the suites alone, refused elsewhere.
    if !matches!(kind, AppKind::WecomSuite | AppKind::WecomCustom) {
        refuse_present(&[
            (at(&a.suite_id), "suite_id"),
            (at(&a.suite_secret), "suite_secret"),
            (at(&a.provider_corp_id), "provider_corp_id"),
        ])?;
    }
    // The WeCom kinds share their scopes, the QR login page and the API base.
    let wecom = |creds: Credentials| -> Result<(Credentials, String, &'static str, Option<Url>)> {
        let scope = scope_of(["snsapi_base", "snsapi_privateinfo"])?;
        let qr_login_url = url_or(
            &a.qr_login_url,
            "qr_login_url",
            "https://login.work.weixin.qq.com/wwlogin/sso/login",
        )?;
        Ok((
            creds,
            scope,
            "https://qyapi.weixin.qq.com",
            Some(qr_login_url),
        ))
    };
    let (credentials, scope, api_default, qr_login_url) = match kind {
        AppKind::WecomSuite | AppKind::WecomCustom => {
            refuse_present(&[
                (at(&a.corp_id), "corp_id"),
                (at(&a.app_id), "app_id"),
                (at(&a.secret), "secret"),
                (at(&a.contact_secret), "contact_secret"),
                // Each corp gives the app its own agent id: it comes from the install.
                (at(&a.agent_id), "agent_id"),
                (at(&a.miniprogram), "miniprogram"),
            ])?;
            // The silent re-login of SPEC section 17 runs the app's own sign-in again: a
            // third-party app's names no corp (the suite's OAuth says whose member it is); a
            // 代开发 app's must name its corp, which a re-login from a page does not carry.
            if kind == AppKind::WecomCustom {
                refuse_present(&[(at(&a.reauth_after), "reauth_after")])?;
            }
            if a.callback.is_none() {
                // Suite tickets and installs arrive only as callbacks.
                return Err(src.error(
                    table_span.clone(),
                    app_path("callback"),
                    "required: suite tickets and installs arrive as callbacks",
                ));
            }
            wecom(Credentials::Suite {
                suite_id: require(&a.suite_id, "suite_id")?,
                suite_secret: app_secret(&a.suite_secret, "suite_secret")?,
                custom: kind == AppKind::WecomCustom,
            })?
        }
        AppKind::Wecom => {
            refuse_present(&[(at(&a.app_id), "app_id")])?;
            let agent_id = match &a.agent_id {
                Some(v) => *v.get_ref(),
                None => {
                    return Err(src.error(table_span.clone(), app_path("agent_id"), "required"))
                }
            };
            wecom(Credentials::Wecom {
                corp_id: require(&a.corp_id, "corp_id")?,
                agent_id,
                secret: app_secret(&a.secret, "secret")?,
                contact_secret: a
                    .contact_secret
                    .as_ref()
                    .map(|s| wecom_secret(s, &app_path("contact_secret"), src))
                    .transpose()?,
            })?
        }
        AppKind::WechatMp => {
            refuse_present(&[
                (at(&a.corp_id), "corp_id"),
                (at(&a.contact_secret), "contact_secret"),
                (at(&a.qr_login_url), "qr_login_url"),
                (at(&a.agent_id), "agent_id"),
                (at(&a.login), "login"),
                // An Official Account has no mini-program login of its own.
                (at(&a.miniprogram), "miniprogram"),
                (at(&a.reauth_after), "reauth_after"),
            ])?;
            let scope = scope_of(["snsapi_base", "snsapi_userinfo"])?;
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
            refuse_present(&[
                (at(&a.corp_id), "corp_id"),
                (at(&a.contact_secret), "contact_secret"),
                (at(&a.qr_login_url), "qr_login_url"),
                (at(&a.scope), "scope"),
                (at(&a.authorize_url), "authorize_url"),
                (at(&a.agent_id), "agent_id"),
                (at(&a.login), "login"),
                (at(&a.miniprogram), "miniprogram"),
                (at(&a.reauth_after), "reauth_after"),
                (
                    a.jssdk_urls.iter().flatten().next().map(Spanned::span),
                    "jssdk_urls",
                ),
                (
                    a.return_query.values().next().map(Spanned::span),
                    "return_query",
                ),
            ])?;
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
    // The SDKs' habit of a base ending in `/cgi-bin`: every call would be `/cgi-bin/cgi-bin/`.
    if let (Some(v), true) = (
        &a.api_base,
        api_base.path().trim_end_matches('/').ends_with("/cgi-bin"),
    ) {
        return Err(src.error(
            v.span(),
            app_path("api_base"),
            "is the API's origin (\"https://qyapi.weixin.qq.com\"): the gateway adds /cgi-bin/... itself",
        ));
    }
    let reauth_after = a
        .reauth_after
        .as_ref()
        .map(|v| duration(v, &app_path("reauth_after"), src))
        .transpose()?;
    let callback = match &a.callback {
        None => None,
        Some(cb) => {
            let (receive_ids, check_ids) = match &credentials {
                Credentials::Wecom { corp_id, .. } => (vec![corp_id.clone()], Vec::new()),
                // Instruction callbacks carry the suite id, the URL check the provider's corp
                // id (and only the URL check: a message ending with it is refused); data
                // callbacks carry an installing corp's id, checked against the installs when
                // they arrive (`crate::suite`).
                Credentials::Suite { suite_id, .. } => (
                    vec![suite_id.clone()],
                    a.provider_corp_id
                        .iter()
                        .map(|p| p.get_ref().as_str().to_owned())
                        .collect(),
                ),
                Credentials::WechatMp { .. } => return Err(refuse(cb.span(), "callback")),
            };
            Some(super::callback::compile(
                name,
                cb,
                receive_ids,
                check_ids,
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

/// Where a key stands in the file, if the table has it.
fn at<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
    v.as_ref().map(Spanned::span)
}
