//! Suite tickets, installs, per-corp qyapi calls, `cancel_auth`, restarts.

use crate::common::callbacks::Backend;
use crate::common::redis_server::RedisServer;
use crate::saas::*;

/// A member of each corp: `user/get` answers only with that corp's token, so it proves whose
/// token was injected.
fn member(corp: &str) -> &'static str {
    if corp == CORP_A {
        "zhaoliu"
    } else {
        "qianqi"
    }
}

/// The `create_auth` the CRM took (the first).
fn create_auth_taken(s: &Saas) -> crate::common::callbacks::Received {
    s.crm
        .taken()
        .into_iter()
        .find(|r| r.body.contains("create_auth"))
        .expect("the CRM took the create_auth")
}

async fn agent_of(s: &Saas, corp: &str) -> (u16, serde_json::Value) {
    s.qy(
        &format!("/saas/{corp}/cgi-bin/user/get?userid={}", member(corp)),
        &[],
    )
    .await
}

#[tokio::test]
async fn no_suite_ticket_is_a_503_with_a_request_id_and_one_log_line_then_a_ticket_brings_the_token(
) {
    let s = Saas::start(Backend::Local, 0).await;
    // The suite's own call, with the suite token: none can be fetched without a ticket.
    let path = "/saas/cgi-bin/service/get_pre_auth_code";
    for _ in 0..3 {
        let (status, v) = s.qy(path, &[]).await;
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["errcode"], 41023, "{v}");
        assert!(
            v["request_id"].is_string() || v["errmsg"].as_str().unwrap_or("").contains("request"),
            "{v}"
        );
    }
    assert_eq!(
        s.calls("/cgi-bin/service/get_suite_token").await,
        0,
        "nothing sent without a ticket"
    );
    let log = s.gw().log();
    assert_eq!(
        log.matches("no suite_ticket of suite").count(),
        1,
        "one log line, not one per request:\n{log}"
    );
    assert!(s.gw().child.is_some(), "still running");

    s.push_ticket().await;
    let (status, v) = s.qy(path, &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert!(v["pre_auth_code"].is_string(), "{v}");
    assert_eq!(s.calls("/cgi-bin/service/get_suite_token").await, 1);
    // The ticket is a credential: kept, never forwarded to the CRM.
    assert!(s.forwarded("suite_ticket").is_empty());
    assert!(
        !s.gw().log().contains(&ticket_of(&s).await),
        "no ticket in the log"
    );
}

async fn ticket_of(s: &Saas) -> String {
    let v = s
        .control(
            "/_emulator/suites/push-ticket",
            serde_json::json!({"suite_id": SUITE}),
        )
        .await;
    s.settled().await;
    v["suite_ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_corps_install_and_each_qyapi_call_carries_its_own_corps_token() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    // Not installed yet: a clear 4xx and nothing sent.
    let before = s.calls("/cgi-bin/user/get").await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (404, Some(40084)), "{v}");
    assert_eq!(s.calls("/cgi-bin/user/get").await, before, "nothing sent");

    s.install(CORP_A).await;
    s.install(CORP_B).await;
    let forwarded = s.forwarded("create_auth");
    assert_eq!(forwarded.len(), 2);
    for corp in [CORP_A, CORP_B] {
        let (status, v) = agent_of(&s, corp).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (200, Some(0)),
            "{corp}: {v}"
        );
        // The same call by header picks the same corp.
        let (status, v2) = s
            .qy(
                &format!("/saas/cgi-bin/user/get?userid={}", member(corp)),
                &[("X-Gateway-Corp", corp)],
            )
            .await;
        assert_eq!((status, v2["errcode"].as_i64()), (200, Some(0)), "{v2}");
    }
    // Each corp's token fetched once, with its own permanent code.
    assert_eq!(s.calls("/cgi-bin/service/get_corp_token").await, 2);
    // Corp A's token never answers for corp B: user/get of B's member through A fails.
    let (_, a) = s
        .qy(
            &format!("/saas/{CORP_A}/cgi-bin/user/get?userid=qianqi"),
            &[],
        )
        .await;
    let (_, b) = s
        .qy(
            &format!("/saas/{CORP_B}/cgi-bin/user/get?userid=qianqi"),
            &[],
        )
        .await;
    assert_eq!(b["errcode"], 0, "qianqi is corp B's: {b}");
    assert_ne!(a["errcode"], 0, "not corp A's: {a}");
    // The path and the header must agree.
    let (status, _) = s
        .qy(
            &format!("/saas/{CORP_A}/cgi-bin/user/get?userid=zhaoliu"),
            &[("X-Gateway-Corp", CORP_B)],
        )
        .await;
    assert_eq!(status, 400);
    // The permanent codes never reach the log.
    let log = s.gw().log();
    for corp in [CORP_A, CORP_B] {
        let code = s
            .emu
            .state()
            .world()
            .install(SUITE, corp)
            .unwrap()
            .permanent_code
            .clone();
        assert!(
            !log.contains(&code),
            "{corp}'s permanent code in the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_replayed_create_auth_exchanges_nothing_twice() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let exchanges = s.calls("/cgi-bin/service/v2/get_permanent_code").await;
    assert_eq!(exchanges, 1);
    // WeCom retries the same message when it did not hear back: the emulator resends it.
    let xml = s.forwarded("create_auth")[0].clone();
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": xml}),
    )
    .await;
    s.settled().await;
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 1);
    assert_eq!(s.forwarded("create_auth").len(), 1, "not queued twice");
}

