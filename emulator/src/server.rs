//! A running emulator on its own listener.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{router, EmulatorState, Scenario};

pub struct Emulator {
    addr: SocketAddr,
    state: EmulatorState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    pusher: Option<JoinHandle<()>>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port) and serves until `shutdown`.
    pub async fn start(listen: SocketAddr, scenario: Scenario) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let interval = scenario.settings.suite_ticket_interval;
        let state = EmulatorState::new(scenario);
        let pusher =
            (!interval.is_zero()).then(|| tokio::spawn(push_tickets(state.clone(), interval)));
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    stopped.await.ok();
                })
                .await
        });
        Ok(Emulator {
            addr,
            state,
            stop,
            task,
            pusher,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (a wildcard listener is reached through loopback).
    pub fn base_url(&self) -> String {
        base_url(self.addr)
    }

    /// The emulated world, for in-process tests and the demo.
    pub fn state(&self) -> &EmulatorState {
        &self.state
    }

    pub async fn shutdown(self) {
        if let Some(p) = &self.pusher {
            p.abort();
        }
        let _ = self.stop.send(());
        let mut task = self.task;
        // Idle keep-alive clients must not hold the shutdown forever.
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// WeCom pushes each suite's ticket to its instruction URL every `interval` (10 minutes).
async fn push_tickets(state: EmulatorState, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: the first push comes one interval in
    loop {
        tick.tick().await;
        let suites: Vec<String> = {
            let receivers = state.hub.receivers();
            let mut s: Vec<String> = receivers
                .iter()
                .filter(|r| r.spec.kind == crate::scenario::ReceiverKind::Instruction)
                .filter_map(|r| r.spec.suite_id.clone())
                .collect();
            s.dedup();
            s
        };
        for suite in suites {
            crate::provider_control::push_suite_ticket(&state, &suite);
        }
    }
}

pub(crate) fn base_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}
