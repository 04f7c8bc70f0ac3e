//! 50 corps x 20 concurrent calls right after every token expired at WeCom: one
//! `get_corp_token` per corp and one suite token in all.

use crate::common::callbacks::Backend;
use crate::saas::*;

#[tokio::test]
async fn fifty_corps_twenty_calls_each_after_expiry_fetch_one_corp_token_per_corp_and_one_suite_token(
) {
    const CORPS: usize = 50;
    const CALLS: usize = 20;
    let s = Saas::start(Backend::Local, CORPS).await;
    s.push_ticket().await;
    for i in 0..CORPS {
        s.install(&extra_corp(i)).await;
    }
    // Every corp's token in use once.
    for i in 0..CORPS {
        let (status, v) = s
            .qy(
                &format!("/saas/{}/cgi-bin/user/get?userid=zhangsan", extra_corp(i)),
                &[],
            )
            .await;
        assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    }
    let corp_tokens = s.calls("/cgi-bin/service/get_corp_token").await;
    let suite_tokens = s.calls("/cgi-bin/service/get_suite_token").await;
    assert_eq!(corp_tokens, CORPS as u64);
    // Two hours later, on both clocks: every corp token and the suite token have expired,
    // and WeCom has pushed a newer ticket (the old one lived 30 minutes).
    s.control("/_emulator/advance", serde_json::json!({"by": "7201s"}))
        .await;
    s.gw().advance("7201s").await;
    s.push_ticket().await;
    let mut calls = Vec::new();
    for i in 0..CORPS {
        for _ in 0..CALLS {
            let url = s.qyapi(&format!(
                "/saas/{}/cgi-bin/user/get?userid=zhangsan",
                extra_corp(i)
            ));
            let http = s.http.clone();
            calls.push(tokio::spawn(async move {
                let r = http.get(url).send().await.unwrap();
                let v: serde_json::Value = r.json().await.unwrap();
                v["errcode"].as_i64()
            }));
        }
    }
    for c in calls {
        assert_eq!(
            c.await.unwrap(),
            Some(0),
            "every caller gets the successful answer"
        );
    }
    assert_eq!(
        s.calls("/cgi-bin/service/get_corp_token").await - corp_tokens,
        CORPS as u64,
        "one get_corp_token per corp"
    );
    assert_eq!(
        s.calls("/cgi-bin/service/get_suite_token").await - suite_tokens,
        1,
        "one suite token in all"
    );
}
