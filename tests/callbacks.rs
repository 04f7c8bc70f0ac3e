//! WeCom's callbacks through the real binary (SPEC section 18): the emulator sends them as
//! WeCom does, a test CRM receives what the gateway forwards.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::callbacks::{
    check_signature_v2, event_xml, expected_signature, now_secs, post_event, sealed_post, Backend,
    CallbackWorld,
};
use common::client;
use common::world::{agent_id, corp_id};

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_event_reaches_the_crm_with_its_headers_and_signature() {
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let sent = w
        .control(
            "/_emulator/contacts/delete",
            serde_json::json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer001", "by": "customer"}),
        )
        .await;
    let xml = sent["event"].as_str().unwrap().to_owned();
    let log = w.settled().await;
    let records = log["callbacks"].as_array().unwrap();
    let verify = records.iter().find(|r| r["kind"] == "verify").unwrap();
    assert_eq!(
        verify["result"], "delivered",
        "the URL check answered: {log}"
    );
    // The corp's event goes to both apps' URLs (XML and JSON).
    for msg in records.iter().filter(|r| r["kind"] == "message") {
        assert_eq!(msg["result"], "delivered", "{log}");
        assert_eq!(msg["attempts"][0]["body"], "success");
    }

    let got = w.crm.wait_taken(2, LIMIT).await;
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().clone();
    let r = &by_path("/wecom/callback");
    assert_eq!(r.path, "/wecom/callback");
    assert_eq!(r.body, xml, "the plaintext, as WeCom sent it");
    assert_eq!(r.header("content-type"), "application/xml");
    assert_eq!(r.header("x-wecom-corpid"), corp_id());
    assert_eq!(r.header("x-wecom-agentid"), agent_id().to_string());
    assert_eq!(r.header("x-gateway-event-id").len(), 32);
    assert_eq!(r.header("x-gateway-signature"), expected_signature(&r.body));
    // The second signature also covers when it was sent, the event id and the corp.
    let t = check_signature_v2(r).expect("X-Gateway-Signature-V2 checks");
    assert!(t.abs_diff(now_secs()) < 60, "sent now: {t}");
    let mut replayed = r.clone();
    replayed.headers.insert(
        "x-gateway-event-id",
        "00000000000000000000000000000000".parse().unwrap(),
    );
    assert_eq!(check_signature_v2(&replayed), None, "another event id");

    // The JSON app: the same event, rendered.
    let j = &by_path("/wecom/json");
    assert_eq!(j.header("content-type"), "application/json");
    assert_eq!(j.header("x-gateway-signature"), expected_signature(&j.body));
    let v: serde_json::Value = serde_json::from_str(&j.body).unwrap();
    assert_eq!(v["ChangeType"], "del_follow_user");
    assert_eq!(v["ExternalUserID"], "wmEmuCustomer001");
    assert_ne!(
        j.header("x-gateway-event-id"),
        r.header("x-gateway-event-id")
    );

    // Counted once the CRM's 2xx is recorded in the queue, a moment after the CRM saw it.
    w.gateways[0]
        .wait_metric(
            r#"wgw_events_total{app="crm",event="change_external_contact/del_follow_user",result="delivered"} 1"#,
        )
        .await;
}

/// A client that asks `Expect: 100-continue` (as PHP's curl does for a body over 1 KiB) gets
/// the `100 Continue` before it sends the body, then `success`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_expecting_100_continue_gets_it_before_its_body() {
    use std::io::Write;
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let port = w.gateways[0].port;
    let (query, body) = sealed_post(&event_xml(1), now_secs());
    let answer = tokio::task::spawn_blocking(move || {
        let r = common::raw::after_continue(
            port,
            &format!("POST /_gateway/callback/crm?{query} HTTP/1.1\r\nHost: 127.0.0.1"),
            body.as_bytes(),
        );
        // A body declared larger than a callback can be is refused without asking for it.
        let mut big = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        big.set_read_timeout(Some(LIMIT)).unwrap();
        let head = format!(
            "POST /_gateway/callback/crm?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
        );
        big.write_all(head.as_bytes()).unwrap();
        let refused = common::raw::read_response(&mut big, &mut Vec::new());
        assert_eq!(refused.status, 400, "refused unread, no 100 first");
        (r.status, String::from_utf8(r.body).unwrap())
    })
    .await
    .unwrap();
    assert_eq!(answer, (200, "success".to_owned()));
    w.crm.wait_taken(1, LIMIT).await;
}

/// A callback's body is given the 5 s WeCom waits for its answer, not the 10 s of the
/// gateway's other endpoints: one arriving later is posted again by WeCom anyway, and only a
/// sender holding room in the bodies' budget keeps it coming. The genuine post is taken.
#[tokio::test]
async fn a_callback_body_short_of_its_end_is_refused_after_the_5_s_wecom_waits() {
    use std::io::Write;
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let port = w.gateways[0].port;
    let (query, body) = sealed_post(&event_xml(1), now_secs());
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Longer than 5 s, shorter than the 10 s of other bodies.
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let head = format!(
            "POST /_gateway/callback/crm?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body.as_bytes()[..body.len() - 1]).unwrap();
        common::raw::read_response(&mut s, &mut Vec::new())
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 408);
    let text = String::from_utf8_lossy(&answer.body);
    assert!(text.contains("within 5 seconds"), "{text}");
    assert!(answer.header("x-request-id").is_some());
    assert_eq!(
        post_event(&w.gateways[0].url("/_gateway/callback/crm"), &event_xml(1))
            .await
            .0,
        200
    );
    w.crm.wait_taken(1, LIMIT).await;
}

/// `n` connections from `from` posting all but the end of a megabyte to `path`, each still
/// open once the gateway has read what it takes: (those it holds unanswered, those it refused
/// with a 503 or closed).
async fn hold_bodies(
    port: u16,
    from: &str,
    path: &str,
    n: usize,
) -> (Vec<tokio::net::TcpStream>, usize) {
    hold_bodies_of(port, from, path, n, 1_000_000).await
}

