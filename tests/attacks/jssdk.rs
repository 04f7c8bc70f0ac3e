//! A page's `stale=` report (the JS-SDK refused a payload with "invalid signature") replaces a
//! ticket at most once a minute per app and kind — for the whole cluster, not per process: a
//! logged-in member replaying a valid report against N instances must not exceed WeCom's
//! 100-an-hour agent ticket quota.

use serde_json::Value;

use crate::common::browser::Browser;
use crate::common::redis_server::RedisServer;
use crate::common::Gateway;
use crate::world::{App, World, SIDEBAR_ROUTES};

async fn config(b: &mut Browser, gw: &Gateway, page: &str, stale: Option<&Value>) -> Value {
    let mut url = format!(
        "/_gateway/jssdk/config?url={}",
        url::form_urlencoded::byte_serialize(page.as_bytes()).collect::<String>()
    );
    if let Some(p) = stale {
        let report = format!(
            "agentConfig.{}.{}.{}",
            p["timestamp"],
            p["nonceStr"].as_str().unwrap(),
            p["signature"].as_str().unwrap()
        );
        url.push_str(&format!("&stale={report}"));
    }
    let r = b.get_json(&gw.url(&url), &[]).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_ticket_reports_replayed_across_instances_replace_the_ticket_once_a_minute() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
    let rest = format!(
        "{SIDEBAR_ROUTES}\n[store]\nbackend = \"redis\"\nredis_url = \"{}\"\nkey_prefix = \"wgw:\"\n",
        redis.url()
    );
    let w = World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(&rest)
        .start()
        .await;
    // A second instance: same config, other ports, same public_url.
    let text = std::fs::read_to_string(&w.gw().config_path)
        .unwrap()
        .replace(
            "public_url = \"http://127.0.0.1:0\"",
            &format!("public_url = \"http://127.0.0.1:{}\"", w.gw().port),
        );
    let other = tokio::task::spawn_blocking(move || Gateway::start_config(&text, &[], &[]))
        .await
        .unwrap();

    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/");
    let first = config(&mut b, &w.gw(), &page, None).await;
    assert_eq!(w.calls("/cgi-bin/ticket/get").await, 1);
    // The page reports the agentConfig payload refused: replaced once.
    let second = config(&mut b, &w.gw(), &page, Some(&first["agentConfig"])).await;
    assert_eq!(w.calls("/cgi-bin/ticket/get").await, 2);
    // The same member replays a valid report on the other instance, and again on the first.
    b.jar.insert(
        crate::common::browser::Browser::authority(&other.url("/")),
        b.jar[&crate::common::browser::Browser::authority(&w.gw().url("/"))].clone(),
    );
    let third = config(&mut b, &other, &page, Some(&second["agentConfig"])).await;
    config(&mut b, &w.gw(), &page, Some(&third["agentConfig"])).await;
    assert_eq!(
        w.calls("/cgi-bin/ticket/get").await,
        2,
        "one replacement a minute for the cluster"
    );
}
