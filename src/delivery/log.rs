//! The durable per-user push log: every push addressed to a user gets the
//! next number of that user's sequence (`seq`) and is kept for the
//! retention window, so a connection that drops can be given what it
//! missed.
//!
//! Two stores, one contract:
//! - [`RedisLog`] when Redis is configured: the log must outlive any one
//!   node, and a client may come back on any node.
//! - [`SqlLog`] for a single node: the database it already has, so a
//!   restart keeps both the pushes and each user's sequence.
//!
//! `seq` starts at 1 and grows by exactly one per push to that user. It is a
//! GraphQL `Int` (`pushLog`), which is why it is not time-based.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::redis_log::RedisLog;
use super::sql_log::SqlLog;

/// One logged push, as it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPush {
    pub seq: u64,
    pub event: String,
    pub payload: Value,
    /// Milliseconds since the epoch, by the store's clock.
    pub created_at: i64,
}

/// What the log holds after a given `seq`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRead {
    /// The user's last `seq` (0: nothing was ever pushed to them).
    pub head: u64,
    /// Entries with `seq` above the one asked for, oldest first, without
    /// gaps between them. The first may be later than asked for when older
    /// ones fell out of the retention window.
    pub entries: Vec<LoggedPush>,
}

impl LogRead {
    /// The oldest `seq` the caller can still be given, when something it
    /// asked for is no longer held: the first entry, or past the head when
    /// every entry it lacks has expired.
    pub fn missing_before(&self, after: u64) -> Option<u64> {
        let wanted = after + 1;
        match self.entries.first() {
            Some(first) if first.seq > wanted => Some(first.seq),
            None if self.head >= wanted => Some(self.head + 1),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("unreadable log entry: {0}")]
    Corrupt(String),
}

/// How long and how much the log keeps per user.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub window: Duration,
    pub max_events: usize,
}

impl Retention {
    pub fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }
}

#[derive(Clone)]
pub enum PushLog {
    Redis(RedisLog),
    Sql(SqlLog),
}

impl PushLog {
    /// Logs a push to each of `users` and returns their `seq`s, in the same
    /// order. All or nothing per store round trip: an error means no user's
    /// push was acknowledged as logged.
    pub async fn append(
        &self,
        users: &[Uuid],
        event: &str,
        payload: &Value,
    ) -> Result<Vec<u64>, LogError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let text = payload.to_string();
        match self {
            PushLog::Redis(log) => log.append(users, event, &text).await,
            PushLog::Sql(log) => log.append(users, event, &text).await,
        }
    }

    /// What the log holds for `user` after `after`, at most `limit` entries
    /// (the oldest ones).
    pub async fn read(&self, user: Uuid, after: u64, limit: usize) -> Result<LogRead, LogError> {
        match self {
            PushLog::Redis(log) => log.read(user, after, limit).await,
            PushLog::Sql(log) => log.read(user, after, limit).await,
        }
    }

    /// The user's last `seq` (0 when nothing was logged yet).
    pub async fn head(&self, user: Uuid) -> Result<u64, LogError> {
        Ok(self.read(user, u64::MAX - 1, 0).await?.head)
    }

    /// Remembers where a device of `user` stopped, for the retention window
    /// (see `resume`).
    pub async fn save_device_cursor(
        &self,
        user: Uuid,
        device: &str,
        seq: u64,
    ) -> Result<(), LogError> {
        match self {
            PushLog::Redis(log) => log.save_device_cursor(user, device, seq).await,
            PushLog::Sql(log) => {
                log.save_device_cursor(user, device, seq);
                Ok(())
            }
        }
    }

    /// Takes (reads and forgets) where a device of `user` stopped.
    pub async fn take_device_cursor(
        &self,
        user: Uuid,
        device: &str,
    ) -> Result<Option<u64>, LogError> {
        match self {
            PushLog::Redis(log) => log.take_device_cursor(user, device).await,
            PushLog::Sql(log) => Ok(log.take_device_cursor(user, device)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> LoggedPush {
        LoggedPush {
            seq,
            event: "e".into(),
            payload: Value::Null,
            created_at: 0,
        }
    }

    #[test]
    fn a_read_knows_when_what_was_asked_for_is_gone() {
        let whole = LogRead {
            head: 5,
            entries: vec![entry(4), entry(5)],
        };
        assert_eq!(whole.missing_before(3), None);
        assert_eq!(whole.missing_before(1), Some(4));
        let expired = LogRead {
            head: 5,
            entries: vec![],
        };
        assert_eq!(expired.missing_before(2), Some(6));
        assert_eq!(expired.missing_before(5), None);
        assert_eq!(LogRead::default().missing_before(0), None);
    }
}
