//! The push log in Redis: per user, a counter and a stream.
//!
//! Keys (each user's in one hash slot, so Redis Cluster can run the scripts
//! below; PITFALLS.md):
//! - `<prefix>:{u:<id>}:seq`: the user's last `seq` (`INCR`; no expiry, so a
//!   user's sequence never restarts while Redis keeps its data);
//! - `<prefix>:{u:<id>}:log`: a stream of `{ s: seq, e: event, p: payload }`,
//!   trimmed at every append to the retention window (`MINID`, by the
//!   stream ids' milliseconds) and to the per-user maximum (`MAXLEN`), and
//!   expiring a window after its last push;
//! - `<prefix>:{u:<id>}:device:<device>`: where a device stopped, for one
//!   window.
//!
//! A stream id is not a gap-free counter, hence the separate `INCR` in the
//! same script: the counter and the entry are written together or not at
//! all. Durability is Redis's: with `appendonly yes` and `appendfsync
//! always` an acknowledged append survives a Redis restart.
//!
//! Every command goes through the bus's breaker and timeout: with Redis
//! gone a push falls back to what this node can reach at once, instead of
//! waiting for a reconnect.

use futures_util::future::try_join_all;
use redis::{Script, Value as RedisValue};
use uuid::Uuid;

use super::log::{LogError, LogRead, LoggedPush, Retention};
use crate::cluster::RedisBus;

const APPEND: &str = r"
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], '*', 's', seq, 'e', ARGV[1], 'p', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', now - tonumber(ARGV[4]))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return seq
";

/// Returns `{ head, entries newest first }`; only entries inside the window,
/// and only as many as lie after the asked-for `seq`.
const READ: &str = r"
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = head - tonumber(ARGV[1])
if want <= 0 or tonumber(ARGV[2]) == 0 then return {head, {}} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = now - tonumber(ARGV[3])
if oldest < 0 then oldest = 0 end
return {head, redis.call('XREVRANGE', KEYS[2], '+', oldest, 'COUNT', want)}
";

#[derive(Clone)]
pub struct RedisLog {
    bus: RedisBus,
    prefix: String,
    retention: Retention,
    /// Replicas each append waits for (`--redis-log-replicas`).
    replicas: u32,
    append: Script,
    read: Script,
}

impl RedisLog {
    pub fn new(bus: RedisBus, prefix: &str, retention: Retention, replicas: u32) -> Self {
        Self {
            bus,
            prefix: prefix.to_owned(),
            retention,
            replicas,
            append: Script::new(APPEND),
            read: Script::new(READ),
        }
    }

    fn key(&self, user: Uuid, what: &str) -> String {
        format!("{}:{{u:{user}}}:{what}", self.prefix)
    }

    /// One script per user (users live in different hash slots), sent at
    /// once over the multiplexed connection.
    pub async fn append(
        &self,
        users: &[Uuid],
        event: &str,
        payload: &str,
    ) -> Result<Vec<u64>, LogError> {
        let window = self.retention.window_ms().max(1);
        let appends = users.iter().map(|user| {
            let mut conn = self.bus.connection();
            let mut invocation = self.append.prepare_invoke();
            invocation
                .key(self.key(*user, "seq"))
                .key(self.key(*user, "log"))
                .arg(event)
                .arg(payload)
                .arg(self.retention.max_events.max(1))
                .arg(window);
            let log_key = self.key(*user, "log");
            async move {
                let seq = self
                    .bus
                    .bounded(async move { invocation.invoke_async::<u64>(&mut conn).await })
                    .await?;
                if self.replicas > 0 {
                    // The push is in the master already; a replica that
                    // did not confirm it only narrows what a failover keeps.
                    match self.bus.wait_for_replicas(&log_key, self.replicas).await {
                        Ok(confirmed) if confirmed >= self.replicas => {}
                        Ok(confirmed) => {
                            tracing::debug!(seq, confirmed, wanted = self.replicas, "a logged push is not on enough replicas yet")
                        }
                        Err(err) => {
                            tracing::warn!(seq, error = %err, "cannot confirm a logged push on a replica")
                        }
                    }
                }
                Ok::<u64, redis::RedisError>(seq)
            }
        });
        Ok(try_join_all(appends).await?)
    }

    pub async fn read(&self, user: Uuid, after: u64, limit: usize) -> Result<LogRead, LogError> {
        let mut invocation = self.read.prepare_invoke();
        invocation
            .key(self.key(user, "seq"))
            .key(self.key(user, "log"))
            .arg(after)
            .arg(limit)
            .arg(self.retention.window_ms());
        let mut conn = self.bus.connection();
        let (head, newest_first): (u64, Vec<RedisValue>) = self
            .bus
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        let mut entries = newest_first
            .into_iter()
            .rev()
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        entries.retain(|e| e.seq > after);
        entries.truncate(limit);
        Ok(LogRead { head, entries })
    }

    pub async fn save_device_cursor(
        &self,
        user: Uuid,
        device: &str,
        seq: u64,
    ) -> Result<(), LogError> {
        let window = u64::try_from(self.retention.window_ms().max(1)).unwrap_or(u64::MAX);
        let mut command = redis::cmd("SET");
        command
            .arg(self.key(user, &format!("device:{device}")))
            .arg(seq)
            .arg("PX")
            .arg(window);
        let mut conn = self.bus.connection();
        self.bus
            .bounded(async move { command.query_async::<()>(&mut conn).await })
            .await?;
        Ok(())
    }

    pub async fn take_device_cursor(
        &self,
        user: Uuid,
        device: &str,
    ) -> Result<Option<u64>, LogError> {
        let mut command = redis::cmd("GETDEL");
        command.arg(self.key(user, &format!("device:{device}")));
        let mut conn = self.bus.connection();
        Ok(self
            .bus
            .bounded(async move { command.query_async::<Option<u64>>(&mut conn).await })
            .await?)
    }
}

/// `[id, [field, value, …]]` with id `<ms>-<n>` and fields `s`, `e`, `p`.
fn parse_entry(raw: RedisValue) -> Result<LoggedPush, LogError> {
    let corrupt = |what: &str| LogError::Corrupt(what.to_owned());
    let (id, fields): (String, Vec<(String, String)>) =
        redis::from_redis_value(raw).map_err(|e| LogError::Corrupt(e.to_string()))?;
    let created_at = id
        .split_once('-')
        .and_then(|(ms, _)| ms.parse().ok())
        .ok_or_else(|| corrupt("stream id"))?;
    let (mut seq, mut event, mut payload) = (None, None, None);
    for (field, value) in fields {
        match field.as_str() {
            "s" => seq = value.parse().ok(),
            "e" => event = Some(value),
            "p" => payload = serde_json::from_str(&value).ok(),
            _ => {}
        }
    }
    Ok(LoggedPush {
        seq: seq.ok_or_else(|| corrupt("seq"))?,
        event: event.ok_or_else(|| corrupt("event"))?,
        payload: payload.ok_or_else(|| corrupt("payload"))?,
        created_at,
    })
}
