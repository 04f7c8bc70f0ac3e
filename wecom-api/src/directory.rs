//! The corp directory as access rules read it (the gateway's SPEC section 17): a member's
//! departments (`user/get`), the department tree (`department/simplelist`), a tag's members
//! and departments (`tag/get`), fetched from WeCom and cached in the store for a lifetime the
//! caller gives (`policy_ttl`).
//!
//! They go through the cache machinery that tokens use, under keys of their own
//! ([`FactTarget`]): one fetch per key however many requests wait, in the process (single
//! flight) and in a cluster on Redis (the store's lock); a value in use is refreshed in the
//! background shortly before it expires.
//!
//! Token: the app's own. WeCom answers 48002 (API not allowed for this app) or 60011 (no
//! privilege for this member or department) when the app's visible range does not cover the
//! directory; the call is then made once more with the contact ("客户联系") secret's token,
//! when the app has one, whose range is the whole corp.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::TokenCache;
use crate::client::Client;
use crate::credentials::TokenKind;
use crate::error::ApiError;
use crate::fetch::{CacheTarget, Fetch, Fetched};
use crate::observe::Unobserved;
use crate::request::ApiRequest;
use crate::store::{Cached, Store};
use crate::target::{AppTargets, TokenTarget};
use crate::Clock;

/// What WeCom says of a member (`user/get`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFacts {
    /// For a page that names the member; never a header.
    #[serde(default)]
    pub name: String,
    /// The departments the member belongs to directly (`department`).
    #[serde(default)]
    pub department: Vec<u64>,
    /// WeCom knows the userid: false for 60111 (left the corp, deleted, never there), a
    /// member of nothing whom no rule admits, not even one listing the userid.
    #[serde(default = "known")]
    pub known: bool,
}

/// Facts cached before `known` was written down were all of members WeCom knew.
fn known() -> bool {
    true
}

/// The corp's department tree (`department/simplelist`): each department's parent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    pub parent: HashMap<u64, u64>,
}

/// A tree deeper than this is cut: a corrupt answer with a cycle must not loop.
pub const MAX_DEPTH: usize = 64;

impl Tree {
    /// `dept` itself and every department above it, up to the root.
    pub fn up_from(&self, dept: u64) -> impl Iterator<Item = u64> + '_ {
        let mut next = Some(dept);
        std::iter::from_fn(move || {
            let d = next?;
            next = self.parent.get(&d).copied().filter(|&p| p != 0 && p != d);
            Some(d)
        })
        .take(MAX_DEPTH)
    }
}

/// One tag (`tag/get`): the members tagged one by one and the departments tagged whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFacts {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub departments: Vec<u64>,
}

/// The errcodes after which the contact secret's token is tried.
const NO_PRIVILEGE: [i64; 2] = [48002, 60011];
/// `user/get` of a userid that is no longer (or never was) in the corp: a member of nothing.
const UNKNOWN_USER: i64 = 60111;
/// `tag/get` of a tag that does not exist (any more): a tag on nobody.
const UNKNOWN_TAG: i64 = 40068;

/// What one fact is: its store key, its lifetime, what to ask and with which tokens.
#[derive(Clone)]
pub struct FactTarget(Arc<Inner>);

struct Inner {
    /// `facts:{what}:{api_base}:{corp}[:{id}]`: per corp, as SPEC section 17 says, so the apps
    /// of one corp share them.
    key: Arc<str>,
    ttl_ms: u64,
    what: What,
    access: TokenTarget,
    contact: Option<TokenTarget>,
}

#[derive(Clone)]
enum What {
    Member(String),
    Tree,
    Tag(u64),
}

