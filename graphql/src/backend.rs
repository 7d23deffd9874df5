//! The port between the API and the process hosting it.
//!
//! It is a trait rather than a concrete type because the host crate
//! (`tidings`) depends on this one: the application state lives there and
//! implements this, so the schema data carries that same shared handle.

use sea_orm::DatabaseConnection;
use uuid::Uuid;

/// A freshly generated secret: the plain text is shown to its owner once, the
/// hash is what gets stored.
pub struct IssuedSecret {
    pub secret: String,
    pub hash: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// One entry of a user's durable push log.
pub struct LogEntry {
    pub seq: u64,
    pub event: String,
    pub payload: serde_json::Value,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    fn db(&self) -> &DatabaseConnection;

    /// Generates a new secret and its argon2id hash (off the async threads).
    async fn issue_secret(&self) -> Result<IssuedSecret, BackendError>;

    /// Emits `event` with `payload` to every authenticated socket of each user.
    /// Delivery problems are the push service's to log; they do not undo the
    /// mutation that caused the push.
    async fn push_to_users(&self, users: &[Uuid], event: &str, payload: serde_json::Value);

    /// Unbinds every socket of the user (after a secret rotation) and tells
    /// each `auth` false.
    async fn revoke_sockets(&self, user: Uuid);

    /// Disconnects every socket of the user (after account deletion).
    async fn disconnect_sockets(&self, user: Uuid);

    /// Makes every socket of `user`, on every node, leave `room` now.
    async fn evict(&self, user: Uuid, room: &str);

    /// The user's logged pushes after `since`, oldest first, at most `first`.
    async fn push_log(
        &self,
        user: Uuid,
        since: u64,
        first: usize,
    ) -> Result<Vec<LogEntry>, BackendError>;

    /// Which of `users` have at least one authenticated socket anywhere in
    /// the cluster, in the same order.
    async fn online(&self, users: &[Uuid]) -> Vec<bool>;

    /// Whether the user has at least one authenticated socket.
    async fn is_online(&self, user: Uuid) -> bool {
        self.online(&[user]).await.first().copied().unwrap_or(false)
    }

    /// Whether to send, beside Tidings' own events, those of the social
    /// app's existing web client whose names differ (`followed`). A setting
    /// of the host (`--social-client-events`), off unless it says so.
    fn social_client_events(&self) -> bool {
        false
    }
}
