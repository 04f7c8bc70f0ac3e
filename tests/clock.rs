//! The gateway's clock, moved by the test control (debug builds, `WGW_TEST_CLOCK=1`, loopback
//! only): every expiry the gateway knows follows it, and without the variable the control does
//! not exist.

mod common;

use common::sidebar;
use common::{client, CLOCK_CONTROL};

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_tokens_end_when_the_gateways_clock_passes_their_expiry() {
    let w = sidebar::world().start().await;
    let mut b = w.member().await;
    let whoami = w.gw().url("/_gateway/whoami");
    assert_eq!(b.get(&whoami).await.status(), 200);
    let q = format!("url={}", enc(&w.gw().url("/sidebar/")));
    assert_eq!(w.jssdk_config(&mut b, &q).await.0, 200);
    let gettokens = w.calls("/cgi-bin/gettoken").await;

    // Two hours and a second later, for the gateway only: its tokens and tickets are dead to
    // it (WeCom's clock did not move, so WeCom hands back the same values).
    w.gw().advance("7201s").await;
    assert_eq!(w.jssdk_config(&mut b, &q).await.0, 200);
    assert_eq!(
        w.calls("/cgi-bin/gettoken").await,
        gettokens + 1,
        "refetched, not reused"
    );
    assert_eq!(b.get(&whoami).await.status(), 200, "the session lives 8 h");

    w.gw().advance("6h").await;
    assert_eq!(
        b.get(&whoami).await.status(),
        401,
        "the session ended with its 8 h"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_variable_there_is_no_clock_control() {
    for off in ["0", "", "true", "yes"] {
        let w = sidebar::world().env(CLOCK_CONTROL, off).start().await;
        let r = client()
            .post(w.gw().admin_url("/_test/advance"))
            .json(&serde_json::json!({"by": "8h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{CLOCK_CONTROL}={off:?}");
        // The warning would come before the line that says the gateway listens.
        w.gw().wait_log("wecom-gateway listening");
        assert!(!w.gw().log().contains("move its clock"), "{}", w.gw().log());
    }
    // Turned on, it says so at start.
    let w = sidebar::world().start().await;
    let gw = w.gw();
    gw.wait_log("lets loopback clients move its clock");
    let r = client()
        .post(gw.admin_url("/_test/advance"))
        .json(&serde_json::json!({"by": "-8h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "never backward");
}