/// The AuthCode lives 10 minutes, and the app's events reach the CRM in order: an install that
/// waited behind an event the CRM does not take (down, or refusing one) would be lost. The code
/// is exchanged as the install arrives, apart from the queue; the CRM hears of it when it can.
// Two threads: the emulator answers the gateway while the test waits for its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_is_kept_at_once_while_the_crm_takes_nothing() {
    use std::sync::atomic::Ordering;
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_B).await;
    s.crm.state.down.store(true, Ordering::SeqCst);
    // An event at the head of the queue that the CRM refuses, then the install behind it.
    s.control(
        "/_emulator/suites/change-auth",
        serde_json::json!({"suite_id": SUITE, "corp_id": CORP_B}),
    )
    .await;
    s.control(
        "/_emulator/suites/install",
        serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.gw().wait_log_count("corp installed the app", 2);
    assert_eq!(
        agent_of(&s, CORP_A).await.0,
        200,
        "kept before the CRM heard of it"
    );
    assert_eq!(s.forwarded("create_auth").len(), 1, "only corp B's, before");
    // Long after the code expired (a CRM down for an hour), the CRM takes events again:
    // nothing is exchanged twice, the install stays, and the CRM hears of it, naming the corp
    // (the record of what the code installed outlives the code as long as the queue holds
    // the event).
    s.advance("61m").await;
    s.crm.state.down.store(false, Ordering::SeqCst);
    s.wait_forwarded("create_auth", 2).await;
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 2);
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
    let taken = s.crm.taken();
    let delivered: Vec<&str> = taken
        .iter()
        .filter(|r| r.body.contains("create_auth"))
        .map(|r| r.header("x-wecom-corpid"))
        .collect();
    assert_eq!(delivered, [CORP_B, CORP_A], "each install names its corp");
    assert!(
        !s.gw().log().contains("install not kept"),
        "{}",
        s.gw().log()
    );
}

/// A suite's call for a corp that names none would go with the suite token, which WeCom does not
/// take for it: refused before anything is sent.
#[tokio::test]
async fn a_suite_call_naming_no_corp_is_refused_and_not_sent() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let before = s.calls("/cgi-bin/user/get").await;
    let (status, v) = s.qy("/saas/cgi-bin/user/get?userid=zhaoliu", &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (400, Some(40013)), "{v}");
    assert_eq!(s.calls("/cgi-bin/user/get").await, before);
    assert_eq!(agent_of(&s, CORP_A).await.0, 200, "named, it goes");
}

/// WeCom failing `get_auth_info` right after the exchange (three times: the exchange's own
/// short retry) leaves the install without its agent id only until the `create_auth` is
/// delivered: that asks again, so JS-SDK `agentConfig` and the CRM's `X-WeCom-AgentId` work.
/// Whichever made the exchange (the endpoint's, or the delivery worker's when it took the
/// code first), the CRM hears of the install with its agent id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_id_missing_after_the_exchange_is_asked_for_again_before_delivery() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.control(
        "/_emulator/faults",
        serde_json::json!({"api": "/cgi-bin/service/v2/get_auth_info", "errcode": 60011, "count": 3}),
    )
    .await;
    s.install(CORP_A).await;
    let create_auth = create_auth_taken(&s);
    let agent = create_auth.header("x-wecom-agentid");
    assert!(!agent.is_empty() && agent != "0", "{agent:?}");
    s.gw().wait_log("kept without an agent id");
    s.gw().wait_log("authorisation changed: install refreshed");
    let log = s.gw().log();
    let line = log
        .lines()
        .find(|l| l.contains("authorisation changed: install refreshed"))
        .unwrap();
    assert!(!line.contains("agent_id=0"), "{line}");
}

/// An install whose permanent code WeCom refuses as soon as it is kept (40084 from
/// `get_auth_info`: an exchange answered after the corp removed the app again, or a new code
/// on its way) is not asked about again before its `create_auth` is delivered: asked while its
/// AuthCode lived, it held every later event of the suite, other corps' installs too, for ten
/// minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_code_wecom_refuses_holds_no_other_corps_install() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    // The exchange's own three tries, and the delivery worker's three.
    s.install_under(
        "/cgi-bin/service/v2/get_auth_info",
        serde_json::json!({"errcode": 40084, "count": 6}),
        CORP_A,
    )
    .await;
    s.wait_forwarded("create_auth", 1).await;
    tokio::task::block_in_place(|| {
        s.gw().wait_log(
            "authorisation info not refreshed: WeCom refuses the install's permanent code (40084); not asked again",
        )
    });
    s.install(CORP_B).await;
    assert_eq!(s.forwarded("create_auth").len(), 2);
    assert_eq!(agent_of(&s, CORP_B).await.0, 200);
}

