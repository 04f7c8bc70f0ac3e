//! The client's stack against a small fake of WeCom on a loopback port: what a caller sees of
//! token errors, busy answers and tickets, and how often gettoken is asked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use wecom_api::{
    ApiError, ApiRequest, AppTargets, Client, Credentials, MemoryStore, Observer, Proxies,
    RetryReason, Secret, TokenKind, TokenTarget,
};

/// WeCom as far as these tests need it: tokens `T1`, `T2`, ...; only the newest is valid.
#[derive(Default)]
struct Fake {
    issued: AtomicUsize,
    gettoken: AtomicUsize,
    user_get: AtomicUsize,
    /// `user/get` answers -1 this many times first.
    busy: AtomicI64,
    /// `user/get` refuses every token with 42001.
    refuse_all: std::sync::atomic::AtomicBool,
    media_get: AtomicUsize,
}

type Params = Query<HashMap<String, String>>;

fn current(f: &Fake) -> String {
    format!("T{}", f.issued.load(Ordering::SeqCst))
}

async fn gettoken(State(f): State<Arc<Fake>>, Query(q): Params) -> Json<Value> {
    f.gettoken.fetch_add(1, Ordering::SeqCst);
    if q.get("corpsecret").map(String::as_str) != Some("secret") {
        return Json(json!({"errcode": 40001, "errmsg": "invalid credential"}));
    }
    let n = f.issued.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": format!("T{n}"), "expires_in": 7200}))
}

async fn user_get(State(f): State<Arc<Fake>>, Query(q): Params) -> Json<Value> {
    f.user_get.fetch_add(1, Ordering::SeqCst);
    if q.get("access_token") != Some(&current(&f)) || f.refuse_all.load(Ordering::SeqCst) {
        return Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
    }
    if f.busy.fetch_sub(1, Ordering::SeqCst) > 0 {
        return Json(json!({"errcode": -1, "errmsg": "system busy"}));
    }
    Json(json!({"errcode": 0, "errmsg": "ok", "userid": q.get("userid")}))
}

/// A file whose content is a JSON object with an errcode (a customer's upload), as
/// `media/get` sends files: typed as what it is, as an attachment.
async fn media_get(State(f): State<Arc<Fake>>, Query(q): Params) -> axum::response::Response {
    use axum::response::IntoResponse;
    f.media_get.fetch_add(1, Ordering::SeqCst);
    let body = match q.get("media_id").map(String::as_str) {
        Some("busy") => r#"{"errcode":-1,"errmsg":"system busy"}"#,
        _ => r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
    };
    let ty = if q.contains_key("typed") {
        "application/octet-stream"
    } else {
        "text/plain"
    };
    let mut r = ([(axum::http::header::CONTENT_TYPE, ty)], body).into_response();
    if !q.contains_key("typed") {
        r.headers_mut().insert(
            axum::http::header::CONTENT_DISPOSITION,
            "attachment; filename=\"a.json\"".parse().unwrap(),
        );
    }
    r
}

async fn jsapi_ticket(State(f): State<Arc<Fake>>, Query(q): Params) -> Json<Value> {
    if q.get("access_token") != Some(&current(&f)) {
        return Json(json!({"errcode": 42001, "errmsg": "access_token expired"}));
    }
    Json(json!({"errcode": 0, "errmsg": "ok", "ticket": "J1", "expires_in": 7200}))
}

#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

impl Observer for Seen {
    fn fetched(&self, target: &TokenTarget, result: Result<(), &ApiError>) {
        let what = result.map_or_else(|e| e.errcode().unwrap_or(0).to_string(), |_| "ok".into());
        self.0
            .lock()
            .unwrap()
            .push(format!("fetched {} {what}", target.kind().label()));
    }
    fn retried(&self, target: &TokenTarget, why: RetryReason) {
        self.0
            .lock()
            .unwrap()
            .push(format!("retried {} {}", target.app(), why.label()));
    }
}

struct World {
    fake: Arc<Fake>,
    client: Client,
    targets: AppTargets,
    seen: Arc<Seen>,
}

