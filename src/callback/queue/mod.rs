//! The callback queue (SPEC sections 18 and 21): per app, in order, durable before WeCom hears
//! `success`, with the de-duplication keys beside it.
//!
//! It sits beside the `wecom-api` store trait rather than in it: tokens and facts are WeCom's
//! business and any client of the crate needs them; a delivery queue is the gateway's. The
//! same `[store]` backend holds both — the same memory, the same database file, the same
//! Redis — so one setting says where everything is kept:
//!
//! | backend | queue | de-duplication keys | who delivers |
//! |---|---|---|---|
//! | `memory` | this process, lost at exit (tests, the demo) | this process | this process |
//! | `local` | rows of the database file, committed (fsync'd) before `success` | rows of the same file, in the same transaction | this process |
//! | `redis` | a Stream per app, a consumer group | keys with a TTL, set in the same script as the `XADD` | the instance holding the app's lease |

#[doc(hidden)]
pub mod conformance;
mod local;
mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use tokio::sync::Notify;

use super::event::Event;

pub use local::LocalQueue;
pub use memory::MemoryQueue;
pub use redis::RedisQueue;

/// How long a de-duplication key is kept. WeCom's retries come within a minute; a replayed
/// request older than the 10-minute timestamp window is refused before it gets here. An hour
/// covers both with room to spare.
pub const DEDUP_TTL: Duration = Duration::from_secs(3600);
/// How long an event given up on (dead) is kept in the store for an operator to look at.
pub const DEAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, thiserror::Error)]
#[error("event queue: {0}")]
pub struct QueueError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Its de-duplication key was queued already: acknowledged, not queued again.
    Duplicate,
}

/// An event at its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Where the event sits: a sequence number (memory, local) or a Stream entry id (Redis).
    pub position: String,
    pub event: Event,
}

/// An event given up on, as an operator sees it (`GET /events/parked` on the admin listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Where it is kept among the parked ones: what `POST /events/replay?id=` names.
    pub position: String,
    /// Unix ms it was parked at.
    pub parked_at: u64,
    /// `None`: the row no longer reads (it was parked as written, and cannot be replayed).
    pub event: Option<Event>,
}

/// The most parked events one look lists, or one replay of "all" puts back.
pub const PARKED_PAGE: usize = 1000;

/// The retry schedule of an app's head event (SPEC section 18: 1 s doubling to 5 min, given up
/// after a day and ten tries), kept where every instance reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retries {
    pub event_id: String,
    pub failures: u32,
    /// The first try (ms on the clock of the instance that made it: the day of tries is
    /// long against instances' clocks apart).
    pub since_ms: u64,
    /// How long until the next try (ms): kept as a time to live in the store, whose clock all
    /// instances share, not as a time of one instance's clock.
    #[serde(skip)]
    pub wait_ms: u64,
}

