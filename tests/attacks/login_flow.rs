//! The OAuth round trip as an attacker or an unlucky visitor walks it: a member who declines,
//! WeChat's snapshot page visitor, a crafted `return_to` that pre-sets the identity the front
//! end reads, a login state replayed with made-up codes, and a flood of callbacks.

use emulator::Scenario;

use crate::common::browser::{Browser, HTML, WXWORK_UA};
use crate::world::{wecom_and_wechat, App, World, SIDEBAR_ROUTES};

const WECHAT_UA: &str = "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.40 NetType/WIFI";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_login_is_a_page_that_offers_to_try_again_not_a_502() {
    let w = wecom_and_wechat().start().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/#/x"))
        .await;
    // The provider came back without a code: the member declined consent.
    let url = url::Url::parse(&cb).unwrap();
    let state: String = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let declined = w
        .gw()
        .url(&format!("/_gateway/oauth/callback?state={state}"));
    let r = b.get(&declined).await;
    assert_eq!(r.status(), 403);
    // Another site cannot frame the gateway's pages.
    assert_eq!(r.headers()["x-frame-options"], "SAMEORIGIN");
    assert_eq!(
        r.headers()["content-security-policy"],
        "frame-ancestors 'self'"
    );
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page = r.text().await.unwrap();
    assert!(page.contains("Try again"), "{page}");
    assert!(
        page.contains("/_gateway/login?app=crm&amp;return_to=%2Fsidebar%2F%23%2Fx"),
        "{page}"
    );
    assert!(page.contains(&rid));
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_none());
    assert_eq!(w.calls("/cgi-bin/auth/getuserinfo").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wechat_snapshot_visitor_never_becomes_a_session() {
    let mut scenario = Scenario::default();
    let mut ghost = scenario.wechat_users[0].clone();
    ghost.openid = "oSnapshotVirtual".into();
    ghost.unionid = None;
    ghost.is_snapshotuser = true;
    scenario.wechat_users.push(ghost);
    let w = wecom_and_wechat().scenario(scenario).start().await;
    w.control(
        "/_emulator/current-user",
        serde_json::json!({"openid": "oSnapshotVirtual"}),
    )
    .await;
    let mut b = Browser::new(WECHAT_UA);
    let cb = w.to_callback(&mut b, &w.login_url("mp", "/mp/")).await;
    let r = b.get(&cb).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("full page") && page.contains("使用完整服务"),
        "{page}"
    );
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_none());
    assert_eq!(
        b.get_json(&w.gw().url("/_gateway/whoami"), &[])
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crafted_return_to_cannot_preset_the_identity_the_front_end_reads() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp").with("return_query = { openId = \"openid\" }"))
        .routes(SIDEBAR_ROUTES)
        .start()
        .await;
    for return_to in [
        "/mp/?openId=ATTACKER#/reg",
        "/mp/#/reg?openId=ATTACKER",
        "/mp/?OPENID=ATTACKER&x=1#/reg?openid=ATTACKER&y=2",
        "/mp/?open%49d=ATTACKER#/reg",
        // Where `[?&]openId=([^&;]+)` on `location.href` finds it.
        "/mp/?a=1?openId=ATTACKER",
        "/mp/#/reg?a=1?openId=ATTACKER",
        "/mp/#/reg&openId=ATTACKER",
        "/mp/#/reg#openId=ATTACKER",
        "/mp/?a=1;openId=ATTACKER",
    ] {
        let mut b = Browser::new(WECHAT_UA);
        let landed = w.login(&mut b, "mp", return_to).await;
        assert!(!landed.contains("ATTACKER"), "{return_to} -> {landed}");
        assert_eq!(
            landed.matches("openId=").count(),
            1,
            "{return_to} -> {landed}"
        );
        assert!(
            landed.contains("openId=oEmuOpenId001"),
            "{return_to} -> {landed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_state_cannot_be_replayed_with_made_up_codes() {
    let w = wecom_and_wechat().start().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let saved = b.jar.clone();
    let (before, _) = cb.split_once("?code=").unwrap();
    let state = cb.split("&state=").nth(1).unwrap().to_owned();
    // The attacker keeps their own login cookie and tries code after code with its state.
    let mut tries = Vec::new();
    for i in 0..5 {
        let mut replay = Browser::new(WXWORK_UA);
        replay.jar = saved.clone();
        let r = replay
            .get(&format!("{before}?code=made-up-{i}&state={state}"))
            .await;
        tries.push(r.status().as_u16());
    }
    assert_eq!(w.calls("/cgi-bin/auth/getuserinfo").await, 1, "{tries:?}");
    assert_eq!(&tries[1..], &[400, 400, 400, 400], "{tries:?}");
}

/// The state a started login sent the browser to the provider with.
async fn started_state(w: &World, b: &mut Browser) -> String {
    let r = b.get(&w.login_url("crm", "/")).await;
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1;
    state.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_callbacks_from_one_address_is_cut_off() {
    let w = wecom_and_wechat().start().await;
    let c = crate::common::client();
    // Callbacks that cost no provider call (no state of this browser's) are refused and never
    // counted: anyone could otherwise block every sign-in behind the same address (a load
    // balancer's) with them.
    for i in 0..320 {
        let r = c
            .get(
                w.gw()
                    .url(&format!("/_gateway/oauth/callback?code=c{i}&state=s{i}")),
            )
            .header("accept", HTML)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "bare callback {i}");
    }
    // Nor callbacks with a state of this browser's but no code (consent declined, a cut link):
    // they cost the provider nothing either.
    let mut declined = Browser::new(WXWORK_UA);
    for i in 0..320 {
        let state = started_state(&w, &mut declined).await;
        let url = w
            .gw()
            .url(&format!("/_gateway/oauth/callback?state={state}"));
        let status = declined.get(&url).await.status();
        assert_eq!(status, 403, "callback {i} without a code");
    }
    let mut member = Browser::new(WXWORK_UA);
    w.login(&mut member, "crm", "/sidebar/").await;
    assert!(member.cookie(&w.gw().url("/"), "wgw_session").is_some());
    // Callbacks each of which would cost one (a state of this browser's, a made-up code):
    // 300 a minute (refilled at 5 a second), the login above included; then cut off before
    // the provider is asked.
    let mut b = Browser::new(WXWORK_UA);
    let callback = async |b: &mut Browser, i: usize| {
        let state = started_state(&w, b).await;
        let url = w.gw().url(&format!(
            "/_gateway/oauth/callback?code=made-up-{i}&state={state}"
        ));
        b.get(&url).await.status().as_u16()
    };
    // (The callback that is cut off is the one checked: a second one could find a token
    // refilled on a slow machine.)
    let mut answered = 0;
    loop {
        let asked = w.calls("/cgi-bin/auth/getuserinfo").await;
        if callback(&mut b, answered).await == 429 {
            assert_eq!(
                w.calls("/cgi-bin/auth/getuserinfo").await,
                asked,
                "a cut-off callback asks the provider nothing"
            );
            break;
        }
        answered += 1;
        assert!(answered < 1000, "never cut off");
    }
    assert!(answered >= 299, "cut off after {answered}");
    // Starting a login is not limited.
    let r = c
        .get(w.gw().url("/_gateway/login?app=crm&return_to=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "starting a login is not limited");
}

/// Coming back to a sign-in step after signing in would start it again: inside the WeCom
/// client, where the sign-in is silent, an endless loop of provider calls. The sign-in page at
/// a path the browser spells differently (`/_gateway//signin`) and a login whose `return_to`
/// is one end at the site root instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_never_comes_back_to_a_sign_in_step() {
    let w = wecom_and_wechat().start().await;
    for return_to in [
        "/_gateway//signin?app=crm&return_to=/sidebar/",
        "/_gateway/./login?app=crm",
        "/_gateway/oauth/callback",
    ] {
        let mut b = Browser::new(WXWORK_UA);
        let end = w.login(&mut b, "crm", return_to).await;
        assert_eq!(end, w.gw().url("/#"), "{return_to}");
    }
    assert_eq!(w.calls("/cgi-bin/auth/getuserinfo").await, 3);
}

/// Login CSRF behind https: the login cookie is `__Host-` (site-wide, `Secure`), so a sibling
/// subdomain or another port of the host, which cannot plant a `__Host-` cookie, cannot make a
/// victim's browser finish the attacker's sign-in with a planted `wgw_login_<state>` (it signed
/// the victim in as the attacker, even with `__Host-wgw_session`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_a_planted_login_cookie_finishes_no_sign_in() {
    let w = wecom_and_wechat().https().start().await;
    let c = crate::common::client();
    let r = c
        .get(w.login_url("crm", "/sidebar/"))
        .header("user-agent", WXWORK_UA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-wgw_login_"), "{set}");
    for flag in ["Path=/;", "Secure", "HttpOnly"] {
        assert!(set.contains(flag), "{flag}: {set}");
    }
    let pair = set.split(';').next().unwrap().to_owned();
    let (name, value) = pair.split_once('=').unwrap();
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    // The provider sends the browser back to public_url (https): the test speaks plain HTTP.
    let r = c
        .get(&authorize)
        .header("user-agent", WXWORK_UA)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let back = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(back.scheme(), "https");
    let callback = w
        .gw()
        .url(&format!("{}?{}", back.path(), back.query().unwrap()));
    let planted = name.trim_start_matches("__Host-");
    let r = c
        .get(&callback)
        .header("cookie", format!("{planted}={value}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "a planted cookie without its __Host- prefix"
    );
    let r = c
        .get(&callback)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the browser that started it");
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("https://"));
}

/// Behind https every page carries the pending login cookies (site-wide `__Host-`), beside the
/// CRM's own in one `Cookie` line that nginx bounds at 8 KiB: a link opened a few times with a
/// long `return_to` must not push the site's pages into a 400. Pending logins take 1.5 KiB at
/// most there (4 KiB when they ride on `{prefix}/` requests only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_pending_logins_take_little_of_every_pages_cookie_line() {
    let w = wecom_and_wechat().https().start().await;
    let mut b = Browser::new(WXWORK_UA);
    let long = format!("/sidebar/#/{}", "x".repeat(400));
    for _ in 0..6 {
        assert_eq!(b.get(&w.login_url("crm", &long)).await.status(), 302);
    }
    let cookie = b.cookie_header(&w.gw().url("/sidebar/"));
    assert!(cookie.contains("__Host-wgw_login_"), "{cookie}");
    assert!(
        cookie.len() <= 1536 + 64,
        "{} bytes of cookies",
        cookie.len()
    );
}
