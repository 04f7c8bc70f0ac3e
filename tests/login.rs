//! Login flows end to end (SPEC sections 5.6, 6, 7, 8): the real gateway binary, the emulator
//! in-process as WeCom and WeChat, an echo upstream as the CRM. Every redirect is followed by
//! hand with a cookie jar kept here, as a browser would.

mod common;

use common::browser::{location, Browser, HTML, WXWORK_UA};
use common::upstream::Echo;
use common::world::{ids, App, World, ASSERTION_SECRET, SESSION_SECRET};
use common::{parse_status, raw_request};
use serde_json::{json, Value};

const WECHAT_UA: &str = "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.40 NetType/WIFI";
const DESKTOP_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0";

const ROUTES: &str = r#"
[[routes]]
location = "/sidebar/"
upstream = "crm"
login = "crm"

[[routes]]
location = "/mp/"
upstream = "crm"
login = "mp"

[[routes]]
location = "/"
upstream = "crm"
"#;

/// App `crm` (WeCom) and `mp` (an Official Account that hands the CRM the openid as
/// `openId`), each asking for `scope`.
async fn world_with(crm_scope: &str, mp_scope: &str, extra_session: &str) -> World {
    World::new()
        .session(extra_session)
        .app(App::wecom("crm").with(&format!("scope = \"{crm_scope}\"")))
        .app(App::mp("mp").with(&format!(
            "scope = \"{mp_scope}\"\nreturn_query = {{ openId = \"openid\" }}"
        )))
        .routes(ROUTES)
        .start()
        .await
}

async fn world() -> World {
    world_with("snsapi_base", "snsapi_base", "").await
}

fn verify_assertion(jwt: &str) -> Value {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["wecom-gateway"]);
    jsonwebtoken::decode::<Value>(
        jwt,
        &jsonwebtoken::DecodingKey::from_secret(ASSERTION_SECRET.as_bytes()),
        &v,
    )
    .expect("the assertion verifies with assertion_secret")
    .claims
}

fn has_login_page(body: &str) -> bool {
    body.contains("/_gateway/login?app=")
}

// ---------------------------------------------------------------- full flows

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_in_app_login_keeps_the_hash_route_and_sends_verified_headers() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    // The navigation gets the interstitial; its script would add the fragment.
    let resp = b.get(&w.gw().url("/sidebar/?from=chat")).await;
    assert_eq!(resp.status(), 200);
    assert!(has_login_page(&resp.text().await.unwrap()));

    let final_loc = w
        .login(&mut b, "crm", "/sidebar/?from=chat#/customer/42?tab=1")
        .await;
    assert_eq!(
        final_loc,
        w.gw().url("/sidebar/?from=chat#/customer/42?tab=1")
    );
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_some());

    let echo = w.echo(&mut b, "/sidebar/?from=chat").await;
    assert_eq!(echo.header("x-wecom-corpid"), Some(ids().corp_id.as_str()));
    assert_eq!(
        echo.header("x-wecom-agentid"),
        Some(ids().agent_id.to_string().as_str())
    );
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(echo.header("x-wecom-openid"), None);
    assert!(
        echo.header("cookie").is_none_or(|c| !c.contains("wgw_")),
        "gateway cookies stay home"
    );
    let claims = verify_assertion(echo.header("x-gateway-assertion").unwrap());
    assert_eq!(claims["sub"], "zhangsan");
    assert_eq!(claims["userid"], "zhangsan");
    assert_eq!(claims["corp_id"], ids().corp_id);
    assert_eq!(claims["agent_id"], ids().agent_id);
    assert_eq!(claims["rid"], echo.header("x-request-id").unwrap());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        60
    );

    let who: Value = b
        .get(&w.gw().url("/_gateway/whoami"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["userid"], "zhangsan");
    assert_eq!(who["app"], "crm");
    // An app the file does not have: the page's typo, not a sign-in with another app.
    let r = b.get(&w.gw().url("/_gateway/whoami?app=nope")).await;
    assert_eq!(r.status(), 400);
    // The gateway's own endpoints that read the session name its member in their log line
    // (the two lines may be written in either order: each after its answer).
    w.gw()
        .wait_log("path=/_gateway/whoami route=\"gateway\" status=200");
    let log = w.gw().log();
    let line = log
        .lines()
        .find(|l| l.contains("path=/_gateway/whoami route=\"gateway\" status=200"))
        .unwrap();
    assert!(line.contains("userid=\"zhangsan\""), "{line}");

    let metrics = w.gw().metrics().await;
    assert!(
        metrics.contains("wgw_logins_total{app=\"crm\",result=\"ok\"} 1"),
        "{metrics}"
    );
}

