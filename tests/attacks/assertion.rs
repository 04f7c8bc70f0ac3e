//! Item 3: the assertion's claims say who is signed in and, apart, who the customer is. A
//! member has no unionid of their own; the customer's must never appear as the member's.

use crate::world::{claims, customer, customer_unionid, App, World, SIDEBAR_ROUTES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assertion_never_passes_the_customers_unionid_off_as_the_members() {
    let w = World::new()
        .session("assertion_audience = \"crm-backend\"")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .routes(SIDEBAR_ROUTES)
        .start()
        .await;
    let mut b = w.member().await;
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap().to_owned();
    let echo = w
        .upstream_sees(&mut b, "/sidebar/", &[("WGW-Contact", &ticket)])
        .await
        .unwrap();
    let c = claims(echo.header("x-gateway-assertion").unwrap());
    assert_eq!(c["userid"], "zhangsan");
    assert_eq!(c["unionid"], serde_json::Value::Null, "{c}");
    assert_eq!(c["external_userid"], customer());
    assert_eq!(c["external_unionid"], customer_unionid());
    assert_eq!(c["aud"], "crm-backend", "{c}");
    assert_eq!(
        echo.header("x-wecom-external-unionid"),
        Some(customer_unionid())
    );
}
