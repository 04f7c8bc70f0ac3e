//! The queue of a cluster (SPEC sections 18 and 21): a Redis Stream per app and a consumer
//! group, so that several gateways share one queue.
//!
//! - **push**: one script sets the de-duplication key (`SET NX PX`) and, only if it was new,
//!   `XADD`s the event: a retry landing on another instance is still one event.
//! - **who delivers**: the instance holding the app's lease (`SET NX PX lock_ttl`, renewed
//!   while it works) reads with `XREADGROUP` one entry at a time and removes it (`XACK` +
//!   `XDEL`, one script) after the CRM's 2xx. One deliverer per app keeps the order; the
//!   consumer group keeps what was handed out.
//! - **an instance dies mid-delivery**: its lease lapses after `lock_ttl`. The holder touches
//!   the entry it delivers each time it renews the lease (`XCLAIM` to itself: its idle time
//!   starts again), so an entry idle for longer than a delivery can take is one nobody is
//!   delivering. The next holder takes those over (`XAUTOCLAIM` with that idle time) and
//!   delivers them first; while another instance's entry is younger, it waits (nothing newer is
//!   read): an instance that lost Redis for longer than its lease may still be posting it.
//!
//! The guarantee, honestly: every event is delivered at least once, in order per app. An event
//! whose instance died while it was being delivered is delivered again by the next holder, once
//! the forward's timeout has passed, with the same `X-Gateway-Event-Id`; so is one whose 2xx
//! came back just before the instance died. One whose instance only lost Redis is not: it acks
//! it when Redis answers again, before the wait is over. A process stopped (`SIGSTOP`, a paused
//! VM) for longer than the forward's timeout may still finish a post it began when it resumes.
//! Durability is Redis's: run it with `appendonly yes` (the gateway warns at start when
//! persistence is off).

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use tokio::sync::OnceCell;
use wecom_api::Clock;

use super::{
    EventQueue, Parked, Pushed, QueueError, Queued, Retries, Wakers, DEAD_TTL, DEDUP_TTL,
    PARKED_PAGE,
};
use crate::callback::event::Event;

const GROUP: &str = "gateway";
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Added to a delivery's longest time before another instance's entry counts as left alone.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// KEYS: seen, stream. ARGV: ttl ms, event JSON. The entry id, or nil for a duplicate.
static PUSH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], '*', 'event', ARGV[2])
end
return false",
    )
});

/// KEYS: lease. ARGV: holder, ttl ms. 2 taken now, 1 renewed, 0 another holds it.
static LEAD: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0",
    )
});

/// KEYS: lease, stream. ARGV: holder, ttl ms, group, entry id. The lease as [`LEAD`], and the
/// entry's idle time started again (`XCLAIM` to itself) while it is this holder's: 2 or 1 then,
/// 0 when another holds the lease or the entry (it is not to be delivered here).
static WORKING: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
local p = redis.call('XPENDING', KEYS[2], ARGV[3], ARGV[4], ARGV[4], 1)
if #p ~= 1 or p[1][2] ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[1], 0, ARGV[4], 'JUSTID')
if v then return 1 end
return 2",
    )
});

/// KEYS: stream. ARGV: group, this consumer, min idle ms. Takes over the group's entries other
/// consumers have left alone for min idle; 1 when none of theirs is left, 0 while one is
/// younger (its delivery may be under way).
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local function others()
  local s = redis.call('XPENDING', KEYS[1], ARGV[1])
  if not s[4] then return false end
  for _, c in ipairs(s[4]) do
    if c[1] ~= ARGV[2] then return true end
  end
  return false
end
if not others() then return 1 end
local start = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], start, 'COUNT', 100, 'JUSTID')
  start = r[1]
until start == '0-0'
if others() then return 0 end
return 1",
    )
});

