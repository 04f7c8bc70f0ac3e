// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

//! Idle upstream connections kept by the thread that released them, on a current-thread
//! runtime (each thread of a no-steal runtime is one).
//!
//! A task of such a runtime never leaves its thread, and a connection's readiness comes from the
//! reactor of the thread that connected it, so each thread keeps its own idle connections, as
//! each nginx worker keeps its own keepalive cache. Nothing needs a lock, and nothing runs per
//! released connection: the shared pool spawned a task per release to watch the idle connection
//! (a tokio mutex, a oneshot channel and, with an idle timeout, a timer each time), and taking
//! the connection back had to wait for that task to run and let go of it. Here a connection is
//! checked when it is taken (its age against its idle timeout, and a read that must find
//! nothing: the reactor has already marked a closed connection readable), and one sweeper task
//! per thread closes, once a [`SWEEP`], the idle connections their peer closed or that outlived
//! their timeout while nobody asked for them.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{test_reusable_stream, PoolCallback};
use crate::protocols::Stream;

/// How often a thread's sweeper looks at its idle connections.
pub(super) const SWEEP: Duration = Duration::from_secs(1);

struct Idle {
    stream: Stream,
    since: Instant,
    timeout: Option<Duration>,
}

impl Idle {
    fn expired(&self, now: Instant) -> bool {
        self.timeout
            .is_some_and(|t| now.saturating_duration_since(self.since) >= t)
    }
}

/// One connector's idle connections on one thread.
struct Pool {
    /// Per pool key, oldest first. The one idle the longest is taken first, as pingora's shared
    /// pool took them (its hot queue is first in, first out): requests rotate over the idle
    /// connections, and so over the upstream's workers each connection is pinned to. Taking
    /// the newest first (nginx's order) kept a few connections busy and the rest idle: against
    /// the benchmark's two-worker nginx it served 3-12% fewer requests, p99 1.3-1.4 ms later.
    by_key: HashMap<u64, VecDeque<Idle>>,
    count: usize,
    capacity: usize,
    unexpected_data: Arc<AtomicU64>,
    evicted: Option<PoolCallback>,
    /// Gone with its connector: the pool is then closed at the next sweep.
    connector: Weak<()>,
}

impl Pool {
    /// Makes room for one more by closing the connection idle the longest, across keys.
    fn evict_oldest(&mut self) {
        let oldest = self
            .by_key
            .iter()
            .filter_map(|(k, v)| v.front().map(|i| (i.since, *k)))
            .min();
        if let Some((_, key)) = oldest {
            if let Some(list) = self.by_key.get_mut(&key) {
                let Some(idle) = list.pop_front() else {
                    return;
                };
                self.count -= 1;
                if let Some(callback) = &self.evicted {
                    callback(idle.since.elapsed());
                }
            }
        }
    }

    /// Closes what expired or is no longer reusable; forgets keys left empty.
    fn sweep(&mut self, now: Instant) {
        let unexpected = &self.unexpected_data;
        let mut count = 0;
        self.by_key.retain(|_, list| {
            list.retain_mut(|idle| {
                !idle.expired(now) && test_reusable_stream(&mut idle.stream, unexpected)
            });
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

#[derive(Default)]
struct Local {
    /// Per connector.
    pools: RefCell<HashMap<u64, Pool>>,
    sweeping: Cell<bool>,
}

thread_local! {
    static LOCAL: Local = Local::default();
    /// Does this thread run a current-thread runtime? Worked out once per thread.
    static CURRENT_THREAD: bool = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
}

/// Are this thread's idle connections kept here? Only on a current-thread runtime: elsewhere a
/// task may move between threads and the connector's shared pool serves.
pub(super) fn kept_here() -> bool {
    CURRENT_THREAD.with(|c| *c)
}

/// The reusable connection of `key` kept by this thread for `connector` the longest, if any;
/// expired and closed ones met on the way are closed.
pub(super) fn take(
    connector: u64,
    key: u64,
    reusable: impl Fn(&mut Stream) -> bool,
) -> Option<Stream> {
    LOCAL.with(|local| {
        let mut pools = local.pools.borrow_mut();
        let pool = pools.get_mut(&connector)?;
        let list = pool.by_key.get_mut(&key)?;
        let mut now = None;
        while let Some(mut idle) = list.pop_front() {
            pool.count -= 1;
            if idle.timeout.is_some() && idle.expired(*now.get_or_insert_with(Instant::now)) {
                continue;
            }
            if reusable(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    })
}

/// What a connector tells its pool on a thread the first time it keeps a connection there.
pub(super) struct Setup {
    pub capacity: usize,
    pub unexpected_data: Arc<AtomicU64>,
    pub evicted: Option<PoolCallback>,
    /// A token the connector holds for as long as it lives.
    pub alive: Weak<()>,
}

/// Keeps a connection for reuse on this thread.
pub(super) fn put(
    connector: u64,
    key: u64,
    stream: Stream,
    timeout: Option<Duration>,
    setup: impl FnOnce() -> Setup,
) {
    LOCAL.with(|local| {
        let mut pools = local.pools.borrow_mut();
        let pool = pools.entry(connector).or_insert_with(|| {
            let setup = setup();
            Pool {
                by_key: HashMap::new(),
                count: 0,
                capacity: setup.capacity,
                unexpected_data: setup.unexpected_data,
                evicted: setup.evicted,
                connector: setup.alive,
            }
        });
        if pool.capacity == 0 {
            return;
        }
        if pool.count >= pool.capacity {
            pool.evict_oldest();
        }
        pool.by_key.entry(key).or_default().push_back(Idle {
            stream,
            since: Instant::now(),
            timeout,
        });
        pool.count += 1;
        drop(pools);
        if !local.sweeping.replace(true) {
            start_sweeper();
        }
    })
}

/// Sweeps this thread's idle connections now (and the pools of connectors that are gone);
/// returns how many are left.
pub(super) fn sweep() -> usize {
    let now = Instant::now();
    LOCAL.with(|local| {
        let mut pools = local.pools.borrow_mut();
        pools.retain(|_, p| p.connector.strong_count() > 0);
        pools.values_mut().for_each(|p| p.sweep(now));
        pools.values().map(|p| p.count).sum()
    })
}

/// One task per thread, while the thread keeps idle connections.
fn start_sweeper() {
    /// Lets a later release start a sweeper again, however this one ends (also when its runtime
    /// shuts down and drops it).
    struct Sweeping;
    impl Drop for Sweeping {
        fn drop(&mut self) {
            let _ = LOCAL.try_with(|l| l.sweeping.set(false));
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        drop(Sweeping);
        return;
    };
    runtime.spawn(async {
        let _sweeping = Sweeping;
        loop {
            // pingora's timer, which needs no time driver in the runtime.
            pingora_timeout::sleep(SWEEP).await;
            if sweep() == 0 {
                return;
            }
        }
    });
}

/// This thread's idle connections of `connector` (tests).
#[cfg(test)]
pub(super) fn count(connector: u64) -> usize {
    LOCAL.with(|l| l.pools.borrow().get(&connector).map_or(0, |p| p.count))
}
