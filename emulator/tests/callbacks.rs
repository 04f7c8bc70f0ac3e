//! Callbacks sent like WeCom (issue 17): URL verification first, then the encrypted, signed
//! POST; retries when no 200 comes back in time; control calls that change the world send the
//! real events. A receiver in the test checks every signature and decrypts with `wecom-api`.

mod common;

use std::time::Duration;

use common::receiver::{answer, Answer, Receiver};
use common::*;
use serde_json::{json, Value};

/// The demo scenario (two members, two customers) with fast callback timings.
fn scenario(extra_settings: &str) -> emulator::Scenario {
    let text = emulator::Scenario::demo_toml().replace(
        "callback_timeout = \"5s\"",
        &format!("callback_timeout = \"300ms\"\ncallback_retry_delay = \"10ms\"\n{extra_settings}"),
    );
    emulator::Scenario::from_toml(&text).unwrap()
}

async fn with_receiver() -> (Harness, Receiver) {
    let h = start_with(scenario("")).await;
    let r = Receiver::start(&[CORP]).await;
    h.register("crm", &r.url, json!({"agent_id": AGENT})).await;
    (h, r)
}

#[tokio::test]
async fn a_member_deleted_reaches_the_receiver_verified_signed_and_encrypted() {
    let (h, r) = with_receiver().await;
    h.advance("1000s").await;
    let now = h.get("/_emulator/state").await["now_ms"].as_u64().unwrap() / 1000;
    let sent = h.control("members/delete", json!({"userid": "lisi"})).await;
    let log = h.callbacks().await;
    assert!(r.refused().is_empty(), "{:?}", r.refused());
    let got = r.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[0].kind, "verify",
        "the URL is verified before the first message"
    );
    assert_eq!(got[1].kind, "message");
    assert_eq!(
        (got[1].to_user.as_str(), got[1].agent_id.as_str()),
        (CORP, "1000002")
    );
    let m = &r.messages()[0];
    let fields: Vec<(&str, Option<&str>)> = [
        "ToUserName",
        "FromUserName",
        "MsgType",
        "Event",
        "ChangeType",
        "UserID",
    ]
    .iter()
    .map(|k| (*k, m.get(k)))
    .collect();
    assert_eq!(
        fields,
        [
            ("ToUserName", Some(CORP)),
            ("FromUserName", Some("sys")),
            ("MsgType", Some("event")),
            ("Event", Some("change_contact")),
            ("ChangeType", Some("delete_user")),
            ("UserID", Some("lisi"))
        ]
    );
    let create_time: u64 = m.get("CreateTime").unwrap().parse().unwrap();
    assert!(
        create_time.abs_diff(now) <= 2,
        "CreateTime {create_time} from the emulated clock ({now})"
    );
    assert!(
        got[1].timestamp.parse::<u64>().unwrap().abs_diff(now) <= 2,
        "signed with the emulated time"
    );
    // The log says what was sent and what came back.
    let ids: Vec<u64> = sent["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let line = log.iter().find(|l| l["id"] == ids[0]).unwrap();
    assert_eq!(line["result"], "delivered");
    assert_eq!(line["receive_id"], CORP);
    assert_eq!(
        line["attempts"],
        json!([{"status": 200, "body": "success", "error": null}])
    );
    assert_eq!(log.iter().filter(|l| l["kind"] == "verify").count(), 1);
    // The member is gone from the API too.
    let t = h.agent_token().await;
    assert_err(
        &h.get(&format!("/cgi-bin/user/get?access_token={t}&userid=lisi"))
            .await,
        60111,
        "deleted member",
    );
    // A second event: no second verification.
    h.control(
        "contacts/add",
        json!({"userid": "zhangsan", "external_userid": "wmNew"}),
    )
    .await;
    h.callbacks().await;
    assert_eq!(
        r.received().iter().filter(|x| x.kind == "verify").count(),
        1
    );
}