/// With no app named, a sign-in starts at the first WeCom app the file writes, not the first by
/// name (another corp's `acrm` would take the visitors of the first one's corp).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_sign_in_is_the_first_wecom_app_the_file_writes() {
    let w = World::new()
        .session("")
        .app(App::mp("mp"))
        .app(App::wecom("zcrm"))
        .app(App::wecom("acrm").agent_id(1000077))
        .routes(common::world::PUBLIC_ROUTE)
        .start()
        .await;
    let r = common::client()
        .get(w.gw().url("/_gateway/whoami"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    let link = v["login_url"].as_str().unwrap();
    assert!(link.starts_with("/_gateway/login?app=zcrm&"), "{link}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_qr_login_from_a_desktop_browser() {
    let w = world().await;
    let mut b = Browser::new(DESKTOP_UA);
    let resp = b
        .get(&w.login_url("crm", "/sidebar/#/customer/42?tab=1"))
        .await;
    let provider = location(&resp, &w.gw().url("/"));
    assert!(
        provider.contains(&format!(
            "/wwlogin/sso/login?login_type=CorpApp&appid={}&agentid={}&redirect_uri=",
            ids().corp_id,
            ids().agent_id
        )),
        "{provider}"
    );

    let final_loc = w.login(&mut b, "crm", "/sidebar/#/customer/42?tab=1").await;
    assert_eq!(final_loc, w.gw().url("/sidebar/#/customer/42?tab=1"));
    let echo = w.echo(&mut b, "/sidebar/").await;
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(
        verify_assertion(echo.header("x-gateway-assertion").unwrap())["sub"],
        "zhangsan"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_privateinfo_asks_for_the_detail_but_keeps_the_userid() {
    let w = world_with("snsapi_privateinfo", "snsapi_base", "").await;
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "crm", "/sidebar/").await;
    assert_eq!(w.calls("/cgi-bin/auth/getuserdetail").await, 1);
    let echo = w.echo(&mut b, "/sidebar/").await;
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_base_login_appends_the_openid_inside_the_hash_route() {
    let w = world().await;
    let mut b = Browser::new(WECHAT_UA);
    let final_loc = w.login(&mut b, "mp", "/mp/#/reg").await;
    assert_eq!(final_loc, w.gw().url("/mp/#/reg?openId=oEmuOpenId001"));
    let echo = w.echo(&mut b, "/mp/").await;
    assert_eq!(
        echo.header("x-wechat-appid"),
        Some(ids().mp_app_id.as_str())
    );
    assert_eq!(echo.header("x-wechat-openid"), Some("oEmuOpenId001"));
    assert_eq!(echo.header("x-wechat-unionid"), Some("oEmuUnion001"));
    assert_eq!(echo.header("x-wecom-userid"), None);
    let claims = verify_assertion(echo.header("x-gateway-assertion").unwrap());
    assert_eq!(claims["sub"], "oEmuOpenId001");
    assert_eq!(claims["unionid"], "oEmuUnion001");
    assert_eq!(
        w.calls("/sns/userinfo").await,
        0,
        "snsapi_base never asks for the profile"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_userinfo_login_reads_the_unionid_from_the_profile() {
    let w = world_with("snsapi_base", "snsapi_userinfo", "").await;
    let mut b = Browser::new(WECHAT_UA);
    let final_loc = w.login(&mut b, "mp", "/mp/#/customer/42?tab=1").await;
    assert_eq!(
        final_loc,
        w.gw().url("/mp/#/customer/42?tab=1&openId=oEmuOpenId001")
    );
    assert_eq!(w.calls("/sns/userinfo").await, 1);
    let echo = w.echo(&mut b, "/mp/").await;
    assert_eq!(echo.header("x-wechat-openid"), Some("oEmuOpenId001"));
    assert_eq!(echo.header("x-wechat-unionid"), Some("oEmuUnion001"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_of_one_app_does_not_open_another_apps_routes() {
    let w = world().await;
    let mut b = Browser::new(WECHAT_UA);
    w.login(&mut b, "mp", "/mp/").await;
    let resp = b.get(&w.gw().url("/sidebar/")).await;
    assert_eq!(resp.status(), 200);
    assert!(
        has_login_page(&resp.text().await.unwrap()),
        "the crm route needs a crm session"
    );
    // Logging into crm keeps the mp session.
    let mut b2 = Browser::new(WXWORK_UA);
    b2.jar = b.jar.clone();
    w.login(&mut b2, "crm", "/sidebar/").await;
    assert_eq!(
        w.echo(&mut b2, "/sidebar/").await.header("x-wecom-userid"),
        Some("zhangsan")
    );
    assert_eq!(
        w.echo(&mut b2, "/mp/").await.header("x-wechat-openid"),
        Some("oEmuOpenId001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tabs_log_in_at_once() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb1 = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/#/a"))
        .await;
    let cb2 = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/#/b"))
        .await;
    let r2 = b.get(&cb2).await;
    assert_eq!(location(&r2, &cb2), w.gw().url("/sidebar/#/b"));
    let r1 = b.get(&cb1).await;
    assert_eq!(r1.status(), 302);
    assert_eq!(location(&r1, &cb1), w.gw().url("/sidebar/#/a"));
}

/// A long `return_to` (a hash route naming a customer, a filter) is kept in the store under
/// the login's state, not in its cookie: five tabs signing in at once with such routes each
/// land where they were. (Carried in the cookies, they passed the bytes pending logins may
/// take, and the oldest tabs got the "link no longer valid" page, their route lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_tabs_with_long_hash_routes_sign_in_at_once() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let routes: Vec<String> = (0..5)
        .map(|i| {
            format!(
                "/sidebar/#/customer/{i}/detail?{}",
                "tab=orders&".repeat(80)
            )
        })
        .collect();
    let mut callbacks = Vec::new();
    for r in &routes {
        callbacks.push(w.to_callback(&mut b, &w.login_url("crm", r)).await);
    }
    let cookie = b.cookie_header(&w.gw().url("/_gateway/login"));
    assert!(cookie.len() < 2048, "{} bytes of cookies", cookie.len());
    for (r, cb) in routes.iter().zip(&callbacks) {
        let resp = b.get(cb).await;
        assert_eq!(resp.status(), 302, "{r}");
        assert_eq!(location(&resp, cb), w.gw().url(r));
    }
}

/// `/login` needs no session: a client looping it with long `return_to`s must not fill the
/// store (each kept one is a write that stays ten minutes). Past 30 a minute from one
/// address, the login cookie carries the `return_to` itself again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_looping_login_with_long_routes_stops_being_kept_in_the_store() {
    let w = world().await;
    let c = common::client();
    let long = format!("/sidebar/#/{}", "x".repeat(1500));
    let mut sizes = Vec::new();
    for _ in 0..31 {
        let r = c
            .get(w.login_url("crm", &long))
            .header("user-agent", WXWORK_UA)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        sizes.push(r.headers()["set-cookie"].len());
    }
    assert!(sizes[..30].iter().all(|&n| n < 600), "{sizes:?}");
    assert!(sizes[30] > 1500, "{sizes:?}");
}

/// Pending logins are bounded in bytes as well as in number: a crafted link with a 2 KB
/// `return_to`, opened a few times, would otherwise fill the `Cookie` line every sign-in step
/// carries past nginx's 8 KiB bound (`large_client_header_buffers`), and the browser could
/// not sign in until the cookies expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_pending_logins_never_make_the_sign_in_a_400() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let long = format!("/sidebar/#/{}", "x".repeat(2000));
    for _ in 0..6 {
        let r = b.get(&w.login_url("crm", &long)).await;
        assert_eq!(r.status(), 302);
        let cookie = b.cookie_header(&w.gw().url("/_gateway/login"));
        assert!(
            cookie.len() <= 4096 + 64,
            "{} bytes of cookies",
            cookie.len()
        );
    }
    let end = w.login(&mut b, "crm", "/sidebar/#/ok").await;
    assert_eq!(end, w.gw().url("/sidebar/#/ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "crm", "/sidebar/").await;
    // The site's own form: a browser sends its origin with it.
    let origin = w.gw().url("/").trim_end_matches('/').to_owned();
    let resp = b
        .send(
            reqwest::Method::POST,
            &w.gw().url("/_gateway/logout?return_to=%2Fbye"),
            HTML,
            |r| r.header("origin", origin),
        )
        .await;
    assert_eq!(resp.status(), 302);
    assert_eq!(location(&resp, &w.gw().url("/")), w.gw().url("/bye"));
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 401);
}

/// A sign-out link followed from another site (the browser says `Sec-Fetch-Site: cross-site`)
/// signs nobody out by itself: a page whose button does. The site's own GET still signs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_link_from_another_site_asks_first() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "crm", "/sidebar/").await;
    let url = w.gw().url("/_gateway/logout?return_to=%2Fbye");
    let r = b
        .send(reqwest::Method::GET, &url, HTML, |r| {
            r.header("sec-fetch-site", "cross-site")
        })
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"/_gateway/logout?return_to=%2Fbye\">"),
        "{page}"
    );
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 200);
    // The form posts to the path the gateway read, never to another host: `//x/../` as
    // written would make its action scheme-relative.
    for asked in [
        "//_gateway/logout?return_to=%2F",
        "//evil.example/../_gateway/logout?return_to=%2F",
    ] {
        let r = b
            .send(reqwest::Method::GET, &w.gw().url(asked), HTML, |r| {
                r.header("sec-fetch-site", "cross-site")
            })
            .await;
        let page = r.text().await.unwrap();
        assert!(
            page.contains("<form method=\"post\" action=\"/_gateway/logout?return_to=%2F\">"),
            "{asked}: {page}"
        );
    }
    // A form another site posts is asked about too.
    let r = b
        .send(reqwest::Method::POST, &url, HTML, |r| {
            r.header("sec-fetch-site", "cross-site")
        })
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 200);
    // A sibling subdomain's pages are another site's; a browser that sends no Sec-Fetch-Site
    // (older Safari, some WebViews) is read by its Origin or Referer.
    // A page navigation that tells nothing (`rel=noreferrer` on a plain http:// site) too.
    let elsewhere: [(reqwest::Method, &str, &str); 5] = [
        (reqwest::Method::GET, "sec-fetch-site", "same-site"),
        (reqwest::Method::POST, "origin", "http://evil.example"),
        (reqwest::Method::POST, "origin", "null"),
        (reqwest::Method::GET, "referer", "http://evil.example/x"),
        (reqwest::Method::GET, "x-nothing", "said"),
    ];
    for (method, name, value) in elsewhere {
        let r = b.send(method, &url, HTML, |r| r.header(name, value)).await;
        assert_eq!(r.status(), 200, "{name}: {value}");
        assert_eq!(
            b.get(&w.gw().url("/_gateway/whoami")).await.status(),
            200,
            "{name}: {value}"
        );
    }
    let own = w.gw().url("/");
    let own_origin = own.trim_end_matches('/');
    let r = b
        .send(reqwest::Method::POST, &url, HTML, |r| {
            r.header("origin", own_origin)
        })
        .await;
    assert_eq!(r.status(), 302, "the site's own form");
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 401);
    w.login(&mut b, "crm", "/sidebar/").await;
    let r = b
        .send(reqwest::Method::GET, &url, HTML, |r| {
            r.header("sec-fetch-site", "same-origin")
        })
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 401);
}

