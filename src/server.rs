//! Assembles the pingora server: the public proxy, the admin listener, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::callback::delivery::Delivery;
use crate::callback::Callbacks;
use crate::config::Config;
use crate::connection;
use crate::lifecycle::{self, StopSignals, DRAIN_LIMIT};
use crate::listeners::{write_ports_file, Bound, Ports};
use crate::provider::Provider;
use crate::proxy::Gateway;
use crate::qyapi::Qyapi;
use crate::served::Served;
use crate::store::Backend;

/// A plain TCP listener without pingora's transport read buffer (64 KiB by default), which is
/// sized for TLS records. Over plain HTTP, as here behind a TLS terminator, pingora reads each
/// request header into its own buffer anyway: the transport buffer only adds a copy, and it
/// stays allocated for as long as the connection is open (10,000 idle keep-alive connections:
/// 80 MiB at 8 KiB each; 64 KiB a connection held open on the admin or qyapi listener).
/// bench/ENGINE.md measures it.
fn plain_listener(addr: &str) -> ListenerConfig {
    ListenerConfig::tcp(addr.to_owned()).l4_buffer(L4BufferSettings {
        read: Some(0),
        write: None,
    })
}

/// Serves `config` (already [settled](crate::listeners::Ports::settle) on `bound`) on the
/// listeners of `bound`; writes their addresses (and the in-process `emulator`'s) to
/// `ports_file` once everything is set up.
pub fn run(
    config_path: PathBuf,
    config: Config,
    bound: Bound,
    emulator: Option<SocketAddr>,
    ports_file: Option<PathBuf>,
) -> Result<(), String> {
    let conf = ServerConf {
        threads: config.server.threads,
        // The watcher of `StopSignals` ends the process at the drain limit, after logging what
        // was left and flushing the log; pingora's own end comes later, as a backstop.
        grace_period_seconds: Some(DRAIN_LIMIT.as_secs() + 3),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 256,
        work_stealing: false,
        // Attempts of one request: each server of a balanced upstream once, and the nginx
        // file's error_page hops (at most 10, as its internal redirects) on top. pingora's 16
        // would end a request before its 17th server, and skip the error_page.
        max_retries: crate::domain::balance::MAX_SERVERS + 16,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let ports = Ports {
        emulator,
        ..bound.ports()
    };
    let report = ports.report(&config.server);
    let current = Arc::new(ArcSwap::from_pointee(config));

    // What `[store]` names, opened before anything listens: a `local` file another process
    // holds stops the start here. One token cache for the whole process (login, the JS-SDK,
    // the qyapi endpoint), shared by the cluster with Redis; the callback queue beside it.
    let clock = crate::clock::clock().clone();
    let settings = &current.load().store;
    let backend = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(Backend::open(settings, clock.clone()))
        .map_err(|e| format!("[store]: {e}"))?;
    if settings.unused_redis_url {
        tracing::warn!("[store]: {}", crate::config::model::UNUSED_REDIS_URL);
    }
    for w in &current.load().warnings {
        tracing::warn!("{w}");
    }
    lifecycle::warn_of_memory_store(settings, &current.load(), "");
    let opened = settings.clone();
    let provider = Provider::new(backend.store.clone(), settings.lock_ttl, clock);
    let callbacks = Arc::new(Callbacks::new(
        backend.queue,
        backend.store,
        provider.clone(),
    ));
    let compression = current.load().compresses();
    let gateway = Gateway {
        config: current.clone(),
        provider: provider.clone(),
        callbacks: callbacks.clone(),
        compression,
    };
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = connection::server_options(&current.load().server);
    // The engine answers CONNECT itself with a bare 405 (no request id, no access line) before
    // any hook runs; let through, it is refused by the gateway's first look at the request
    // (`connection::malformed_as`), as nginx refuses it, and never proxied.
    options.allow_connect_method_proxying = true;
    proxy.server_options = Some(options);
    // The internal listeners' connections are their own: a flood of one leaves the others
    // their file descriptors (the public listener's limit is what the rest leaves it).
    let limits = connection::limits(
        &current.load().server,
        bound.admin.is_some(),
        bound.qyapi.is_some(),
    );
    let mut proxy = Service::new(
        "public".to_owned(),
        connection::Limited::new(proxy, limits.public, "public"),
    );
    let public = bound.public;
    proxy.add_listener(plain_listener(&public.addr.to_string()));
    server.add_service(public.serve(proxy));

    if let Some(socket) = bound.admin {
        let mut admin = Service::new(
            "admin".to_owned(),
            connection::Limited::new(
                Served::new(
                    Admin {
                        config: current.clone(),
                        provider: provider.clone(),
                        queue: callbacks.queue.clone(),
                    },
                    connection::server_options(&current.load().server),
                ),
                limits.admin,
                "admin",
            ),
        );
        admin.add_listener(plain_listener(&socket.addr.to_string()));
        server.add_service(socket.serve(admin));
    }

    if let Some(socket) = bound.qyapi {
        let mut qyapi = Service::new(
            "qyapi".to_owned(),
            connection::Limited::new(
                Served::new(
                    Qyapi {
                        config: current.clone(),
                        provider,
                    },
                    connection::server_options(&current.load().server),
                ),
                limits.qyapi,
                "qyapi",
            ),
        );
        qyapi.add_listener(plain_listener(&socket.addr.to_string()));
        server.add_service(socket.serve(qyapi));
    }

    #[cfg(debug_assertions)]
    if crate::test_control::enabled() {
        tracing::warn!(
            "{}=1: this debug build lets loopback clients move its clock (POST {} on the admin listener); never run it so in production",
            crate::test_control::ENV,
            crate::test_control::PATH
        );
    }
    #[cfg(debug_assertions)]
    if let Some(max) = crate::test_control::held_max() {
        wecom_api::held::HELD.set_bounds(max, 0);
        tracing::warn!(
            "{}={max}: this debug build holds at most that many bytes of API bodies at once, every byte counted",
            crate::test_control::HELD_MAX_ENV
        );
    }
    #[cfg(debug_assertions)]
    if crate::test_control::fast_retry() {
        tracing::warn!(
            "{}=1: this debug build retries callback deliveries after milliseconds",
            crate::test_control::FAST_RETRY_ENV
        );
    }

    server.add_service(pingora::services::background::background_service(
        "callback delivery",
        Delivery::new(current.clone(), callbacks),
    ));

    lifecycle::spawn_reloader(config_path, current, opened, ports, compression);
    // Every socket is bound (connections queue until pingora accepts them): the addresses are
    // final, in one line a program can read and in the ports file.
    tracing::info!(ports = %report, "wecom-gateway listening");
    if let Some(path) = &ports_file {
        write_ports_file(path, &report)
            .map_err(|e| format!("--ports-file {}: {e}", path.display()))?;
    }
    server.run(RunArgs {
        shutdown_signal: Box::new(StopSignals),
    });
    // Only when pingora ended first: what the log has buffered is written before the exit.
    crate::logging::flush();
    Ok(())
}
