//! Service-provider apps (SPEC section 20): one gateway, many corps.
//!
//! A suite app (`kind = "wecom_suite"`, or `"wecom_custom"` for 代开发) has one token of its
//! own, the suite token, fetched with the newest suite ticket WeCom pushed; every corp that
//! installs it has its permanent code, its agent id and its own tokens and tickets. This module
//! keeps the installs ([`Installs`]: durable in the store, with each corp's targets built once
//! per install) and acts on the instruction callbacks ([`instruction`]).

pub mod install;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use wecom_api::{AppTargets, InstalledCorp, Secret, Store, StoreError};

use crate::config::model::{App, Credentials};
use install::{install_key, Install, DURABLE};

/// Another instance may have installed, changed or removed a corp: an entry older than this
/// is read again from the store by one request (the others keep using it meanwhile).
const RECHECK_MS: u64 = 5_000;

/// The suite id of a suite app, and whether it is a 代开发 one.
pub fn suite_of(app: &App) -> Option<(&str, bool)> {
    match &app.credentials {
        Credentials::Suite {
            suite_id, custom, ..
        } => Some((suite_id.as_str(), *custom)),
        _ => None,
    }
}

/// One installed corp: what was kept, and its targets (token, jsapi tickets), built once.
pub struct Corp {
    pub install: Install,
    pub targets: AppTargets,
    /// Unix ms when the store was last read for it.
    checked_ms: AtomicU64,
}

impl Corp {
    fn new(app: &App, custom: bool, install: Install, now_ms: u64) -> Corp {
        let code = Secret::new(install.permanent_code.clone());
        let targets = app.targets.corp(&InstalledCorp {
            corp_id: &install.corp_id,
            agent_id: install.agent_id,
            permanent_code: &code,
            custom,
        });
        Corp {
            install,
            targets,
            checked_ms: AtomicU64::new(now_ms),
        }
    }
}

/// The installs of every suite app, per (suite id, corp id): read from the store when first
/// needed, kept in the process with their targets, dropped on `cancel_auth`.
#[derive(Default)]
pub struct Installs {
    corps: DashMap<(String, String), Arc<Corp>>,
    /// Held by whatever reads a kept install and writes after it ([`Installs::writing`]), one
    /// per corp.
    writing: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl Installs {
    /// The install of `corp_id` for the suite `app`, if that corp installed it.
    pub async fn corp(
        &self,
        store: &dyn Store,
        app: &App,
        corp_id: &str,
    ) -> Result<Option<Arc<Corp>>, StoreError> {
        let Some((suite_id, custom)) = suite_of(app) else {
            return Ok(None);
        };
        let now = crate::clock::clock().now_ms();
        let key = (suite_id.to_owned(), corp_id.to_owned());
        if let Some(c) = self.corps.get(&key).map(|c| c.clone()) {
            let checked = c.checked_ms.load(Ordering::Relaxed);
            let due = now.saturating_sub(checked) >= RECHECK_MS;
            // One request re-reads; the others go on with what is known.
            if !due
                || c.checked_ms
                    .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                return Ok(Some(c));
            }
            let kept = read(store, suite_id, corp_id).await?;
            return Ok(match kept {
                Some(i) if i == c.install => Some(c),
                Some(i) => Some(self.put(app, custom, i, now)),
                // Perhaps read from this process's own copy while Redis does not answer: an
                // install another instance kept is not there, so "none" is news only from a
                // store that answers now (asked again: rare, an install seldom goes; SPEC
                // section 15: serve from what is known).
                None if store.ping().await.is_err() => Some(c),
                None => {
                    self.corps.remove(&key);
                    None
                }
            });
        }
        Ok(read(store, suite_id, corp_id)
            .await?
            .map(|i| self.put(app, custom, i, now)))
    }

    fn put(&self, app: &App, custom: bool, install: Install, now_ms: u64) -> Arc<Corp> {
        let Some((suite_id, _)) = suite_of(app) else {
            unreachable!("only suite apps have installs")
        };
        let key = (suite_id.to_owned(), install.corp_id.clone());
        let corp = Arc::new(Corp::new(app, custom, install, now_ms));
        self.corps.insert(key, corp.clone());
        corp
    }

    /// Held while a corp's install is read and then written (an exchange that must not replace
    /// a newer install, a refresh that must not bring back a removed one) or removed: in this
    /// process, one at a time per corp (other corps' go on: WeCom wants each `cancel_auth`
    /// answered within a second). One small lock per corp ever seen, kept.
    pub async fn writing(&self, corp_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self.writing.entry(corp_id.to_owned()).or_default().clone();
        lock.lock_owned().await
    }

    /// The install of `corp_id` as the store keeps it now (this process's copy aside).
    pub async fn kept(
        &self,
        store: &dyn Store,
        app: &App,
        corp_id: &str,
    ) -> Result<Option<Install>, StoreError> {
        match suite_of(app) {
            Some((suite_id, _)) => read(store, suite_id, corp_id).await,
            None => Ok(None),
        }
    }

    /// Keeps `install` durably, then in the process (a new permanent code: new targets).
    pub async fn keep(
        &self,
        store: &dyn Store,
        app: &App,
        install: Install,
    ) -> Result<Arc<Corp>, StoreError> {
        let Some((suite_id, custom)) = suite_of(app) else {
            return Err(StoreError("not a suite app".into()));
        };
        let json = serde_json::to_string(&install).map_err(|e| StoreError(e.to_string()))?;
        store
            .put_durable_fact(&install_key(suite_id, &install.corp_id), &json, DURABLE)
            .await?;
        Ok(self.put(app, custom, install, crate::clock::clock().now_ms()))
    }

    /// Forgets the corp's install, in the store and here; its tokens and tickets are expired.
    /// `false` when it was not installed (a replayed `cancel_auth`).
    pub async fn remove(
        &self,
        store: &dyn Store,
        app: &App,
        corp_id: &str,
        removed: install::Moment,
    ) -> Result<bool, StoreError> {
        let Some(corp) = self.corp(store, app, corp_id).await? else {
            return Ok(false);
        };
        // Installed again since (a cancel replayed, or delivered late): that install stays.
        if corp.install.moment().after(&removed) {
            return Ok(false);
        }
        let (suite_id, _) = suite_of(app).expect("a suite app has installs");
        store
            .put_durable_fact(
                &install_key(suite_id, corp_id),
                "",
                std::time::Duration::ZERO,
            )
            .await?;
        self.corps
            .remove(&(suite_id.to_owned(), corp_id.to_owned()));
        use wecom_api::TokenKind::*;
        for kind in [Access, CorpTicket, AgentTicket] {
            let Ok(t) = corp.targets.get(kind) else {
                continue;
            };
            if let Some(c) = store.get(t.key()).await? {
                store.expire_if(t.key(), &c.value).await?;
            }
        }
        Ok(true)
    }
}

async fn read(
    store: &dyn Store,
    suite_id: &str,
    corp_id: &str,
) -> Result<Option<Install>, StoreError> {
    let Some(json) = store.get_fact(&install_key(suite_id, corp_id)).await? else {
        return Ok(None);
    };
    match serde_json::from_str::<Install>(&json) {
        Ok(i) => Ok(Some(i)),
        Err(e) => {
            tracing::error!(suite_id, corp_id, error = %e, "a kept install could not be read");
            Ok(None)
        }
    }
}
