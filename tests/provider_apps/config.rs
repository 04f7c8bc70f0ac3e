//! `check` on suite apps (SPEC sections 20 and 21): installs are durable data, and they arrive
//! only as callbacks.

use std::process::Command;

use crate::common::{bin, TempDir};

const BASE: &str = "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n\n[upstreams.crm]\nurl = \"http://127.0.0.1:9000\"\n\n[session]\nsecret = \"0123456789abcdef0123456789abcdef-session\"\nassertion_secret = \"0123456789abcdef0123456789abcdef-assert\"\n";
const CALLBACK: &str = "callback = { token = \"SuiteToken123\", encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\", forward = \"crm\", forward_path = \"/wecom/suite\" }\n";

fn check(text: &str) -> (i32, String) {
    let dir = TempDir::new("suite-check");
    std::fs::write(dir.path().join("gateway.toml"), text).unwrap();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["check", "-c", "gateway.toml"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn suite(kind: &str, extra: &str) -> String {
    format!("[apps.saas]\nkind = \"{kind}\"\nsuite_id = \"ww0123456789abcdef\"\nsuite_secret = \"the-suite-secret\"\n{extra}")
}

#[test]
fn check_takes_suite_apps_and_refuses_what_would_lose_their_installs() {
    let cases: &[(&str, i32, &str)] = &[
        (&format!("{BASE}{}", suite("wecom_suite", CALLBACK)), 0, ""),
        (&format!("{BASE}{}", suite("wecom_custom", CALLBACK)), 0, ""),
        (
            &format!("{BASE}[store]\nbackend = \"memory\"\n{}", suite("wecom_suite", CALLBACK)),
            2,
            // At the backend's own line, not the app's.
            "gateway.toml:12:11: [store].backend: \"memory\" loses the installs of [apps.saas]",
        ),
        (
            &format!("{BASE}{}", suite("wecom_suite", "")),
            2,
            "[apps.saas].callback: required",
        ),
        (
            &format!("{BASE}{}", suite("wecom_suite", &format!("{CALLBACK}agent_id = 1000005\n"))),
            2,
            "[apps.saas].agent_id: not a key of kind = \"wecom_suite\"",
        ),
        (
            &format!("{BASE}{}", suite("wecom_suite", &format!("{CALLBACK}secret = \"x\"\n"))),
            2,
            "[apps.saas].secret: not a key of kind = \"wecom_suite\"",
        ),
        // A third-party app signs in again by its suite's OAuth; a 代开发 app's sign-in names
        // a corp, which a re-login from a page does not carry.
        (
            &format!("{BASE}{}", suite("wecom_suite", &format!("{CALLBACK}reauth_after = \"15m\"\n"))),
            0,
            "",
        ),
        (
            &format!("{BASE}{}", suite("wecom_custom", &format!("{CALLBACK}reauth_after = \"15m\"\n"))),
            2,
            "[apps.saas].reauth_after: not a key of kind = \"wecom_custom\"",
        ),
        (
            &format!("{BASE}[apps.crm]\nkind = \"wecom\"\ncorp_id = \"ww1\"\nagent_id = 1\nsecret = \"s\"\nsuite_id = \"x\"\n"),
            2,
            "[apps.crm].suite_id: not a key of kind = \"wecom\"",
        ),
    ];
    for (text, code, needle) in cases {
        let (got, out) = check(text);
        assert_eq!(got, *code, "{text}\n{out}");
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
        assert!(
            !out.contains("the-suite-secret"),
            "a secret in the output:\n{out}"
        );
    }
}
