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

use std::borrow::Cow;

use serde_json::Value;

/// A durable push may name the one connection that must not receive it
/// (the connection that caused it: note sync's "every other connection of
/// the user"). The mark travels inside the payload, so it survives the log,
/// a gap filled from it and the hop to other nodes; every outbox passes its
/// payload through [`addressed`], which removes it.
pub const EXCEPT_KEY: &str = "__exceptConnection";

/// The payload `me` (a plain connection's tab; `None` for a Socket.IO
/// socket) should send, without the [`EXCEPT_KEY`] mark; `None` when the
/// push names `me` as the connection to leave out.
pub fn addressed<'a>(payload: &'a Value, me: Option<&str>) -> Option<Cow<'a, Value>> {
    let Some(except) = payload.get(EXCEPT_KEY) else {
        return Some(Cow::Borrowed(payload));
    };
    if me.is_some() && except.as_str() == me {
        return None;
    }
    let mut payload = payload.clone();
    if let Value::Object(fields) = &mut payload {
        fields.remove(EXCEPT_KEY);
    }
    Some(Cow::Owned(payload))
}
