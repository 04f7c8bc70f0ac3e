//! A suite's data callbacks (SPEC sections 18 and 20): accepted only from corps that
//! installed it, acted on for that corp, forwarded naming it; `change_auth` refreshes.

use serde_json::json;

use crate::common::callbacks::Backend;
use crate::common::client;
use crate::saas::*;

/// The first event the CRM took whose body holds `needle` (waited for, 30 s at most).
async fn taken_with(s: &Saas, needle: &str) -> crate::common::callbacks::Received {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(r) = s.crm.taken().into_iter().find(|r| r.body.contains(needle)) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle} forwarded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_installed_corps_member_deleted_ends_their_sessions_and_reaches_the_crm_with_the_corp() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.register_data().await;
    let mut b = crate::logins::signed_in(&s, CORP_A, "zhaoliu").await;
    assert_eq!(crate::logins::page(&s, &mut b).await.0, 200);
    s.control(
        "/_emulator/members/delete",
        json!({"userid": "zhaoliu", "corp_id": CORP_A}),
    )
    .await;
    s.settled().await;
    assert_eq!(
        crate::logins::page(&s, &mut b).await.0,
        401,
        "zhaoliu left corp A"
    );
    // The CRM hears of it, told which corp.
    let got = taken_with(&s, "delete_user").await;
    assert_eq!(got.header("x-wecom-corpid"), CORP_A);
    assert_eq!(got.header("x-wecom-agentid"), SUITE_AGENT.to_string());
}

/// WeCom tells a third-party app of its corps' member and contact changes at its instruction
/// URL (`<InfoType>change_contact</InfoType>`, `<AuthCorpId>`), not only at the data URL:
/// acted on the same way for a corp that installed the app, and for no other.
#[tokio::test]
async fn a_member_deleted_told_as_an_instruction_ends_their_sessions() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let mut b = crate::logins::signed_in(&s, CORP_A, "zhaoliu").await;
    assert_eq!(crate::logins::page(&s, &mut b).await.0, 200);
    let instruction = |corp: &str| {
        format!(
            "<xml><SuiteId><![CDATA[{SUITE}]]></SuiteId><AuthCorpId><![CDATA[{corp}]]></AuthCorpId>\
             <InfoType><![CDATA[change_contact]]></InfoType><TimeStamp>{}</TimeStamp>\
             <ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[zhaoliu]]></UserID></xml>",
            crate::common::callbacks::now_secs()
        )
    };
    // About a corp that has not installed the app: nothing ends.
    s.control(
        "/_emulator/callbacks",
        json!({"app": "saas", "xml": instruction(CORP_B)}),
    )
    .await;
    s.wait_forwarded("change_contact", 1).await;
    assert_eq!(crate::logins::page(&s, &mut b).await.0, 200);
    s.control(
        "/_emulator/callbacks",
        json!({"app": "saas", "xml": instruction(CORP_A)}),
    )
    .await;
    s.wait_forwarded("change_contact", 2).await;
    assert_eq!(
        crate::logins::page(&s, &mut b).await.0,
        401,
        "zhaoliu left corp A"
    );
}

/// A message at the instruction URL (encrypted for the suite, not for a corp) written as a
/// data event, naming an installed corp only in `ToUserName`: what the sender wrote there is
/// not the corp it was sent for. Nothing is acted on, and the CRM is told no corp.
#[tokio::test]
async fn a_to_user_name_on_an_instruction_names_no_corp() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let mut b = crate::logins::signed_in(&s, CORP_A, "zhaoliu").await;
    assert_eq!(crate::logins::page(&s, &mut b).await.0, 200);
    let xml = format!(
        "<xml><ToUserName><![CDATA[{CORP_A}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event>\
         <ChangeType><![CDATA[delete_user]]></ChangeType><UserID><![CDATA[zhaoliu]]></UserID></xml>",
        crate::common::callbacks::now_secs()
    );
    s.control("/_emulator/callbacks", json!({"app": "saas", "xml": xml}))
        .await;
    let got = taken_with(&s, "delete_user").await;
    assert_eq!(got.header("x-wecom-corpid"), "");
    assert_eq!(crate::logins::page(&s, &mut b).await.0, 200);
}