async fn world(secret: &str) -> World {
    world_through(secret, Proxies::none()).await
}

async fn world_through(secret: &str, proxies: Proxies) -> World {
    let fake = Arc::new(Fake::default());
    let app = Router::new()
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/user/get", get(user_get))
        .route("/cgi-bin/get_jsapi_ticket", get(jsapi_ticket))
        .route("/cgi-bin/media/get", get(media_get))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let seen = Arc::new(Seen::default());
    let client = Client::builder(Arc::new(MemoryStore::default()), Duration::from_secs(10))
        .observer(seen.clone())
        .proxies(proxies)
        .build();
    let creds = Credentials::Wecom {
        corp_id: "ww1".into(),
        agent_id: 1000002,
        secret: Secret::new(secret.into()),
        contact_secret: None,
    };
    World {
        fake,
        client,
        targets: AppTargets::new("crm", &base, &creds),
        seen,
    }
}

fn user_get_req() -> ApiRequest {
    ApiRequest::get("/cgi-bin/user/get", &[("userid", "zhangsan")])
}

#[tokio::test]
async fn an_expired_token_is_refetched_once_and_the_caller_sees_the_success() {
    let w = world("secret").await;
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(r.errcode, 0);
    // WeCom drops T1 (another process refreshed it): the next call fails once, then succeeds.
    w.fake.issued.fetch_add(1, Ordering::SeqCst);
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(r.errcode, 0, "{:?}", r.json());
    assert_eq!(w.fake.gettoken.load(Ordering::SeqCst), 2);
    assert_eq!(w.fake.user_get.load(Ordering::SeqCst), 3);
    assert_eq!(
        *w.seen.0.lock().unwrap(),
        [
            "fetched access ok",
            "retried crm token_expired",
            "fetched access ok"
        ]
    );
}

#[tokio::test]
async fn a_token_refused_again_after_its_refresh_is_answered_not_looped() {
    let w = world("secret").await;
    w.fake.refuse_all.store(true, Ordering::SeqCst);
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(
        r.errcode, 42001,
        "the second refusal is the caller's answer"
    );
    assert_eq!(
        w.fake.gettoken.load(Ordering::SeqCst),
        2,
        "one refresh per call"
    );
    assert_eq!(
        w.fake.user_get.load(Ordering::SeqCst),
        2,
        "one retry per call"
    );
}