#[tokio::test]
async fn contact_events_carry_the_real_change_types() {
    let (h, r) = with_receiver().await;
    let steps = [
        (
            "contacts/add",
            json!({"userid": "lisi", "external_userid": "wmEmuCustomer001", "state": "qr7"}),
            "add_external_contact",
        ),
        (
            "contacts/delete",
            json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer002", "by": "member"}),
            "del_external_contact",
        ),
        (
            "contacts/delete",
            json!({"userid": "lisi", "external_userid": "wmEmuCustomer002", "by": "customer"}),
            "del_follow_user",
        ),
    ];
    for (path, body, _) in &steps {
        h.control(path, body.clone()).await;
        h.callbacks().await; // one at a time, so the order is the order of the changes
    }
    let got = r.messages();
    assert_eq!(got.len(), steps.len());
    for (m, (_, body, change)) in got.iter().zip(&steps) {
        assert_eq!(m.get("Event"), Some("change_external_contact"));
        assert_eq!(m.get("ChangeType"), Some(*change));
        assert_eq!(m.get("FromUserName"), Some("sys"));
        assert_eq!(m.get("UserID"), body["userid"].as_str());
        assert_eq!(m.get("ExternalUserID"), body["external_userid"].as_str());
    }
    assert_eq!(got[0].get("State"), Some("qr7"));
    // The world changed with the events: lisi now follows customer 1; nobody follows 2.
    let t = h.contact_token().await;
    let v = h
        .get(&format!(
            "/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmEmuCustomer001"
        ))
        .await;
    let follow: Vec<&str> = v["follow_user"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["userid"].as_str().unwrap())
        .collect();
    assert_eq!(follow, ["zhangsan", "lisi"]);
    let v = h
        .get(&format!(
            "/cgi-bin/externalcontact/get?access_token={t}&external_userid=wmEmuCustomer002"
        ))
        .await;
    assert_err(&v, 84061, "no relationship left");
    let refused = [
        (
            "contacts/delete",
            json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer002", "by": "member"}),
            404,
        ),
        (
            "contacts/delete",
            json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer001", "by": "nobody"}),
            400,
        ),
        (
            "contacts/add",
            json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer001"}),
            409,
        ),
        (
            "contacts/add",
            json!({"userid": "nobody", "external_userid": "wmX"}),
            404,
        ),
        ("members/delete", json!({"userid": "nobody"}), 404),
    ];
    for (path, body, status) in refused {
        assert_eq!(
            h.control_status(path, body.clone()).await,
            status,
            "{path} {body}"
        );
    }
}

#[tokio::test]
async fn moves_and_tags_send_update_events() {
    let (h, r) = with_receiver().await;
    h.control(
        "members/move",
        json!({"userid": "lisi", "department": [2, 3]}),
    )
    .await;
    h.callbacks().await;
    h.control(
        "tags/add",
        json!({"tagid": 1, "userids": ["lisi", "zhangsan"], "departments": [4]}),
    )
    .await;
    h.callbacks().await;
    let nothing = h
        .control("tags/add", json!({"tagid": 1, "userids": ["lisi"]}))
        .await;
    assert_eq!(
        nothing["callbacks"],
        json!([]),
        "a change of nothing sends nothing"
    );
    let got = r.messages();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].get("ChangeType"), got[0].get("Department")),
        (Some("update_user"), Some("2,3"))
    );
    assert_eq!(got[1].get("ChangeType"), Some("update_tag"));
    assert_eq!(got[1].get("TagId"), Some("1"));
    assert_eq!(
        got[1].get("AddUserItems"),
        Some("lisi"),
        "zhangsan was tagged already"
    );
    assert_eq!(got[1].get("AddPartyItems"), Some("4"));
}

fn results(log: &[Value], kind: &str) -> Vec<(String, usize)> {
    log.iter()
        .filter(|l| l["kind"] == kind)
        .map(|l| {
            (
                l["result"].as_str().unwrap().to_string(),
                l["attempts"].as_array().unwrap().len(),
            )
        })
        .collect()
}

#[tokio::test]
async fn retry_table() {
    let slow = Answer {
        status: 200,
        body: "success",
        delay: Duration::from_millis(1500),
    };
    // (what the receiver answers, the outcome, the tries)
    let cases: Vec<(Vec<Answer>, &str, usize)> = vec![
        (vec![], "delivered", 1),
        (vec![answer(200, "")], "delivered", 1),
        (vec![answer(503, ""), answer(500, "x")], "delivered", 3),
        (vec![slow.clone()], "delivered", 2),
        (vec![answer(503, ""); 4], "failed", 4),
    ];
    for (script, outcome, tries) in cases {
        let (h, r) = with_receiver().await;
        r.script(script.clone());
        h.control("members/delete", json!({"userid": "lisi"})).await;
        let log = h.callbacks().await;
        assert_eq!(
            results(&log, "message"),
            [(outcome.to_string(), tries)],
            "{:?}",
            script.len()
        );
        assert_eq!(r.messages().len(), tries, "every try reached the receiver");
        // The same event each time: one CreateTime.
        let times: Vec<_> = r
            .messages()
            .iter()
            .map(|m| m.get("CreateTime").unwrap().to_string())
            .collect();
        assert!(times.windows(2).all(|w| w[0] == w[1]), "{times:?}");
    }
}

