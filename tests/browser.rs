//! sdk.js for real: headless Chromium, driven through chromedriver's WebDriver HTTP API, opens
//! the demo CRM through the gateway inside an emulated WeCom client. The silent in-app login,
//! `/_gateway/sdk.js`, the emulator's `jweixin.js` and `WeComGateway.ready()` all run as they
//! would in the sidebar. Screenshots land in `target/test-artifacts/`.

mod common;

use std::time::{Duration, Instant};

use common::chrome::Chrome;
use common::sidebar;
use common::world::{agent_id, customer, customer_unionid, World};
use serde_json::{json, Value};

/// A current WeCom client: `agentConfig` alone is enough (3.0.24 and later).
const WXWORK_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 MicroMessenger/7.0.1 wxwork/4.1.0 MailPlugin_Electron WeMail embeddedwb";

/// `WeComGateway.ready()` on the current page, once the page has loaded sdk.js: `{ok: result}`
/// or `{err: {code, message}}`.
const READY: &str = r#"
(function wait(n) {
  if (window.WeComGateway) {
    window.WeComGateway.ready().then(
      function (r) { done({ ok: r }); },
      function (e) { done({ err: { code: e && e.code, message: e && e.message } }); });
  } else if (n > 400) {
    done({ err: { code: "no_sdk", message: document.documentElement.outerHTML.slice(0, 2000) } });
  } else {
    setTimeout(function () { wait(n + 1); }, 25);
  }
})(0);
"#;

