//! Signals (SPEC section 14): SIGHUP reloads, SIGTERM drains in-flight requests and exits 0.

mod common;

use std::time::Duration;

use common::upstream::{self, Echo};
use common::{client, server_table, Gateway};

fn config(upstream_url: &str, location: &str) -> String {
    format!(
        "{}\n[upstreams.crm]\nurl = \"{upstream_url}\"\n[[routes]]\nlocation = \"{location}\"\nupstream = \"crm\"\n",
        server_table()
    )
}

#[tokio::test]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_when_the_new_is_bad() {
    let a = upstream::echo("a");
    let b = upstream::echo("b");
    let gw = Gateway::start_config(&config(&a.url(), "/"), &[], &[]);
    let c = client();
    let who = |path: &'static str| {
        let c = c.clone();
        let url = gw.url(path);
        async move {
            c.get(url)
                .send()
                .await
                .unwrap()
                .json::<Echo>()
                .await
                .unwrap()
                .name
        }
    };
    assert_eq!(who("/x").await, "a");

    std::fs::write(&gw.config_path, config(&b.url(), "/")).unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    assert_eq!(who("/x").await, "b");

    std::fs::write(&gw.config_path, "[server]\nlisten = 5\n").unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config refused");
    assert!(
        gw.log().contains("gateway.toml:2:10") && gw.log().contains("[server].listen"),
        "the refusal names file:line and the setting, unmasked:\n{}",
        gw.log()
    );
    assert_eq!(who("/x").await, "b", "the running config stays");

    // A secret named by an environment variable that is not set: the log says which, though
    // its key is a secret's (the redaction of values must not swallow the reason).
    let missing = format!(
        "{}\n[session]\nsecret = \"${{WGW_TEST_NOT_SET_ANYWHERE}}\"\n",
        config(&a.url(), "/")
    );
    std::fs::write(&gw.config_path, missing).unwrap();
    gw.signal(1);
    gw.wait_log("WGW_TEST_NOT_SET_ANYWHERE");
    assert!(gw.log().contains("is not set"), "{}", gw.log());
    assert_eq!(who("/x").await, "b", "the running config stays");

    // `[store]` is opened once: a reload that changes it says so.
    let moved = format!(
        "{}\n[store]\nbackend = \"memory\"\nkey_prefix = \"elsewhere:\"\n",
        config(&b.url(), "/")
    );
    std::fs::write(&gw.config_path, moved).unwrap();
    gw.signal(1);
    gw.wait_log("[store] changes only on restart");
}

/// The store is the one opened at start, whatever a reload's `[store]` says: a reload cannot
/// bring apps whose installs WeCom sends once onto a `memory` store (they would be lost at the
/// restart the warning asks for; `check` refuses such a file), and a reload back to the store
/// that is open is no change to warn of.
#[tokio::test]
async fn a_reload_is_judged_against_the_store_opened_at_start() {
    let a = upstream::echo("a");
    let memory = "\n[store]\nbackend = \"memory\"\n";
    let gw = Gateway::start_config(&format!("{}{memory}", config(&a.url(), "/")), &[], &[]);
    let suite = "\n[session]\nsecret = \"0123456789abcdef0123456789abcdef-session\"\n\
        assertion_secret = \"0123456789abcdef0123456789abcdef-assert\"\n\
        [apps.saas]\nkind = \"wecom_suite\"\nsuite_id = \"ww0123456789abcdef\"\n\
        suite_secret = \"the-suite-secret\"\ncallback = { token = \"SuiteToken123\", \
        encoding_aes_key = \"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG\", forward = \"crm\", \
        forward_path = \"/wecom/suite\" }\n";
    // The file names a durable store (the default): fine for `check`, not for this process.
    std::fs::write(&gw.config_path, format!("{}{suite}", config(&a.url(), "/"))).unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config refused");
    assert!(
        gw.log()
            .contains("[apps.saas] keeps installs WeCom sends once")
            && gw.log().contains("restart"),
        "{}",
        gw.log()
    );
    assert!(
        !gw.log().contains("reload: new config applied"),
        "{}",
        gw.log()
    );
    // Back to the store that is open, with another change: applied, nothing to warn of.
    std::fs::write(
        &gw.config_path,
        format!("{}{memory}", config(&a.url(), "/x/")),
    )
    .unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    assert!(
        !gw.log().contains("[store] changes only on restart"),
        "{}",
        gw.log()
    );
}

