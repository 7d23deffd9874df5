//! Relay of short-lived client events (`event`) and typing indicators
//! (`typing`) to the other sockets of a room, on every node.
//!
//! The server stamps `userId` with the socket's own user, so a client cannot
//! speak for someone else. "In-between" types (cursor positions, frames,
//! typing) are superseded by the next one, so one whose timestamp is too far
//! from now (default 5 s, either way) is dropped rather than shown late.

use entity::now_ms;
use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};

use super::session::{emit_error, Session};
use crate::config::{Config, LogFormat};
use crate::protocol::relay::{self as rules, RelayError};
use crate::rooms::chatroom_room;

pub async fn relay<A: Adapter>(
    session: &Session,
    s: SocketRef<A>,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    let Some(app) = session.app() else { return };
    let config = app.config();
    let outcome = forward(session, &s, data, config).await;
    match outcome {
        Ok(()) => reply(&s, ack, json!({ "ok": true })),
        Err(RelayError::Stale) => {
            app.metrics().relay_stale_dropped.inc();
            // Superseded anyway: no `error` event, only the ack says so.
            reply(&s, ack, json!({ "error": RelayError::Stale.to_string() }));
        }
        Err(err) => {
            tracing::debug!(socket_id = %s.id, event = "event", reason = %err, "relay refused");
            emit_error(&s, &format!("event: {err}"));
            reply(&s, ack, json!({ "error": err.to_string() }));
        }
    }
}

async fn forward<A: Adapter>(
    session: &Session,
    s: &SocketRef<A>,
    data: Option<Value>,
    config: &Config,
) -> Result<(), RelayError> {
    let joined = s.rooms();
    let user = session
        .bound_user_among(&joined)
        .ok_or(RelayError::Unauthenticated)?;
    let relay = rules::check(
        data,
        user,
        None,
        |room| joined.iter().any(|r| r == room),
        config,
        now_ms(),
    )?;
    if !(relay.in_between && config.log_format == LogFormat::Json) {
        tracing::debug!(socket_id = %s.id, user_id = %user, event = %relay.kind, room = relay.room, "relaying");
    }
    // `s.to` excludes the sender; socketioxide's adapter reaches every node.
    if let Err(err) = s.to(relay.room.clone()).emit("event", &relay.event).await {
        tracing::warn!(error = %err, "relay missed some sockets");
    }
    if let Some(app) = session.app() {
        app.push()
            .relay_to_plain(&relay.room, &relay.event, None)
            .await;
    }
    Ok(())
}

pub async fn typing<A: Adapter>(
    session: &Session,
    s: SocketRef<A>,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    let outcome = (|| {
        let joined = s.rooms();
        let user = session
            .bound_user_among(&joined)
            .ok_or(RelayError::Unauthenticated)?;
        let id = data
            .as_ref()
            .and_then(|d| d.get("chatroomId"))
            .and_then(Value::as_str)
            .and_then(|id| crate::auth::parse_user_id(id).ok())
            .ok_or(RelayError::BadChatroom)?;
        let room = chatroom_room(id);
        if !joined.iter().any(|r| *r == room) {
            return Err(RelayError::NotJoined);
        }
        Ok((user, id, room))
    })();
    match outcome {
        Ok((user, id, room)) => {
            let event = json!({ "chatroomId": id, "userId": user, "timestamp": now_ms() });
            if let Err(err) = s.to(room).emit("typing", &event).await {
                tracing::warn!(error = %err, "typing missed some sockets");
            }
            reply(&s, ack, json!({ "ok": true }));
        }
        Err(err) => {
            emit_error(&s, &format!("typing: {err}"));
            reply(&s, ack, json!({ "error": err.to_string() }));
        }
    }
}

fn reply<A: Adapter>(s: &SocketRef<A>, ack: AckSender<A>, value: Value) {
    if let Err(err) = ack.send(&value) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack");
    }
}
