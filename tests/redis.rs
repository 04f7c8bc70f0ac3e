//! Several gateway processes sharing one Redis (SPEC sections 4 `[store]`, 11 and 15): one
//! token per key for the whole cluster, one refresh at a time, a dead lock holder outlived,
//! and Redis going away and coming back without a failed request.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::world::{apps_toml, ids, qyapi_apps, World, PUBLIC_ROUTE};
use serde_json::Value;
use wecom_api::{Cached, Clock, FallbackStore, RedisStore, Store, Unobserved};
use wecom_gateway::config::model::DEFAULT_LOCK_TTL;
use wecom_gateway::provider::{Provider, TokenKind};

const USER_GET: &str = "/crm/cgi-bin/user/get?userid=zhangsan";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn cached(v: &str) -> Cached {
    Cached {
        value: v.into(),
        fetched_at: now_ms(),
        expires_at: now_ms() + 7_200_000,
    }
}

async fn keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut c = redis.conn().await;
    let mut k: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut c)
        .await
        .unwrap();
    k.sort();
    k
}

// ---------------------------------------------------------------------------------------------
// The store itself: key naming, expiry, the scripts, two processes' views of one Redis.

#[tokio::test]
async fn values_live_under_the_prefix_with_their_expiry() {
    let redis = RedisServer::start();
    let s = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let key = "token:access:http://e:ww1:1000002.fp";
    assert!(s.get(key).await.unwrap().is_none());
    let c = Cached {
        value: "T1".into(),
        fetched_at: now_ms(),
        expires_at: now_ms() + 60_000,
    };
    s.set(key, &c).await.unwrap();
    assert_eq!(s.get(key).await.unwrap(), Some(c.clone()));
    assert_eq!(
        keys(&redis, "*").await,
        vec!["wgw:token:access:http://e:ww1:1000002.fp"]
    );
    let mut conn = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("wgw:token:access:http://e:ww1:1000002.fp")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (55_000..=60_000).contains(&pttl),
        "Redis forgets it at its expiry: {pttl}"
    );

    // Another prefix (another environment on the same Redis) sees nothing of it.
    let staging = RedisStore::open(&redis.url(), "staging:", Clock::system()).unwrap();
    assert!(staging.get(key).await.unwrap().is_none());

    // Already expired: not kept at all.
    let gone = Cached {
        expires_at: now_ms() - 1,
        ..c
    };
    s.set(key, &gone).await.unwrap();
    assert!(s.get(key).await.unwrap().is_none());
}