/// Installs of several corps at once are exchanged side by side: with WeCom answering each
/// exchange 3 s late, three installs are all kept about 3 s after they came, not one after
/// another (a burst of installs behind one lock would outlast the codes' 10 minutes).
#[tokio::test]
async fn installs_of_several_corps_are_exchanged_side_by_side() {
    let s = Saas::start(Backend::Local, 2).await;
    s.push_ticket().await;
    s.control(
        "/_emulator/faults",
        serde_json::json!({"api": "/cgi-bin/service/v2/get_permanent_code", "delay_ms": 3000, "count": 3}),
    )
    .await;
    let corps = [CORP_A.to_owned(), extra_corp(0), extra_corp(1)];
    let started = std::time::Instant::now();
    for corp in &corps {
        s.control(
            "/_emulator/suites/install",
            serde_json::json!({"suite_id": SUITE, "corp_id": corp}),
        )
        .await;
    }
    s.wait_forwarded("create_auth", 3).await;
    for corp in &corps {
        while agent_of(&s, corp).await.0 != 200 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{corp} never kept"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    // One after another would take 9 s at least.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

/// `corp` removes the suite app; returns the `cancel_auth` the CRM got, as WeCom sent it.
async fn removed(s: &Saas, corp: &str) -> String {
    let before = s.forwarded("cancel_auth").len();
    s.control(
        "/_emulator/suites/cancel-auth",
        serde_json::json!({"suite_id": SUITE, "corp_id": corp}),
    )
    .await;
    s.wait_forwarded("cancel_auth", before + 1).await[before].clone()
}

/// `corp` removes the suite app, and WeCom's sends of its `cancel_auth` are lost: the message,
/// to deliver late.
async fn held_cancel(s: &Saas, corp: &str) -> String {
    let held = s
        .control(
            "/_emulator/suites/cancel-auth",
            serde_json::json!({"suite_id": SUITE, "corp_id": corp, "held": true}),
        )
        .await;
    held["xml"].as_str().unwrap().to_owned()
}

/// Corp A removes the app, installs it again `later`, and WeCom's `cancel_auth` is sent once
/// more: the install made since stays, and the copy reaches the CRM no second time.
async fn a_cancel_sent_again_after_a_reinstall(later: &str) {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let cancel = removed(&s, CORP_A).await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 404);
    s.advance(later).await;
    s.install(CORP_A).await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": cancel}),
    )
    .await;
    s.settled().await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 200, "the new install stays");
    assert_eq!(
        s.forwarded("cancel_auth").len(),
        1,
        "the copy is not queued"
    );
}

/// A `cancel_auth` replayed (a captured request, or WeCom's late retry) acts as of when it
/// happened: the corp's install made since stays.
#[tokio::test]
async fn a_replayed_cancel_auth_leaves_a_later_install_alone() {
    a_cancel_sent_again_after_a_reinstall("5m").await;
}

/// The same within the minute WeCom's clock is allowed ahead, where the copy's own time no
/// longer puts it before the reinstall: a message already queued does nothing again.
#[tokio::test]
async fn a_cancel_auth_sent_again_seconds_later_leaves_the_reinstall_alone() {
    a_cancel_sent_again_after_a_reinstall("3s").await;
}

/// WeCom's own time of an instruction the CRM got.
fn timestamp(xml: &str) -> u64 {
    let from = xml.find("<TimeStamp>").expect("a TimeStamp") + "<TimeStamp>".len();
    let to = from + xml[from..].find('<').unwrap();
    xml[from..to].parse().unwrap()
}

/// Installed, removed 10 s later, installed again 10 s after that, and the removal reaches the
/// gateway only 10 s after the reinstall (its first sends lost, WeCom's retry late): the
/// removal happened before the reinstall, and WeCom's own times say so. Ordered by arrival
/// (less than a minute late), it would delete the reinstall's permanent code.
#[tokio::test]
async fn a_cancel_auth_arriving_after_the_reinstall_it_preceded_leaves_it_alone() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let installed = timestamp(&s.forwarded("create_auth")[0]);
    s.advance("10s").await;
    let cancel = held_cancel(&s, CORP_A).await;
    // (WeCom's times are whole seconds of a clock that also runs: a second may tick between.)
    let removed = timestamp(&cancel);
    assert!(
        (installed + 10..=installed + 12).contains(&removed),
        "{removed}"
    );
    s.advance("10s").await;
    s.install(CORP_A).await;
    let reinstalled = timestamp(&s.forwarded("create_auth")[1]);
    assert!(
        (removed + 10..=removed + 12).contains(&reinstalled),
        "{reinstalled}"
    );
    s.advance("10s").await;
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": cancel}),
    )
    .await;
    s.settled().await;
    s.gw()
        .wait_log("a removal older than the corp's install: the install stays");
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!(status, 200, "the reinstall stays: {v}");
}

/// Removed and installed again within one second (the test clock does not move between the
/// two): WeCom's later step, the install, is kept, never thrown away after its `success`.
#[tokio::test]
async fn an_install_in_the_second_of_a_removal_is_kept() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    removed(&s, CORP_A).await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 404);
    s.install(CORP_A).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!(status, 200, "{v}");
}

#[tokio::test]
async fn cancel_auth_removes_the_corp_and_its_tokens() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
    s.control(
        "/_emulator/suites/cancel-auth",
        serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.wait_forwarded("cancel_auth", 1).await;
    let before = s.calls("/cgi-bin/user/get").await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (404, Some(40084)), "{v}");
    assert_eq!(
        s.calls("/cgi-bin/user/get").await,
        before,
        "nothing sent for a removed corp"
    );
    // The other corp goes on.
    assert_eq!(agent_of(&s, CORP_B).await.0, 200);
}

/// A corp that removes the app the moment it installed it: the `cancel_auth` arrives while the
/// install's exchange still runs, in the same second as the `create_auth` by WeCom's clock and
/// this one's. The removal is the later (it arrived later): the install is not kept when the
/// exchange ends, the corp is not served, and the suite's next install goes through. (Kept, it
/// named a permanent code WeCom no longer takes, and the queue waited on it.)
#[tokio::test]
async fn a_removal_in_the_same_second_as_its_install_wins() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"late_ms": 1500, "count": 1}),
        CORP_A,
    )
    .await;
    // Removed as soon as WeCom counts the corp installed (its exchange taken, the answer late).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = crate::common::client()
            .post(s.emu("/_emulator/suites/cancel-auth"))
            .json(&serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never installed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s
        .gw()
        .log()
        .contains("install not kept: the corp removed the app")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the install was kept:\n{}",
            s.gw().log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (404, Some(40084)), "{v}");
    // The suite's next install goes through. (Polled: the removed install's `create_auth`
    // may reach the CRM after this one's is counted.)
    s.install(CORP_B).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, v) = agent_of(&s, CORP_B).await;
        if status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{v}\n{}",
            s.gw().log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The other order in one second: a removal and the reinstall after it, reaching the gateway
