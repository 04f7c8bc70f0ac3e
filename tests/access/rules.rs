//! Admitted or refused per member for each list kind; the refused request never reaches the
//! CRM; the facts are fetched once however many requests wait; WeCom failing is a 502; after
//! `policy_ttl` a member moved out of the department is refused.

use serde_json::{json, Value};

use crate::common::browser::HTML;
use crate::{member, session_of, start, ROUTES};

/// One line per request: path, member, status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_admitted_or_refused_by_each_list_kind_and_refusals_never_reach_the_crm() {
    let w = start("", ROUTES).await;
    let cases: &[(&str, &str, u16)] = &[
        // departments = [2]: in 2, or below it (3, and 5 three deep)
        ("/sales/x", "zhangsan", 200),
        ("/sales/x", "wangwu", 200),
        ("/sales/x", "lisi", 403),
        ("/sales/x", "zhaoliu", 403),
        // tags = [1]: zhangsan tagged one by one
        ("/managers/", "zhangsan", 200),
        ("/managers/", "wangwu", 403),
        // tags = [8]: on department 4 whole, so lisi through his department
        ("/service/", "lisi", 200),
        ("/service/", "zhangsan", 403),
        // users = ["zhaoliu"]
        ("/boss/", "zhaoliu", 200),
        ("/boss/", "zhangsan", 403),
        // no allow: every member
        ("/sidebar/", "lisi", 200),
        // a member that left the corp (60111): refused, not an error
        ("/sales/x", "ghost", 403),
    ];
    for &(path, userid, want) in cases {
        let mut b = member(&w, userid);
        let before = w.up.hits();
        let r = b.get_json(&w.gw().url(path), &[]).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want, "{userid} on {path}: {body}");
        if want == 403 {
            assert_eq!(body["error"], "not_allowed", "{body}");
            assert!(body["request_id"].as_str().is_some_and(|r| !r.is_empty()));
            assert_eq!(w.up.hits(), before, "{userid} on {path} reached the CRM");
        } else {
            assert_eq!(body["headers"]["x-wecom-userid"], userid, "{body}");
            assert_eq!(w.up.hits(), before + 1);
        }
    }
    // A person gets a short page naming the member and saying who to ask.
    let mut b = member(&w, "lisi");
    let r = b
        .request(reqwest::Method::GET, &w.gw().url("/sales/"), HTML)
        .await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("lisi") && page.contains("administrator"),
        "{page}"
    );
    // A WeCom non-member (openid only) enters only routes without `allow`.
    let mut b = session_of(&w, None, Some("oNonMember1"), 0);
    let r = b.get_json(&w.gw().url("/boss/"), &[]).await;
    assert_eq!(r.status(), 403);
    let r = b.get_json(&w.gw().url("/sidebar/"), &[]).await;
    assert_eq!(r.status(), 200);
    // Counted by route and result, labels from the configuration.
    let m = w.gw().metrics().await;
    for line in [
        "wgw_access_total{result=\"admitted\",route=\"/sales/\"} 2",
        "wgw_access_total{result=\"refused\",route=\"/sales/\"} 4",
        "wgw_access_total{result=\"refused\",route=\"/boss/\"} 2",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(!m.contains("wgw_access_total{result=\"admitted\",route=\"/sidebar/\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_first_requests_of_one_member_make_one_user_get() {
    let w = start("", ROUTES).await;
    let url = w.gw().url("/sales/report");
    let cookie = member(&w, "wangwu").cookie_header(&url);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (url, cookie) = (url.clone(), cookie.clone());
        tasks.spawn(async move {
            crate::common::client()
                .get(&url)
                .header("cookie", cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
    }
    let mut ok = 0;
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 200);
    assert_eq!(
        w.calls("/cgi-bin/user/get").await,
        1,
        "one user/get for 200 requests"
    );
    assert_eq!(w.calls("/cgi-bin/department/simplelist").await, 1);
    assert_eq!(w.up.hits(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_failing_while_checking_is_a_502_never_an_admission() {
    let w = start("", ROUTES).await;
    let mut b = member(&w, "zhangsan");
    // Refused with the app's token and with the contact secret's: no privilege anywhere.
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": 48002, "count": 2}),
    )
    .await;
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["errcode"].as_i64()),
        (Some("provider_error"), Some(48002))
    );
    // WeCom down (HTTP 503, no JSON).
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/department/simplelist", "http_status": 503, "count": 1}),
    )
    .await;
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 502);
    assert_eq!(w.up.hits(), 0, "nothing reached the CRM");
    let m = w.gw().metrics().await;
    assert!(
        m.contains("wgw_access_total{result=\"error\",route=\"/sales/\"} 2"),
        "{m}"
    );
    // Once WeCom answers, the same member is admitted: a failure is never remembered.
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_token_lacking_the_privilege_falls_back_to_the_contact_secret() {
    let w = start("", ROUTES).await;
    let mut b = member(&w, "wangwu");
    // One 60011 (the app's visible range), then the contact token's call succeeds.
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": 60011, "count": 1}),
    )
    .await;
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(w.calls("/cgi-bin/user/get").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_policy_ttl_a_member_moved_out_of_the_department_is_refused() {
    let w = start("policy_ttl = \"2m\"", ROUTES).await;
    let mut b = member(&w, "wangwu");
    assert_eq!(b.get_json(&w.gw().url("/sales/"), &[]).await.status(), 200);
    w.control(
        "/_emulator/members/move",
        json!({"userid": "wangwu", "department": [4]}),
    )
    .await;
    // Within policy_ttl the cached facts decide (and nothing is fetched again).
    w.gw().advance("60s").await;
    assert_eq!(b.get_json(&w.gw().url("/sales/"), &[]).await.status(), 200);
    assert_eq!(w.calls("/cgi-bin/user/get").await, 1);
    // Past it, the facts are fetched again: wangwu is in service now.
    w.gw().advance("61s").await;
    let r = b.get_json(&w.gw().url("/sales/"), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(w.calls("/cgi-bin/user/get").await, 2);
    // The decision is logged once per member and route per policy_ttl, not per request.
    for _ in 0..3 {
        b.get_json(&w.gw().url("/sales/"), &[]).await;
    }
    // The log is written by a background thread, in order: once the three requests' lines are
    // there, so is every decision logged before them.
    w.gw().wait_log_count("path=/sales/", 3);
    let log = w.gw().log();
    let decisions = log
        .lines()
        .filter(|l| l.contains("access decision") && l.contains("wangwu"))
        .count();
    assert_eq!(decisions, 2, "{log}");
}

/// A rule listing a userid admits that member while WeCom knows it: once the member is
/// deleted (60111), the next look after `policy_ttl` refuses, as for a move out of a
/// department (the userid alone admitted for the whole session, days maybe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_policy_ttl_a_listed_member_deleted_from_the_corp_is_refused() {
    let w = start("policy_ttl = \"2m\"", ROUTES).await;
    let mut b = member(&w, "zhaoliu");
    assert_eq!(b.get_json(&w.gw().url("/boss/"), &[]).await.status(), 200);
    w.control("/_emulator/members/delete", json!({"userid": "zhaoliu"}))
        .await;
    w.gw().advance("60s").await;
    assert_eq!(b.get_json(&w.gw().url("/boss/"), &[]).await.status(), 200);
    w.gw().advance("61s").await;
    let r = b.get_json(&w.gw().url("/boss/"), &[]).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_allowed", "{body}");
}

/// A listed member's check when WeCom cannot be asked: a 502 as for every rule, never the
/// userid alone (a member deleted since would be admitted), and nothing remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_members_check_failing_is_a_502_not_an_admission() {
    let w = start("policy_ttl = \"2m\"", ROUTES).await;
    let mut b = member(&w, "zhaoliu");
    // Past what the sign-in read: the next request asks WeCom.
    w.gw().advance("121s").await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": -1, "count": 10}),
    )
    .await;
    let r = b.get_json(&w.gw().url("/boss/"), &[]).await;
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "provider_error", "{body}");
    assert_eq!(w.up.hits(), 0, "nothing reached the CRM");
    // Deleted meanwhile: once WeCom answers, the failure was not remembered as an admission.
    w.control("/_emulator/members/delete", json!({"userid": "zhaoliu"}))
        .await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": -1, "count": 0}),
    )
    .await;
    let r = b.get_json(&w.gw().url("/boss/"), &[]).await;
    assert_eq!(r.status(), 403, "{}", r.text().await.unwrap());
}