#[tokio::test]
async fn facts_live_under_the_prefix_apart_from_tokens_with_their_ttl() {
    let redis = RedisServer::start();
    let s = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let key = "fact:contact:ww1:zhangsan:wmC";
    assert!(s.get_fact(key).await.unwrap().is_none());
    s.put_fact(key, r#"{"v":1}"#, Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        s.get_fact(key).await.unwrap().as_deref(),
        Some(r#"{"v":1}"#)
    );
    assert_eq!(
        keys(&redis, "*").await,
        vec!["wgw:fact:contact:ww1:zhangsan:wmC"]
    );
    let mut conn = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("wgw:fact:contact:ww1:zhangsan:wmC")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((595_000..=600_000).contains(&pttl), "{pttl}");
    // A fact is not a token, and reads as none.
    assert!(s.get(key).await.unwrap().is_none());
    let other = RedisStore::open(&redis.url(), "staging:", Clock::system()).unwrap();
    assert!(other.get_fact(key).await.unwrap().is_none());

    // Several at once (`MGET`), in the order asked, under the prefix, absent ones as none.
    s.put_fact("f2", "two", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(
        s.get_facts(&["missing", key, "f2"]).await.unwrap(),
        vec![None, Some(r#"{"v":1}"#.to_owned()), Some("two".to_owned())]
    );
    assert_eq!(
        s.get_facts(&["f2"]).await.unwrap(),
        vec![Some("two".into())]
    );
    assert!(s.get_facts(&[]).await.unwrap().is_empty());
    assert_eq!(other.get_facts(&["f2"]).await.unwrap(), vec![None]);
}

#[tokio::test]
async fn a_stale_failure_from_one_process_never_deletes_anothers_newer_token() {
    let redis = RedisServer::start();
    let a = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let b = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let key = "token:access:k";
    a.set(key, &cached("v1")).await.unwrap();
    // Both saw v1 fail; B's report comes first and B refreshes to v2.
    assert!(b.expire_if(key, "v1").await.unwrap());
    b.set(key, &cached("v2")).await.unwrap();
    // A's late report about v1 leaves v2 alone.
    assert!(!a.expire_if(key, "v1").await.unwrap());
    assert_eq!(&*a.get(key).await.unwrap().unwrap().value, "v2");
    // Neither a prefix nor a suffix of the token is "the same token".
    assert!(!a.expire_if(key, "v").await.unwrap());
    assert!(!a.expire_if(key, "2").await.unwrap());
    assert!(!a.expire_if(key, "").await.unwrap());
    assert!(a.expire_if(key, "v2").await.unwrap());
    assert!(b.get(key).await.unwrap().is_none());
    assert!(!a.expire_if("token:access:none", "v2").await.unwrap());
}

#[tokio::test]
async fn the_refresh_lock_is_exclusive_released_by_its_holder_only_and_expires() {
    let redis = RedisServer::start();
    let a = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let b = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let key = "token:access:k";
    let ttl = Duration::from_secs(10);
    let id = a.lock(key, ttl).await.unwrap().expect("free");
    assert_eq!(
        keys(&redis, "wgw:lock:*").await,
        vec!["wgw:lock:token:access:k"]
    );
    assert!(b.lock(key, ttl).await.unwrap().is_none(), "held by A");
    b.unlock(key, "not-the-holder").await.unwrap();
    assert!(b.lock(key, ttl).await.unwrap().is_none(), "still held by A");
    a.unlock(key, &id).await.unwrap();
    let id_b = b.lock(key, Duration::from_millis(200)).await.unwrap();
    assert!(id_b.is_some(), "released by its holder");
    assert_ne!(id_b.as_deref(), Some(id.as_str()), "unique per taking");

    // B dies holding it: it frees itself (Redis's own clock: watched, not slept on), and A's
    // old id cannot release the new holder's.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys(&redis, "wgw:lock:*").await.is_empty() {
        assert!(Instant::now() < deadline, "the lock never lapsed");
        tokio::task::yield_now().await;
    }
    let id_a = a.lock(key, ttl).await.unwrap().expect("expired");
    b.unlock(key, id_b.as_deref().unwrap()).await.unwrap();
    assert!(
        b.lock(key, ttl).await.unwrap().is_none(),
        "a late unlock by the expired holder left the new lock alone"
    );
    a.unlock(key, &id_a).await.unwrap();
    // A value and its lock are separate keys.
    a.set(key, &cached("v1")).await.unwrap();
    assert!(a.lock(key, ttl).await.unwrap().is_some());
    assert_eq!(&*b.get(key).await.unwrap().unwrap().value, "v1");
}

#[tokio::test]
async fn a_script_survives_a_redis_restart_and_a_dead_redis_fails_fast() {
    let mut redis = RedisServer::start();
    let s = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    s.set("k", &cached("v1")).await.unwrap();
    assert!(s.expire_if("k", "v1").await.unwrap());
    redis.stop();
    let started = Instant::now();
    assert!(s.get("k").await.is_err());
    assert!(s.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded: {:?}",
        started.elapsed()
    );
    redis.restart();
    // The script cache of the new server is empty: the store loads the script again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.set("k", &cached("v2")).await.unwrap();
    assert!(!s.expire_if("k", "v1").await.unwrap());
    assert!(s.expire_if("k", "v2").await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// A cluster: the real binary, three times, in front of the emulator.

/// `n` gateways in front of the emulator, their qyapi endpoints sharing one Redis.
struct Cluster {
    w: World,
}

impl Cluster {
    async fn start(n: usize, store_extra: &str) -> Cluster {
        let store = format!(
            "[store]\nbackend = \"redis\"\nredis_url = \"{{redis}}\"\nkey_prefix = \"wgw:\"\n{store_extra}"
        );
        Cluster {
            w: World::new()
                .apps(qyapi_apps())
                .qyapi()
                .redis(n)
                .store(&store)
                .start()
                .await,
        }
    }

    fn redis(&self) -> &RedisServer {
        self.w.redis.as_ref().unwrap()
    }

    fn redis_mut(&mut self) -> &mut RedisServer {
        self.w.redis.as_mut().unwrap()
    }

    fn qyapi(&self, i: usize, path: &str) -> String {
        let port = self.w.gateways[i].qyapi_port.unwrap();
        format!("http://127.0.0.1:{port}{path}")
    }

    async fn call(&self, i: usize, path: &str) -> Value {
        self.w
            .http
            .get(self.qyapi(i, path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn expire_tokens(&self) {
        self.w.expire_tokens().await;
    }

    fn calls(&self, api: &str) -> u64 {
        self.w
            .emu
            .state()
            .world()
            .calls()
            .get(api)
            .map_or(0, |c| c.total)
    }

    fn gettokens(&self) -> u64 {
        self.calls("/cgi-bin/gettoken")
    }

    /// `n` concurrent calls spread over the live gateways `on`; every answer's errcode.
    async fn burst(&self, on: &[usize], n: usize) -> Vec<Option<i64>> {
        let mut tasks = Vec::new();
        for i in 0..n {
            let http = self.w.http.clone();
            let url = self.qyapi(on[i % on.len()], USER_GET);
            tasks.push(tokio::spawn(async move {
                let v: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                v["errcode"].as_i64()
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    async fn readyz(&self, i: usize) -> (u16, String) {
        let r = self
            .w
            .http
            .get(self.w.gateways[i].admin_url("/readyz"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Polls `/readyz` of gateway `i` until it answers `status`, for at most 15 s.
    async fn wait_ready(&self, i: usize, status: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (got, body) = self.readyz(i).await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "readyz of gateway {i} still {got} {body:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_600_calls_after_expiry_fetch_one_token() {
    let c = Cluster::start(3, "").await;
    for i in 0..3 {
        assert_eq!(c.call(i, USER_GET).await["errcode"], 0);
        assert_eq!(c.readyz(i).await, (200, "ready\n".to_owned()));
    }
    assert_eq!(
        c.gettokens(),
        1,
        "the second and third gateway use the first one's token"
    );

    c.expire_tokens().await;
    let started = Instant::now();
    let answers = c.burst(&[0, 1, 2], 600).await;
    eprintln!(
        "600 calls over 3 gateways across an expiry: {:?}",
        started.elapsed()
    );
    assert!(answers.iter().all(|a| *a == Some(0)), "{answers:?}");
    assert_eq!(c.gettokens(), 2, "exactly one gettoken for the cluster");
    assert_eq!(
        keys(c.redis(), "wgw:token:*").await.len(),
        1,
        "one shared access token"
    );
    assert!(
        keys(c.redis(), "wgw:lock:*").await.is_empty(),
        "the lock was released"
    );
}

/// The jsapi tickets of three processes sharing Redis, through the provider API that the
/// JS-SDK config uses: three providers in this process, each with its own in-process single
/// flight and its own connection, like three gateways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_600_ticket_requests_after_expiry_fetch_each_ticket_once() {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap();
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
    let crm = config.apps["crm"].clone();
    let providers: Vec<Provider> = (0..3)
        .map(|_| {
            let store = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
            let clock = Clock::system();
            let store = FallbackStore::new(store, clock.clone(), Arc::new(Unobserved));
            Provider::new(Arc::new(store), DEFAULT_LOCK_TTL, clock)
        })
        .collect();
    // Answered successfully: a ticket call made with the expired access token fails with
    // 42001 first and is retried, but only one ticket is issued per kind.
    let calls = |api: &str| {
        emulator
            .state()
            .world()
            .calls()
            .get(api)
            .map_or(0, |c| c.by_errcode.get("0").copied().unwrap_or(0))
    };
    for p in &providers {
        p.token(&crm, TokenKind::CorpTicket).await.unwrap();
        p.token(&crm, TokenKind::AgentTicket).await.unwrap();
    }
    let before = (
        calls("/cgi-bin/gettoken"),
        calls("/cgi-bin/get_jsapi_ticket"),
        calls("/cgi-bin/ticket/get"),
    );
    assert_eq!(before, (1, 1, 1), "shared from the first process on");

    // Everything expires at WeCom; the tickets also leave Redis, as their PX makes them.
    emulator.state().world().expire_tokens();
    let mut conn = redis.conn().await;
    for k in keys(&redis, "wgw:token:*_ticket:*").await {
        let _: i64 = redis::cmd("DEL")
            .arg(k)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..600 {
        let p = providers[i % 3].clone();
        let crm = crm.clone();
        let kind = if i % 2 == 0 {
            TokenKind::CorpTicket
        } else {
            TokenKind::AgentTicket
        };
        tasks.push(tokio::spawn(async move { p.token(&crm, kind).await }));
    }
    let mut tickets = std::collections::BTreeSet::new();
    for t in tasks {
        tickets.insert(t.await.unwrap().unwrap().to_string());
    }
    assert_eq!(tickets.len(), 2, "one corp and one agent ticket for all");
    assert_eq!(calls("/cgi-bin/get_jsapi_ticket") - before.1, 1);
    assert_eq!(calls("/cgi-bin/ticket/get") - before.2, 1);
    assert_eq!(
        calls("/cgi-bin/gettoken") - before.0,
        1,
        "the expired access token under both tickets, refreshed once"
    );
    let world = emulator.state().world();
    use emulator::state::TicketKind;
    assert!(tickets.contains(world.valid_ticket(TicketKind::Corp).unwrap()));
    assert!(tickets.contains(world.valid_ticket(TicketKind::Agent(1000002)).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_killed_mid_refresh_is_followed_by_another_after_the_lock_expires() {
    let lock_ttl = Duration::from_secs(3);
    let mut c = Cluster::start(3, "lock_ttl = \"3s\"").await;
    assert_eq!(c.call(0, USER_GET).await["errcode"], 0);
    let before = c.gettokens();

    c.expire_tokens().await;
    c.w.control(
        "/_emulator/faults",
        serde_json::json!({"api": "/cgi-bin/gettoken", "delay_ms": 2500, "count": 1}),
    )
    .await;
    // A finds its token expired, takes the lock and waits on the slow gettoken.
    let doomed = {
        let http = c.w.http.clone();
        let url = c.qyapi(0, USER_GET);
        tokio::spawn(async move { http.get(url).send().await.map(|r| r.status()) })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys(c.redis(), "wgw:lock:*").await.is_empty() {
        assert!(Instant::now() < deadline, "A never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let locked_at = Instant::now();
    let a = c.w.gateways[0].child.as_mut().unwrap();
    a.kill().unwrap();
    a.wait().unwrap();
    assert!(doomed.await.unwrap().is_err(), "A died before answering");

    let answers = c.burst(&[1, 2], 40).await;
    let waited = locked_at.elapsed();
    eprintln!("B and C answered {:?} after A took the lock", waited);
    assert!(answers.iter().all(|a| *a == Some(0)), "{answers:?}");
    assert!(
        waited < lock_ttl + Duration::from_secs(2),
        "B and C waited out the dead holder's lock, no longer: {waited:?}"
    );
    let fetched = c.gettokens() - before;
    assert!(
        (1..=2).contains(&fetched),
        "one refresh by B or C (plus A's abandoned one, if the emulator counted it): {fetched}"
    );
    assert!(keys(c.redis(), "wgw:lock:*").await.is_empty());
    let b_log = c.w.gateways[1].log() + &c.w.gateways[2].log();
    assert!(
        !b_log.contains("fetching without it"),
        "the lock came free by expiry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_during_traffic_then_restarted() {
    let mut c = Cluster::start(2, "").await;
    for i in 0..2 {
        assert_eq!(c.call(i, USER_GET).await["errcode"], 0);
    }
    assert_eq!(c.gettokens(), 1);

    // Steady traffic on both gateways for the whole test; every answer must be a success.
    let stop = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let served = Arc::new(AtomicU64::new(0));
    let mut traffic = Vec::new();
    for i in 0..2 {
        let (http, url) = (c.w.http.clone(), c.qyapi(i, USER_GET));
        let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
        traffic.push(tokio::spawn(async move {
            while stop.load(Ordering::Relaxed) == 0 {
                let ok = match http.get(&url).send().await {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["errcode"] == 0),
                    Err(_) => false,
                };
                if ok {
                    served.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                // The behaviour under test: steady traffic (about 100 calls a second per
                // client) while Redis goes away and comes back.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }

    c.redis_mut().stop();
    for i in 0..2 {
        let body = c.wait_ready(i, 503).await;
        assert!(body.contains("store redis unreachable"), "{body}");
    }
    let served_down = served.load(Ordering::Relaxed);
    // A refresh while Redis is down: each process fetches once for itself, no request fails.
    c.expire_tokens().await;
    let answers = c.burst(&[0, 1], 100).await;
    assert!(answers.iter().all(|a| *a == Some(0)), "{answers:?}");
    assert!(
        (2..=3).contains(&c.gettokens()),
        "one local refresh per process: {}",
        c.gettokens()
    );

    // The steady clients are served meanwhile too (one request of a gateway at a time asks
    // the dead Redis again and waits for it; one of theirs may be that one).
    let deadline = Instant::now() + Duration::from_secs(10);
    while served.load(Ordering::Relaxed) <= served_down {
        assert!(
            Instant::now() < deadline,
            "served from the cache while Redis was down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served_before_restart = served.load(Ordering::Relaxed);
    // Back on the same port, empty (no persistence): the gateways find it by themselves.
    c.redis_mut().restart();
    for i in 0..2 {
        assert_eq!(c.wait_ready(i, 200).await, "ready\n");
    }
    // Refreshes go through Redis again: one gettoken for both processes.
    c.expire_tokens().await;
    let before = c.gettokens();
    let answers = c.burst(&[0, 1], 200).await;
    assert!(answers.iter().all(|a| *a == Some(0)), "{answers:?}");
    assert_eq!(
        c.gettokens() - before,
        1,
        "one refresh for the cluster again"
    );
    assert_eq!(keys(c.redis(), "wgw:token:*").await.len(), 1);

    stop.store(1, Ordering::Relaxed);
    eprintln!(
        "steady traffic: {} served, {} of them while Redis was down",
        served.load(Ordering::Relaxed),
        served_before_restart - served_down
    );
    for t in traffic {
        t.await.unwrap();
    }
    assert!(
        served_before_restart > served_down,
        "served from the cache while Redis was down"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed");
    let metrics =
        c.w.http
            .get(c.w.gateways[0].admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(metrics.contains("wgw_store_errors_total{op="), "{metrics}");
    c.w.gateways[0].wait_log("token store reachable again");
    let log = c.w.gateways[0].log();
    assert_eq!(
        log.matches("token store unreachable").count(),
        1,
        "logged once, not per request:\n{log}"
    );
    assert!(log.contains("token store reachable again"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// The JS-SDK config of a cluster: three gateways behind one public origin, one session cookie.

/// `/_gateway/jssdk/config` answers of `n` concurrent requests spread over `ports`.
async fn config_burst(
    http: &reqwest::Client,
    ports: &[u16],
    cookie: &str,
    page: &str,
    n: usize,
) -> Vec<(u16, Value)> {
    let q: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
    let mut tasks = Vec::new();
    for i in 0..n {
        let req = http
            .get(format!(
                "http://127.0.0.1:{}/_gateway/jssdk/config?url={q}",
                ports[i % ports.len()]
            ))
            .header("cookie", cookie)
            .header("accept", "application/json");
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// What the emulator's JS-SDK says of `payload` (`config` or `agentConfig`) on `page`.
async fn emulator_verdict(emu: &str, kind: &str, payload: &Value, page: &str) -> String {
    let mut req = payload.clone();
    req["kind"] = kind.into();
    req["url"] = page.into();
    let v: Value = common::client()
        .post(format!("{emu}/_emulator/jssdk/verify"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["errMsg"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_600_configs_after_expiry_fetch_each_ticket_once() {
    // Three gateways on one Redis behind one public origin (gateway 0's), as behind a load
    // balancer, with one session secret: a cookie issued by one is read by all.
    let w = common::sidebar::world().redis(3).one_origin().start().await;
    let (emu, gateways, redis) = (&w.emu, &w.gateways, w.redis.as_ref().unwrap());
    let calls = |api: &str| {
        emu.state()
            .world()
            .calls()
            .get(api)
            .cloned()
            .unwrap_or_default()
    };

    // One login through gateway 0; its cookie works on every gateway.
    let mut b = common::browser::Browser::new(common::browser::WXWORK_UA);
    common::browser::login(&mut b, &gateways[0], &emu.base_url(), "crm", "/sidebar/").await;
    let cookie = b.cookie_header(&gateways[0].url("/"));
    assert!(!cookie.is_empty());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(600)
        .build()
        .unwrap();
    for gw in gateways {
        let r = http
            .get(gw.url("/staff/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "the session is read by every gateway");
    }
    // The access token is shared and warm; the tickets were never fetched.
    assert_eq!(calls("/cgi-bin/gettoken").total, 1);
    assert_eq!(calls("/cgi-bin/get_jsapi_ticket").total, 0);
    assert_eq!(calls("/cgi-bin/ticket/get").total, 0);

    // WeCom drops the access token every gateway holds; then the whole cluster asks for the
    // tickets at once.
    let r = http
        .post(format!("{}/_emulator/expire-tokens", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let page = gateways[0].url("/sidebar/?from=chat");
    let http_ports: Vec<u16> = gateways.iter().map(|g| g.port).collect();
    let started = Instant::now();
    let answers = config_burst(&http, &http_ports, &cookie, &page, 600).await;
    eprintln!(
        "600 configs over 3 gateways across an expiry: {:?}",
        started.elapsed()
    );
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }

    // One ticket of each kind was issued for the cluster. The first try of each ran on the
    // dropped access token (42001) at most once, was retried once after one gettoken.
    for api in ["/cgi-bin/get_jsapi_ticket", "/cgi-bin/ticket/get"] {
        let c = calls(api);
        assert_eq!(c.by_errcode.get("0"), Some(&1), "{api}: {c:?}");
        assert!(
            c.by_errcode.get("42001").copied().unwrap_or(0) <= 1
                && c.by_errcode.keys().all(|k| k == "0" || k == "42001"),
            "{api}: {c:?}"
        );
    }
    assert_eq!(
        calls("/cgi-bin/gettoken").total,
        2,
        "one token refresh for the cluster"
    );
    assert_eq!(keys(redis, "wgw:token:*_ticket:*").await.len(), 2);
    assert!(keys(redis, "wgw:lock:*").await.is_empty());

    // Every answer is signed with the one current ticket of its kind...
    let (corp, agent) = {
        use emulator::state::TicketKind;
        let world = emu.state().world();
        (
            world.valid_ticket(TicketKind::Corp).unwrap().to_owned(),
            world
                .valid_ticket(TicketKind::Agent(common::world::agent_id()))
                .unwrap()
                .to_owned(),
        )
    };
    let signed_with = |ticket: &str, p: &Value| {
        wecom_gateway::jssdk::signature::sign(
            ticket,
            p["nonceStr"].as_str().unwrap(),
            p["timestamp"].as_u64().unwrap(),
            &page,
        ) == p["signature"].as_str().unwrap()
    };
    for (_, body) in &answers {
        assert!(signed_with(&corp, &body["config"]), "{body}");
        assert!(signed_with(&agent, &body["agentConfig"]), "{body}");
    }
    // ...and the emulator's own JS-SDK check accepts them, from each gateway.
    for (_, body) in answers.iter().take(6) {
        assert_eq!(
            emulator_verdict(&emu.base_url(), "config", &body["config"], &page).await,
            "config:ok"
        );
        assert_eq!(
            emulator_verdict(&emu.base_url(), "agentConfig", &body["agentConfig"], &page).await,
            "agentConfig:ok"
        );
    }
}

/// The Redis queue lists and replays parked events as the in-process ones do (the same
/// checks: oldest first, one by its id or all, back at the end of the queue with their ids).
#[tokio::test]
async fn the_redis_queue_lists_and_replays_parked_events() {
    let redis = RedisServer::start();
    let q = wecom_gateway::callback::queue::RedisQueue::open(
        &redis.url(),
        "wgw:",
        DEFAULT_LOCK_TTL,
        Clock::system(),
    )
    .unwrap();
    wecom_gateway::callback::queue::conformance::parks_and_replays(&q).await;
    let q = wecom_gateway::callback::queue::RedisQueue::open(
        &redis.url(),
        "wgw-seen:",
        DEFAULT_LOCK_TTL,
        Clock::system(),
    )
    .unwrap();
    wecom_gateway::callback::queue::conformance::remembers_what_it_queued(&q).await;
    let q = wecom_gateway::callback::queue::RedisQueue::open(
        &redis.url(),
        "wgw[1]*:",
        DEFAULT_LOCK_TTL,
        Clock::system(),
    )
    .unwrap();
    wecom_gateway::callback::queue::conformance::lists_the_apps_with_events(&q).await;
    let q = wecom_gateway::callback::queue::RedisQueue::open(
        &redis.url(),
        "wgw-park:",
        DEFAULT_LOCK_TTL,
        Clock::system(),
    )
    .unwrap();
    wecom_gateway::callback::queue::conformance::lists_and_parks_by_position(&q).await;
}

/// An entry another version wrote (a rolling upgrade, a rollback) that this one cannot read is
/// parked as written, as the local queue parks it, never dropped: listed, and kept for a
/// version that reads it. The events behind it go on.
#[tokio::test]
async fn an_unreadable_redis_queue_entry_is_parked_not_dropped() {
    use wecom_gateway::callback::event::Event;
    use wecom_gateway::callback::queue::{EventQueue, RedisQueue};
    let redis = RedisServer::start();
    let q = RedisQueue::open(&redis.url(), "wgw:", DEFAULT_LOCK_TTL, Clock::system()).unwrap();
    let raw = r#"{"id":"ev-from-newer-version","app":"crm","queued_at":1,"message":"<xml/>"}"#;
    let mut c = redis.conn().await;
    let _: String = redis::cmd("XADD")
        .arg("wgw:events:crm")
        .arg("*")
        .arg("event")
        .arg(raw)
        .query_async(&mut c)
        .await
        .unwrap();
    let next = Event::new("crm", "<xml><N>1</N></xml>".into(), "k1".into(), 1);
    q.push(&next).await.unwrap();
    // (One unreadable entry is set aside per look.)
    let mut head = None;
    for _ in 0..3 {
        head = q.head("crm").await.unwrap();
        if head.is_some() {
            break;
        }
    }
    assert_eq!(
        head.unwrap().event,
        next,
        "the readable event behind it goes on"
    );
    let parked = q.parked("crm", 10).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].event.is_none());
    let kept: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("wgw:events-dead:crm")
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        format!("{kept:?}").contains("ev-from-newer-version"),
        "{kept:?}"
    );
}

/// Two instances on one Redis, the lease changing hands in the middle of a delivery. The new
/// holder waits for the event the old one was delivering (it may still be posting it: it lost
/// Redis for longer than its lease) and reads nothing newer meanwhile; an event the old holder
/// then acks is never delivered again; one left alone longer than a delivery takes (its holder
/// killed) is taken over, with its event id; one whose holder stopped cleanly at once.
#[tokio::test]
async fn a_new_lease_holder_waits_out_a_delivery_under_way_elsewhere() {
    use wecom_gateway::callback::event::Event;
    use wecom_gateway::callback::queue::{EventQueue, RedisQueue};
    let redis = RedisServer::start();
    let lease = Duration::from_secs(1);
    let open = || RedisQueue::open(&redis.url(), "wgw:", lease, Clock::system()).unwrap();
    let (a, b) = (open(), open());
    let event = |n: u32| Event::new("crm", format!("<xml><N>{n}</N></xml>"), format!("k{n}"), 1);
    for n in 1..=3 {
        a.push(&event(n)).await.unwrap();
    }
    let in_flight = Duration::from_secs(2);
    let lapse = || tokio::time::sleep(lease + Duration::from_millis(200));

    assert!(a.lead("crm").await.unwrap());
    assert!(a.settle("crm", in_flight).await.unwrap());
    let first = a.head("crm").await.unwrap().unwrap();
    assert!(a.working_on("crm", &first).await.unwrap());
    assert!(!b.lead("crm").await.unwrap(), "a holds the lease");
    // a stops renewing (Redis out of its reach): the lease lapses and b takes it. The first
    // event has been left alone for longer than the margin, not for a delivery's time.
    lapse().await;
    assert!(b.lead("crm").await.unwrap());
    assert!(
        !b.settle("crm", in_flight).await.unwrap(),
        "a may still be posting the first event"
    );
    assert!(
        !a.working_on("crm", &first).await.unwrap(),
        "a is told that the lease went: it posts nothing more"
    );
    // a's post ended well: it acks, and b goes on with the second, never the first.
    a.ack("crm", &first).await.unwrap();
    assert!(b.settle("crm", in_flight).await.unwrap());
    let second = b.head("crm").await.unwrap().unwrap();
    assert!(
        second.event.message.contains("<N>2</N>"),
        "{:?}",
        second.event
    );

    // b is killed while it delivers the second: a takes the lease back and waits until the
    // second has been left alone longer than a delivery takes, then delivers it.
    assert!(b.working_on("crm", &second).await.unwrap());
    let touched = std::time::Instant::now();
    lapse().await;
    assert!(a.lead("crm").await.unwrap());
    assert!(!a.settle("crm", in_flight).await.unwrap());
    // The margin: a second past the delivery's longest time.
    tokio::time::sleep((in_flight + Duration::from_millis(1300)).saturating_sub(touched.elapsed()))
        .await;
    assert!(a.lead("crm").await.unwrap());
    assert!(a.settle("crm", in_flight).await.unwrap());
    let again = a.head("crm").await.unwrap().unwrap();
    assert_eq!(again.event, second.event, "the same event, with its id");
    assert!(
        !b.working_on("crm", &second).await.unwrap(),
        "b, were it only slow, is told the event went"
    );
    a.ack("crm", &again).await.unwrap();

    // a stops cleanly while it holds the third: b need not wait.
    let third = a.head("crm").await.unwrap().unwrap();
    assert!(a.working_on("crm", &third).await.unwrap());
    a.resign("crm").await;
    assert!(b.lead("crm").await.unwrap());
    assert!(b.settle("crm", Duration::from_secs(60)).await.unwrap());
    assert_eq!(b.head("crm").await.unwrap().unwrap().event, third.event);
}

/// After Redis restarts, the first command on the old connection meets a closed socket: it is
/// sent again on a new one rather than failing (a durable write there — a sign-out, an install
/// — would otherwise be refused, or with the fallback kept by this process alone).
#[tokio::test]
async fn the_first_write_after_a_redis_restart_is_kept() {
    let mut redis = RedisServer::start();
    let s = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let ttl = Duration::from_secs(600);
    s.put_fact("before", "1", ttl).await.unwrap();
    redis.stop();
    redis.restart();
    s.put_durable_fact("after", "1", ttl).await.unwrap();
    assert_eq!(s.get_fact("after").await.unwrap().as_deref(), Some("1"));
}

/// A long `return_to` is kept in Redis under the sign-in's state; while Redis does not answer,
/// the login cookie carries it instead (kept by this process alone, the callback would not
/// find it once Redis is back, nor on another instance), and the sign-in still lands on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_return_to_while_redis_is_away_rides_in_the_login_cookie() {
    let mut w = common::sidebar::world().redis(1).start().await;
    let long = format!("/sidebar/#/{}", "x".repeat(400));
    let gw_url = |w: &World| common::browser::login_url(&w.gateways[0], "crm", &long);
    let first_cookie = |r: &reqwest::Response| r.headers()["set-cookie"].len();
    let http = common::client();
    let ua = common::browser::WXWORK_UA;
    let r = http
        .get(gw_url(&w))
        .header("user-agent", ua)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(
        first_cookie(&r) < 400,
        "kept in Redis: {}",
        first_cookie(&r)
    );
    w.redis.as_mut().unwrap().stop();
    let mut b = common::browser::Browser::new(ua);
    let r = b.get(&gw_url(&w)).await;
    assert_eq!(r.status(), 302);
    assert!(first_cookie(&r) > 400, "carried: {}", first_cookie(&r));
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    w.redis.as_mut().unwrap().restart();
    // Once Redis answers again, the provider sends the browser back and the callback finds
    // the route in the cookie.
    let ready = w.gateways[0].admin_url("/readyz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http.get(&ready).send().await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = b.get(&authorize).await;
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let end = b.get(&callback).await;
    assert_eq!(end.status(), 302);
    let to = end.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.ends_with(&long), "{to}");
}

/// A long `return_to` kept in Redis under the sign-in's state is read once: the callback that
/// lands on it removes it (a route naming a customer does not stay for the login's ten
/// minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_return_to_is_removed_by_the_callback_that_reads_it() {
    let w = common::sidebar::world().redis(1).start().await;
    let gw = &w.gateways[0];
    let long = format!("/sidebar/#/customer/{}", "x".repeat(200));
    let mut b = common::browser::Browser::new(common::browser::WXWORK_UA);
    let r = b.get(&common::browser::login_url(gw, "crm", &long)).await;
    assert_eq!(r.status(), 302);
    let redis = w.redis.as_ref().unwrap();
    assert_eq!(keys(redis, "*login-return:*").await.len(), 1, "kept");
    let authorize = r.headers()["location"].to_str().unwrap().to_owned();
    let back = b.get(&authorize).await;
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let end = b.get(&callback).await;
    assert_eq!(end.status(), 302);
    assert!(end.headers()["location"].to_str().unwrap().ends_with(&long));
    assert_eq!(keys(redis, "*login-return:*").await, Vec::<String>::new());
}

/// A sign-out while Redis does not answer is not called done: the browser's cookie goes, and
/// the answer says that other copies of the session were not ended (503), instead of a
/// redirect that hides it. Once Redis answers, signing out with the copy works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_redis_did_not_keep_is_not_called_done() {
    let mut w = common::sidebar::world().redis(1).start().await;
    let gw = &w.gateways[0];
    let mut b = common::browser::Browser::new(common::browser::WXWORK_UA);
    common::browser::login(&mut b, gw, &w.emu.base_url(), "crm", "/sidebar/").await;
    let copy = b.cookie_header(&gw.url("/"));
    let http = common::client();
    let logout = |cookie: String| {
        let url = gw.url("/_gateway/logout");
        let http = http.clone();
        async move { http.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    w.redis.as_mut().unwrap().stop();
    let r = logout(copy.clone()).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("x-request-id"));
    let cleared = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("max-age=0"),
        "{cleared}"
    );
    w.redis.as_mut().unwrap().restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = logout(copy.clone()).await;
        if r.status() == 302 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sign-out never recorded: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = http
        .get(gw.url("/_gateway/whoami"))
        .header("cookie", &copy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the copy no longer opens");
}

/// A Redis that refuses the gateway's password is said to, not "unreachable" (an operator
/// would look at the network): the connection manager retries a refusal as it would a Redis
/// that is down, so the store asks once plainly.
#[tokio::test]
async fn a_refused_password_is_named_as_such() {
    let redis = RedisServer::start();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query_async(&mut c)
        .await
        .unwrap();
    let without = RedisStore::open(&redis.url(), "wgw:", Clock::system()).unwrap();
    let e = without.ping().await.unwrap_err();
    let wrong = redis.url().replace("redis://", "redis://:wrong@");
    let e2 = RedisStore::open(&wrong, "wgw:", Clock::system())
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    for e in [&e, &e2] {
        assert!(
            e.0.contains("password") || e.0.contains("NOAUTH") || e.0.contains("WRONGPASS"),
            "{e}"
        );
        assert!(!e.0.contains("wrong@"), "the URL is never told: {e}");
    }
    let right = redis.url().replace("redis://", "redis://:s3cret@");
    RedisStore::open(&right, "wgw:", Clock::system())
        .unwrap()
        .ping()
        .await
        .unwrap();
}

/// A Redis that answers but takes no write (at its `maxmemory` with `noeviction`): every
/// callback, sign-out and install would be refused, so `/readyz` says not ready, and ready
/// again once it takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_redis_takes_no_write() {
    let c = Cluster::start(1, "").await;
    assert_eq!(c.readyz(0).await, (200, "ready\n".to_owned()));
    c.redis().take_no_writes().await;
    let body = c.wait_ready(0, 503).await;
    assert_eq!(body, "not ready: store redis does not take writes\n");
    c.redis().config_set(&[("maxmemory", "0")]).await;
    assert_eq!(c.wait_ready(0, 200).await, "ready\n");
}
