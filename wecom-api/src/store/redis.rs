//! The token store of a cluster (SPEC section 11): every gateway process reads and writes the
//! same Redis keys, so one token per key is in use and one process refreshes it at a time.
//!
//! - a value is `SET key "v1:{fetched_at}:{expires_at}:{token}" PX {ms left}`: Redis forgets
//!   it when WeCom does;
//! - compare-and-expire and unlock are Lua scripts, so the compare and the delete are one step
//!   that no other process can come between (a stale failure never deletes a newer token);
//! - the refresh lock is `SET lock:key {unique id} NX PX {ttl}`: a holder that dies frees it
//!   by expiry, and only the holder's id releases it;
//! - a fact is `SET key value PX {ttl}`.
//!
//! Every command is bounded by [`OP_TIMEOUT`]: a dead Redis makes a command fail fast, never
//! hang a request. What to do then is [`super::FallbackStore`]'s business, not this file's.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::{lock_id, Cached, Store, StoreError};
use crate::Clock;

/// Connecting, and each answer, may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// One command, a reconnect included.
const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// Deletes KEYS[1] only if the token it holds is ARGV[1].
static EXPIRE_IF: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^v1:%d+:%d+:(.*)$') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

/// Deletes the lock KEYS[1] only if its holder is ARGV[1]: a holder whose lock expired and
/// was taken by another process must not release that one.
static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    clock: Clock,
    /// Made on first use, so that a gateway starts while Redis is down and connects later.
    conn: OnceCell<ConnectionManager>,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// `url` is `redis://[:password@]host:port/db`; it is not connected to yet. `clock` says
    /// how long a value has left when it is written.
    pub fn open(url: &str, key_prefix: &str, clock: Clock) -> Result<RedisStore, StoreError> {
        // The URL may carry a password: the error names neither.
        let client = redis::Client::open(url)
            .map_err(|e| err(format_args!("invalid URL ({:?})", e.kind())))?;
        Ok(RedisStore {
            client,
            prefix: key_prefix.to_owned(),
            clock,
            conn: OnceCell::new(),
        })
    }

    /// Where the value of a token key (or a fact) lives.
    pub fn value_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Where the refresh lock of that key lives.
    pub fn lock_key(&self, key: &str) -> String {
        format!("{}lock:{key}", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT)
            // Reconnect quickly or fail: the next command tries again, so a Redis that
            // comes back is used again without a restart.
            .set_number_of_retries(1)
            .set_max_delay(200);
        self.conn
            .get_or_try_init(|| async {
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(err)
            })
            .await
            .cloned()
    }

    /// Runs `op` on the connection within [`OP_TIMEOUT`]. A connection Redis dropped (it
    /// restarted: the first command on the old connection meets a closed socket) is replaced
    /// and `op` sent once more, rather than failing the first write after every Redis
    /// restart. Only for commands that mean the same sent twice: the answer of one that ran
    /// may be what was lost.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.run_as(true, op).await
    }

    /// [`RedisStore::run`] for a command that does not mean the same sent twice (`SET NX`: a
    /// second send finds the first's key and says "taken"): never sent again.
    async fn run_once<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        self.run_as(false, op).await
    }

    async fn run_as<T, F, Fut>(&self, resend: bool, op: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.conn().await?;
            match op(conn.clone()).await {
                Err(e) if resend && (e.is_connection_dropped() || e.is_unrecoverable_error()) => {
                    op(conn).await.map_err(err)
                }
                r => r.map_err(err),
            }
        };
        match tokio::time::timeout(OP_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(self.why_no_answer().await),
        }
    }

    /// What to say when no connection could be made in time: the connection manager retries a
    /// Redis that refuses the password (or names no such database) as it would one that is
    /// down, so one plain connection is tried to learn the refusal ("unreachable" sends an
    /// operator looking at the network). Only Redis's own error code is told, never the URL.
    async fn why_no_answer(&self) -> StoreError {
        if self.conn.get().is_some() {
            return err("no answer in time");
        }
        let probe = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client.get_multiplexed_async_connection(),
        )
        .await;
        match probe {
            Ok(Err(e)) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
                err("Redis refused the password of redis_url")
            }
            Ok(Err(e)) => match e.code() {
                Some(code) => err(format!("Redis refused the connection ({code})")),
                None => err("no answer in time"),
            },
            _ => err("no answer in time"),
        }
    }

    /// `SET key value PX ms`, or `DEL key` when nothing is left of its life.
    async fn set_px(&self, key: String, value: String, ms: u64) -> Result<(), StoreError> {
        self.run(|mut c| {
            let (key, value) = (&key, &value);
            async move {
                if ms == 0 {
                    redis::cmd("DEL").arg(key).query_async::<()>(&mut c).await
                } else {
                    redis::cmd("SET")
                        .arg(key)
                        .arg(value)
                        .arg("PX")
                        .arg(ms)
                        .query_async::<()>(&mut c)
                        .await
                }
            }
        })
        .await
    }

    async fn get_raw(&self, key: String) -> Result<Option<String>, StoreError> {
        self.run(|mut c| {
            let key = &key;
            async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
        })
        .await
    }
}

