//! The authorize pages over HTTP: redirects with a single-use code, error pages, QR login.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn in_app_authorize_redirects_with_code_and_state() {
    let h = start().await;
    let loc = h
        .authorize(&format!(
            "appid={CORP}&redirect_uri={}&response_type=code&scope=snsapi_base&state=abc123&agentid={AGENT}",
            enc("http://crm.test/_gateway/oauth/callback?app=main")
        ))
        .await;
    let url = url::Url::parse(&loc).unwrap();
    assert_eq!(url.path(), "/_gateway/oauth/callback");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs[0],
        ("app".into(), "main".into()),
        "existing query kept first"
    );
    assert_eq!(pairs[1].0, "code");
    assert_eq!(pairs[2], ("state".into(), "abc123".into()));
}

#[tokio::test]
async fn bad_parameters_get_an_error_page_not_a_redirect() {
    let h = start().await;
    let cb = enc(CALLBACK);
    let cases = [
        (
            format!("appid=wxnope&redirect_uri={cb}&response_type=code&scope=snsapi_base"),
            "appid",
        ),
        (
            format!(
                "appid={CORP}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state={}",
                "a".repeat(129)
            ),
            "state",
        ),
        (
            format!(
                "appid={CORP}&redirect_uri={cb}&response_type=code&scope=snsapi_base&state=a_b"
            ),
            "state",
        ),
        (
            format!(
                "appid={CORP}&redirect_uri={}&response_type=code&scope=snsapi_base",
                enc("http://crm.test/#/x")
            ),
            "redirect_uri",
        ),
        (
            format!("appid={CORP}&redirect_uri={cb}&scope=snsapi_base"),
            "response_type",
        ),
        (
            format!("appid={MP}&redirect_uri={cb}&response_type=code&scope=snsapi_privateinfo"),
            "scope",
        ),
    ];
    for (query, key) in cases {
        let r = h
            .http
            .get(h.url(&format!("/connect/oauth2/authorize?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{query}");
        assert!(r.headers().get("location").is_none(), "{query}: redirected");
        assert_eq!(r.headers()["x-emulator-error"], key, "{query}");
        assert!(r.text().await.unwrap().contains("出错了"));
    }
}

#[tokio::test]
async fn qr_login_lists_members_and_issues_a_code_for_the_chosen_one() {
    let text = emulator::Scenario::default_toml().to_string()
        + "\n[[members]]\nuserid = \"lisi\"\nname = \"李四\"\n";
    let h = start_with(emulator::Scenario::from_toml(&text).unwrap()).await;
    let query = format!(
        "login_type=CorpApp&appid={CORP}&agentid={AGENT}&redirect_uri={}&state=qr1",
        enc(CALLBACK)
    );
    let r = h
        .http
        .get(h.url(&format!("/wwlogin/sso/login?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("张三") && page.contains("李四"), "{page}");
    let start = page.find("/wwlogin/sso/choose?").unwrap();
    let href = &page[start..];
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    let href = href.replace("userid=zhangsan", "userid=lisi");
    let r = h.http.get(h.url(&href)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with("http://crm.test/cb?code=") && loc.ends_with("&state=qr1"),
        "{loc}"
    );
    let t = h.agent_token().await;
    let v = h
        .get(&format!(
            "/cgi-bin/auth/getuserinfo?access_token={t}&code={}",
            code_of(&loc)
        ))
        .await;
    assert_eq!(v["userid"], "lisi");

    let r = h
        .http
        .get(h.url(&format!(
            "/wwlogin/sso/login?login_type=CorpApp&appid={CORP}&redirect_uri=x"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-emulator-error"], "agentid");
}

#[tokio::test]
async fn wechat_authorize_uses_the_current_wechat_user() {
    let text = emulator::Scenario::default_toml().to_string()
        + "\n[[wechat_users]]\nopenid = \"oSnap\"\nnickname = \"x\"\nis_snapshotuser = true\n";
    let h = start_with(emulator::Scenario::from_toml(&text).unwrap()).await;
    h.control("current-user", json!({"openid": "oSnap"})).await;
    let code = h.wechat_code("snsapi_base").await;
    let v = h
        .get(&format!("/sns/oauth2/access_token?appid={MP}&secret={MP_SECRET}&code={code}&grant_type=authorization_code"))
        .await;
    assert_eq!(v["openid"], "oSnap");
    assert_eq!(v["is_snapshotuser"], 1);
    assert!(v.get("unionid").is_none(), "no unionid when unbound");
}