/// reinstall first (its exchange under way), the removal milliseconds later. The removal found
/// the earlier install kept and removed it: it is that install's. The reinstall's exchange
/// keeps the reinstall when it ends (arrival order is not read as WeCom's here), and the
/// delivery worker, applying the removal again, leaves it alone (it removed another install
/// at the endpoint): the corp stays installed, as WeCom has it.
#[tokio::test]
async fn a_reinstall_arriving_just_before_the_removal_it_follows_stays() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.advance("10s").await;
    let held = held_cancel(&s, CORP_A).await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"late_ms": 1500, "count": 1}),
        CORP_A,
    )
    .await;
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": held}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.gw().log().matches("corp installed the app").count() < 2 {
        assert!(
            !s.gw().log().contains("install not kept"),
            "{}",
            s.gw().log()
        );
        assert!(std::time::Instant::now() < deadline, "{}", s.gw().log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Once the worker has been past the removal too.
    s.wait_forwarded("create_auth", 2).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !s
        .gw()
        .log()
        .contains("a removal older than the corp's install")
    {
        assert!(std::time::Instant::now() < deadline, "{}", s.gw().log());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!(status, 200, "{v}\n{}", s.gw().log());
}

async fn installs_survive_a_restart(backend: Backend) {
    let mut s = Saas::start(backend, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    s.restart(true).await;
    for corp in [CORP_A, CORP_B] {
        let (status, v) = agent_of(&s, corp).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (200, Some(0)),
            "{corp} after restart: {v}"
        );
    }
    // Remembered, not exchanged again; the ticket too (no new push was needed).
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 2);
}

/// The install is kept as soon as WeCom answers the exchange (the code is spent then): a crash
/// while `get_auth_info` is still asked (WeCom slow to answer it) loses nothing; after the
/// restart the agent id is asked again before the CRM hears of the install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_survives_a_crash_while_its_authorisation_info_is_asked() {
    let mut s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_auth_info",
        serde_json::json!({"delay_ms": 5000, "count": 1}),
        CORP_A,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.calls("/cgi-bin/service/v2/get_permanent_code").await == 0 {
        assert!(std::time::Instant::now() < deadline, "no exchange");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // WeCom answered the exchange; its get_auth_info is held for 5 s.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.restart(true).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    s.wait_forwarded("create_auth", 1).await;
    let create_auth = create_auth_taken(&s);
    let agent = create_auth.header("x-wecom-agentid");
    assert!(!agent.is_empty() && agent != "0", "{agent:?}");
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 1);
}

/// A stop (SIGTERM) while WeCom is answering an exchange (it spent the code at once, and
/// answers `late_ms` later) waits for it and keeps the install: ended at once, the process
/// would have left the code spent at WeCom and the permanent code nowhere.
async fn a_stop_during_an_exchange_keeps_the_install(late_ms: u64) {
    let mut s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"late_ms": late_ms, "count": 1}),
        CORP_A,
    )
    .await;
    let gw = s.gw();
    tokio::task::block_in_place(|| gw.wait_log("event=\"create_auth\""));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    s.gw().signal(15);
    let gw = &mut s.world.gateways[0];
    let limit = std::time::Duration::from_millis(late_ms + 20_000);
    let status = tokio::task::block_in_place(|| gw.wait_exit(limit));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        s.gw().log().contains("corp installed the app"),
        "{}",
        s.gw().log()
    );
    s.restart(false).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_an_exchange_waits_for_the_install_to_be_kept() {
    a_stop_during_an_exchange_keeps_the_install(3_000).await;
}

/// Also when WeCom answers later than a stop waits for requests (30 s): the stop waits for
/// the exchange (up to its own 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_for_an_exchange_longer_than_for_requests() {
    a_stop_during_an_exchange_keeps_the_install(33_000).await;
}

#[tokio::test]
async fn installs_survive_a_restart_with_the_local_store() {
    installs_survive_a_restart(Backend::Local).await;
}

#[tokio::test]
async fn installs_survive_a_restart_with_redis() {
    let redis = RedisServer::start();
    installs_survive_a_restart(Backend::Redis(redis.url())).await;
}

/// Two instances on Redis, WeCom answering the exchange 4.5 s late (the code spent at once):
/// the instance whose delivery worker did not take the callback gets 40078 for the code the
/// other is exchanging, and waits for that install rather than give the `create_auth` up
/// after a few seconds: the CRM heard nothing of an install the cluster kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_another_instance_is_exchanging_reaches_the_crm() {
    let redis = RedisServer::start();
    let s = Saas::start_instances(Backend::Redis(redis.url()), 0, 2).await;
    s.push_ticket().await;
    // One install's callback to each instance: one of them is not the delivery worker's.
    for (i, corp) in [CORP_A, CORP_B].into_iter().enumerate() {
        s.control(
            "/_emulator/callbacks",
            serde_json::json!({
                "app": "saas",
                "url": s.gateways[i].url("/_gateway/callback/saas"),
                "token": TOKEN,
                "encoding_aes_key": AES_KEY,
                "kind": "instruction",
                "suite_id": SUITE,
            }),
        )
        .await;
        s.install_under(
            "/cgi-bin/service/v2/get_permanent_code",
            serde_json::json!({"late_ms": 4500, "count": 1}),
            corp,
        )
        .await;
        s.wait_forwarded("create_auth", i + 1).await;
        let (status, v) = agent_of(&s, corp).await;
        assert_eq!(status, 200, "{v}");
    }
    for gw in &s.gateways {
        assert!(!gw.log().contains("install not kept"), "{}", gw.log());
    }
}

