//! A bare pingora proxy for `bench/`: a `ProxyHttp` that only picks the peer, so its numbers are
//! the engine's own limit, measured in the same run as nginx and the gateway (SPEC section 16).
//!
//! `bare-proxy LISTEN UPSTREAM [--threads N] [--work-stealing] [--listener-tasks N]
//! [--pool N] [--read-buffer BYTES] [--timeouts]`; the options are the engine settings the
//! benchmarks compare. `--timeouts` bounds what the gateway bounds by default, with nginx's
//! defaults: the keep-alive wait (75 s), the request header (60 s), and each upstream read, write
//! and pooled idle connection (60 s). The allocator is the gateway's, set up as the gateway sets
//! it (`wecom_gateway::allocator`: mimalloc without transparent huge pages, free pages purged
//! after 100 ms), so that both rows run the same engine.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

/// Picks the peer, nothing else.
struct Bare {
    upstream: SocketAddr,
}

/// The same with the timeouts the gateway sets by default (`--timeouts`): a type of its own,
/// so that the default proxy has no filter of its own to run.
struct Timed(Bare);

/// nginx's `proxy_read_timeout`, `proxy_send_timeout` and upstream `keepalive_timeout`.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// nginx's `keepalive_timeout`.
const KEEPALIVE_SECS: u64 = 75;

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

#[async_trait]
impl ProxyHttp for Timed {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(KEEPALIVE_SECS));
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = self.0.upstream_peer(session, ctx).await?;
        peer.options.read_timeout = Some(UPSTREAM_TIMEOUT);
        peer.options.write_timeout = Some(UPSTREAM_TIMEOUT);
        peer.options.idle_timeout = Some(UPSTREAM_TIMEOUT);
        Ok(peer)
    }
}

struct Args {
    listen: String,
    upstream: SocketAddr,
    threads: usize,
    work_stealing: bool,
    listener_tasks: usize,
    pool: usize,
    read_buffer: Option<usize>,
    timeouts: bool,
}

/// The gateway's allocator and its `allocator::PURGE_DELAY_MS` (mimalloc 3's option 15).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let usage = "usage: bare-proxy LISTEN UPSTREAM [--threads N] [--work-stealing] [--listener-tasks N] [--pool N] [--read-buffer BYTES] [--timeouts]";
    let listen = it.next().expect(usage);
    let upstream = it
        .next()
        .expect(usage)
        .parse()
        .expect("UPSTREAM is IP:PORT");
    let mut a = Args {
        listen,
        upstream,
        threads: 2,
        work_stealing: false,
        listener_tasks: 1,
        pool: 128,
        read_buffer: None,
        timeouts: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect(usage).parse::<usize>().expect(usage);
        match flag.as_str() {
            "--threads" => a.threads = value(),
            "--work-stealing" => a.work_stealing = true,
            "--timeouts" => a.timeouts = true,
            "--listener-tasks" => a.listener_tasks = value(),
            "--pool" => a.pool = value(),
            "--read-buffer" => a.read_buffer = Some(value()),
            _ => panic!("{usage}"),
        }
    }
    a
}

fn main() {
    let a = args();
    // SAFETY: sets a number in mimalloc's table of options; it is read when pages are purged.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 100) }
    let conf = ServerConf {
        threads: a.threads,
        work_stealing: a.work_stealing,
        listener_tasks_per_fd: a.listener_tasks,
        upstream_keepalive_pool_size: a.pool,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let bare = Bare {
        upstream: a.upstream,
    };
    let listener = ListenerConfig::tcp(a.listen.clone()).l4_buffer(L4BufferSettings {
        read: a.read_buffer,
        write: None,
    });
    if a.timeouts {
        let mut proxy = http_proxy_service(&server.configuration, Timed(bare));
        let mut options = HttpServerOptions::default();
        options.h1_header_timeout = Some(Duration::from_secs(60));
        proxy.app_logic_mut().expect("a new service").server_options = Some(options);
        proxy.add_listener(listener);
        server.add_service(proxy);
    } else {
        let mut proxy = http_proxy_service(&server.configuration, bare);
        proxy.add_listener(listener);
        server.add_service(proxy);
    }
    server.run_forever();
}