#[tokio::test]
async fn a_data_callback_encrypted_for_a_corp_without_the_app_is_refused() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let now = crate::common::callbacks::now_secs().to_string();
    // `to` in `ToUserName`, encrypted for `corp`.
    let post_to = |to: &str, corp: &str| {
        let xml = wecom_api::XmlMessage::from_pairs([
            ("ToUserName", to.to_owned()),
            ("FromUserName", "sys".to_owned()),
            ("CreateTime", now.clone()),
            ("MsgType", "event".to_owned()),
            ("Event", "change_contact".to_owned()),
            ("ChangeType", "delete_user".to_owned()),
            ("UserID", "zhaoliu".to_owned()),
        ])
        .to_xml();
        let corp = corp.to_owned();
        let s = &s;
        async move { post_sealed(s, &xml, &corp).await }
    };
    let post = |corp: &str| post_to(corp, corp);
    // Encrypted for A, naming B as the corp of a change (the form of an instruction): the
    // delivery would act on B.
    let naming = wecom_api::XmlMessage::from_pairs([
        ("ToUserName", CORP_A.to_owned()),
        ("AuthCorpId", CORP_B.to_owned()),
        ("InfoType", "change_contact".to_owned()),
        ("TimeStamp", now.clone()),
        ("ChangeType", "delete_user".to_owned()),
        ("UserID", "zhaoliu".to_owned()),
    ])
    .to_xml();
    let naming = post_sealed(&s, &naming, CORP_A).await;
    assert_eq!(
        naming, 400,
        "AuthCorpId is not the corp it was encrypted for"
    );
    assert_eq!(post(CORP_B).await, 400, "corp B has not installed the app");
    assert_eq!(post(CORP_A).await, 200, "corp A has");
    // Both installed: a message encrypted for A names A, never B (whose sessions it would end
    // and whose CRM headers it would carry).
    s.install(CORP_B).await;
    assert_eq!(
        post_to(CORP_B, CORP_A).await,
        400,
        "encrypted for A, about B"
    );
    assert_eq!(post(CORP_B).await, 200, "corp B now has the app");
}

/// Two corps' messages that share a `MsgId` (each corp numbers its own) are two messages: the
/// second is not taken for a copy of the first and dropped.
#[tokio::test]
async fn two_corps_messages_with_one_msg_id_are_both_delivered() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    let now = crate::common::callbacks::now_secs().to_string();
    for (corp, text) in [(CORP_A, "from-a"), (CORP_B, "from-b"), (CORP_A, "from-a")] {
        let xml = wecom_api::XmlMessage::from_pairs([
            ("ToUserName", corp.to_owned()),
            ("FromUserName", "zhaoliu".to_owned()),
            ("CreateTime", now.clone()),
            ("MsgType", "text".to_owned()),
            ("Content", text.to_owned()),
            ("MsgId", "7000000000000000001".to_owned()),
            ("AgentID", "1000005".to_owned()),
        ])
        .to_xml();
        assert_eq!(post_sealed(&s, &xml, corp).await, 200);
    }
    assert_eq!(
        taken_with(&s, "from-b").await.header("x-wecom-corpid"),
        CORP_B
    );
    assert_eq!(
        taken_with(&s, "from-a").await.header("x-wecom-corpid"),
        CORP_A
    );
    // WeCom's retry of A's message (the third post) is still a copy.
    let a_copies = s
        .crm
        .taken()
        .iter()
        .filter(|r| r.body.contains("from-a"))
        .count();
    assert_eq!(a_copies, 1);
    let metrics = s.gw().metrics().await;
    assert!(
        metrics.contains(r#"wgw_events_total{app="saas",event="msg/text",result="duplicate"} 1"#),
        "{metrics}"
    );
}

