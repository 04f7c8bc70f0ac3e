//! The external contact (SPEC sections 5 step 7, 7 and 9) end to end: `POST
//! {prefix}/external-contact` against the emulator's `externalcontact/get`, then what the CRM
//! receives with and without the `WGW-Contact` ticket.

mod common;

use common::browser::{Browser, WXWORK_UA};
use common::sidebar;
use common::upstream::Echo;
use common::world::{claims, corp_id, customer, customer_unionid, App, World, SESSION_SECRET};
use emulator::Scenario;
use serde_json::{json, Value};
use wecom_gateway::jssdk::contact::{issue_ticket_until, ExternalContact};

/// The default scenario plus: lisi and their customer, a second customer of zhangsan (a WeCom
/// user: no unionid), and a customer followed by many members with zhangsan last.
fn scenario(page_size: usize) -> Scenario {
    let mut members = String::new();
    let mut followers = Vec::new();
    for i in 1..=6 {
        members.push_str(&format!(
            "[[members]]\nuserid = \"m{i}\"\nname = \"成员{i}\"\n\n"
        ));
        followers.push(format!("\"m{i}\""));
    }
    let crowd = followers.join(", ");
    Scenario::from_toml(&format!(
        r#"
[settings]
follow_user_page_size = {page_size}

[corp]
corp_id = "{corp}"
contact_secret = "emu-contact-secret"

[[agents]]
agent_id = 1000002
secret = "emu-agent-secret"

[[members]]
userid = "zhangsan"
name = "张三"

[[members]]
userid = "lisi"
name = "李四"

{members}
[[external_contacts]]
external_userid = "{customer}"
name = "王小明"
type = 1
unionid = "{unionid}"
follow_user = ["zhangsan"]

[[external_contacts]]
external_userid = "wmSecondCustomer"
name = "赵老板"
type = 2
corp_name = "某公司"
follow_user = ["lisi", "zhangsan"]

[[external_contacts]]
external_userid = "wmLisiCustomer"
name = "钱女士"
type = 1
unionid = "oLisiUnion"
follow_user = ["lisi"]

[[external_contacts]]
external_userid = "wmCrowdLast"
name = "孙先生"
type = 1
follow_user = [{crowd}, "zhangsan"]

[[external_contacts]]
external_userid = "wmCrowdWithout"
name = "周先生"
type = 1
follow_user = [{crowd}]
"#,
        corp = corp_id(),
        customer = customer(),
        unionid = customer_unionid(),
    ))
    .unwrap()
}

async fn sidebar() -> World {
    sidebar::world().scenario(scenario(500)).start().await
}

