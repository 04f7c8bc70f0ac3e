//! What every queue backend must do with parked events, written once and asked of each: the
//! in-process ones by the unit tests, Redis by `tests/redis.rs`.

use super::EventQueue;
use crate::callback::event::Event;

fn event(n: u32, dedup: &str) -> Event {
    Event::new("crm", format!("<xml><N>{n}</N></xml>"), dedup.to_owned(), 1)
}

/// What was queued is remembered by its key, for its app alone, delivered or parked or not:
/// a copy of it must not act again.
pub async fn remembers_what_it_queued(q: &dyn EventQueue) {
    assert!(!q.seen("crm", "s1").await.unwrap());
    q.push(&event(1, "s1")).await.unwrap();
    assert!(q.seen("crm", "s1").await.unwrap());
    assert!(!q.seen("crm", "s2").await.unwrap());
    assert!(!q.seen("other", "s1").await.unwrap());
    let h = q.head("crm").await.unwrap().unwrap();
    q.ack("crm", &h).await.unwrap();
    assert!(q.seen("crm", "s1").await.unwrap(), "after delivery too");
}

async fn listed(q: &dyn EventQueue) -> Vec<(String, u64)> {
    let mut apps = q.queued_apps().await.unwrap();
    apps.sort();
    apps
}

/// Every app with undelivered events is listed with their number (an app the config no longer
/// forwards for included: nothing else would show its events); one whose events were all
/// delivered or parked is not. A prefix's glob characters are its own.
pub async fn lists_the_apps_with_events(q: &dyn EventQueue) {
    let of = |app: &str, n: u32| {
        Event::new(
            app,
            format!("<xml><N>{n}</N></xml>"),
            format!("{app}{n}"),
            1,
        )
    };
    q.push(&of("old", 1)).await.unwrap();
    q.push(&of("old", 2)).await.unwrap();
    q.push(&of("crm", 1)).await.unwrap();
    q.push(&of("crm*x", 1)).await.unwrap();
    assert_eq!(
        listed(q).await,
        [
            ("crm".to_owned(), 1),
            ("crm*x".to_owned(), 1),
            ("old".to_owned(), 2)
        ]
    );
    for app in ["crm", "crm*x"] {
        let h = q.head(app).await.unwrap().unwrap();
        q.ack(app, &h).await.unwrap();
    }
    let h = q.head("old").await.unwrap().unwrap();
    q.park("old", &h).await.unwrap();
    assert_eq!(listed(q).await, [("old".to_owned(), 1)]);
}

/// Parked events are listed oldest first and put back at the end of the queue, one by its
/// position or all, with their ids; the queue's own order is kept for what was there.
pub async fn parks_and_replays(q: &dyn EventQueue) {
    for n in 0..4 {
        q.push(&event(n, &format!("p{n}"))).await.unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let h = q.head("crm").await.unwrap().unwrap();
        ids.push(h.event.id.clone());
        q.park("crm", &h).await.unwrap();
    }
    assert_eq!(q.depth("crm").await.unwrap(), 1);
    let parked = q.parked("crm", 10).await.unwrap();
    let listed: Vec<&str> = parked
        .iter()
        .map(|p| p.event.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(listed, ids, "oldest first");
    assert_eq!(
        q.parked("crm", 2).await.unwrap().len(),
        2,
        "at most the limit"
    );
    assert!(q.parked("other", 10).await.unwrap().is_empty(), "per app");
    assert_eq!(q.replay("other", None).await.unwrap(), 0);
    assert_eq!(q.replay("crm", Some("no-such")).await.unwrap(), 0);

    // The middle one alone, then the rest.
    assert_eq!(q.replay("crm", Some(&parked[1].position)).await.unwrap(), 1);
    assert_eq!(q.replay("crm", Some(&parked[1].position)).await.unwrap(), 0);
    assert_eq!(q.replay("crm", None).await.unwrap(), 2);
    assert!(q.parked("crm", 10).await.unwrap().is_empty());
    assert_eq!(q.depth("crm").await.unwrap(), 4);
    let mut order = Vec::new();
    while let Some(h) = q.head("crm").await.unwrap() {
        order.push(h.event.message.clone());
        q.ack("crm", &h).await.unwrap();
    }
    let want: Vec<String> = [3, 1, 0, 2]
        .iter()
        .map(|n| format!("<xml><N>{n}</N></xml>"))
        .collect();
    assert_eq!(
        order, want,
        "what waited first, then the replayed in the order replayed"
    );
}

/// What waits is listed oldest first without being taken for delivery, and an operator parks
/// one by its position: the others keep their order, a position that names no undelivered
/// event parks nothing.
pub async fn lists_and_parks_by_position(q: &dyn EventQueue) {
    for n in 0..3 {
        q.push(&event(n, &format!("q{n}"))).await.unwrap();
    }
    let listed = q.queued("crm", 10).await.unwrap();
    let bodies: Vec<&str> = listed.iter().map(|e| e.event.message.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "<xml><N>0</N></xml>",
            "<xml><N>1</N></xml>",
            "<xml><N>2</N></xml>"
        ]
    );
    assert_eq!(
        q.queued("crm", 2).await.unwrap().len(),
        2,
        "at most the limit"
    );
    assert!(q.queued("other", 10).await.unwrap().is_empty(), "per app");
    let head = q.head("crm").await.unwrap().unwrap();
    assert_eq!(head, listed[0], "looking took nothing");
    assert_eq!(
        q.queued("crm", 10).await.unwrap(),
        listed,
        "and moved nothing"
    );

    assert!(q.park_at("crm", &listed[1].position).await.unwrap());
    assert!(
        !q.park_at("crm", &listed[1].position).await.unwrap(),
        "once"
    );
    assert!(
        !q.park_at("other", &listed[2].position).await.unwrap(),
        "per app"
    );
    for bad in ["no-such", "", "99999999", "99999999-0", "0-"] {
        assert!(!q.park_at("crm", bad).await.unwrap(), "{bad:?}");
    }
    assert_eq!(q.depth("crm").await.unwrap(), 2);
    let parked = q.parked("crm", 10).await.unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].event.as_ref(), Some(&listed[1].event));
    // The head too; the delivery that then gives up on it parks nothing more.
    assert!(q.park_at("crm", &head.position).await.unwrap());
    q.park("crm", &head).await.unwrap();
    assert_eq!(q.parked("crm", 10).await.unwrap().len(), 2, "parked once");
    let left = q.head("crm").await.unwrap().unwrap();
    assert_eq!(left.event, listed[2].event);
    q.ack("crm", &left).await.unwrap();
    assert_eq!(q.head("crm").await.unwrap(), None);
    assert_eq!(q.parked("crm", 10).await.unwrap().len(), 2);
    // Nor does a delivery's ack or park of what is no longer queued.
    q.park("crm", &left).await.unwrap();
    assert_eq!(q.parked("crm", 10).await.unwrap().len(), 2);
}
