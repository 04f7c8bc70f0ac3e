//! Sessions end before their `ttl` when they must: a cookie copied before logout does not open
//! after it, a member revoked in the store (section 18's `delete_user`) is signed out on every
//! instance, and a shorter `ttl` after a reload applies to cookies already issued.

use std::time::Duration;

use emulator::Scenario;
use serde_json::json;

use wecom_gateway::config::model::{Secret, SessionSettings};
use wecom_gateway::login::session::{set_cookie, SessionEntry};

use crate::common::browser::{Browser, HTML, WXWORK_UA};
use crate::common::redis_server::RedisServer;
use crate::world::{corp_id, wecom_and_wechat, App, World, SESSION_SECRET, SIDEBAR_ROUTES};

async fn whoami(w: &World, b: &mut Browser) -> u16 {
    b.get_json(&w.gw().url("/_gateway/whoami"), &[])
        .await
        .status()
        .as_u16()
}

async fn sidebar(w: &World, b: &mut Browser) -> u16 {
    b.get_json(&w.gw().url("/sidebar/"), &[])
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_copied_before_logout_no_longer_opens() {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member().await;
    let copy = b.jar.clone();
    assert_eq!(sidebar(&w, &mut b).await, 200);
    // The site's own form: a browser sends its origin with it.
    let origin = w.gw().url("/").trim_end_matches('/').to_owned();
    let r = b
        .send(
            reqwest::Method::POST,
            &w.gw().url("/_gateway/logout"),
            HTML,
            |r| r.header("origin", origin),
        )
        .await;
    assert_eq!(r.status(), 302);
    let mut thief = Browser::new(WXWORK_UA);
    thief.jar = copy;
    assert_eq!(whoami(&w, &mut thief).await, 401);
    assert_eq!(sidebar(&w, &mut thief).await, 401);
    // Another login of the same member is a new session: it opens.
    let mut again = w.member().await;
    assert_eq!(sidebar(&w, &mut again).await, 200);
}

/// Two session cookies of different people (a browser sends both when another host or port of
/// the domain planted one, with a longer `Path` that comes first): whose the browser is
/// cannot be told, so neither is used — the CRM is told of nobody — and both are removed
/// wherever on the path and the domain the other may sit; right after a sign-in, when the
/// other outlived the removals, the page says so instead of signing in again (a loop). Two
/// cookies of one person are that person's; a cookie holding no live session of the app (an
/// old one) is no rival. A logout ends every session the browser presents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peoples_session_cookies_open_nothing_and_a_logout_ends_both() {
    let scenario = r#"
[[members]]
userid = "lisi"
name = "李四"
department = [1]
"#;
    let scenario =
        Scenario::from_toml(&format!("{}\n{scenario}", Scenario::default_toml())).unwrap();
    let w = wecom_and_wechat().scenario(scenario).start().await;
    let value = |b: &Browser| {
        let host = b.jar.keys().next().unwrap().clone();
        b.jar[&host]["wgw_session"].clone()
    };
    let own = value(&w.member().await);
    let own_again = value(&w.member().await);
    w.control("/_emulator/current-user", json!({"userid": "lisi"}))
        .await;
    let planted = value(&w.member().await);
    let client = crate::common::client();
    let ask = |path: &str, cookie: String| {
        client
            .get(w.gw().url(path))
            .header("accept", "application/json")
            .header("cookie", cookie)
            .send()
    };
    for one_person in [
        format!("wgw_session={own}; wgw_session={own}"),
        format!("wgw_session={own}; wgw_session={own_again}"),
        // Not a session of this app's at all: no rival.
        format!("wgw_session=garbage; wgw_session={own}"),
    ] {
        let r = ask("/sidebar/x", one_person.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{one_person}");
    }
    for cookie in [
        format!("wgw_session={planted}; wgw_session={own}"),
        format!("wgw_session={own}; theme=dark; wgw_session={planted}"),
    ] {
        let r = ask("/sidebar/a/b/c/d/e", cookie).await.unwrap();
        // Both were issued moments ago: the page says so rather than signing in again.
        assert_eq!(r.status(), 409);
        let removed = removals(&r);
        for path in [
            "Path=/;",
            "Path=/sidebar;",
            "Path=/sidebar/;",
            "Path=/sidebar/a/b/c/d/;",
            "Path=/sidebar/a/b/c/d/e;",
        ] {
            assert!(
                removed
                    .iter()
                    .any(|c| c.contains(path) && !c.contains("Domain=")),
                "{path} not removed: {removed:?}"
            );
        }
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "session_conflict", "{body}");
    }
    // Behind nginx's `auth_request` (whose check's cookies nginx never passes on), the
    // sign-in page it shows reads the cookies and says the same, with the removals.
    let r = client
        .get(w.gw().url("/_gateway/signin"))
        .header("accept", "application/json")
        .header("x-original-uri", "/sidebar/a/b")
        .header(
            "cookie",
            format!("wgw_session={planted}; wgw_session={own}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let removed = removals(&r);
    assert!(
        removed.iter().any(|c| c.contains("Path=/sidebar/a/;")),
        "{removed:?}"
    );
    // Long after the newer sign-in, the removals come with a sign-in (which may end it).
    w.advance("2m").await;
    let r = ask(
        "/sidebar/x",
        format!("wgw_session={own}; wgw_session={planted}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!removals(&r).is_empty());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "login_required", "{body}");
    // A logout with both ends both.
    let r = client
        .post(w.gw().url("/_gateway/logout"))
        .header("accept", HTML)
        .header("origin", w.gw().url("/").trim_end_matches('/'))
        .header(
            "cookie",
            format!("wgw_session={planted}; wgw_session={own}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    for alone in [&planted, &own] {
        let r = ask("/sidebar/x", format!("wgw_session={alone}"))
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            401,
            "a session the logout was shown still opens"
        );
    }
}

/// The `Set-Cookie` values of an answer that remove the session cookie.
fn removals(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .filter(|c| c.starts_with("wgw_session=;") && c.contains("Max-Age=0"))
        .collect()
}

/// A session cookie of zhangsan sealed with the gateway's key, issued at `iat` under an
/// 8 h ttl.
fn issued_at(iat: u64) -> String {
    let settings = SessionSettings::new(
        &Secret::new(SESSION_SECRET.into()),
        "wgw_session",
        Duration::from_secs(8 * 3600),
    );
    let entry = SessionEntry {
        app: "crm".into(),
        sid: Some(format!("forged{iat}")),
        corp_id: Some(corp_id().into()),
        agent_id: Some(1000002),
        userid: Some("zhangsan".into()),
        openid: None,
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
    cookie::Cookie::parse(line).unwrap().value().to_owned()
}

fn issued_ago(age: u64) -> String {
    issued_at(wecom_gateway::login::now_secs() - age)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_ttl_after_a_reload_ends_sessions_already_issued() {
    let w = World::new()
        .session("ttl = \"8h\"")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(SIDEBAR_ROUTES)
        .start()
        .await;
    let mut b = Browser::new(WXWORK_UA);
    b.set_cookie(&w.gw().url("/"), "wgw_session", &issued_ago(2 * 3600));
    assert_eq!(
        whoami(&w, &mut b).await,
        200,
        "the forged cookie is faithful"
    );
    let text = std::fs::read_to_string(&w.gw().config_path).unwrap();
    std::fs::write(
        &w.gw().config_path,
        text.replace("ttl = \"8h\"", "ttl = \"1h\""),
    )
    .unwrap();
    w.gw().signal(1);
    w.gw().wait_log("reload: new config applied");
    assert_eq!(whoami(&w, &mut b).await, 401);
    assert_eq!(sidebar(&w, &mut b).await, 401);
    // A session younger than the new ttl still opens.
    b.set_cookie(&w.gw().url("/"), "wgw_session", &issued_ago(600));
    assert_eq!(whoami(&w, &mut b).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_revoked_in_the_store_is_signed_out_on_every_instance() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let store = format!(
        "[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"wgw:\"\n",
        redis.url()
    );
    let rest = format!("{}\n{store}", SIDEBAR_ROUTES);
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(&rest)
        .start()
        .await;
    let mut before = w.member().await;
    assert_eq!(sidebar(&w, &mut before).await, 200);
    // What section 18's change_contact/delete_user writes: sessions of this member issued up to
    // now no longer open.
    let now = wecom_gateway::login::now_secs();
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg(format!("wgw:revoked:member:{}:zhangsan", corp_id()))
        .arg(now.to_string())
        .arg("PX")
        .arg(9 * 3600 * 1000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(sidebar(&w, &mut before).await, 401);
    assert_eq!(whoami(&w, &mut before).await, 401);
    // A session issued after the revocation opens (sealed a few seconds ahead, within the
    // clock skew a session tolerates, rather than waiting for the clock).
    let mut after = Browser::new(WXWORK_UA);
    after.set_cookie(&w.gw().url("/"), "wgw_session", &issued_at(now + 3));
    assert_eq!(sidebar(&w, &mut after).await, 200);
    let mut forged_before = Browser::new(WXWORK_UA);
    forged_before.set_cookie(&w.gw().url("/"), "wgw_session", &issued_at(now - 60));
    assert_eq!(sidebar(&w, &mut forged_before).await, 401);
}