impl FactTarget {
    fn new(app: &AppTargets, what: What, ttl: Duration) -> FactTarget {
        let access = app.access().clone();
        let corp = access.owner().to_owned();
        let key = match &what {
            What::Member(u) => format!("facts:member:{}:{corp}:{u}", access.base()),
            What::Tree => format!("facts:departments:{}:{corp}", access.base()),
            What::Tag(t) => format!("facts:tag:{}:{corp}:{t}", access.base()),
        };
        FactTarget(Arc::new(Inner {
            key: key.into(),
            ttl_ms: ttl.as_millis() as u64,
            what,
            contact: app.get(TokenKind::Contact).ok().cloned(),
            access,
        }))
    }
}

impl CacheTarget for FactTarget {
    fn key(&self) -> &Arc<str> {
        &self.0.key
    }

    /// Facts live `policy_ttl` from their fetch, whether or not they changed.
    fn expiry(&self, _: &Fetched, _: Option<&Cached>, now_ms: u64) -> u64 {
        now_ms.saturating_add(self.0.ttl_ms)
    }

    fn warn(&self, e: &ApiError) {
        tracing::warn!(
            key = &*self.0.key,
            errcode = e.errcode().unwrap_or(0),
            error = %e,
            "access-rule facts could not be fetched (logged once a minute per key)"
        );
    }

    fn held_back(&self, e: &ApiError) -> bool {
        crate::cache::is_config_refusal(e)
    }
}

/// A fact as stored: the value and the Unix ms until which it holds (the store's expiry,
/// repeated so that a decision made from it knows how long it may be kept).
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    until: u64,
    v: T,
}

/// Fetches facts over the client's call stack (token injection, refresh, retry).
pub struct Directory {
    client: Client,
    clock: Clock,
}

impl Fetch for Directory {
    type Target = FactTarget;

    fn fetch(
        &self,
        target: &FactTarget,
    ) -> impl Future<Output = Result<Fetched, ApiError>> + Send + 'static {
        let client = self.client.clone();
        let clock = self.clock.clone();
        let t = target.0.clone();
        async move {
            let until = clock.now_ms().saturating_add(t.ttl_ms);
            let value = match &t.what {
                What::Member(userid) => {
                    let req = ApiRequest::get("/cgi-bin/user/get", &[("userid", userid)]);
                    let facts = match call(&client, &t, req).await? {
                        Answer::Ok(v) => member_facts(&v),
                        Answer::Err(UNKNOWN_USER) => MemberFacts::default(),
                        Answer::Err(code) => return Err(refused(code)),
                    };
                    encode(until, &facts)
                }
                What::Tree => {
                    let req = ApiRequest::get("/cgi-bin/department/simplelist", &[]);
                    match call(&client, &t, req).await? {
                        Answer::Ok(v) => encode(until, &tree(&v)),
                        Answer::Err(code) => return Err(refused(code)),
                    }
                }
                What::Tag(id) => {
                    let id = id.to_string();
                    let req = ApiRequest::get("/cgi-bin/tag/get", &[("tagid", &id)]);
                    let facts = match call(&client, &t, req).await? {
                        Answer::Ok(v) => tag_facts(&v),
                        Answer::Err(UNKNOWN_TAG) => TagFacts::default(),
                        Answer::Err(code) => return Err(refused(code)),
                    };
                    encode(until, &facts)
                }
            };
            Ok(Fetched {
                value,
                expires_in: t.ttl_ms.div_ceil(1000),
            })
        }
    }
}

enum Answer {
    Ok(Value),
    Err(i64),
}

fn refused(errcode: i64) -> ApiError {
    ApiError::Api {
        errcode,
        errmsg: "refused while reading access-rule facts".into(),
    }
}

