//! The provider pages a login starts at, spelled exactly as SPEC section 8 writes them:
//! WeChat reads the parameters in order and wants `#wechat_redirect` at the very end.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::state::Flow;
use crate::config::model::{App, Credentials, LoginMode};

/// `encodeURIComponent`'s set: everything but letters, digits and `-_.!~*'()`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

pub fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// `{public_url}{prefix}/oauth/callback`: it cannot carry a fragment, so the `#/route` travels
/// in the login cookie instead.
pub fn callback_url(public_url: &url::Url, prefix: &str) -> String {
    format!(
        "{}{prefix}/oauth/callback",
        public_url.as_str().trim_end_matches('/')
    )
}

/// The WeCom client says `wxwork/VERSION` in its User-Agent (WeChat only `MicroMessenger`).
pub fn in_wecom_client(user_agent: &str) -> bool {
    user_agent.to_ascii_lowercase().contains("wxwork/")
}

/// In-app authorize or QR login, as `login` and the User-Agent decide.
pub fn choose_flow(app: &App, user_agent: &str) -> Flow {
    match (&app.credentials, app.login) {
        (Credentials::WechatMp { .. }, _) => Flow::Authorize,
        (Credentials::Wecom { .. }, LoginMode::Oauth) => Flow::Authorize,
        (Credentials::Wecom { .. }, LoginMode::Qr) => Flow::Qr,
        (Credentials::Wecom { .. }, LoginMode::Auto) if in_wecom_client(user_agent) => {
            Flow::Authorize
        }
        (Credentials::Wecom { .. }, LoginMode::Auto) => Flow::Qr,
        (Credentials::Suite { .. }, LoginMode::Oauth) => Flow::Authorize,
        (Credentials::Suite { .. }, LoginMode::Qr) => Flow::Qr,
        (Credentials::Suite { .. }, LoginMode::Auto) if in_wecom_client(user_agent) => {
            Flow::Authorize
        }
        (Credentials::Suite { .. }, LoginMode::Auto) => Flow::Qr,
    }
}

/// Where the browser is sent to log in.
pub fn provider_url(app: &App, flow: Flow, redirect_uri: &str, state: &str) -> String {
    let redirect = enc(redirect_uri);
    let scope = enc(&app.scope);
    // Every WeCom app has a QR login page (its default is WeCom's own).
    match (&app.credentials, flow, &app.qr_login_url) {
        (Credentials::Wecom { corp_id, agent_id, .. }, Flow::Qr, Some(qr_login_url)) => format!(
            "{}?login_type=CorpApp&appid={}&agentid={agent_id}&redirect_uri={redirect}&state={state}",
            base(qr_login_url),
            enc(corp_id)
        ),
        (Credentials::Wecom { corp_id, agent_id, .. }, _, _) => format!(
            "{}?appid={}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}&agentid={agent_id}#wechat_redirect",
            base(&app.authorize_url),
            enc(corp_id)
        ),
        // A third-party app (SPEC section 20): the suite id is the appid, no agentid (it
        // differs in every corp); the QR login is the service app's.
        (Credentials::Suite { suite_id, .. }, Flow::Qr, Some(qr_login_url)) => format!(
            "{}?login_type=ServiceApp&appid={}&redirect_uri={redirect}&state={state}",
            base(qr_login_url),
            enc(suite_id)
        ),
        (Credentials::Suite { suite_id, .. }, _, _) => format!(
            "{}?appid={}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}#wechat_redirect",
            base(&app.authorize_url),
            enc(suite_id)
        ),
        (Credentials::WechatMp { app_id, .. }, _, _) => format!(
            "{}?appid={}&redirect_uri={redirect}&response_type=code&scope={scope}&state={state}#wechat_redirect",
            base(&app.authorize_url),
            enc(app_id)
        ),
    }
}

/// A 代开发 app's sign-in in one installed corp (SPEC section 20): the self-built flow, with
/// that corp's id and the app's agent id there.
pub fn custom_url(
    app: &App,
    corp_id: &str,
    agent_id: u64,
    flow: Flow,
    redirect_uri: &str,
    state: &str,
) -> String {
    let redirect = enc(redirect_uri);
    match (flow, &app.qr_login_url) {
        (Flow::Qr, Some(qr_login_url)) => format!(
            "{}?login_type=CorpApp&appid={}&agentid={agent_id}&redirect_uri={redirect}&state={state}",
            base(qr_login_url),
            enc(corp_id)
        ),
        _ => format!(
            "{}?appid={}&redirect_uri={redirect}&response_type=code&scope={}&state={state}&agentid={agent_id}#wechat_redirect",
            base(&app.authorize_url),
            enc(corp_id),
            enc(&app.scope)
        ),
    }
}

