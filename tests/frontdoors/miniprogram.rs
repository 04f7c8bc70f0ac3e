//! WeCom mini-programs (SPEC section 19): `wx.qy.login`'s code (issued by the emulator as the
//! WeCom client would) -> `POST {prefix}/miniprogram/login` -> `Authorization: Bearer` calls
//! that the CRM receives as the member, exactly as with a session cookie.

use serde_json::{json, Value};

use crate::common::browser::{Browser, WXWORK_UA};
use crate::common::client;
use crate::world::{claims, corp_id, App, World};

/// A third app, `mini` (the corp's agent with its mini-program), protects `/mini/`; the
/// WeChat mini-program `wxmini` of the emulator's `[wechat_mini]` protects `/wxmini/`.
const MINI_ROUTES: &str = r#"
[[routes]]
location = "/wxmini/"
upstream = "crm"
login = "wxmini"

[[routes]]
location = "/mini/"
upstream = "crm"
login = "mini"

[[routes]]
location = "/"
upstream = "crm"
"#;

async fn world() -> World {
    World::new()
        .session("")
        .app(App::wecom("crm").contact())
        .app(App::mp("mp"))
        .app(App::wecom("mini").with("miniprogram = true"))
        .app(App::mini("wxmini"))
        .routes(MINI_ROUTES)
        .start()
        .await
}