/// An instance that did not take the install learned it from Redis; while Redis does not
/// answer it goes on serving that corp (SPEC section 15), rather than dropping it at its next
/// look because its own copy of the store has no such install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_learned_from_redis_is_served_while_redis_is_away() {
    let mut redis = RedisServer::start();
    let s = Saas::start_instances(Backend::Redis(redis.url()), 0, 2).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let second = |path: String| {
        let url = format!(
            "http://127.0.0.1:{}{path}",
            s.gateways[1].qyapi_port.unwrap()
        );
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let path = format!("/saas/{CORP_A}/cgi-bin/user/get?userid={}", member(CORP_A));
    let (status, v) = second(path.clone()).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    redis.stop();
    // Past the instance's next look at the install.
    s.advance("6s").await;
    let (status, v) = second(path).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

/// A `create_auth` is about the corp its AuthCode installed: a message naming another corp
/// beside it (`AuthCorpId`) does not make the CRM provision that one.
#[tokio::test]
async fn create_auth_reaches_the_crm_with_the_corp_its_code_installed() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    let installed = s
        .control(
            "/_emulator/suites/install",
            serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}),
        )
        .await;
    s.wait_forwarded("create_auth", 1).await;
    let code = installed["auth_code"].as_str().unwrap();
    let other = extra_corp(0);
    let forged = format!(
        "<xml><SuiteId><![CDATA[{SUITE}]]></SuiteId><InfoType><![CDATA[create_auth]]></InfoType><TimeStamp>1</TimeStamp><AuthCode><![CDATA[{code}]]></AuthCode><AuthCorpId><![CDATA[{other}]]></AuthCorpId></xml>"
    );
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": forged}),
    )
    .await;
    s.wait_forwarded("create_auth", 2).await;
    let tag = "<InfoType><![CDATA[create_auth]]></InfoType>";
    let corps: Vec<String> = s
        .crm
        .taken()
        .into_iter()
        .filter(|r| r.body.contains(tag))
        .map(|r| r.header("x-wecom-corpid").to_owned())
        .collect();
    assert_eq!(corps, [CORP_A, CORP_A]);
}

/// WeCom answering the exchange of an AuthCode later than a call's 5 s: it spends the code when
/// it answers, so an answer given up on was an install lost (asked again: 40078, "used"). The
/// exchange waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_wecom_answers_after_six_seconds_is_kept() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"late_ms": 6000, "count": 1}),
        CORP_A,
    )
    .await;
    s.wait_forwarded("create_auth", 1).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert!(
        !s.gw().log().contains("install not kept"),
        "{}",
        s.gw().log()
    );
}

/// The store stops taking writes while an AuthCode is being exchanged (Redis pauses writes
/// here; a full disk does the same to the local file): the code is spent by then, and asking
/// again is refused (40078). The install is held and kept once the store takes writes, never
/// exchanged twice, and the CRM hears of it after it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_the_store_refused_at_first_is_kept_once_it_takes_writes() {
    let redis = RedisServer::start();
    let s = Saas::start(Backend::Redis(redis.url()), 0).await;
    s.push_ticket().await;
    s.install_while_the_exchange_is_slow(CORP_A).await;
    s.settled().await;
    // WeCom answers the exchange 3 s late; the store takes no write from 1 s to 7 s.
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(6000)
        .arg("WRITE")
        .query_async(&mut conn)
        .await
        .unwrap();
    s.gw().wait_log("an install the store did not take");
    assert!(
        s.forwarded("create_auth").is_empty(),
        "not before it is kept"
    );
    s.wait_forwarded("create_auth", 1).await;
    s.gw().wait_log("install kept once the store took it");
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 1);
    assert!(!s.gw().log().contains("install not kept"));
}

#[tokio::test]
async fn a_gateway_killed_right_after_answering_create_auth_keeps_the_install() {
    let mut s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    // The exchange is slow at WeCom this once: the gateway dies while it is under way, after
    // WeCom heard `success`.
    s.install_while_the_exchange_is_slow(CORP_A).await;
    let log = s.settled().await;
    assert!(
        log.to_string().contains("delivered"),
        "answered at once: {log}"
    );
    assert!(s.forwarded("create_auth").is_empty());
    s.restart(true).await;
    s.wait_forwarded("create_auth", 1).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

/// A corp that installs and removes the app while the exchange of its install is still under
/// way (WeCom slow, or the exchange left to the delivery worker after a restart): the late
/// exchange keeps nothing, the install being older than the removal.
#[tokio::test]
async fn an_install_whose_exchange_ends_after_its_removal_is_not_kept() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_while_the_exchange_is_slow(CORP_A).await;
    s.settled().await;
    s.advance("1m").await;
    // WeCom's cancel_auth, a minute later, while the exchange still waits for its answer.
    let cancel = format!(
        "<xml><SuiteId><![CDATA[{SUITE}]]></SuiteId><InfoType><![CDATA[cancel_auth]]></InfoType><AuthCorpId><![CDATA[{CORP_A}]]></AuthCorpId></xml>"
    );
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": cancel}),
    )
    .await;
    s.wait_forwarded("create_auth", 1).await;
    s.wait_forwarded("cancel_auth", 1).await;
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 1);
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (404, Some(40084)), "{v}");
}

