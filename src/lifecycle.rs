//! Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads the config (SPEC section 14),
//! SIGUSR1 reopens the access log files an nginx configuration names (nginx's `reopen`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::model::{StoreBackend, StoreSettings};
use crate::config::{self, Config};
use crate::listeners::Ports;

/// How long in-flight requests may take to finish once a stop is asked for.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// SIGTERM and SIGINT both mean "stop accepting, finish what is in flight, exit 0".
///
/// pingora's graceful terminate stops the listeners but then sleeps a fixed grace period; a
/// watcher thread ends the process as soon as nothing is in flight instead, so a stop takes as
/// long as the slowest request, not always the whole limit.
pub struct StopSignals;

#[async_trait]
impl ShutdownSignalWatch for StopSignals {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        // nginx's graceful stop: without a handler it would end the process at once (a core
        // dump's default), dropping requests in flight and the log's last lines.
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight requests"),
            _ = int.recv() => tracing::info!("SIGINT: finishing in-flight requests"),
            _ = quit.recv() => tracing::info!("SIGQUIT: finishing in-flight requests"),
        }
        // A second stop signal while draining (Ctrl-C again): stop now, the log flushed.
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = quit.recv() => {}
            }
            let left = in_flight();
            tracing::warn!(left, "stop: a second signal, stopping now");
            crate::logging::flush_now();
            remove_left_behind();
            std::process::exit(0);
        });
        let inflight = in_flight;
        std::thread::spawn(move || {
            let deadline = Instant::now() + DRAIN_LIMIT;
            // An install's exchange may take longer than a request: WeCom spent its code, and
            // only its answer, kept, saves the install.
            let exchanges = Instant::now()
                + crate::callback::instruction::EXCHANGE_PATIENCE
                + Duration::from_secs(5);
            let exchanging = || crate::callback::instruction::exchanges_in_flight() > 0;
            // Give the listeners a moment to stop accepting before the count is trusted.
            std::thread::sleep(Duration::from_millis(50));
            while (inflight() > 0 && Instant::now() < deadline)
                || (exchanging() && Instant::now() < exchanges)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            let left = inflight();
            if left > 0 {
                tracing::warn!(
                    left,
                    "stop: drain limit reached with requests still in flight"
                );
            }
            tracing::info!("stopped");
            crate::logging::flush();
            remove_left_behind();
            std::process::exit(0);
        });
        ShutdownSignal::GracefulTerminate
    }
}

/// What a stop waits for: the public listener's requests, the qyapi listener's calls, and the
/// installs whose AuthCode WeCom may have spent and whose permanent code is not kept yet (an
/// install lost for good if the process ended then).
fn in_flight() -> i64 {
    crate::metrics::IN_FLIGHT.get()
        + crate::metrics::QYAPI_IN_FLIGHT.get()
        + crate::callback::instruction::exchanges_in_flight() as i64
}

/// Directories this run made for itself (`demo`'s built-in configuration), removed when it
/// stops: the stop ends the process without returning to `main`.
static LEFT_BEHIND: std::sync::Mutex<Vec<std::path::PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes `dir` when the process stops (a stop signal, or `main` returning).
pub fn remove_when_stopping(dir: std::path::PathBuf) {
    LEFT_BEHIND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir);
}

/// What [`remove_when_stopping`] was given, removed.
pub fn remove_left_behind() {
    let dirs = std::mem::take(&mut *LEFT_BEHIND.lock().unwrap_or_else(|e| e.into_inner()));
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// A configuration to serve (at start, on a reload, and for `check`): read, checked, and the
/// access log files its nginx file names opened.
pub fn load(path: &std::path::Path) -> Result<Config, config::ConfigError> {
    let c = config::load(path)?;
    crate::nginx::log::open(&c)?;
    Ok(c)
}

/// Reloads the config on SIGHUP, and reopens the access log files on SIGUSR1. Routes,
/// A listener written as `written` in a new config is not the one `bound` (port 0 there takes
/// any port of the same address).
fn moved(written: Option<&String>, bound: Option<&String>) -> bool {
    use std::net::SocketAddr;
    match (written, bound) {
        (None, None) => false,
        (Some(w), Some(b)) if w == b => false,
        (Some(w), Some(b)) => match (w.parse::<SocketAddr>(), b.parse::<SocketAddr>()) {
            (Ok(w), Ok(b)) => !(w.port() == 0 && w.ip() == b.ip()),
            _ => true,
        },
        _ => true,
    }
}

/// Callbacks forwarded with a `memory` store (the one opened at start): what WeCom was told
/// "success" for is lost at a restart. Said at start and at every reload (`when`: "reload: ").
pub fn warn_of_memory_store(opened: &StoreSettings, config: &Config, when: &str) {
    if let Some(w) = memory_store_loses_callbacks(opened, config) {
        tracing::warn!("{when}{w}");
    }
}

/// What [`warn_of_memory_store`] says, and `check` with it.
pub fn memory_store_loses_callbacks(store: &StoreSettings, config: &Config) -> Option<String> {
    if store.backend != StoreBackend::Memory {
        return None;
    }
    let forwarding: Vec<&str> = config
        .apps
        .values()
        .filter(|a| a.callback.is_some())
        .map(|a| a.name.as_str())
        .collect();
    (!forwarding.is_empty()).then(|| {
        format!(
            "[store] backend = \"memory\": callbacks WeCom was told \"success\" for are lost at a restart ({}); use \"local\" (or \"redis\") outside tests and the demo",
            forwarding.join(", ")
        )
    })
}

/// What a reload's `[session]` does to the sessions browsers hold: a new `secret` opens none
/// sealed under the old one, a new `cookie_name` reads none of the old cookies. Said, since
/// nothing else would tell why every member is signed out.
fn sessions_ended(old: &Config, new: &Config) -> Option<&'static str> {
    let (o, n) = (old.session.as_ref()?, new.session.as_ref()?);
    if o.key.master() != n.key.master() {
        Some("[session] secret changed: every session sealed under the previous one ends here, and its holder signs in again (instances still on the previous secret do not open the new sessions)")
    } else if o.cookie_name != n.cookie_name {
        Some("[session] cookie_name changed: the cookies browsers hold under the previous name are not read, and every holder signs in again")
    } else {
        None
    }
}

