//! `{prefix}/jssdk/config` and `{prefix}/sdk.js` (SPEC section 9) against the emulator: the
//! signatures are judged by the emulator's own JS-SDK check, as a WeCom client would judge them.

mod common;

use common::browser::{Browser, WXWORK_UA};
use common::sidebar;
use common::world::corp_id;
use serde_json::Value;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `stale=` for a payload the JS-SDK refused.
fn stale(kind: &str, payload: &Value) -> String {
    enc(&format!(
        "{kind}.{}.{}.{}",
        payload["timestamp"],
        payload["nonceStr"].as_str().unwrap(),
        payload["signature"].as_str().unwrap()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_signatures_pass_the_emulators_check() {
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/?from=chat&x=%E5%BC%A0");
    let (status, cfg) = w.jssdk_config(&mut b, &format!("url={}", enc(&page))).await;
    assert_eq!(status, 200, "{cfg}");

    let c = &cfg["config"];
    assert_eq!(c["beta"], true);
    assert_eq!(c["appId"], corp_id());
    assert!(c["timestamp"].is_u64());
    let nonce = c["nonceStr"].as_str().unwrap();
    assert!(nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_alphanumeric()));
    let a = &cfg["agentConfig"];
    assert_eq!(a["corpid"], corp_id());
    assert_eq!(a["agentid"], "1000002", "a string");
    assert_ne!(a["nonceStr"], c["nonceStr"]);

    assert_eq!(w.emulator_verdict("config", c, &page).await, "config:ok");
    assert_eq!(
        w.emulator_verdict("agentConfig", a, &page).await,
        "agentConfig:ok"
    );
    // Each payload is signed with its own ticket.
    assert_eq!(
        w.emulator_verdict("agentConfig", &agent_shaped(c), &page)
            .await,
        "agentConfig:invalid signature"
    );
    // Signed for this page only.
    assert_eq!(
        w.emulator_verdict("config", c, &w.gw().url("/sidebar/other"))
            .await,
        "config:invalid signature"
    );
}

/// The config payload's signature presented as an agentConfig one.
fn agent_shaped(config: &Value) -> Value {
    let mut v = config.clone();
    v["corpid"] = config["appId"].clone();
    v["agentid"] = "1000002".into();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fragment_is_dropped_before_signing() {
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/?tab=1#/customer/42?x=1");
    let (status, cfg) = w.jssdk_config(&mut b, &format!("url={}", enc(&page))).await;
    assert_eq!(status, 200, "{cfg}");
    // The client signs location.href without the fragment, and so does its check: a payload
    // signed over the fragment would be refused.
    let without = w.gw().url("/sidebar/?tab=1");
    for (kind, payload) in [
        ("config", &cfg["config"]),
        ("agentConfig", &cfg["agentConfig"]),
    ] {
        assert_eq!(
            w.emulator_verdict(kind, payload, &page).await,
            format!("{kind}:ok")
        );
        assert_eq!(
            w.emulator_verdict(kind, payload, &without).await,
            format!("{kind}:ok")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_off_the_public_origin_are_refused_with_400() {
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let port = w.gw().port;
    let cases = [
        format!("http://evil.example.com:{port}/sidebar/"),
        format!("http://127.0.0.1:{}/sidebar/", port + 1),
        format!("https://127.0.0.1:{port}/sidebar/"),
        format!("http://user@127.0.0.1:{port}/sidebar/"),
        "/sidebar/".to_owned(),
        "not a url".to_owned(),
        String::new(),
    ];
    for page in &cases {
        let (status, body) = w.jssdk_config(&mut b, &format!("url={}", enc(page))).await;
        assert_eq!(status, 400, "{page:?}: {body}");
        assert_eq!(body["error"], "bad_request", "{page:?}");
    }
    let (status, _) = w.jssdk_config(&mut b, "").await;
    assert_eq!(status, 400, "no url at all");
    // An app the file does not have: the page's typo, not a sign-in with another app.
    let page = w.gw().url("/sidebar/");
    let (status, body) = w
        .jssdk_config(&mut b, &format!("url={}&app=nope", enc(&page)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "unknown app", "{body}");
    // Escapes that are not UTF-8: decoded with U+FFFD, the URL signed would be no page's.
    let raw = format!("url=http%3A%2F%2F127.0.0.1%3A{port}%2Fs%3Fa%3D%FF%FE");
    let (status, body) = w.jssdk_config(&mut b, &raw).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_config_is_401() {
    let w = sidebar::world().start().await;
    let mut b = Browser::new(WXWORK_UA);
    let page = w.gw().url("/sidebar/");
    let (status, body) = w.jssdk_config(&mut b, &format!("url={}", enc(&page))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "login_required");
    assert_eq!(
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        0,
        "no ticket fetched for a stranger"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_are_cached_and_a_ticket_wecom_dropped_is_replaced_once_reported() {
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/");
    let q = format!("url={}", enc(&page));
    let (_, first) = w.jssdk_config(&mut b, &q).await;
    let (_, again) = w.jssdk_config(&mut b, &q).await;
    assert_ne!(first["config"]["nonceStr"], again["config"]["nonceStr"]);
    assert_eq!(w.calls("/cgi-bin/get_jsapi_ticket").await, 1, "cached");
    assert_eq!(w.calls("/cgi-bin/ticket/get").await, 1, "cached");

    // WeCom drops every token and ticket early; only the JS-SDK on the page notices.
    w.control("/_emulator/expire-tokens", Value::Null).await;
    for (kind, payload) in [
        ("config", &first["config"]),
        ("agentConfig", &first["agentConfig"]),
    ] {
        assert_eq!(
            w.emulator_verdict(kind, payload, &page).await,
            format!("{kind}:invalid signature")
        );
    }

    // A report that was not signed with the ticket the gateway holds fetches nothing.
    let mut forged = first["config"].clone();
    forged["signature"] = "0000000000000000000000000000000000000000".into();
    let (status, _) = w
        .jssdk_config(&mut b, &format!("{q}&stale={}", stale("config", &forged)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(w.calls("/cgi-bin/get_jsapi_ticket").await, 1);

    // sdk.js reports what was refused; the next config is signed with new tickets, fetched
    // over an expired access token (42001, refreshed once, retried once).
    let (status, next) = w
        .jssdk_config(
            &mut b,
            &format!(
                "{q}&stale={}&stale={}",
                stale("config", &first["config"]),
                stale("agentConfig", &first["agentConfig"])
            ),
        )
        .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(
        w.emulator_verdict("config", &next["config"], &page).await,
        "config:ok"
    );
    assert_eq!(
        w.emulator_verdict("agentConfig", &next["agentConfig"], &page)
            .await,
        "agentConfig:ok"
    );
    assert_eq!(
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        3,
        "one refused try, one retry"
    );
    assert_eq!(w.calls("/cgi-bin/gettoken").await, 2, "one token refresh");

    // The same report again changes nothing: the ticket it names is gone.
    let (_, after) = w
        .jssdk_config(
            &mut b,
            &format!("{q}&stale={}", stale("config", &first["config"])),
        )
        .await;
    assert_eq!(
        w.emulator_verdict("config", &after["config"], &page).await,
        "config:ok"
    );
    assert_eq!(w.calls("/cgi-bin/get_jsapi_ticket").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_js_is_served_with_its_settings() {
    let w = sidebar::world().start().await;
    let r = common::client()
        .get(w.gw().url("/_gateway/sdk.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "private, max-age=300");
    let js = r.text().await.unwrap();
    assert!(js.contains("window.WeComGateway"));
    assert!(js.contains(&format!(
        r#"{{"app":"crm","jssdkUrls":["{}/emulator/jweixin.js"],"prefix":"/_gateway"}}"#,
        w.emu.base_url()
    )));
    let r = common::client()
        .post(w.gw().url("/_gateway/sdk.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_ticket_expiry_the_next_config_is_still_valid() {
    // Tickets (and the access token) live 7200 s, on WeCom's clock and on the gateway's; both
    // are moved past that, so the expiry really happens on both sides.
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/");
    let q = format!("url={}", enc(&page));
    let (status, first) = w.jssdk_config(&mut b, &q).await;
    assert_eq!(status, 200, "{first}");
    for kind in ["config", "agentConfig"] {
        assert_eq!(
            w.emulator_verdict(kind, &first[kind], &page).await,
            format!("{kind}:ok")
        );
    }
    let before = (
        w.calls("/cgi-bin/gettoken").await,
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        w.calls("/cgi-bin/ticket/get").await,
    );
    assert_eq!(before, (1, 1, 1));

    // Nothing asks for a config meanwhile (no early refresh): the tickets simply run out.
    w.advance("7201s").await;
    for kind in ["config", "agentConfig"] {
        assert_eq!(
            w.emulator_verdict(kind, &first[kind], &page).await,
            format!("{kind}:invalid signature"),
            "the first tickets expired at WeCom"
        );
    }

    // No stale report from the page: the gateway knows the expiry by itself.
    let (status, next) = w.jssdk_config(&mut b, &q).await;
    assert_eq!(status, 200, "{next}");
    for kind in ["config", "agentConfig"] {
        assert_eq!(
            w.emulator_verdict(kind, &next[kind], &page).await,
            format!("{kind}:ok")
        );
    }
    assert_eq!(
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        before.1 + 1,
        "one new corp ticket"
    );
    assert_eq!(
        w.calls("/cgi-bin/ticket/get").await,
        before.2 + 1,
        "one new agent ticket"
    );
    assert_eq!(
        w.calls("/cgi-bin/gettoken").await,
        before.0 + 1,
        "the access token under them expired too: fetched once, before it was used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_in_use_across_their_expiry_are_never_served_dead() {
    // A page asks for a config in the tickets' early-refresh window, then again just after
    // they expired. Within its validity WeCom hands back the same ticket, so the early refresh
    // cannot replace it: the gateway must still know when that ticket dies.
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/");
    let q = format!("url={}", enc(&page));
    let (status, first) = w.jssdk_config(&mut b, &q).await;
    assert_eq!(status, 200, "{first}");
    let tickets = (
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        w.calls("/cgi-bin/ticket/get").await,
    );
    // 150 ms before the expiry: stale (the last 300 s), still valid at WeCom.
    w.advance("7199850ms").await;
    let (status, late) = w.jssdk_config(&mut b, &q).await;
    assert_eq!(status, 200, "{late}");
    // The early refresh runs in the background; WeCom answers it with the same tickets.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while (
        w.calls("/cgi-bin/get_jsapi_ticket").await,
        w.calls("/cgi-bin/ticket/get").await,
    ) != (tickets.0 + 1, tickets.1 + 1)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no early refresh of both tickets"
        );
        tokio::task::yield_now().await;
    }
    // Past the expiry of the tickets WeCom issued first, whatever the early refresh got.
    w.advance("400ms").await;
    let (status, next) = w.jssdk_config(&mut b, &q).await;
    assert_eq!(status, 200, "{next}");
    for kind in ["config", "agentConfig"] {
        assert_eq!(
            w.emulator_verdict(kind, &next[kind], &page).await,
            format!("{kind}:ok"),
            "{kind} after the expiry"
        );
    }
}