#[tokio::test]
async fn a_custom_app_takes_its_corp_tokens_by_gettoken_and_a_reset_permanent_code_replaces_them() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket_of(CUSTOM_SUITE).await;
    s.install_of(CUSTOM_SUITE, CORP_A).await;
    let path = format!("/custom/{CORP_A}/cgi-bin/user/get?userid=zhaoliu");
    let gettokens = s.calls("/cgi-bin/gettoken").await;
    let (status, v) = s.qy(&path, &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    // 代开发: the permanent code is the app's secret in the corp, through plain gettoken.
    assert_eq!(s.calls("/cgi-bin/gettoken").await, gettokens + 1);
    assert_eq!(s.calls("/cgi-bin/service/get_corp_token").await, 0);

    // The corp resets the code: the old code and its tokens die at WeCom; the gateway
    // exchanges the new AuthCode and goes on with a token of the new code.
    s.control(
        "/_emulator/suites/reset-permanent-code",
        serde_json::json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.wait_forwarded("reset_permanent_code", 1).await;
    assert_eq!(s.calls("/cgi-bin/service/v2/get_permanent_code").await, 2);
    let (status, v) = s.qy(&path, &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    assert_eq!(
        s.calls("/cgi-bin/gettoken").await,
        gettokens + 2,
        "a token of the new code"
    );
}

/// A 代开发 app's `reset_permanent_code` keeps the corp's agent id while WeCom is asked for it
/// again: sign-ins go on (a new install written without it answered them 503 until
/// `get_auth_info` came back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_permanent_code_keeps_the_agent_id_while_it_is_asked_again() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket_of(CUSTOM_SUITE).await;
    s.install_of(CUSTOM_SUITE, CORP_A).await;
    let login = s.gw().url(&format!(
        "/_gateway/login?app=custom&corp={CORP_A}&return_to=/app/"
    ));
    let http = crate::common::client();
    let first = http.get(&login).send().await.unwrap();
    assert_eq!(first.status(), 302);
    let agent = first.headers()["location"].to_str().unwrap().to_owned();
    assert!(agent.contains("agentid="), "{agent}");
    s.control(
        "/_emulator/faults",
        serde_json::json!({"api": "/cgi-bin/service/v2/get_auth_info", "delay_ms": 4000, "count": 1}),
    )
    .await;
    s.control(
        "/_emulator/suites/reset-permanent-code",
        serde_json::json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_A}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.calls("/cgi-bin/service/v2/get_permanent_code").await < 2 {
        assert!(std::time::Instant::now() < deadline, "no exchange");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The new code is kept; its get_auth_info is held 4 s.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let during = http.get(&login).send().await.unwrap();
    assert_eq!(during.status(), 302);
    let location = during.headers()["location"].to_str().unwrap();
    let agent_of = |l: &str| {
        l.split("agentid=")
            .nth(1)
            .map(|r| r.split('&').next().unwrap_or("").to_owned())
    };
    assert_eq!(agent_of(location), agent_of(&agent), "{location}");
}

#[tokio::test]
async fn an_sdk_gets_a_handle_naming_the_app_and_the_corp() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    let gettoken = |corp: &str, secret: &str| {
        format!("/saas/{corp}/cgi-bin/gettoken?corpid={corp}&corpsecret={secret}")
    };
    let (status, v) = s.qy(&gettoken(CORP_A, &suite_secret()), &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    let handle = v["access_token"].as_str().unwrap().to_owned();
    assert!(handle.starts_with("wgw1.saas~"), "{handle}");
    // The handle alone picks the app and the corp, as WxJava would send it.
    let (_, a) = s
        .qy(
            &format!("/cgi-bin/user/get?access_token={handle}&userid=zhaoliu"),
            &[],
        )
        .await;
    assert_eq!(a["errcode"], 0, "corp A's member through A's handle: {a}");
    let (_, b) = s
        .qy(
            &format!("/cgi-bin/user/get?access_token={handle}&userid=qianqi"),
            &[],
        )
        .await;
    assert_ne!(b["errcode"], 0, "corp B's member is not A's: {b}");
    // The handle and the header must agree; a wrong secret gets no handle.
    let (status, _) = s
        .qy(
            &format!("/cgi-bin/user/get?access_token={handle}&userid=qianqi"),
            &[("X-Gateway-Corp", CORP_B)],
        )
        .await;
    assert_eq!(status, 400);
    let (_, v) = s.qy(&gettoken(CORP_A, "not-the-secret"), &[]).await;
    assert_eq!(v["errcode"], 40001, "{v}");
    // The app named by `X-Gateway-App` instead of the path, the corp by the path or by
    // `X-Gateway-Corp`: the same handle, the same refusal, and a wrong secret neither reaches
    // WeCom nor costs a corp token.
    let corp_tokens = s.calls("/cgi-bin/service/get_corp_token").await;
    for (path, corp_header) in [
        (format!("/{CORP_A}/cgi-bin/gettoken"), None),
        ("/cgi-bin/gettoken".to_owned(), Some(CORP_A)),
    ] {
        let mut headers = vec![("X-Gateway-App", "saas")];
        headers.extend(corp_header.map(|c| ("X-Gateway-Corp", c)));
        let good = format!("{path}?corpid={CORP_A}&corpsecret={}", suite_secret());
        let (status, v) = s.qy(&good, &headers).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (200, Some(0)),
            "{path}: {v}"
        );
        assert!(
            v["access_token"]
                .as_str()
                .unwrap()
                .starts_with("wgw1.saas~"),
            "{v}"
        );
        for _ in 0..5 {
            let bad = format!("{path}?corpid={CORP_A}&corpsecret=not-the-secret");
            let (_, v) = s.qy(&bad, &headers).await;
            assert_eq!(v["errcode"], 40001, "{path}: {v}");
        }
    }
    assert_eq!(
        s.calls("/cgi-bin/service/get_corp_token").await,
        corp_tokens,
        "no corp token burnt"
    );
    // Nothing of this went to WeCom's gettoken.
    assert_eq!(s.calls("/cgi-bin/gettoken").await, 0);
    // A corp that removed the app gets no handle, in any spelling: 40084, as its calls.
    removed(&s, CORP_B).await;
    for (path, headers) in [
        (gettoken(CORP_B, &suite_secret()), vec![]),
        (
            format!(
                "/cgi-bin/gettoken?corpid={CORP_B}&corpsecret={}",
                suite_secret()
            ),
            vec![("X-Gateway-App", "saas"), ("X-Gateway-Corp", CORP_B)],
        ),
    ] {
        let (status, v) = s.qy(&path, &headers).await;
        assert_eq!(
            (status, v["errcode"].as_i64()),
            (404, Some(40084)),
            "{path}: {v}"
        );
    }
}

/// An instruction names its suite: one naming another (a key shared by mistake) is refused,
/// never kept (its ticket would take this suite's place, and the suite token fail).
#[tokio::test]
async fn an_instruction_for_another_suite_is_refused() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    let forged = "<xml><SuiteId><![CDATA[wwanothersuite0001]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>9999999999</TimeStamp><SuiteTicket><![CDATA[FORGED]]></SuiteTicket></xml>";
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": forged}),
    )
    .await;
    s.settled().await;
    s.gw().wait_log("callback refused with 400");
    // The suite's own ticket still fetches its token: an install goes through.
    s.install(CORP_A).await;
    let (status, v) = agent_of(&s, CORP_A).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

