//! The README's nginx configuration, run by a real nginx (Debian's, with `auth_request`) in
//! front of the echo upstream, with the gateway as its auth service (SPEC section 19). The
//! browser only ever talks to nginx.

use serde_json::Value;

use crate::common::browser::{location, Browser, WXWORK_UA};
use crate::common::upstream::Echo;
use crate::common::{free_port, nginx, TempDir};
use crate::world::{claims, customer, App, World, SIDEBAR_ROUTES};

/// The README's nginx, with the directory its prefix is in.
struct Nginx {
    _nginx: nginx::Nginx,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The README's nginx block, pointed at this test's gateway and upstream and listening on
/// `port`.
fn readme_config(port: u16, gateway: u16, crm: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "<!-- forward-auth nginx: tested by tests/frontdoors/nginx.rs -->\n```nginx\n";
    let start = readme
        .find(marker)
        .expect("the README's forward-auth nginx block")
        + marker.len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let swap = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "the README block has `{from}`");
        text.replace(from, to)
    };
    let block = swap(
        block,
        "server 127.0.0.1:8080;",
        &format!("server 127.0.0.1:{gateway};"),
    );
    let block = swap(&block, "server 127.0.0.1:9000;", &format!("server {crm};"));
    swap(&block, "listen 80;", &format!("listen 127.0.0.1:{port};"))
}

