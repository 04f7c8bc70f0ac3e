//! `check` on access rules: what it refuses (with file:line and the key path) and how the
//! route table prints them.

use crate::config::load_str;

const HEAD: &str = "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://127.0.0.1:1\"\n\
    [session]\nsecret = \"0123456789abcdef0123456789abcdef\"\n{session}\n\
    [apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\n{app}\n\
    [apps.mp]\nkind = \"wechat_mp\"\napp_id = \"wx1\"\nsecret = \"s\"\n\
    [upstreams.crm]\nurl = \"http://127.0.0.1:9\"\n";

fn load(session: &str, app: &str, route: &str) -> Result<String, String> {
    let text = format!(
        "{}[[routes]]\nlocation = \"/reports/\"\nupstream = \"crm\"\n{route}\n",
        HEAD.replace("{session}", session).replace("{app}", app)
    );
    load_str("gateway.toml", &text, std::path::Path::new("."))
        .map(|c| c.describe_routes())
        .map_err(|e| e.to_string())
}

#[test]
fn allow_is_checked_and_printed() {
    let ok: &[(&str, &str)] = &[
        (
            "login = \"crm\"\nallow = { departments = [2], tags = [7], users = [\"zhangsan\"] }",
            "allow: departments=[2] tags=[7] users=[zhangsan]",
        ),
        ("login = \"crm\"\nallow = { tags = [1] }", "allow: tags=[1]"),
    ];
    for (route, want) in ok {
        let table = load("", "", route).unwrap_or_else(|e| panic!("{route}: {e}"));
        assert!(table.contains(want), "{route}:\n{table}");
    }
    let refused: &[(&str, &str)] = &[
        (
            "login = \"crm\"\nallow = { departments = [0] }",
            "gateway.toml:23:26: [[routes]][1].allow.departments[1]: '0' is not a positive",
        ),
        (
            "login = \"crm\"\nallow = { tags = [3, -7] }",
            "[[routes]][1].allow.tags[2]: '-7' is not a positive integer id",
        ),
        (
            "login = \"crm\"\nallow = { users = [\"张三\"] }",
            "[[routes]][1].allow.users[1]: '张三' is not a plain userid",
        ),
        (
            "login = \"crm\"\nallow = { users = [\"a b\"] }",
            "is not a plain userid",
        ),
        (
            "login = \"crm\"\nallow = { }",
            "names no department, tag or user",
        ),
        (
            "login = \"crm\"\nallow = { groups = [1] }",
            "unknown field `groups`",
        ),
        (
            "allow = { users = [\"zhangsan\"] }",
            "[[routes]][1].allow: needs `login`",
        ),
        (
            "login = \"mp\"\nallow = { users = [\"zhangsan\"] }",
            "[[routes]][1].allow: needs `login` naming a kind = \"wecom\" app",
        ),
    ];
    for (route, want) in refused {
        let e = load("", "", route).expect_err(route);
        assert!(e.contains(want), "{route}: {e}");
    }
}

#[test]
fn policy_ttl_and_reauth_after_are_durations_where_they_belong() {
    let route = "login = \"crm\"";
    assert!(load("policy_ttl = \"10m\"", "reauth_after = \"15m\"", route).is_ok());
    let refused: &[(&str, &str, &str)] = &[
        ("policy_ttl = \"0s\"", "", "[session].policy_ttl"),
        (
            "policy_ttl = \"2d\"",
            "",
            "[session].policy_ttl: expected between",
        ),
        ("policy_ttl = \"soon\"", "", "is not a duration"),
        ("", "reauth_after = \"x\"", "[apps.crm].reauth_after"),
    ];
    for (session, app, want) in refused {
        let e = load(session, app, route).expect_err(want);
        assert!(e.contains(want), "{session} {app}: {e}");
    }
    // An Official Account has no silent in-app sign-in.
    let text = format!(
        "{}[apps.mp2]\nkind = \"wechat_mp\"\napp_id = \"wx2\"\nsecret = \"s\"\nreauth_after = \"1m\"\n",
        HEAD.replace("{session}", "").replace("{app}", "")
    );
    let e = load_str("gateway.toml", &text, std::path::Path::new("."))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("[apps.mp2].reauth_after: not a key of kind = \"wechat_mp\""),
        "{e}"
    );
}
