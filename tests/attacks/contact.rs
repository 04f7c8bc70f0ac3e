//! Item 2: a page that sends a `WGW-Contact` ticket is about that ticket's customer. When the
//! ticket does not open (expired, forged, another member's), the page gets no customer at all —
//! never the one another tab verified last (串数据, the mix-up the ticket exists to prevent).

use serde_json::Value;
use wecom_gateway::jssdk::contact::{issue_ticket_until, ExternalContact};

use crate::world::{corp_id, customer, wecom_and_wechat, SESSION_SECRET};

fn sealed(userid: &str, exp: u64) -> String {
    let other = ExternalContact {
        external_userid: "wmPageCustomer".into(),
        unionid: None,
        name: String::new(),
    };
    let key = cookie::Key::derive_from(SESSION_SECRET.as_bytes());
    issue_ticket_until(&key, corp_id(), userid, &other, exp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_contact_ticket_gives_no_contact_not_another_tabs_customer() {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member().await;
    // Another tab verified customer() last: it is the session's current contact.
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    let now = wecom_gateway::login::now_secs();
    let unopenable = [
        ("expired", sealed("zhangsan", now - 1)),
        ("another member's", sealed("lisi", now + 3600)),
        ("forged", "wmPageCustomer".to_owned()),
    ];
    for (what, ticket) in &unopenable {
        let echo = w
            .upstream_sees(&mut b, "/sidebar/", &[("WGW-Contact", ticket)])
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(echo.header("x-wecom-external-userid"), None, "{what}");
        assert_eq!(echo.header("x-wecom-external-unionid"), None, "{what}");
        let claims = crate::world::claims(echo.header("x-gateway-assertion").unwrap());
        assert_eq!(claims["external_userid"], Value::Null, "{what}");
        // On a route that needs a customer, no customer is a 403.
        let refused = w
            .upstream_sees(&mut b, "/customer/42", &[("WGW-Contact", ticket)])
            .await
            .expect_err(what);
        assert_eq!(refused.0, 403, "{what}");
        assert_eq!(refused.1["error"], "external_contact_required", "{what}");
    }
    // Two tickets in one request: which page is it? Neither.
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    let good = body["ticket"].as_str().unwrap();
    let r = b
        .send(
            reqwest::Method::GET,
            &w.gw().url("/sidebar/"),
            "application/json",
            |r| {
                r.header("WGW-Contact", good)
                    .header("WGW-Contact", unopenable[0].1.as_str())
            },
        )
        .await;
    let echo: crate::common::upstream::Echo = r.json().await.unwrap();
    assert_eq!(echo.header("x-wecom-external-userid"), None);
    // `none`, from a page without a verified customer: no customer, and no warning.
    let echo = w
        .upstream_sees(&mut b, "/sidebar/", &[("WGW-Contact", "none")])
        .await
        .unwrap();
    assert_eq!(echo.header("x-wecom-external-userid"), None);
    // Without the header the session's current contact still applies.
    let echo = w.upstream_sees(&mut b, "/sidebar/", &[]).await.unwrap();
    assert_eq!(echo.header("x-wecom-external-userid"), Some(customer()));
}
