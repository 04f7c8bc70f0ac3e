//! The `Provider` API as login and the JS-SDK use it, in process, against the emulator.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::world::{apps_toml, ids, qyapi_apps, PUBLIC_ROUTE};
use serde_json::{json, Value};
use wecom_gateway::config::model::App;
use wecom_gateway::provider::{ApiError, ApiRequest, Provider, TokenKind};

struct Setup {
    emulator: emulator::Emulator,
    apps: std::collections::BTreeMap<String, Arc<App>>,
    provider: Provider,
}

async fn setup() -> Setup {
    let emulator = emulator::Emulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        emulator::Scenario::default(),
    )
    .await
    .unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://127.0.0.1:1\"\n{}\n[upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n{PUBLIC_ROUTE}",
        apps_toml(&qyapi_apps(), ids(), &emulator.base_url())
    );
    let config =
        wecom_gateway::config::load_str("t.toml", &text, std::path::Path::new(".")).unwrap();
    Setup {
        emulator,
        apps: config.apps,
        provider: Provider::memory(),
    }
}

fn get(path: &str, query: &[(&str, &str)]) -> ApiRequest {
    ApiRequest {
        method: http::Method::GET,
        path: path.to_owned(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        raw_query: String::new(),
        headers: vec![],
        body: Bytes::new(),
    }
}

fn calls(s: &Setup, api: &str) -> u64 {
    s.emulator
        .state()
        .world()
        .calls()
        .get(api)
        .map_or(0, |c| c.total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_tickets_of_every_kind() {
    let s = setup().await;
    let (crm, mp) = (&s.apps["crm"], &s.apps["mp"]);
    let access = s.provider.token(crm, TokenKind::Access).await.unwrap();
    let contact = s.provider.token(crm, TokenKind::Contact).await.unwrap();
    assert_ne!(access, contact, "the contact secret has its own token");
    let corp = s.provider.token(crm, TokenKind::CorpTicket).await.unwrap();
    let agent = s.provider.token(crm, TokenKind::AgentTicket).await.unwrap();
    let mp_ticket = s.provider.token(mp, TokenKind::OaTicket).await.unwrap();
    {
        let world = s.emulator.state().world();
        use emulator::state::TicketKind;
        assert_eq!(world.valid_ticket(TicketKind::Corp), Some(&*corp));
        assert_eq!(
            world.valid_ticket(TicketKind::Agent(1000002)),
            Some(&*agent)
        );
        assert_eq!(world.valid_ticket(TicketKind::Wechat), Some(&*mp_ticket));
    }
    // All cached: asking again costs nothing.
    for kind in [
        TokenKind::Access,
        TokenKind::Contact,
        TokenKind::CorpTicket,
        TokenKind::AgentTicket,
    ] {
        s.provider.token(crm, kind).await.unwrap();
    }
    assert_eq!(calls(&s, "/cgi-bin/gettoken"), 2);
    assert_eq!(calls(&s, "/cgi-bin/get_jsapi_ticket"), 1);
    assert_eq!(calls(&s, "/cgi-bin/ticket/get"), 1);
    match s.provider.token(mp, TokenKind::AgentTicket).await {
        Err(ApiError::Api { errcode: 48001, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_fetch_with_an_expired_access_token_refreshes_it_once() {
    let s = setup().await;
    let crm = &s.apps["crm"];
    s.provider.token(crm, TokenKind::Access).await.unwrap();
    s.emulator.state().world().expire_tokens();
    let t = s.provider.token(crm, TokenKind::CorpTicket).await.unwrap();
    assert!(!t.is_empty());
    assert_eq!(calls(&s, "/cgi-bin/gettoken"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_answers_errcodes_as_ok_and_gettoken_failures_as_errors() {
    let s = setup().await;
    let resp = s
        .provider
        .call(
            &s.apps["crm"],
            TokenKind::Access,
            get("/cgi-bin/user/get", &[("userid", "nobody")]),
        )
        .await
        .unwrap();
    assert_eq!(resp.errcode, 60111, "the caller decides what 60111 means");
    assert_eq!(resp.json().unwrap()["errcode"], json!(60111));
    match s
        .provider
        .call(
            &s.apps["wrong"],
            TokenKind::Access,
            get("/cgi-bin/user/get", &[("userid", "zhangsan")]),
        )
        .await
    {
        Err(ApiError::Api { errcode: 40001, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_plain_sends_no_token() {
    let s = setup().await;
    let resp = s
        .provider
        .call_plain(
            &s.apps["mp"],
            get(
                "/sns/oauth2/access_token",
                &[
                    ("appid", "wxemu000000000001"),
                    ("secret", "emu-mp-secret"),
                    ("code", "bogus"),
                    ("grant_type", "authorization_code"),
                ],
            ),
        )
        .await
        .unwrap();
    let v: Value = resp.json().unwrap();
    assert_eq!(v["errcode"], 40029, "{v}");
    assert_eq!(calls(&s, "/cgi-bin/token"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_is_cut_off_after_five_seconds() {
    let s = setup().await;
    let crm = &s.apps["crm"];
    s.provider.token(crm, TokenKind::Access).await.unwrap();
    s.emulator.state().world().set_fault(
        "/cgi-bin/user/get".into(),
        emulator::state::FaultKind::DelayMs(8000),
        1,
    );
    let started = Instant::now();
    let r = s
        .provider
        .call(
            crm,
            TokenKind::Access,
            get("/cgi-bin/user/get", &[("userid", "zhangsan")]),
        )
        .await;
    assert!(matches!(r, Err(ApiError::Timeout)), "{r:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(7),
        "{took:?}"
    );
}
