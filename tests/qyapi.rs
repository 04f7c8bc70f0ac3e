//! The internal qyapi endpoint against the emulator: SPEC sections 10 and 11.

mod common;

use common::world::{ids, qyapi_apps, App, World};
use serde_json::{json, Value};

const USER_GET: &str = "/crm/cgi-bin/user/get?userid=zhangsan";

/// The qyapi endpoint in front of the emulator, apps `crm`, `mp` and `wrong`.
async fn world() -> World {
    World::new().apps(qyapi_apps()).qyapi().start().await
}

async fn handle(w: &World) -> String {
    let (corp, secret) = (&ids().corp_id, &ids().agent_secret);
    let (status, v) = w
        .get(&format!(
            "/cgi-bin/gettoken?corpid={corp}&corpsecret={secret}"
        ))
        .await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_after_expiry_succeeds_with_exactly_one_gettoken() {
    let w = world().await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["name"], "张三");
    assert_eq!(w.gettokens().await, 1);

    w.expire_tokens().await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (200, &json!(0)), "{v}");
    assert_eq!(
        w.gettokens().await,
        2,
        "exactly one gettoken for the expiry"
    );
    let (_, by) = w.calls_by_errcode("/cgi-bin/user/get").await;
    assert_eq!(
        by,
        json!({"0": 2, "42001": 1}),
        "one failed try, retried once"
    );

    let metrics = w
        .http
        .get(w.gw().admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"wgw_qyapi_calls_total{api="/cgi-bin/user/get",app="crm",errcode="0"} 2"#,
        r#"wgw_token_fetches_total{app="crm",kind="access",result="ok"} 2"#,
        r#"wgw_qyapi_retries_total{app="crm",reason="token_expired"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_arrive_intact_on_the_retry() {
    let w = world().await;
    let h = handle(&w).await;
    w.get(USER_GET).await;

    // JSON: message/send checks agentid and recipients from the body it received.
    w.expire_tokens().await;
    let msg = json!({"touser": "zhangsan|nobody", "msgtype": "text", "agentid": ids().agent_id,
                     "text": {"content": "你好, 世界"}});
    let r = w
        .http
        .post(w.qyapi(&format!("/cgi-bin/message/send?access_token={h}")))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&msg).unwrap())
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(
        v["invaliduser"], "nobody",
        "the body's recipients were read"
    );
    let (_, by) = w.calls_by_errcode("/cgi-bin/message/send").await;
    assert_eq!(by, json!({"0": 1, "42001": 1}));

    // Multipart: media/upload needs the `media` part, boundary and all.
    w.expire_tokens().await;
    let jpeg: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(jpeg)
            .file_name("a.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let r = w
        .http
        .post(w.qyapi(&format!(
            "/cgi-bin/media/upload?access_token={h}&type=image"
        )))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["type"], "image");
    let (_, by) = w.calls_by_errcode("/cgi-bin/media/upload").await;
    assert_eq!(by, json!({"0": 1, "42001": 1}));
    assert_eq!(w.gettokens().await, 3, "one gettoken per expiry");

    // A file of a real photo's size (past axum's 2 MiB default the emulator once kept).
    let photo: Vec<u8> = (0..=255u8).cycle().take(3_000_000).collect();
    let form = reqwest::multipart::Form::new().part(
        "media",
        reqwest::multipart::Part::bytes(photo)
            .file_name("photo.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    );
    let r = w
        .http
        .post(w.qyapi(&format!("/cgi-bin/media/upload?access_token={h}&type=file")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_calls_right_after_expiry_fetch_one_token() {
    let w = world().await;
    w.get(USER_GET).await;
    w.expire_tokens().await;
    let before = w.gettokens().await;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..500 {
        let http = w.http.clone();
        let url = w.qyapi(USER_GET);
        tasks.push(tokio::spawn(async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["errcode"].as_i64()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(0));
    }
    eprintln!("500 calls across an expiry: {:?}", started.elapsed());
    assert_eq!(
        w.gettokens().await - before,
        1,
        "one gettoken for 500 callers"
    );
}

/// An API that refuses every token: the first call refreshes it once and retries once; the
/// calls after it (WeCom handing the same token back) fetch nothing more — one gettoken per
/// call would spend the app's daily quota, and then every API of the app would get 45009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_invalid_token_ends_after_one_refresh() {
    let w = world().await;
    w.get(USER_GET).await;
    let (gettokens, calls) = (w.gettokens().await, w.calls("/cgi-bin/user/get").await);
    w.fault("/cgi-bin/user/get", 40014, 1000).await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (200, &json!(40014)), "{v}");
    assert_eq!(w.gettokens().await - gettokens, 1, "one refresh, no loop");
    assert_eq!(w.calls("/cgi-bin/user/get").await - calls, 2, "one retry");
    for _ in 0..100 {
        let (_, v) = w.get(USER_GET).await;
        assert_eq!(v["errcode"], 40014, "{v}");
    }
    assert_eq!(
        w.gettokens().await - gettokens,
        1,
        "no gettoken per refused call"
    );
    // The app's other APIs are not touched.
    let (_, v) = w.get("/crm/cgi-bin/department/simplelist").await;
    assert_eq!(v["errcode"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_busy_is_retried_and_rate_limits_are_not() {
    let w = world().await;
    w.get(USER_GET).await;
    let gettokens = w.gettokens().await;

    w.fault("/cgi-bin/user/get", -1, 2).await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0, "two -1 answers, then success: {v}");
    let (_, by) = w.calls_by_errcode("/cgi-bin/user/get").await;
    assert_eq!(by, json!({"0": 2, "-1": 2}));

    w.fault("/cgi-bin/user/get", -1, 10).await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], -1, "three retries at most: {v}");
    let (_, by) = w.calls_by_errcode("/cgi-bin/user/get").await;
    assert_eq!(by["-1"], 6, "1 try + 3 retries");
    w.fault("/cgi-bin/user/get", -1, 0).await;

    // A single 45009 would be gone on a retry: seeing it proves there was none.
    w.fault("/cgi-bin/user/get", 45009, 1).await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 45009, "{v}");
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0);
    assert_eq!(
        w.gettokens().await,
        gettokens,
        "none of these touched the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_token_is_fetched_once_across_many_calls() {
    let w = world().await;
    let (app_id, secret) = (&ids().mp_app_id, &ids().mp_secret);
    let (_, v) = w
        .get(&format!(
            "/cgi-bin/token?grant_type=client_credential&appid={app_id}&secret={secret}"
        ))
        .await;
    let h = v["access_token"].as_str().unwrap().to_owned();
    assert!(h.starts_with("wgw1.mp."), "{v}");
    for _ in 0..30 {
        let (_, v) = w
            .get(&format!(
                "/cgi-bin/ticket/getticket?access_token={h}&type=jsapi"
            ))
            .await;
        assert_eq!(v["errcode"], 0, "{v}");
        assert!(v["ticket"].is_string());
    }
    let total = w.calls("/cgi-bin/token").await;
    assert_eq!(
        total, 1,
        "every new cgi-bin/token would start killing the previous one"
    );
    let (_, by) = w.calls_by_errcode("/cgi-bin/ticket/getticket").await;
    assert_eq!(by, json!({"0": 30}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_gettoken_answers_handles_never_tokens() {
    let w = world().await;
    let h = handle(&w).await;
    assert!(h.starts_with("wgw1.crm."), "{h}");
    assert_eq!(w.gettokens().await, 0, "a handle costs no gettoken");

    // Wrong secret, wrong corp, and the MP endpoint with WeCom credentials: 40001.
    let (corp, secret) = (&ids().corp_id, &ids().agent_secret);
    for path in [
        format!("/cgi-bin/gettoken?corpid={corp}&corpsecret=nope"),
        format!("/cgi-bin/gettoken?corpid=wwother&corpsecret={secret}"),
        format!("/cgi-bin/token?grant_type=client_credential&appid={corp}&secret={secret}"),
        format!("/mp/cgi-bin/gettoken?corpid={corp}&corpsecret={secret}"),
    ] {
        let (status, v) = w.get(&path).await;
        assert_eq!((status, &v["errcode"]), (200, &json!(40001)), "{path}: {v}");
    }

    // The handle selects the app; a forged or real-looking token does not.
    let (_, v) = w
        .get(&format!(
            "/cgi-bin/user/get?userid=zhangsan&access_token={h}"
        ))
        .await;
    assert_eq!(v["userid"], "zhangsan");
    let forged = h.replacen("wgw1.crm.", "wgw1.wrong.", 1);
    for token in [forged.as_str(), "realLookingProviderToken", "wgw1.crm.00"] {
        let (_, v) = w
            .get(&format!(
                "/cgi-bin/user/get?userid=zhangsan&access_token={token}"
            ))
            .await;
        assert_eq!(v["errcode"], 40014, "{token}: {v}");
    }
    // A misspelled prefix is named as such, not as "access_token missing".
    let (_, v) = w.get("/crn/cgi-bin/user/get?userid=zhangsan").await;
    assert_eq!(v["errcode"], 40013, "{v}");
    assert!(v["errmsg"].as_str().unwrap().contains("prefix"), "{v}");
    // X-Gateway-App selects too.
    let r = w
        .http
        .get(w.qyapi("/cgi-bin/user/get?userid=zhangsan"))
        .header("X-Gateway-App", "crm")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["userid"], "zhangsan");
    // Named twice alike it is one app; two different apps are not the gateway's to choose.
    for (apps, errcode) in [(["crm", "crm"], 0), (["crm", "other"], 40013)] {
        let r = w
            .http
            .get(w.qyapi("/cgi-bin/user/get?userid=zhangsan"))
            .header("X-Gateway-App", apps[0])
            .header("X-Gateway-App", apps[1])
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], errcode, "{apps:?}: {v}");
    }
    // The contact secret's token is used for externalcontact/*.
    let (_, v) = w
        .get("/crm/cgi-bin/externalcontact/get?external_userid=wmEmuCustomer001")
        .await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["external_contact"]["name"], "王小明");
}

/// The gateway's clock steps forward past the token's life while WeCom's does not (NTP, a
/// resumed VM): the refetch gets the same token back with its time left, which is believed;
/// kept as dead, every call fetched it again until WeCom changed it (45009 followed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_stepped_forward_refetches_the_token_once() {
    let w = world().await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(w.gettokens().await, 1);
    w.gateways[0].advance("7300s").await;
    for _ in 0..10 {
        let (_, v) = w.get(USER_GET).await;
        assert_eq!(v["errcode"], 0, "{v}");
    }
    assert_eq!(w.gettokens().await, 2, "one refetch, not one per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gettoken_reaches_the_caller_and_is_logged_once() {
    let w = world().await;
    for _ in 0..5 {
        let (status, v) = w.get("/wrong/cgi-bin/user/get?userid=zhangsan").await;
        assert_eq!((status, &v["errcode"]), (200, &json!(40001)), "{v}");
    }
    assert_eq!(
        w.gettokens().await,
        1,
        "a refused secret is not asked again at once"
    );
    // Lines are written by a background thread, in order: once the five calls' lines are
    // there, so is every warning logged before them.
    w.gw().wait_log_count("app=wrong", 5);
    let log = w.gw().log();
    assert_eq!(
        log.matches("token fetch failed").count(),
        1,
        "once a minute per key:\n{log}"
    );
    // With what to change, in the console's terms.
    assert!(
        log.contains("the secret is not the app's current one (应用管理 → the app → Secret"),
        "{log}"
    );
    assert!(!log.contains("not-the-secret"), "secret in the log");
}

/// The API bodies held at once are bounded for the process (here, by a debug build's
/// `WGW_TEST_HELD_MAX`, a bound a test can reach): a body past it is WeCom's "busy" (-1, which
/// SDKs try again), 503 with a request id, nothing sent; what a refused or finished call took
/// is given back, so the next calls go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_bodies_held_at_once_are_bounded_for_the_process() {
    let w = World::new()
        .apps(qyapi_apps())
        .qyapi()
        .env("WGW_TEST_HELD_MAX", "8192")
        .start()
        .await;
    let h = handle(&w).await;
    let upload = |len: usize| {
        w.http
            .post(w.qyapi(&format!("/cgi-bin/media/upload?access_token={h}&type=file")))
            .header("content-type", "application/octet-stream")
            .body(vec![b'x'; len])
            .send()
    };
    for _ in 0..3 {
        let r = upload(20_000).await.unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], -1, "{v}");
        assert!(
            v["errmsg"].as_str().unwrap().contains("at their bound"),
            "{v}"
        );
    }
    assert_eq!(
        w.calls("/cgi-bin/media/upload").await,
        0,
        "nothing was sent"
    );
    // Under the bound, as many times as asked: nothing stayed taken.
    for _ in 0..3 {
        let r = upload(4_000).await.unwrap();
        assert_ne!(r.status(), 503);
    }
    assert_eq!(w.calls("/cgi-bin/media/upload").await, 3);
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_allow_list_and_request_ids() {
    let w = world().await;
    let h = handle(&w).await;
    // Refused on the declared length, before a byte of the body is read (a raw request: a
    // client still sending 20 MiB may see the early answer as a reset).
    let raw = format!(
        "POST /cgi-bin/media/upload?access_token={h}&type=file HTTP/1.1\r\nHost: x\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        20 * 1024 * 1024 + 1
    );
    let port = w.gw().qyapi_port.unwrap();
    let resp = tokio::task::spawn_blocking(move || common::raw_request(port, raw.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(common::parse_status(&resp), Some(413));
    let text = String::from_utf8_lossy(&resp).to_ascii_lowercase();
    assert!(text.contains("x-request-id"), "{text}");
    assert_eq!(w.calls("/cgi-bin/media/upload").await, 0);

    let r = w
        .http
        .get(w.qyapi(USER_GET))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");

    // The listener's root says what the endpoint is for.
    let (status, v) = w.get("/").await;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["errmsg"].as_str().unwrap().contains("/{app}/cgi-bin/"),
        "{v}"
    );

    let closed = World::new()
        .apps(qyapi_apps())
        .qyapi()
        .server("qyapi_allow = [\"10.0.0.0/8\"]")
        .start()
        .await;
    let (status, v) = closed.get(USER_GET).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(closed.calls("/cgi-bin/user/get").await, 0);
}

/// A browser on an allowed network cannot be made to call the API for a page (CSRF, DNS
/// rebinding): `Origin` or a `Sec-Fetch-Site` other than `none` is refused, nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_request_for_a_page_is_refused() {
    let w = world().await;
    let send = "/crm/cgi-bin/message/send";
    let message = json!({"touser":"zhangsan","msgtype":"text","agentid":1000002,
                         "text":{"content":"from a page"}});
    let pages: [(&str, &str); 4] = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-origin"),
        ("Sec-Fetch-Site", "same-site"),
    ];
    for (name, value) in pages {
        let r = w
            .http
            .post(w.qyapi(send))
            .header("Host", "evil.example")
            .header(name, value)
            .header("Content-Type", "text/plain")
            .body(message.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errcode"], 48002, "{v}");
        let r = w
            .http
            .get(w.qyapi(USER_GET))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}: {value}");
    }
    assert_eq!(w.calls("/cgi-bin/message/send").await, 0);
    assert_eq!(w.calls("/cgi-bin/user/get").await, 0);

    // What the user typed in the address bar is theirs, and a server-side call says nothing.
    let r = w
        .http
        .get(w.qyapi(USER_GET))
        .header("Sec-Fetch-Site", "none")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, v["errcode"].as_i64()), (200, Some(0)), "{v}");
}

