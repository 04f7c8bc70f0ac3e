//! Members of two corps sign in to one suite app: each with their own corp in every header and
//! in the assertion, the same userid in both never one session, JS-SDK payloads signed with
//! each corp's own tickets (judged by the emulator), and `cancel_auth` ending that corp's
//! sessions only.

use serde_json::{json, Value};

use crate::common::browser::{location, login, login_url, Browser, WXWORK_UA};
use crate::common::callbacks::Backend;
use crate::common::client;
use crate::common::upstream::Echo;
use crate::saas::*;

fn verify_assertion(jwt: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["wecom-gateway"]);
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .expect("the assertion verifies")
    .claims
}

/// `userid` of `corp` signs in inside WeCom; the browser comes back with its session.
pub async fn signed_in(s: &Saas, corp: &str, userid: &str) -> Browser {
    s.control(
        "/_emulator/current-user",
        json!({"userid": userid, "corp_id": corp}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let back = login(&mut b, s.gw(), &s.emu.base_url(), "saas", "/app/").await;
    assert!(back.ends_with("/app/#"), "{back}");
    b
}

pub async fn page(s: &Saas, b: &mut Browser) -> (u16, Option<Echo>) {
    let r = b.get_json(&s.gw().url("/app/"), &[]).await;
    let status = r.status().as_u16();
    let echo = if status == 200 {
        Some(r.json::<Echo>().await.unwrap())
    } else {
        None
    };
    (status, echo)
}

async fn installed_twice() -> Saas {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    // zhangsan is a member of both: two people who share a userid.
    s.install(CORP_A).await;
    s.install(HOME_CORP).await;
    s
}

#[tokio::test]
async fn members_of_two_corps_get_their_own_corp_and_the_same_userid_is_two_people() {
    let s = installed_twice().await;
    let mut a = signed_in(&s, CORP_A, "zhangsan").await;
    let mut home = signed_in(&s, HOME_CORP, "zhangsan").await;
    let mut opens = Vec::new();
    for (b, corp) in [(&mut a, CORP_A), (&mut home, HOME_CORP)] {
        let (status, echo) = page(&s, b).await;
        assert_eq!(status, 200);
        let echo = echo.unwrap();
        assert_eq!(echo.header("x-wecom-corpid"), Some(corp));
        assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
        assert_eq!(
            echo.header("x-wecom-agentid"),
            Some(SUITE_AGENT.to_string().as_str()),
            "the agent id of the install"
        );
        let open = echo.header("x-wecom-openuserid").unwrap().to_owned();
        let claims = verify_assertion(echo.header("x-gateway-assertion").unwrap());
        assert_eq!(claims["corp_id"], corp);
        assert_eq!(claims["userid"], "zhangsan");
        opens.push(open);
    }
    assert_ne!(opens[0], opens[1], "two people, two open_userids");
    // A's cookie is never taken for the home corp's zhangsan: whoami names A.
    let who: Value = a
        .get_json(&s.gw().url("/_gateway/whoami"), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["corp_id"], CORP_A, "{who}");
}

#[tokio::test]
async fn a_member_of_a_corp_without_the_app_gets_a_clear_page_and_no_session() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.control(
        "/_emulator/current-user",
        json!({"userid": "qianqi", "corp_id": CORP_B}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = crate::common::browser::to_callback(
        &mut b,
        s.gw(),
        &s.emu.base_url(),
        &login_url(s.gw(), "saas", "/app/"),
    )
    .await;
    let r = b.get(&cb).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("not installed this app"), "{body}");
    assert_eq!(page(&s, &mut b).await.0, 401, "no session");
}

#[tokio::test]
async fn the_third_party_login_urls_name_the_suite() {
    let s = Saas::start(Backend::Local, 0).await;
    let mut inside = Browser::new(WXWORK_UA);
    let url = login_url(s.gw(), "saas", "/app/");
    let r = inside.get(&url).await;
    let to = location(&r, &url);
    assert!(
        to.contains(&format!("appid={SUITE}&")) && !to.contains("agentid"),
        "{to}"
    );
    let mut desktop = Browser::new("Mozilla/5.0 (X11) Chrome/120");
    let r = desktop.get(&url).await;
    let to = location(&r, &url);
    assert!(
        to.contains("login_type=ServiceApp") && to.contains(&format!("appid={SUITE}&")),
        "{to}"
    );
}

async fn verdict(s: &Saas, kind: &str, payload: &Value, href: &str) -> String {
    let mut req = payload.clone();
    req["kind"] = json!(kind);
    req["url"] = json!(href);
    let v: Value = client()
        .post(format!("{}/_emulator/jssdk/verify", s.emu.base_url()))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["errMsg"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn jssdk_payloads_are_signed_with_each_corps_own_tickets() {
    let s = installed_twice().await;
    let href = s.gw().url("/app/page?x=1");
    let mut payloads = Vec::new();
    for corp in [CORP_A, HOME_CORP] {
        let mut b = signed_in(&s, corp, "zhangsan").await;
        let url = s.gw().url(&format!(
            "/_gateway/jssdk/config?url={}",
            url::form_urlencoded::byte_serialize(href.as_bytes()).collect::<String>()
        ));
        let r = b.get_json(&url, &[]).await;
        assert_eq!(r.status(), 200);
        let cfg: Value = r.json().await.unwrap();
        assert_eq!(cfg["config"]["appId"], corp, "wx.config appId is the corp");
        assert_eq!(cfg["agentConfig"]["corpid"], corp);
        assert_eq!(cfg["agentConfig"]["agentid"], SUITE_AGENT.to_string());
        assert_eq!(
            verdict(&s, "config", &cfg["config"], &href).await,
            "config:ok"
        );
        assert_eq!(
            verdict(&s, "agentConfig", &cfg["agentConfig"], &href).await,
            "agentConfig:ok"
        );
        payloads.push(cfg);
    }
    // Corp A's signature presented as the home corp's is refused: another corp's ticket.
    let mut forged = payloads[0]["config"].clone();
    forged["appId"] = json!(HOME_CORP);
    assert_eq!(
        verdict(&s, "config", &forged, &href).await,
        "config:invalid signature"
    );
}

#[tokio::test]
async fn cancel_auth_ends_that_corps_sessions_only() {
    let s = installed_twice().await;
    let mut a = signed_in(&s, CORP_A, "zhangsan").await;
    let mut home = signed_in(&s, HOME_CORP, "zhangsan").await;
    assert_eq!(page(&s, &mut a).await.0, 200);
    s.control(
        "/_emulator/suites/cancel-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.settled().await;
    assert_eq!(page(&s, &mut a).await.0, 401, "corp A removed the app");
    assert_eq!(
        page(&s, &mut home).await.0,
        200,
        "the other corp's zhangsan stays"
    );
}

#[tokio::test]
async fn the_same_userid_in_two_corps_never_shares_a_contact_verification() {
    let s = installed_twice().await;
    // wmEmuCustomer001 follows the home corp's zhangsan, not corp A's.
    let body = json!({"external_userid": "wmEmuCustomer001"});
    let url = s.gw().url("/_gateway/external-contact");
    let mut home = signed_in(&s, HOME_CORP, "zhangsan").await;
    let r = home.post_json(&url, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mut a = signed_in(&s, CORP_A, "zhangsan").await;
    let r = a.post_json(&url, &body).await;
    assert_eq!(r.status(), 403, "corp A's zhangsan has no such customer");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "not_your_contact");
}

fn stale(kind: &str, payload: &Value) -> String {
    url::form_urlencoded::byte_serialize(
        format!(
            "{kind}.{}.{}.{}",
            payload["timestamp"],
            payload["nonceStr"].as_str().unwrap(),
            payload["signature"].as_str().unwrap()
        )
        .as_bytes(),
    )
    .collect()
}

#[tokio::test]
async fn a_corps_ticket_wecom_dropped_is_replaced_for_that_corp_only() {
    let s = installed_twice().await;
    let href = s.gw().url("/app/");
    let q = format!(
        "/_gateway/jssdk/config?url={}",
        url::form_urlencoded::byte_serialize(href.as_bytes()).collect::<String>()
    );
    let mut a = signed_in(&s, CORP_A, "zhangsan").await;
    let mut home = signed_in(&s, HOME_CORP, "zhangsan").await;
    let first: Value = a.get_json(&s.gw().url(&q), &[]).await.json().await.unwrap();
    let _: Value = home
        .get_json(&s.gw().url(&q), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        s.calls("/cgi-bin/get_jsapi_ticket").await,
        2,
        "one per corp"
    );
    // WeCom drops every token and ticket early; corp A's page notices and reports it.
    s.control("/_emulator/expire-tokens", Value::Null).await;
    assert_eq!(
        verdict(&s, "config", &first["config"], &href).await,
        "config:invalid signature"
    );
    let next: Value = a
        .get_json(
            &s.gw()
                .url(&format!("{q}&stale={}", stale("config", &first["config"]))),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        verdict(&s, "config", &next["config"], &href).await,
        "config:ok"
    );
    assert_eq!(next["config"]["appId"], CORP_A);
    // Corp A's ticket alone was fetched again (after its corp token was refreshed once).
    let (_, by_errcode) =
        crate::common::emulator_calls(&s.emu.base_url(), "/cgi-bin/get_jsapi_ticket").await;
    assert_eq!(by_errcode["0"], 3, "{by_errcode}");
}

/// A 代开发 app's sign-in link names the corp (its homepage in that corp carries it).
fn custom_login(s: &Saas, corp: Option<&str>) -> String {
    let corp = corp.map(|c| format!("&corp={c}")).unwrap_or_default();
    s.gw().url(&format!(
        "/_gateway/login?app=custom{corp}&return_to=%2Fcustom%2F"
    ))
}

#[tokio::test]
async fn a_custom_app_signs_in_with_the_self_built_flow_of_the_named_corp() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket_of(CUSTOM_SUITE).await;
    s.install_of(CUSTOM_SUITE, CORP_A).await;
    s.control(
        "/_emulator/current-user",
        json!({"userid": "zhaoliu", "corp_id": CORP_A}),
    )
    .await;
    // The corp's own id and the app's agent id there, as a self-built app's.
    let mut b = Browser::new(WXWORK_UA);
    let url = custom_login(&s, Some(CORP_A));
    let r = b.get(&url).await;
    assert_eq!(r.status(), 302);
    let to = location(&r, &url);
    assert!(
        to.contains(&format!("appid={CORP_A}&")) && to.contains("agentid=1000006"),
        "{to}"
    );
    let mut b = Browser::new(WXWORK_UA);
    let cb = crate::common::browser::to_callback(&mut b, s.gw(), &s.emu.base_url(), &url).await;
    let r = b.get(&cb).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    let r = b.get_json(&s.gw().url("/custom/"), &[]).await;
    assert_eq!(r.status(), 200);
    let echo: Echo = r.json().await.unwrap();
    assert_eq!(echo.header("x-wecom-corpid"), Some(CORP_A));
    assert_eq!(echo.header("x-wecom-userid"), Some("zhaoliu"));
    assert_eq!(echo.header("x-wecom-agentid"), Some("1000006"));
    // No corp named, or a corp without the app: a clear answer, no provider page.
    let mut other = Browser::new(WXWORK_UA);
    assert_eq!(other.get(&custom_login(&s, None)).await.status(), 400);
    assert_eq!(
        other.get(&custom_login(&s, Some(CORP_B))).await.status(),
        403
    );
    // The corp removes the app: the session ends.
    s.control(
        "/_emulator/suites/cancel-auth",
        json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.settled().await;
    assert_eq!(b.get_json(&s.gw().url("/custom/"), &[]).await.status(), 401);
}

/// Corp A installed, zhangsan of it signed in; the gateway's config, as lines.
async fn signed_in_before_a_reload() -> (Saas, Browser, Vec<String>) {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let mut a = signed_in(&s, CORP_A, "zhangsan").await;
    assert_eq!(page(&s, &mut a).await.0, 200);
    let text = std::fs::read_to_string(&s.gw().config_path).unwrap();
    let lines = text.lines().map(str::to_owned).collect();
    (s, a, lines)
}

/// The gateway reloads `lines` as its config.
fn reload(s: &Saas, lines: &[String]) {
    let gw = s.gw();
    std::fs::write(&gw.config_path, lines.join("\n") + "\n").unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
}

/// Where the `kind` line of the app naming `suite` is (then `suite_id`, `suite_secret`,
/// `provider_corp_id`).
fn suite_block(lines: &[String], suite: &str) -> usize {
    let at = lines
        .iter()
        .position(|l| *l == format!("suite_id = \"{suite}\""))
        .unwrap();
    assert!(lines[at - 1].starts_with("kind = ") && lines[at + 2].starts_with("provider_corp_id"));
    at - 1
}

/// A reload that points the app's name at another suite (whose installs are others) ends the
/// sessions of the suite it named before: they opened on as members of the new one, which
/// their corp never installed.
#[tokio::test]
async fn a_reload_pointing_the_app_at_another_suite_ends_its_sessions() {
    let (s, mut a, mut lines) = signed_in_before_a_reload().await;
    let (saas, custom) = (
        suite_block(&lines, SUITE),
        suite_block(&lines, CUSTOM_SUITE),
    );
    for k in 0..3 {
        lines.swap(saas + k, custom + k);
    }
    reload(&s, &lines);
    let (status, _) = page(&s, &mut a).await;
    assert_eq!(status, 401, "a session of the other suite");
}

/// A reload that makes the suite app a self-built one of the same corp and agent (a 代开发 app
/// moved to self-built) ends its sessions too: the provider's session (its userid may be the
/// provider's encrypted one, its `open_userid` the provider's) is no self-built app's.
#[tokio::test]
async fn a_reload_making_the_suite_app_self_built_ends_its_sessions() {
    let (s, mut a, mut lines) = signed_in_before_a_reload().await;
    let at = suite_block(&lines, SUITE);
    lines.splice(
        at..at + 4,
        [
            "kind = \"wecom\"".to_owned(),
            format!("corp_id = \"{CORP_A}\""),
            format!("agent_id = {SUITE_AGENT}"),
            "secret = \"self-built-secret\"".to_owned(),
        ],
    );
    reload(&s, &lines);
    let (status, _) = page(&s, &mut a).await;
    assert_eq!(status, 401, "a provider's session under a self-built app");
}

/// One WeCom client, two people of corp A: zhangsan signed in to the 代开发 app, then zhaoliu
/// signs in to the third-party app there. The 代开发 app's session has no `open_userid` to
/// match zhaoliu with: it ends, and its next page signs in again, never as zhangsan.
#[tokio::test]
async fn a_sign_in_to_one_provider_app_ends_another_apps_session_it_cannot_match() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.push_ticket_of(CUSTOM_SUITE).await;
    s.install(CORP_A).await;
    s.install_of(CUSTOM_SUITE, CORP_A).await;
    s.control(
        "/_emulator/current-user",
        json!({"userid": "zhangsan", "corp_id": CORP_A}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let url = custom_login(&s, Some(CORP_A));
    let cb = crate::common::browser::to_callback(&mut b, s.gw(), &s.emu.base_url(), &url).await;
    assert_eq!(b.get(&cb).await.status(), 302);
    let r = b.get_json(&s.gw().url("/custom/"), &[]).await;
    assert_eq!(r.status(), 200);
    let echo: Echo = r.json().await.unwrap();
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));

    s.control(
        "/_emulator/current-user",
        json!({"userid": "zhaoliu", "corp_id": CORP_A}),
    )
    .await;
    let back = login(&mut b, s.gw(), &s.emu.base_url(), "saas", "/app/").await;
    assert!(back.ends_with("/app/#"), "{back}");
    let (status, echo) = page(&s, &mut b).await;
    assert_eq!(status, 200);
    assert_eq!(echo.unwrap().header("x-wecom-userid"), Some("zhaoliu"));
    let r = b.get_json(&s.gw().url("/custom/"), &[]).await;
    assert_eq!(r.status(), 401, "zhangsan's session is gone");
}

/// `reauth_after` on a third-party app: inside the WeCom client, a page navigation with an
/// older session signs in again through the suite's own silent OAuth, so another person on the
/// device (here of another corp that installed the app) is noticed at their first page, and
/// the one before's session ends.
#[tokio::test]
async fn reauth_after_notices_another_person_on_a_third_party_apps_device() {
    let s = Saas::start_saas_keys(Backend::Local, "reauth_after = \"1m\"").await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    let mut b = signed_in(&s, CORP_A, "zhangsan").await;
    let (status, echo) = page(&s, &mut b).await;
    assert_eq!(status, 200);
    assert_eq!(echo.unwrap().header("x-wecom-corpid"), Some(CORP_A));
    let before = b
        .cookie(&s.gw().url("/"), "wgw_session")
        .expect("a session");

    s.control(
        "/_emulator/current-user",
        json!({"userid": "qianqi", "corp_id": CORP_B}),
    )
    .await;
    s.advance("2m").await;
    // The page: the sign-in page of a missing login, which signs in again without a word.
    let r = b.get(&s.gw().url("/app/")).await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains("/_gateway/login?app=saas&return_to="),
        "{text}"
    );
    let back = login(&mut b, s.gw(), &s.emu.base_url(), "saas", "/app/").await;
    assert!(back.ends_with("/app/#"), "{back}");
    let (status, echo) = page(&s, &mut b).await;
    assert_eq!(status, 200);
    let echo = echo.unwrap();
    assert_eq!(echo.header("x-wecom-corpid"), Some(CORP_B));
    assert_eq!(echo.header("x-wecom-userid"), Some("qianqi"));
    // The one before's session opens nothing any more.
    b.set_cookie(&s.gw().url("/"), "wgw_session", &before);
    assert_eq!(page(&s, &mut b).await.0, 401);
}
