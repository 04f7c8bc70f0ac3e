//! What the gateway keeps of a corp that installed a suite (SPEC sections 20 and 21), where
//! it keeps it, and how WeCom's answers become it. Pure: no sockets, no store.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Durable facts are kept this long: for ever, as far as a store's TTL goes. An install ends
/// with its `cancel_auth`, not with a timer.
pub const DURABLE: Duration = Duration::from_secs(3650 * 86_400);

/// One corp's install of one suite.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Install {
    pub corp_id: String,
    #[serde(default)]
    pub corp_name: String,
    /// The app's agent id in this corp (`get_auth_info`'s `auth_info.agent[0].agentid`): the
    /// `agentConfig` agentid and the QR login's, different in every corp.
    pub agent_id: u64,
    /// The corp's permanent code: the secret of its tokens. Never logged ([`std::fmt::Debug`]
    /// leaves it out) and never in a key (keys hold its fingerprint).
    pub permanent_code: String,
    /// Unix s of the install: when its `create_auth` happened (the newest wins when two
    /// exchanges race; a `cancel_auth` removes only an older one).
    pub installed_at: u64,
    /// WeCom's own time of that `create_auth` (its `TimeStamp`), which orders the install
    /// against a `cancel_auth` ([`Moment`]); none in installs kept
    /// before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// When that `create_auth` reached the gateway (Unix ms): where it stands in the queue
    /// against a removal's ([`Moment::received_ms`]); none in installs kept before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrived_ms: Option<u64>,
}

impl Install {
    /// The agent id, once WeCom said it: an install whose `get_auth_info` failed is kept with
    /// 0 until a later read (a sign-in, the next `change_auth`) fills it in, and 0 is no
    /// agent to sign with or to name to the CRM.
    pub fn agent(&self) -> Option<u64> {
        (self.agent_id != 0).then_some(self.agent_id)
    }

    /// When the install happened.
    pub fn moment(&self) -> Moment {
        Moment {
            at: self.installed_at,
            wecom: self.created,
            received_ms: self.arrived_ms.unwrap_or(0),
        }
    }
}

impl std::fmt::Debug for Install {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Install")
            .field("corp_id", &self.corp_id)
            .field("agent_id", &self.agent_id)
            .field("installed_at", &self.installed_at)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// When an event happened, as the gateway orders two of them: `at` on this machine's clock
/// (what sessions, issued on this clock, are compared with), and `wecom`, WeCom's own time when
/// the message tells one (the callback module's `event::moment` reads both). Two instructions of a
/// suite (an install, a removal) are ordered by WeCom's times, one clock for both: `at` keeps
/// arrival order for events less than a minute late, and a removal WeCom sent again 20 s late
/// must not pass the reinstall made in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment {
    pub at: u64,
    pub wecom: Option<u64>,
    /// When the message reached the gateway (Unix ms): its place in the app's queue, which is
    /// the order the CRM hears of events in. 0 where unknown.
    pub received_ms: u64,
}

impl Moment {
    /// Did `self` happen after `other`? By WeCom's times when both have one and they differ;
    /// otherwise by `at` (one second cannot tell two of WeCom's steps apart: the one that
    /// reached the gateway later is the later one).
    pub fn after(&self, other: &Moment) -> bool {
        match (self.wecom, other.wecom) {
            (Some(a), Some(b)) if a != b => a > b,
            _ => self.at > other.at,
        }
    }

    /// [`Self::after`], or in the same second by both clocks, reached the gateway later (both
    /// telling when). Only for a removal that found no install kept, against an install whose
    /// exchange was under way then ([`cancel_arrived_key`]): that removal can only be of that
    /// install, so arrival order is WeCom's order. Two steps arriving out of WeCom's order
    /// within milliseconds are otherwise possible (a reinstall before the removal of the
    /// install before it), and a tie is not read as "after" then.
    pub fn after_or_arrived_after(&self, other: &Moment) -> bool {
        let tie = match (self.wecom, other.wecom) {
            (Some(a), Some(b)) if a != b => false,
            _ => self.at == other.at,
        };
        self.after(other) || (tie && other.received_ms > 0 && self.received_ms > other.received_ms)
    }
}

/// `suite:{suite_id}:corp:{corp_id}`: keyed by the suite, not the app's name, so that renaming
/// the app in the config keeps its installs.
pub fn install_key(suite_id: &str, corp_id: &str) -> String {
    format!("suite:{suite_id}:corp:{corp_id}")
}