/// What a capturing provider saw of each try.
#[derive(Clone, Debug)]
struct Seen {
    query: String,
    content_type: String,
    custom: Option<String>,
    host: String,
    body: Vec<u8>,
}

/// `app` served as WeCom's API on a free port, and a world whose app `cap` calls it instead of
/// the emulator; the provider's base URL.
async fn with_provider(app: axum::Router) -> (World, String) {
    let provider = common::made_up::serve(app).await;
    let w = World::new()
        .app(App::wecom("cap").api_base(&provider))
        .qyapi()
        .start()
        .await;
    (w, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_calls_are_byte_identical_on_every_try() {
    use axum::extract::{RawQuery, State};
    use axum::http::HeaderMap;
    use axum::routing::{any, get};
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<(u32, Vec<Seen>)>>;
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route(
            "/cgi-bin/gettoken",
            get(|State(log): State<Log>| async move {
                let mut l = log.lock().unwrap();
                l.0 += 1;
                axum::Json(json!({"errcode": 0, "errmsg": "ok", "access_token": format!("T{}", l.0), "expires_in": 7200}))
            }),
        )
        .route(
            "/cgi-bin/media/upload",
            any(
                |State(log): State<Log>, RawQuery(q): RawQuery, h: HeaderMap, body: axum::body::Bytes| async move {
                    let q = q.unwrap_or_default();
                    let hv = |n: &str| h.get(n).map(|v| v.to_str().unwrap().to_owned());
                    log.lock().unwrap().1.push(Seen {
                        query: q.clone(),
                        content_type: hv("content-type").unwrap_or_default(),
                        custom: hv("x-custom"),
                        host: hv("host").unwrap_or_default(),
                        body: body.to_vec(),
                    });
                    // The first token "expired" at the provider.
                    let errcode = if q.starts_with("access_token=T1&") { 42001 } else { 0 };
                    axum::Json(json!({"errcode": errcode, "errmsg": "x", "media_id": "m1"}))
                },
            ),
        )
        .with_state(log.clone());
    // App `cap` calls the capturing provider instead of the emulator.
    let (w, provider) = with_provider(app).await;
    let qyapi = w.gw().qyapi_port.unwrap();

    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend((0..=255u8).cycle().take(70_000));
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{qyapi}/cap/cgi-bin/media/upload?type=file&z=1&access_token=&a=%E4%BD%A0"
        ))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .header("x-custom", "kept")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");

    let (fetches, seen) = log.lock().unwrap().clone();
    assert_eq!(fetches, 2, "one refresh");
    assert_eq!(seen.len(), 2, "one retry");
    for (i, s) in seen.iter().enumerate() {
        let t = i + 1;
        assert_eq!(
            s.query,
            format!("access_token=T{t}&type=file&z=1&a=%E4%BD%A0"),
            "order kept"
        );
        assert_eq!(s.content_type, "multipart/form-data; boundary=XyZ");
        assert_eq!(s.custom.as_deref(), Some("kept"));
        assert_eq!(
            s.host,
            provider.trim_start_matches("http://"),
            "Host is the provider's"
        );
        assert!(s.body == body, "try {t}: body differs");
    }
}

