//! `reauth_after` (SPEC section 17): inside the WeCom client, a page navigation whose session
//! is older than that signs in again, silently (the in-app OAuth of `snsapi_base` asks
//! nothing). Someone else signed in on the same device is so noticed at their first page,
//! without waiting for the session's `ttl`.
//!
//! Only navigations: a script's call cannot follow a sign-in, so it keeps answering as the
//! session's member until the page itself is loaded again. Only inside WeCom: elsewhere the
//! login is a QR scan, which is never silent.

use crate::domain::{App, LoginMode};

/// The User-Agent mark of the WeCom client (SPEC section 8's `login = "auto"` reads it too).
const WXWORK: &str = "wxwork/";

/// Whether this request must sign in again before it goes on.
pub fn due(
    app: &App,
    issued_at: u64,
    now: u64,
    navigation: bool,
    user_agent: Option<&str>,
) -> bool {
    let Some(after) = app.reauth_after else {
        return false;
    };
    navigation
        && app.login != LoginMode::Qr
        && user_agent.is_some_and(|ua| ua.contains(WXWORK))
        && now.saturating_sub(issued_at) >= after.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn app(login: LoginMode, after: Option<u64>) -> App {
        let creds = wecom_api::Credentials::Wecom {
            corp_id: "ww1".into(),
            agent_id: 1,
            secret: wecom_api::Secret::new("s".into()),
            contact_secret: None,
        };
        App {
            name: "crm".into(),
            targets: wecom_api::AppTargets::new("crm", "http://e", &creds),
            credentials: creds,
            login,
            scope: "snsapi_base".into(),
            return_query: vec![],
            authorize_url: url::Url::parse("http://e/a").unwrap(),
            qr_login_url: None,
            jssdk_urls: vec![],
            reauth_after: after.map(Duration::from_secs),
            callback: None,
            miniprogram: false,
            web_login: true,
        }
    }

    /// One line per case: login mode, reauth_after, session age, navigation, User-Agent.
    #[test]
    fn only_navigations_inside_wecom_with_an_older_session_sign_in_again() {
        let wx = Some("Mozilla/5.0 wxwork/4.1.0 MicroMessenger/7.0.1");
        let chrome = Some("Mozilla/5.0 Chrome/120");
        type Case = (
            LoginMode,
            Option<u64>,
            u64,
            bool,
            Option<&'static str>,
            bool,
        );
        let cases: &[Case] = &[
            (LoginMode::Auto, Some(900), 900, true, wx, true),
            (LoginMode::Auto, Some(900), 5000, true, wx, true),
            (LoginMode::Oauth, Some(900), 901, true, wx, true),
            // younger than reauth_after
            (LoginMode::Auto, Some(900), 899, true, wx, false),
            // a script's call: never redirected
            (LoginMode::Auto, Some(900), 5000, false, wx, false),
            // outside WeCom (a QR session): nothing changes
            (LoginMode::Auto, Some(900), 5000, true, chrome, false),
            (LoginMode::Auto, Some(900), 5000, true, None, false),
            // QR-only apps have no silent sign-in
            (LoginMode::Qr, Some(900), 5000, true, wx, false),
            // not configured
            (LoginMode::Auto, None, 50_000, true, wx, false),
        ];
        for &(login, after, age, nav, ua, want) in cases {
            let a = app(login, after);
            assert_eq!(
                due(&a, 10_000, 10_000 + age, nav, ua),
                want,
                "{login:?} after={after:?} age={age} nav={nav} ua={ua:?}"
            );
        }
    }
}