/// The record that an AuthCode was exchanged: a replayed `create_auth` (WeCom's retry, a
/// redelivery after a crash) exchanges nothing twice. A digest: the code itself is a secret.
pub fn exchanged_key(suite_id: &str, auth_code: &str) -> String {
    let digest = Sha256::digest(auth_code.as_bytes());
    format!("suite:{suite_id}:exchanged:{}", hex::encode(&digest[..16]))
}

/// An AuthCode lives 10 minutes (WECOM_API.md); the records a removal leaves for an exchange
/// still under way a little longer.
pub const AUTH_CODE_RECORD: Duration = Duration::from_secs(15 * 60);

/// How long the record of an AuthCode's exchange (the corp it installed) is kept: as long as
/// its `create_auth` may wait in the callback queue (24 hours of retries, then 7 days parked,
/// from where an operator can deliver it again) and a day more. The delivery names the corp
/// from it; gone, the CRM heard of an install naming no corp, or (the code exchanged again
/// and refused) not at all, while the gateway served the corp.
pub const EXCHANGE_RECORD: Duration = Duration::from_secs(9 * 24 * 3600);

/// Every session of a corp that removed the app: `revoked:corp:{suite_id}:{corp_id}`, read
/// whenever a session of the suite opens (as `revoked:member:` is for one member). By the
/// suite, as installs are: a session the corp's `cancel_auth` ended stays ended whatever the
/// app is called in the config, then or since.
pub fn corp_revocation_key(suite_id: &str, corp_id: &str) -> String {
    ["revoked:corp:", suite_id, ":", corp_id].concat()
}

/// WeCom's time of the corp's latest `cancel_auth` (`suite:{suite_id}:cancelled:{corp_id}`),
/// beside its revocation record's time on this machine's clock: an exchange that ends after
/// the removal was applied keeps the install only when it happened after the removal.
pub fn cancelled_key(suite_id: &str, corp_id: &str) -> String {
    format!("suite:{suite_id}:cancelled:{corp_id}")
}

/// When the corp's latest `cancel_auth` that found no install kept reached the gateway (Unix
/// ms): a removal of an install whose exchange was under way, ordered after it in the same
/// second ([`Moment::after_or_arrived_after`]).
pub fn cancel_arrived_key(suite_id: &str, corp_id: &str) -> String {
    format!("suite:{suite_id}:cancel-arrived:{corp_id}")
}

/// Which install a `cancel_auth` removed when it arrived: `{its arrival ms}:{the removed
/// install's arrival ms}`. Applied again by the delivery worker, the same removal leaves an
/// install kept since (a reinstall in the same second, its exchange under way then) alone.
pub fn cancel_removed_key(suite_id: &str, corp_id: &str) -> String {
    format!("suite:{suite_id}:cancel-removed:{corp_id}")
}

/// What a `get_permanent_code` (v2) answer gives: the corp and its permanent code.
#[derive(Debug, PartialEq, Eq)]
pub struct Exchanged {
    pub corp_id: String,
    pub corp_name: String,
    pub permanent_code: String,
}

fn text<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))?
        .as_str()
        .filter(|s| !s.is_empty())
}

pub fn read_permanent_code(v: &Value) -> Result<Exchanged, String> {
    let corp_id = text(v, &["auth_corp_info", "corpid"]).ok_or("no auth_corp_info.corpid")?;
    if !crate::domain::is_plain_id(corp_id) {
        return Err("the corp id is not a plain id".into());
    }
    Ok(Exchanged {
        corp_id: corp_id.to_owned(),
        corp_name: text(v, &["auth_corp_info", "corp_name"])
            .unwrap_or_default()
            .to_owned(),
        permanent_code: text(v, &["permanent_code"])
            .ok_or("no permanent_code")?
            .to_owned(),
    })
}

/// The app's agent id in the corp, from `get_auth_info` (`auth_info.agent[0].agentid`; a suite
/// is one app, so one agent).
pub fn read_agent_id(v: &Value) -> Result<u64, String> {
    v.get("auth_info")
        .and_then(|a| a.get("agent"))
        .and_then(|a| a.get(0))
        .and_then(|a| a.get("agentid"))
        // A number, or the digits of one (some answers quote ids).
        .and_then(|a| a.as_u64().or_else(|| a.as_str()?.trim().parse().ok()))
        .filter(|a| *a > 0)
        .ok_or_else(|| "no auth_info.agent[0].agentid".into())
}

