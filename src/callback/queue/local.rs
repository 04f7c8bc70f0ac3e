//! The queue in the `local` database file (SPEC section 21): a push is one transaction — the
//! de-duplication key and the event together, or neither — committed and fsync'd before it
//! returns, so an event WeCom was told `success` about survives `kill -9` and power loss.
//! Concurrent pushes share a commit (the store's writer batches them).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dashmap::DashMap;
use redb::{ReadableTable, TableDefinition};
use wecom_api::{Clock, LocalStore};

use super::{
    EventQueue, Parked, Pushed, QueueError, Queued, Wakers, DEAD_TTL, DEDUP_TTL, PARKED_PAGE,
};
use crate::callback::event::Event;

/// (app, sequence) -> the event as JSON.
pub(super) const EVENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("events");
/// app -> the next sequence number (never reused, so positions stay unique).
const NEXT: TableDefinition<&str, u64> = TableDefinition::new("events_next");
/// (app, de-duplication key) -> Unix ms it lapses at.
const SEEN: TableDefinition<(&str, &str), u64> = TableDefinition::new("events_seen");
/// (app, sequence) -> (Unix ms it was parked, the event as JSON).
pub(super) const DEAD: TableDefinition<(&str, u64), (u64, &str)> =
    TableDefinition::new("events_dead");

pub struct LocalQueue {
    store: Arc<LocalStore>,
    clock: Clock,
    wakers: Wakers,
    /// Undelivered events per app: one process owns the file, so counting once at open and
    /// keeping count after is exact, and the gauge never scans the table.
    depths: DashMap<String, u64>,
}

fn qerr(e: impl std::fmt::Display) -> QueueError {
    QueueError(e.to_string())
}

impl LocalQueue {
    pub async fn open(store: Arc<LocalStore>, clock: Clock) -> Result<LocalQueue, QueueError> {
        store
            .write(|txn| {
                txn.open_table(EVENTS)?;
                txn.open_table(NEXT)?;
                txn.open_table(SEEN)?;
                txn.open_table(DEAD)?;
                Ok(())
            })
            .await
            .map_err(qerr)?;
        store.sweeper(Box::new(|txn, now| {
            txn.open_table(SEEN)?.retain(|_, until| until > now)?;
            let dead_ttl = DEAD_TTL.as_millis() as u64;
            txn.open_table(DEAD)?
                .retain(|_, (parked, _)| parked.saturating_add(dead_ttl) > now)?;
            Ok(())
        }));
        let counts = store
            .read(|txn| {
                let mut counts: Vec<(String, u64)> = Vec::new();
                for row in txn.open_table(EVENTS)?.iter()? {
                    let (k, _) = row?;
                    let app = k.value().0;
                    match counts.last_mut() {
                        Some((a, n)) if a == app => *n += 1,
                        _ => counts.push((app.to_owned(), 1)),
                    }
                }
                Ok(counts)
            })
            .await
            .map_err(qerr)?;
        Ok(LocalQueue {
            store,
            clock,
            wakers: Wakers::default(),
            depths: counts.into_iter().collect(),
        })
    }

    fn count(&self, app: &str, delta: i64) {
        let mut d = self.depths.entry(app.to_owned()).or_insert(0);
        *d = d.saturating_add_signed(delta);
    }

    /// Removes the event at `position`, parking it first when `dead`; `false`: none there.
    async fn remove(&self, app: &str, q: &Queued, dead: bool) -> Result<bool, QueueError> {
        let seq: u64 = q.position.parse().map_err(qerr)?;
        let (app_owned, now) = (app.to_owned(), self.clock.now_ms());
        let removed = self
            .store
            .write(move |txn| {
                let mut events = txn.open_table(EVENTS)?;
                let Some(json) = events.remove((app_owned.as_str(), seq))? else {
                    return Ok(false);
                };
                if dead {
                    let json = json.value().to_owned();
                    txn.open_table(DEAD)?
                        .insert((app_owned.as_str(), seq), (now, json.as_str()))?;
                }
                Ok(true)
            })
            .await
            .map_err(qerr)?;
        if removed {
            self.count(app, -1);
        }
        Ok(removed)
    }
}

#[async_trait]
impl EventQueue for LocalQueue {
    async fn push(&self, event: &Event) -> Result<Pushed, QueueError> {
        let json = serde_json::to_string(event).map_err(qerr)?;
        let now = self.clock.now_ms();
        let until = now + DEDUP_TTL.as_millis() as u64;
        let (app, dedup) = (event.app.clone(), event.dedup.clone());
        let pushed = self
            .store
            .write(move |txn| {
                let mut seen = txn.open_table(SEEN)?;
                let known = seen
                    .get((app.as_str(), dedup.as_str()))?
                    .is_some_and(|g| g.value() > now);
                if known {
                    return Ok(Pushed::Duplicate);
                }
                seen.insert((app.as_str(), dedup.as_str()), until)?;
                let mut next = txn.open_table(NEXT)?;
                let seq = next.get(app.as_str())?.map_or(0, |g| g.value());
                next.insert(app.as_str(), seq + 1)?;
                txn.open_table(EVENTS)?
                    .insert((app.as_str(), seq), json.as_str())?;
                Ok(Pushed::Queued)
            })
            .await
            .map_err(qerr)?;
        if pushed == Pushed::Queued {
            self.count(&event.app, 1);
            self.wakers.wake(&event.app);
        }
        Ok(pushed)
    }

    async fn seen(&self, app: &str, dedup: &str) -> Result<bool, QueueError> {
        let now = self.clock.now_ms();
        let (app, dedup) = (app.to_owned(), dedup.to_owned());
        self.store
            .read(move |txn| {
                let seen = txn.open_table(SEEN)?;
                Ok(seen
                    .get((app.as_str(), dedup.as_str()))?
                    .is_some_and(|g| g.value() > now))
            })
            .await
            .map_err(qerr)
    }

