//! The same behaviour asked of every backend that runs in-process.

use super::*;
use wecom_api::{Clock, LocalStore};

fn event(app: &str, n: u32, dedup: &str) -> Event {
    Event::new(app, format!("<xml><N>{n}</N></xml>"), dedup.to_owned(), 1)
}

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new() -> TempFile {
        TempFile(std::env::temp_dir().join(format!(
            "wgw-queue-{}-{:x}.db",
            std::process::id(),
            rand::random::<u64>()
        )))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The queue and its store, for a test that writes rows of its own beside the queue's.
async fn local_with_store(f: &TempFile, clock: &Clock) -> (Arc<LocalStore>, LocalQueue) {
    let store = Arc::new(LocalStore::open(&f.0, clock.clone()).unwrap());
    let q = LocalQueue::open(store.clone(), clock.clone())
        .await
        .unwrap();
    (store, q)
}

async fn local(f: &TempFile, clock: &Clock) -> LocalQueue {
    let store = Arc::new(LocalStore::open(&f.0, clock.clone()).unwrap());
    LocalQueue::open(store, clock.clone()).await.unwrap()
}

/// Order per app, apps apart, duplicates refused until their key lapses, ack and park.
async fn behaves(q: &dyn EventQueue, clock: &Clock) {
    assert_eq!(q.head("crm").await.unwrap(), None);
    for n in 0..5 {
        assert_eq!(
            q.push(&event("crm", n, &format!("k{n}"))).await.unwrap(),
            Pushed::Queued
        );
    }
    assert_eq!(
        q.push(&event("other", 9, "k0")).await.unwrap(),
        Pushed::Queued,
        "keys are per app"
    );
    assert_eq!(
        q.push(&event("crm", 7, "k3")).await.unwrap(),
        Pushed::Duplicate
    );
    assert_eq!(q.depth("crm").await.unwrap(), 5);
    assert_eq!(q.depth("other").await.unwrap(), 1);
    let mut seen = Vec::new();
    while let Some(h) = q.head("crm").await.unwrap() {
        assert_eq!(
            q.head("crm").await.unwrap().as_ref(),
            Some(&h),
            "the head stays until acked"
        );
        seen.push(h.event.message.clone());
        if seen.len() == 2 {
            q.park("crm", &h).await.unwrap();
        } else {
            q.ack("crm", &h).await.unwrap();
        }
    }
    let want: Vec<String> = (0..5).map(|n| format!("<xml><N>{n}</N></xml>")).collect();
    assert_eq!(seen, want);
    assert_eq!(q.depth("crm").await.unwrap(), 0);
    assert_eq!(
        q.push(&event("crm", 3, "k3")).await.unwrap(),
        Pushed::Duplicate,
        "acked, still seen"
    );
    clock.advance(DEDUP_TTL);
    assert_eq!(
        q.push(&event("crm", 3, "k3")).await.unwrap(),
        Pushed::Queued,
        "lapsed"
    );
}

#[tokio::test]
async fn the_memory_queue_keeps_order_and_refuses_duplicates() {
    let clock = Clock::system();
    behaves(&MemoryQueue::new(clock.clone()), &clock).await;
}

#[tokio::test]
async fn the_local_queue_keeps_order_and_refuses_duplicates() {
    let clock = Clock::system();
    let f = TempFile::new();
    behaves(&local(&f, &clock).await, &clock).await;
}

#[tokio::test]
async fn the_local_queue_survives_a_reopen_whole() {
    let clock = Clock::system();
    let f = TempFile::new();
    let events: Vec<Event> = (0..50).map(|n| event("crm", n, &format!("k{n}"))).collect();
    {
        let q = local(&f, &clock).await;
        for e in &events {
            assert_eq!(q.push(e).await.unwrap(), Pushed::Queued);
        }
        let h = q.head("crm").await.unwrap().unwrap();
        q.ack("crm", &h).await.unwrap();
    }
    let q = local(&f, &clock).await;
    assert_eq!(q.depth("crm").await.unwrap(), 49, "counted at open");
    assert_eq!(
        q.push(&event("crm", 0, "k0")).await.unwrap(),
        Pushed::Duplicate,
        "keys survive"
    );
    let mut got = Vec::new();
    while let Some(h) = q.head("crm").await.unwrap() {
        q.ack("crm", &h).await.unwrap();
        got.push(h.event);
    }
    assert_eq!(got, events[1..], "the same events, in order, ids and all");
}

/// A queued row that no longer reads (damaged on disk, or written by another version) is
/// parked as it is and said once; the events after it come up, none lost.
#[tokio::test]
async fn an_unreadable_local_row_is_parked_and_the_next_comes_up() {
    let clock = Clock::system();
    let f = TempFile::new();
    let (store, q) = local_with_store(&f, &clock).await;
    for n in 0..3 {
        q.push(&event("crm", n, &format!("k{n}"))).await.unwrap();
    }
    store
        .write(|txn| {
            txn.open_table(local::EVENTS)?
                .insert(("crm", 1), "{\"app\":\"crm\",\u{1}")?;
            Ok(())
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(h) = q.head("crm").await.unwrap() {
        seen.push(h.event.message.clone());
        q.ack("crm", &h).await.unwrap();
    }
    assert_eq!(seen, ["<xml><N>0</N></xml>", "<xml><N>2</N></xml>"]);
    assert_eq!(q.depth("crm").await.unwrap(), 0);
    let parked = store
        .read(|txn| {
            let dead = txn.open_table(local::DEAD)?;
            let row = dead.get(("crm", 1))?.map(|v| v.value().1.to_owned());
            Ok(row)
        })
        .await
        .unwrap();
    assert_eq!(
        parked.as_deref(),
        Some("{\"app\":\"crm\",\u{1}"),
        "kept as written"
    );
}

#[tokio::test]
async fn the_memory_queue_lists_and_replays_parked_events() {
    conformance::parks_and_replays(&MemoryQueue::new(Clock::system())).await;
    conformance::remembers_what_it_queued(&MemoryQueue::new(Clock::system())).await;
    conformance::lists_and_parks_by_position(&MemoryQueue::new(Clock::system())).await;
}

#[tokio::test]
async fn the_local_queue_lists_and_replays_parked_events() {
    let clock = Clock::system();
    let f = TempFile::new();
    conformance::parks_and_replays(&local(&f, &clock).await).await;
    let f = TempFile::new();
    conformance::remembers_what_it_queued(&local(&f, &clock).await).await;
    let f = TempFile::new();
    conformance::lists_and_parks_by_position(&local(&f, &clock).await).await;
    let f = TempFile::new();
    conformance::lists_the_apps_with_events(&local(&f, &clock).await).await;
    // Counted again from the file at the next start, where the list is asked for.
    let reopened = local(&f, &clock).await;
    assert_eq!(
        reopened.queued_apps().await.unwrap(),
        [("old".to_owned(), 1)]
    );
}

/// A parked row that no longer reads is listed as such and stays parked when all are replayed.
#[tokio::test]
async fn an_unreadable_parked_row_is_listed_and_not_replayed() {
    let clock = Clock::system();
    let f = TempFile::new();
    let (store, q) = local_with_store(&f, &clock).await;
    q.push(&event("crm", 0, "k0")).await.unwrap();
    let h = q.head("crm").await.unwrap().unwrap();
    q.park("crm", &h).await.unwrap();
    store
        .write(|txn| {
            txn.open_table(local::DEAD)?
                .insert(("crm", 100), (1, "{\u{1}"))?;
            Ok(())
        })
        .await
        .unwrap();
    let parked = q.parked("crm", 10).await.unwrap();
    assert_eq!(parked.len(), 2);
    assert!(parked[0].event.is_some() && parked[1].event.is_none());
    assert_eq!(q.replay("crm", Some("100")).await.unwrap(), 0);
    assert_eq!(q.replay("crm", None).await.unwrap(), 1);
    let left = q.parked("crm", 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].position, "100");
    assert_eq!(q.head("crm").await.unwrap().unwrap().event, h.event);
}
