//! `wecom-gateway demo`: the emulator, the demo CRM and the gateway in one process, so the whole
//! sidebar journey runs on a laptop with no WeCom account and no trusted domain.

use std::net::SocketAddr;

use crate::config::Config;

/// The helpers of the demo, running on their own runtime thread while pingora runs the gateway.
pub struct Helpers {
    pub emulator: SocketAddr,
    pub crm: Option<SocketAddr>,
}

/// Starts the emulator on `[emulator].listen` and the demo CRM on the address of the upstream
/// that the `/` route (or the first route) uses, when it is a loopback address.
pub fn start(config: &Config) -> Result<Helpers, String> {
    if !config.emulator.enabled {
        return Err("the demo needs [emulator] enabled = true in the config".into());
    }
    let crm_addr = config
        .routes
        .find(b"/")
        .ok()
        .flatten()
        .or_else(|| config.routes.routes.first())
        .and_then(|r| r.upstream.as_ref().map(|u| u.addr))
        .filter(|a| a.ip().is_loopback());
    start_helpers(config, crm_addr)
}

/// `run` with `[emulator] enabled = true`: the emulator in-process on `[emulator].listen`
/// (SPEC section 4), without the demo CRM; `None` when the config does not enable it.
pub fn start_emulator(config: &Config) -> Result<Option<Helpers>, String> {
    if !config.emulator.enabled {
        return Ok(None);
    }
    let helpers = start_helpers(config, None)?;
    tracing::info!(
        emulator = %helpers.emulator,
        "[emulator] enabled: the WeCom emulator serves in-process (for development only)"
    );
    Ok(Some(helpers))
}

fn start_helpers(config: &Config, crm_addr: Option<SocketAddr>) -> Result<Helpers, String> {
    let emulator_addr = config.emulator.listen;
    let assertion = config
        .session
        .as_ref()
        .and_then(|s| s.assertion_secret.as_ref())
        .map(|s| s.expose().to_owned());

    // The emulator sends each app's events to the gateway's callback URL, as WeCom's console
    // would be told to (SPEC section 18).
    let mut scenario = emulator::Scenario::demo();
    let callback_url = |name: &str| {
        format!(
            "{}{}/callback/{name}",
            config.server.public_url.as_str().trim_end_matches('/'),
            config.server.prefix
        )
    };
    // Service-provider apps (SPEC section 20): the suite's instruction URL and its data URL,
    // both the app's callback, as the provider's console would be told.
    let mut suites = Vec::new();
    for (name, app) in &config.apps {
        let (Some(cb), Some((suite_id, _))) = (&app.callback, crate::suite::suite_of(app)) else {
            continue;
        };
        for kind in [
            emulator::scenario::ReceiverKind::Instruction,
            emulator::scenario::ReceiverKind::Data,
        ] {
            scenario
                .callbacks
                .push(emulator::scenario::CallbackReceiver {
                    app: name.clone(),
                    url: callback_url(name),
                    token: cb.token.expose().to_owned(),
                    encoding_aes_key: cb.encoding_aes_key.expose().to_owned(),
                    kind,
                    corp_id: None,
                    agent_id: None,
                    suite_id: Some(suite_id.to_owned()),
                });
        }
        suites.push(suite_id.to_owned());
    }
    let gateway_listen = config.server.listen.clone();
    for (name, app) in &config.apps {
        let (Some(cb), crate::config::model::Credentials::Wecom { agent_id, .. }) =
            (&app.callback, &app.credentials)
        else {
            continue;
        };
        scenario
            .callbacks
            .push(emulator::scenario::CallbackReceiver {
                app: name.clone(),
                url: format!(
                    "{}{}/callback/{name}",
                    config.server.public_url.as_str().trim_end_matches('/'),
                    config.server.prefix
                ),
                token: cb.token.expose().to_owned(),
                encoding_aes_key: cb.encoding_aes_key.expose().to_owned(),
                kind: emulator::scenario::ReceiverKind::App,
                corp_id: None,
                agent_id: Some(*agent_id),
                suite_id: None,
            });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("wgw-demo".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("demo runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let emu = match emulator::Emulator::start(emulator_addr, scenario).await {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = tx.send(Err(format!("emulator on {emulator_addr}: {e}")));
                        return;
                    }
                };
                let crm = match crm_addr {
                    Some(addr) => match emulator::crm::start_crm(addr, assertion).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            let _ = tx.send(Err(format!("demo CRM on {addr}: {e}")));
                            return;
                        }
                    },
                    None => None,
                };
                let _ = tx.send(Ok(Helpers {
                    emulator: emu.addr(),
                    crm: crm.as_ref().map(|c| c.addr()),
                }));
                if !suites.is_empty() {
                    tokio::spawn(saas_setup(emu.addr(), gateway_listen, suites));
                }
                // Serve until the process ends.
                std::future::pending::<()>().await;
                drop((emu, crm));
            });
        })
        .map_err(|e| format!("demo thread: {e}"))?;
    rx.recv().map_err(|_| "demo helpers stopped".to_owned())?
}

