//! Mini-program logins (issue 19): `wx.qy.login` -> `cgi-bin/miniprogram/jscode2session` with
//! the app's token, `wx.login` -> `sns/jscode2session` with `[wechat_mini]`'s credentials;
//! single-use, short-lived codes that are not OAuth codes.

mod common;

use common::*;
use serde_json::json;

async fn mini_code(h: &Harness, body: serde_json::Value) -> String {
    h.control("miniprogram/code", body).await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn wecom_mini_program_code_gives_corp_and_member_once() {
    let h = start().await;
    let t = h.agent_token().await;
    let code = mini_code(&h, json!({"userid": "zhangsan", "agentid": AGENT})).await;
    let path = |c: &str| {
        format!("/cgi-bin/miniprogram/jscode2session?access_token={t}&js_code={c}&grant_type=authorization_code")
    };
    let v = h.get(&path(&code)).await;
    assert_eq!(v["errcode"], 0, "{v}");
    assert_eq!(v["corpid"], CORP);
    assert_eq!(v["userid"], "zhangsan");
    assert!(v["session_key"].as_str().is_some_and(|k| !k.is_empty()));
    assert_err(&h.get(&path(&code)).await, 40029, "js_code reuse");
}

#[tokio::test]
async fn wecom_jscode2session_refusals() {
    let h = start().await;
    let t = h.agent_token().await;
    let contact = h.contact_token().await;
    let oauth = h.control("codes", json!({"userid": "zhangsan"})).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let expired = mini_code(&h, json!({"userid": "zhangsan"})).await;
    h.advance("301s").await; // past code_ttl; tokens live 7200 s
    let cases = [
        (
            format!("access_token={t}&js_code={oauth}&grant_type=authorization_code"),
            40029,
            "an OAuth code is not a mini-program code",
        ),
        (
            format!("access_token={t}&js_code={expired}&grant_type=authorization_code"),
            40029,
            "expired code",
        ),
        (
            format!("access_token={t}&js_code=nope&grant_type=authorization_code"),
            40029,
            "unknown code",
        ),
        (
            format!("access_token={t}&grant_type=authorization_code"),
            41008,
            "no code",
        ),
        (
            format!("access_token={t}&js_code=x"),
            40058,
            "no grant_type",
        ),
        (
            "access_token=nope&js_code=x&grant_type=authorization_code".to_string(),
            40014,
            "unknown token",
        ),
        (
            format!("access_token={contact}&js_code=x&grant_type=authorization_code"),
            48002,
            "the contact secret's token",
        ),
    ];
    for (query, want, what) in cases {
        assert_err(
            &h.get(&format!("/cgi-bin/miniprogram/jscode2session?{query}"))
                .await,
            want,
            what,
        );
    }
}

#[tokio::test]
async fn a_wecom_mini_program_code_is_bound_to_its_app_and_corp() {
    let h = start().await;
    let t = h.agent_token().await;
    let code = mini_code(&h, json!({"userid": "zhaoliu", "corp_id": CORP_B})).await;
    let v = h
        .get(&format!("/cgi-bin/miniprogram/jscode2session?access_token={t}&js_code={code}&grant_type=authorization_code"))
        .await;
    assert_err(&v, 40029, "corp B's member with corp A's token");
    assert_eq!(
        h.control_status(
            "miniprogram/code",
            json!({"userid": "zhangsan", "agentid": 42})
        )
        .await,
        404,
        "an agent the corp does not have"
    );
}

#[tokio::test]
async fn wechat_mini_program_code_gives_openid_and_unionid_once() {
    let h = start().await;
    let code = mini_code(&h, json!({"openid": "oEmuMiniOpenId001"})).await;
    let path = format!("/sns/jscode2session?appid={MINI}&secret={MINI_SECRET}&js_code={code}&grant_type=authorization_code");
    let v = h.get(&path).await;
    assert!(
        v.get("errcode").is_none(),
        "WeChat successes carry no errcode: {v}"
    );
    assert_eq!(
        v["openid"], "oEmuMiniOpenId001",
        "the mini-program's own openid"
    );
    assert_eq!(
        v["unionid"], "oEmuUnion001",
        "the unionid shared with the Official Account"
    );
    assert!(v["session_key"].is_string());
    assert_err(&h.get(&path).await, 40163, "js_code reuse");
}

#[tokio::test]
async fn wechat_jscode2session_refusals() {
    let h = start().await;
    let code = mini_code(&h, json!({"openid": "oEmuMiniOpenId001"})).await;
    let oa_code = h.control("codes", json!({"openid": "oEmuOpenId001"})).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (
            format!(
                "appid=wxnope&secret={MINI_SECRET}&js_code={code}&grant_type=authorization_code"
            ),
            40013,
            "unknown appid",
        ),
        (
            format!("appid={MP}&secret={MP_SECRET}&js_code={code}&grant_type=authorization_code"),
            40013,
            "the Official Account is not the mini-program",
        ),
        (
            format!("appid={MINI}&secret=wrong&js_code={code}&grant_type=authorization_code"),
            40125,
            "wrong secret",
        ),
        (
            format!(
                "appid={MINI}&secret={MINI_SECRET}&js_code={oa_code}&grant_type=authorization_code"
            ),
            40029,
            "an Official Account OAuth code",
        ),
        (
            format!("appid={MINI}&secret={MINI_SECRET}&js_code=nope&grant_type=authorization_code"),
            40029,
            "unknown code",
        ),
        (
            format!("appid={MINI}&secret={MINI_SECRET}&grant_type=authorization_code"),
            41008,
            "no code",
        ),
        (
            format!("appid={MINI}&secret={MINI_SECRET}&js_code={code}"),
            40002,
            "no grant_type",
        ),
    ];
    for (query, want, what) in cases {
        assert_err(
            &h.get(&format!("/sns/jscode2session?{query}")).await,
            want,
            what,
        );
    }
    // None of the refusals consumed the code.
    let ok = h
        .get(&format!("/sns/jscode2session?appid={MINI}&secret={MINI_SECRET}&js_code={code}&grant_type=authorization_code"))
        .await;
    assert_eq!(ok["openid"], "oEmuMiniOpenId001");
    let late = mini_code(&h, json!({"openid": "oEmuMiniOpenId001"})).await;
    h.advance("301s").await;
    assert_err(
        &h.get(&format!("/sns/jscode2session?appid={MINI}&secret={MINI_SECRET}&js_code={late}&grant_type=authorization_code")).await,
        40029,
        "expired after code_ttl",
    );
    assert_eq!(
        h.control_status("miniprogram/code", json!({"openid": "oEmuOpenId001"}))
            .await,
        404,
        "the Official Account openid is not a mini-program user"
    );
}
