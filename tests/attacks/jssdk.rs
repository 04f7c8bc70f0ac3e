//! A page's `stale=` report (the JS-SDK refused a payload with "invalid signature") replaces a
//! ticket at most once a minute per app and kind — for the whole cluster, not per process: a
//! logged-in member replaying a valid report against N instances must not exceed WeCom's
//! 100-an-hour agent ticket quota.

use serde_json::Value;

use crate::common::browser::Browser;
use crate::common::Gateway;
use crate::world::wecom_and_wechat;

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
    // Two instances on one Redis behind one origin.
    let w = wecom_and_wechat().redis(2).one_origin().start().await;
    let other = &w.gateways[1];

    let mut b = w.member().await;
    let page = w.gw().url("/sidebar/");
    let first = config(&mut b, w.gw(), &page, None).await;
    assert_eq!(w.calls("/cgi-bin/ticket/get").await, 1);
    // The page reports the agentConfig payload refused: replaced once.
    let second = config(&mut b, w.gw(), &page, Some(&first["agentConfig"])).await;
    assert_eq!(w.calls("/cgi-bin/ticket/get").await, 2);
    // The same member replays a valid report on the other instance, and again on the first.
    b.jar.insert(
        crate::common::browser::Browser::authority(&other.url("/")),
        b.jar[&crate::common::browser::Browser::authority(&w.gw().url("/"))].clone(),
    );
    let third = config(&mut b, other, &page, Some(&second["agentConfig"])).await;
    config(&mut b, w.gw(), &page, Some(&third["agentConfig"])).await;
    assert_eq!(
        w.calls("/cgi-bin/ticket/get").await,
        2,
        "one replacement a minute for the cluster"
    );
}