/// The SaaS demo: once the gateway answers, WeCom pushes each suite's ticket and two corps
/// install the suite, as they would from the app market. The gateway exchanges their codes and
/// keeps the installs; their members can sign in at once.
async fn saas_setup(emulator: SocketAddr, gateway: String, suites: Vec<String>) {
    let http = reqwest::Client::new();
    let health = format!("http://{gateway}/_gateway/healthz");
    for _ in 0..600 {
        if http
            .get(&health)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let control = |path: &str, body: serde_json::Value| {
        let req = http
            .post(format!("http://{emulator}/_emulator/suites/{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            if let Err(e) = req.send().await {
                tracing::warn!(error = %e, "demo: the emulator did not take a SaaS step");
            }
        }
    };
    for suite in &suites {
        control("push-ticket", serde_json::json!({ "suite_id": suite })).await;
        for corp in SAAS_CORPS {
            control(
                "install",
                serde_json::json!({ "suite_id": suite, "corp_id": corp }),
            )
            .await;
        }
    }
}

/// The two corps of the demo scenario that install its suites.
const SAAS_CORPS: [&str; 2] = ["wwemucorp000000002", "wwemucorp000000003"];

/// Whether the config has a route at `location` behind a login (with access rules when
/// `ruled`): the banner offers only what the config serves.
fn login_route(config: &Config, location: &str, ruled: bool) -> bool {
    config
        .routes
        .routes
        .iter()
        .any(|r| r.location == location && r.login.is_some() && (!ruled || r.allow.is_some()))
}

/// What to open, printed once everything listens.
pub fn banner(config: &Config, helpers: &Helpers) -> String {
    let public = config.server.public_url.as_str().trim_end_matches('/');
    let emu = format!("http://{}", helpers.emulator);
    let mut out = String::new();
    out.push_str("\n  wecom-gateway demo\n  ─────────────────\n");
    if login_route(config, "/sidebar/", false) {
        out.push_str(&format!("  Open the CRM sidebar (a desktop browser gets the QR login page):\n    {public}/sidebar/#/customer/42\n\n"));
    }
    if login_route(config, "/reports/", true) {
        out.push_str(&format!(
            "  Reports (tag 经理 only: zhangsan yes, lisi 403):\n    {public}/reports/\n\n"
        ));
    }
    // The demo corp's own app (not a service provider's): its members, customers and events.
    let own_app = config.apps.values().any(|a| {
        matches!(
            a.credentials,
            crate::config::model::Credentials::Wecom { .. }
        )
    });
    let own_events = config.apps.values().any(|a| {
        a.callback.is_some()
            && matches!(
                a.credentials,
                crate::config::model::Credentials::Wecom { .. }
            )
    });
    if let Some(crm) = helpers.crm {
        out.push_str(&format!(
            "  Demo CRM (behind the gateway):   http://{crm}\n"
        ));
    }
    // The emulator has no page of its own at its root: its state is what there is to see.
    out.push_str(&format!(
        "  WeCom emulator (its state):      {emu}/_emulator/state\n"
    ));
    let wecom_app = config.apps.iter().find_map(|(name, a)| {
        matches!(
            a.credentials,
            crate::config::model::Credentials::Wecom { .. }
        )
        .then_some(name)
    });
    if let (Some(qyapi), Some(app)) = (&config.server.qyapi_listen, wecom_app) {
        out.push_str(&format!(
            "  qyapi endpoint (CRM back end):   http://{qyapi}/{app}/cgi-bin/user/get?userid=zhangsan\n"
        ));
    }
    if let Some(admin) = &config.server.admin_listen {
        out.push_str(&format!(
            "  Metrics:                         http://{admin}/metrics\n"
        ));
    }
    out.push_str("\n  Emulator controls:\n");
    if own_app {
        out.push_str(&format!("    switch member:    curl -X POST {emu}/_emulator/current-user -d '{{\"userid\":\"lisi\"}}' -H 'content-type: application/json'\n"));
        out.push_str(&format!("    switch customer:  curl -X POST {emu}/_emulator/current-contact -d '{{\"external_userid\":\"wmEmuCustomer002\",\"entry\":\"single_chat_tools\"}}' -H 'content-type: application/json'\n"));
    }
    out.push_str(&format!(
        "    expire tokens:    curl -X POST {emu}/_emulator/expire-tokens\n"
    ));
    out.push_str(&format!(
        "    calls made:       curl {emu}/_emulator/calls\n"
    ));
    if own_events {
        out.push_str(&format!("    send an event:    curl -X POST {emu}/_emulator/members/move -d '{{\"userid\":\"lisi\",\"department\":[3]}}' -H 'content-type: application/json'\n"));
        out.push_str("                      (WeCom's change_contact/update_user: verified, queued, forwarded; the demo CRM page lists it)\n");
    }
    let suite_apps: Vec<&String> = config
        .apps
        .iter()
        .filter(|(_, a)| crate::suite::suite_of(a).is_some())
        .map(|(n, _)| n)
        .collect();
    if !suite_apps.is_empty() {
        out.push_str("\n  SaaS (service-provider app, installed by two corps):\n");
        // The emulator's chat is the home corp's customer's: these members are in no chat.
        let no_chat = format!("curl -X POST {emu}/_emulator/current-contact -d '{{}}' -H 'content-type: application/json'");
        out.push_str(&format!("    sign in as 赵六 of 模拟客户甲:  curl -X POST {emu}/_emulator/current-user -d '{{\"userid\":\"zhaoliu\",\"corp_id\":\"{}\"}}' -H 'content-type: application/json' && {no_chat}\n", SAAS_CORPS[0]));
        out.push_str(&format!("    sign in as 钱七 of 模拟客户乙:  curl -X POST {emu}/_emulator/current-user -d '{{\"userid\":\"qianqi\",\"corp_id\":\"{}\"}}' -H 'content-type: application/json' && {no_chat}\n", SAAS_CORPS[1]));
        out.push_str(&format!(
            "    then open:                     {public}/app/\n"
        ));
        if let Some(q) = &config.server.qyapi_listen {
            out.push_str(&format!("    qyapi for one corp:            curl 'http://{q}/{}/{}/cgi-bin/user/get?userid=zhaoliu'\n", suite_apps[0], SAAS_CORPS[0]));
        }
        out.push_str(&format!("    the corp removes the app:      curl -X POST {emu}/_emulator/suites/cancel-auth -d '{{\"suite_id\":\"wwemusuite00000001\",\"corp_id\":\"{}\"}}' -H 'content-type: application/json'\n", SAAS_CORPS[0]));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The banner offers only what the config serves: the demo's sidebar, reports and events
    /// for `gateway.toml`; for `saas.toml` (a service provider's app, `/app/` alone) its own
    /// steps, not the sidebar's.
    #[test]
    fn the_banner_offers_only_what_the_config_serves() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let helpers = Helpers {
            emulator: "127.0.0.1:9100".parse().unwrap(),
            crm: None,
        };
        let demo = crate::config::load(&root.join("gateway.toml")).unwrap();
        let b = banner(&demo, &helpers);
        for want in [
            "/sidebar/#/customer/42",
            "/reports/",
            "send an event",
            "switch member",
        ] {
            assert!(b.contains(want), "{want}: {b}");
        }
        let saas = crate::config::load(&root.join("saas.toml")).unwrap();
        let b = banner(&saas, &helpers);
        for gone in ["/sidebar/", "/reports/", "send an event", "switch member"] {
            assert!(!b.contains(gone), "{gone}: {b}");
        }
        assert!(b.contains("/app/"), "{b}");
    }
}
