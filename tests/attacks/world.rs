//! The world the attacks run in: the emulator as WeCom and WeChat, an echo upstream as the CRM,
//! the real gateway in front with a WeCom app (`crm`) and an Official Account (`mp`), and the
//! routes each attack needs.

use emulator::{Emulator, Scenario};
use serde_json::{json, Value};

use crate::common::browser::{self, Browser, WXWORK_UA};
use crate::common::upstream::{self, Echo, Upstream};
use crate::common::{client, Gateway, TempDir};

pub const SESSION_SECRET: &str = "test-session-secret-0123456789abcdef";
pub const ASSERTION_SECRET: &str = "test-assertion-secret-0123456789abcdef";
pub const CORP_ID: &str = "wwemu0000000000001";
pub const CUSTOMER: &str = "wmEmuCustomer001";
pub const CUSTOMER_UNIONID: &str = "oEmuUnion001";

/// The sidebar routes most attacks need: a protected area, a required-contact area, the rest
/// public.
pub const SIDEBAR_ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/customer/"
upstream = "crm"
login = "crm"
external_contact = "required"

[[routes]]
location = "/mp/"
upstream = "crm"
login = "mp"

[[routes]]
location = "/"
upstream = "crm"
"#;

#[allow(dead_code)] // `up` lives as long as the gateway in front of it
pub struct World {
    /// The qyapi listener's port (`qyapi_listen = "127.0.0.1:{qyapi}"` in `Setup::server`).
    pub qyapi: u16,
    pub emu: Emulator,
    pub up: Upstream,
    pub gw: Gateway,
    /// Files the config refers to (nginx includes), kept as long as the gateway runs.
    pub files: TempDir,
}

/// What goes around the routes: `session` lines are added to `[session]`; `{emu}`, `{up}`
/// and `{files}` in `rest` are the emulator's and the upstream's base URLs and the directory
/// of `files`.
pub struct Setup<'a> {
    pub scenario: Scenario,
    /// Lines of the `[server]` table; `{qyapi}` is a free port.
    pub server: &'a str,
    pub session: &'a str,
    pub rest: &'a str,
    pub files: &'a [(&'a str, &'a str)],
    pub mp_return_query: &'a str,
    /// The port of `public_url` when a proxy in front (nginx) is how browsers reach the
    /// gateway; `None`: the gateway's own port.
    pub public_port: Option<u16>,
    /// More lines of `[apps.crm]` (e.g. `reauth_after`).
    pub crm: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            scenario: Scenario::default(),
            server: "",
            session: "",
            rest: SIDEBAR_ROUTES,
            files: &[],
            mp_return_query: "",
            public_port: None,
            crm: "",
        }
    }
}

impl World {
    pub async fn start() -> World {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup<'_>) -> World {
        let emu = Emulator::start("127.0.0.1:0".parse().unwrap(), setup.scenario)
            .await
            .unwrap();
        let up = upstream::echo("crm");
        let files = TempDir::new("attack-files");
        let subst = |s: &str| {
            s.replace("{qyapi}", "0")
                .replace("{emu}", &emu.base_url())
                .replace("{up}", &up.url())
                .replace("{files}", &files.path().display().to_string())
        };
        for (name, text) in setup.files {
            std::fs::write(files.path().join(name), subst(text)).unwrap();
        }
        let emu_url = emu.base_url();
        let body = format!(
            r#"{server}
[session]
secret = "{SESSION_SECRET}"
assertion_secret = "{ASSERTION_SECRET}"
{session}

[apps.crm]
kind = "wecom"
corp_id = "{CORP_ID}"
agent_id = 1000002
secret = "emu-agent-secret"
contact_secret = "emu-contact-secret"
api_base = "{emu_url}"
authorize_url = "{emu_url}/connect/oauth2/authorize"
qr_login_url = "{emu_url}/wwlogin/sso/login"
jssdk_urls = ["{emu_url}/emulator/jweixin.js"]
{crm}

[apps.mp]
kind = "wechat_mp"
app_id = "wxemu000000000001"
secret = "emu-mp-secret"
api_base = "{emu_url}"
authorize_url = "{emu_url}/connect/oauth2/authorize"
{mp_return_query}

[upstreams.crm]
url = "{up}"

{rest}
"#,
            server = subst(setup.server),
            session = setup.session,
            up = up.url(),
            mp_return_query = setup.mp_return_query,
            crm = setup.crm,
            rest = subst(setup.rest),
        );
        let public_port = setup.public_port;
        let gw = tokio::task::spawn_blocking(move || match public_port {
            None => Gateway::start(&body),
            Some(public) => {
                let server = crate::common::server_table().replace(
                    "public_url = \"http://127.0.0.1:0\"",
                    &format!("public_url = \"http://127.0.0.1:{public}\""),
                );
                Gateway::start_config(&format!("{server}\n{body}"), &[], &[])
            }
        })
        .await
        .unwrap();
        World {
            qyapi: gw.qyapi_port.unwrap_or(0),
            emu,
            up,
            gw,
            files,
        }
    }

    /// A WeCom client, not logged in yet.
    pub fn member_browser(&self) -> Browser {
        Browser::new(WXWORK_UA)
    }

    /// A WeCom client logged in as the emulator's current member.
    pub async fn member(&self) -> Browser {
        let mut b = Browser::new(WXWORK_UA);
        self.login(&mut b, "crm", "/sidebar/").await;
        b
    }

    pub async fn login(&self, b: &mut Browser, app: &str, return_to: &str) -> String {
        browser::login(b, &self.gw, &self.emu.base_url(), app, return_to).await
    }

    pub async fn to_callback(&self, b: &mut Browser, app: &str, return_to: &str) -> String {
        let url = browser::login_url(&self.gw, app, return_to);
        browser::to_callback(b, &self.gw, &self.emu.base_url(), &url).await
    }

    /// What the CRM received for `path` (a script's call), or `None` when the gateway answered.
    pub async fn upstream_sees(
        &self,
        b: &mut Browser,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Echo, (u16, Value)> {
        let r = b.get_json(&self.gw.url(path), headers).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        match serde_json::from_str::<Echo>(&text) {
            Ok(e) if status == 200 && e.name == "crm" => Ok(e),
            _ => Err((status, serde_json::from_str(&text).unwrap_or(Value::Null))),
        }
    }

    pub fn qyapi_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.qyapi)
    }

    pub async fn control(&self, path: &str, body: Value) {
        let r = client()
            .post(format!("{}{path}", self.emu.base_url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    pub async fn calls(&self, api: &str) -> u64 {
        crate::common::emulator_calls(&self.emu.base_url(), api)
            .await
            .0
    }

    /// `POST {prefix}/external-contact`: status and body.
    pub async fn verify_contact(&self, b: &mut Browser, external_userid: &str) -> (u16, Value) {
        let r = b
            .post_json(
                &self.gw.url("/_gateway/external-contact"),
                &json!({ "external_userid": external_userid }),
            )
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// The claims of `X-Gateway-Assertion`, verified with the test's secret.
pub fn claims(jwt: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["wecom-gateway"]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .expect("the assertion verifies")
    .claims
}