    async fn head(&self, app: &str) -> Result<Option<Queued>, QueueError> {
        loop {
            let owned = app.to_owned();
            let first = self
                .store
                .read(move |txn| {
                    let events = txn.open_table(EVENTS)?;
                    let mut range =
                        events.range((owned.as_str(), 0)..=(owned.as_str(), u64::MAX))?;
                    let Some(row) = range.next() else {
                        return Ok(None);
                    };
                    let (k, v) = row?;
                    Ok(Some((k.value().1, v.value().to_owned())))
                })
                .await
                .map_err(qerr)?;
            let Some((seq, json)) = first else {
                return Ok(None);
            };
            let position = seq.to_string();
            match serde_json::from_str(&json) {
                Ok(event) => return Ok(Some(Queued { position, event })),
                Err(e) => {
                    // A row that no longer reads (damaged on disk, or written by another
                    // version) would hold every later event back for ever: it is parked as
                    // it is, kept with the parked ones, and said once.
                    tracing::error!(
                        app,
                        position = %position,
                        error = %e,
                        "unreadable queued event parked (kept as written with the parked events)"
                    );
                    let q = Queued {
                        position,
                        event: Event::new(app, String::new(), String::new(), 0),
                    };
                    self.remove(app, &q, true).await?;
                }
            }
        }
    }

    async fn ack(&self, app: &str, q: &Queued) -> Result<(), QueueError> {
        self.remove(app, q, false).await.map(drop)
    }

    async fn park(&self, app: &str, q: &Queued) -> Result<(), QueueError> {
        self.remove(app, q, true).await.map(drop)
    }

    async fn queued(&self, app: &str, limit: usize) -> Result<Vec<Queued>, QueueError> {
        let owned = app.to_owned();
        self.store
            .read(move |txn| {
                let events = txn.open_table(EVENTS)?;
                let mut out = Vec::new();
                for row in events.range((owned.as_str(), 0)..=(owned.as_str(), u64::MAX))? {
                    if out.len() == limit {
                        break;
                    }
                    let (k, v) = row?;
                    if let Ok(event) = serde_json::from_str(v.value()) {
                        out.push(Queued {
                            position: k.value().1.to_string(),
                            event,
                        });
                    }
                }
                Ok(out)
            })
            .await
            .map_err(qerr)
    }

    async fn park_at(&self, app: &str, position: &str) -> Result<bool, QueueError> {
        // A position that is not one of ours names nothing.
        if position.parse::<u64>().is_err() {
            return Ok(false);
        }
        let q = Queued {
            position: position.to_owned(),
            event: Event::new(app, String::new(), String::new(), 0),
        };
        self.remove(app, &q, true).await
    }

    async fn parked(&self, app: &str, limit: usize) -> Result<Vec<Parked>, QueueError> {
        let owned = app.to_owned();
        self.store
            .read(move |txn| {
                let dead = txn.open_table(DEAD)?;
                let mut out = Vec::new();
                for row in dead
                    .range((owned.as_str(), 0)..=(owned.as_str(), u64::MAX))?
                    .take(limit)
                {
                    let (k, v) = row?;
                    let (parked_at, json) = v.value();
                    out.push(Parked {
                        position: k.value().1.to_string(),
                        parked_at,
                        event: serde_json::from_str(json).ok(),
                    });
                }
                Ok(out)
            })
            .await
            .map_err(qerr)
    }

    async fn replay(&self, app: &str, position: Option<&str>) -> Result<u64, QueueError> {
        // A position that is not one of ours names nothing.
        let one = match position.map(str::parse::<u64>) {
            Some(Err(_)) => return Ok(0),
            Some(Ok(seq)) => Some(seq),
            None => None,
        };
        let owned = app.to_owned();
        let n = self
            .store
            .write(move |txn| {
                let app = owned.as_str();
                let mut dead = txn.open_table(DEAD)?;
                let (from, to) = match one {
                    Some(seq) => (seq, seq),
                    None => (0, u64::MAX),
                };
                // The rows that read, in order; the others stay parked.
                let mut back: Vec<(u64, String)> = Vec::new();
                for row in dead.range((app, from)..=(app, to))? {
                    let (k, v) = row?;
                    let json = v.value().1;
                    if serde_json::from_str::<Event>(json).is_ok() {
                        back.push((k.value().1, json.to_owned()));
                        if back.len() == PARKED_PAGE {
                            break;
                        }
                    }
                }
                let mut next = txn.open_table(NEXT)?;
                let mut seq = next.get(app)?.map_or(0, |g| g.value());
                let mut events = txn.open_table(EVENTS)?;
                for (parked, json) in &back {
                    dead.remove((app, *parked))?;
                    events.insert((app, seq), json.as_str())?;
                    seq += 1;
                }
                next.insert(app, seq)?;
                Ok(back.len() as u64)
            })
            .await
            .map_err(qerr)?;
        if n > 0 {
            self.count(app, n as i64);
            self.wakers.wake(app);
        }
        Ok(n)
    }

    async fn depth(&self, app: &str) -> Result<u64, QueueError> {
        Ok(self.depths.get(app).map_or(0, |d| *d))
    }

    async fn queued_apps(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let mut apps: Vec<(String, u64)> = self
            .depths
            .iter()
            .filter(|d| *d.value() > 0)
            .map(|d| (d.key().clone(), *d.value()))
            .collect();
        apps.sort();
        Ok(apps)
    }

    async fn wait(&self, app: &str, limit: Duration) {
        self.wakers.wait(app, limit).await
    }
}