/// KEYS: lease, stream. ARGV: holder, group, idle ms. Gives the lease back if it is still this
/// holder's, and marks the entries it took as left alone long ago: its deliveries ended with
/// it, the next holder need not wait them out.
static RESIGN: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
local ok, p = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[2], '-', '+', 100, ARGV[1])
if ok then
  for _, e in ipairs(p) do
    redis.call('XCLAIM', KEYS[2], ARGV[2], ARGV[1], 0, e[1], 'IDLE', ARGV[3], 'JUSTID')
  end
end
return 1",
    )
});

/// KEYS: stream, dead stream. ARGV: group, id, parked JSON or '' (ack), dead min id.
/// Parks only what was still in the stream: an entry an operator parked meanwhile is not
/// parked a second time by the delivery that gave up on it.
static REMOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local n = redis.call('XDEL', KEYS[1], ARGV[2])
if n == 1 and ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[4], '*', 'event', ARGV[3])
end
return n",
    )
});

/// KEYS: stream, dead stream. ARGV: the parked entry's id or '' (the oldest), how many at most.
/// Moves the parked entries that read as JSON back to the end of the stream, in order, past
/// any that do not (they stay parked); returns how many.
static REPLAY: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local max = tonumber(ARGV[2])
local n = 0
local start = '-'
while n < max do
  local entries
  if ARGV[1] ~= '' then
    entries = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])
  else
    entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 100)
  end
  if #entries == 0 then break end
  for _, e in ipairs(entries) do
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'event' and pcall(cjson.decode, f[i + 1]) then
        redis.call('XADD', KEYS[1], '*', 'event', f[i + 1])
        redis.call('XDEL', KEYS[2], e[1])
        n = n + 1
        break
      end
    end
    if n >= max then break end
  end
  if ARGV[1] ~= '' then break end
  start = '(' .. entries[#entries][1]
end
return n",
    )
});

/// KEYS: stream, dead stream. ARGV: group, entry id, min id of the dead stream.
/// An operator's park: the entry, if it is still in the stream, moved to the dead stream (as
/// written, whether or not it reads) and removed; returns 1, or 0 when it is not there.
static PARK_AT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then return 0 end
local f = e[1][2]
for i = 1, #f, 2 do
  if f[i] == 'event' then
    redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'event', f[i + 1])
  end
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1",
    )
});

/// Whether `id` is a whole Stream entry id (`MS-SEQ`): anything else names no one parked entry
/// (`MS` alone is every entry of that millisecond to Redis), and is not sent.
fn stream_id(id: &str) -> bool {
    let digits = |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .is_some_and(|(ms, seq)| digits(ms) && digits(seq))
}

pub struct RedisQueue {
    client: redis::Client,
    prefix: String,
    lease_ttl: Duration,
    /// This process in the consumer group and as a lease holder.
    me: String,
    clock: Clock,
    conn: OnceCell<ConnectionManager>,
    wakers: Wakers,
    /// Apps whose group exists (created once per process).
    grouped: Mutex<HashSet<String>>,
}

fn qerr(e: impl std::fmt::Display) -> QueueError {
    QueueError(format!("redis: {e}"))
}

/// [`RedisQueue::persistence`]'s words for a Redis that evicts.
const EVICTS: &str = "Redis evicts keys when it reaches maxmemory: queued callbacks, installs \
     and revocations can vanish without a word when it fills up (set maxmemory-policy \
     noeviction, or maxmemory 0)";

impl RedisQueue {
    pub fn open(
        url: &str,
        prefix: &str,
        lease_ttl: Duration,
        clock: Clock,
    ) -> Result<RedisQueue, QueueError> {
        // The URL may carry a password: the error names neither.
        let client = redis::Client::open(url)
            .map_err(|e| QueueError(format!("redis: invalid URL ({:?})", e.kind())))?;
        Ok(RedisQueue {
            client,
            prefix: prefix.to_owned(),
            lease_ttl,
            me: format!("{}-{:016x}", std::process::id(), rand::random::<u64>()),
            clock,
            conn: OnceCell::new(),
            wakers: Wakers::default(),
            grouped: Mutex::new(HashSet::new()),
        })
    }

    fn stream(&self, app: &str) -> String {
        format!("{}events:{app}", self.prefix)
    }

