//! Verified external contacts remembered per (corp, member, contact) for [`CACHE_TTL`], in the
//! store the cluster shares, so that a sidebar opened again does not ask `externalcontact/get`
//! each time. Only positive answers are kept: a customer refused now may be added a minute
//! later. A store that does not answer costs a provider call, never a refusal.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wecom_api::Store;

use crate::domain::ExternalContact;

/// Positive verifications are reused this long per (corp, member, contact).
pub const CACHE_TTL: Duration = Duration::from_secs(600);

/// What is stored: the contact with whom it was verified for, checked again on reading, so
/// that no key spelling (ids may hold `:`) can hand one member's contact to another.
#[derive(Serialize, Deserialize)]
struct Remembered {
    corp: String,
    userid: String,
    contact: ExternalContact,
    /// When the verification began (Unix s): a removal of the pair at or after it refuses the
    /// entry. One remembered before entries carried it reads as 0: any removal refuses it.
    #[serde(default)]
    at: u64,
}

fn key(corp_id: &str, userid: &str, external_userid: &str) -> String {
    format!("fact:contact:{corp_id}:{userid}:{external_userid}")
}

pub struct ContactCache<'a> {
    store: &'a dyn Store,
}

impl<'a> ContactCache<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        ContactCache { store }
    }

    /// The contact `external_userid` as verified for this member of this corp, if it was in
    /// the last [`CACHE_TTL`], and when that verification began.
    pub async fn get(
        &self,
        corp_id: &str,
        userid: &str,
        external_userid: &str,
    ) -> Option<(ExternalContact, u64)> {
        let raw = self
            .store
            .get_fact(&key(corp_id, userid, external_userid))
            .await
            .ok()??;
        let r: Remembered = serde_json::from_str(&raw).ok()?;
        (r.corp == corp_id && r.userid == userid && r.contact.external_userid == external_userid)
            .then_some((r.contact, r.at))
    }

    /// Keeps a verification that began at `at` (Unix s).
    pub async fn remember(&self, corp_id: &str, userid: &str, contact: &ExternalContact, at: u64) {
        let r = Remembered {
            corp: corp_id.to_owned(),
            userid: userid.to_owned(),
            contact: contact.clone(),
            at,
        };
        let value = serde_json::to_string(&r).expect("plain data serialises");
        let k = key(corp_id, userid, &contact.external_userid);
        if let Err(e) = self.store.put_fact(&k, &value, CACHE_TTL).await {
            tracing::warn!(error = %e, "external contact not cached");
        }
    }
}

impl ContactCache<'_> {
    /// Forgets the pair's verification (the member and the customer are no longer contacts).
    pub async fn forget(
        &self,
        corp_id: &str,
        userid: &str,
        external_userid: &str,
    ) -> Result<(), wecom_api::StoreError> {
        self.store
            .forget_fact(&key(corp_id, userid, external_userid))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wecom_api::{Clock, MemoryStore};

    fn contact(id: &str) -> ExternalContact {
        ExternalContact {
            external_userid: id.into(),
            unionid: Some("oUnion".into()),
            name: "王小明".into(),
        }
    }

    #[tokio::test]
    async fn a_contact_is_remembered_for_its_member_for_ten_minutes() {
        let clock = Clock::system();
        let store = MemoryStore::new(clock.clone());
        let cache = ContactCache::new(&store);
        cache.remember("ww1", "zhangsan", &contact("wmC"), 7).await;
        assert_eq!(
            cache.get("ww1", "zhangsan", "wmC").await,
            Some((contact("wmC"), 7)),
            "with when it was verified"
        );
        let cases: &[(&str, &str, &str)] = &[
            ("ww2", "zhangsan", "wmC"),
            ("ww1", "lisi", "wmC"),
            ("ww1", "zhangsan", "wmD"),
        ];
        for (corp, userid, ext) in cases {
            assert_eq!(
                cache.get(corp, userid, ext).await,
                None,
                "{corp} {userid} {ext}"
            );
        }
        cache.forget("ww1", "zhangsan", "wmC").await.unwrap();
        assert_eq!(cache.get("ww1", "zhangsan", "wmC").await, None, "dropped");
        cache.remember("ww1", "zhangsan", &contact("wmC"), 7).await;
        clock.advance(CACHE_TTL);
        assert_eq!(cache.get("ww1", "zhangsan", "wmC").await, None, "forgotten");
    }

    #[tokio::test]
    async fn ids_holding_colons_never_meet_under_one_key() {
        let store = MemoryStore::default();
        let cache = ContactCache::new(&store);
        // Both spell fact:contact:ww1:a:b:c.
        cache.remember("ww1", "a", &contact("b:c"), 1).await;
        assert_eq!(cache.get("ww1", "a:b", "c").await, None);
        cache.remember("ww1", "a:b", &contact("c"), 1).await;
        assert_eq!(cache.get("ww1", "a", "b:c").await, None);
        assert_eq!(cache.get("ww1", "a:b", "c").await, Some((contact("c"), 1)));
    }
}
