//! Issue 18 against the real binary and the emulator: access rules per route (SPEC section 17)
//! and a member switch on the device noticed by `reauth_after`.

#[path = "../common/mod.rs"]
mod common;
use common::world;

mod cluster;
mod rules;
mod switch;

use std::time::Duration;

use emulator::Scenario;
use wecom_gateway::config::model::{Secret, SessionSettings};
use wecom_gateway::login::session::{set_cookie, SessionEntry};

use common::browser::{Browser, WXWORK_UA};
use world::{corp_id, App, Builder, World, SESSION_SECRET};

/// The default scenario with a deeper tree and more members: 1 the root; 2 sales, 3 east
/// sales below it, 5 Shanghai below that (three deep under sales); 4 service. zhangsan in 3
/// and tagged 1 (managers); wangwu in 5; lisi in 4, whose department carries tag 8; zhaoliu
/// in the root only.
pub fn scenario() -> Scenario {
    let extra = r#"
[[departments]]
id = 4
name = "客服部"
parentid = 1

[[departments]]
id = 5
name = "上海组"
parentid = 3

[[members]]
userid = "lisi"
name = "李四"
department = [4]

[[members]]
userid = "wangwu"
name = "王五"
department = [5]

[[members]]
userid = "zhaoliu"
name = "赵六"
department = [1]

[[tags]]
tagid = 8
tagname = "客服"
departments = [4]
"#;
    Scenario::from_toml(&format!("{}\n{extra}", Scenario::default_toml())).unwrap()
}

/// One route per list kind, a protected route without `allow`, the rest public.
pub const ROUTES: &str = r#"
[[routes]]
location = "/sales/"
upstream = "crm"
login = "crm"
allow = { departments = [2] }

[[routes]]
location = "/managers/"
upstream = "crm"
login = "crm"
allow = { tags = [1] }

[[routes]]
location = "/service/"
upstream = "crm"
login = "crm"
allow = { tags = [8] }

[[routes]]
location = "/boss/"
upstream = "crm"
login = "crm"
allow = { users = ["zhaoliu"] }

[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"
external_contact = "optional"

[[routes]]
location = "/"
upstream = "crm"
"#;

/// The access rules' world: app `crm` and `mp` in the corp of [`scenario`], behind `routes`.
pub fn access_world(session: &str, routes: &str) -> Builder {
    World::new()
        .scenario(scenario())
        .session(session)
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(routes)
}

pub async fn start(session: &str, routes: &str) -> World {
    access_world(session, routes).start().await
}

/// A browser holding a session of `userid` (or of a non-member's `openid`) sealed with the
/// gateway's key, issued `age` seconds ago: what the gateway's own login would have set.
pub fn session_of(w: &World, member: Option<&str>, openid: Option<&str>, age: u64) -> Browser {
    let settings = SessionSettings::new(
        &Secret::new(SESSION_SECRET.into()),
        "wgw_session",
        Duration::from_secs(8 * 3600),
    );
    let iat = wecom_gateway::login::now_secs() - age;
    let entry = SessionEntry {
        app: "crm".into(),
        sid: Some(format!("s{iat}{}", member.unwrap_or("x"))),
        corp_id: Some(corp_id().into()),
        agent_id: Some(1000002),
        userid: member.map(str::to_owned),
        openid: openid.map(str::to_owned),
        wechat_app_id: None,
        unionid: None,
        open_userid: None,
        installed: false,
        suite: None,
        iat,
        exp: iat + 8 * 3600,
        contact: None,
        assertion: Default::default(),
        revocation: Default::default(),
    };
    let line = set_cookie(&settings, vec![entry], false);
    let value = cookie::Cookie::parse(line).unwrap().value().to_owned();
    let mut b = Browser::new(WXWORK_UA);
    b.set_cookie(&w.gw().url("/"), "wgw_session", &value);
    b
}

pub fn member(w: &World, userid: &str) -> Browser {
    session_of(w, Some(userid), None, 0)
}
