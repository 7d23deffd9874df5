//! Durable delivery: the per-user push log, each connection's cursor in it,
//! and how logged pushes reach the other nodes. The push service
//! (`crate::push`) is what callers use; this is what it stands on.
//!
//! A durable push (one addressed to a user) is logged first, which gives it
//! its `seq`; then it is offered to the cursor of every connection of that
//! user, here and, through [`channel`], on every other node. A connection
//! that comes back resumes from the seq it (or its device) last had
//! (`crate::gateway` decides from where; docs/protocol.md, "Delivery
//! guarantees").

pub mod channel;
pub mod cursor;
pub mod log;
mod redis_log;
mod sql_log;

pub use channel::{DeliveryChannel, LoggedMessage};
pub use cursor::{Cursor, Outbox, Position, ReplayError, Replayed};
pub use log::{LogError, LogRead, LoggedPush, PushLog, Retention};
pub use redis_log::RedisLog;
pub use sql_log::SqlLog;