/// PHP's curl asks `Expect: 100-continue` for a body over 1 KiB and holds the body back until
/// a `100 Continue` comes, or for a second: the endpoint sends one as it starts reading, and
/// the body sent after it arrives whole at WeCom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_expecting_100_continue_gets_it_before_it_sends_the_body() {
    let w = world().await;
    let port = w.gw().qyapi_port.unwrap();
    let content = "长".repeat(600);
    let body = json!({"touser": "zhangsan|nobody", "msgtype": "text", "agentid": ids().agent_id,
                      "text": {"content": content}})
    .to_string();
    let calls = tokio::task::spawn_blocking(move || {
        let r = common::raw::after_continue(
            port,
            "POST /crm/cgi-bin/message/send HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json",
            body.as_bytes(),
        );
        assert_eq!(r.status, 200);
        serde_json::from_slice::<Value>(&r.body).unwrap()
    })
    .await
    .unwrap();
    // WeCom read the whole JSON: it names the recipient it does not know.
    assert_eq!(
        (&calls["errcode"], &calls["invaliduser"]),
        (&json!(0), &json!("nobody")),
        "{calls}"
    );
}

/// A body trickled a byte at a time to the qyapi listener is a 408 within its deadline (ten
/// seconds and one more per 64 KiB declared), not a connection held for as long as the client
/// keeps a byte coming every minute; nothing reaches WeCom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickled_to_the_qyapi_listener_is_a_408_within_its_deadline() {
    use std::io::{Read, Write};
    let w = world().await;
    let port = w.gw().qyapi_port.unwrap();
    let before = w.calls("/cgi-bin/message/send").await;
    let (text, took) = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /crm/cgi-bin/message/send HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{"
        )
        .unwrap();
        s.set_nonblocking(true).unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        while started.elapsed() < std::time::Duration::from_secs(20) {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            // The behaviour under test: a sender that trickles its body.
            let _ = s.write_all(b" ");
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "{text} after {took:?}");
    assert!(text.to_ascii_lowercase().contains("x-request-id"), "{text}");
    assert!(
        took >= std::time::Duration::from_secs(10) && took < std::time::Duration::from_secs(14),
        "{took:?}"
    );
    assert_eq!(w.calls("/cgi-bin/message/send").await, before);
}