    fn dead(&self, app: &str) -> String {
        format!("{}events-dead:{app}", self.prefix)
    }

    fn lease(&self, app: &str) -> String {
        format!("{}events-lease:{app}", self.prefix)
    }

    fn retry_key(&self, app: &str) -> String {
        format!("{}events-retry:{app}", self.prefix)
    }

    /// Lives as long as the head event's wait before its next try: Redis's clock, which every
    /// instance shares, times it.
    fn retry_wait_key(&self, app: &str) -> String {
        format!("{}events-retry-wait:{app}", self.prefix)
    }

    fn seen(&self, app: &str, dedup: &str) -> String {
        format!("{}events-seen:{app}:{dedup}", self.prefix)
    }

    async fn conn(&self) -> Result<ConnectionManager, QueueError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_secs(1))
            .set_number_of_retries(1)
            .set_max_delay(200);
        let conn = self
            .conn
            .get_or_try_init(|| async {
                self.client
                    .get_connection_manager_with_config(config)
                    .await
                    .map_err(qerr)
            })
            .await?;
        Ok(conn.clone())
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, QueueError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let conn = self.conn().await?;
            op(conn).await.map_err(qerr)
        };
        tokio::time::timeout(OP_TIMEOUT, attempt)
            .await
            .map_err(|_| qerr("no answer in time"))?
    }

    async fn ensure_group(&self, app: &str) -> Result<(), QueueError> {
        if self
            .grouped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(app)
        {
            return Ok(());
        }
        let key = self.stream(app);
        let made: redis::RedisResult<()> = self
            .run(|mut c| async move {
                Ok(redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&key)
                    .arg(GROUP)
                    .arg("0")
                    .arg("MKSTREAM")
                    .query_async::<()>(&mut c)
                    .await)
            })
            .await?;
        match made {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(qerr(e)),
        }
        self.grouped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(app.to_owned());
        Ok(())
    }

    /// The first `limit` entries of the stream `key`, oldest first, as they are.
    async fn first_entries(
        &self,
        key: String,
        limit: usize,
    ) -> Result<StreamRangeReply, QueueError> {
        self.run(|mut c| async move {
            redis::cmd("XRANGE")
                .arg(&key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(limit)
                .query_async(&mut c)
                .await
        })
        .await
    }

    fn entry_queued(entry: &StreamId) -> Option<Queued> {
        let json: String = entry
            .map
            .get("event")
            .and_then(|v| redis::from_redis_value(v).ok())?;
        Some(Queued {
            position: entry.id.clone(),
            event: serde_json::from_str(&json).ok()?,
        })
    }

    /// One entry of the group for this consumer: `from` "0" = its own pending ones, ">" = new.
    async fn read(&self, app: &str, from: &str) -> Result<Option<StreamId>, QueueError> {
        let key = self.stream(app);
        let me = self.me.clone();
        let from = from.to_owned();
        let reply: Option<StreamReadReply> = self
            .run(|mut c| async move {
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(GROUP)
                    .arg(me)
                    .arg("COUNT")
                    .arg(1)
                    .arg("STREAMS")
                    .arg(&key)
                    .arg(from)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.and_then(|r| r.keys.into_iter().next()?.ids.into_iter().next()))
    }

    /// Takes the entry off the stream; `parked`, the JSON kept with the parked events.
    async fn remove(
        &self,
        app: &str,
        q: &Queued,
        parked: Option<String>,
    ) -> Result<(), QueueError> {
        let (stream, dead) = (self.stream(app), self.dead(app));
        let json = parked.unwrap_or_default();
        let min_id = self
            .clock
            .now_ms()
            .saturating_sub(DEAD_TTL.as_millis() as u64);
        let id = q.position.clone();
        self.run(|mut c| async move {
            REMOVE
                .key(&stream)
                .key(&dead)
                .arg(GROUP)
                .arg(&id)
                .arg(json)
                .arg(min_id)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(drop)
    }

    /// What to say when Redis may lose what it was given: it keeps nothing on disk (no
    /// `appendonly`: lost when it restarts), or it evicts keys when full (a `maxmemory` with a
    /// policy other than `noeviction`, a cache's usual setting: lost silently, acknowledged
    /// callbacks and installs among them). `Ok(None)` when it keeps them; `Err` when it could
    /// not be asked.
    pub async fn persistence(&self) -> Result<Option<&'static str>, QueueError> {
        // One section at a time: Redis before 7 takes one.
        let mut info = String::new();
        for section in ["persistence", "memory"] {
            let part: String =
                self.run(|mut c| async move {
                    redis::cmd("INFO").arg(section).query_async(&mut c).await
                })
                .await?;
            info.push_str(&part);
        }
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let on_disk = field("aof_enabled") == Some("1");
        let evicts = field("maxmemory").is_some_and(|m| m != "0")
            && field("maxmemory_policy").is_some_and(|p| p != "noeviction");
        Ok(match (on_disk, evicts) {
            (true, false) => None,
            (false, false) => Some(
                "Redis runs without appendonly: queued callbacks, installs and revocations are \
                 lost if Redis restarts (set appendonly yes)",
            ),
            (true, true) => Some(EVICTS),
            (false, true) => Some(
                "Redis runs without appendonly and evicts keys when full: queued callbacks, \
                 installs and revocations are lost if Redis restarts or fills up (set \
                 appendonly yes and maxmemory-policy noeviction)",
            ),
        })
    }

    /// Forgets that `app`'s group exists when Redis says it does not (`NOGROUP`: Redis
    /// restarted without its data, and a push made the stream again without the group), so
    /// the next look makes it again; without this the app's events, answered `success`, would
    /// wait for a restart of the gateway.
    fn forget_group_if_gone<T>(
        &self,
        app: &str,
        r: Result<T, QueueError>,
    ) -> Result<T, QueueError> {
        if let Err(e) = &r {
            if e.0.contains("NOGROUP") {
                self.grouped
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(app);
            }
        }
        r
    }

    async fn settle_once(&self, app: &str, in_flight: Duration) -> Result<bool, QueueError> {
        self.ensure_group(app).await?;
        let (key, me) = (self.stream(app), self.me.clone());
        // A holder renews (and touches its entry) every half second: the margin covers that and
        // the two clocks' reading of "idle".
        let min_idle = (in_flight + SETTLE_MARGIN).as_millis() as u64;
        let settled: i64 = self
            .run(|mut c| async move {
                SETTLE
                    .key(&key)
                    .arg(GROUP)
                    .arg(me)
                    .arg(min_idle)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(settled == 1)
    }

    async fn head_once(&self, app: &str) -> Result<Option<Queued>, QueueError> {
        self.ensure_group(app).await?;
        // Its own pending entries first (taken over, or read before a crash), then new ones.
        for from in ["0", ">"] {
            while let Some(entry) = self.read(app, from).await? {
                match Self::entry_queued(&entry) {
                    Some(q) => return Ok(Some(q)),
                    None => {
                        let q = Queued {
                            position: entry.id.clone(),
                            event: Event::new(app, String::new(), String::new(), 0),
                        };
                        // Unreadable (written by another version: a rolling upgrade or a
                        // rollback): parked as written, as the local queue parks it, to be
                        // listed and replayed by a version that reads it. Deleted under us
                        // (no fields left): nothing to keep.
                        let raw: Option<String> = entry
                            .map
                            .get("event")
                            .and_then(|v| redis::from_redis_value(v).ok());
                        match &raw {
                            Some(_) => tracing::error!(
                                app,
                                id = %entry.id,
                                "unreadable queued event parked (kept as written with the parked events)"
                            ),
                            None => {
                                tracing::warn!(app, id = %entry.id, "a queue entry without its event dropped")
                            }
                        }
                        self.remove(app, &q, raw).await?;
                    }
                }
                if from == ">" {
                    break;
                }
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl EventQueue for RedisQueue {
    async fn push(&self, event: &Event) -> Result<Pushed, QueueError> {
        let json = serde_json::to_string(event).map_err(qerr)?;
        let (seen, stream) = (self.seen(&event.app, &event.dedup), self.stream(&event.app));
        let ttl = DEDUP_TTL.as_millis() as u64;
        let id: Option<String> = self
            .run(|mut c| async move {
                PUSH.key(&seen)
                    .key(&stream)
                    .arg(ttl)
                    .arg(json)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(match id {
            Some(_) => {
                self.wakers.wake(&event.app);
                Pushed::Queued
            }
            None => Pushed::Duplicate,
        })
    }

    async fn seen(&self, app: &str, dedup: &str) -> Result<bool, QueueError> {
        let key = self.seen(app, dedup);
        self.run(|mut c| async move { redis::cmd("EXISTS").arg(&key).query_async(&mut c).await })
            .await
    }

    async fn lead(&self, app: &str) -> Result<bool, QueueError> {
        let (lease, me) = (self.lease(app), self.me.clone());
        let ttl = self.lease_ttl.as_millis() as u64;
        let got: i64 = self
            .run(
                |mut c| async move { LEAD.key(&lease).arg(me).arg(ttl).invoke_async(&mut c).await },
            )
            .await?;
        Ok(got > 0)
    }

    fn shares_retries(&self) -> bool {
        true
    }

    async fn retries(&self, app: &str) -> Result<Option<Retries>, QueueError> {
        let (key, wait) = (self.retry_key(app), self.retry_wait_key(app));
        let (text, ttl): (Option<String>, i64) = self
            .run(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd("PTTL")
                    .arg(&wait)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        // Another version's record, or none: the schedule starts again.
        let mut r: Option<Retries> = text.and_then(|t| serde_json::from_str(&t).ok());
        if let Some(r) = r.as_mut() {
            r.wait_ms = u64::try_from(ttl).unwrap_or(0);
        }
        Ok(r)
    }

    async fn keep_retries(&self, app: &str, r: Option<&Retries>) -> Result<(), QueueError> {
        let (key, wait) = (self.retry_key(app), self.retry_wait_key(app));
        match r {
            Some(r) => {
                let text = serde_json::to_string(r).map_err(qerr)?;
                // Outlives the day of tries it counts.
                let ttl = 2 * super::super::delivery::RETRY_FOR.as_millis() as u64;
                let wait_ms = r.wait_ms.max(1);
                self.run(|mut c| async move {
                    redis::pipe()
                        .cmd("SET")
                        .arg(&key)
                        .arg(text)
                        .arg("PX")
                        .arg(ttl)
                        .ignore()
                        .cmd("SET")
                        .arg(&wait)
                        .arg("1")
                        .arg("PX")
                        .arg(wait_ms)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
            None => {
                self.run(|mut c| async move {
                    redis::cmd("DEL")
                        .arg(&key)
                        .arg(&wait)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
        }
    }

    async fn settle(&self, app: &str, in_flight: Duration) -> Result<bool, QueueError> {
        let r = self.settle_once(app, in_flight).await;
        self.forget_group_if_gone(app, r)
    }

    async fn working_on(&self, app: &str, q: &Queued) -> Result<bool, QueueError> {
        let (lease, stream, me) = (self.lease(app), self.stream(app), self.me.clone());
        let ttl = self.lease_ttl.as_millis() as u64;
        let id = q.position.clone();
        let got: i64 = self
            .run(|mut c| async move {
                WORKING
                    .key(&lease)
                    .key(&stream)
                    .arg(me)
                    .arg(ttl)
                    .arg(GROUP)
                    .arg(id)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(got > 0)
    }

    async fn resign(&self, app: &str) {
        let (lease, stream, me) = (self.lease(app), self.stream(app), self.me.clone());
        // Idle for a year: older than any delivery's longest time.
        let long_ago = 365 * 86_400_000u64;
        let _ = self
            .run(|mut c| async move {
                RESIGN
                    .key(&lease)
                    .key(&stream)
                    .arg(me)
                    .arg(GROUP)
                    .arg(long_ago)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    async fn head(&self, app: &str) -> Result<Option<Queued>, QueueError> {
        let r = self.head_once(app).await;
        self.forget_group_if_gone(app, r)
    }

    async fn ack(&self, app: &str, q: &Queued) -> Result<(), QueueError> {
        let r = self.remove(app, q, None).await;
        self.forget_group_if_gone(app, r)
    }

    async fn park(&self, app: &str, q: &Queued) -> Result<(), QueueError> {
        let json = serde_json::to_string(&q.event).map_err(qerr)?;
        let r = self.remove(app, q, Some(json)).await;
        self.forget_group_if_gone(app, r)
    }

    async fn queued(&self, app: &str, limit: usize) -> Result<Vec<Queued>, QueueError> {
        let reply = self.first_entries(self.stream(app), limit).await?;
        Ok(reply.ids.iter().filter_map(Self::entry_queued).collect())
    }

    async fn park_at(&self, app: &str, position: &str) -> Result<bool, QueueError> {
        if !stream_id(position) {
            return Ok(false);
        }
        self.ensure_group(app).await?;
        let (stream, dead) = (self.stream(app), self.dead(app));
        let min_id = self
            .clock
            .now_ms()
            .saturating_sub(DEAD_TTL.as_millis() as u64);
        let id = position.to_owned();
        let r = self
            .run(|mut c| async move {
                PARK_AT
                    .key(&stream)
                    .key(&dead)
                    .arg(GROUP)
                    .arg(&id)
                    .arg(min_id)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|n| n == 1);
        self.forget_group_if_gone(app, r)
    }

    async fn parked(&self, app: &str, limit: usize) -> Result<Vec<Parked>, QueueError> {
        let reply = self.first_entries(self.dead(app), limit).await?;
        Ok(reply
            .ids
            .iter()
            .map(|entry| Parked {
                position: entry.id.clone(),
                // The entry id's first part is the Unix ms it was added at: when it was parked.
                parked_at: entry
                    .id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0),
                event: Self::entry_queued(entry).map(|q| q.event),
            })
            .collect())
    }

    async fn replay(&self, app: &str, position: Option<&str>) -> Result<u64, QueueError> {
        if position.is_some_and(|p| !stream_id(p)) {
            return Ok(0);
        }
        // The group reads the stream from its start ("0"), so what is added here is seen
        // whether or not the group was made yet.
        let (stream, dead) = (self.stream(app), self.dead(app));
        let one = position.unwrap_or("").to_owned();
        let n: u64 = self
            .run(|mut c| async move {
                REPLAY
                    .key(&stream)
                    .key(&dead)
                    .arg(one)
                    .arg(PARKED_PAGE)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if n > 0 {
            self.wakers.wake(app);
        }
        Ok(n)
    }

    async fn depth(&self, app: &str) -> Result<u64, QueueError> {
        let key = self.stream(app);
        self.run(|mut c| async move { redis::cmd("XLEN").arg(&key).query_async(&mut c).await })
            .await
    }

    async fn queued_apps(&self) -> Result<Vec<(String, u64)>, QueueError> {
        let head = self.stream("");
        // The prefix is the operator's: its glob characters are matched as themselves.
        let mut pattern = String::new();
        for ch in head.chars() {
            if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('*');
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let p = pattern.clone();
            let (next, batch): (u64, Vec<String>) = self
                .run(|mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&p)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        let mut apps = Vec::new();
        for key in keys {
            let Some(app) = key.strip_prefix(&head) else {
                continue;
            };
            let n = self.depth(app).await?;
            if n > 0 {
                apps.push((app.to_owned(), n));
            }
        }
        Ok(apps)
    }

    async fn persistence_warning(&self) -> Result<Option<&'static str>, QueueError> {
        self.persistence().await
    }

    async fn wait(&self, app: &str, limit: Duration) {
        // Pushes on other instances wake nobody here: poll.
        self.wakers
            .wait(app, limit.min(Duration::from_millis(250)))
            .await
    }
}