/// The page after the silent in-app login: the demo CRM's sidebar. Each `visit` is a new page
/// load (the same URL with only a fragment would not reload it).
async fn open_sidebar(chrome: &Chrome, w: &World, visit: u32) {
    let page = w.gw().url(&format!("/sidebar/?visit={visit}#/customer"));
    chrome.open(&page).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = chrome.current_url().await;
        if now.starts_with(&w.gw().url("/sidebar/")) {
            break;
        }
        assert!(Instant::now() < deadline, "stuck at {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        chrome.current_url().await,
        page,
        "the login kept the hash route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_resolves_with_the_current_customer_and_names_a_broken_signature() {
    let crm = emulator::crm::start_crm(
        "127.0.0.1:0".parse().unwrap(),
        Some(common::world::ASSERTION_SECRET.to_owned()),
    )
    .await
    .unwrap();
    let w = sidebar::world()
        .scenario(emulator::Scenario::default())
        .crm_at(&crm.base_url())
        .start()
        .await;
    w.chat_with(customer()).await;
    let chrome = Chrome::start(WXWORK_UA).await;

    open_sidebar(&chrome, &w, 1).await;
    let r = chrome.run(READY).await;
    chrome.screenshot("sdk-ready").await;
    assert_eq!(
        r["ok"],
        json!({"userId": "zhangsan", "externalUserId": customer(), "unionId": customer_unionid(),
               "name": "王小明", "entry": "single_chat_tools"}),
        "{r}"
    );
    // The demo page shows what its own ready() found.
    let shown = chrome
        .run("(function w(n){var t=document.getElementById('customer').textContent; if (t.indexOf('customer ')===0||n>200) done(t); else setTimeout(function(){w(n+1)},25);})(0);")
        .await;
    assert!(shown.as_str().unwrap().contains(customer()), "{shown}");

    // WeComGateway.fetch carries the page's ticket; the CRM gets the verified customer.
    let seen = chrome
        .run("WeComGateway.fetch('/sidebar/api', {headers: {Accept: 'application/json'}}).then(function (r) { return r.json(); }).then(done, function (e) { done(String(e)); });")
        .await;
    assert_eq!(
        seen["headers"]["x-wecom-external-userid"],
        customer(),
        "{seen}"
    );
    assert_eq!(
        seen["headers"]["x-wecom-external-unionid"],
        customer_unionid()
    );
    assert!(seen["headers"].get("wgw-contact").is_none());
    // The ticket goes to this site only: a call to another origin (an analytics host) is made
    // without it.
    let sent = chrome
        .run(
            r#"var real = window.fetch, got = {};
window.fetch = function (input, init) {
  var h = new Headers(init && init.headers);
  got[String(input)] = h.get("WGW-Contact");
  return Promise.resolve(new Response("{}"));
};
WeComGateway.fetch("http://analytics.example/x", {}).then(function () {
  return WeComGateway.fetch("/sidebar/api", {});
}).then(function () { window.fetch = real; done(got); });"#,
        )
        .await;
    assert_eq!(sent["http://analytics.example/x"], Value::Null, "{sent}");
    assert!(sent["/sidebar/api"].as_str().is_some(), "{sent}");
    // Nor after a redirect (a download sent on to a storage bucket, which a followed fetch
    // would send the ticket to): a ticketed GET is sent not to be followed and, redirected,
    // asked again without the ticket, saying "none" (without the header, the session's
    // current customer, which another tab may have changed, would be the request's). A
    // relative URL under a `<base>` of another origin is that origin's.
    let calls = chrome
        .run(
            r#"var real = window.fetch, calls = [];
window.fetch = function (input, init) {
  var h = new Headers(init && init.headers);
  calls.push([String(input), (init && init.redirect) || "follow", h.get("WGW-Contact")]);
  if (calls.length === 1) return Promise.resolve({ type: "opaqueredirect", status: 0 });
  return Promise.resolve(new Response("{}"));
};
WeComGateway.fetch("/files/report.pdf").then(function () {
  var base = document.createElement("base");
  base.href = "http://cdn.example/assets/";
  document.head.appendChild(base);
  return WeComGateway.fetch("api/customer").then(function () { base.remove(); });
}).then(function () { window.fetch = real; done(calls); });"#,
        )
        .await;
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0][0], "/files/report.pdf");
    assert_eq!(calls[0][1], "manual");
    assert!(calls[0][2].as_str().is_some(), "{calls:?}");
    assert_eq!(calls[1], json!(["/files/report.pdf", "follow", "none"]));
    assert_eq!(calls[2], json!(["api/customer", "follow", null]));
    assert_eq!(seen["assertion"]["claims"]["external_userid"], customer());

    // WeCom drops the agent ticket early: agentConfig fails once, sdk.js reports it, the
    // gateway replaces the ticket and the retry passes.
    w.control(
        "/_emulator/tickets",
        json!({"kind": "agent", "agentid": agent_id(), "ticket": "replaced-by-wecom-1"}),
    )
    .await;
    open_sidebar(&chrome, &w, 2).await;
    let r = chrome.run(READY).await;
    assert_eq!(r["ok"]["externalUserId"], customer(), "{r}");

    // Dropped again within the minute: the gateway does not fetch again, and the page is
    // told which step failed and what WeCom said.
    w.control(
        "/_emulator/tickets",
        json!({"kind": "agent", "agentid": agent_id(), "ticket": "replaced-by-wecom-2"}),
    )
    .await;
    open_sidebar(&chrome, &w, 3).await;
    let r = chrome.run(READY).await;
    chrome.screenshot("sdk-broken-signature").await;
    assert_eq!(r["err"]["code"], "agentConfig", "{r}");
    assert_eq!(r["err"]["message"], "agentConfig:invalid signature", "{r}");

    drop(chrome);
    crm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_client_runs_config_first_and_a_bad_corp_ticket_names_config() {
    let crm = emulator::crm::start_crm("127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let w = sidebar::world()
        .scenario(emulator::Scenario::default())
        .crm_at(&crm.base_url())
        .start()
        .await;
    // No customer chat: ready() resolves without one, after getContext.
    let old_ua = WXWORK_UA.replace("wxwork/4.1.0", "wxwork/3.0.20");
    let chrome = Chrome::start(&old_ua).await;
    open_sidebar(&chrome, &w, 4).await;
    let r = chrome.run(READY).await;
    assert_eq!(
        r["ok"],
        json!({"userId": "zhangsan", "externalUserId": null, "unionId": null, "name": null,
               "entry": "normal"}),
        "{r}"
    );

    // Replaced twice: the second refusal within the minute is the answer.
    for (visit, t) in [(5, "corp-replaced-1"), (6, "corp-replaced-2")] {
        w.control("/_emulator/tickets", json!({"kind": "corp", "ticket": t}))
            .await;
        open_sidebar(&chrome, &w, visit).await;
        let r = chrome.run(READY).await;
        if t.ends_with('2') {
            chrome.screenshot("sdk-old-client-config-refused").await;
            assert_eq!(r["err"]["code"], "config", "{r}");
            assert_eq!(r["err"]["message"], "config:invalid signature", "{r}");
        } else {
            assert_eq!(r["ok"]["userId"], "zhangsan", "{r}");
        }
    }
    drop(chrome);
    crm.shutdown().await;
}

/// zhangsan and lisi, and a customer both of them follow.
fn two_members_one_customer() -> emulator::Scenario {
    emulator::Scenario::from_toml(
        r#"
[corp]
corp_id = "wwemu0000000000001"
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

[[external_contacts]]
external_userid = "wmShared"
name = "赵老板"
type = 1
unionid = "oSharedUnion"
follow_user = ["zhangsan", "lisi"]
"#,
    )
    .unwrap()
}

/// Records the path of every `window.fetch` the page (and sdk.js) makes from now on.
const RECORD_FETCHES: &str = r#"
window.__calls = [];
if (!window.__realFetch) window.__realFetch = window.fetch;
window.fetch = function (input, init) {
  var u = new URL(input && input.url || String(input), location.href);
  window.__calls.push(u.pathname);
  return window.__realFetch.apply(this, arguments);
};
done(true);
"#;

/// `WeComGateway.fetch(path)` as a script's call: `{status, body, calls}`.
fn gateway_fetch(path: &str) -> String {
    format!(
        r#"WeComGateway.fetch("{path}", {{headers: {{Accept: "application/json"}}}})
  .then(function (r) {{ return r.json().then(function (b) {{ return {{status: r.status, body: b}}; }}); }})
  .then(function (v) {{ v.calls = window.__calls.slice(); window.__calls = []; done(v); }},
        function (e) {{ done({{err: String(e)}}); }});"#
    )
}

/// The demo CRM, a world of two members who share a customer, and the sidebar opened in a
/// chat with that customer, `ready()` resolved.
async fn sidebar_in_a_chat_with_the_shared_customer() -> (emulator::crm::Crm, World, Chrome) {
    let crm = emulator::crm::start_crm(
        "127.0.0.1:0".parse().unwrap(),
        Some(common::world::ASSERTION_SECRET.to_owned()),
    )
    .await
    .unwrap();
    let w = sidebar::world()
        .scenario(two_members_one_customer())
        .crm_at(&crm.base_url())
        .start()
        .await;
    w.chat_with("wmShared").await;
    let chrome = Chrome::start(WXWORK_UA).await;
    open_sidebar(&chrome, &w, 1).await;
    let r = chrome.run(READY).await;
    assert_eq!(r["ok"]["externalUserId"], "wmShared", "{r}");
    (crm, w, chrome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contact_ticket_is_renewed_before_it_expires_and_once_after_a_refusal() {
    let (crm, w, chrome) = sidebar_in_a_chat_with_the_shared_customer().await;
    chrome.run(RECORD_FETCHES).await;

    // Nearly two hours later (the page's clock moved on): fetch renews the ticket first.
    chrome
        .run("var real = Date.now; window.__realNow = real; Date.now = function () { return real() + 7000 * 1000; }; done(true);")
        .await;
    let v = chrome.run(&gateway_fetch("/customer/1")).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(
        v["calls"],
        json!(["/_gateway/external-contact", "/customer/1"]),
        "{v}"
    );
    assert_eq!(v["body"]["headers"]["x-wecom-external-userid"], "wmShared");
    chrome.run("Date.now = window.__realNow; done(true);").await;
    // A fresh ticket is not renewed again.
    let v = chrome.run(&gateway_fetch("/customer/2")).await;
    assert_eq!(v["calls"], json!(["/customer/2"]), "{v}");

    // Another member signs in on this device (a frame runs the silent login): the page's
    // ticket, sealed for zhangsan, is refused; sdk.js verifies the customer again as lisi and
    // retries once.
    w.control("/_emulator/current-user", json!({"userid": "lisi"}))
        .await;
    let who = chrome
        .run(
            r#"var f = document.createElement("iframe");
f.src = "/_gateway/login?app=crm&return_to=%2F_gateway%2Fwhoami";
document.body.appendChild(f);
(function poll(n) {
  window.__realFetch("/_gateway/whoami", {headers: {Accept: "application/json"}})
    .then(function (r) { return r.json(); })
    .then(function (me) {
      if (me.userid === "lisi" || n > 200) done(me.userid);
      else setTimeout(function () { poll(n + 1); }, 50);
    });
})(0);"#,
        )
        .await;
    assert_eq!(who, "lisi");
    let v = chrome.run(&gateway_fetch("/customer/3")).await;
    assert_eq!(
        v["calls"],
        json!(["/customer/3", "/_gateway/external-contact", "/customer/3"]),
        "{v}"
    );
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["headers"]["x-wecom-userid"], "lisi");
    assert_eq!(v["body"]["headers"]["x-wecom-external-userid"], "wmShared");
    chrome.screenshot("sdk-ticket-renewed").await;
    drop(chrome);
    crm.shutdown().await;
}

/// WeCom may keep a sidebar page open while the member moves between chats: each ready() asks
/// again where the page is, and out of the chat the page has no customer any more (the first
/// answer was kept for the life of the page before, and fetch went on sending its ticket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_again_reads_the_chat_again() {
    let (crm, w, chrome) = sidebar_in_a_chat_with_the_shared_customer().await;
    w.control("/_emulator/current-contact", json!({"entry": "normal"}))
        .await;
    let r = chrome.run(READY).await;
    assert_eq!(r["ok"]["entry"], "normal", "{r}");
    assert_eq!(r["ok"]["externalUserId"], serde_json::Value::Null, "{r}");
    chrome.run(RECORD_FETCHES).await;
    let v = chrome.run(&gateway_fetch("/customer/6")).await;
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(v["calls"], json!(["/customer/6"]), "configured once: {v}");
    // Back in the chat: its customer again.
    w.chat_with("wmShared").await;
    let r = chrome.run(READY).await;
    assert_eq!(r["ok"]["externalUserId"], "wmShared", "{r}");
    let v = chrome.run(&gateway_fetch("/customer/7")).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["body"]["headers"]["x-wecom-external-userid"], "wmShared");
    drop(chrome);
    crm.shutdown().await;
}