// ---------------------------------------------------------------- failures

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_code_restarts_the_login_once() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/auth/getuserinfo", "errcode": 40029, "count": 1}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/#/x"))
        .await;
    let resp = b.get(&cb).await;
    assert_eq!(resp.status(), 302);
    let again = location(&resp, &cb);
    assert!(
        again.starts_with(&w.emu.base_url()),
        "back to the provider: {again}"
    );
    let resp = b.get(&again).await;
    let cb2 = location(&resp, &again);
    let resp = b.get(&cb2).await;
    assert_eq!(location(&resp, &cb2), w.gw().url("/sidebar/#/x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_refused_code_shows_an_error_page_not_a_loop() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/auth/getuserinfo", "errcode": 40029, "count": 5}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let again = location(&b.get(&cb).await, &cb);
    let resp = b.get(&again).await;
    let cb2 = location(&resp, &again);
    let resp = b.get(&cb2).await;
    assert_eq!(resp.status(), 502);
    let rid = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let page = resp.text().await.unwrap();
    assert!(page.contains(&rid), "the page names the request id");
    assert!(
        page.contains("href=\"/_gateway/login?app=crm&amp;return_to=%2Fsidebar%2F\""),
        "{page}"
    );
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_shows_the_error_page() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/auth/getuserinfo", "errcode": 60020, "count": 1}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let resp = b.get(&cb).await;
    assert_eq!(resp.status(), 502);
    assert!(resp.text().await.unwrap().contains("Try again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_does_not_answer_is_a_502_page() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/auth/getuserinfo", "delay_ms": 8000, "count": 1}),
    )
    .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let started = std::time::Instant::now();
    let resp = b.get(&cb).await;
    assert_eq!(resp.status(), 502);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(7),
        "bounded by 5 s"
    );
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("did not answer in time"));
    let metrics = w.gw().metrics().await;
    assert!(
        metrics.contains("wgw_logins_total{app=\"crm\",result=\"timeout\"} 1"),
        "{metrics}"
    );
}