/// An answer that is no WeCom answer (an HTML error page of WeCom's front with HTTP 502) is
/// passed back to the caller as it came, and counted and logged as `bad_answer`, never as
/// errcode 0: an outage must not read as successes on the dashboard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_from_the_provider_is_counted_as_a_bad_answer() {
    use axum::routing::get;
    let app = common::made_up::wecom().route(
        "/cgi-bin/user/get",
        get(|| async {
            (
                axum::http::StatusCode::BAD_GATEWAY,
                [("content-type", "text/html")],
                "<html>502 Bad Gateway</html>",
            )
        }),
    );
    let (w, _) = with_provider(app).await;
    let qyapi = w.gw().qyapi_port.unwrap();
    let r = reqwest::get(format!(
        "http://127.0.0.1:{qyapi}/cap/cgi-bin/user/get?userid=a"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.text().await.unwrap(), "<html>502 Bad Gateway</html>");
    w.gw()
        .wait_metric(
            r#"wgw_qyapi_calls_total{api="/cgi-bin/user/get",app="cap",errcode="bad_answer"} 1"#,
        )
        .await;
    assert!(!w.gw().metrics().await.contains(r#"app="cap",errcode="0""#));
    assert!(
        w.gw().log().contains("errcode=bad_answer"),
        "{}",
        w.gw().log()
    );
}

/// A redirect from the provider's side (a captive portal, an egress proxy's sign-in) is no
/// answer: neither followed by the gateway nor handed to the caller's HTTP client to follow to
/// a host of its choosing; a 502 with WeCom's shape, counted as a bad answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_the_provider_is_not_passed_back() {
    use axum::routing::get;
    let app = common::made_up::wecom().route(
        "/cgi-bin/user/get",
        get(|| async {
            (
                axum::http::StatusCode::FOUND,
                [("location", "http://127.0.0.1:9/portal")],
                "",
            )
        }),
    );
    let (w, _) = with_provider(app).await;
    let qyapi = w.gw().qyapi_port.unwrap();
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "http://127.0.0.1:{qyapi}/cap/cgi-bin/user/get?userid=a"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errcode"], -1, "{body}");
    assert!(
        body["errmsg"]
            .as_str()
            .unwrap()
            .contains("HTTP 302 (a redirect"),
        "{body}"
    );
    w.gw()
        .wait_metric(
            r#"wgw_qyapi_calls_total{api="/cgi-bin/user/get",app="cap",errcode="bad_answer"} 1"#,
        )
        .await;
}

/// A header the provider's `Connection` names is hop-by-hop, its own business with the
/// gateway: the caller does not get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_the_providers_connection_names_are_not_passed_back() {
    use axum::routing::get;
    let app = common::made_up::wecom().route(
        "/cgi-bin/user/get",
        get(|| async {
            (
                [
                    ("connection", "X-Hop, keep-alive"),
                    ("x-hop", "the provider's"),
                    ("x-end", "the caller's"),
                ],
                axum::Json(json!({"errcode": 0, "errmsg": "ok", "userid": "a"})),
            )
        }),
    );
    let (w, _) = with_provider(app).await;
    let qyapi = w.gw().qyapi_port.unwrap();
    let r = reqwest::get(format!(
        "http://127.0.0.1:{qyapi}/cap/cgi-bin/user/get?userid=a"
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-hop"), None, "{:?}", r.headers());
    assert_eq!(r.headers()["x-end"], "the caller's");
}

/// The same page answered 200 is no success either; and an error answer quoting the URL it
/// was called with reaches the caller without the injected token (the caller never holds one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_answered_200_is_no_success_and_an_error_never_hands_back_the_token() {
    use axum::routing::get;
    let app = common::made_up::wecom()
        .route(
            "/cgi-bin/user/get",
            get(|uri: axum::http::Uri| async move {
                (
                    [("content-type", "text/html")],
                    format!("<html>busy: {uri}</html>"),
                )
            }),
        )
        .route(
            "/cgi-bin/redir",
            get(|uri: axum::http::Uri| async move {
                (
                    axum::http::StatusCode::FOUND,
                    [("location", format!("https://login.example/?from={uri}"))],
                )
            }),
        )
        .route(
            "/cgi-bin/department/list",
            get(|uri: axum::http::Uri| async move {
                axum::Json(json!({
                    "errcode": 40014,
                    "errmsg": format!(
                        "invalid access_token {}, called {uri}, key: userid, hint: [7]",
                        common::made_up::TOKEN
                    ),
                }))
            }),
        );
    let (w, _) = with_provider(app).await;
    let qyapi = w.gw().qyapi_port.unwrap();
    let r = reqwest::get(format!(
        "http://127.0.0.1:{qyapi}/cap/cgi-bin/user/get?userid=a"
    ))
    .await
    .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.starts_with("<html>busy: /cgi-bin/user/get?"), "{page}");
    assert!(!page.contains(common::made_up::TOKEN), "{page}");
    w.gw()
        .wait_metric(
            r#"wgw_qyapi_calls_total{api="/cgi-bin/user/get",app="cap",errcode="bad_answer"} 1"#,
        )
        .await;
    let r = reqwest::get(format!(
        "http://127.0.0.1:{qyapi}/cap/cgi-bin/department/list"
    ))
    .await
    .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("40014"), "{text}");
    assert!(text.contains("access_token=***"), "{text}");
    assert!(!text.contains(common::made_up::TOKEN), "{text}");
    // The rest of WeCom's text as it wrote it: the hint its support asks for.
    assert!(text.contains("key: userid, hint: [7]"), "{text}");
    // Nor in a header naming the URL called.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{qyapi}/cap/cgi-bin/redir"))
        .send()
        .await
        .unwrap();
    // (A redirect is no answer at all: a 502, its Location not passed on.)
    assert_eq!(r.status(), 502);
    assert!(r.headers().get("location").is_none());
    let text = r.text().await.unwrap();
    assert!(!text.contains(common::made_up::TOKEN), "{text}");
}

