//! Where a socket picks up its user's push log when it authenticates, and
//! the `resume` event.
//!
//! In order of precedence (docs/protocol.md, "Delivery guarantees"):
//! 1. `since` the client sent (handshake `auth`, or a `resume` event);
//! 2. where this device stopped: the device cookie a browser carries;
//! 3. where the user's last socket stopped, when the user had no other
//!    socket left anywhere: a phone that dropped off the network and comes
//!    back is then the same device, even without cookies;
//! 4. otherwise now: a new tab is owed nothing from before it opened.

use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use uuid::Uuid;

use super::session::{emit_error, Session};
use crate::delivery::{Position, ReplayError};
use crate::push::SocketOutbox;
use crate::state::AppState;

/// The device key under which a user's last socket leaves its place.
pub const LAST_SOCKET: &str = "last-socket";

/// The largest `since` a client can send: JavaScript's safe integers.
const MAX_SINCE: u64 = (1 << 53) - 1;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("since must be a whole number from 0 to {MAX_SINCE}")]
pub struct BadSince;

/// A `since` from the client: a whole, non-negative JSON number.
pub fn parse_since(value: &Value) -> Result<u64, BadSince> {
    value
        .as_u64()
        .filter(|since| *since <= MAX_SINCE)
        .ok_or(BadSince)
}

/// Where a socket that just authenticated starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Everything logged after this seq is replayed.
    After(u64),
    /// From the next push on.
    Now,
}

/// Decides where `user`'s new socket starts, before it joins the user's
/// room (so "had no other socket" is not answered by itself).
///
/// `was_bound` is who the socket was bound to before this attempt: a socket
/// authenticating again as the same user keeps its place, but one whose
/// binding was revoked meanwhile (a secret rotation) starts afresh, since
/// what was pushed while it was unbound is not its own.
pub async fn start_point(
    app: &AppState,
    session: &Session,
    position: &Position,
    user: Uuid,
    since: Option<u64>,
    was_bound: Option<Uuid>,
) -> Start {
    if let Some(since) = since {
        return Start::After(since);
    }
    if position.user() == Some(user) {
        // Re-binding drops the old binding first, so a push in between did
        // not reach this socket: it picks up after the last it was sent.
        return match (was_bound == Some(user), position.last()) {
            (true, Some(last)) => Start::After(last),
            _ => Start::Now,
        };
    }
    if let Some(device) = session.device() {
        if let Some(seq) = take_saved_place(app, user, &device).await {
            return Start::After(seq);
        }
    }
    let alone = !app
        .presence()
        .online(&[user])
        .await
        .first()
        .copied()
        .unwrap_or(false);
    if alone {
        if let Some(seq) = take_saved_place(app, user, LAST_SOCKET).await {
            return Start::After(seq);
        }
    }
    Start::Now
}

/// Takes the place saved under `key` (a device, or a transport's "last
/// connection") for the user: it is used once. None when nothing is saved
/// or the log cannot tell (then the connection starts from now).
pub async fn take_saved_place(app: &AppState, user: Uuid, key: &str) -> Option<u64> {
    match app.push().log().take_device_cursor(user, key).await {
        Ok(place) => place,
        Err(err) => {
            tracing::warn!(user_id = %user, key, error = %err, "saved place unavailable");
            None
        }
    }
}

/// Starts `position` at the user's current head: what comes next is the
/// socket's. When the log cannot be read it starts with the next push.
pub async fn follow_from_now(app: &AppState, position: &mut Position, user: Uuid) {
    let head = match app.push().log().head(user).await {
        Ok(head) => Some(head),
        Err(err) => {
            tracing::warn!(user_id = %user, error = %err, "push log unavailable; following from the next push");
            None
        }
    };
    position.follow(user, head);
}

/// Replays what the log holds after `since` (after the socket was told
/// `auth` true); live pushes, waiting for the cursor meanwhile, follow.
/// Returns how many pushes were replayed.
pub async fn replay<A: Adapter>(
    app: &AppState,
    s: &SocketRef<A>,
    position: &mut Position,
    user: Uuid,
    since: u64,
) -> Result<usize, ReplayError> {
    let outbox = SocketOutbox(s);
    let max = app.config().resume_max_events;
    match position
        .replay(app.push().log(), &outbox, user, since, max)
        .await
    {
        Ok(replayed) => {
            let metrics = app.metrics();
            metrics.pushes_replayed.inc_by(replayed.count as u64);
            if replayed.resync_from.is_some() {
                metrics.resyncs.inc();
            }
            tracing::debug!(socket_id = %s.id, user_id = %user, since, count = replayed.count, resync = ?replayed.resync_from, "resumed");
            Ok(replayed.count)
        }
        Err(err) => {
            if let ReplayError::Log(cause) = &err {
                tracing::warn!(socket_id = %s.id, user_id = %user, error = %cause, "cannot replay; following from the next push");
                position.follow(user, None);
            }
            Err(err)
        }
    }
}

/// The `resume` event: `{ since }` from an authenticated socket, answered
/// `{ ok: true, replayed: n }` after the replay (or `{ error }`).
pub async fn resume_event<A: Adapter>(
    session: &Session,
    s: SocketRef<A>,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    let reply = match resume(session, &s, data.as_ref()).await {
        Ok(replayed) => json!({ "ok": true, "replayed": replayed }),
        Err(reason) => {
            emit_error(&s, &format!("resume: {reason}"));
            json!({ "error": reason })
        }
    };
    if let Err(err) = ack.send(&reply) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack resume");
    }
}

async fn resume<A: Adapter>(
    session: &Session,
    s: &SocketRef<A>,
    data: Option<&Value>,
) -> Result<usize, String> {
    let since = match data {
        Some(Value::Object(fields)) => fields.get("since").ok_or("since is missing")?,
        _ => return Err("the payload must be { since }".to_owned()),
    };
    let since = parse_since(since).map_err(|e| e.to_string())?;
    let app = session.app().ok_or("the server is shutting down")?;
    let mut position = session.cursor().lock().await;
    let user = session
        .bound_user(s)
        .ok_or_else(|| "authenticate first".to_owned())?;
    replay(&app, s, &mut position, user, since)
        .await
        .map_err(|err| match err {
            ReplayError::Log(_) => "the push log is unavailable, try again later".to_owned(),
            ahead => ahead.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_whole_non_negative_safe_integer() {
        assert_eq!(parse_since(&json!(0)), Ok(0));
        assert_eq!(parse_since(&json!(42)), Ok(42));
        assert_eq!(parse_since(&json!(MAX_SINCE)), Ok(MAX_SINCE));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("3"),
            json!(null),
            json!([1]),
            json!({ "since": 1 }),
            json!(MAX_SINCE + 1),
            json!(u64::MAX),
            json!(1e300),
        ] {
            assert_eq!(parse_since(&bad), Err(BadSince), "{bad}");
        }
    }
}
