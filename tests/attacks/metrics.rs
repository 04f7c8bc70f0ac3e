//! Item 1: nothing a client sends becomes a metric label (SPEC section 14). Every label value
//! comes from the configuration or a fixed set (`other`), so no visitor can grow `/metrics`
//! and the process's memory one series at a time.

use serde_json::json;

use crate::common::client;
use crate::world::wecom_and_wechat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_chosen_values_never_become_metric_labels() {
    let w = wecom_and_wechat().qyapi().start().await;
    let c = client();
    for i in 0..5 {
        for path in [
            format!("/_gateway/login?app=attacker{i}&return_to=/"),
            format!("/_gateway/oauth/callback?app=attacker{i}&state=s{i}&code=c"),
            format!("/_gateway/whoami?app=attacker{i}"),
            format!("/_gateway/jssdk/config?app=attacker{i}&url=x"),
        ] {
            c.get(w.gw().url(&path)).send().await.unwrap();
        }
        // The qyapi endpoint: made-up API paths, and an errcode nobody has heard of.
        for path in [
            format!("/crm/cgi-bin/attacker{i}/x"),
            format!("/crm/cgi-bin/user/attacker{i}"),
        ] {
            c.get(w.qyapi(&path)).send().await.unwrap();
        }
    }
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": 987654, "count": 1}),
    )
    .await;
    let r = c
        .get(w.qyapi("/crm/cgi-bin/user/get?userid=zhangsan"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let metrics = w.gw().metrics().await;
    for bad in ["attacker", "987654"] {
        assert!(
            !metrics
                .lines()
                .any(|l| !l.starts_with('#') && l.contains(bad)),
            "a label made of client input ({bad}):\n{metrics}"
        );
    }
    assert!(
        metrics.contains("wgw_logins_total{app=\"other\",result=\"bad_state\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wgw_qyapi_calls_total{api=\"/cgi-bin/user/get\",app=\"crm\",errcode=\"other\"} 1"
        ),
        "{metrics}"
    );
}
