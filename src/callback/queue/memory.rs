//! The queue of one process, in memory: for tests and the demo (lost at exit).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use wecom_api::Clock;

use super::{EventQueue, Pushed, QueueError, Queued, Wakers, DEDUP_TTL};
use crate::callback::event::Event;

#[derive(Default)]
struct AppQueue {
    next: u64,
    events: VecDeque<Queued>,
    /// De-duplication key -> Unix ms it lapses at.
    seen: std::collections::HashMap<String, u64>,
}

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

    async fn head(&self, app: &str) -> Result<Option<Queued>, QueueError> {
        Ok(self.with(app, |q| q.events.front().cloned()))
    }

    async fn ack(&self, app: &str, done: &Queued) -> Result<(), QueueError> {
        self.with(app, |q| q.events.retain(|e| e.position != done.position));
        Ok(())
    }

    /// Nothing outlives the process here: a dead event is only dropped (and counted).
    async fn park(&self, app: &str, dead: &Queued) -> Result<(), QueueError> {
        self.ack(app, dead).await
    }

    async fn depth(&self, app: &str) -> Result<u64, QueueError> {
        Ok(self.with(app, |q| q.events.len() as u64))
    }

    async fn wait(&self, app: &str, limit: Duration) {
        self.wakers.wait(app, limit).await
    }
}
