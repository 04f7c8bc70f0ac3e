//! The README's first command, end to end in a real browser: `wecom-gateway demo` (emulator,
//! demo CRM and gateway in one process, the repository's gateway.toml on free ports), opened by
//! headless Chromium as the WeCom client and as a desktop browser. Screenshots land in
//! `target/test-artifacts/`.

mod common;

use std::time::{Duration, Instant};

use common::chrome::Chrome;
use common::{client, Gateway};
use serde_json::{json, Value};

const WXWORK_UA: &str = "Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36 MicroMessenger/8.0.40 wxwork/4.1.0 NetType/WIFI";
const DESKTOP_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

struct Demo {
    gw: Gateway,
    emulator: String,
    crm: String,
}

/// The repository's gateway.toml with the gateway's listeners on port 0 (the binary reports
/// what it bound) and the emulator and demo CRM on free ports: the apps and the upstream name
/// those addresses, so they are fixed before the process starts.
fn start_demo() -> Demo {
    let (gw, emu, crm) = Gateway::start_demo("gateway.toml");
    Demo {
        gw,
        emulator: format!("http://127.0.0.1:{emu}"),
        crm: format!("http://127.0.0.1:{crm}"),
    }
}

impl Demo {
    async fn control(&self, path: &str, body: Value) {
        let resp = client()
            .post(format!("{}{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
}

/// Waits until the browser is on `url` and the demo page has finished `WeComGateway.ready()`,
/// then reads what the page shows.
async fn page_state(chrome: &Chrome, url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = chrome.current_url().await;
        if now == url {
            let v = chrome
                .run(
                    "var b = document.body; var t = function (id) { var e = document.getElementById(id); return e ? e.textContent : null; };\n\
                     done({ready: b ? b.getAttribute('data-customer') : null, member: t('member'), customer: t('customer'),\n\
                     unionid: t('unionid'), entry: t('entry'), hash: t('hash'), assertion: t('assertion')});",
                )
                .await;
            if v["ready"].is_string() {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "page never finished at {url}; now at {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidebar_journey_in_the_wecom_client() {
    let demo = start_demo();
    let chrome = Chrome::start(WXWORK_UA).await;

    // Silent in-app login; the hash route survives it. The demo starts in a customer chat:
    // the first page a new user sees shows the verified customer.
    let url = demo.gw.url("/sidebar/#/customer/42");
    chrome.open(&url).await;
    let v = page_state(&chrome, &url).await;
    chrome.screenshot("demo-sidebar-customer-001").await;
    assert_eq!(v["ready"], "ready", "{v}");
    assert_eq!(v["member"], "zhangsan", "{v}");
    assert!(
        v["customer"].as_str().unwrap().contains("wmEmuCustomer001"),
        "{v}"
    );
    assert_eq!(v["unionid"], "oEmuUnion001", "{v}");
    assert_eq!(v["entry"], "single_chat_tools", "{v}");
    assert_eq!(v["hash"], "#/customer/42", "{v}");
    assert!(
        v["assertion"].as_str().unwrap().starts_with("valid"),
        "the CRM checked the assertion: {v}"
    );

    // The salesperson opens another customer's chat: a reload shows that customer.
    demo.control(
        "/_emulator/current-contact",
        json!({"external_userid": "wmEmuCustomer002", "entry": "single_chat_tools"}),
    )
    .await;
    chrome.cmd("/refresh", json!({})).await;
    let v = page_state(&chrome, &url).await;
    chrome.screenshot("demo-sidebar-customer-002").await;
    assert!(
        v["customer"].as_str().unwrap().contains("wmEmuCustomer002"),
        "{v}"
    );
    assert_eq!(v["unionid"], "oEmuUnion002", "{v}");
    assert_eq!(v["member"], "zhangsan", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_browser_gets_the_qr_page_and_clicking_a_member_logs_in() {
    let demo = start_demo();
    let chrome = Chrome::start(DESKTOP_UA).await;
    let url = demo.gw.url("/sidebar/#/customer/7");
    chrome.open(&url).await;

    // The interstitial sends the browser to the gateway's login, which sends it to the QR page.
    let qr = format!("{}/wwlogin/sso/login?", demo.emulator);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !chrome.current_url().await.starts_with(&qr) {
        assert!(
            Instant::now() < deadline,
            "no QR page; at {}",
            chrome.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    chrome.screenshot("demo-qr-login").await;
    let clicked = chrome
        .run("var a = Array.prototype.find.call(document.querySelectorAll('a.member'), function (e) { return e.href.indexOf('zhangsan') >= 0; });\n\
              if (a) { a.click(); } done(!!a);")
        .await;
    assert_eq!(clicked, true, "the QR page lists zhangsan");

    let v = page_state(&chrome, &url).await;
    chrome.screenshot("demo-desktop-after-qr").await;
    assert_eq!(v["member"], "zhangsan", "{v}");
    assert_eq!(v["hash"], "#/customer/7", "{v}");
    assert!(v["assertion"].as_str().unwrap().starts_with("valid"), "{v}");
}

/// The demo's `/reports/` admits only members tagged 经理: zhangsan gets in, lisi (switched to
/// on the device) gets the 403 page naming him, and the CRM never sees his request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_reports_are_for_managers_only() {
    use common::browser::{self, Browser, HTML};
    let demo = start_demo();
    let mut zs = Browser::new(browser::WXWORK_UA);
    browser::login(&mut zs, &demo.gw, &demo.emulator, "crm", "/reports/").await;
    let r = zs
        .request(reqwest::Method::GET, &demo.gw.url("/reports/"), HTML)
        .await;
    assert_eq!(r.status(), 200);
    demo.control("/_emulator/current-user", json!({"userid": "lisi"}))
        .await;
    let mut ls = Browser::new(browser::WXWORK_UA);
    browser::login(&mut ls, &demo.gw, &demo.emulator, "crm", "/reports/").await;
    let r = ls
        .request(reqwest::Method::GET, &demo.gw.url("/reports/"), HTML)
        .await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("lisi") && page.contains("administrator"),
        "{page}"
    );
    // lisi still opens the sidebar, which has no rule.
    let r = ls.get_json(&demo.gw.url("/sidebar/"), &[]).await;
    assert_eq!(r.status(), 200);
}

/// The banner's "send an event": the emulator sends WeCom's event to the gateway, which verifies
/// and queues it and forwards it, signed, to the demo CRM, whose page lists it.
#[tokio::test]
async fn the_demo_crm_lists_the_event_the_banner_curl_sends() {
    let demo = tokio::task::spawn_blocking(start_demo).await.unwrap();
    demo.control(
        "/_emulator/members/move",
        json!({"userid": "lisi", "department": [3]}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let event = loop {
        let v: Value = client()
            .get(format!("{}/wecom/events", demo.crm))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(e) = v["events"].as_array().and_then(|a| a.first()).cloned() {
            break e;
        }
        assert!(Instant::now() < deadline, "no event reached the demo CRM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["signature"], "valid", "{event}");
    assert_eq!(event["corp_id"], "wwemu0000000000001");
    let body = event["body"].as_str().unwrap();
    assert!(
        body.contains("update_user") && body.contains("lisi"),
        "{body}"
    );
    let page = client()
        .get(demo.gw.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("WeCom events received"), "{page}");
    assert!(page.contains(event["event_id"].as_str().unwrap()), "{page}");
}
