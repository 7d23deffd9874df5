//! `joinRoom` / `leaveRoom`. Every join goes through `rooms::may_join`.

use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};

use super::session::{emit_error, Session};
use crate::rooms::{self, Room, RoomError};

pub async fn join<A: Adapter>(
    session: &Session,
    s: SocketRef<A>,
    payload: Option<Value>,
    ack: AckSender<A>,
) {
    let result = try_join(session, &s, payload.as_ref()).await;
    answer(&s, ack, "joinRoom", result);
}

pub async fn leave<A: Adapter>(s: SocketRef<A>, payload: Option<Value>, ack: AckSender<A>) {
    let result = rooms::parse_payload(payload.as_ref()).map(|room| s.leave(room.name()));
    answer(&s, ack, "leaveRoom", result);
}

async fn try_join<A: Adapter>(
    session: &Session,
    s: &SocketRef<A>,
    payload: Option<&Value>,
) -> Result<(), RoomError> {
    let room = rooms::parse_payload(payload)?;
    let joined = s.rooms();
    let user = session
        .bound_user_among(&joined)
        .ok_or(RoomError::Unauthenticated)?;
    let app = session.app().ok_or(RoomError::Unauthenticated)?;
    let name = room.name();
    if !joined.iter().any(|r| *r == name) {
        let limit = app.config().max_rooms_per_socket;
        if client_rooms(&joined) >= limit {
            return Err(RoomError::TooMany(limit));
        }
        rooms::may_join(app.db(), user, &room).await?;
        s.join(name);
    }
    tracing::debug!(socket_id = %s.id, user_id = %user, room = ?room, "joined room");
    Ok(())
}

/// Rooms the client chose (not the server's `user:` and `tab:` rooms).
fn client_rooms(joined: &[socketioxide_core::adapter::Room]) -> usize {
    joined
        .iter()
        .filter(|r| rooms::parse_name(r).is_ok())
        .count()
}

/// Leaves every client-chosen room the user may no longer hold (after the
/// socket re-authenticated as someone else, or lost its binding).
pub async fn prune<A: Adapter>(
    s: &SocketRef<A>,
    app: &crate::state::AppState,
    user: Option<uuid::Uuid>,
) {
    for name in s.rooms() {
        let Ok(room) = rooms::parse_name(&name) else {
            continue;
        };
        let allowed = match user {
            Some(user) => rooms::may_join(app.db(), user, &room).await.is_ok(),
            None => false,
        };
        if !allowed {
            s.leave(Room::name(&room));
        }
    }
}

/// The ack says `{ ok: true }` or `{ error }`; a failure is also sent as an
/// `error` event, for clients that asked for no ack.
fn answer<A: Adapter>(
    s: &SocketRef<A>,
    ack: AckSender<A>,
    event: &str,
    result: Result<(), RoomError>,
) {
    let reply = match &result {
        Ok(()) => json!({ "ok": true }),
        Err(RoomError::Database(cause)) => {
            tracing::error!(socket_id = %s.id, event, error = %cause, "database error in room request");
            emit_error(s, &format!("{event}: internal error"));
            json!({ "error": "internal error" })
        }
        Err(err) => {
            tracing::debug!(socket_id = %s.id, event, reason = %err, "room request refused");
            emit_error(s, &format!("{event}: {err}"));
            json!({ "error": err.to_string() })
        }
    };
    if let Err(err) = ack.send(&reply) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack");
    }
}