/// A file is no API answer, whatever its content: one with an errcode in it is neither tried
/// again (-1) nor a reason to refetch the token (42001).
#[tokio::test]
async fn a_file_holding_an_errcode_is_passed_on_as_it_is() {
    let w = world("secret").await;
    for (i, query) in [
        [("media_id", "busy"), ("typed", "1")],
        [("media_id", "expired"), ("typed", "1")],
        [("media_id", "busy"), ("attached", "1")],
        [("media_id", "expired"), ("attached", "1")],
    ]
    .into_iter()
    .enumerate()
    {
        let r = w
            .client
            .call(
                w.targets.access(),
                ApiRequest::get("/cgi-bin/media/get", &query),
            )
            .await
            .unwrap();
        assert_eq!(r.errcode, 0, "{query:?}");
        assert_eq!(w.fake.media_get.load(Ordering::SeqCst), i + 1, "{query:?}");
    }
    assert_eq!(w.fake.gettoken.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn system_busy_is_tried_three_more_times_with_backoff() {
    let w = world("secret").await;
    w.fake.busy.store(5, Ordering::SeqCst);
    let started = tokio::time::Instant::now();
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(r.errcode, -1, "the fourth busy answer is the caller's");
    assert_eq!(w.fake.user_get.load(Ordering::SeqCst), 4);
    assert_eq!(started.elapsed(), Duration::from_millis(200 + 400 + 800));
}

#[tokio::test]
async fn a_ticket_fetch_refreshes_the_access_token_under_it_once() {
    let w = world("secret").await;
    w.client.token(w.targets.access()).await.unwrap();
    w.fake.issued.fetch_add(1, Ordering::SeqCst);
    let corp = w.targets.get(TokenKind::CorpTicket).unwrap();
    assert_eq!(&*w.client.token(corp).await.unwrap(), "J1");
    assert_eq!(w.fake.gettoken.load(Ordering::SeqCst), 2);
    assert_eq!(
        *w.seen.0.lock().unwrap(),
        [
            "fetched access ok",
            "retried crm token_expired",
            "fetched access ok",
            "fetched corp_ticket ok"
        ]
    );
    // A ticket is not a token a call can carry.
    let r = w.client.call(corp, user_get_req()).await;
    assert!(
        matches!(r, Err(ApiError::Api { errcode: 48001, .. })),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_bad_secret_reaches_the_caller_with_its_errcode() {
    let w = world("wrong").await;
    for _ in 0..3 {
        let r = w.client.call(w.targets.access(), user_get_req()).await;
        assert!(
            matches!(r, Err(ApiError::Api { errcode: 40001, .. })),
            "{r:?}"
        );
    }
    assert_eq!(
        w.fake.gettoken.load(Ordering::SeqCst),
        1,
        "held back, not asked again"
    );
    assert_eq!(w.fake.user_get.load(Ordering::SeqCst), 0);
}

/// A forward proxy that only tunnels (`CONNECT`), as egress proxies do: it records each
/// request head it was sent, then pipes bytes both ways.
async fn tunnelling_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                seen.lock().unwrap().push(head.clone());
                let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                if !head.starts_with("CONNECT ") {
                    let _ = client
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                        .await;
                    return;
                }
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (url, heads)
}

#[tokio::test]
async fn calls_go_through_the_outbound_proxy_as_a_tunnel_unless_no_proxy_names_the_host() {
    let (proxy, heads) = tunnelling_proxy().await;
    let through = proxy.replace("http://", "http://egress:s3cret@");
    let w = world_through("secret", Proxies::all(&through, "")).await;
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(r.errcode, 0, "{:?}", r.json());
    let seen = heads.lock().unwrap().clone();
    assert!(!seen.is_empty(), "nothing went through the proxy");
    for head in &seen {
        // A tunnel to the API's own address, with the proxy's credentials; the token and the
        // path stay inside the tunnel.
        assert!(head.starts_with("CONNECT 127.0.0.1:"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains(
                "proxy-authorization: basic ZWdyZXNzOnMzY3JldA=="
                    .to_ascii_lowercase()
                    .as_str()
            ),
            "{head}"
        );
        assert!(
            !head.contains("access_token") && !head.contains("/cgi-bin/"),
            "{head}"
        );
    }

    let (proxy, heads) = tunnelling_proxy().await;
    let w = world_through("secret", Proxies::all(&proxy, "127.0.0.1")).await;
    let r = w
        .client
        .call(w.targets.access(), user_get_req())
        .await
        .unwrap();
    assert_eq!(r.errcode, 0, "{:?}", r.json());
    assert!(
        heads.lock().unwrap().is_empty(),
        "NO_PROXY was not honoured"
    );
}

#[path = "../../tests/common/numbering.rs"]
mod numbering;

/// A single-thread runtime on a thread of its own, as each of pingora's workers is.
fn worker() -> tokio::runtime::Handle {
    let (tx, rx) = std::sync::mpsc::channel::<tokio::runtime::Handle>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tx.send(rt.handle().clone()).unwrap();
        rt.block_on(std::future::pending::<()>());
    });
    rx.recv().unwrap()
}

#[test]
fn threads_calling_through_stacks_of_their_own_share_one_cache() {
    // Each thread calls through a stack built over handles of its own; the cache behind them
    // is one: the token one thread fetched, the one it expired and the refusal it was given
    // are the other's too.
    let fake_runtime = tokio::runtime::Runtime::new().unwrap();
    let (one, two) = (worker(), worker());
    let call = |w: &World, on: &tokio::runtime::Handle| {
        let (client, target) = (w.client.clone(), w.targets.access().clone());
        on.block_on(on.spawn(async move { client.call(&target, user_get_req()).await }))
            .unwrap()
    };
    let counts = |w: &World| {
        (
            w.fake.gettoken.load(Ordering::SeqCst),
            w.fake.user_get.load(Ordering::SeqCst),
        )
    };

    let w = fake_runtime.block_on(world("secret"));
    assert_eq!(call(&w, &one).unwrap().errcode, 0);
    assert_eq!(call(&w, &two).unwrap().errcode, 0);
    assert_eq!(
        counts(&w),
        (1, 2),
        "the second thread used the first one's token"
    );
    // WeCom drops T1: the second thread's call expires it and fetches T2 ...
    w.fake.issued.fetch_add(1, Ordering::SeqCst);
    assert_eq!(call(&w, &two).unwrap().errcode, 0);
    assert_eq!(counts(&w), (2, 4));
    // ... which the first thread's next call carries at once, without a refused try.
    assert_eq!(call(&w, &one).unwrap().errcode, 0);
    assert_eq!(counts(&w), (2, 5));

    let w = fake_runtime.block_on(world("wrong"));
    for on in [&one, &two] {
        let r = call(&w, on);
        assert!(
            matches!(r, Err(ApiError::Api { errcode: 40001, .. })),
            "{r:?}"
        );
    }
    assert_eq!(
        w.fake.gettoken.load(Ordering::SeqCst),
        1,
        "the refusal the first thread was given is held back for the second too"
    );
}

#[test]
fn each_thread_reuses_only_the_connections_it_opened() {
    // Two single-thread runtimes on threads of their own, as pingora's workers are. A hyper
    // connection is served by a task on the thread that opened it: a call on the other thread
    // that reused it would wake that thread for each exchange.
    let base: Arc<str> = format!("http://{}", numbering::numbering_server()).into();
    let client = Client::builder(Arc::new(MemoryStore::default()), Duration::from_secs(10))
        .proxies(Proxies::none())
        .build();
    let (one, two) = (worker(), worker());
    let call = |on: &tokio::runtime::Handle| {
        let (client, base) = (client.clone(), base.clone());
        let answer = on
            .block_on(on.spawn(async move {
                client
                    .call_plain(&base, ApiRequest::get("/cgi-bin/ping", &[]))
                    .await
            }))
            .unwrap()
            .unwrap();
        // Back in its pool before the next call, so that a shared pool would hand it out.
        std::thread::sleep(Duration::from_millis(30));
        serde_json::from_slice::<Value>(&answer.body).unwrap()["conn"].clone()
    };
    let first = call(&one);
    let other = call(&two);
    assert_ne!(
        first, other,
        "the second thread took the first one's connection"
    );
    // Both connections are idle now: each thread still takes only its own (one pool for both
    // would hand out the connection returned last). Whether a connection is back in its pool
    // in time decides only whether a shared pool is caught, never whether this passes.
    assert_ne!(
        call(&one),
        other,
        "the first thread took the second one's connection"
    );
    assert_ne!(
        call(&two),
        first,
        "the second thread took the first one's connection"
    );
}

/// A WeCom stand-in on a raw socket, to see the connections the client keeps. The path says
/// how to answer: `/ping` with the connection's number (1, 2, ... in accept order) and the
/// `Host` it was sent; `/close` the same with `Connection: close`, then closes; `/hang-up`
/// the same, then, once told to on the returned sender, closes without saying so, as a server
/// whose keep-alive ran out; `/slow` after 300 ms. Each close is reported on the returned
/// receiver, so a test can wait for it instead of pausing.
fn scripted_server() -> (
    SocketAddr,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<usize>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let (hang_up_tx, hang_up_rx) = std::sync::mpsc::channel::<()>();
    let hang_up = Arc::new(Mutex::new(hang_up_rx));
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { return };
            let (closed_tx, hang_up) = (closed_tx.clone(), hang_up.clone());
            std::thread::spawn(move || {
                let (mut pending, mut buf) = (Vec::<u8>::new(), [0u8; 4096]);
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&pending[..end]).to_string();
                        pending.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        let host = head
                            .lines()
                            .find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: ")))
                            .unwrap_or("")
                            .to_string();
                        if path.starts_with("/slow") {
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        let body = json!({"errcode": 0, "errmsg": "ok", "conn": n + 1,
                                          "host": host, "path": path})
                        .to_string();
                        let close = path.starts_with("/close");
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{}\
                             Content-Length: {}\r\n\r\n{body}",
                            if close { "Connection: close\r\n" } else { "" },
                            body.len()
                        );
                        if conn.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                        if path.starts_with("/hang-up") {
                            let _ = hang_up.lock().unwrap().recv();
                        }
                        if close || path.starts_with("/hang-up") {
                            drop(conn);
                            closed_tx.send(n + 1).unwrap();
                            return;
                        }
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => pending.extend_from_slice(&buf[..k]),
                    }
                }
            });
        }
    });
    (addr, hang_up_tx, closed_rx)
}

