//! The push log of a single node, in its database (`push_log_heads`,
//! `push_log`): a restart keeps every user's sequence and what is still
//! inside the window. One transaction per push, whatever the number of its
//! users, so a push to a chatroom costs one commit.
//!
//! Device cursors stay in process: they only matter while the node that
//! saw the device leave is the one it comes back to, and a restart closes
//! every connection anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use entity::now_ms;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, QueryResult, Statement, TransactionTrait, Value,
};
use uuid::Uuid;

use super::log::{LogError, LogRead, LoggedPush, Retention};

/// Above this many remembered devices, expired ones are swept on write.
const SWEEP_DEVICES_ABOVE: usize = 10_000;

type DeviceCursors = HashMap<(Uuid, String), (u64, Instant)>;

#[derive(Clone)]
pub struct SqlLog {
    db: DatabaseConnection,
    retention: Retention,
    devices: Arc<Mutex<DeviceCursors>>,
}

impl SqlLog {
    pub fn new(db: DatabaseConnection, retention: Retention) -> Self {
        Self {
            db,
            retention,
            devices: Arc::default(),
        }
    }

    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    pub async fn append(
        &self,
        users: &[Uuid],
        event: &str,
        payload: &str,
    ) -> Result<Vec<u64>, LogError> {
        let now = now_ms();
        let oldest = now - self.retention.window_ms();
        let max = i64::try_from(self.retention.max_events).unwrap_or(i64::MAX);
        let txn = self.db.begin().await?;
        let mut seqs = Vec::with_capacity(users.len());
        for user in users {
            let row = txn
                .query_one(self.statement(
                    "INSERT INTO push_log_heads (user_id, seq) VALUES ($1, 1) \
                     ON CONFLICT (user_id) DO UPDATE SET seq = push_log_heads.seq + 1 \
                     RETURNING seq",
                    vec![(*user).into()],
                ))
                .await?
                .ok_or_else(|| LogError::Corrupt("no sequence returned".into()))?;
            let seq: i64 = row.try_get("", "seq")?;
            txn.execute(self.statement(
                "INSERT INTO push_log (user_id, seq, event, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                vec![
                    (*user).into(),
                    seq.into(),
                    event.into(),
                    payload.into(),
                    now.into(),
                ],
            ))
            .await?;
            txn.execute(self.statement(
                "DELETE FROM push_log WHERE user_id = $1 AND (seq <= $2 OR created_at < $3)",
                vec![(*user).into(), (seq - max).into(), oldest.into()],
            ))
            .await?;
            seqs.push(u64::try_from(seq).unwrap_or_default());
        }
        txn.commit().await?;
        Ok(seqs)
    }

    pub async fn read(&self, user: Uuid, after: u64, limit: usize) -> Result<LogRead, LogError> {
        let head = self
            .db
            .query_one(self.statement(
                "SELECT seq FROM push_log_heads WHERE user_id = $1",
                vec![user.into()],
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "seq"))
            .transpose()?
            .map_or(0, |seq| u64::try_from(seq).unwrap_or_default());
        if head <= after || limit == 0 {
            return Ok(LogRead {
                head,
                entries: Vec::new(),
            });
        }
        let oldest = now_ms() - self.retention.window_ms();
        let rows = self
            .db
            .query_all(self.statement(
                "SELECT seq, event, payload, created_at FROM push_log \
                 WHERE user_id = $1 AND seq > $2 AND created_at >= $3 ORDER BY seq LIMIT $4",
                vec![
                    user.into(),
                    i64::try_from(after).unwrap_or(i64::MAX).into(),
                    oldest.into(),
                    i64::try_from(limit).unwrap_or(i64::MAX).into(),
                ],
            ))
            .await?;
        let entries = rows.iter().map(entry).collect::<Result<_, _>>()?;
        Ok(LogRead { head, entries })
    }

    pub fn save_device_cursor(&self, user: Uuid, device: &str, seq: u64) {
        let window = self.retention.window;
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if devices.len() > SWEEP_DEVICES_ABOVE {
            devices.retain(|_, (_, at)| at.elapsed() < window);
        }
        devices.insert((user, device.to_owned()), (seq, Instant::now()));
    }

    pub fn take_device_cursor(&self, user: Uuid, device: &str) -> Option<u64> {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let (seq, at) = devices.remove(&(user, device.to_owned()))?;
        (at.elapsed() < self.retention.window).then_some(seq)
    }

    /// Drops what fell out of the window for users nobody pushed to since
    /// (appends trim only their own user). Run now and then by the owner.
    pub async fn sweep(&self) -> Result<u64, LogError> {
        let oldest = now_ms() - self.retention.window_ms();
        let done = self
            .db
            .execute(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "DELETE FROM push_log WHERE created_at < $1",
                [oldest.into()],
            ))
            .await?;
        Ok(done.rows_affected())
    }
}

fn entry(row: &QueryResult) -> Result<LoggedPush, LogError> {
    let seq: i64 = row.try_get("", "seq")?;
    let payload: String = row.try_get("", "payload")?;
    Ok(LoggedPush {
        seq: u64::try_from(seq).unwrap_or_default(),
        event: row.try_get("", "event")?,
        payload: serde_json::from_str(&payload).map_err(|e| LogError::Corrupt(e.to_string()))?,
        created_at: row.try_get("", "created_at")?,
    })
}