/// A request whose ticket was refused is sent again only for the customer it was made for: the
/// page moved out of the chat while the ticket was being renewed (ready() again), so the 403
/// stands rather than the request leaving with whatever the page is about now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_not_sent_again_for_another_chat() {
    let (crm, w, chrome) = sidebar_in_a_chat_with_the_shared_customer().await;
    chrome.run(RECORD_FETCHES).await;
    // The ticket expires at the gateway (two hours), the session does not.
    w.gw().advance("7300s").await;
    w.control("/_emulator/current-contact", json!({"entry": "normal"}))
        .await;
    let v = chrome
        .run(
            r#"var inner = window.fetch;
window.fetch = function (input, init) {
  var u = String(input && input.url || input);
  if (u.indexOf("/_gateway/external-contact") >= 0 && init && String(init.body).indexOf('"renew":true') >= 0) {
    return new Promise(function (res) { window.__release = function () { res(inner(input, init)); }; });
  }
  return inner(input, init);
};
var f = WeComGateway.fetch("/customer/9", {headers: {Accept: "application/json"}});
(function wait(n) {
  if (!window.__release && n < 200) return setTimeout(function () { wait(n + 1); }, 20);
  WeComGateway.ready().then(function (r) {
    window.__release();
    return f.then(function (resp) {
      done({status: resp.status, calls: window.__calls.slice(), entry: r.entry});
    });
  }).catch(function (e) { done({err: String(e)}); });
})(0);"#,
        )
        .await;
    assert_eq!(v["entry"], "normal", "{v}");
    assert_eq!(v["status"], 403, "{v}");
    let to_crm = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| *c == "/customer/9")
        .count();
    assert_eq!(to_crm, 1, "{v}");
    drop(chrome);
    crm.shutdown().await;
}

