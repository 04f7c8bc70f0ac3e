//! Item 5: the qyapi endpoint takes paths literally (SPEC section 10). A path that a server
//! further on would resolve differently (dot segments, also encoded; empty segments; an
//! encoded `/`) is refused before anything is sent, so it can neither reach `gettoken` with a
//! made-up secret — whose 40001 used to expire and refetch the real token, burning the quota —
//! nor carry the real token outside `/cgi-bin/`. A token error on a call whose token the
//! gateway did not inject never expires anything.

use serde_json::{json, Value};

use crate::common::{client, parse_status, raw_request};
use crate::world::{wecom_and_wechat, Builder, World};

fn qyapi_world() -> Builder {
    wecom_and_wechat().qyapi()
}

/// A raw request on the qyapi port: no client library gets to resolve the path first.
async fn raw(w: &World, method: &str, target: &str) -> (u16, Value) {
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let port = w.gw().qyapi_port.unwrap();
    let resp = tokio::task::spawn_blocking(move || raw_request(port, req.as_bytes()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&resp).into_owned();
    let body = text
        .find('{')
        .and_then(|i| serde_json::from_str(text[i..].trim_end()).ok())
        .unwrap_or(Value::Null);
    (parse_status(&resp).unwrap_or(0), body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qyapi_path_a_server_would_resolve_differently_sends_nothing_and_burns_no_token() {
    let w = qyapi_world().start().await;
    let ok = client()
        .get(w.qyapi("/crm/cgi-bin/user/get?userid=zhangsan"))
        .send()
        .await
        .unwrap();
    let ok: Value = ok.json().await.unwrap();
    assert_eq!(ok["errcode"], 0, "{ok}");
    assert_eq!(w.calls("/cgi-bin/gettoken").await, 1);

    let smuggled = [
        "/crm/cgi-bin/./gettoken?corpid=wwemu0000000000001&corpsecret=x",
        "/crm/cgi-bin/%2e/gettoken?corpid=wwemu0000000000001&corpsecret=x",
        "/crm/cgi-bin/user/../gettoken?corpid=wwemu0000000000001&corpsecret=x",
        "/crm/cgi-bin/../sns/oauth2/access_token?appid=x",
        "/crm/cgi-bin/%2E%2E/sns/userinfo",
        "/crm/cgi-bin/.%2e/sns/userinfo",
        "/crm/cgi-bin//user/get?userid=zhangsan",
        "/crm//cgi-bin/user/get?userid=zhangsan",
        "/crm/cgi-bin/user%2Fget?userid=zhangsan",
        "/crm/cgi-bin/user%2fget?userid=zhangsan",
        "/crm/cgi-bin\\..\\sns/userinfo",
        "/crm/cgi-bin/user/get/?userid=zhangsan",
        "/./crm/cgi-bin/user/get?userid=zhangsan",
    ];
    for _ in 0..3 {
        for target in smuggled {
            let (status, body) = raw(&w, "GET", target).await;
            assert_eq!(status, 400, "{target}: {body}");
            assert_ne!(body["errcode"], 0, "{target}: {body}");
        }
    }
    // gettoken and token are the gateway's to answer, whatever the method: never forwarded.
    for _ in 0..5 {
        let (status, body) = raw(
            &w,
            "POST",
            "/crm/cgi-bin/gettoken?corpid=wwemu0000000000001&corpsecret=x",
        )
        .await;
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (200, Some(40001)),
            "{body}"
        );
    }
    // A call that carries a token of its own (a service provider's): the gateway injects
    // nothing, and WeCom's token error is about that token, not ours.
    w.control(
        "/_emulator/faults",
        json!({"api": "/cgi-bin/message/send", "errcode": 40001, "count": 3}),
    )
    .await;
    for _ in 0..3 {
        let (status, body) = raw(
            &w,
            "POST",
            "/crm/cgi-bin/message/send?provider_access_token=theirs",
        )
        .await;
        assert_eq!(
            (status, body["errcode"].as_i64()),
            (200, Some(40001)),
            "{body}"
        );
    }

    assert_eq!(w.calls("/cgi-bin/gettoken").await, 1, "no token refetched");
    assert_eq!(w.calls("/sns/oauth2/access_token").await, 0);
    assert_eq!(w.calls("/sns/userinfo").await, 0);
    assert_eq!(w.calls("/cgi-bin/user/get").await, 1, "nothing sent");
    assert_eq!(w.calls("/cgi-bin/message/send").await, 3, "one try each");
    let ok: Value = client()
        .get(w.qyapi("/crm/cgi-bin/user/get?userid=zhangsan"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["errcode"], 0, "the real token still works: {ok}");
    assert_eq!(w.calls("/cgi-bin/gettoken").await, 1);
}
