//! The queue of one process, in memory: for tests and the demo (lost at exit).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use wecom_api::Clock;

use super::{
    EventQueue, Parked, Pushed, QueueError, Queued, Wakers, DEAD_TTL, DEDUP_TTL, PARKED_PAGE,
};
use crate::callback::event::Event;

#[derive(Default)]
struct AppQueue {
    next: u64,
    events: VecDeque<Queued>,
    /// De-duplication key -> Unix ms it lapses at.
    seen: std::collections::HashMap<String, u64>,
    /// Given up on, oldest first: (Unix ms parked at, the event as it was queued).
    dead: VecDeque<(u64, Queued)>,
}

/// Parked events kept per app in memory at most (the oldest go first).
const DEAD_MAX: usize = 10 * PARKED_PAGE;

pub struct MemoryQueue {
    apps: DashMap<String, Mutex<AppQueue>>,
    clock: Clock,
    wakers: Wakers,
}

impl MemoryQueue {
    pub fn new(clock: Clock) -> MemoryQueue {
        MemoryQueue {
            apps: DashMap::new(),
            clock,
            wakers: Wakers::default(),
        }
    }

    fn with<R>(&self, app: &str, f: impl FnOnce(&mut AppQueue) -> R) -> R {
        let entry = self.apps.entry(app.to_owned()).or_default();
        let mut q = entry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut q)
    }
}

#[async_trait]
impl EventQueue for MemoryQueue {
    async fn push(&self, event: &Event) -> Result<Pushed, QueueError> {
        let now = self.clock.now_ms();
        let pushed = self.with(&event.app, |q| {
            q.seen.retain(|_, until| *until > now);
            if q.seen.contains_key(&event.dedup) {
                return Pushed::Duplicate;
            }
            q.seen
                .insert(event.dedup.clone(), now + DEDUP_TTL.as_millis() as u64);
            let position = q.next.to_string();
            q.next += 1;
            q.events.push_back(Queued {
                position,
                event: event.clone(),
            });
            Pushed::Queued
        });
        if pushed == Pushed::Queued {
            self.wakers.wake(&event.app);
        }
        Ok(pushed)
    }

    async fn seen(&self, app: &str, dedup: &str) -> Result<bool, QueueError> {
        let now = self.clock.now_ms();
        Ok(self.with(app, |q| q.seen.get(dedup).is_some_and(|until| *until > now)))
    }

    async fn head(&self, app: &str) -> Result<Option<Queued>, QueueError> {
        Ok(self.with(app, |q| q.events.front().cloned()))
    }

    async fn ack(&self, app: &str, done: &Queued) -> Result<(), QueueError> {
        self.with(app, |q| q.events.retain(|e| e.position != done.position));
        Ok(())
    }

    /// Kept for [`DEAD_TTL`] as the other backends keep them, but only while the process
    /// lives, and at most [`DEAD_MAX`].
    async fn park(&self, app: &str, dead: &Queued) -> Result<(), QueueError> {
        self.park_at(app, &dead.position).await.map(drop)
    }

    async fn queued(&self, app: &str, limit: usize) -> Result<Vec<Queued>, QueueError> {
        Ok(self.with(app, |q| q.events.iter().take(limit).cloned().collect()))
    }

    async fn park_at(&self, app: &str, position: &str) -> Result<bool, QueueError> {
        let now = self.clock.now_ms();
        Ok(self.with(app, |q| {
            let Some(at) = q.events.iter().position(|e| e.position == position) else {
                return false;
            };
            let parked = q.events.remove(at).expect("found");
            let ttl = DEAD_TTL.as_millis() as u64;
            q.dead.retain(|(t, _)| t.saturating_add(ttl) > now);
            if q.dead.len() >= DEAD_MAX {
                q.dead.pop_front();
            }
            q.dead.push_back((now, parked));
            true
        }))
    }

    async fn parked(&self, app: &str, limit: usize) -> Result<Vec<Parked>, QueueError> {
        Ok(self.with(app, |q| {
            q.dead
                .iter()
                .take(limit)
                .map(|(at, e)| Parked {
                    position: e.position.clone(),
                    parked_at: *at,
                    event: Some(e.event.clone()),
                })
                .collect()
        }))
    }

    async fn replay(&self, app: &str, position: Option<&str>) -> Result<u64, QueueError> {
        let n = self.with(app, |q| {
            let mut back = Vec::new();
            match position {
                Some(p) => {
                    if let Some(at) = q.dead.iter().position(|(_, e)| e.position == p) {
                        back.extend(q.dead.remove(at));
                    }
                }
                None => {
                    let n = q.dead.len().min(PARKED_PAGE);
                    back.extend(q.dead.drain(..n));
                }
            }
            for (_, e) in &back {
                let position = q.next.to_string();
                q.next += 1;
                q.events.push_back(Queued {
                    position,
                    event: e.event.clone(),
                });
            }
            back.len() as u64
        });
        if n > 0 {
            self.wakers.wake(app);
        }
        Ok(n)
    }

    async fn depth(&self, app: &str) -> Result<u64, QueueError> {
        Ok(self.with(app, |q| q.events.len() as u64))
    }

    async fn wait(&self, app: &str, limit: Duration) {
        self.wakers.wait(app, limit).await
    }
}
