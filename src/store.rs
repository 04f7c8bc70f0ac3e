//! Where the gateway keeps what it must remember (SPEC section 21), built once from `[store]`:
//! the `wecom-api` store (tokens, tickets, contact verifications, revocations, claims) and
//! the callback queue beside it, on the same backend.

use std::sync::Arc;

use wecom_api::{Clock, FallbackStore, LocalStore, MemoryStore, RedisStore, Store};

use crate::callback::queue::{EventQueue, LocalQueue, MemoryQueue, RedisQueue};
use crate::config::model::{StoreBackend, StoreSettings};
use crate::provider::Metrics;

pub struct Backend {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn EventQueue>,
}

impl Backend {
    /// Opens what `[store]` names. `local` takes its file now (and fails when another process
    /// holds it); Redis is connected to on first use, so a gateway starts while it is down.
    pub async fn open(settings: &StoreSettings, clock: Clock) -> Result<Backend, String> {
        match settings.backend {
            StoreBackend::Memory => Ok(Backend {
                store: Arc::new(MemoryStore::new(clock.clone())),
                queue: Arc::new(MemoryQueue::new(clock)),
            }),
            StoreBackend::Local => {
                let path = settings.path.clone();
                let c = clock.clone();
                let local = tokio::task::spawn_blocking(move || LocalStore::open(&path, c))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let local = Arc::new(local);
                let queue = LocalQueue::open(local.clone(), clock)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Backend {
                    store: local,
                    queue: Arc::new(queue),
                })
            }
            StoreBackend::Redis => {
                let url = settings
                    .redis_url
                    .as_ref()
                    .ok_or("redis backend without a redis_url")?;
                let shared = RedisStore::open(url.expose(), &settings.key_prefix, clock.clone())
                    .map_err(|e| e.to_string())?;
                // A Redis that is down is outlived (each process serves on its own meanwhile);
                // one that refuses `redis_url`'s password or database is a wrong file, which no
                // wait mends: refused at start, as `check` refuses it. Asked on a client of its
                // own: this may run on a runtime of the start only, which a connection made
                // here would not outlive.
                let probe = RedisStore::open(url.expose(), &settings.key_prefix, clock.clone())
                    .map_err(|e| e.to_string())?;
                if let Ok(Err(e)) =
                    tokio::time::timeout(std::time::Duration::from_secs(5), probe.ping()).await
                {
                    if let Some(why) = refusal(&e.0) {
                        return Err(format!("redis_url: {why}"));
                    }
                }
                let queue = Arc::new(
                    RedisQueue::open(
                        url.expose(),
                        &settings.key_prefix,
                        settings.lock_ttl,
                        clock.clone(),
                    )
                    .map_err(|e| e.to_string())?,
                );
                Ok(Backend {
                    store: Arc::new(FallbackStore::new(shared, clock, Arc::new(Metrics))),
                    queue,
                })
            }
        }
    }
}

/// Why a Redis error says `redis_url` is wrong (not that Redis is down), by kind only: an
/// error's text is not shown (it is the server's, or the client's).
fn refusal(error: &str) -> Option<&'static str> {
    if [
        "WRONGPASS",
        "NOAUTH",
        "AuthenticationFailed",
        "invalid password",
        "refused the password",
    ]
    .iter()
    .any(|k| error.contains(k))
    {
        Some("Redis refused its password (or asks for one it does not give)")
    } else if error.contains("DB index is out of range") {
        Some("Redis has no database of the number it names")
    } else {
        None
    }
}

/// `check`'s word on a Redis store (SPEC section 21), asked within a few seconds: `Err` when it
/// refuses `redis_url` (a wrong password or database: the file is wrong); a warning when it
/// keeps nothing on disk, or cannot be reached from here; `Ok(None)` when it persists or the
/// backend is not Redis.
pub fn persistence_warning(settings: &StoreSettings) -> Result<Option<String>, String> {
    if settings.backend != StoreBackend::Redis {
        return Ok(None);
    }
    let Some(url) = settings.redis_url.as_ref() else {
        return Ok(None);
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Ok(None);
    };
    runtime.block_on(async {
        let Ok(queue) = RedisQueue::open(
            url.expose(),
            &settings.key_prefix,
            settings.lock_ttl,
            wecom_api::Clock::system(),
        ) else {
            return Ok(None);
        };
        let why = match tokio::time::timeout(std::time::Duration::from_secs(5), queue.persistence())
            .await
        {
            Ok(Ok(w)) => return Ok(w.map(str::to_owned)),
            Ok(Err(e)) => match refusal(&e.0) {
                Some(why) => return Err(format!("redis_url: {why}")),
                None => "it could not be reached",
            },
            Err(_) => "it did not answer within 5 s",
        };
        Ok(Some(format!(
            "Redis could not be asked whether it keeps its data on disk: {why}"
        )))
    })
}