/// The provider's corp id ends only a URL check's `echostr`: an instruction encrypted for it
/// (by whoever holds the suite's key: WeCom never sends one) is refused, and the URL check it
/// is meant for still passes.
#[tokio::test]
async fn a_message_encrypted_for_the_provider_corp_is_refused_and_its_url_check_passes() {
    let s = Saas::start(Backend::Local, 0).await;
    let provider = crate::common::world::Ids::of(&scenario(0)).provider_corp;
    let crypto = wecom_api::CallbackCrypto::new(TOKEN, AES_KEY).unwrap();
    let now = crate::common::callbacks::now_secs().to_string();
    let xml = format!(
        "<xml><SuiteId><![CDATA[{SUITE}]]></SuiteId><InfoType><![CDATA[suite_ticket]]></InfoType><TimeStamp>{now}</TimeStamp><SuiteTicket><![CDATA[FROMPROVIDERID]]></SuiteTicket></xml>"
    );
    let sealed = crypto.seal(&xml, &provider, &now, "12345");
    let url = s.gw().url(&format!(
        "/_gateway/callback/saas?msg_signature={}&timestamp={}&nonce={}",
        sealed.msg_signature, sealed.timestamp, sealed.nonce
    ));
    let body = wecom_api::callback::envelope(&provider, "", &sealed.encrypt);
    let r = crate::common::client()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let check = crypto.seal("4389223112341", &provider, &now, "777");
    let r = crate::common::client()
        .get(s.gw().url("/_gateway/callback/saas"))
        .query(&[
            ("msg_signature", check.msg_signature.as_str()),
            ("timestamp", now.as_str()),
            ("nonce", "777"),
            ("echostr", check.encrypt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "4389223112341");
}

/// Two exchanges of one corp ending out of order: the install's `get_permanent_code` answered
/// 4 s late, the `reset_permanent_code` made a second later exchanged at once. The install's
/// permanent code, dead at WeCom since the reset, must not replace the reset's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_exchange_ending_last_leaves_the_newer_permanent_code() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket_of(CUSTOM_SUITE).await;
    s.control(
        "/_emulator/faults",
        serde_json::json!({"api": "/cgi-bin/service/v2/get_permanent_code", "late_ms": 4000, "count": 1}),
    )
    .await;
    s.control(
        "/_emulator/suites/install",
        serde_json::json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_A}),
    )
    .await;
    // Its exchange asked at once (the code spent at WeCom), answered 4 s after that.
    let gw = s.gw();
    tokio::task::block_in_place(|| gw.wait_log("event=\"create_auth\""));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.advance("1s").await;
    s.control(
        "/_emulator/suites/reset-permanent-code",
        serde_json::json!({"suite_id": CUSTOM_SUITE, "corp_id": CORP_A}),
    )
    .await;
    // Queued behind the install's create_auth, which waits for its exchange.
    s.wait_forwarded("reset_permanent_code", 1).await;
    let path = format!("/custom/{CORP_A}/cgi-bin/user/get?userid=zhaoliu");
    let (status, v) = s.qy(&path, &[]).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    s.gw()
        .wait_log("install not kept: the corp's kept install is newer");
}

/// A removal arriving after the reinstall that came after it leaves the install, is not
/// forwarded (the CRM heard of the reinstall; told of the removal now, it would take the corp
/// away while the gateway serves it), and ends only the sessions of the install it removed.
#[tokio::test]
async fn a_stale_cancel_auth_is_not_forwarded_and_ends_no_session_of_the_reinstall() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let mut before = crate::logins::signed_in(&s, CORP_A, "zhaoliu").await;
    s.advance("10s").await;
    let held = held_cancel(&s, CORP_A).await;
    s.advance("10s").await;
    s.install(CORP_A).await;
    let mut after = crate::logins::signed_in(&s, CORP_A, "zhaoliu").await;
    s.advance("10s").await;
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": held}),
    )
    .await;
    s.settled().await;
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
    assert_eq!(
        crate::logins::page(&s, &mut before).await.0,
        401,
        "the removed install's"
    );
    assert_eq!(
        crate::logins::page(&s, &mut after).await.0,
        200,
        "the reinstall's session"
    );
    s.gw()
        .wait_log("a removal older than the corp's install: the install stays");
    assert!(s.forwarded("cancel_auth").is_empty());
}

