//! `{prefix}/auth` called as Traefik's ForwardAuth (and Caddy's `forward_auth`) call it: a
//! plain GET with the original request in `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`,
//! `-For`, and the original request's own headers (its cookie, `Accept`, `WGW-Contact`).

use reqwest::Method;
use serde_json::Value;

use crate::common::browser::{Browser, HTML, WXWORK_UA};
use crate::world::{claims, corp_id, customer, wecom_and_wechat, World};

const JSON: &str = "application/json";

/// The check Traefik makes for `method uri` on `host`, with the browser's cookies and
/// `extra` headers (the original request's).
async fn traefik(
    b: &mut Browser,
    w: &World,
    (method, host, uri): (&str, &str, &str),
    accept: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut headers: Vec<(String, String)> = vec![
        ("x-forwarded-method".into(), method.into()),
        ("x-forwarded-proto".into(), "http".into()),
        ("x-forwarded-host".into(), host.into()),
        ("x-forwarded-uri".into(), uri.into()),
        ("x-forwarded-for".into(), "192.0.2.7".into()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    b.send(
        Method::GET,
        &w.gw().url("/_gateway/auth"),
        accept,
        |mut r| {
            for (k, v) in headers {
                r = r.header(k, v);
            }
            r
        },
    )
    .await
}

fn host(w: &World) -> String {
    format!("127.0.0.1:{}", w.gw().port)
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_the_check_is_401_with_the_login_url_and_for_a_navigation_the_interstitial(
) {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member_browser();
    let h = host(&w);

    let r = traefik(&mut b, &w, ("GET", &h, "/sidebar/page?x=1"), HTML, &[]).await;
    assert_eq!(r.status(), 401, "a navigation");
    let login = header(&r, "x-gateway-login-url").unwrap().to_owned();
    assert_eq!(
        login,
        "/_gateway/login?app=crm&return_to=%2Fsidebar%2Fpage%3Fx%3D1"
    );
    assert!(header(&r, "x-wecom-userid").is_none());
    let page = r.text().await.unwrap();
    assert!(
        page.contains("location.replace"),
        "the interstitial: {page}"
    );
    assert!(
        page.contains("/_gateway/login?app=crm&return_to="),
        "{page}"
    );

    // A script's call: JSON.
    let r = traefik(&mut b, &w, ("GET", &h, "/sidebar/api"), JSON, &[]).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-gateway-login-url").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "login_required", "{v}");
    assert!(v["request_id"].is_string());
    // A form's POST is no navigation: a page with a link, as proxy mode answers it.
    let r = traefik(&mut b, &w, ("POST", &h, "/sidebar/form"), HTML, &[]).await;
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(!page.contains("location.replace"), "{page}");
    assert!(page.contains("/_gateway/login?app=crm"), "{page}");

    // The Official Account's area asks for its own login.
    let r = traefik(&mut b, &w, ("GET", &h, "/mp/x"), JSON, &[]).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-gateway-login-url")
        .unwrap()
        .contains("app=mp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_session_the_check_hands_back_the_verified_identity_and_refuses_the_clients_own() {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member().await;
    let h = host(&w);
    let spoof = [
        ("x-wecom-userid", "boss"),
        ("x_wecom_userid", "boss"),
        ("x-wecom-external-userid", "wmForged"),
        ("x-gateway-assertion", "forged"),
    ];
    // Traefik passes the client's headers on beside those it copies (and keeps `_` names): a
    // request bringing its own identity is refused, in any spelling.
    for one in &spoof[..] {
        let r = traefik(&mut b, &w, ("GET", &h, "/sidebar/page"), HTML, &[*one]).await;
        assert_eq!(r.status(), 400, "{one:?}");
        assert!(header(&r, "x-wecom-userid").is_none());
    }
    // Also when the client adds nginx's description of itself (Traefik passes it on).
    let original = format!("http://{h}/sidebar/page");
    let r = traefik(
        &mut b,
        &w,
        ("GET", &h, "/sidebar/page"),
        HTML,
        &[spoof[1], ("x-original-url", original.as_str())],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = traefik(&mut b, &w, ("GET", &h, "/sidebar/page"), HTML, &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-wecom-userid"), Some("zhangsan"));
    assert_eq!(header(&r, "x-wecom-corpid"), Some(corp_id()));
    assert_eq!(header(&r, "x-wecom-agentid"), Some("1000002"));
    assert!(header(&r, "x-wecom-external-userid").is_none());
    assert!(header(&r, "x_wecom_userid").is_none());
    let jwt = header(&r, "x-gateway-assertion").unwrap();
    let c = claims(jwt);
    assert_eq!(c["userid"], "zhangsan");
    assert_eq!(c["rid"], header(&r, "x-request-id").unwrap());

    // A public path: allowed, and no identity at all.
    let r = traefik(&mut b, &w, ("GET", &h, "/public/x"), HTML, &[]).await;
    assert_eq!(r.status(), 200);
    for name in [
        "x-wecom-userid",
        "x-wecom-external-userid",
        "x-gateway-assertion",
    ] {
        assert!(header(&r, name).is_none(), "{name}");
    }

    // The gateway's own endpoints check for themselves when they are reached: nothing is
    // handed on. Above all not the browser's cookies: a page script calling the check itself
    // (an ingress names the check as the original request) read its HttpOnly cookies there.
    for own in ["/_gateway/login?app=crm", "/_gateway/auth"] {
        let r = traefik(
            &mut b,
            &w,
            ("GET", &h, own),
            JSON,
            &[("cookie", "crmsid=HttpOnly1")],
        )
        .await;
        assert_eq!(r.status(), 200, "{own}");
        for name in [
            "x-gateway-cookie",
            "x-gateway-authorization",
            "x-wecom-userid",
            "x-gateway-assertion",
        ] {
            assert!(header(&r, name).is_none(), "{own}: {name}");
        }
    }
    // A page of the CRM: its cookies, without the gateway's, to send on.
    let r = traefik(
        &mut b,
        &w,
        ("GET", &h, "/sidebar/page"),
        HTML,
        &[("cookie", "crmsid=HttpOnly1")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let kept = header(&r, "x-gateway-cookie").unwrap();
    assert!(
        kept.contains("crmsid=HttpOnly1") && !kept.contains("wgw_"),
        "{kept}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_refuses_another_host_and_an_original_request_it_cannot_read() {
    let w = wecom_and_wechat().start().await;
    let mut b = w.member().await;
    let h = host(&w);
    // The member's own cookie, but about a request to another site behind the same proxy.
    for other in ["evil.example", "127.0.0.1", "127.0.0.1:1"] {
        let r = traefik(&mut b, &w, ("GET", other, "/sidebar/"), JSON, &[]).await;
        assert_eq!(r.status(), 403, "{other}");
        assert!(header(&r, "x-wecom-userid").is_none());
    }
    for (what, uri) in [
        ("absolute form", "http://evil.example/sidebar/"),
        ("not a path", "sidebar/"),
        ("malformed path", "/sidebar/../../x"),
        // Judged as `/sidebar/`, handed whole to the CRM: no browser sends a fragment.
        ("a fragment", "/sidebar/#/../../reports/"),
        ("an escaped fragment", "/sidebar/#/%2e%2e/%2e%2e/reports/"),
    ] {
        let r = traefik(&mut b, &w, ("GET", &h, uri), JSON, &[]).await;
        assert_eq!(r.status(), 400, "{what}");
        assert!(header(&r, "x-wecom-userid").is_none(), "{what}");
    }
    // ingress-nginx's description, with a fragment.
    let r = b
        .get_json(
            &w.gw().url("/_gateway/auth"),
            &[("x-original-url", &format!("http://{h}/sidebar/#/../x"))],
        )
        .await;
    assert_eq!(r.status(), 400);
    // No description of the original request at all.
    let r = b
        .get_json(&w.gw().url("/_gateway/auth"), &[("x-forwarded-host", &h)])
        .await;
    assert_eq!(r.status(), 400);
    // The check itself is a GET.
    let r = b
        .send(Method::POST, &w.gw().url("/_gateway/auth"), JSON, |r| r)
        .await;
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_applies_the_protected_areas_and_the_contact_ticket_as_proxy_mode_does() {
    let w = wecom_and_wechat().start().await;
    let mut anonymous = Browser::new(WXWORK_UA);
    let mut b = w.member().await;
    let h = host(&w);

    // Servlet and undecoded readings of a path inside the protected area are inside it here too;
    // also when nginx's reading is one of the gateway's own endpoints, which a front proxy that
    // does not resolve the path sends to the CRM.
    for uri in [
        "/x/..;/sidebar/",
        "/sidebar;jsessionid=1/x",
        "/sidebar/%2e%2e/sidebar/",
        "/sidebar/%2e%2e/_gateway/x",
        "/sidebar/../_gateway/whoami",
        "/sidebar/x/..%2f..%2f_gateway/whoami",
        "/sidebar%2F..%2Fx",
        "/sidebar%2f%2e%2e%2f_gateway/whoami",
        "/%2Fsidebar%2F..%2Fx",
        // The gateway's prefix as a Servlet container or Windows reads past it.
        "/_gateway/..;/sidebar/",
        "/_gateway/..\\sidebar\\",
        "/_gateway/x/..;/..;/sidebar/",
    ] {
        let r = traefik(&mut anonymous, &w, ("GET", &h, uri), JSON, &[]).await;
        assert_eq!(r.status(), 401, "{uri}");
    }
    // A target starting `//` is a path with its slashes merged, as nginx serves it and proxy
    // mode reads it (a 400 would be nginx's 500 for a link joined with one slash too many);
    // its dot segments are read as any other path's.
    for (uri, status) in [
        ("//sidebar/x", 401),
        ("//sidebar/../x", 401),
        ("///sidebar//x", 401),
        ("//_gateway/x/..;/sidebar/", 401),
        // Also read as a host and a path, as a URL parser reads it (`/sidebar/` here).
        ("//evil.example/sidebar/", 401),
        // And as the WHATWG parser reads it (Node's `new URL`): every `/` and `\` before the
        // host skipped, a `\` read as `/`.
        ("///evil.example/sidebar/", 401),
        ("/\\evil.example\\sidebar\\", 401),
        ("//x/page", 200),
        ("//", 200),
    ] {
        let r = traefik(&mut anonymous, &w, ("GET", &h, uri), JSON, &[]).await;
        assert_eq!(r.status(), status, "{uri}");
    }
    // The gateway's own endpoints, asked for plainly, check for themselves.
    let r = traefik(
        &mut anonymous,
        &w,
        ("GET", &h, "/_gateway/login?app=crm"),
        JSON,
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);

    // `external_contact = "required"`: no contact, a forged ticket -> 403; the ticket of a
    // contact this member verified -> 200 with the contact.
    let r = traefik(&mut b, &w, ("GET", &h, "/customer/x"), JSON, &[]).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "external_contact_required");
    let (status, verified) = w.verify_contact(&mut b, customer()).await;
    assert_eq!(status, 200, "{verified}");
    let ticket = verified["ticket"].as_str().unwrap().to_owned();
    let r = traefik(
        &mut b,
        &w,
        ("GET", &h, "/customer/x"),
        JSON,
        &[("wgw-contact", "forged")],
    )
    .await;
    assert_eq!(
        r.status(),
        403,
        "a ticket that does not open gives no contact"
    );
    let r = traefik(
        &mut b,
        &w,
        ("GET", &h, "/customer/x"),
        JSON,
        &[("wgw-contact", &ticket)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-wecom-external-userid"), Some(customer()));
    assert_eq!(
        claims(header(&r, "x-gateway-assertion").unwrap())["external_userid"],
        customer()
    );

    // The ticket is worth nothing without the member's session.
    let r = traefik(
        &mut anonymous,
        &w,
        ("GET", &h, "/customer/x"),
        JSON,
        &[("wgw-contact", &ticket)],
    )
    .await;
    assert_eq!(r.status(), 401);
}

/// The front proxy sets its own door's headers and passes the client's other ones on: a second
/// description that names another request is refused, never read instead. And `/p`, which the
/// gateway would redirect into the protected `/p/` but the front proxy serves from the CRM, is
/// checked as lying in that area.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_description_cannot_replace_the_front_proxys_and_a_slashless_area_is_covered() {
    let w = wecom_and_wechat().start().await;
    let mut anonymous = Browser::new(WXWORK_UA);
    let mut b = w.member().await;
    let h = host(&w);
    let public_page = format!("http://{h}/");
    for extra in [
        ("x-original-url", public_page.as_str()),
        ("x-original-uri", "/"),
    ] {
        let r = traefik(
            &mut anonymous,
            &w,
            ("GET", &h, "/sidebar/page"),
            JSON,
            &[extra],
        )
        .await;
        assert_eq!(r.status(), 400, "{extra:?}");
        assert!(header(&r, "x-request-id").is_some());
        assert!(header(&r, "x-wecom-userid").is_none());
        // A member without the contact the area requires gains nothing either.
        let r = traefik(&mut b, &w, ("GET", &h, "/customer/x"), JSON, &[extra]).await;
        assert_eq!(r.status(), 400, "{extra:?}");
    }
    // The same request described twice alike is one request.
    let same = format!("http://{h}/sidebar/page");
    let r = traefik(
        &mut b,
        &w,
        ("GET", &h, "/sidebar/page"),
        JSON,
        &[("x-original-url", &same)],
    )
    .await;
    assert_eq!(r.status(), 200);

    let r = traefik(&mut anonymous, &w, ("GET", &h, "/sidebar"), JSON, &[]).await;
    assert_eq!(r.status(), 401, "/sidebar lies in /sidebar/'s area");
    // ingress-nginx's URL is read as the client sent it: nginx serves `\..\` inside the area.
    let sneaky = format!("http://{h}/sidebar/q1\\..\\..\\x");
    let r = anonymous
        .send(Method::GET, &w.gw().url("/_gateway/auth"), JSON, |r| {
            r.header("x-original-url", sneaky.as_str())
        })
        .await;
    assert_eq!(r.status(), 401, "{sneaky}");
    let r = traefik(&mut b, &w, ("GET", &h, "/sidebar"), JSON, &[]).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-wecom-userid").is_some());
    let r = traefik(&mut b, &w, ("GET", &h, "/customer"), JSON, &[]).await;
    assert_eq!(
        r.status(),
        403,
        "/customer needs the contact /customer/ needs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_answers_the_interstitial_of_the_area_and_never_leads_off_site() {
    let w = wecom_and_wechat().start().await;
    let mut b = Browser::new(WXWORK_UA);
    let page = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    };
    // `app` named, or found from the protected area `return_to` lies in.
    for (query, app) in [
        ("app=mp&return_to=%2Fmp%2Fx", "mp"),
        ("return_to=%2Fmp%2Fx", "mp"),
        ("return_to=%2Fsidebar%2Fx", "crm"),
    ] {
        let body = page(
            b.get(&w.gw().url(&format!("/_gateway/signin?{query}")))
                .await,
        )
        .await;
        assert!(
            body.contains(&format!("login?app={app}&return_to=")),
            "{query}: {body}"
        );
    }
    // nginx's `@signin` names the page in X-Original-URI: a doubled slash's host-and-path
    // reading is the area the check found (`/mp/`), not the default app's.
    let r = crate::common::client()
        .get(w.gw().url("/_gateway/signin"))
        .header("x-original-uri", "//x/mp/page")
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    let body = page(r).await;
    assert!(body.contains("login?app=mp&return_to="), "{body}");
    // Opened at its own address (a proxy that redirects to it), the page goes back to
    // `return_to`, never to itself: that would sign in for ever.
    let body = page(
        b.get(&w.gw().url("/_gateway/signin?return_to=%2Fmp%2Fx"))
            .await,
    )
    .await;
    assert!(
        body.contains(r#"location.pathname==="/_gateway/signin"?"/mp/x":"#),
        "{body}"
    );
    // ingress-nginx's `auth-signin` names the page `rd`, as a whole URL.
    let rd =
        url::form_urlencoded::byte_serialize(w.gw().url("/mp/y").as_bytes()).collect::<String>();
    let body = page(
        b.get(&w.gw().url(&format!("/_gateway/signin?rd={rd}")))
            .await,
    )
    .await;
    assert!(body.contains(r#"?"/mp/y":"#), "{body}");
    // nginx's `@signin` sends the original URI as a header instead.
    let r = b
        .send(Method::GET, &w.gw().url("/_gateway/signin"), HTML, |r| {
            r.header("x-original-uri", "/mp/deep?x=1")
        })
        .await;
    let body = page(r).await;
    assert!(body.contains("return_to=%2Fmp%2Fdeep%3Fx%3D1"), "{body}");
    // An off-site return_to becomes `/` in the fallback link.
    let body = page(
        b.get(
            &w.gw()
                .url("/_gateway/signin?app=crm&return_to=https%3A%2F%2Fevil.example%2F"),
        )
        .await,
    )
    .await;
    assert!(!body.contains("evil.example"), "{body}");
    // A script gets the 401 JSON; an unknown app is a 400.
    let r = b
        .get_json(&w.gw().url("/_gateway/signin?return_to=%2Fsidebar%2F"), &[])
        .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["login_url"],
        "/_gateway/login?app=crm&return_to=%2Fsidebar%2F"
    );
    let r = b.get(&w.gw().url("/_gateway/signin?app=nope")).await;
    assert_eq!(r.status(), 400);
}

/// With `forward_auth_key`, the check answers only the front proxy that presents it in the
/// check's address (nginx's `proxy_pass`, Traefik's `address`, ingress-nginx's `auth-url`): a
/// page script calling the check itself through the gateway in front, or anyone who reaches it,
/// gets a `403` and never reads the browser's HttpOnly cookies back in `X-Gateway-Cookie`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_forward_auth_key_only_the_front_proxy_presenting_it_is_answered() {
    const KEY: &str = "k3yOfTheFrontProxy0123";
    let w = wecom_and_wechat()
        .server(&format!("forward_auth_key = \"{KEY}\""))
        .start()
        .await;
    let mut b = w.member().await;
    let h = host(&w);
    let crm_cookie = [("cookie", "crmsid=HttpOnly1")];
    let r = traefik(&mut b, &w, ("GET", &h, "/sidebar/page"), JSON, &crm_cookie).await;
    assert_eq!(r.status(), 403);
    assert!(header(&r, "x-gateway-cookie").is_none());
    assert!(header(&r, "x-wecom-userid").is_none());
    for (key, status) in [("guess", 403), (KEY, 200)] {
        let h = h.clone();
        let r = b
            .send(
                Method::GET,
                &w.gw().url(&format!("/_gateway/auth?key={key}")),
                JSON,
                move |r| {
                    r.header("x-forwarded-method", "GET")
                        .header("x-forwarded-host", h.as_str())
                        .header("x-forwarded-uri", "/sidebar/page")
                        .header("cookie", "crmsid=HttpOnly1")
                },
            )
            .await;
        assert_eq!(r.status(), status, "{key}");
        if status == 200 {
            assert_eq!(header(&r, "x-wecom-userid"), Some("zhangsan"));
            assert!(header(&r, "x-gateway-cookie")
                .unwrap()
                .contains("crmsid=HttpOnly1"));
        }
    }
    // The key never reaches the log.
    w.gw()
        .wait_log("path=/_gateway/auth route=\"gateway\" status=200");
    assert!(!w.gw().log().contains(KEY));
}

/// The original request a HEAD (`X-Forwarded-Method: HEAD`): the check's answer is still a GET's,
/// its body all there, so a keep-alive front proxy that reads the body of a refusal (Traefik,
/// Caddy) gets it and can send the next check on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_head_request_gets_a_whole_answer() {
    use std::io::Write;
    let w = wecom_and_wechat().start().await;
    let (port, h) = (w.gw().port, host(&w));
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut pending = Vec::new();
        for _ in 0..2 {
            write!(
                s,
                "GET /_gateway/auth HTTP/1.1\r\nHost: {h}\r\nAccept: application/json\r\n\
                 X-Forwarded-Method: HEAD\r\nX-Forwarded-Host: {h}\r\n\
                 X-Forwarded-Uri: /sidebar/\r\n\r\n"
            )
            .unwrap();
            let r = crate::common::raw::read_response(&mut s, &mut pending);
            assert_eq!(r.status, 401);
            let length: usize = r.header("content-length").unwrap().parse().unwrap();
            assert!(length > 0);
            assert_eq!(r.body.len(), length, "the body the length announced");
        }
    })
    .await
    .unwrap();
}