/// What `wx.qy.login` gives the mini-program of agent 1000002 for `userid`.
async fn code(w: &World, userid: &str) -> String {
    let r = client()
        .post(format!("{}/_emulator/miniprogram/code", w.emu.base_url()))
        .json(&json!({ "userid": userid, "agentid": 1000002 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let v: Value = r.json().await.unwrap();
    v["code"].as_str().unwrap().to_owned()
}

async fn login(w: &World, app: &str, code: &str) -> (u16, Value) {
    let r = client()
        .post(w.gw().url("/_gateway/miniprogram/login"))
        .json(&json!({ "app": app, "code": code }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(!text.contains("session_key"), "{text}");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A call of the mini-program (`wx.request`) with `token`, and what the CRM saw of it.
async fn call(
    w: &World,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> Result<crate::common::upstream::Echo, u16> {
    let mut b = Browser::new(WXWORK_UA);
    let mut headers = vec![("authorization", format!("Bearer {token}"))];
    headers.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    w.upstream_sees(&mut b, path, &headers)
        .await
        .map_err(|(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mini_program_code_becomes_a_bearer_session_the_crm_sees_as_the_member() {
    let w = world().await;
    let (status, v) = login(&w, "mini", &code(&w, "zhangsan").await).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap();
    assert!(token.starts_with("wgw1."), "{token}");
    assert_eq!(v["expires_in"], 8 * 3600);

    let echo = call(&w, "/mini/orders", token, &[("x-wecom-userid", "boss")])
        .await
        .unwrap();
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(echo.header("x-wecom-corpid"), Some(corp_id()));
    assert_eq!(
        echo.header("authorization"),
        None,
        "our token never reaches the CRM"
    );
    assert_eq!(
        claims(echo.header("x-gateway-assertion").unwrap())["userid"],
        "zhangsan"
    );
    // whoami reads the token as it reads a cookie.
    let r = client()
        .get(w.gw().url("/_gateway/whoami?app=mini"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A foreign bearer token on a public route is the CRM's own and passes untouched.
    let mut b = Browser::new(WXWORK_UA);
    let echo = w
        .upstream_sees(&mut b, "/api", &[("authorization", "Bearer crm-own-token")])
        .await
        .unwrap();
    assert_eq!(echo.header("authorization"), Some("Bearer crm-own-token"));
    assert_eq!(echo.header("x-wecom-userid"), None);
    // The CRM's own Basic credentials first, our token second: the token is the session, and
    // only it is taken off.
    let basic = "Basic Y3JtOnNlY3JldA==";
    let echo = w
        .upstream_sees(
            &mut b,
            "/mini/orders",
            &[
                ("authorization", basic),
                ("authorization", &format!("Bearer {token}")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(echo.header("x-wecom-userid"), Some("zhangsan"));
    assert_eq!(echo.header("authorization"), Some(basic));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_code_a_forged_or_expired_token_gets_401() {
    let w = world().await;
    let c = code(&w, "zhangsan").await;
    let (status, v) = login(&w, "mini", &c).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    // The same code again: WeCom refuses it (40029), so do we.
    let (status, v) = login(&w, "mini", &c).await;
    assert_eq!(status, 401, "{v}");
    // Not a mini-program app, not a code, not JSON.
    assert_eq!(login(&w, "crm", &code(&w, "zhangsan").await).await.0, 400);
    assert_eq!(login(&w, "mini", "a b").await.0, 400);
    let r = client()
        .post(w.gw().url("/_gateway/miniprogram/login"))
        .body("app=mini")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    for forged in [tampered.as_str(), "wgw1.AAAA", "wgw1."] {
        assert_eq!(
            call(&w, "/mini/x", forged, &[]).await.unwrap_err(),
            401,
            "{forged}"
        );
    }
    // A bad token is judged alone: a valid cookie on the same request does not rescue it.
    let mut b = Browser::new(WXWORK_UA);
    w.login(&mut b, "mini", "/mini/").await;
    assert!(
        w.upstream_sees(&mut b, "/mini/x", &[]).await.is_ok(),
        "the cookie alone works"
    );
    let r = w
        .upstream_sees(&mut b, "/mini/x", &[("authorization", "Bearer wgw1.AAAA")])
        .await;
    assert_eq!(r.unwrap_err().0, 401);

    assert!(call(&w, "/mini/x", &token, &[]).await.is_ok());
    w.gw().advance("8h").await;
    assert_eq!(
        call(&w, "/mini/x", &token, &[]).await.unwrap_err(),
        401,
        "expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_ends_like_a_session_through_the_revocation_records() {
    let w = world().await;
    let (_, v) = login(&w, "mini", &code(&w, "zhangsan").await).await;
    let token = v["token"].as_str().unwrap().to_owned();
    let (_, v) = login(&w, "mini", &code(&w, "zhangsan").await).await;
    let other = v["token"].as_str().unwrap().to_owned();
    assert!(call(&w, "/mini/x", &token, &[]).await.is_ok());
    // The mini-program signs out with its token: that session's record ends it. `wx.request`
    // always names its page on WeChat's servers as the Referer: no other site's visit.
    let r = client()
        .post(w.gw().url("/_gateway/logout"))
        .bearer_auth(&token)
        .header(
            "referer",
            "https://servicewechat.com/wxemu000000000001/0/page-frame.html",
        )
        .send()
        .await
        .unwrap();
    // `wx.request` has no page to go back to: it is told in JSON.
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["signed_out"], true, "{v}");
    assert_eq!(call(&w, "/mini/x", &token, &[]).await.unwrap_err(), 401);
    assert!(
        call(&w, "/mini/x", &other, &[]).await.is_ok(),
        "another session of the member lives on"
    );
}

/// `change_contact/delete_user` (SPEC section 18), sent by the emulator as WeCom sends it, ends
/// the member's bearer tokens as it ends their cookies: the same per-member record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_user_ends_the_members_mini_program_tokens() {
    use crate::common::callbacks::{Backend, CallbackWorld};
    // The demo's corp: two members (a corp keeps at least one).
    let w = CallbackWorld::start_in(emulator::Scenario::demo(), Backend::Memory, 1).await;
    let gw = &w.gateways[0];
    let mut tokens = Vec::new();
    for userid in ["zhangsan", "lisi"] {
        let code = w
            .control(
                "/_emulator/miniprogram/code",
                json!({ "userid": userid, "agentid": crate::world::agent_id() }),
            )
            .await["code"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = client()
            .post(gw.url("/_gateway/miniprogram/login"))
            .json(&json!({ "app": "crm", "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        tokens.push(v["token"].as_str().unwrap().to_owned());
    }
    let status = |token: String| async move {
        client()
            .get(gw.url("/sidebar/page"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status(tokens[0].clone()).await, 200);
    w.control("/_emulator/members/delete", json!({ "userid": "zhangsan" }))
        .await;
    let log = w.settled().await;
    assert!(
        log["callbacks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "message" && r["result"] == "delivered"),
        "{log}"
    );
    assert_eq!(status(tokens[0].clone()).await, 401, "the deleted member");
    assert_eq!(status(tokens[1].clone()).await, 200, "another member");
}

/// `kind = "wechat_mini"`: `wx.login`'s code -> `/sns/jscode2session` -> a token whose calls
/// carry the WeChat identity; the code is single-use; there is no web login for such an app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wechat_mini_program_code_becomes_a_bearer_session_with_the_wechat_identity() {
    let w = world().await;
    let r = client()
        .post(format!("{}/_emulator/miniprogram/code", w.emu.base_url()))
        .json(&json!({ "openid": "oEmuMiniOpenId001" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let code = r.json::<Value>().await.unwrap()["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, v) = login(&w, "wxmini", &code).await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();
    let echo = call(&w, "/wxmini/x", &token, &[("x-wechat-openid", "oForged")])
        .await
        .unwrap();
    assert_eq!(echo.header("x-wechat-appid"), Some("wxemu000000000002"));
    assert_eq!(echo.header("x-wechat-openid"), Some("oEmuMiniOpenId001"));
    assert_eq!(echo.header("x-wechat-unionid"), Some("oEmuUnion001"));
    assert_eq!(echo.header("x-wecom-userid"), None);
    assert_eq!(echo.header("authorization"), None);
    // The token is the mini-program's, not another app's: the WeCom mini-program's area
    // refuses it.
    assert_eq!(call(&w, "/mini/x", &token, &[]).await.unwrap_err(), 401);
    assert_eq!(login(&w, "wxmini", &code).await.0, 401, "a used code");
    let r = client()
        .get(
            w.gw()
                .url("/_gateway/login?app=wxmini&return_to=%2Fwxmini%2F"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "no web login for a WeChat mini-program");
}

/// Each code is an exchange with WeCom: a client looping made-up codes is cut off (429) as a
/// sign-in callback loop is, before the provider is asked, instead of spending the corp's and
/// the gateway address's API quota (it made one `jscode2session` call per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_codes_in_a_loop_are_cut_off_before_the_provider_is_asked() {
    let w = world().await;
    let api = "/cgi-bin/miniprogram/jscode2session";
    let mut answered = 0;
    loop {
        let asked = w.calls(api).await;
        let (status, body) = login(&w, "mini", &format!("made-up-{answered}")).await;
        if status == 429 {
            assert_eq!(body["error"], "too_many_requests", "{body}");
            assert_eq!(w.calls(api).await, asked, "a cut-off login asks nothing");
            break;
        }
        assert_eq!(status, 401, "{body}");
        answered += 1;
        assert!(answered < 1000, "never cut off");
    }
    assert!(answered >= 299, "cut off after {answered}");
    assert_eq!(w.calls(api).await, answered, "one call per code answered");
    // Counted apart from the browsers' sign-ins behind the same address: one still goes
    // through.
    let mut b = crate::common::browser::Browser::new(crate::common::browser::WXWORK_UA);
    w.login(&mut b, "crm", "/").await;
}