/// `xml` posted to the suite's callback URL, encrypted for `corp`: the answer's status.
async fn post_sealed(s: &Saas, xml: &str, corp: &str) -> u16 {
    let crypto = wecom_api::CallbackCrypto::new(TOKEN, AES_KEY).unwrap();
    let now = crate::common::callbacks::now_secs().to_string();
    let sealed = crypto.seal(xml, corp, &now, "12345");
    let url = s.gw().url(&format!(
        "/_gateway/callback/saas?msg_signature={}&timestamp={}&nonce={}",
        sealed.msg_signature, sealed.timestamp, sealed.nonce
    ));
    let body = wecom_api::callback::envelope(corp, "1000005", &sealed.encrypt);
    client()
        .post(url)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A `change_auth` whose re-read of the authorisation WeCom keeps refusing is refreshed apart
/// from the queue: the event reaches the CRM after a few seconds without it, and the app's
/// later events, another corp's included, are not held back.
#[tokio::test]
async fn a_change_auth_wecom_keeps_refusing_does_not_hold_the_queue() {
    change_auth_with_get_auth_info_failing(json!({"errcode": 60011})).await;
}

/// The same with a WeCom that does not answer `get_auth_info` at all: each refresh is three
/// calls of 5 s; on the queue, six refreshes held every later event a minute and a half.
#[tokio::test]
async fn a_change_auth_whose_refresh_hangs_does_not_hold_the_queue() {
    change_auth_with_get_auth_info_failing(json!({"delay_ms": 60_000})).await;
}

async fn change_auth_with_get_auth_info_failing(fault: serde_json::Value) {
    let s = Saas::start_with(Backend::Local, 0, 1, &[("WGW_TEST_FAST_RETRY", "1")]).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    s.install(CORP_B).await;
    let mut fault = fault;
    fault["api"] = "/cgi-bin/service/v2/get_auth_info".into();
    fault["count"] = 100_000.into();
    s.control("/_emulator/faults", fault).await;
    s.control(
        "/_emulator/suites/change-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.wait_forwarded("change_auth", 1).await;
    s.gw()
        .wait_log("change_auth forwarded while its refresh goes on");
    // The next event, another corp's removal, reaches the CRM behind it.
    s.control(
        "/_emulator/suites/cancel-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_B}),
    )
    .await;
    s.wait_forwarded("cancel_auth", 1).await;
    // Corp A's install is as it was: still served.
    let (status, v) = s
        .qy(
            &format!("/saas/{CORP_A}/cgi-bin/user/get?userid=zhaoliu"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// `create_auth` names only its AuthCode: the CRM is told the corp and agent the exchange
/// found, so it can set the tenant up when the install happens.
#[tokio::test]
async fn create_auth_reaches_the_crm_naming_the_corp_it_installed() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let got = s
        .crm
        .taken()
        .into_iter()
        .find(|r| r.body.contains("create_auth"))
        .unwrap();
    assert_eq!(got.header("x-wecom-corpid"), CORP_A);
    assert!(
        got.header("x-wecom-agentid")
            .parse::<u64>()
            .is_ok_and(|a| a > 0),
        "{:?}",
        got.header("x-wecom-agentid")
    );
}

#[tokio::test]
async fn change_auth_refreshes_the_install_and_reaches_the_crm() {
    let s = Saas::start(Backend::Local, 0).await;
    s.push_ticket().await;
    s.install(CORP_A).await;
    let infos = s.calls("/cgi-bin/service/v2/get_auth_info").await;
    s.control(
        "/_emulator/suites/change-auth",
        json!({"suite_id": SUITE, "corp_id": CORP_A}),
    )
    .await;
    s.wait_forwarded("change_auth", 1).await;
    assert_eq!(
        s.calls("/cgi-bin/service/v2/get_auth_info").await,
        infos + 1,
        "the authorisation info is read again"
    );
    let got = s
        .crm
        .taken()
        .into_iter()
        .find(|r| r.body.contains("change_auth"))
        .unwrap();
    assert_eq!(got.header("x-wecom-corpid"), CORP_A);
}