/// What the CRM received for `path`, sent with `ticket` in `WGW-Contact` when given.
async fn upstream_sees(w: &World, b: &mut Browser, path: &str, ticket: Option<&str>) -> Echo {
    let headers: Vec<(&str, &str)> = ticket.map(|t| ("WGW-Contact", t)).into_iter().collect();
    let r = b.get_json(&w.gw().url(path), &headers).await;
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

fn contact_of(echo: &Echo) -> (Option<&str>, Option<&str>) {
    (
        echo.header("x-wecom-external-userid"),
        echo.header("x-wecom-external-unionid"),
    )
}

fn key() -> cookie::Key {
    cookie::Key::derive_from(SESSION_SECRET.as_bytes())
}

fn contact(id: &str) -> ExternalContact {
    ExternalContact {
        external_userid: id.into(),
        unionid: None,
        name: String::new(),
    }
}

fn now() -> u64 {
    wecom_gateway::login::now_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_contact_is_verified_and_reaches_the_crm_with_its_unionid() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let before = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(
        contact_of(&before),
        (None, None),
        "nothing before verification"
    );

    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["external_userid"], customer());
    assert_eq!(body["unionid"], customer_unionid());
    assert_eq!(body["name"], "王小明");
    let ticket = body["ticket"].as_str().unwrap();
    assert!(!ticket.contains(customer()), "the ticket is sealed");

    let echo = upstream_sees(&w, &mut b, "/sidebar/", Some(ticket)).await;
    assert_eq!(
        contact_of(&echo),
        (Some(customer()), Some(customer_unionid()))
    );
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(echo.header("wgw-contact"), None, "the ticket stays home");
    let claims = claims(echo.header("x-gateway-assertion").unwrap());
    assert_eq!(claims["external_userid"], customer());
    assert_eq!(claims["external_unionid"], customer_unionid());

    // The session remembers it: a request without the ticket is about the same customer.
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(
        contact_of(&echo),
        (Some(customer()), Some(customer_unionid()))
    );
    // A route with external_contact = "none" is not told.
    let echo = upstream_sees(&w, &mut b, "/staff/", Some(ticket)).await;
    assert_eq!(contact_of(&echo), (None, None));
    assert_eq!(echo.header("wgw-contact"), None);

    // Verified once, cached for 10 minutes.
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 1);
    w.advance("590s").await;
    let (status, again) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    assert_eq!(again["unionid"], customer_unionid());
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 1);
    // Its ticket counts from that verification: the time it says it has is the time it has.
    let left = again["expires_in"].as_u64().unwrap();
    assert!((6605..=6610).contains(&left), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_contact_is_403_and_nothing_is_injected() {
    let w = sidebar().await;
    let mut b = w.member().await;
    for id in ["wmLisiCustomer", "wmNobodyKnows"] {
        let (status, body) = w.verify_contact(&mut b, id).await;
        assert_eq!(status, 403, "{id}: {body}");
        assert_eq!(body["error"], "not_your_contact", "{id}");
        assert!(body.get("ticket").is_none());
        let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
        assert_eq!(contact_of(&echo), (None, None), "{id}");
    }
    // Refusals are not cached.
    let (status, _) = w.verify_contact(&mut b, "wmLisiCustomer").await;
    assert_eq!(status, 403);
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 3);
}

/// Each verification not remembered asks WeCom: a member's script repeating made-up ids is cut
/// off (429) before WeCom is asked, instead of spending the corp's `externalcontact/get` quota
/// (one call per request before); another member is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_asking_about_customers_in_a_loop_is_cut_off_before_wecom_is_asked() {
    let w = sidebar().await;
    let mut b = w.member().await;
    assert_eq!(w.verify_contact(&mut b, customer()).await.0, 200);
    let api = "/cgi-bin/externalcontact/get";
    let mut answered = 1;
    loop {
        let asked = w.calls(api).await;
        let (status, body) = w
            .verify_contact(&mut b, &format!("wmMadeUp{answered}"))
            .await;
        if status == 429 {
            assert_eq!(body["error"], "too_many_requests", "{body}");
            assert!(body["request_id"].as_str().is_some());
            assert_eq!(w.calls(api).await, asked, "a cut-off check asks nothing");
            break;
        }
        assert_eq!(status, 403, "{body}");
        answered += 1;
        assert!(answered < 500, "never cut off");
    }
    assert!(answered >= 60, "cut off after {answered}");
    // A customer verified before is remembered: still answered, asking nothing.
    let asked = w.calls(api).await;
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.calls(api).await, asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_other_members_tickets_give_no_contact_and_are_logged() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);

    let lisis = contact("wmLisiCustomer");
    let cases = [
        (
            "expired",
            issue_ticket_until(&key(), corp_id(), "zhangsan", &lisis, now() - 1),
        ),
        (
            "other_user",
            issue_ticket_until(&key(), corp_id(), "lisi", &lisis, now() + 3600),
        ),
        (
            "other_corp",
            issue_ticket_until(&key(), "wwOtherCorp", "zhangsan", &lisis, now() + 3600),
        ),
        (
            "unreadable",
            issue_ticket_until(
                &cookie::Key::derive_from(b"another-gateway-secret-0123456789abcdef"),
                corp_id(),
                "zhangsan",
                &lisis,
                now() + 3600,
            ),
        ),
        ("unreadable", "wmLisiCustomer".to_owned()),
    ];
    for (reason, ticket) in &cases {
        let echo = upstream_sees(&w, &mut b, "/sidebar/", Some(ticket)).await;
        // Refused: no contact at all, neither the ticket's nor the session's current one.
        assert_eq!(contact_of(&echo), (None, None), "{reason}");
        assert_eq!(echo.header("wgw-contact"), None);
        w.gw().wait_log(&format!("reason=\"{reason}\""));
    }
    let log = w.gw().log();
    assert!(log.contains("WGW-Contact ticket refused"), "{log}");
    for (_, ticket) in &cases[..4] {
        assert!(
            !log.contains(ticket.as_str()),
            "the ticket value is not logged"
        );
    }

    // Without the header, the session's current contact applies.
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(
        contact_of(&echo),
        (Some(customer()), Some(customer_unionid()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_with_two_tickets_each_get_their_own_contact() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let (_, first) = w.verify_contact(&mut b, customer()).await;
    let (status, second) = w.verify_contact(&mut b, "wmSecondCustomer").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        second["unionid"],
        Value::Null,
        "a WeCom user has no unionid"
    );
    let (t1, t2) = (
        first["ticket"].as_str().unwrap(),
        second["ticket"].as_str().unwrap(),
    );
    for _ in 0..2 {
        let echo = upstream_sees(&w, &mut b, "/sidebar/a", Some(t1)).await;
        assert_eq!(
            contact_of(&echo),
            (Some(customer()), Some(customer_unionid()))
        );
        let echo = upstream_sees(&w, &mut b, "/sidebar/b", Some(t2)).await;
        assert_eq!(contact_of(&echo), (Some("wmSecondCustomer"), None));
        let claims = claims(echo.header("x-gateway-assertion").unwrap());
        assert_eq!(claims["external_userid"], "wmSecondCustomer");
    }
    // Without a ticket: the one verified last.
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (Some("wmSecondCustomer"), None));
}

