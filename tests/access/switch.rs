//! `reauth_after` as a WeCom WebView sees it: member A's session, then someone else (B) signs
//! in on the device; A's page navigations after `reauth_after` sign in again silently and
//! become B's, without A's customer. A script's call (XHR/fetch) is never redirected: it keeps
//! answering as A until the page itself is loaded again.

use serde_json::json;

use crate::common::browser::{Browser, HTML};
use crate::world::{customer, App, World};
use crate::{scenario, ROUTES};

async fn start() -> World {
    World::new()
        .scenario(scenario())
        .session("")
        .app(App::wecom("crm").contact().with("reauth_after = \"15m\""))
        .app(App::mp("mp"))
        .routes(ROUTES)
        .start()
        .await
}

/// (userid, external userid) the CRM receives for a script's call.
async fn seen_by_crm(w: &World, b: &mut Browser, path: &str) -> (String, Option<String>) {
    let e = w
        .upstream_sees(b, path, &[])
        .await
        .expect("reaches the CRM");
    (
        e.header("x-wecom-userid").unwrap_or_default().to_owned(),
        e.header("x-wecom-external-userid").map(str::to_owned),
    )
}

/// A page navigation: the interstitial that signs in again (its login URL), or the CRM's page.
async fn navigate(w: &World, b: &mut Browser, path: &str) -> Result<String, String> {
    let r = b
        .request(reqwest::Method::GET, &w.gw().url(path), HTML)
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    if page.contains("location.replace(") {
        Err(page)
    } else {
        Ok(page)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_member_on_the_device_is_noticed_at_the_next_page_after_reauth_after() {
    let w = start().await;
    let mut b = w.member().await;
    assert_eq!(w.verify_contact(&mut b, customer()).await.0, 200);
    let a = ("zhangsan".to_owned(), Some(customer().to_owned()));
    assert_eq!(seen_by_crm(&w, &mut b, "/sidebar/api").await, a);

    // A request of zhangsan's page still under way while the switch happens carries this
    // cookie, and its answer's Set-Cookie would put it back.
    let gw_url = w.gw().url("/");
    let zhangsans = b.cookie(&gw_url, "wgw_session").expect("a session cookie");

    // zhangsan signs out of WeCom on this device; lisi signs in.
    w.control("/_emulator/current-user", json!({"userid": "lisi"}))
        .await;
    // Younger than reauth_after: nothing happens yet.
    w.gw().advance("14m").await;
    assert!(navigate(&w, &mut b, "/sidebar/").await.is_ok());

    w.gw().advance("2m").await;
    // A script's call is never redirected: still zhangsan until the page reloads.
    assert_eq!(seen_by_crm(&w, &mut b, "/sidebar/api").await, a);
    // A navigation gets the page that signs in again, keeping the #fragment (its script
    // appends location.hash to this return_to).
    let page = navigate(&w, &mut b, "/sidebar/page?x=1").await.unwrap_err();
    assert!(
        page.contains("/_gateway/login?app=crm&return_to="),
        "{page}"
    );
    let back = w
        .login(&mut b, "crm", "/sidebar/page?x=1#/customer/7")
        .await;
    assert!(back.ends_with("/sidebar/page?x=1#/customer/7"), "{back}");
    // Now lisi's session, without zhangsan's customer.
    assert_eq!(
        seen_by_crm(&w, &mut b, "/sidebar/api").await,
        ("lisi".to_owned(), None)
    );
    // And no loop: the next page is the CRM's.
    assert!(navigate(&w, &mut b, "/sidebar/page").await.is_ok());
    // zhangsan's session ended with the switch: brought back by a late answer, it opens nothing.
    b.set_cookie(&gw_url, "wgw_session", &zhangsans);
    let r = b.get_json(&w.gw().url("/sidebar/api"), &[]).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_member_signing_in_again_keeps_the_session_and_its_customer() {
    let w = start().await;
    let mut b = w.member().await;
    assert_eq!(w.verify_contact(&mut b, customer()).await.0, 200);
    let gw_url = w.gw().url("/");
    let before = b.cookie(&gw_url, "wgw_session").expect("a session cookie");
    w.gw().advance("16m").await;
    assert!(navigate(&w, &mut b, "/sidebar/").await.is_err());
    w.login(&mut b, "crm", "/sidebar/").await;
    let seen = seen_by_crm(&w, &mut b, "/sidebar/api").await;
    assert_eq!(seen, ("zhangsan".to_owned(), Some(customer().to_owned())));
    assert!(navigate(&w, &mut b, "/sidebar/").await.is_ok());
    // The session it replaced ended (a copy carried by a late answer opens nothing, so a
    // switch after it cannot bring it back).
    let now = b.cookie(&gw_url, "wgw_session").unwrap();
    b.set_cookie(&gw_url, "wgw_session", &before);
    assert_eq!(
        b.get_json(&w.gw().url("/sidebar/api"), &[]).await.status(),
        401
    );
    b.set_cookie(&gw_url, "wgw_session", &now);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_wecom_an_old_session_is_left_alone() {
    let w = start().await;
    // A QR session in a desktop browser.
    let mut b = Browser::new("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0");
    w.login(&mut b, "crm", "/sidebar/").await;
    w.gw().advance("16m").await;
    assert!(navigate(&w, &mut b, "/sidebar/").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_login_that_fails_ends_on_the_error_page_not_in_a_loop() {
    let w = start().await;
    let mut b = w.member().await;
    w.gw().advance("16m").await;
    assert!(navigate(&w, &mut b, "/sidebar/").await.is_err());
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/auth/getuserinfo", "errcode": 60020, "count": 5}),
    )
    .await;
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let r = b.request(reqwest::Method::GET, &cb, HTML).await;
    assert_eq!(r.status(), 502, "the login error page of SPEC section 8");
    assert!(r.headers().get("location").is_none());
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Try again") && !page.contains("location.replace("),
        "{page}"
    );
}

/// The switch one app notices ends the corp's other apps' sessions naming the member who was
/// here: the other app signs in again (as whoever WeCom names now) instead of going on as
/// the previous member until its own `reauth_after` or `ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_one_app_notices_ends_the_corps_other_apps_sessions_of_the_previous_member() {
    let routes = format!(
        "{ROUTES}\n[[routes]]\nlocation = \"/crm2/\"\nupstream = \"crm\"\nlogin = \"crm2\"\n"
    );
    let w = World::new()
        .scenario(scenario())
        .session("")
        .app(App::wecom("crm").contact().with("reauth_after = \"15m\""))
        .app(App::wecom("crm2"))
        .app(App::mp("mp"))
        .routes(&routes)
        .start()
        .await;
    let mut b = w.member().await;
    w.login(&mut b, "crm2", "/crm2/").await;
    assert_eq!(seen_by_crm(&w, &mut b, "/crm2/api").await.0, "zhangsan");

    w.control("/_emulator/current-user", json!({"userid": "lisi"}))
        .await;
    w.gw().advance("16m").await;
    assert!(navigate(&w, &mut b, "/sidebar/page").await.is_err());
    w.login(&mut b, "crm", "/sidebar/page").await;
    assert_eq!(seen_by_crm(&w, &mut b, "/sidebar/api").await.0, "lisi");

    // crm2's session named zhangsan: gone, so crm2 asks for a sign-in, which names lisi.
    let r = b.get_json(&w.gw().url("/crm2/api"), &[]).await;
    assert_eq!(r.status(), 401);
    w.login(&mut b, "crm2", "/crm2/").await;
    assert_eq!(seen_by_crm(&w, &mut b, "/crm2/api").await.0, "lisi");
    // And lisi signing in to crm2 leaves lisi's crm session alone.
    assert_eq!(seen_by_crm(&w, &mut b, "/sidebar/api").await.0, "lisi");

    // In a desktop browser each QR sign-in is a choice of who signs in: another member's
    // sign-in to crm2 leaves zhangsan's crm session as it is.
    let mut desk = Browser::new("Mozilla/5.0 (Windows NT 10.0) Chrome/120.0");
    w.login(&mut desk, "crm", "/sidebar/").await;
    assert_eq!(
        seen_by_crm(&w, &mut desk, "/sidebar/api").await.0,
        "zhangsan"
    );
    // lisi scans the QR code for crm2.
    let start = desk.get(&w.login_url("crm2", "/crm2/")).await;
    assert_eq!(start.status(), 302);
    let qr = start.headers()["location"].to_str().unwrap().to_owned();
    let page = desk.get(&qr).await.text().await.unwrap();
    let at = page.find("userid=lisi").expect("lisi's button");
    let href_at = page[..at].rfind("href=\"").unwrap() + 6;
    let href = page[href_at..at + page[at..].find('"').unwrap()].replace("&amp;", "&");
    let chosen = desk.get(&format!("{}{href}", w.emu.base_url())).await;
    assert_eq!(chosen.status(), 302);
    let cb = chosen.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(desk.get(&cb).await.status(), 302);
    assert_eq!(seen_by_crm(&w, &mut desk, "/crm2/api").await.0, "lisi");
    assert_eq!(
        seen_by_crm(&w, &mut desk, "/sidebar/api").await.0,
        "zhangsan"
    );
}