/// A refusal of the exchange that is not about the code (a rate limit) is tried again while
/// the code lives: the install is kept and the CRM hears of it, naming the corp (given up at
/// once, one exchange dropped the `create_auth` while the other kept the install).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_refused_for_a_rate_limit_is_tried_again_and_reaches_the_crm() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"errcode": 45009, "count": 2}),
        CORP_A,
    )
    .await;
    s.wait_forwarded("create_auth", 1).await;
    let create_auth = create_auth_taken(&s);
    assert_eq!(create_auth.header("x-wecom-corpid"), CORP_A);
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
}

/// A rate limit lasting past an instruction's usual tries (the worker's retries shortened a
/// thousandfold here) is waited out while the code lives: the CRM hears of the install naming
/// its corp, not a `create_auth` naming none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_rate_limit_on_the_exchange_is_waited_out() {
    let s = Saas::start_with(Backend::Local, 0, 1, &[("WGW_TEST_FAST_RETRY", "1")]).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"errcode": 45009, "count": 30}),
        CORP_A,
    )
    .await;
    s.wait_forwarded("create_auth", 1).await;
    let create_auth = create_auth_taken(&s);
    assert_eq!(create_auth.header("x-wecom-corpid"), CORP_A);
}

/// `CORP_A` installs while WeCom refuses `count` exchanges with `errcode`: the install is not
/// kept (logged with `why`) and its `create_auth` not forwarded.
async fn refused_install(errcode: i64, count: u32, why: &str) -> Saas {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install_under(
        "/cgi-bin/service/v2/get_permanent_code",
        serde_json::json!({"errcode": errcode, "count": count}),
        CORP_A,
    )
    .await;
    let gw = s.gw();
    tokio::task::block_in_place(|| {
        gw.wait_log(&format!("install not kept: {why}"));
        gw.wait_log("event acknowledged and not forwarded");
    });
    assert!(s.forwarded("create_auth").is_empty());
    s
}

/// A refusal that does not pass (no privilege, 60011) is final: the install is not kept, its
/// `create_auth` not forwarded, and WeCom is not asked again for ten minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_refusal_of_the_exchange_is_not_asked_again() {
    let s = refused_install(60011, 50, "WeCom refused the exchange").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(s.calls("/cgi-bin/service/v2/get_permanent_code").await <= 2);
}

/// An install whose AuthCode WeCom refuses (used already, or older than its ten minutes)
/// installed nothing: it is logged, and its `create_auth` is not forwarded (the CRM would be
/// told of an install naming no corp); the queue goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_auth_whose_code_wecom_refuses_is_not_forwarded() {
    let s = refused_install(40078, 2, "the AuthCode was used already").await;
    // The next event is delivered.
    s.install(CORP_B).await;
    assert_eq!(s.forwarded("create_auth").len(), 1);
}

/// The same late removal arriving while the reinstall's exchange still runs: queued then (no
/// newer install was kept yet), found older than the reinstall when the delivery worker reaches
/// it, and acknowledged without reaching the CRM.
#[tokio::test]
async fn a_late_cancel_auth_queued_during_the_reinstalls_exchange_is_not_forwarded() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.advance("10s").await;
    let held = held_cancel(&s, CORP_A).await;
    s.advance("10s").await;
    s.install_while_the_exchange_is_slow(CORP_A).await;
    s.control(
        "/_emulator/callbacks",
        serde_json::json!({"app": "saas", "xml": held}),
    )
    .await;
    s.wait_forwarded("create_auth", 2).await;
    s.gw()
        .wait_log("a removal older than the corp's install: the install stays");
    s.gw()
        .wait_log("event acknowledged and not forwarded: a removal older than the corp's install");
    assert_eq!(agent_of(&s, CORP_A).await.0, 200);
    assert!(s.forwarded("cancel_auth").is_empty());
}

/// A removal the CRM refused for a while, then a reinstall: the removal is older than the
/// install kept by the time the CRM takes events again, but stands before the reinstall's
/// `create_auth` in the queue, so the CRM hears both, in the order they happened — whether or
/// not the gateway was killed and started again in between (the decision is read from what is
/// kept, not from what the worker remembered).
async fn a_removal_the_crm_refused_reaches_it_before_the_reinstall(kill: bool) {
    let mut s = Saas::start_with(Backend::Local, 0, 1, &[("WGW_TEST_FAST_RETRY", "1")]).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.crm
        .state
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.control(
        "/_emulator/suites/cancel-auth",
        serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s
        .crm
        .attempts()
        .iter()
        .any(|r| r.body.contains("cancel_auth"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the removal never tried"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.advance("10s").await;
    s.control(
        "/_emulator/suites/install",
        serde_json::json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    // Waited for without blocking this runtime: the emulator answering the exchange runs on it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.gw().log().matches("corp installed the app").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the reinstall was never kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if kill {
        s.restart(true).await;
    }
    s.crm
        .state
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    s.wait_forwarded("create_auth", 2).await;
    let order: Vec<&str> = s
        .crm
        .taken()
        .iter()
        .filter_map(|r| {
            ["create_auth", "cancel_auth"].into_iter().find(|t| {
                r.body
                    .contains(&format!("<InfoType><![CDATA[{t}]]></InfoType>"))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    assert_eq!(order, ["create_auth", "cancel_auth", "create_auth"]);
    assert_eq!(agent_of(&s, CORP_A).await.0, 200, "the reinstall is served");
}

#[tokio::test]
async fn a_removal_the_crm_refused_reaches_it_before_the_reinstall_without_a_restart() {
    a_removal_the_crm_refused_reaches_it_before_the_reinstall(false).await;
}

#[tokio::test]
async fn a_removal_the_crm_refused_reaches_it_before_the_reinstall_after_a_kill() {
    a_removal_the_crm_refused_reaches_it_before_the_reinstall(true).await;
}