#[async_trait]
pub trait EventQueue: Send + Sync + 'static {
    /// Appends `event` to its app's queue unless an event with its de-duplication key was
    /// queued within [`DEDUP_TTL`]. `Ok` means it is kept as durably as the backend keeps
    /// anything: WeCom may be told `success`.
    async fn push(&self, event: &Event) -> Result<Pushed, QueueError>;

    /// Whether an event with `dedup` was queued for `app` within [`DEDUP_TTL`]: a copy of it
    /// (WeCom's retry, or a captured request sent again) must not act a second time, later.
    async fn seen(&self, app: &str, dedup: &str) -> Result<bool, QueueError>;

    /// Whether this process delivers `app`'s events now. Always with one instance; with Redis
    /// only the holder of the app's lease (taken or renewed here) does, which keeps the
    /// order.
    async fn lead(&self, _app: &str) -> Result<bool, QueueError> {
        Ok(true)
    }

    /// Stops delivering `app` here (the lease is given back).
    async fn resign(&self, _app: &str) {}

    /// Takes over the events of `app` that other instances took for delivery and have left
    /// alone for longer than `in_flight` (the longest one delivery may take: they died, or
    /// lost the queue for longer than their lease). `Ok(false)` while one of theirs may still
    /// be under way: the next event waits for it, so that the CRM never gets them out of order
    /// or one twice at once. Always `Ok(true)` with one instance.
    async fn settle(&self, _app: &str, _in_flight: Duration) -> Result<bool, QueueError> {
        Ok(true)
    }

    /// Renews the lease while `q` is being delivered here, and says that it is (an event left
    /// alone is one another instance may take over): `Ok(false)` when the lease or `q` went to
    /// another instance, which delivers it instead.
    async fn working_on(&self, app: &str, _q: &Queued) -> Result<bool, QueueError> {
        self.lead(app).await
    }

    /// Whether the instances share the head event's retry schedule ([`EventQueue::retries`]):
    /// only where several deliver in turn.
    fn shares_retries(&self) -> bool {
        false
    }

    /// How the delivery of `app`'s head event went so far, whichever instance tried it: one
    /// retry schedule per event for the whole cluster (`None`: none kept).
    async fn retries(&self, _app: &str) -> Result<Option<Retries>, QueueError> {
        Ok(None)
    }

    /// Keeps the schedule, or with `None` forgets it.
    async fn keep_retries(&self, _app: &str, _r: Option<&Retries>) -> Result<(), QueueError> {
        Ok(())
    }

    /// The oldest undelivered event of `app`.
    async fn head(&self, app: &str) -> Result<Option<Queued>, QueueError>;

    /// Delivered: removed from the queue.
    async fn ack(&self, app: &str, q: &Queued) -> Result<(), QueueError>;

    /// Given up on: moved aside (kept [`DEAD_TTL`]), the next event comes up.
    async fn park(&self, app: &str, q: &Queued) -> Result<(), QueueError>;

    /// `app`'s undelivered events, oldest first, at most `limit`, as they wait: looking takes
    /// none of them for delivery. Rows that no longer read are left out (the head parks them).
    async fn queued(&self, app: &str, limit: usize) -> Result<Vec<Queued>, QueueError>;

    /// An operator's park: the undelivered event at `position` is moved aside as one given up
    /// on is — a head event the CRM refuses holds every later one of the app back for a day
    /// (in a service provider's app, every corp's). `Ok(false)`: no undelivered event there.
    /// One being delivered at that moment may still reach the CRM; the CRM knows it again by
    /// its event id if it is replayed.
    async fn park_at(&self, app: &str, position: &str) -> Result<bool, QueueError>;

    /// `app`'s parked events, oldest first, at most `limit`.
    async fn parked(&self, app: &str, limit: usize) -> Result<Vec<Parked>, QueueError>;

    /// Puts `app`'s parked events back at the end of its queue — the one at `position`, or the
    /// oldest [`PARKED_PAGE`] — to be delivered again with their event ids (the CRM can tell a
    /// redelivery by it). Rows that no longer read stay parked. Returns how many were put back
    /// (0 when `position` names no parked event that reads).
    async fn replay(&self, app: &str, position: Option<&str>) -> Result<u64, QueueError>;

    /// Undelivered events of `app`.
    async fn depth(&self, app: &str) -> Result<u64, QueueError>;

    /// Every app with undelivered events, and how many: also apps the running config no
    /// longer forwards for (removed, renamed, their callback taken out), whose events wait
    /// unseen. A process's memory queue starts empty: nothing to list.
    async fn queued_apps(&self) -> Result<Vec<(String, u64)>, QueueError> {
        Ok(Vec::new())
    }

    /// Returns when something may have been pushed for `app`, or after `limit`.
    async fn wait(&self, app: &str, limit: Duration);

    /// What to warn about once at start when the backend keeps the queue less durably than
    /// it seems to (Redis without `appendonly`); `Err` when it could not be asked.
    async fn persistence_warning(&self) -> Result<Option<&'static str>, QueueError> {
        Ok(None)
    }
}

/// A `Notify` per app: a push wakes that app's worker in this process at once.
#[derive(Default)]
pub struct Wakers(DashMap<String, Arc<Notify>>);

impl Wakers {
    fn of(&self, app: &str) -> Arc<Notify> {
        if let Some(n) = self.0.get(app) {
            return n.clone();
        }
        self.0.entry(app.to_owned()).or_default().clone()
    }

    pub fn wake(&self, app: &str) {
        self.of(app).notify_one();
    }

    pub async fn wait(&self, app: &str, limit: Duration) {
        let n = self.of(app);
        let _ = tokio::time::timeout(limit, n.notified()).await;
    }
}

#[cfg(test)]
mod tests;
