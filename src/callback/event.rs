//! A received callback as the queue keeps it, and what can be read off it without I/O: its
//! metric label, its de-duplication key and what the gateway itself must do about it.

use crate::suite::install::Moment;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wecom_api::{XmlMessage, XmlValue};

/// One queued callback. Everything the delivery needs is here, so that a restarted process
/// (or another instance) delivers it exactly as the first would have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `X-Gateway-Event-Id`: given once, when queued; the same on every retry, so the CRM can
    /// tell a redelivery from a new event.
    pub id: String,
    pub app: String,
    /// Unix ms, the gateway's clock, when it was queued.
    pub queued_at: u64,
    /// The decrypted plaintext, exactly as WeCom sent it.
    pub message: String,
    /// The [`dedup_key`] it was queued under.
    pub dedup: String,
    /// As of when the gateway acted on it at the endpoint ([`Moment::at`]): the delivery acts
    /// again as of the same time (events queued before it was kept work it out again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<u64>,
    /// A self-built app's corp and agent when it was received and verified: delivered and
    /// acted on as theirs after a reload that points the app elsewhere. A suite's message:
    /// the installed corp a data callback was encrypted for (its `ToUserName` is only what the
    /// sender wrote), empty for one encrypted for the suite (an instruction names no corp of
    /// its own); none in an event queued before this was kept, whose `ToUserName` the
    /// endpoint then checked against the corp of a data callback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<u64>,
    /// Its reactions were applied, and their log lines written, at the endpoint: the delivery
    /// applies them again without a word. Not so (a corp whose install came after the event)
    /// the delivery's application is the one the log tells.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub told: bool,
}

impl Event {
    pub fn new(app: &str, message: String, dedup: String, now_ms: u64) -> Event {
        Event {
            id: format!("{:032x}", rand::random::<u128>()),
            app: app.to_owned(),
            queued_at: now_ms,
            message,
            dedup,
            at: None,
            corp: None,
            agent: None,
            told: false,
        }
    }
}

/// The de-duplication key (SPEC section 18): WeCom retries a message it did not hear back
/// about in 5 s, three times, the same plaintext each time.
///
/// - a message with a `MsgId`: that id;
/// - anything else (events, third-party `InfoType` notices): a digest of every top-level
///   field, which covers `FromUserName`, `CreateTime`, `Event`, `ChangeType`, the ids (and
///   `SuiteId`, `InfoType`, `TimeStamp`). Taking every field rather than a chosen few means two
///   events that differ in anything (`update_tag` adding two lists within one second) are
///   never taken for one another: over-eager de-duplication loses events, and a retry is
///   byte-for-byte the same message anyway.
pub fn dedup_key(msg: &XmlMessage) -> String {
    if let Some(id) = msg.get("MsgId").filter(|v| !v.is_empty()) {
        return format!("msg:{id}");
    }
    let mut h = Sha256::new();
    hash_fields(&mut h, &msg.fields);
    format!("sum:{}", hex::encode(&h.finalize()[..16]))
}

fn hash_fields(h: &mut Sha256, fields: &[(String, XmlValue)]) {
    for (name, value) in fields {
        // Lengths first: no two different field lists hash the same bytes.
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        match value {
            XmlValue::Text(t) => {
                h.update([0]);
                h.update((t.len() as u64).to_be_bytes());
                h.update(t.as_bytes());
            }
            XmlValue::Children(c) => {
                h.update([1]);
                h.update((c.len() as u64).to_be_bytes());
                hash_fields(h, c);
            }
        }
    }
}

