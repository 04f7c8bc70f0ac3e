//! A bare pingora proxy for `bench/`: a `ProxyHttp` that only picks the peer, so its numbers are
//! the engine's own limit, measured in the same run as nginx and the gateway (SPEC section 16).
//!
//! `bare-proxy LISTEN UPSTREAM [--threads N] [--work-stealing] [--listener-tasks N]
//! [--pool N] [--read-buffer BYTES] [--trim-threshold BYTES]`; the options are the engine settings
//! the benchmarks compare. `--trim-threshold` is glibc's `M_TRIM_THRESHOLD`, by default the
//! gateway's (`wecom_gateway::allocator`), so both rows run the engine with the same allocator
//! setting; 0 leaves glibc's own.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
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
    trim_threshold: usize,
}

/// The gateway's `allocator::TRIM_THRESHOLD`.
const GATEWAY_TRIM_THRESHOLD: usize = 1 << 20;

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let usage = "usage: bare-proxy LISTEN UPSTREAM [--threads N] [--work-stealing] [--listener-tasks N] [--pool N] [--read-buffer BYTES] [--trim-threshold BYTES]";
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
        trim_threshold: GATEWAY_TRIM_THRESHOLD,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect(usage).parse::<usize>().expect(usage);
        match flag.as_str() {
            "--threads" => a.threads = value(),
            "--work-stealing" => a.work_stealing = true,
            "--listener-tasks" => a.listener_tasks = value(),
            "--pool" => a.pool = value(),
            "--read-buffer" => a.read_buffer = Some(value()),
            "--trim-threshold" => a.trim_threshold = value(),
            _ => panic!("{usage}"),
        }
    }
    a
}

fn main() {
    let a = args();
    if a.trim_threshold > 0 {
        // SAFETY: mallopt only changes a number inside glibc's allocator, before other threads.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, a.trim_threshold as libc::c_int);
        }
    }
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
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream: a.upstream,
        },
    );
    proxy.add_listener(ListenerConfig::tcp(a.listen).l4_buffer(L4BufferSettings {
        read: a.read_buffer,
        write: None,
    }));
    server.add_service(proxy);
    server.run_forever();
}