/// One directory call with the app's token, then with the contact secret's when the app's
/// own lacks the privilege.
async fn call(client: &Client, t: &Inner, req: ApiRequest) -> Result<Answer, ApiError> {
    let mut resp = client.call(&t.access, req.clone()).await?;
    if NO_PRIVILEGE.contains(&resp.errcode) {
        if let Some(contact) = &t.contact {
            resp = client.call(contact, req).await?;
        }
    }
    let v = resp.json()?;
    if resp.errcode != 0 {
        return Ok(Answer::Err(resp.errcode));
    }
    if resp.status != 200 {
        return Err(ApiError::BadAnswer(format!("HTTP {}", resp.status)));
    }
    Ok(Answer::Ok(v))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn member_facts(v: &Value) -> MemberFacts {
    MemberFacts {
        name: v["name"].as_str().unwrap_or_default().to_owned(),
        department: ids(&v["department"]),
        known: true,
    }
}

fn tree(v: &Value) -> Tree {
    let parent = v["department_id"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| Some((d["id"].as_u64()?, d["parentid"].as_u64().unwrap_or(0))))
        .collect();
    Tree { parent }
}

fn tag_facts(v: &Value) -> TagFacts {
    TagFacts {
        users: v["userlist"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["userid"].as_str().map(str::to_owned))
            .collect(),
        departments: ids(&v["partylist"]),
    }
}

fn encode<T: Serialize>(until: u64, v: &T) -> String {
    serde_json::to_string(&Stored { until, v }).unwrap_or_default()
}

/// The directory facts, cached like tokens. Cheap to clone.
#[derive(Clone)]
pub struct FactCache {
    cache: TokenCache<Directory>,
}

/// A fact and the Unix ms until which it holds.
pub struct Fact<T> {
    pub value: T,
    pub until: u64,
}

impl FactCache {
    pub fn new(store: Arc<dyn Store>, client: Client, clock: Clock, lock_ttl: Duration) -> Self {
        let directory = Directory {
            client,
            clock: clock.clone(),
        };
        FactCache {
            cache: TokenCache::new(store, directory, clock, lock_ttl, Arc::new(Unobserved)),
        }
    }

    async fn get<T: DeserializeOwned>(&self, target: FactTarget) -> Result<Fact<T>, ApiError> {
        let raw = self.cache.get(&target).await?;
        let s: Stored<T> = serde_json::from_str(&raw)
            .map_err(|e| ApiError::BadAnswer(format!("stored facts: {e}")))?;
        Ok(Fact {
            value: s.v,
            until: s.until,
        })
    }

    pub async fn member(
        &self,
        app: &AppTargets,
        userid: &str,
        ttl: Duration,
    ) -> Result<Fact<MemberFacts>, ApiError> {
        self.get(FactTarget::new(app, What::Member(userid.to_owned()), ttl))
            .await
    }

    pub async fn tree(&self, app: &AppTargets, ttl: Duration) -> Result<Fact<Tree>, ApiError> {
        self.get(FactTarget::new(app, What::Tree, ttl)).await
    }

    pub async fn tag(
        &self,
        app: &AppTargets,
        tagid: u64,
        ttl: Duration,
    ) -> Result<Fact<TagFacts>, ApiError> {
        self.get(FactTarget::new(app, What::Tag(tagid), ttl)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directory_answers_become_facts() {
        let m = member_facts(&json!({"userid":"zhangsan","name":"张三","department":[3, 5]}));
        assert_eq!((m.name.as_str(), m.department), ("张三", vec![3, 5]));
        let t = tree(&json!({"department_id":[
            {"id":1,"parentid":0,"order":1},{"id":2,"parentid":1},{"id":3,"parentid":2}]}));
        assert_eq!(t.up_from(3).collect::<Vec<_>>(), vec![3, 2, 1]);
        let g = tag_facts(
            &json!({"tagname":"经理","userlist":[{"userid":"zhangsan","name":"张三"}],
            "partylist":[4]}),
        );
        assert_eq!(
            (g.users, g.departments),
            (vec!["zhangsan".to_owned()], vec![4])
        );
        // Missing lists are empty, never an error.
        assert_eq!(
            member_facts(&json!({})),
            MemberFacts {
                known: true,
                ..MemberFacts::default()
            }
        );
        // Facts cached before `known` was kept were of members WeCom knew.
        let old: MemberFacts = serde_json::from_str(r#"{"name":"n","department":[2]}"#).unwrap();
        assert!(old.known);
        assert_eq!(tag_facts(&json!({})), TagFacts::default());
    }
}