/// Why a reload cannot be applied to the store this process opened at start (the `[store]`
/// of a reload applies only after a restart): an app whose installs WeCom sends once (a
/// suite, a custom app's template) on a `memory` store would lose them at that restart —
/// `check` refuses such a file, and so does a reload.
pub fn refused_by_opened_store(opened: &StoreSettings, new: &Config) -> Option<String> {
    if opened.backend != StoreBackend::Memory {
        return None;
    }
    let app = new
        .apps
        .values()
        .find(|a| matches!(a.credentials, wecom_api::Credentials::Suite { .. }))?;
    Some(format!(
        "[apps.{}] keeps installs WeCom sends once, and this process opened the \"memory\" store at start (lost at a restart): set [store] backend = \"local\" or \"redis\" and restart",
        app.name
    ))
}

/// `SIGHUP` reloads the config (`SIGUSR1` reopens the access log files): routes, rules,
/// upstreams and apps change; listeners and threads need a restart, and so does `gzip` in a
/// process that started without any (`compression`: it started with some), and `[store]`
/// (`opened`: the one opened at start, which a reload is judged against). A bad new config is
/// logged and the running one stays. `ports`: what the listeners bound, settled on each new
/// config as on the first.
pub fn spawn_reloader(
    path: PathBuf,
    current: Arc<ArcSwap<Config>>,
    opened: StoreSettings,
    ports: Ports,
    compression: bool,
) {
    std::thread::Builder::new()
        .name("wgw-reload".into())
        // The stack `check` and the first load have (the main thread's): a config that loads
        // there loads here.
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
                let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
                loop {
                    tokio::select! {
                        Some(()) = usr1.recv() => {
                            crate::logging::files::reopen();
                            tracing::info!("SIGUSR1: the access log files are reopened");
                            continue;
                        }
                        got = hup.recv() => if got.is_none() { break },
                    }
                    match load(&path) {
                        Ok(mut new) => {
                            if let Some(why) = refused_by_opened_store(&opened, &new) {
                                tracing::error!(
                                    setting = "[store].backend",
                                    problem = %why,
                                    "reload: new config refused, the running one stays"
                                );
                                continue;
                            }
                            let old = current.load();
                            // Compared as written (port 0: any port) with what is bound, before
                            // the new config is given the bound addresses.
                            let moved = moved(Some(&new.server.listen), Some(&old.server.listen))
                                || moved(
                                    new.server.admin_listen.as_ref(),
                                    old.server.admin_listen.as_ref(),
                                )
                                || moved(
                                    new.server.qyapi_listen.as_ref(),
                                    old.server.qyapi_listen.as_ref(),
                                );
                            ports.settle(&mut new.server);
                            let (n, o) = (&new.server, &old.server);
                            let restart_only = [
                                ("listeners", moved),
                                ("threads", n.threads != o.threads),
                                ("header_timeout", n.header_timeout != o.header_timeout),
                                ("max_connections", n.max_connections != o.max_connections),
                                (
                                    "large_client_header_buffers",
                                    (n.header_buffers.size, n.header_buffers.total)
                                        != (o.header_buffers.size, o.header_buffers.total),
                                ),
                                (
                                    "[emulator]",
                                    (new.emulator.enabled, new.emulator.listen)
                                        != (old.emulator.enabled, old.emulator.listen),
                                ),
                            ];
                            let changed: Vec<&str> = restart_only
                                .iter()
                                .filter(|(_, c)| *c)
                                .map(|(name, _)| *name)
                                .collect();
                            if !changed.is_empty() {
                                tracing::warn!(changed = %changed.join(", "), "reload: these change only on restart; the rest is applied");
                            }
                            // Against the store opened at start, not the last file's: a reload
                            // back to it changes nothing.
                            if !new.store.same_as(&opened) {
                                tracing::warn!("reload: [store] changes only on restart (the store is opened at start); the rest is applied. What the open store holds (queued callbacks, suite installs, revocations) is not moved to the new one: a restart on it leaves them behind, so deliver the queue and move the data first");
                            }
                            if let Some(w) = sessions_ended(&old, &new) {
                                tracing::warn!("reload: {w}");
                            }
                            warn_of_memory_store(&opened, &new, "reload: ");
                            if new.compresses() && !compression {
                                tracing::warn!("reload: gzip is on in the new config, but the process started without it: answers are compressed after a restart; the rest is applied");
                            }
                            for w in &new.warnings {
                                tracing::warn!("reload: {w}");
                            }
                            current.store(Arc::new(new));
                            tracing::info!(config = %path.display(), "reload: new config applied");
                        }
                        // In parts: written whole (`[apps.crm].secret: environment variable X
                        // is not set`), the log's redaction takes the message for a secret's
                        // value. A config error never holds one (SPEC section 4).
                        Err(e) => tracing::error!(
                            at = %match e.line {
                                // No position (the file could not be read): the file alone.
                                0 => e.file.clone(),
                                _ => format!("{}:{}:{}", e.file, e.line, e.column),
                            },
                            setting = %e.path,
                            problem = %e.message,
                            "reload: new config refused, the running one stays"
                        ),
                    }
                }
            });
        })
        .expect("reload thread");
}