/// A page opened from the workbench (no chat) after another page verified a customer: ready()
/// says there is none, and the helper's fetch tells the gateway so (`WGW-Contact: none`), so
/// the CRM is not told about the customer of the other chat, which the session verified last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_without_a_customer_is_not_told_another_chats() {
    let (crm, w, chrome) = sidebar_in_a_chat_with_the_shared_customer().await;

    w.control("/_emulator/current-contact", json!({"entry": "normal"}))
        .await;
    open_sidebar(&chrome, &w, 2).await;
    let r = chrome.run(READY).await;
    assert_eq!(r["ok"]["externalUserId"], serde_json::Value::Null, "{r}");
    chrome.run(RECORD_FETCHES).await;
    let v = chrome.run(&gateway_fetch("/customer/4")).await;
    assert_eq!(v["status"], 403, "{v}");
    assert_eq!(v["body"]["error"], "external_contact_required", "{v}");
    // A plain fetch (no helper) still gets the session's current contact, as documented.
    let plain = chrome
        .run(
            r#"window.__realFetch("/customer/5", {headers: {Accept: "application/json"}})
  .then(function (r) { return r.json(); })
  .then(function (b) { done(b.headers["x-wecom-external-userid"] || null); });"#,
        )
        .await;
    assert_eq!(plain, "wmShared");
    drop(chrome);
    crm.shutdown().await;
}
