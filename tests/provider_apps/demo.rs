//! `make demo-saas`: the repository's saas.toml (on free ports) with the embedded emulator: the
//! suite ticket is pushed and two corps install the app by themselves, and a member of each
//! signs in.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::browser::{login, Browser, WXWORK_UA};
use crate::common::{client, free_port, Gateway};

#[tokio::test]
async fn the_saas_demo_installs_two_corps_and_their_members_sign_in() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/saas.toml")).unwrap();
    // The gateway's listeners on port 0 (reported); the emulator and the demo CRM on free
    // ports, since the apps and the upstream name them.
    let (emu, crm) = (free_port(), free_port());
    let mut text = text;
    for (from, to) in [(8080, 0), (9090, 0), (8081, 0), (9100, emu), (9000, crm)] {
        text = text.replace(&format!("127.0.0.1:{from}"), &format!("127.0.0.1:{to}"));
    }
    let gw = tokio::task::spawn_blocking(move || Gateway::start_command("demo", &text, &[], &[]))
        .await
        .unwrap();
    let emu_url = format!("http://127.0.0.1:{emu}");
    let qyapi = gw.qyapi_port.unwrap();
    // Both corps installed: their qyapi calls answer.
    for (corp, userid) in [
        ("wwemucorp000000002", "zhaoliu"),
        ("wwemucorp000000003", "qianqi"),
    ] {
        let url = format!("http://127.0.0.1:{qyapi}/saas/{corp}/cgi-bin/user/get?userid={userid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v: serde_json::Value = match client().get(&url).send().await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            if v["errcode"] == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{corp} never installed: {v}\n{}",
                gw.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let r = client()
            .post(format!("{emu_url}/_emulator/current-user"))
            .json(&json!({"userid": userid, "corp_id": corp}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let mut b = Browser::new(WXWORK_UA);
        login(&mut b, &gw, &emu_url, "saas", "/app/").await;
        let page = b.get(&gw.url("/app/")).await.text().await.unwrap();
        assert!(page.contains(corp) && page.contains(userid), "{page}");
    }
}
