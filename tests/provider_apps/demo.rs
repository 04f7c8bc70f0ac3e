//! `make demo-saas`: the repository's saas.toml (on free ports) with the embedded emulator: the
//! suite ticket is pushed and two corps install the app by themselves, and a member of each
//! signs in.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::browser::{login, Browser, WXWORK_UA};
use crate::common::{client, Gateway};

#[tokio::test]
async fn the_saas_demo_installs_two_corps_and_their_members_sign_in() {
    let (gw, emu, _) = tokio::task::spawn_blocking(|| Gateway::start_demo("saas.toml"))
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