/// The corp name of `get_auth_info`, when it tells one.
pub fn read_corp_name(v: &Value) -> Option<String> {
    text(v, &["auth_corp_info", "corp_name"]).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Two of WeCom's steps in one second (an install, and its removal at once) are ordered by
    /// when they reached the gateway; by WeCom's time, then this clock's, otherwise.
    #[test]
    fn moments_in_one_second_are_ordered_by_arrival_when_asked() {
        let m = |at, wecom, received_ms| Moment {
            at,
            wecom,
            received_ms,
        };
        let install = m(100, Some(100), 100_200);
        let later = m(100, Some(100), 100_300);
        assert!(later.after_or_arrived_after(&install));
        assert!(!later.after(&install), "a tie is no order by itself");
        assert!(!install.after_or_arrived_after(&later));
        assert!(!m(100, Some(100), 100_100).after_or_arrived_after(&install));
        // Arrival unknown on either side (kept by an older version): not after.
        assert!(!m(100, Some(100), 0).after_or_arrived_after(&install));
        assert!(!later.after_or_arrived_after(&m(100, Some(100), 0)));
        // WeCom's time, then this clock's, come first.
        assert!(m(100, Some(101), 1).after_or_arrived_after(&install));
        assert!(!m(101, Some(99), 999_999).after_or_arrived_after(&install));
        assert!(m(101, None, 1).after_or_arrived_after(&m(100, None, 2)));
    }

    /// An install kept while `get_auth_info` failed has agent 0: no agent to name.
    #[test]
    fn an_agent_id_of_0_is_no_agent() {
        let mut i = Install {
            corp_id: "wwA".into(),
            corp_name: String::new(),
            agent_id: 0,
            permanent_code: "PC".into(),
            installed_at: 1,
            created: None,
            arrived_ms: None,
        };
        assert_eq!(i.agent(), None);
        i.agent_id = 1000005;
        assert_eq!(i.agent(), Some(1000005));
    }

    #[test]
    fn permanent_code_answers_are_read_or_refused() {
        let ok = json!({"errcode":0,"permanent_code":"PC","auth_corp_info":{"corpid":"wwA","corp_name":"甲"}});
        assert_eq!(
            read_permanent_code(&ok).unwrap(),
            Exchanged {
                corp_id: "wwA".into(),
                corp_name: "甲".into(),
                permanent_code: "PC".into()
            }
        );
        for bad in [
            json!({"permanent_code":"PC"}),
            json!({"auth_corp_info":{"corpid":"wwA"}}),
            json!({"permanent_code":"PC","auth_corp_info":{"corpid":"ww A\r\n"}}),
            json!({"permanent_code":"","auth_corp_info":{"corpid":"wwA"}}),
        ] {
            assert!(read_permanent_code(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_agent_id_comes_from_the_authorisation_info() {
        let v = json!({"auth_info":{"agent":[{"agentid":1000042,"auth_mode":0}]}});
        assert_eq!(read_agent_id(&v), Ok(1000042));
        assert!(read_agent_id(&json!({"auth_info":{"agent":[]}})).is_err());
        assert!(read_agent_id(&json!({"auth_info":{"agent":[{"agentid":0}]}})).is_err());
        // Quoted digits are the same id; anything else is none.
        let quoted = json!({"auth_info":{"agent":[{"agentid":"1000042"}]}});
        assert_eq!(read_agent_id(&quoted), Ok(1000042));
        assert!(read_agent_id(&json!({"auth_info":{"agent":[{"agentid":"x"}]}})).is_err());
    }

    #[test]
    fn keys_carry_the_suite_and_the_corp_and_no_secret() {
        assert_ne!(install_key("s1", "wwA"), install_key("s1", "wwB"));
        assert_ne!(install_key("s1", "wwA"), install_key("s2", "wwA"));
        let k = exchanged_key("s1", "SECRET-AUTH-CODE");
        assert!(!k.contains("SECRET"), "{k}");
        assert_eq!(k, exchanged_key("s1", "SECRET-AUTH-CODE"));
        let i = Install {
            corp_id: "wwA".into(),
            corp_name: String::new(),
            agent_id: 1,
            permanent_code: "PERMANENT".into(),
            installed_at: 0,
            created: None,
            arrived_ms: None,
        };
        assert!(!format!("{i:?}").contains("PERMANENT"));
    }
}