// ---------------------------------------------------------------- security

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_that_does_not_match_the_login_cookie_is_refused() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let (before, _) = cb.split_once("&state=").unwrap();
    let forged = format!("{before}&state=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let resp = b.get(&forged).await;
    assert_eq!(resp.status(), 400);
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_none());
    // A login cookie moved under another state's name does not open either.
    let jar = b
        .jar
        .get_mut(&Browser::authority(&w.gw().url("/")))
        .unwrap();
    let (name, value) = jar
        .iter()
        .find(|(n, _)| n.starts_with("wgw_login_"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    jar.remove(&name);
    jar.insert("wgw_login_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(), value);
    assert_eq!(b.get(&forged).await.status(), 400);
    assert!(b.cookie(&w.gw().url("/"), "wgw_session").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_without_the_login_cookie_is_refused() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    // Another browser (the attacker's link in the victim's browser) has no login cookie.
    let mut other = Browser::new(WXWORK_UA);
    let resp = other.get(&cb).await;
    assert_eq!(resp.status(), 400);
    assert!(other.cookie(&w.gw().url("/"), "wgw_session").is_none());
    assert_eq!(
        other.get(&w.gw().url("/_gateway/whoami")).await.status(),
        401
    );
    assert_eq!(
        w.calls("/cgi-bin/auth/getuserinfo").await,
        0,
        "the code was never exchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_used_twice_gives_no_second_session() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let saved = b.jar.clone();
    assert_eq!(b.get(&cb).await.status(), 302);
    // Replay: the same callback with the same login cookie, in a browser with no session.
    // The state was used: refused, nothing exchanged, no session.
    let mut replay = Browser::new(WXWORK_UA);
    replay.jar = saved;
    let resp = replay.get(&cb).await;
    assert_eq!(resp.status(), 400);
    assert!(resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap().starts_with("wgw_session=")));
    assert_eq!(
        replay.get(&w.gw().url("/_gateway/whoami")).await.status(),
        401
    );
    assert_eq!(w.calls("/cgi-bin/auth/getuserinfo").await, 1);
    // The same URL in the browser that logged in: its login cookie is gone.
    assert_eq!(b.get(&cb).await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_session_cookie_means_logging_in_again() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "crm", "/sidebar/").await;
    let gw = w.gw().url("/");
    let v = b.cookie(&gw, "wgw_session").unwrap();
    let mid = v.len() / 2;
    let flipped = if &v[mid..mid + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &v[..mid], &v[mid + 1..]);
    b.set_cookie(&gw, "wgw_session", &tampered);
    let resp = b.get(&w.gw().url("/sidebar/")).await;
    assert_eq!(resp.status(), 200);
    assert!(has_login_page(&resp.text().await.unwrap()));
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_cookie_means_logging_in_again() {
    use wecom_gateway::config::model::{Secret, SessionSettings};
    use wecom_gateway::login::session::{set_cookie, SessionEntry};
    let w = world().await;
    let settings = SessionSettings::new(
        &Secret::new(SESSION_SECRET.into()),
        "wgw_session",
        std::time::Duration::from_secs(8 * 3600),
    );
    let now = wecom_gateway::login::now_secs();
    let entry = |iat: u64, exp: u64| SessionEntry {
        app: "crm".into(),
        sid: None,
        corp_id: Some(ids().corp_id.clone()),
        agent_id: Some(ids().agent_id),
        userid: Some("zhangsan".into()),
        openid: None,
        wechat_app_id: None,
        unionid: None,
        open_userid: None,
        installed: false,
        suite: None,
        iat,
        exp,
        contact: None,
        assertion: Default::default(),
        revocation: Default::default(),
    };
    let value = |e: SessionEntry| {
        let line = set_cookie(&settings, vec![e], false);
        cookie::Cookie::parse(line).unwrap().value().to_owned()
    };
    let gw = w.gw().url("/");
    // A cookie sealed with the real key and still live opens: the forging is faithful.
    let mut b = Browser::new(WXWORK_UA);
    b.set_cookie(&gw, "wgw_session", &value(entry(now - 60, now + 3600)));
    assert_eq!(
        w.echo(&mut b, "/sidebar/").await.header("x-wecom-userid"),
        Some("zhangsan")
    );
    // Expired an hour ago: no session.
    b.set_cookie(
        &gw,
        "wgw_session",
        &value(entry(now - 9 * 3600, now - 3600)),
    );
    let resp = b.get(&w.gw().url("/sidebar/")).await;
    assert!(has_login_page(&resp.text().await.unwrap()));
    assert_eq!(b.get(&w.gw().url("/_gateway/whoami")).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sealed_with_another_key_is_no_session() {
    use wecom_gateway::config::model::{Secret, SessionSettings};
    use wecom_gateway::login::session::{set_cookie, SessionEntry};
    let w = world().await;
    let settings = SessionSettings::new(
        &Secret::new("another-secret-another-secret-0123456789".into()),
        "wgw_session",
        std::time::Duration::from_secs(3600),
    );
    let now = wecom_gateway::login::now_secs();
    let line = set_cookie(
        &settings,
        vec![SessionEntry {
            app: "crm".into(),
            sid: None,
            corp_id: Some(ids().corp_id.clone()),
            agent_id: Some(ids().agent_id),
            userid: Some("boss".into()),
            openid: None,
            wechat_app_id: None,
            unionid: None,
            open_userid: None,
            installed: false,
            suite: None,
            iat: now,
            exp: now + 3600,
            contact: None,
            assertion: Default::default(),
            revocation: Default::default(),
        }],
        false,
    );
    let mut b = Browser::new(WXWORK_UA);
    b.set_cookie(
        &w.gw().url("/"),
        "wgw_session",
        cookie::Cookie::parse(line).unwrap().value(),
    );
    let resp = b.get(&w.gw().url("/sidebar/")).await;
    assert!(has_login_page(&resp.text().await.unwrap()));
}

/// return_to payloads from oauth2-proxy's open-redirect history and beyond. Whatever the
/// payload, the browser lands on the gateway's own origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_redirect_payloads_all_land_on_the_gateways_origin() {
    let w = world().await;
    let gw_port = w.gw().port;
    let payloads: &[&str] = &[
        "//evil.com",
        "///evil.com",
        "////evil.com/x",
        "/\\evil.com",
        "\\\\evil.com",
        "/\\/evil.com",
        "/%5cevil.com",
        "/%5C%5Cevil.com",
        "/\t/evil.com",
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0d%0a/evil.com",
        "/%00/evil.com",
        "/%20/evil.com",
        "/%2509/evil.com",
        "/%2F/evil.com",
        "/%2f%2fevil.com",
        "/..//evil.com",
        " //evil.com",
        "\u{3000}//evil.com",
        "https://evil.com",
        "http://evil.com/",
        "https://evil.com/http://127.0.0.1/",
        "http://127.0.0.1.evil.com/",
        "http://127.0.0.1@evil.com/",
        "http://evil.com@127.0.0.1/",
        "http://127.0.0.1:1/",
        "https://127.0.0.1/",
        "http:evil.com",
        "http:/evil.com",
        "javascript:alert(document.domain)",
        "JavaScript://%0aalert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "evil.com",
        "http://evil.com?.127.0.0.1",
        "/\u{feff}/evil.com",
    ];
    assert!(payloads.len() >= 25);
    let own = format!("127.0.0.1:{gw_port}");
    for payload in payloads {
        let mut b = Browser::new(WXWORK_UA);
        let loc = w.login(&mut b, "crm", payload).await;
        let u = url::Url::parse(&loc).unwrap();
        assert_eq!(u.scheme(), "http", "{payload:?} -> {loc}");
        assert_eq!(
            format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()),
            own,
            "{payload:?} -> {loc}"
        );
        assert_eq!(u.username(), "", "{payload:?} -> {loc}");
        assert!(!u.path().starts_with("//"), "{payload:?} -> {loc}");
        assert!(
            !loc.contains('\\') && !loc.contains("evil.com"),
            "{payload:?} -> {loc}"
        );
    }
}

fn raw_echo(resp: &[u8]) -> Echo {
    let text = String::from_utf8_lossy(resp);
    let start = text.find('{').expect("a JSON body");
    let end = text.rfind('}').unwrap();
    serde_json::from_str(&text[start..=end]).unwrap()
}

const SPOOFS: &str = "X-WeCom-UserId: boss\r\nx-wecom-userid: boss\r\nX-WECOM-USERID: boss\r\nx_wecom_userid: boss\r\n\
X_WeCom_UserId: boss\r\nX-WeCom_UserId: boss\r\nX-WeCom-CorpId: evilcorp\r\nX-WeCom-AgentId: 1\r\nX-WeCom-OpenId: o1\r\n\
X-WeCom-External-UserId: wm1\r\nx_wecom_external_unionid: u1\r\nX-WeChat-AppId: wx1\r\nX-WeChat-OpenId: o1\r\n\
X_WECHAT_OPENID: o1\r\nx-wechat_unionid: u2\r\nX-Gateway-Assertion: forged\r\nx_gateway_assertion: forged\r\n\
X-GATEWAY-ASSERTION: forged\r\nX-Gateway-App: crm\r\n";

fn assert_no_spoof(echo: &Echo, logged_in: bool) {
    for (name, value) in &echo.headers {
        let folded = name.replace('_', "-");
        let reserved = folded.starts_with("x-wecom-")
            || folded.starts_with("x-wechat-")
            || folded.starts_with("x-gateway-");
        if !reserved {
            continue;
        }
        assert!(logged_in, "{name} reached the upstream without a login");
        assert!(
            !name.contains('_'),
            "{name} spelled by the client reached the upstream"
        );
        for bad in ["boss", "evilcorp", "forged", "wm1", "u1", "u2", "o1", "wx1"] {
            assert!(!value.split('\n').any(|v| v == bad), "{name}: {value}");
        }
    }
    if logged_in {
        assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
        assert_eq!(echo.header("x-wecom-corpid"), Some(ids().corp_id.as_str()));
        assert!(verify_assertion(echo.header("x-gateway-assertion").unwrap())["sub"] == "zhangsan");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream_when_logged_in() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "crm", "/sidebar/").await;
    let cookie = b.cookie_header(&w.gw().url("/"));
    let raw = format!("GET /sidebar/x HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n{SPOOFS}Connection: close\r\n\r\n");
    let port = w.gw().port;
    let resp = tokio::task::spawn_blocking(move || raw_request(port, raw.as_bytes()).unwrap())
        .await
        .unwrap();
    assert_eq!(parse_status(&resp), Some(200));
    assert_no_spoof(&raw_echo(&resp), true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream_when_not_logged_in() {
    let w = world().await;
    let raw =
        format!("GET /public HTTP/1.1\r\nHost: 127.0.0.1\r\n{SPOOFS}Connection: close\r\n\r\n");
    let port = w.gw().port;
    let resp = tokio::task::spawn_blocking(move || raw_request(port, raw.as_bytes()).unwrap())
        .await
        .unwrap();
    assert_eq!(parse_status(&resp), Some(200));
    assert_no_spoof(&raw_echo(&resp), false);
    // And on a login route the spoof does not count as a login.
    let raw = format!("GET /sidebar/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{SPOOFS}Connection: close\r\n\r\n");
    let resp = tokio::task::spawn_blocking(move || raw_request(port, raw.as_bytes()).unwrap())
        .await
        .unwrap();
    assert_eq!(parse_status(&resp), Some(401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xhr_without_a_session_gets_401_json_with_a_login_url_that_works() {
    let w = world().await;
    let mut b = Browser::new(WXWORK_UA);
    let resp =
        b.c.post(w.gw().url("/sidebar/api/customers"))
            .header("accept", "application/json")
            .header("referer", w.gw().url("/sidebar/?x=1"))
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "login_required");
    let login_url = w.gw().url(body["login_url"].as_str().unwrap());
    let cb = w.to_callback(&mut b, &login_url).await;
    let resp = b.get(&cb).await;
    assert_eq!(location(&resp, &cb), w.gw().url("/sidebar/?x=1#"));
    let resp = b
        .request(
            reqwest::Method::GET,
            &w.gw().url("/sidebar/api/customers"),
            "application/json",
        )
        .await;
    assert_eq!(resp.status(), 200);
    let echo: Echo = resp.json().await.unwrap();
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
}

/// The access line names an upstream only when one was asked: the gateway's own 401 on a
/// login route is not the CRM's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_names_the_upstream_only_when_it_was_asked() {
    let w = world().await;
    let r = w
        .http
        .get(w.gw().url("/sidebar/unseen"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = w.http.get(w.gw().url("/public-seen")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    w.gw().wait_log("/public-seen");
    let log = w.gw().log();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {log}"))
            .to_owned()
    };
    assert!(line("/sidebar/unseen").contains("upstream=\"-\""), "{log}");
    assert!(line("/public-seen").contains("upstream=\"crm\""), "{log}");
}

/// WeCom's OAuth answer read as it is, not as it might be: an empty `userid` beside an `openid`
/// is a non-member, named by the openid (it became a session naming nobody); an `errcode` that
/// is no number, or a JSON body on an HTTP error, is no success (they became sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_oauth_answer_never_becomes_a_session_naming_someone_else_or_nobody() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // One answer of `auth/getuserinfo` per login, in this order.
    let answers: Arc<Vec<(u16, Value)>> = Arc::new(vec![
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "userid": "", "openid": "oNonMember1"}),
        ),
        (
            200,
            json!({"errcode": 0, "errmsg": "ok", "userid": null, "openid": "oNonMember2"}),
        ),
        (
            200,
            json!({"errcode": "oops", "errmsg": "?", "userid": "zhangsan"}),
        ),
        (
            200,
            json!({"errcode": 99999999999999999999u128 as f64, "userid": "zhangsan"}),
        ),
        (
            500,
            json!({"errcode": 0, "errmsg": "ok", "userid": "zhangsan"}),
        ),
    ]);
    let next = Arc::new(AtomicUsize::new(0));
    let app = common::made_up::wecom().route(
        "/cgi-bin/auth/getuserinfo",
        get(move || {
            let (answers, next) = (answers.clone(), next.clone());
            async move {
                let (status, body) = answers[next.fetch_add(1, Ordering::SeqCst)].clone();
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
            }
        }),
    );
    let provider = common::made_up::serve(app).await;
    let w = World::new()
        .session("")
        .app(App::wecom("cap").api_base(&provider))
        .routes("[[routes]]\nlocation = \"/\"\nupstream = \"crm\"\n")
        .start()
        .await;

    for openid in ["oNonMember1", "oNonMember2"] {
        let mut b = Browser::new(WXWORK_UA);
        let cb = w.to_callback(&mut b, &w.login_url("cap", "/")).await;
        assert_eq!(b.get(&cb).await.status(), 302);
        let who: Value = b
            .get(&w.gw().url("/_gateway/whoami"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(who["openid"], openid, "{who}");
        assert_eq!(who["userid"], Value::Null, "{who}");
    }
    for what in ["errcode oops", "errcode past 64 bits", "HTTP 500"] {
        let mut b = Browser::new(WXWORK_UA);
        let cb = w.to_callback(&mut b, &w.login_url("cap", "/")).await;
        let r = b.get(&cb).await;
        assert_eq!(r.status(), 502, "{what}");
        assert_eq!(
            b.get(&w.gw().url("/_gateway/whoami")).await.status(),
            401,
            "{what}: no session"
        );
    }
}

/// The store taking no writes (its file removed under the gateway: as a full disk, every write
/// fails) is said as what it is at the sign-in's callback: 503, not "this sign-in link was
/// already used", which blamed the person for the operator's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_takes_no_writes_is_a_503_at_the_callback_not_a_replay() {
    let w = World::new()
        .session("")
        .store("[store]\nbackend = \"local\"\npath = \"gw.db\"\n")
        .app(App::wecom("crm"))
        .app(App::mp("mp"))
        .routes(ROUTES)
        .start()
        .await;
    std::fs::remove_file(w.gw().dir.path().join("gw.db")).unwrap();
    let mut b = Browser::new(WXWORK_UA);
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/"))
        .await;
    let r = b.get_json(&cb, &[]).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "store_unavailable", "{v}");
    let m = w.gw().metrics().await;
    assert!(m.contains("result=\"store_error\""), "{m}");
    assert!(!m.contains("result=\"state_reused\""), "{m}");
}

/// Someone who is not a member of the corp (a customer opening the app's page) signs in as
/// WeCom names them: by an openid, which the CRM gets as `X-WeCom-OpenId`; never as a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_non_member_is_named_by_the_openid_wecom_gives() {
    let w = World::new()
        .session("")
        .app(App::wecom("crm"))
        .app(App::mp("mp"))
        .routes(ROUTES)
        .start()
        .await;
    let mut b = Browser::new(WXWORK_UA);
    let cb = w.to_callback(&mut b, &w.login_url("crm", "/")).await;
    let state = url::Url::parse(&cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    // WeCom's answer for a visitor's code instead of the member's.
    let v = w
        .control(
            "/_emulator/codes",
            json!({"visitor_openid": "oVisitor0001", "visitor_external_userid": "wmVisitor0001"}),
        )
        .await;
    let code = v["code"].as_str().unwrap();
    let r = b
        .get(&w.gw().url(&format!(
            "/_gateway/oauth/callback?code={code}&state={state}"
        )))
        .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    let who: Value = b
        .get(&w.gw().url("/_gateway/whoami"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(who["openid"], "oVisitor0001", "{who}");
    assert_eq!(who["userid"], Value::Null, "{who}");
}
