//! Item 6: the `Cookie` header is read as bytes. One non-ASCII byte anywhere in it must neither
//! hide the gateway's own cookies from the gateway nor let them through to the CRM.

use crate::common::browser::location;
use crate::common::{parse_status, raw_request};
use crate::world::wecom_and_wechat;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ascii_byte_in_the_cookie_header_neither_breaks_login_nor_leaks_the_session() {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member_browser();
    // The CRM's own cookie, in UTF-8 as browsers send it.
    b.set_cookie(&w.gw().url("/"), "crm_lang", "中文");
    let cb = w
        .to_callback(&mut b, &w.login_url("crm", "/sidebar/#/c/1"))
        .await;
    let resp = b.get(&cb).await;
    assert_eq!(resp.status(), 302, "the gateway reads its login cookie");
    assert_eq!(location(&resp, &cb), w.gw().url("/sidebar/#/c/1"));

    let echo = w
        .upstream_sees(&mut b, "/sidebar/", &[])
        .await
        .expect("the session opens");
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    let sent = echo.header("cookie").unwrap_or_default();
    assert!(
        sent.contains("crm_lang=中文"),
        "the CRM's cookie kept: {sent}"
    );
    assert!(!sent.contains("wgw_"), "ours stay home: {sent}");

    // The raw bytes, one Latin-1 byte in another header line and in the same line as ours.
    let session = b.cookie(&w.gw().url("/"), "wgw_session").unwrap();
    let port = w.gw().port;
    for cookie in [
        format!("a=caf\u{e9}; wgw_session={session}; wgw_login_x=1; b=2"),
        format!("wgw_session={session}\r\nCookie: a=caf\u{e9}; wgw_login_y=1"),
    ] {
        let mut raw =
            b"GET /sidebar/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nCookie: "
                .to_vec();
        // \u{e9} as the single byte 0xE9, as an old client sends Latin-1.
        raw.extend(cookie.chars().map(|c| c as u32 as u8));
        raw.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
        let resp = tokio::task::spawn_blocking(move || raw_request(port, &raw).unwrap())
            .await
            .unwrap();
        assert_eq!(
            parse_status(&resp),
            Some(200),
            "{}",
            String::from_utf8_lossy(&resp)
        );
        let text = String::from_utf8_lossy(&resp);
        assert!(text.contains("\"x-wecom-userid\":\"zhangsan\""), "{text}");
        assert!(!text.contains("wgw_"), "ours never reach the CRM: {text}");
        assert!(text.contains("b=2") || text.contains("a=caf"), "{text}");
    }
}