/// [`hold_bodies`], each sending `sent` bytes of a body declared a little longer.
async fn hold_bodies_of(
    port: u16,
    from: &str,
    path: &str,
    n: usize,
    sent: usize,
) -> (Vec<tokio::net::TcpStream>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        sent + 100
    );
    let piece = vec![b'A'; sent];
    let mut conns = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        let _ = s.write_all(head.as_bytes()).await;
        // A connection refused midway may be closed while this writes.
        let _ = s.write_all(&piece).await;
        conns.push(s);
    }
    // Each connection is given the same while to be answered, all at once (the whole test
    // holds its bodies well within the 5 s a callback's body is given).
    let mut checks = tokio::task::JoinSet::new();
    for mut s in conns {
        checks.spawn(async move {
            let mut buf = [0u8; 64];
            let wait = Duration::from_millis(300);
            let answer = match tokio::time::timeout(wait, s.read(&mut buf)).await {
                Err(_) => None,
                Ok(Ok(n)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // Closed (or reset) after its answer.
                Ok(_) => Some(String::new()),
            };
            (s, answer)
        });
    }
    let (mut held, mut refused) = (Vec::new(), 0);
    while let Some(checked) = checks.join_next().await {
        match checked.unwrap() {
            (s, None) => held.push(s),
            (_, Some(text)) => {
                assert!(
                    text.is_empty() || text.starts_with("HTTP/1.1 503"),
                    "{text}"
                );
                refused += 1;
            }
        }
    }
    (held, refused)
}

/// Bodies held short of their end (all but the last bytes of a megabyte, on many connections:
/// anyone can, no key needed) share a bounded budget, a quarter of it at most per client
/// address for bodies that do not arrive whole: past it a request is refused with a 503, which
/// WeCom retries, instead of each holding a megabyte until its deadline; and while one address
/// holds its share, WeCom's posts (whole at once, from that address or others) are taken. A post that cannot be WeCom's (an app without
/// callback, a timestamp out of the window) is refused before its body is read at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_held_short_of_their_end_share_a_bound_and_are_refused_past_it() {
    use std::io::Write;
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let port = w.gateways[0].port;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    let (query, _) = sealed_post(&event_xml(1), now_secs());
    let (stale, _) = sealed_post(&event_xml(1), now_secs() - 601);
    let head = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1048000\r\n\r\n")
    };
    // Refused on their head alone: no body is sent, the answer comes.
    for (path, status) in [
        (format!("/_gateway/callback/nosuchapp?{query}"), 404),
        (format!("/_gateway/callback/crm?{stale}"), 400),
        ("/_gateway/callback/crm?timestamp=1".to_owned(), 400),
    ] {
        let head = head(&path);
        let got = tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(LIMIT)).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            common::raw::read_response(&mut s, &mut Vec::new()).status
        })
        .await
        .unwrap();
        assert_eq!(got, status, "{path}");
    }
    // The stale one's line says by how much (a host whose clock is off shows so).
    w.gateways[0].wait_log("s behind this host's clock");
    let path = format!("/_gateway/callback/crm?{query}");
    // One address: its share, 8 MiB, is 8 of these bodies.
    let (one, refused) = hold_bodies(port, "127.0.0.1", &path, 16).await;
    assert!(
        (7..=9).contains(&one.len()),
        "{} held, {refused} refused",
        one.len()
    );
    assert_eq!(one.len() + refused, 16);
    // Its share filled to the last few hundred bytes (bodies declared over 8 KiB count)...
    let mut filler = Vec::new();
    for sent in [100_000, 10_000] {
        let (held, refused) = hold_bodies_of(port, "127.0.0.1", &path, 12, sent).await;
        assert!(refused > 0, "{} of {sent} bytes all held", held.len());
        filler.extend(held);
    }
    let (held, refused) = hold_bodies_of(port, "127.0.0.1", &path, 12, 8_200).await;
    assert!(refused > 0, "{} of 8,200 bytes all held", held.len());
    filler.extend(held);
    // ...a post whose body arrives whole (a few KiB, as WeCom's), from that same address
    // (WeCom behind a front proxy that names no client, where every client is the proxy), is
    // taken meanwhile.
    let long = event_xml(4).replace("</xml>", &format!("<Pad>{}</Pad></xml>", "p".repeat(3000)));
    assert_eq!(post_event(&url, &long).await.0, 200);
    // And WeCom from another address.
    let wecom = reqwest::Client::builder()
        .local_address(Some("127.0.0.9".parse().unwrap()))
        .build()
        .unwrap();
    let post = |xml: String| {
        let (q, b) = sealed_post(&xml, now_secs());
        wecom.post(format!("{url}?{q}")).body(b).send()
    };
    assert_eq!(post(event_xml(2)).await.unwrap().status(), 200);
    // Four more addresses holding theirs: 32 MiB in all is 33 of these bodies.
    let mut all = one;
    for from in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        let (held, _) = hold_bodies(port, from, &path, 9).await;
        all.extend(held);
    }
    assert!((30..=34).contains(&all.len()), "{} held in all", all.len());
    drop(all);
    drop(filler);
    // Their budget is given back as they go: WeCom's retry is taken.
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let r = post(event_xml(3)).await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        if status == 200 {
            assert_eq!(text, "success");
            break;
        }
        assert_eq!(status, 503, "{text}");
        assert!(std::time::Instant::now() < deadline, "never taken again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.crm.wait_taken(3, LIMIT).await;
}