/// A graceful stop waits for qyapi calls as for the public listener's requests: a CRM back
/// end's call under way at a deploy finishes (the process left 50 ms after SIGTERM, cutting it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_qyapi_call_in_flight_finish() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "delay_ms": 1500, "count": 1}),
    )
    .await;
    let url = format!("http://127.0.0.1:{}{USER_GET}", w.gw().qyapi_port.unwrap());
    let call = tokio::spawn(common::client().get(url).send());
    // The emulator counts a call once it has answered: the stop comes while it waits.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(w.calls("/cgi-bin/user/get").await, 0, "still under way");
    w.gateways[0].signal(15);
    w.gw().wait_log("SIGTERM");
    let r = call.await.unwrap().expect("the call in flight completes");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errcode"], 0, "{v}");
}

/// -1 ("system busy") on gettoken is tried again as on any call (200/400/800 ms): the call
/// succeeds (the fetch failed at once, and the caller got -1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_gettoken_is_tried_again() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/gettoken", "errcode": -1, "count": 2}),
    )
    .await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (200, &json!(0)), "{v}");
    assert_eq!(w.gettokens().await, 3, "two busy answers, then the token");
}

/// Retries stop once a call has taken 5 s: a WeCom answering each try slowly with -1 is asked
/// three times, not four (each try bounded alone, a sign-in waited 35 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_once_the_call_has_taken_its_budget() {
    let w = world().await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0, "{v}");
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "errcode": -1, "delay_ms": 1500, "count": 5}),
    )
    .await;
    let before = w.calls("/cgi-bin/user/get").await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (200, &json!(-1)), "{v}");
    // Tries end at 1.5 s, 3.2 s (after 200 ms) and 5.1 s (after 400 ms); the next would start
    // past the budget.
    assert_eq!(w.calls("/cgi-bin/user/get").await - before, 3);
}

