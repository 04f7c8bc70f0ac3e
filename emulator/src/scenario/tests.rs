use super::*;

#[test]
fn default_scenario_is_the_spec_example() {
    let s = Scenario::default();
    assert_eq!(s.corp.corp_id, "wwemu0000000000001");
    assert_eq!(s.agents[0].agent_id, 1000002);
    assert_eq!(s.settings.token_ttl, Duration::from_secs(7200));
    assert_eq!(s.settings.wechat_token_overlap, Duration::from_secs(300));
    assert_eq!(
        s.external_contacts[0].unionid.as_deref(),
        Some("oEmuUnion001")
    );
    assert!(Scenario::default_toml().contains("# 1 WeChat user, 2 WeCom user"));
}

#[test]
fn default_scenario_has_a_three_level_tree_a_tag_a_mini_program_and_a_provider() {
    let s = Scenario::default();
    let home = s.home();
    let path: Vec<u64> = home.subtree(1).iter().map(|d| d.id).collect();
    assert_eq!(path, [1, 2, 3]);
    assert_eq!(s.member("zhangsan").unwrap().department, [3]);
    assert_eq!(home.tag(1).unwrap().users, ["zhangsan"]);
    assert!(s.mini_user("oEmuMiniOpenId001").is_some());
    assert_eq!(s.suites.len(), 2);
    assert!(s.suites.iter().any(|x| x.is_custom()) && s.suites.iter().any(|x| !x.is_custom()));
    let corps = s.all_corps();
    assert_eq!(corps.len(), 3);
    assert!(
        corps[1].member("zhangsan").is_some(),
        "a userid repeated across corps"
    );
    assert_eq!(
        corps[2].departments[0].id, 1,
        "every corp has its root department"
    );
}

#[test]
fn provider_scenarios_are_checked() {
    let base = Scenario::default_toml();
    let cases = [
        ("suite agent clashing with a corp agent", base.replace("agent_id = 1000005", "agent_id = 1000002")),
        ("suites without a provider", base.replace("[provider]\ncorp_id = \"wwemuprovider00001\"\n", "")),
        ("a corp twice", base.replace("wwemucorp000000003", "wwemucorp000000002")),
        ("a corp without members", base.replace("[[corps.members]]\nuserid = \"qianqi\"\nname = \"钱七\"\n", "")),
        ("a receiver with a bad key", format!("{base}\n[[callbacks]]\napp = \"x\"\nurl = \"http://127.0.0.1:1/\"\ntoken = \"t\"\nencoding_aes_key = \"short\"\n")),
        ("an instruction receiver of no suite", format!("{base}\n[[callbacks]]\napp = \"x\"\nurl = \"http://127.0.0.1:1/\"\ntoken = \"t\"\nencoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\nkind = \"instruction\"\nsuite_id = \"wwnope\"\n")),
    ];
    for (name, text) in cases {
        assert_ne!(text, base, "{name}: fixture did not apply");
        assert!(Scenario::from_toml(&text).is_err(), "{name}: accepted");
    }
}

#[test]
fn demo_scenario_extends_the_default_with_a_second_member_and_customer() {
    let d = Scenario::demo();
    let base = Scenario::default();
    assert_eq!(d.corp.corp_id, base.corp.corp_id);
    assert_eq!(d.agents[0].secret, base.agents[0].secret);
    assert!(d.member("zhangsan").is_some() && d.member("lisi").is_some());
    let second = d.external_contact("wmEmuCustomer002").unwrap();
    assert!(second.follow_user.iter().any(|u| u == "zhangsan"));
}

#[test]
fn rejects_bad_scenarios() {
    let base = Scenario::default_toml();
    let cases: &[(&str, &str)] = &[
        ("unknown key", "[settings]\nbogus = 1\n"),
        ("bad duration", "[settings]\ntoken_ttl = \"soon\"\n"),
        ("bad ip", "[settings]\nallowed_ips = [\"nope\"]\n"),
    ];
    for (name, settings) in cases {
        let text = base.replacen(
            "[settings]\ntoken_ttl = \"7200s\"            # expires_in of tokens and tickets\ncode_ttl = \"300s\"\ngettoken_per_minute = 600      # per (corp, secret); beyond it 45009\nallowed_ips = []               # empty = any; else others get 60020\n",
            settings,
            1,
        );
        assert_ne!(text, base, "{name}: fixture did not apply");
        assert!(Scenario::from_toml(&text).is_err(), "{name}: accepted");
    }
    let stranger = base.replace("follow_user = [\"zhangsan\"]", "follow_user = [\"nobody\"]");
    assert!(
        Scenario::from_toml(&stranger).is_err(),
        "follow_user of a non-member accepted"
    );
}

#[test]
fn allowed_ips_take_addresses_and_networks() {
    let text = Scenario::default_toml().replace(
        "allowed_ips = []",
        "allowed_ips = [\"10.0.0.0/8\", \"127.0.0.1\"]",
    );
    let s = Scenario::from_toml(&text).unwrap();
    assert!(s.ip_allowed("10.1.2.3".parse().unwrap()));
    assert!(s.ip_allowed("127.0.0.1".parse().unwrap()));
    assert!(s.ip_allowed("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!s.ip_allowed("127.0.0.2".parse().unwrap()));
}