async fn plain(client: &Client, base: &Arc<str>, path: &str) -> Result<Value, ApiError> {
    let answer = client.call_plain(base, ApiRequest::get(path, &[])).await?;
    Ok(serde_json::from_slice(&answer.body).unwrap())
}

fn plain_client() -> Client {
    Client::builder(Arc::new(MemoryStore::default()), Duration::from_secs(10))
        .proxies(Proxies::none())
        .build()
}

#[tokio::test(flavor = "current_thread")]
async fn calls_one_after_another_share_a_connection_and_name_their_host() {
    let (addr, _, _) = scripted_server();
    let (client, base): (_, Arc<str>) = (plain_client(), format!("http://{addr}").into());
    for i in 0..3 {
        let a = plain(&client, &base, &format!("/ping?i={i}"))
            .await
            .unwrap();
        assert_eq!(a["conn"], 1, "call {i} opened a connection of its own");
        assert_eq!(a["host"], addr.to_string());
        assert_eq!(
            a["path"],
            format!("/ping?i={i}"),
            "origin form on the request line"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_kept_connection_the_server_closed_is_not_used_again() {
    let (addr, hang_up, closed) = scripted_server();
    let (client, base): (_, Arc<str>) = (plain_client(), format!("http://{addr}").into());
    // Closed while it idles after an answer that did not say so: the client kept it.
    assert_eq!(plain(&client, &base, "/hang-up").await.unwrap()["conn"], 1);
    hang_up.send(()).unwrap();
    assert_eq!(closed.recv_timeout(Duration::from_secs(5)), Ok(1));
    // The runtime's reactor learns of the close when it next turns (a server's runtime turns
    // all the time; this test's thread has only waited on a channel). A close arriving while
    // the request is being written is another matter: no client can tell it from a lost
    // answer, and the call fails as it would have failed before.
    tokio::task::yield_now().await;
    let a = plain(&client, &base, "/ping").await.unwrap();
    assert_eq!(a["conn"], 2);
    // Said so: not kept at all.
    assert_eq!(plain(&client, &base, "/close").await.unwrap()["conn"], 2);
    assert_eq!(closed.recv_timeout(Duration::from_secs(5)), Ok(2));
    assert_eq!(plain(&client, &base, "/ping").await.unwrap()["conn"], 3);
    assert_eq!(plain(&client, &base, "/ping").await.unwrap()["conn"], 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_call_given_up_half_way_leaves_its_late_answer_to_nobody() {
    let (addr, _, _) = scripted_server();
    let (client, base): (_, Arc<str>) = (plain_client(), format!("http://{addr}").into());
    assert_eq!(plain(&client, &base, "/ping").await.unwrap()["conn"], 1);
    let given_up = tokio::time::timeout(Duration::from_millis(50), plain(&client, &base, "/slow"));
    assert!(
        given_up.await.is_err(),
        "the slow call answered within 50 ms"
    );
    // Its connection still owes the slow answer: the next call must not read it as its own.
    let a = plain(&client, &base, "/ping?after").await.unwrap();
    assert_eq!(a["path"], "/ping?after");
    assert_eq!(a["conn"], 2);
}
