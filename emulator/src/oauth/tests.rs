use super::*;

fn params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

const CB: &str = "redirect_uri=http%3A%2F%2Fapp.test%2Fcb";

fn world_of(s: crate::Scenario) -> crate::EmulatorState {
    crate::EmulatorState::new(s)
}

#[test]
fn authorize_validation_table() {
    let state = world_of(crate::Scenario::default());
    let s = state.world();
    let wecom = "appid=wwemu0000000000001";
    let mp = "appid=wxemu000000000001";
    let state_129 = format!("state={}", "a".repeat(129));
    let state_128 = format!("state={}", "a".repeat(128));
    // (query, expected error key or "" for success)
    let cases: Vec<(String, &str)> = vec![
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&state=abc123"), ""),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base"), ""),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_privateinfo&agentid=1000002"), ""),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_privateinfo"), "agentid"),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&agentid=42"), "agentid"),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_userinfo"), "scope"),
        (format!("{mp}&{CB}&response_type=code&scope=snsapi_userinfo&state=x"), ""),
        (format!("{mp}&{CB}&response_type=code&scope=snsapi_privateinfo"), "scope"),
        (format!("appid=wwemusuite00000001&{CB}&response_type=code&scope=snsapi_privateinfo"), ""),
        (format!("appid=dkemusuite00000001&{CB}&response_type=code&scope=snsapi_base"), "appid"),
        (format!("appid=wwemucorp000000002&{CB}&response_type=code&scope=snsapi_base&agentid=1000002"), "agentid"),
        (format!("appid=wxother&{CB}&response_type=code&scope=snsapi_base"), "appid"),
        (format!("{CB}&response_type=code&scope=snsapi_base"), "appid"),
        (format!("{wecom}&response_type=code&scope=snsapi_base"), "redirect_uri"),
        (format!("{wecom}&redirect_uri=%2Fcb&response_type=code&scope=snsapi_base"), "redirect_uri"),
        (format!("{wecom}&redirect_uri=ftp%3A%2F%2Fapp.test%2F&response_type=code&scope=snsapi_base"), "redirect_uri"),
        (format!("{wecom}&redirect_uri=http%3A%2F%2Fapp.test%2Fcb%23%2Fhome&response_type=code&scope=snsapi_base"), "redirect_uri"),
        (format!("{wecom}&{CB}&response_type=token&scope=snsapi_base"), "response_type"),
        (format!("{wecom}&{CB}&scope=snsapi_base"), "response_type"),
        (format!("{wecom}&{CB}&response_type=code"), "scope"),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&{state_128}"), ""),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&{state_129}"), "state"),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&state=a-b"), "state"),
        (format!("{wecom}&{CB}&response_type=code&scope=snsapi_base&state=%E4%B8%AD"), "state"),
    ];
    for (query, want) in cases {
        let got = validate_authorize(&s, &params(&query))
            .err()
            .map(|e| e.key)
            .unwrap_or("");
        assert_eq!(got, want, "{query}");
    }
}

#[test]
fn redirect_domains_are_enforced() {
    let text = crate::Scenario::default_toml().replace(
        "allowed_ips = []",
        "allowed_ips = []\nredirect_domains = [\"crm.test\"]",
    );
    let state = world_of(crate::Scenario::from_toml(&text).unwrap());
    let s = state.world();
    let ok = "appid=wwemu0000000000001&redirect_uri=https%3A%2F%2Fcrm.test%2Fcb&response_type=code&scope=snsapi_base";
    assert!(validate_authorize(&s, &params(ok)).is_ok());
    let other = ok.replace("crm.test", "evil.test");
    assert_eq!(
        validate_authorize(&s, &params(&other)).unwrap_err().key,
        "redirect_uri"
    );
}

#[test]
fn qr_login_validation_table() {
    let state = world_of(crate::Scenario::default());
    let s = state.world();
    let base = "appid=wwemu0000000000001&agentid=1000002";
    let cases: Vec<(String, &str)> = vec![
        (format!("login_type=CorpApp&{base}&{CB}&state=s1"), ""),
        (format!("login_type=ServiceApp&{base}&{CB}"), "appid"),
        (
            format!("login_type=ServiceApp&appid=wwemusuite00000001&{CB}"),
            "",
        ),
        (
            format!("login_type=ServiceApp&appid=dkemusuite00000001&{CB}"),
            "appid",
        ),
        (format!("login_type=Other&{base}&{CB}"), "login_type"),
        (format!("{base}&{CB}"), "login_type"),
        (
            format!("login_type=CorpApp&appid=wwemu0000000000001&{CB}"),
            "agentid",
        ),
        (
            format!("login_type=CorpApp&appid=wxemu000000000001&agentid=1000002&{CB}"),
            "appid",
        ),
        (format!("login_type=CorpApp&{base}"), "redirect_uri"),
        (
            format!("login_type=CorpApp&{base}&{CB}&state=a%20b"),
            "state",
        ),
    ];
    for (query, want) in cases {
        let got = validate_qr_login(&s, &params(&query))
            .err()
            .map(|e| e.key)
            .unwrap_or("");
        assert_eq!(got, want, "{query}");
    }
}

#[test]
fn redirect_target_keeps_the_query() {
    let cases = [
        (
            "http://a.test/cb",
            Some("s"),
            "http://a.test/cb?code=C&state=s",
        ),
        (
            "http://a.test/cb?x=1",
            Some("s"),
            "http://a.test/cb?x=1&code=C&state=s",
        ),
        ("http://a.test/cb?", None, "http://a.test/cb?code=C&state="),
        (
            "http://a.test/cb?x=1&",
            Some("s"),
            "http://a.test/cb?x=1&code=C&state=s",
        ),
    ];
    for (uri, state, want) in cases {
        assert_eq!(redirect_target(uri, "C", state), want, "{uri}");
    }
}