/// The `event` label of `wgw_events_total`: from this fixed set, `other` for anything else,
/// so that nothing WeCom (or a forger with the key) sends becomes a new time series.
const LABELS: &[&str] = &[
    "change_contact/create_user",
    "change_contact/update_user",
    "change_contact/delete_user",
    "change_contact/create_party",
    "change_contact/update_party",
    "change_contact/delete_party",
    "change_contact/update_tag",
    "change_external_contact/add_external_contact",
    "change_external_contact/edit_external_contact",
    "change_external_contact/add_half_external_contact",
    "change_external_contact/del_external_contact",
    "change_external_contact/del_follow_user",
    "change_external_contact/transfer_fail",
    "change_external_chat/create",
    "change_external_chat/update",
    "change_external_chat/dismiss",
    "change_external_tag/create",
    "change_external_tag/update",
    "change_external_tag/delete",
    "subscribe",
    "unsubscribe",
    "enter_agent",
    "click",
    "view",
    "batch_job_result",
    "msg/text",
    "msg/image",
    "msg/voice",
    "msg/video",
    "msg/location",
    "msg/link",
    "suite_ticket",
    "create_auth",
    "change_auth",
    "cancel_auth",
    "reset_permanent_code",
];

pub fn label(msg: &XmlMessage) -> &'static str {
    let candidate = if let Some(info) = msg.get("InfoType") {
        info.to_owned()
    } else if msg.get("MsgType") == Some("event") {
        let event = msg.get("Event").unwrap_or_default();
        match msg.get("ChangeType") {
            Some(c) => format!("{event}/{c}"),
            None => event.to_owned(),
        }
    } else {
        format!("msg/{}", msg.get("MsgType").unwrap_or_default())
    };
    LABELS
        .iter()
        .find(|l| **l == candidate)
        .copied()
        .unwrap_or("other")
}

/// What the gateway does itself about an event (SPEC section 18), before the CRM hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// `change_contact/delete_user`: every session of this member ends, on every instance.
    EndMember { corp: String, userid: String },
    /// `del_follow_user` / `del_external_contact`: the pair's verification is dropped and
    /// its page tickets refuse.
    DropContact {
        corp: String,
        userid: String,
        external_userid: String,
    },
}

/// How far WeCom's clock may run ahead of this machine's for [`acted_at`].
pub const CLOCK_ALLOWANCE_SECS: u64 = 60;

/// As of when the gateway acts on an event (Unix s): when WeCom says it happened
/// (`CreateTime`, an instruction's `TimeStamp`) on this machine's clock (`ahead`: how far it
/// runs ahead of WeCom's), allowing for WeCom's clock running a minute ahead, never later than
/// `received` (when it first arrived). A replay of a captured callback, or WeCom's own late
/// retry, so ends only the sessions and installs that were there when the event happened,
/// never a member's new login or a corp's new install.
pub fn acted_at(msg: &XmlMessage, received: u64, ahead: u64) -> u64 {
    wecom_time(msg).map_or(received, |t| {
        received.min(t.saturating_add(ahead).saturating_add(CLOCK_ALLOWANCE_SECS))
    })
}

/// How far this machine's clock runs ahead of WeCom's, as its callbacks tell it: the least
/// `received - CreateTime` of the last few (the promptest delivery tells it best; a late
/// retry only says more), never below zero (WeCom's clock ahead is what
/// [`CLOCK_ALLOWANCE_SECS`] covers, and a revocation never ends more than up to its arrival).
/// Without it, sessions issued in the minutes a clock ahead adds outlived a `delete_user`.
pub struct ClockAhead {
    samples: std::sync::Mutex<std::collections::VecDeque<(u64, u64)>>,
}

impl ClockAhead {
    const SAMPLES: usize = 16;
    /// A sample counts this long (s): a clock stepped since is read anew within minutes.
    const WINDOW_SECS: u64 = 600;