/// A page renewing its ticket (`"renew": true`) gets a new one and leaves the session's
/// current contact alone: another page verified another customer since, and requests without
/// a ticket (navigations) keep that one. A verification refused or failed (the member opened
/// a chat the gateway could not confirm) leaves the session no current contact, not the
/// customer of the chat before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_keeps_the_sessions_contact_and_a_refusal_clears_it() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    let (status, _) = w.verify_contact(&mut b, "wmSecondCustomer").await;
    assert_eq!(status, 200);
    // The first page renews its ticket.
    let r = b
        .post_json(
            &w.gw().url("/_gateway/external-contact"),
            &json!({ "external_userid": customer(), "renew": true }),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    let renewed: Value = r.json().await.unwrap();
    let echo = upstream_sees(&w, &mut b, "/sidebar/a", renewed["ticket"].as_str()).await;
    assert_eq!(contact_of(&echo).0, Some(customer()));
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (Some("wmSecondCustomer"), None));
    // A renewal refused changes nothing either.
    let r = b
        .post_json(
            &w.gw().url("/_gateway/external-contact"),
            &json!({ "external_userid": "wmLisiCustomer", "renew": true }),
        )
        .await;
    assert_eq!(r.status(), 403);
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (Some("wmSecondCustomer"), None));
    // A chat with someone else's customer: refused, and the session forgets the last one.
    let (status, _) = w.verify_contact(&mut b, "wmLisiCustomer").await;
    assert_eq!(status, 403);
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (None, None));
    // So does a verification WeCom fails.
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/externalcontact/get", "errcode": 45009, "count": 5}),
    )
    .await;
    let (status, _) = w.verify_contact(&mut b, "wmSecondCustomerX").await;
    assert_eq!(status, 502);
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_route_without_a_contact_is_403() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let r = b.get_json(&w.gw().url("/customer/42"), &[]).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "external_contact_required");

    let (_, c) = w.verify_contact(&mut b, customer()).await;
    let echo = upstream_sees(&w, &mut b, "/customer/42", c["ticket"].as_str()).await;
    assert_eq!(contact_of(&echo).0, Some(customer()));
    let echo = upstream_sees(&w, &mut b, "/customer/42", None).await;
    assert_eq!(
        contact_of(&echo).0,
        Some(customer()),
        "the session's current contact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_of_follow_user_is_read() {
    let w = sidebar::world().scenario(scenario(2)).start().await;
    let mut b = w.member().await;
    // Seven followers, two per page: zhangsan is on the fourth page.
    let (status, body) = w.verify_contact(&mut b, "wmCrowdLast").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 4);
    let (status, body) = w.verify_contact(&mut b, "wmCrowdWithout").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_and_strangers_401() {
    let w = sidebar().await;
    let mut stranger = Browser::new(WXWORK_UA);
    let (status, body) = w.verify_contact(&mut stranger, customer()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("login_required"))
    );

    let mut b = w.member().await;
    let url = w.gw().url("/_gateway/external-contact");
    let big = "x".repeat(10_000);
    let bodies: &[(&str, &str)] = &[
        ("application/json", "{not json"),
        ("application/json", "{}"),
        ("application/json", r#"{"external_userid": 42}"#),
        ("application/json", r#"{"external_userid": ""}"#),
        (
            "application/json",
            r#"{"external_userid": "wm a\r\nX-Evil: 1"}"#,
        ),
        ("application/json", r#"{"external_userid": "王小明"}"#),
        ("text/plain", r#"{"external_userid": "wmEmuCustomer001"}"#),
        ("application/json", &big),
    ];
    for (ct, body) in bodies {
        let (ct, body) = (ct.to_string(), body.to_string());
        let r = b
            .send(reqwest::Method::POST, &url, "application/json", |r| {
                r.header("content-type", ct).body(body)
            })
            .await;
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "bad_request");
    }
    let r = b.get_json(&url, &[]).await;
    assert_eq!(r.status(), 405);
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_are_502_with_the_errcode() {
    let w = sidebar().await;
    let mut b = w.member().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/externalcontact/get", "errcode": 60011, "count": 1}),
    )
    .await;
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errcode"], 60011);
    assert_eq!(body["error"], "provider_error");
    // WeCom's own text ("..., from ip: <the gateway's egress address>, more info at ...") stays
    // in the log: the visitor gets the errcode and the request id.
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains("from ip"), "{message}");
    assert!(body["request_id"].as_str().is_some());
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(contact_of(&echo), (None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_contact_secret_the_apps_own_token_is_used() {
    let w = sidebar::world_of(App::wecom("crm"))
        .scenario(scenario(500))
        .start()
        .await;
    let mut b = w.member().await;
    // The emulator, like a corp that did not allow the app, refuses the app token: 48002.
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["errcode"], 48002);
    assert_eq!(
        w.calls("/cgi-bin/gettoken").await,
        1,
        "no contact token asked for"
    );
}

/// A verification remembered before a removal of the pair (one in flight when
/// `del_follow_user` came: its `remember` landed after the removal's `forget`) is not used: the
/// next verification asks WeCom again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_verification_older_than_a_removal_is_not_used() {
    let w = sidebar::world()
        .scenario(scenario(500))
        .redis(1)
        .start()
        .await;
    let mut b = w.member().await;
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    assert_eq!(w.calls("/cgi-bin/externalcontact/get").await, 1);
    // Ten seconds on, a removal dated five seconds after the verification is on record, and
    // the cache entry is still there (the race).
    w.advance("10s").await;
    let key = format!(
        "wgw:{}",
        wecom_gateway::revocation::contact_key(corp_id(), "zhangsan", customer())
    );
    let mut c = w.redis.as_ref().unwrap().conn().await;
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg((now() + 5).to_string())
        .arg("PX")
        .arg(600_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let (status, body) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        w.calls("/cgi-bin/externalcontact/get").await,
        2,
        "asked again, not taken from the cache"
    );
}

/// A re-login carries the member's current contact into the new session; that contact is not
/// used once it is older than a session's lifetime (a removal of the pair is kept on record
/// only that long after it): the page verifies its customer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_carried_past_a_sessions_lifetime_is_not_used() {
    let w = sidebar().await;
    let mut b = w.member().await;
    let (status, _) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200);
    w.advance("7h").await;
    w.login(&mut b, "crm", "/sidebar/").await;
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(
        contact_of(&echo).0,
        Some(customer()),
        "carried by the re-login"
    );
    w.advance("3601s").await;
    let echo = upstream_sees(&w, &mut b, "/sidebar/", None).await;
    assert_eq!(
        echo.header("x-wecom-userid"),
        Some("zhangsan"),
        "still signed in"
    );
    assert_eq!(
        contact_of(&echo),
        (None, None),
        "verified over eight hours ago"
    );
}