#[tokio::test]
async fn a_timed_out_try_is_logged_as_such() {
    let (h, r) = with_receiver().await;
    r.script([Answer {
        status: 200,
        body: "success",
        delay: Duration::from_millis(1500),
    }]);
    h.control("members/delete", json!({"userid": "lisi"})).await;
    let log = h.callbacks().await;
    let line = log.iter().find(|l| l["kind"] == "message").unwrap();
    assert_eq!(line["attempts"][0]["error"], "timeout");
    assert_eq!(line["attempts"][1]["status"], 200);
}

#[tokio::test]
async fn a_url_that_fails_verification_gets_no_message() {
    let (h, r) = with_receiver().await;
    r.fail_verification();
    h.control("members/delete", json!({"userid": "lisi"})).await;
    let log = h.callbacks().await;
    assert_eq!(results(&log, "verify"), [("failed".to_string(), 1)]);
    assert_eq!(results(&log, "message"), [("unverified".to_string(), 0)]);
    assert!(r.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_url_is_never_verified_and_gets_nothing() {
    let h = start_with(scenario("")).await;
    // A port nobody listens on: bind one and drop it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    h.register("crm", &format!("http://{addr}/cb"), json!({}))
        .await;
    h.control("members/delete", json!({"userid": "lisi"})).await;
    let log = h.callbacks().await;
    assert_eq!(results(&log, "verify"), [("failed".to_string(), 1)]);
    assert_eq!(results(&log, "message"), [("unverified".to_string(), 0)]);
    let verify = log.iter().find(|l| l["kind"] == "verify").unwrap();
    assert_eq!(verify["attempts"][0]["error"], "connect");
}

#[tokio::test]
async fn xml_sent_by_hand_and_receivers_from_the_scenario() {
    let r = Receiver::start(&[CORP]).await;
    let table = format!(
        "\n[[callbacks]]\napp = \"crm\"\nurl = \"{}\"\ntoken = \"{}\"\nencoding_aes_key = \"{}\"\nagent_id = {AGENT}\n",
        r.url,
        common::receiver::TOKEN,
        common::receiver::AES_KEY
    );
    let text =
        emulator::Scenario::demo_toml().replace("\n[provider]", &format!("{table}\n[provider]"));
    let h = start_with(emulator::Scenario::from_toml(&text).unwrap()).await;
    let xml = "<xml><ToUserName><![CDATA[wwemu0000000000001]]></ToUserName><FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1409659813</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello]]></Content><MsgId>4561255354251345929</MsgId><AgentID>1000002</AgentID></xml>";
    let sent = h
        .control("callbacks", json!({"app": "crm", "xml": xml}))
        .await;
    assert_eq!(sent["callbacks"].as_array().unwrap().len(), 1);
    h.callbacks().await;
    let got = r.received();
    assert_eq!(got.last().unwrap().plaintext, xml, "byte for byte");
    let refused = [
        json!({"app": "nobody", "xml": xml}),
        json!({"app": "crm", "xml": "<xml><A>"}),
        json!({"app": "x", "url": "http://127.0.0.1:1/", "token": "t", "encoding_aes_key": "short"}),
        json!({"app": "x", "url": "ftp://127.0.0.1:1/", "token": "t", "encoding_aes_key": common::receiver::AES_KEY}),
        json!({"app": "x", "url": "http://127.0.0.1:1/", "token": "t"}),
        json!({"app": "x", "url": "http://127.0.0.1:1/", "token": "t", "encoding_aes_key": common::receiver::AES_KEY, "kind": "instruction"}),
    ];
    for body in refused {
        let status = h.control_status("callbacks", body.clone()).await;
        assert!(status == 400 || status == 404, "{body}: {status}");
    }
}

#[tokio::test]
async fn reset_clears_the_log_and_forgets_receivers_registered_by_hand() {
    let (h, r) = with_receiver().await;
    h.control("members/delete", json!({"userid": "lisi"})).await;
    assert_eq!(h.callbacks().await.len(), 2);
    h.control("reset", json!({})).await;
    assert!(h.callbacks().await.is_empty());
    h.control("members/delete", json!({"userid": "lisi"})).await;
    assert!(h.callbacks().await.is_empty(), "no receiver after reset");
    assert_eq!(r.messages().len(), 1);
}