    pub const fn new() -> ClockAhead {
        ClockAhead {
            samples: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Takes in `msg`, first received at `received` (s), and says how far ahead this clock
    /// runs now.
    pub fn observe(&self, msg: &XmlMessage, received: u64) -> u64 {
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = wecom_time(msg) {
            if samples.len() == Self::SAMPLES {
                samples.pop_front();
            }
            samples.push_back((received, received.saturating_sub(t)));
        }
        samples
            .iter()
            .filter(|(at, _)| received.abs_diff(*at) < Self::WINDOW_SECS)
            .map(|(_, ahead)| *ahead)
            .min()
            .unwrap_or(0)
    }
}

impl Default for ClockAhead {
    fn default() -> Self {
        ClockAhead::new()
    }
}

/// When the event of `msg` happened ([`Moment`]): as of `received` on this machine's clock, and
/// WeCom's own time taken as it says up to a minute past `received` (its clock may run that far
/// ahead): a message dated later (a millisecond time, a key holder's forgery) would outrank
/// every message of the years until then.
pub fn moment(msg: &XmlMessage, received_ms: u64, ahead: u64) -> Moment {
    let received = received_ms / 1000;
    let latest = received.saturating_add(CLOCK_ALLOWANCE_SECS);
    Moment {
        at: acted_at(msg, received, ahead),
        wecom: wecom_time(msg).map(|t| t.min(latest)),
        received_ms,
    }
}

/// WeCom's own time of a message (`CreateTime`, an instruction's `TimeStamp`), if it has one.
fn wecom_time(msg: &XmlMessage) -> Option<u64> {
    ["CreateTime", "TimeStamp"]
        .iter()
        .find_map(|k| msg.get(k)?.trim().parse::<u64>().ok())
}

/// The corp a suite's instruction about a member or a contact change is about (WeCom sends
/// those of a third-party app to its instruction URL: `<InfoType>change_contact</InfoType>`,
/// `<AuthCorpId>`); `None` for any other instruction. (A data callback naming another corp
/// than the one it was encrypted for is refused at the endpoint.)
pub fn instruction_corp(msg: &XmlMessage) -> Option<&str> {
    if msg.get("MsgType").is_some() {
        return None;
    }
    matches!(
        msg.get("InfoType"),
        Some("change_contact" | "change_external_contact")
    )
    .then(|| msg.get("AuthCorpId"))
    .flatten()
    .filter(|c| !c.is_empty())
}

/// The reactions of a WeCom app's event. `corp` is the app's corp (the receive id it was
/// checked against), never a field of the message: `ToUserName` is only what the sender says.
pub fn reactions(corp: &str, msg: &XmlMessage) -> Vec<Reaction> {
    let field = |n: &str| msg.get(n).filter(|v| !v.is_empty()).map(str::to_owned);
    // An event of an app's (or a suite's data) URL; or the same change as a third-party
    // suite's instruction URL gets it (`InfoType` names it, `AuthCorpId` the corp: see
    // [`instruction_corp`]).
    let kind = match msg.get("MsgType") {
        Some("event") => msg.get("Event"),
        None => msg.get("InfoType"),
        Some(_) => return Vec::new(),
    };
    match (kind, msg.get("ChangeType")) {
        (Some("change_contact"), Some("delete_user")) => field("UserID")
            .map(|userid| Reaction::EndMember {
                corp: corp.to_owned(),
                userid,
            })
            .into_iter()
            .collect(),
        // A member's userid changed (`NewUserID`): sessions under the old one name someone
        // who no longer has it, and an `allow.users` rule reads the name alone; the old id may
        // be given to another member. They end; the member signs in again under the new one.
        (Some("change_contact"), Some("update_user")) => {
            match (field("UserID"), field("NewUserID")) {
                (Some(userid), Some(new)) if new != userid => vec![Reaction::EndMember {
                    corp: corp.to_owned(),
                    userid,
                }],
                _ => Vec::new(),
            }
        }
        (Some("change_external_contact"), Some("del_follow_user" | "del_external_contact")) => {
            match (field("UserID"), field("ExternalUserID")) {
                (Some(userid), Some(external_userid)) => vec![Reaction::DropContact {
                    corp: corp.to_owned(),
                    userid,
                    external_userid,
                }],
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(pairs: &[(&str, &str)]) -> XmlMessage {
        XmlMessage::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn two_instructions_are_ordered_by_wecoms_times_and_by_arrival_without_them() {
        let at = |received: u64, ts: Option<&str>| {
            let mut pairs = vec![("InfoType", "cancel_auth")];
            pairs.extend(ts.map(|t| ("TimeStamp", t)));
            moment(&msg(&pairs), received * 1000, 0)
        };
        // A removal of 1010 arriving at 1030, after a reinstall of 1020 that arrived at once.
        let removal = at(1030, Some("1010"));
        let reinstall = at(1020, Some("1020"));
        assert_eq!(removal.at, 1030);
        assert!(reinstall.after(&removal) && !removal.after(&reinstall));
        // One second of WeCom's: the later arrival is the later step.
        assert!(at(1021, Some("1020")).after(&reinstall));
        // Without WeCom's time on either: arrival.
        assert!(at(1030, None).after(&reinstall));
        assert!(!at(1010, None).after(&reinstall));
        // A time past a minute after arrival counts as that minute: a cancel arriving a
        // little later outranks an install dated in the far future (or in milliseconds).
        let future = at(1000, Some("18446744073709551615"));
        assert_eq!(future.wecom, Some(1060));
        assert!(at(1070, Some("1070")).after(&future));
        assert_eq!(at(1000, Some("1000000000000")).wecom, Some(1060));
    }

    /// This clock five minutes ahead of WeCom's: a `delete_user` that arrives at once acts as
    /// of its arrival (every session issued before it ends), not as of WeCom's time plus a
    /// minute on this clock, which let the last four minutes' sessions live on; a late retry
    /// still acts as of when the event happened.
    #[test]
    fn a_clock_ahead_of_wecoms_is_read_off_the_callbacks() {
        let ahead = ClockAhead::new();
        let m = |t: &str| msg(&[("CreateTime", t)]);
        // Prompt deliveries, 300 s apart on the two clocks.
        assert_eq!(ahead.observe(&m("1000"), 1301), 301);
        assert_eq!(ahead.observe(&m("1010"), 1310), 300);
        assert_eq!(acted_at(&m("1020"), 1320, 300), 1320);
        // A retry of an event of 1020, five minutes on: as of 1020 on this clock, a minute
        // allowed; the late one does not raise the reading.
        assert_eq!(ahead.observe(&m("1020"), 1620), 300);
        assert_eq!(acted_at(&m("1020"), 1620, 300), 1380);
        // WeCom ahead of this clock reads as zero (its minute of allowance covers it).
        let behind = ClockAhead::new();
        assert_eq!(behind.observe(&m("1030"), 1000), 0);
        assert_eq!(acted_at(&m("1030"), 1000, 0), 1000);
        // Without WeCom's time, or samples older than the window: nothing read.
        assert_eq!(ClockAhead::new().observe(&msg(&[]), 5000), 0);
        assert_eq!(ahead.observe(&msg(&[]), 1620 + 600), 0);
    }

    fn event(change: &str, extra: &[(&str, &str)]) -> XmlMessage {
        let mut p = vec![
            ("ToUserName", "ww1"),
            ("FromUserName", "sys"),
            ("CreateTime", "1700000000"),
            ("MsgType", "event"),
            ("Event", "change_external_contact"),
            ("ChangeType", change),
        ];
        p.extend_from_slice(extra);
        msg(&p)
    }

    #[test]
    fn retries_share_a_key_and_different_events_never_do() {
        let a = event(
            "del_follow_user",
            &[("UserID", "zhangsan"), ("ExternalUserID", "wmA")],
        );
        assert_eq!(dedup_key(&a), dedup_key(&a.clone()));
        let differing: &[XmlMessage] = &[
            event(
                "del_follow_user",
                &[("UserID", "zhangsan"), ("ExternalUserID", "wmB")],
            ),
            event(
                "del_follow_user",
                &[("UserID", "lisi"), ("ExternalUserID", "wmA")],
            ),
            event(
                "del_external_contact",
                &[("UserID", "zhangsan"), ("ExternalUserID", "wmA")],
            ),
            event(
                "del_follow_user",
                &[
                    ("UserID", "zhangsan"),
                    ("ExternalUserID", "wmA"),
                    ("Source", "x"),
                ],
            ),
            // Field boundaries: "ab"+"c" is not "a"+"bc".
            event(
                "del_follow_user",
                &[("UserID", "zhangsanw"), ("ExternalUserID", "mA")],
            ),
        ];
        for d in differing {
            assert_ne!(dedup_key(&a), dedup_key(d), "{d:?}");
        }
        let text = |id: &str, content: &str| {
            msg(&[("MsgType", "text"), ("Content", content), ("MsgId", id)])
        };
        assert_eq!(dedup_key(&text("42", "a")), "msg:42");
        assert_eq!(
            dedup_key(&text("42", "a")),
            dedup_key(&text("42", "b")),
            "MsgId decides"
        );
        assert_ne!(dedup_key(&text("42", "a")), dedup_key(&text("43", "a")));
    }

    #[test]
    fn labels_come_from_a_fixed_set() {
        let cases: &[(XmlMessage, &str)] = &[
            (
                event("del_follow_user", &[]),
                "change_external_contact/del_follow_user",
            ),
            (event("made_up_by_a_forger", &[]), "other"),
            (
                msg(&[
                    ("MsgType", "event"),
                    ("Event", "change_contact"),
                    ("ChangeType", "delete_user"),
                ]),
                "change_contact/delete_user",
            ),
            (
                msg(&[("MsgType", "event"), ("Event", "enter_agent")]),
                "enter_agent",
            ),
            (msg(&[("MsgType", "text"), ("Content", "hi")]), "msg/text"),
            (msg(&[("MsgType", "x\n{y}")]), "other"),
            (
                msg(&[("SuiteId", "ww1"), ("InfoType", "suite_ticket")]),
                "suite_ticket",
            ),
            (msg(&[]), "other"),
        ];
        for (m, want) in cases {
            assert_eq!(label(m), *want, "{m:?}");
        }
    }

    #[test]
    fn reactions_of_the_events_that_end_sessions_and_contacts() {
        let delete = msg(&[
            ("ToUserName", "wwForged"),
            ("MsgType", "event"),
            ("Event", "change_contact"),
            ("ChangeType", "delete_user"),
            ("UserID", "zhangsan"),
        ]);
        assert_eq!(
            reactions("ww1", &delete),
            [Reaction::EndMember {
                corp: "ww1".into(),
                userid: "zhangsan".into()
            }],
            "the corp is the app's, not the message's"
        );
        for change in ["del_follow_user", "del_external_contact"] {
            let e = event(change, &[("UserID", "zhangsan"), ("ExternalUserID", "wmA")]);
            assert_eq!(
                reactions("ww1", &e),
                [Reaction::DropContact {
                    corp: "ww1".into(),
                    userid: "zhangsan".into(),
                    external_userid: "wmA".into()
                }]
            );
        }
        let none: &[XmlMessage] = &[
            event(
                "add_external_contact",
                &[("UserID", "zhangsan"), ("ExternalUserID", "wmA")],
            ),
            event("del_follow_user", &[("UserID", "zhangsan")]),
            msg(&[
                ("MsgType", "event"),
                ("Event", "change_contact"),
                ("ChangeType", "delete_user"),
                ("UserID", ""),
            ]),
            msg(&[
                ("MsgType", "text"),
                ("Event", "change_contact"),
                ("ChangeType", "delete_user"),
                ("UserID", "zhangsan"),
            ]),
        ];
        for m in none {
            assert!(reactions("ww1", m).is_empty(), "{m:?}");
        }
    }

    /// A userid renamed (`update_user` with `NewUserID`) ends the old id's sessions; an
    /// update that keeps the id (a new mobile, a department) ends nothing.
    #[test]
    fn a_renamed_userid_ends_the_old_ids_sessions() {
        let update = |extra: &[(&str, &str)]| {
            let mut p = vec![
                ("MsgType", "event"),
                ("Event", "change_contact"),
                ("ChangeType", "update_user"),
                ("UserID", "zhangsan"),
            ];
            p.extend_from_slice(extra);
            msg(&p)
        };
        assert_eq!(
            reactions("ww1", &update(&[("NewUserID", "zhangsan2")])),
            [Reaction::EndMember {
                corp: "ww1".into(),
                userid: "zhangsan".into()
            }]
        );
        for kept in [
            update(&[("Mobile", "13800000000")]),
            update(&[("NewUserID", "zhangsan")]),
            update(&[("NewUserID", "")]),
        ] {
            assert!(reactions("ww1", &kept).is_empty(), "{kept:?}");
        }
    }
}
