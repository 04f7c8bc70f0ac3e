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

/// `check`'s word on a Redis store that keeps nothing on disk (SPEC section 21): asked within
/// a few seconds; `None` when it persists, when the backend is not Redis, or when it cannot
/// be reached from here (then said so).
pub fn persistence_warning(settings: &StoreSettings) -> Option<String> {
    if settings.backend != StoreBackend::Redis {
        return None;
    }
    let url = settings.redis_url.as_ref()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let queue = RedisQueue::open(
            url.expose(),
            &settings.key_prefix,
            settings.lock_ttl,
            wecom_api::Clock::system(),
        )
        .ok()?;
        let why = match tokio::time::timeout(std::time::Duration::from_secs(5), queue.persistence())
            .await
        {
            Ok(Ok(w)) => return w.map(str::to_owned),
            // Named by kind only: an error's text is not shown (it is the server's, or the
            // client's, and `check` prints it).
            Ok(Err(e))
                if [
                    "WRONGPASS",
                    "NOAUTH",
                    "AuthenticationFailed",
                    "invalid password",
                ]
                .iter()
                .any(|k| e.0.contains(k)) =>
            {
                "it refused the password of redis_url"
            }
            Ok(Err(e)) if e.0.contains("DB index is out of range") => {
                "it has no database of the number redis_url names"
            }
            Ok(Err(_)) => "it could not be reached",
            Err(_) => "it did not answer within 5 s",
        };
        Some(format!(
            "Redis could not be asked whether it keeps its data on disk: {why}"
        ))
    })
}