#[tokio::test]
async fn three_identical_posts_make_one_delivery_and_bad_ones_none() {
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let gw = &w.gateways[0];
    let url = gw.url("/_gateway/callback/crm");
    let xml = event_xml(1);
    // WeCom's retries: the same plaintext, encrypted and signed anew each time.
    for _ in 0..3 {
        let (query, body) = sealed_post(&xml, now_secs());
        let r = client()
            .post(format!("{url}?{query}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/plain");
        assert_eq!(r.text().await.unwrap(), "success");
    }
    // Refused, each a 400 and nothing queued.
    let (query, body) = sealed_post(&event_xml(2), now_secs());
    // Another agent's message (two apps of the corp sharing a Token and EncodingAESKey).
    let other_agent = event_xml(4).replace(
        "</xml>",
        &format!("<AgentID>{}</AgentID></xml>", common::apps::agent_id() + 1),
    );
    let (other_q, other_b) = sealed_post(&other_agent, now_secs());
    let forged = query.replace("msg_signature=", "msg_signature=0");
    let (stale_q, stale_b) = sealed_post(&event_xml(3), now_secs() - 601);
    let bad: Vec<(String, String)> = vec![
        (other_q, other_b),
        (forged, body.clone()),
        (stale_q, stale_b),
        (
            query.clone(),
            body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[x"),
        ),
        (query.clone(), "A".repeat(2 << 20)),
        (query.clone(), String::new()),
    ];
    let mut rids = Vec::new();
    for (q, b) in bad {
        let r = client()
            .post(format!("{url}?{q}"))
            .body(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        rids.push(r.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    // The log names the reason with what to look at, and the request refused (the forged
    // signature, the second request: its reason's first in the minute).
    let line = gw
        .log()
        .lines()
        .find(|l| l.contains("callback refused") && l.contains("bad_signature"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{}", gw.log()));
    assert!(line.contains(&rids[1]), "{line}");
    assert!(
        line.contains("callback token is not the one in WeCom's console"),
        "{line}"
    );
    let r = client()
        .post(gw.url("/_gateway/callback/nosuchapp"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Its own agent's message is taken.
    let own_agent = event_xml(5).replace(
        "</xml>",
        &format!("<AgentID>{}</AgentID></xml>", common::apps::agent_id()),
    );
    assert_eq!(post_event(&url, &own_agent).await.0, 200);
    // A marker event after them: once it arrives, everything before it has been delivered.
    assert_eq!(post_event(&url, &event_xml(9)).await.0, 200);
    let got = w.crm.wait_taken(3, LIMIT).await;
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        [xml.as_str(), own_agent.as_str(), event_xml(9).as_str()]
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(
            r#"wgw_events_total{app="crm",event="change_contact/update_user",result="duplicate"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_crm_answering_503_for_a_while_gets_every_event_after_in_order() {
    let w = CallbackWorld::start(Backend::Local, 1).await;
    w.crm.state.fail_next.store(3, Ordering::SeqCst);
    for n in 0..5 {
        w.send("crm", &event_xml(n)).await;
    }
    // WeCom heard `success` at once for every one, whatever the CRM did.
    let log = w.settled().await;
    for r in log["callbacks"].as_array().unwrap() {
        assert_eq!(r["result"], "delivered", "{r}");
    }
    let got = w.crm.wait_taken(5, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    let want: Vec<String> = (0..5).map(event_xml).collect();
    assert_eq!(bodies, want, "in order");
    let attempts = w.crm.attempts();
    assert_eq!(attempts.len(), 8);
    let first_id = got[0].header("x-gateway-event-id");
    assert!(
        attempts[..4]
            .iter()
            .all(|a| a.header("x-gateway-event-id") == first_id),
        "the head was retried, with its id, until taken; nothing overtook it"
    );
}

/// An event is given up on after a day of its own tries, not a day after it was queued:
/// events that waited a day behind one the CRM refused still get their day (here, the CRM
/// comes back and takes both), rather than one try each before they are parked.
#[tokio::test]
async fn events_that_waited_a_day_behind_another_are_not_given_up_at_once() {
    let w = CallbackWorld::start(Backend::Local, 1).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    for n in 0..2 {
        w.send("crm", &event_xml(n)).await;
    }
    let tried = |n: usize| {
        let w = &w;
        async move {
            let deadline = std::time::Instant::now() + LIMIT;
            while w.crm.attempts().len() < n {
                assert!(std::time::Instant::now() < deadline, "not tried {n} times");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tried(1).await;
    // A day and an hour pass while the CRM is down.
    w.advance("25h").await;
    tried(2).await;
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(2, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, [event_xml(0), event_xml(1)]);
    let metrics = w.gw().metrics().await;
    assert!(!metrics.contains("result=\"dead\""), "{metrics}");
}

#[tokio::test]
async fn sigkill_with_events_queued_loses_nothing() {
    let mut w = CallbackWorld::start(Backend::Local, 1).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let n = 20;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    for i in 0..n {
        assert_eq!(post_event(&url, &event_xml(i)).await.1, "success");
    }
    // Killed the moment the last `success` was written: nothing was delivered yet.
    w.kill_and_restart(0).await;
    assert!(w.crm.taken().is_empty());
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(n as usize, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    let want: Vec<String> = (0..n).map(event_xml).collect();
    assert_eq!(bodies, want, "every acknowledged event, once, in order");
    let gw = &w.gateways[0];
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"wgw_event_queue_depth{app="crm"} 0"#)
            || metrics.contains(r#"wgw_event_queue_depth{app="crm"} 1"#),
        "{metrics}"
    );
}

/// Events kept for an app whose callback the config no longer has (removed, or the app
/// renamed, while they waited) have no worker after a restart: the start says so, with their
/// number, rather than keep them out of sight.
#[tokio::test]
async fn a_start_names_events_queued_for_an_app_without_callback() {
    let mut w = CallbackWorld::start(Backend::Local, 1).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let url = w.gateways[0].url("/_gateway/callback/crm");
    for i in 0..2 {
        assert_eq!(post_event(&url, &event_xml(i)).await.1, "success");
    }
    let path = w.gateways[0].config_path.clone();
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("forward_path = \"/wecom/callback\""))
        .unwrap()
        .to_owned();
    std::fs::write(&path, text.replace(&line, "")).unwrap();
    w.kill_and_restart(0).await;
    let gw = &w.gateways[0];
    gw.wait_log("events queued for an app without callback in this config");
    let log = gw.log();
    let said = log
        .lines()
        .find(|l| l.contains("events queued for an app without callback"))
        .unwrap();
    assert!(
        said.contains("app=crm") && said.contains("events=2"),
        "{said}"
    );
    assert!(!log.contains("app=crmjson"), "{log}");
}

#[tokio::test]
async fn del_follow_user_makes_that_page_ticket_inject_nothing() {
    use common::browser::{self, Browser, WXWORK_UA};
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let gw = &w.gateways[0];
    let mut b = Browser::new(WXWORK_UA);
    browser::login(&mut b, gw, &w.emu.base_url(), "crm", "/sidebar/").await;
    let r = b
        .post_json(
            &gw.url("/_gateway/external-contact"),
            &serde_json::json!({"external_userid": "wmEmuCustomer001"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    async fn seen(b: &mut Browser, gw: &common::Gateway, ticket: Option<&str>) -> Option<String> {
        let headers: Vec<(&str, &str)> = ticket.map(|t| ("WGW-Contact", t)).into_iter().collect();
        let r = b.get_json(&gw.url("/sidebar/page"), &headers).await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        v["x-wecom-external-userid"].as_str().map(str::to_owned)
    }
    assert_eq!(
        seen(&mut b, gw, Some(&ticket)).await.as_deref(),
        Some("wmEmuCustomer001")
    );
    assert_eq!(
        seen(&mut b, gw, None).await.as_deref(),
        Some("wmEmuCustomer001"),
        "the session's"
    );

    // The customer removes the member: WeCom sends del_follow_user.
    w.control(
        "/_emulator/contacts/delete",
        serde_json::json!({"userid": "zhangsan", "external_userid": "wmEmuCustomer001", "by": "customer"}),
    )
    .await;
    let log = w.settled().await;
    assert!(log["callbacks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["kind"] == "message" && r["result"] == "delivered"));
    assert_eq!(
        seen(&mut b, gw, Some(&ticket)).await,
        None,
        "the ticket injects nothing"
    );
    assert_eq!(
        seen(&mut b, gw, None).await,
        None,
        "nor does the session's current contact"
    );
    gw.wait_log("revoked");
    assert!(
        gw.log().contains("reason=\"revoked\"") || gw.log().contains("reason=revoked"),
        "{}",
        gw.log()
    );
    // The verification is gone too: asking again goes to WeCom, which says no.
    let r = b
        .post_json(
            &gw.url("/_gateway/external-contact"),
            &serde_json::json!({"external_userid": "wmEmuCustomer001"}),
        )
        .await;
    assert_eq!(r.status(), 403);
    // Past a ticket's two hours, within the session's eight: the contact the cookie carries
    // still injects nothing (the removal is kept as long as a session lives).
    w.advance("7201s").await;
    assert_eq!(
        seen(&mut b, gw, None).await,
        None,
        "the session's contact, two hours on"
    );
}

/// Which of the world's gateways holds app `crm`'s delivery lease.
async fn lease_holder(w: &CallbackWorld, redis: &common::redis_server::RedisServer) -> usize {
    let mut conn = redis.conn().await;
    let holder: String = redis::cmd("GET")
        .arg("wgw:events-lease:crm")
        .query_async(&mut conn)
        .await
        .unwrap();
    let pid: i32 = holder.split('-').next().unwrap().parse().unwrap();
    w.gateways
        .iter()
        .position(|g| g.pid() == pid)
        .expect("a gateway holds the lease")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_on_redis_deliver_each_event_once_and_take_over_a_killed_ones() {
    let redis = common::redis_server::RedisServer::start();
    let mut w = CallbackWorld::start(Backend::Redis(redis.url()), 3).await;
    // WeCom's posts land on any instance behind the load balancer.
    let n = 30u32;
    for i in 0..n {
        let url = w.gateways[i as usize % 3].url("/_gateway/callback/crm");
        assert_eq!(post_event(&url, &event_xml(i)).await.1, "success");
        // A retry of the same event on another instance is the same event.
        let other = w.gateways[(i as usize + 1) % 3].url("/_gateway/callback/crm");
        assert_eq!(post_event(&other, &event_xml(i)).await.1, "success");
    }
    let got = w.crm.wait_taken(n as usize, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    let want: Vec<String> = (0..n).map(event_xml).collect();
    assert_eq!(bodies, want, "each once, in order");

    // The instance delivering is killed in the middle of a delivery.
    w.crm
        .state
        .hang
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let url = w.gateways[0].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(100)).await.1, "success");
    let deadline = std::time::Instant::now() + LIMIT;
    while !w.crm.attempts().iter().any(|a| a.body == event_xml(100)) {
        assert!(std::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let i = lease_holder(&w, &redis).await;
    w.gateways[i].signal(9);
    assert!(w.gateways[i].wait_exit(Duration::from_secs(10)).is_some());
    w.crm
        .state
        .hang
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let got = w.crm.wait_taken(n as usize + 1, LIMIT).await;
    assert_eq!(
        got.last().unwrap().body,
        event_xml(100),
        "delivered by another instance"
    );
    // Nothing else came twice.
    let mut ids: Vec<&str> = got.iter().map(|r| r.header("x-gateway-event-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n as usize + 1);
}

/// The instance holding the delivery lease cannot reach the CRM (a partition, a route of its
/// own) while the others can: it gives the lease back after a failed try, so another instance
/// delivers (it renewed the lease through every retry, and the whole cluster's events waited
/// for it for a day, then were parked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_cannot_reach_the_crm_leaves_delivery_to_one_that_can() {
    let redis = common::redis_server::RedisServer::start();
    let w = CallbackWorld::start(Backend::Redis(redis.url()), 2).await;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(1)).await.1, "success");
    w.crm.wait_taken(1, LIMIT).await;
    let cut = lease_holder(&w, &redis).await;
    // The holder's CRM address now leads nowhere.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let gw = &w.gateways[cut];
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let at = text.find("[upstreams.crm]").expect("the CRM upstream");
    let line = at + text[at..].find("url = ").unwrap();
    let end = line + text[line..].find('\n').unwrap();
    let cut_text = format!(
        "{}url = \"http://127.0.0.1:{dead_port}\"{}",
        &text[..line],
        &text[end..]
    );
    std::fs::write(&gw.config_path, cut_text).unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    // Events land on both instances; the one that can reach the CRM delivers them, in order.
    for i in 2..5u32 {
        let to = w.gateways[i as usize % 2].url("/_gateway/callback/crm");
        assert_eq!(post_event(&to, &event_xml(i)).await.1, "success");
    }
    let got = w.crm.wait_taken(4, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, (1..5).map(event_xml).collect::<Vec<_>>());
    w.gateways[cut].wait_log("the CRM did not take an event; retrying");
}

/// Several instances take turns delivering, but an event has one retry schedule for the whole
/// cluster (SPEC section 18: 1 s doubling): a CRM down for all gets one try per step, not one
/// per instance per step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_keep_one_retry_schedule_per_event() {
    let redis = common::redis_server::RedisServer::start();
    let w = CallbackWorld::start(Backend::Redis(redis.url()), 3).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let url = w.gateways[1].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(7)).await.1, "success");
    // Tries at about 0, 1, 3 and 7 s (each at its step, by whichever instance leads, with a
    // second's stand-back at most); one per instance per step would be 12 or more.
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let tries = w.crm.attempts().len();
    assert!((2..=5).contains(&tries), "{tries} tries in 7.5 s");
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert_eq!(got[0].body, event_xml(7));
}

/// Two instances whose clocks are a minute and a half apart share one schedule: the wait
/// before the next try is timed by Redis, not by the clock of the instance that failed (the
/// other held the lease and waited out the skew, long after the CRM was back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_with_clocks_apart_keep_the_retry_schedule() {
    let redis = common::redis_server::RedisServer::start();
    let w = CallbackWorld::start(Backend::Redis(redis.url()), 2).await;
    w.gateways[1].advance("90s").await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let url = w.gateways[0].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(9)).await.1, "success");
    let deadline = std::time::Instant::now() + LIMIT;
    while w.crm.attempts().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "never tried twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.crm.state.down.store(false, Ordering::SeqCst);
    let back = std::time::Instant::now();
    w.crm.wait_taken(1, LIMIT).await;
    // The next step of 1 s doubling after the second try, and a second's stand-back at most.
    assert!(
        back.elapsed() < Duration::from_secs(10),
        "{:?}",
        back.elapsed()
    );
}

/// An event parked after a day of tries and replayed by an operator gets a new day, whichever
/// instance of a cluster tries it next (each kept its own count, and the first to fail it
/// after the replay parked it again at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_event_gets_a_new_day_whichever_instance_tries_it() {
    let redis = common::redis_server::RedisServer::start();
    let w = CallbackWorld::start_fast_retry_cluster(Backend::Redis(redis.url()), 3).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let url = w.gateways[0].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(3)).await.1, "success");
    let crm = &w.crm;
    let tried = |n: usize| async move {
        let deadline = std::time::Instant::now() + LIMIT;
        while crm.attempts().len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "never tried {n} times (parked again?)"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Tried often enough that every instance failed it ten times (each kept its own count).
    tried(40).await;
    w.advance("25h").await;
    let dead = r#"wgw_events_total{app="crm",event="change_contact/update_user",result="dead"} 1"#;
    let parked = || async {
        let mut n = 0;
        for gw in &w.gateways {
            n += usize::from(gw.metrics().await.contains(dead));
        }
        n
    };
    let deadline = std::time::Instant::now() + LIMIT;
    while parked().await == 0 {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client()
        .post(w.gateways[2].admin_url("/events/replay?app=crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = w.crm.attempts().len();
    tried(before + 12).await;
    assert_eq!(parked().await, 1, "parked again after the replay");
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert_eq!(got[0].body, event_xml(3));
}

/// Redis restarts without its data (no persistence): the first push makes the app's stream
/// again, without the consumer group the gateways made before. Events answered `success`
/// then are still delivered, without a restart of the gateways; `check` says that such a Redis
/// keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_redis_lost_its_data_are_still_delivered() {
    let mut redis = common::redis_server::RedisServer::start();
    // One instance: it made the group, and only its memory of it could keep it from
    // making it again.
    let w = CallbackWorld::start(Backend::Redis(redis.url()), 1).await;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    let send = |i: u32| {
        let url = url.clone();
        async move { post_event(&url, &event_xml(i)).await.1 }
    };
    for i in [1, 2] {
        assert_eq!(send(i).await, "success");
    }
    w.crm.wait_taken(2, LIMIT).await;
    redis.stop();
    redis.restart();
    // Until Redis answers again a post may be refused (503, WeCom retries); once it is back
    // every `success` is delivered.
    for i in [3, 4] {
        let deadline = std::time::Instant::now() + LIMIT;
        while send(i).await != "success" {
            assert!(std::time::Instant::now() < deadline, "never taken again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let got = w.crm.wait_taken(4, LIMIT).await;
    let bodies: Vec<String> = got.iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, (1..=4).map(event_xml).collect::<Vec<_>>());
    // The gateways warned that this Redis keeps nothing on disk.
    w.gateways[0].wait_log("Redis runs without appendonly");
}

/// A store that takes no write (Redis at its `maxmemory`, a full disk): every post is a 503,
/// which WeCom retries, and the log says so once a minute per app, not once a post.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_taking_no_write_is_a_503_logged_once_a_minute() {
    let redis = common::redis_server::RedisServer::start();
    let w = CallbackWorld::start(Backend::Redis(redis.url()), 1).await;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    assert_eq!(post_event(&url, &event_xml(1)).await.1, "success");
    redis.take_no_writes().await;
    for i in 2..=6 {
        let (status, text) = post_event(&url, &event_xml(i)).await;
        assert_eq!(status, 503, "{text}");
    }
    let log = w.gateways[0].log();
    assert_eq!(log.matches("callback not queued").count(), 1, "{log}");
}

/// WeCom removes `userid` from the corp; returns once its callbacks are delivered.
async fn delete_member(w: &CallbackWorld, userid: &str) {
    w.control(
        "/_emulator/members/delete",
        serde_json::json!({ "userid": userid }),
    )
    .await;
    w.settled().await;
}

/// What a signed-in browser gets for a page of the sidebar's login area.
async fn page(b: &mut common::browser::Browser, gw: &common::Gateway) -> u16 {
    b.get_json(&gw.url("/sidebar/page"), &[])
        .await
        .status()
        .as_u16()
}

/// The gateway's clock five minutes ahead of WeCom's: a `delete_user` still ends the member's
/// session signed in just before it (the event was taken as of WeCom's time plus a minute on
/// the gateway's clock, and sessions of the last four minutes lived on for their `ttl`).
#[tokio::test]
async fn delete_user_ends_a_fresh_session_with_the_gateways_clock_ahead() {
    use common::browser::{self, Browser, WXWORK_UA};
    let w = CallbackWorld::start_in(emulator::Scenario::demo(), Backend::Local, 1).await;
    let gw = &w.gateways[0];
    gw.advance("300s").await;
    // Some earlier event tells the gateway how far ahead it runs, as any would.
    w.control(
        "/_emulator/members/move",
        serde_json::json!({"userid": "zhangsan", "department": [1]}),
    )
    .await;
    w.settled().await;
    let mut b = Browser::new(WXWORK_UA);
    browser::login(&mut b, gw, &w.emu.base_url(), "crm", "/sidebar/").await;
    assert_eq!(page(&mut b, gw).await, 200);
    delete_member(&w, "zhangsan").await;
    assert_eq!(
        page(&mut b, gw).await,
        401,
        "the deleted member, signed in just before"
    );
    // Said once an app, though applied where the event is taken and again before its
    // delivery (each of the two apps, `crm` and `crmjson`, is sent the event).
    let deadline = std::time::Instant::now() + LIMIT;
    while w
        .crm
        .taken()
        .iter()
        .filter(|r| r.body.contains("delete_user"))
        .count()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The log is written off the request's thread: its lines may come a moment after.
    let deadline = std::time::Instant::now() + LIMIT;
    while gw.log().matches("member removed").count() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.log();
    assert_eq!(log.matches("member removed").count(), 2, "{log}");
}

/// A member record outlives every session it ends, also one sealed under a longer `ttl` than
/// the config's at the time of the event: a session sealed under 8 h, a restart with a 1 m
/// ttl, a `delete_user`, then the 8 h back (by a reload, or a restart) after the minute has
/// passed must not reopen the deleted member's session (the record was kept for the minute).
#[tokio::test]
async fn a_deleted_members_session_stays_ended_when_a_shortened_ttl_is_restored() {
    use common::browser::{self, Browser, WXWORK_UA};
    let mut w = CallbackWorld::start_in(emulator::Scenario::demo(), Backend::Local, 1).await;
    let mut b = Browser::new(WXWORK_UA);
    let (gw, emu) = (&w.gateways[0], w.emu.base_url());
    browser::login(&mut b, gw, &emu, "crm", "/sidebar/").await;
    assert_eq!(page(&mut b, gw).await, 200);
    let path = gw.config_path.clone();
    let eight_hours = std::fs::read_to_string(&path).unwrap();
    assert!(eight_hours.contains("[session]\n"), "{eight_hours}");
    let one_minute = eight_hours.replace("[session]\n", "[session]\nttl = \"1m\"\n");
    std::fs::write(&path, &one_minute).unwrap();
    w.kill_and_restart(0).await;
    delete_member(&w, "zhangsan").await;
    assert_eq!(
        page(&mut b, &w.gateways[0]).await,
        401,
        "the deleted member"
    );
    // The 8 h back by a reload, then by a restart, the minute past each time.
    w.advance("90s").await;
    std::fs::write(&path, &eight_hours).unwrap();
    w.gateways[0].signal(1);
    w.gateways[0].wait_log("reload: new config applied");
    assert_eq!(page(&mut b, &w.gateways[0]).await, 401, "after the reload");
    w.kill_and_restart(0).await;
    w.advance("90s").await;
    assert_eq!(page(&mut b, &w.gateways[0]).await, 401, "after the restart");
}

/// An event queued while the CRM is down is delivered as the corp and agent it was received
/// for, after a reload that points the app at another corp (it went out under the new corp,
/// signed so: a CRM serving several corps filed it under the wrong one).
#[tokio::test]
async fn a_queued_event_keeps_the_corp_it_came_for_across_a_reload() {
    let w = CallbackWorld::start(Backend::Local, 1).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    let gw = &w.gateways[0];
    assert_eq!(
        post_event(&gw.url("/_gateway/callback/crm"), &event_xml(5))
            .await
            .1,
        "success"
    );
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let from = format!("corp_id = \"{}\"", corp_id());
    assert!(text.contains(&from), "{text}");
    std::fs::write(
        &gw.config_path,
        text.replacen(&from, "corp_id = \"wwemucorp000000002\"", 1),
    )
    .unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert_eq!(got[0].header("x-wecom-corpid"), corp_id());
    assert_eq!(got[0].header("x-wecom-agentid"), agent_id().to_string());
}

/// The JSON an admin listener's GET answers.
async fn admin_json(url: String) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Two instances sharing a Redis, in front of the demo's corp (two members).
async fn two_instances_on_redis() -> (common::redis_server::RedisServer, CallbackWorld) {
    let redis = tokio::task::spawn_blocking(common::redis_server::RedisServer::start)
        .await
        .unwrap();
    let w =
        CallbackWorld::start_in(emulator::Scenario::demo(), Backend::Redis(redis.url()), 2).await;
    (redis, w)
}

/// A browser in WeCom signed in to `crm` at instance `from` (as the emulator's current user),
/// its cookie then sent to every instance, as behind one load balancer.
async fn signed_in_everywhere(w: &CallbackWorld, from: usize) -> common::browser::Browser {
    use common::browser::{self, Browser, WXWORK_UA};
    let mut b = Browser::new(WXWORK_UA);
    let at = &w.gateways[from];
    browser::login(&mut b, at, &w.emu.base_url(), "crm", "/sidebar/").await;
    let cookies = b.jar[&Browser::authority(&at.url("/"))].clone();
    for gw in &w.gateways {
        for (name, value) in &cookies {
            b.set_cookie(&gw.url("/"), name, value);
        }
    }
    b
}

/// `change_contact/delete_user` arriving at one instance ends that member's sessions on every
/// instance (the `revoked:member:` record in the shared store, read when a cookie opens);
/// another member's session is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_signs_the_member_out_on_every_instance() {
    let (_redis, w) = two_instances_on_redis().await;
    let mut zhangsan = signed_in_everywhere(&w, 0).await;
    w.control(
        "/_emulator/current-user",
        serde_json::json!({"userid": "lisi"}),
    )
    .await;
    let mut lisi = signed_in_everywhere(&w, 1).await;
    for gw in &w.gateways {
        assert_eq!(
            page(&mut zhangsan, gw).await,
            200,
            "one cookie, any instance"
        );
        assert_eq!(page(&mut lisi, gw).await, 200);
    }

    w.control(
        "/_emulator/members/delete",
        serde_json::json!({"userid": "zhangsan"}),
    )
    .await;
    let log = w.settled().await;
    assert!(
        log["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "message" && r["result"] == "delivered"),
        "{log}"
    );
    // Acknowledged means reacted: nothing to wait for, on either instance.
    for gw in &w.gateways {
        assert_eq!(page(&mut zhangsan, gw).await, 401, "the deleted member");
        assert_eq!(page(&mut lisi, gw).await, 200, "another member");
    }
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert!(got[0].body.contains("delete_user"), "{}", got[0].body);
}

/// An instance whose clock runs 50 s ahead (within the minute a session's date may be ahead)
/// dates its sessions after a `delete_user` another instance takes a moment later: the
/// member's record ends them too, on every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_ends_the_sessions_an_instance_with_a_clock_ahead_dated_later() {
    let (_redis, w) = two_instances_on_redis().await;
    w.gateways[1].advance("50s").await;
    let mut b = signed_in_everywhere(&w, 1).await;
    for gw in &w.gateways {
        assert_eq!(page(&mut b, gw).await, 200, "one cookie, any instance");
    }
    delete_member(&w, "zhangsan").await;
    for gw in &w.gateways {
        assert_eq!(page(&mut b, gw).await, 401, "the deleted member");
    }
}

/// A captured `delete_user` sent again (a replay within WeCom's signature window, or WeCom's own
/// late retry) acts as of when it happened: the sessions issued before it stay ended, the
/// member's login since then stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_delete_user_ends_only_the_sessions_issued_before_it() {
    use common::browser::{self, Browser, WXWORK_UA};
    let w = CallbackWorld::start(Backend::Local, 1).await;
    let gw = &w.gateways[0];
    let mut before = Browser::new(WXWORK_UA);
    browser::login(&mut before, gw, &w.emu.base_url(), "crm", "/sidebar/").await;
    assert_eq!(page(&mut before, gw).await, 200);

    let xml = wecom_api::XmlMessage::from_pairs([
        ("ToUserName", corp_id().to_owned()),
        ("FromUserName", "sys".to_owned()),
        ("CreateTime", now_secs().to_string()),
        ("MsgType", "event".to_owned()),
        ("Event", "change_contact".to_owned()),
        ("ChangeType", "delete_user".to_owned()),
        ("UserID", "zhangsan".to_owned()),
    ])
    .to_xml();
    let (query, body) = sealed_post(&xml, now_secs());
    let post = || async {
        let r = client()
            .post(gw.url(&format!("/_gateway/callback/crm?{query}")))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(post().await, (200, "success".to_owned()));
    assert_eq!(page(&mut before, gw).await, 401);

    w.advance("5m").await;
    let mut since = Browser::new(WXWORK_UA);
    browser::login(&mut since, gw, &w.emu.base_url(), "crm", "/sidebar/").await;
    assert_eq!(page(&mut since, gw).await, 200);
    assert_eq!(
        post().await,
        (200, "success".to_owned()),
        "acknowledged again"
    );
    assert_eq!(page(&mut since, gw).await, 200, "the login since stays");
    assert_eq!(page(&mut before, gw).await, 401);
    assert_eq!(w.crm.wait_taken(1, LIMIT).await.len(), 1, "forwarded once");
}

/// What an operator sees and does about an event the CRM refused for a day: it is parked,
/// kept across a `kill -9` (local store), listed on the admin listener (what and when, never
/// its content), and delivered again, with its event id, when replayed. The listing and the
/// replay answer loopback clients for a configured app only.
async fn a_parked_event_is_listed_and_replayed(backend: Backend, restart: bool) {
    let in_memory = matches!(backend, Backend::Memory);
    let mut w = CallbackWorld::start_fast_retry(backend).await;
    // Said at start: what WeCom was told "success" for would not outlive a restart.
    let warned = w.gateways[0]
        .log()
        .contains("callbacks WeCom was told \"success\" for are lost at a restart");
    assert_eq!(warned, in_memory);
    w.crm.state.down.store(true, Ordering::SeqCst);
    w.send("crm", &event_xml(1)).await;
    // A second try means the first failure was taken in (the event's first try is on record,
    // before the clock moves): the CRM sees a try before the gateway reads its answer.
    let deadline = std::time::Instant::now() + LIMIT;
    while w.crm.attempts().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "never tried twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.advance("25h").await;
    let dead = r#"wgw_events_total{app="crm",event="change_contact/update_user",result="dead"} 1"#;
    let deadline = std::time::Instant::now() + LIMIT;
    while !w.gw().metrics().await.contains(dead) {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tried = w.crm.attempts();
    assert!(tried.len() >= 10, "{} tries", tried.len());
    let event_id = tried[0].header("x-gateway-event-id").to_owned();
    if restart {
        w.kill_and_restart(0).await;
    }
    w.crm.state.down.store(false, Ordering::SeqCst);

    let admin = |path: &str| w.gw().admin_url(path);
    let r = client()
        .get(admin("/events/parked?app=crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed: serde_json::Value = r.json().await.unwrap();
    let parked = listed["parked"].as_array().unwrap();
    assert_eq!(parked.len(), 1, "{listed}");
    let p = &parked[0];
    assert_eq!(p["event_id"], event_id.as_str(), "{p}");
    assert_eq!(p["event"], "change_contact/update_user", "{p}");
    assert_eq!(p["corp_id"], corp_id(), "{p}");
    assert_eq!(p["readable"], true, "{p}");
    assert!(p["parked_at_ms"].as_u64().unwrap() > 0, "{p}");
    assert!(
        !listed.to_string().contains("<xml>"),
        "the event's content is not shown: {listed}"
    );
    let id = p["id"].as_str().unwrap().to_owned();
    assert!(w.crm.taken().is_empty(), "parked, not delivered");

    // What is refused: another verb, no app or an unknown one, a bad limit, an id that names
    // no parked event.
    for (method, path, status) in [
        ("POST", "/events/parked?app=crm", 405),
        ("GET", "/events/replay?app=crm", 405),
        ("GET", "/events/parked", 400),
        ("GET", "/events/parked?app=nosuchapp", 404),
        ("POST", "/events/replay?app=nosuchapp", 404),
        ("GET", "/events/parked?app=crm&limit=0", 400),
        ("GET", "/events/parked?app=crm&limit=x", 400),
        ("POST", "/events/replay?app=crm&id=999999", 404),
        ("POST", "/events/replay?app=crm&id=..%2F", 404),
        ("POST", "/events/replay?app=crmjson&id=", 404),
    ] {
        let r = client()
            .request(method.parse().unwrap(), admin(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
    }
    // A web page the operator has open is a loopback client too: refused.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let r = client()
            .post(admin(&format!("/events/replay?app=crm&id={id}")))
            .header(name, value)
            .header("content-type", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}");
    }
    assert!(w.crm.taken().is_empty(), "nothing was replayed by those");

    let r = client()
        .post(admin(&format!("/events/replay?app=crm&id={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replayed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert_eq!(got[0].body, event_xml(1));
    assert_eq!(
        got[0].header("x-gateway-event-id"),
        event_id,
        "the same event id"
    );
    let listed: serde_json::Value = admin_json(admin("/events/parked?app=crm")).await;
    assert_eq!(listed["parked"], serde_json::json!([]), "{listed}");
    // Replayed once: a second replay of it names nothing.
    let r = client()
        .post(admin(&format!("/events/replay?app=crm&id={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    if restart {
        return;
    }

    // A replayed event gets a day of tries again: replayed while the CRM is still down, it is
    // tried on (more than the ten tries a day's end needs), not parked again at once.
    w.crm.state.down.store(true, Ordering::SeqCst);
    w.send("crm", &event_xml(2)).await;
    let deadline = std::time::Instant::now() + LIMIT;
    let before = w.crm.attempts().len();
    while w.crm.attempts().len() < before + 2 {
        assert!(std::time::Instant::now() < deadline, "never tried twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.advance("25h").await;
    let dead = |n: u32| {
        format!(
            r#"wgw_events_total{{app="crm",event="change_contact/update_user",result="dead"}} {n}"#
        )
    };
    let deadline = std::time::Instant::now() + LIMIT;
    while !w.gw().metrics().await.contains(&dead(2)) {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client()
        .post(admin("/events/replay?app=crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = w.crm.attempts().len();
    let deadline = std::time::Instant::now() + LIMIT;
    while w.crm.attempts().len() < before + 12 {
        assert!(std::time::Instant::now() < deadline, "not tried again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = w.gw().metrics().await;
    assert!(metrics.contains(&dead(2)), "not parked again: {metrics}");
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(2, LIMIT).await;
    assert_eq!(got[1].body, event_xml(2));
}

#[tokio::test]
async fn a_parked_event_survives_kill_9_and_is_replayed_local() {
    a_parked_event_is_listed_and_replayed(Backend::Local, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_event_is_listed_and_replayed_on_redis() {
    let redis = common::redis_server::RedisServer::start();
    a_parked_event_is_listed_and_replayed(Backend::Redis(redis.url()), false).await;
}

#[tokio::test]
async fn a_parked_event_is_listed_and_replayed_in_memory() {
    a_parked_event_is_listed_and_replayed(Backend::Memory, false).await;
}

/// A head event the CRM refuses holds every later one of the app back (for a day, then it is
/// parked): the operator lists what waits (what and when, never its content) and parks the
/// head by its id; the next one goes on at once, and the parked one can be replayed later.
async fn an_operator_parks_the_head_that_holds_the_queue_back(backend: Backend) {
    let w = CallbackWorld::start_fast_retry(backend).await;
    w.crm.state.down.store(true, Ordering::SeqCst);
    w.send("crm", &event_xml(1)).await;
    w.send("crm", &event_xml(2)).await;
    let deadline = std::time::Instant::now() + LIMIT;
    while w.crm.attempts().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "never tried twice");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let tried = w.crm.attempts();
    let head_event_id = tried[0].header("x-gateway-event-id").to_owned();
    assert!(
        tried.iter().all(|a| a.body == event_xml(1)),
        "the head only"
    );

    let admin = |path: &str| w.gw().admin_url(path);
    let listed: serde_json::Value = admin_json(admin("/events/queued?app=crm")).await;
    let queued = listed["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 2, "{listed}");
    assert_eq!(listed["depth"], 2, "{listed}");
    assert_eq!(queued[0]["event_id"], head_event_id.as_str(), "{listed}");
    assert_eq!(queued[0]["event"], "change_contact/update_user", "{listed}");
    assert_eq!(queued[0]["corp_id"], corp_id(), "{listed}");
    assert!(!listed.to_string().contains("<xml>"), "{listed}");
    let limited: serde_json::Value = admin_json(admin("/events/queued?app=crm&limit=1")).await;
    assert_eq!(limited["queued"].as_array().unwrap().len(), 1, "{limited}");
    let head = queued[0]["id"].as_str().unwrap().to_owned();
    let second = queued[1]["id"].as_str().unwrap().to_owned();

    for (method, path, status) in [
        ("GET", format!("/events/park?app=crm&id={head}"), 405),
        ("POST", "/events/queued?app=crm".to_owned(), 405),
        ("POST", "/events/park?app=crm".to_owned(), 400),
        ("POST", format!("/events/park?app=nosuchapp&id={head}"), 404),
        ("POST", "/events/park?app=crm&id=999999-0".to_owned(), 404),
        ("POST", "/events/park?app=crm&id=..%2F".to_owned(), 404),
        ("POST", format!("/events/park?app=crmjson&id={head}"), 404),
    ] {
        let r = client()
            .request(method.parse().unwrap(), admin(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{method} {path}");
        // A refusal names its request id, as the other listeners' do, header and body alike.
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(rid.len(), 32, "{method} {path}");
        let body = r.text().await.unwrap();
        assert!(
            body.ends_with(&format!("request id: {rid}\n")),
            "{method} {path}: {body}"
        );
    }
    let r = client()
        .post(admin(&format!("/events/park?app=crm&id={head}")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "not from a web page");

    let r = client()
        .post(admin(&format!("/events/park?app=crm&id={head}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    w.gw()
        .wait_log("a queued callback event parked by an operator");
    let r = client()
        .post(admin(&format!("/events/park?app=crm&id={head}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "parked once");
    w.crm.state.down.store(false, Ordering::SeqCst);
    let got = w.crm.wait_taken(1, LIMIT).await;
    assert_eq!(got[0].body, event_xml(2), "the next one went on");
    let listed: serde_json::Value = admin_json(admin("/events/parked?app=crm")).await;
    assert_eq!(
        listed["parked"][0]["event_id"],
        head_event_id.as_str(),
        "{listed}"
    );
    let r = client()
        .post(admin(&format!("/events/park?app=crm&id={second}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "delivered: nothing to park");
    let r = client()
        .post(admin("/events/replay?app=crm"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let got = w.crm.wait_taken(2, LIMIT).await;
    assert_eq!(got[1].body, event_xml(1));
    assert_eq!(got[1].header("x-gateway-event-id"), head_event_id);
}

#[tokio::test]
async fn an_operator_parks_the_head_that_holds_the_queue_back_local() {
    an_operator_parks_the_head_that_holds_the_queue_back(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_parks_the_head_that_holds_the_queue_back_on_redis() {
    let redis = common::redis_server::RedisServer::start();
    an_operator_parks_the_head_that_holds_the_queue_back(Backend::Redis(redis.url())).await;
}

/// The CRM on two servers, one of them down: every event is delivered, by the one that is up.
#[tokio::test]
async fn events_reach_a_crm_of_two_servers_when_one_is_down() {
    let (crm, server) = common::callbacks::Crm::start();
    let down = common::upstream::closed_addr();
    let world = common::callbacks::world(emulator::Scenario::default(), &Backend::Local, 1, server)
        .crm_after(&format!("http://{down}"))
        .start()
        .await;
    let w = CallbackWorld { world, crm };
    w.register("crm", 0).await;
    let url = w.gateways[0].url("/_gateway/callback/crm");
    for n in 0..4 {
        assert_eq!(post_event(&url, &event_xml(n)).await.0, 200);
    }
    let got = w.crm.wait_taken(4, LIMIT).await;
    assert_eq!(got.len(), 4, "{got:?}");
}