/// A call WeCom gave no answer to in time (a `message/send` it may have carried out) is
/// answered with the gateway's own errcode, -2 — not WeCom's -1 ("system busy"),
/// which SDKs retry by themselves (WxJava up to five times): the message would go out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_an_answer_in_time_is_not_one_an_sdk_retries() {
    let w = world().await;
    let (_, v) = w.get(USER_GET).await;
    assert_eq!(v["errcode"], 0, "{v}");
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/user/get", "late_ms": 6000}),
    )
    .await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (504, &json!(-2)), "{v}");
    let msg = v["errmsg"].as_str().unwrap();
    assert!(msg.contains("may have been carried out"), "{msg}");
}

/// A call whose token could not be had (gettoken unanswered in time) was never sent: WeCom's
/// "system busy" (-1, 503), which an SDK may send again, never the -2 of a call that may have
/// been carried out (a `message/send` dropped as "maybe sent").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_token_says_it_was_not_sent() {
    let w = world().await;
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/gettoken", "late_ms": 6000}),
    )
    .await;
    let (status, v) = w.get(USER_GET).await;
    assert_eq!((status, &v["errcode"]), (503, &json!(-1)), "{v}");
    let msg = v["errmsg"].as_str().unwrap();
    assert!(msg.contains("not sent"), "{msg}");
    assert!(!msg.contains("may have been carried out"), "{msg}");
    assert_eq!(w.calls("/cgi-bin/user/get").await, 0);
}