/// The engine's compression module is set up only for a config that compresses something
/// (its modules are made once): a reload that turns `gzip` on says a restart is needed, and
/// answers stay as they were until then; one started with `gzip` compresses.
#[tokio::test]
async fn gzip_turned_on_by_a_reload_says_it_needs_a_restart() {
    let up = upstream::echo("crm");
    let dir = common::TempDir::new("reload-gzip");
    let conf = dir.path().join("crm.conf");
    let nginx = |gzip: &str| {
        std::fs::write(
            &conf,
            format!(
                "{gzip}gzip_types application/json;\nlocation / {{ proxy_pass http://crm; }}\n"
            ),
        )
        .unwrap();
        format!(
            "{}\n[upstreams.crm]\nurl = \"{}\"\n[nginx]\ninclude = [\"{}\"]\n",
            server_table(),
            up.url(),
            conf.display()
        )
    };
    let gzipped = |gw: &Gateway| {
        let c = reqwest::Client::builder().no_gzip().build().unwrap();
        let url = gw.url("/x");
        async move {
            let r = c
                .get(url)
                .header("Accept-Encoding", "gzip")
                .send()
                .await
                .unwrap();
            r.headers().contains_key("content-encoding")
        }
    };
    let gw = Gateway::start_config(&nginx(""), &[], &[]);
    assert!(!gzipped(&gw).await);
    std::fs::write(&gw.config_path, nginx("gzip on;\n")).unwrap();
    gw.signal(1);
    gw.wait_log("reload: new config applied");
    assert!(
        gw.log().contains("reload: gzip is on in the new config"),
        "{}",
        gw.log()
    );
    assert!(!gzipped(&gw).await);

    let started_with = Gateway::start_config(&nginx("gzip on;\n"), &[], &[]);
    assert!(gzipped(&started_with).await, "{}", started_with.log());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    graceful_stop_on(15).await;
}

/// SIGQUIT is nginx's graceful stop: the same drain (it ended the process at once, a core
/// dump's default, dropping the request in flight and the log's last lines).
#[tokio::test]
async fn sigquit_stops_as_gracefully_as_sigterm() {
    graceful_stop_on(3).await;
}

/// A second stop signal while draining (Ctrl-C again) stops at once, the log flushed.
#[tokio::test]
async fn a_second_stop_signal_stops_at_once() {
    let up = upstream::echo("crm");
    let mut gw = Gateway::start_config(&config(&up.url(), "/"), &[], &[]);
    let slow = tokio::spawn(client().get(gw.url("/slow?ms=8000")).send());
    in_flight(&gw).await;
    gw.signal(2);
    gw.wait_log("SIGINT: finishing in-flight requests");
    let asked = std::time::Instant::now();
    gw.signal(2);
    let (exit, gw) =
        tokio::task::spawn_blocking(move || (gw.wait_exit(Duration::from_secs(15)), gw))
            .await
            .unwrap();
    assert!(exit.is_some(), "did not exit:\n{}", gw.log());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "waited for the drain"
    );
    assert!(
        gw.log().contains("a second signal, stopping now"),
        "{}",
        gw.log()
    );
    assert!(
        slow.await.unwrap().is_err(),
        "the request in flight was cut"
    );
}

/// Until the public listener counts a request in flight.
async fn in_flight(gw: &Gateway) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = gw.metrics().await;
        if m.contains("wgw_requests_in_flight 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request never in flight:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn graceful_stop_on(sig: i32) {
    let up = upstream::echo("crm");
    let mut gw = Gateway::start_config(&config(&up.url(), "/"), &[], &[]);
    let slow = tokio::spawn(client().get(gw.url("/slow?ms=1500")).send());
    // Until the request is in flight (the gauge counts it), then the stop.
    in_flight(&gw).await;
    gw.signal(sig);
    let resp = slow.await.unwrap().expect("in-flight request completes");
    assert_eq!(resp.status(), 200);
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.wait_exit(Duration::from_secs(15));
        (s, gw)
    })
    .await
    .unwrap();
    let (exit, gw) = status;
    let exit = exit.unwrap_or_else(|| panic!("did not exit after SIGTERM:\n{}", gw.log()));
    assert_eq!(exit.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", gw.port)).is_err(),
        "no longer accepting"
    );
}

/// A reload with another `[session] secret` (or `cookie_name`) ends every session browsers
/// hold: the log says so, since nothing else would tell why everyone signs in again.
#[tokio::test]
async fn a_reload_that_ends_every_session_says_so() {
    let a = upstream::echo("a");
    let with = |secret: &str, name: &str| {
        format!(
            "{}\n[session]\nsecret = \"{secret}\"\ncookie_name = \"{name}\"\n",
            config(&a.url(), "/")
        )
    };
    let gw = Gateway::start_config(
        &with("first-secret-0123456789abcdef0123", "wgw_session"),
        &[],
        &[],
    );
    for (i, (secret, name, said)) in [
        ("first-secret-0123456789abcdef0123", "wgw_session", None),
        (
            "second-secret-0123456789abcdef012",
            "wgw_session",
            Some("[session] secret changed"),
        ),
        (
            "second-secret-0123456789abcdef012",
            "wgw_s",
            Some("[session] cookie_name changed"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&gw.config_path, with(secret, name)).unwrap();
        gw.signal(1);
        gw.wait_log_count("reload: new config applied", i + 1);
        let log = gw.log();
        let told = |w: &str| log.matches(w).count();
        match said {
            None => assert_eq!(told("every session sealed"), 0, "{log}"),
            Some(w) => assert_eq!(told(w), 1, "{log}"),
        }
    }
    assert!(
        !gw.log().contains("second-secret"),
        "the secret is not told"
    );
}