/// The configured page without query or fragment: the parameters are ours, in our order.
fn base(u: &url::Url) -> &str {
    let s = u.as_str();
    let end = s.find(['?', '#']).unwrap_or(s.len());
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Secret;
    use url::Url;

    fn app(name: &str, credentials: Credentials, login: LoginMode, scope: &str) -> App {
        let base = match credentials {
            Credentials::Wecom { .. } => "https://qyapi.weixin.qq.com",
            Credentials::WechatMp { .. } => "https://api.weixin.qq.com",
            Credentials::Suite { .. } => "https://qyapi.weixin.qq.com",
        };
        App {
            name: name.into(),
            targets: wecom_api::AppTargets::new(name, base, &credentials),
            qr_login_url: matches!(credentials, Credentials::Wecom { .. })
                .then(|| Url::parse("https://login.work.weixin.qq.com/wwlogin/sso/login").unwrap()),
            credentials,
            login,
            scope: scope.into(),
            return_query: vec![],
            authorize_url: Url::parse("https://open.weixin.qq.com/connect/oauth2/authorize")
                .unwrap(),
            jssdk_urls: vec![],
            miniprogram: false,
            web_login: true,
            reauth_after: None,
            callback: None,
        }
    }

    fn wecom(login: LoginMode, scope: &str) -> App {
        let credentials = Credentials::Wecom {
            corp_id: "ww1234567890abcdef".into(),
            agent_id: 1000010,
            secret: Secret::new("s".into()),
            contact_secret: None,
        };
        app("crm", credentials, login, scope)
    }

    fn mp(scope: &str) -> App {
        let credentials = Credentials::WechatMp {
            app_id: "wx1234567890abcdef".into(),
            secret: Secret::new("s".into()),
        };
        app("mp", credentials, LoginMode::Auto, scope)
    }

    const CB: &str = "https://crm.example.com/_gateway/oauth/callback";
    const ENC_CB: &str = "https%3A%2F%2Fcrm.example.com%2F_gateway%2Foauth%2Fcallback";

    #[test]
    fn exact_provider_urls() {
        let st = "AbC123";
        let cases: Vec<(App, Flow, String)> = vec![
            (wecom(LoginMode::Auto, "snsapi_base"), Flow::Authorize, format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww1234567890abcdef&redirect_uri={ENC_CB}&response_type=code&scope=snsapi_base&state={st}&agentid=1000010#wechat_redirect")),
            (wecom(LoginMode::Auto, "snsapi_privateinfo"), Flow::Authorize, format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww1234567890abcdef&redirect_uri={ENC_CB}&response_type=code&scope=snsapi_privateinfo&state={st}&agentid=1000010#wechat_redirect")),
            (wecom(LoginMode::Auto, "snsapi_base"), Flow::Qr, format!(
                "https://login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=ww1234567890abcdef&agentid=1000010&redirect_uri={ENC_CB}&state={st}")),
            (mp("snsapi_base"), Flow::Authorize, format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1234567890abcdef&redirect_uri={ENC_CB}&response_type=code&scope=snsapi_base&state={st}#wechat_redirect")),
            (mp("snsapi_userinfo"), Flow::Authorize, format!(
                "https://open.weixin.qq.com/connect/oauth2/authorize?appid=wx1234567890abcdef&redirect_uri={ENC_CB}&response_type=code&scope=snsapi_userinfo&state={st}#wechat_redirect")),
        ];
        for (app, flow, want) in cases {
            assert_eq!(provider_url(&app, flow, CB, st), want);
        }
    }

    #[test]
    fn callback_url_has_no_double_slash() {
        for public in ["https://crm.example.com", "https://crm.example.com/"] {
            assert_eq!(callback_url(&Url::parse(public).unwrap(), "/_gateway"), CB);
        }
    }

    #[test]
    fn flow_by_login_mode_and_user_agent() {
        let wxwork = "Mozilla/5.0 (iPhone) MicroMessenger/8.0 wxwork/4.1.0 Language/zh";
        let wechat = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.40";
        let desktop = "Mozilla/5.0 (Windows NT 10.0) Chrome/120";
        let cases = [
            (
                wecom(LoginMode::Auto, "snsapi_base"),
                wxwork,
                Flow::Authorize,
            ),
            (
                wecom(LoginMode::Auto, "snsapi_base"),
                "WXWork/3.1",
                Flow::Authorize,
            ),
            (wecom(LoginMode::Auto, "snsapi_base"), wechat, Flow::Qr),
            (wecom(LoginMode::Auto, "snsapi_base"), desktop, Flow::Qr),
            (
                wecom(LoginMode::Oauth, "snsapi_base"),
                desktop,
                Flow::Authorize,
            ),
            (wecom(LoginMode::Qr, "snsapi_base"), wxwork, Flow::Qr),
            (mp("snsapi_base"), desktop, Flow::Authorize),
        ];
        for (app, ua, want) in cases {
            assert_eq!(choose_flow(&app, ua), want, "{:?} {ua}", app.login);
        }
    }
}