/// `v1:{fetched_at}:{expires_at}:{value}`: one string, so that `SET PX` writes it whole.
pub fn encode(c: &Cached) -> String {
    format!("v1:{}:{}:{}", c.fetched_at, c.expires_at, c.value)
}

pub fn decode(s: &str) -> Option<Cached> {
    let mut parts = s.splitn(4, ':');
    if parts.next()? != "v1" {
        return None;
    }
    let fetched_at = parts.next()?.parse().ok()?;
    let expires_at = parts.next()?.parse().ok()?;
    let value = parts.next().filter(|v| !v.is_empty())?;
    Some(Cached {
        value: value.into(),
        fetched_at,
        expires_at,
    })
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        let raw = self.get_raw(self.value_key(key)).await?;
        // Something unreadable (another version's format) is as good as absent: the refresh
        // overwrites it.
        Ok(raw.as_deref().and_then(decode))
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        let left = value.expires_at.saturating_sub(self.clock.now_ms());
        self.set_px(self.value_key(key), encode(value), left).await
    }

    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let k = self.value_key(key);
        let deleted: i64 = self
            .run(|mut c| {
                let k = &k;
                async move { EXPIRE_IF.key(k).arg(value).invoke_async(&mut c).await }
            })
            .await?;
        Ok(deleted == 1)
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        let k = self.lock_key(key);
        let id = lock_id();
        let ms = ttl.as_millis().max(1) as u64;
        let taken: Option<String> = self
            .run_once(|mut c| {
                let (k, id) = (&k, &id);
                async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(id)
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(taken.map(|_| id))
    }

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError> {
        let k = self.lock_key(key);
        self.run(|mut c| {
            let k = &k;
            async move { UNLOCK.key(k).arg(lock_id).invoke_async::<i64>(&mut c).await }
        })
        .await
        .map(drop)
    }

    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.get_raw(self.value_key(key)).await
    }

    /// `MGET`: one command for every key.
    async fn get_facts(&self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| self.value_key(k)).collect();
        self.run(|mut c| {
            let keys = &keys;
            async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }
        })
        .await
    }

    async fn put_fact(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.set_px(self.value_key(key), value.to_owned(), ms).await
    }

    /// `SET key 1 NX PX ms`: the claim is a fact that only its first writer sets.
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let k = self.value_key(key);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .run_once(|mut c| {
                let k = &k;
                async move {
                    redis::cmd("SET")
                        .arg(k)
                        .arg("1")
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(set.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(drop)
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_odd_ones_read_as_absent() {
        let c = Cached {
            value: "tok:en with:colons".into(),
            fetched_at: 1_700_000_000_000,
            expires_at: 1_700_007_200_000,
        };
        assert_eq!(
            encode(&c),
            "v1:1700000000000:1700007200000:tok:en with:colons"
        );
        assert_eq!(decode(&encode(&c)), Some(c));
        for odd in [
            "",
            "v1",
            "v1:1:2",
            "v1:1:2:",
            "v2:1:2:t",
            "v1:x:2:t",
            "v1:1:-2:t",
            "plain-token",
        ] {
            assert_eq!(decode(odd), None, "{odd:?}");
        }
    }

    #[test]
    fn keys_sit_under_the_prefix_and_locks_apart_from_values() {
        let s = RedisStore::open("redis://127.0.0.1:1/0", "wgw:", Clock::system()).unwrap();
        let k = "token:access:http://e:ww1:1000002.fp";
        assert_eq!(s.value_key(k), "wgw:token:access:http://e:ww1:1000002.fp");
        assert_eq!(
            s.lock_key(k),
            "wgw:lock:token:access:http://e:ww1:1000002.fp"
        );
        let other = RedisStore::open("redis://127.0.0.1:1/0", "staging:", Clock::system()).unwrap();
        assert_ne!(s.value_key(k), other.value_key(k));
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = RedisStore::open("redis://:hunter2@[::1", "wgw:", Clock::system())
            .err()
            .unwrap();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