/// The gateway behind the README's nginx: `public_url` is nginx's address.
async fn world_behind_nginx() -> (World, Nginx) {
    // The sidebar routes, and an area only `lisi` may enter (SPEC section 17).
    let rest = format!(
        "{SIDEBAR_ROUTES}\n[[routes]]\nlocation = \"/admin/\"\nupstream = \"crm\"\nlogin = \"crm\"\nallow = {{ users = [\"lisi\"] }}\n"
    );
    // nginx's port is the gateway's public URL, so it is picked before either starts; when
    // another process takes it before nginx binds it, both start again on another.
    for _ in 0..5 {
        let port = free_port();
        let w = World::new()
            .session("")
            .app(App::wecom("crm").contact().with("miniprogram = true"))
            .app(App::mp("mp"))
            .routes(&rest)
            .public_port(port)
            .start()
            .await;
        let block = readme_config(port, w.gw().port, &w.up.addr.to_string());
        let dir = TempDir::new("nginx-auth");
        let path = dir.path().to_path_buf();
        let started = tokio::task::spawn_blocking(move || nginx::try_start(&path, &block, &[port]))
            .await
            .unwrap();
        match started {
            Ok(n) => {
                let nginx = Nginx {
                    _nginx: n,
                    port,
                    _dir: dir,
                };
                return (w, nginx);
            }
            Err(e) if e.contains("Address already in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("nginx found no free port in five tries")
}

/// What the CRM received through nginx, or the status and body nginx answered with.
async fn through(
    b: &mut Browser,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Echo, (u16, String)> {
    let r = b.get_json(url, headers).await;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    match serde_json::from_str::<Echo>(&text) {
        Ok(e) if status == 200 && e.name == "crm" => Ok(e),
        _ => Err((status, text)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_a_browser_signs_in_and_the_crm_sees_only_the_verified_identity() {
    let (w, ng) = world_behind_nginx().await;
    let mut b = Browser::new(WXWORK_UA);
    let spoof = [
        ("X-WeCom-UserId", "boss"),
        ("X-WeCom-External-UserId", "wmForged"),
        ("X-Gateway-Assertion", "forged"),
    ];

    // Without a session: the page is the interstitial, served in place by `@signin`.
    let r = b.get(&ng.url("/sidebar/page?x=1")).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("\"/_gateway/login?app=crm&return_to=\""),
        "{page}"
    );
    assert!(
        page.contains("%2Fsidebar%2Fpage%3Fx%3D1"),
        "the noscript link: {page}"
    );
    // A script's call: 401 JSON with the login URL.
    let page_url = ng.url("/sidebar/");
    let mut call = spoof.to_vec();
    call.push(("referer", &page_url));
    match through(&mut b, &ng.url("/sidebar/api"), &call).await {
        Err((401, body)) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"], "login_required");
            assert_eq!(
                v["login_url"],
                "/_gateway/login?app=crm&return_to=%2Fsidebar%2F"
            );
        }
        other => panic!("{other:?}"),
    }

    // What the interstitial's script does: the login, through nginx, back to the page.
    let start = ng.url("/_gateway/login?app=crm&return_to=%2Fsidebar%2Fpage%3Fx%3D1");
    let r = b.get(&start).await;
    assert_eq!(r.status(), 302);
    let provider = location(&r, &start);
    assert!(provider.starts_with(&w.emu.base_url()), "{provider}");
    let r = b.get(&provider).await;
    assert_eq!(r.status(), 302);
    let callback = location(&r, &provider);
    assert!(
        callback.starts_with(&ng.url("/_gateway/oauth/callback?")),
        "{callback}"
    );
    let r = b.get(&callback).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap_or_default());
    assert_eq!(location(&r, &callback), ng.url("/sidebar/page?x=1#"));

    // Signed in: the CRM gets the verified identity through nginx, never the client's.
    let echo = through(&mut b, &ng.url("/sidebar/page?x=1"), &spoof)
        .await
        .unwrap();
    assert_eq!(echo.uri, "/sidebar/page?x=1");
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    // The browser sent its session cookie; the CRM behind nginx never holds it.
    assert!(
        !echo.header("cookie").unwrap_or_default().contains("wgw_"),
        "{:?}",
        echo.header("cookie")
    );
    assert_eq!(echo.header("x-wecom-external-userid"), None);
    let c = claims(echo.header("x-gateway-assertion").unwrap());
    assert_eq!(c["userid"], "zhangsan");
    // A public path: through, with none of the client's identity headers, nor any other of
    // the gateway's names (a callback delivery's signature and id).
    let mut spoof_more = spoof.to_vec();
    spoof_more.extend([
        ("X-Gateway-Signature", "sha256=forged"),
        ("X-Gateway-Signature-V2", "forged"),
        ("X-Gateway-Event-Id", "1"),
        ("X-Gateway-Cookie", "a=b"),
        ("X-Gateway-Authorization", "Bearer x"),
        ("X-Gateway-Refused", "x"),
        ("X-Gateway-Login-Url", "/x"),
        // The path and host a CRM may route or build links on instead of the request's own.
        ("X-Rewrite-URL", "/reports/"),
        ("X-Original-URL", "/reports/"),
        ("X-Forwarded-Prefix", "/reports"),
        ("X-Forwarded-Path", "/reports/"),
        ("Forwarded", "host=evil.example"),
        ("X-Host", "evil.example"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Real-IP", "6.6.6.6"),
    ]);
    let echo = through(&mut b, &ng.url("/public"), &spoof_more)
        .await
        .unwrap();
    // nginx's `$host`: the check vouched for it (public_url's), not the client's header.
    assert_eq!(echo.header("x-forwarded-host"), Some("127.0.0.1"));
    assert_eq!(echo.header("x-real-ip"), Some("127.0.0.1"));
    for name in [
        "x-rewrite-url",
        "x-original-url",
        "x-forwarded-prefix",
        "x-forwarded-path",
        "forwarded",
        "x-host",
        "x-wecom-userid",
        "x-wecom-external-userid",
        "x-gateway-assertion",
        "x-gateway-signature",
        "x-gateway-signature-v2",
        "x-gateway-event-id",
        "x-gateway-cookie",
        "x-gateway-authorization",
        "x-gateway-refused",
        "x-gateway-login-url",
    ] {
        assert_eq!(echo.header(name), None, "{name}");
    }
    // The CRM's own credentials pass; a mini-program's bearer token of ours (a session for as
    // long as it lives) does not reach the CRM through nginx either.
    let echo = through(
        &mut b,
        &ng.url("/sidebar/page"),
        &[("authorization", "Basic Y3JtOm93bg==")],
    )
    .await
    .unwrap();
    assert_eq!(echo.header("authorization"), Some("Basic Y3JtOm93bg=="));
    let r = crate::common::client()
        .post(format!("{}/_emulator/miniprogram/code", w.emu.base_url()))
        .json(&serde_json::json!({ "userid": "zhangsan", "agentid": 1000002 }))
        .send()
        .await
        .unwrap();
    let code: Value = r.json().await.unwrap();
    let r = crate::common::client()
        .post(ng.url("/_gateway/miniprogram/login"))
        .json(&serde_json::json!({ "app": "crm", "code": code["code"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let mut app = Browser::new(WXWORK_UA);
    let echo = through(
        &mut app,
        &ng.url("/sidebar/api"),
        &[("authorization", &bearer)],
    )
    .await
    .unwrap();
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(
        echo.header("authorization"),
        None,
        "the token stays with the gateway"
    );

    // nginx never lets a client call the check itself.
    let r = b
        .get_json(
            &ng.url("/_gateway/auth"),
            &[("x-original-uri", "/sidebar/")],
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_access_rules_and_a_required_contact_refuse_as_in_proxy_mode() {
    let (_w, ng) = world_behind_nginx().await;
    let mut b = Browser::new(WXWORK_UA);
    let start = ng.url("/_gateway/login?app=crm&return_to=%2Fsidebar%2F");
    let r = b.get(&start).await;
    let provider = location(&r, &start);
    let r = b.get(&provider).await;
    let callback = location(&r, &provider);
    assert_eq!(b.get(&callback).await.status(), 302);

    // An access rule that does not admit the member: nginx answers the 403, the CRM sees
    // nothing; an area without a rule lets the same member in.
    // The gateway's own answer, not nginx's page.
    match through(&mut b, &ng.url("/admin/x"), &[]).await {
        Err((403, body)) if body.contains("\"not_allowed\"") => {}
        other => panic!("allow refuses zhangsan: {other:?}"),
    }
    assert!(through(&mut b, &ng.url("/sidebar/x"), &[]).await.is_ok());

    // No verified contact, or a ticket that does not open: nginx answers the 403.
    for ticket in [None, Some("forged")] {
        let headers: Vec<(&str, &str)> = ticket.map(|t| ("WGW-Contact", t)).into_iter().collect();
        // What sdk.js renews a ticket on.
        match through(&mut b, &ng.url("/customer/x"), &headers).await {
            Err((403, body)) if body.contains("\"external_contact_required\"") => {}
            other => panic!("{ticket:?}: {other:?}"),
        }
    }
    // The contact verified through nginx, its ticket on the page's call: the CRM gets it, and
    // not the ticket itself.
    let r = b
        .post_json(
            &ng.url("/_gateway/external-contact"),
            &serde_json::json!({ "external_userid": customer() }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    let echo = through(&mut b, &ng.url("/customer/x"), &[("WGW-Contact", &ticket)])
        .await
        .unwrap();
    assert_eq!(echo.header("x-wecom-external-userid"), Some(customer()));
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(echo.header("wgw-contact"), None);
}