/// An upload refused before its body was read (a handle gone stale, an unknown prefix): the
/// rest of the body is read off, so the caller gets the errcode that tells it what to do
/// instead of a broken pipe (the connection closed on data still arriving was reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_gets_its_answer_not_a_reset() {
    let w = world().await;
    let port = w.gw().qyapi_port.unwrap();
    for path in [
        "/cgi-bin/media/upload?type=file&access_token=wgw1.crm.00",
        "/nope/cgi-bin/media/upload?type=file",
    ] {
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            let body = vec![b'x'; 8 * 1024 * 1024];
            write!(
                s,
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .unwrap();
            s.write_all(&body).expect("the whole upload is taken");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(answer.contains("errcode"), "{path}: {answer}");
    }
}

/// What is not read off: a body refused for its size (reading it is what the 413 saves), the
/// body of a client that waits for `100 Continue` (in any of its `Expect` fields) before
/// sending it, and one in a coding that cannot be read. Each is answered with nothing of the body sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_never_waits_for_a_body_it_need_not_read() {
    let w = world().await;
    let port = w.gw().qyapi_port.unwrap();
    for head in [
        "POST /cgi-bin/media/upload?type=file HTTP/1.1\r\nHost: x\r\nX-Gateway-App: crm\r\nContent-Length: 31457280\r\n\r\n",
        "POST /nope/cgi-bin/media/upload HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n",
        // A coding that cannot be read (a 501): nothing to read it off with.
        "POST /crm/cgi-bin/message/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ] {
        let answer = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
                .unwrap();
            s.write_all(head.as_bytes()).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{head}: no answer without the body");
        assert!(!answer.starts_with("HTTP/1.1 100"), "{head}: {answer}");
    }
}
