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
use crate::rooms::chatroom_room;

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("event must be an object {{ type, timestamp, userId, payload, room }}")]
    NotAnObject,
    #[error("type must match ^[A-Z][A-Z0-9_]{{0,63}}$")]
    BadType,
    #[error("timestamp must be whole milliseconds since the epoch")]
    BadTimestamp,
    #[error("payload must be an object")]
    BadPayload,
    #[error("payload is too large: at most {0} bytes")]
    PayloadTooLarge(usize),
    #[error("room must be the name of a room this socket joined")]
    NotJoined,
    #[error("chatroomId must be a chatroom id")]
    BadChatroom,
    #[error("authenticate first")]
    Unauthenticated,
    #[error("stale event dropped")]
    Stale,
}

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
    let Some(Value::Object(mut fields)) = data else {
        return Err(RelayError::NotAnObject);
    };
    let kind = match fields.get("type") {
        Some(Value::String(kind)) if is_event_type(kind) => kind.clone(),
        _ => return Err(RelayError::BadType),
    };
    let timestamp = fields
        .get("timestamp")
        .and_then(Value::as_i64)
        .ok_or(RelayError::BadTimestamp)?;
    let payload = match fields.remove("payload") {
        Some(Value::Object(payload)) => payload,
        _ => return Err(RelayError::BadPayload),
    };
    let size = serde_json::to_vec(&payload)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > config.relay_max_payload_bytes {
        return Err(RelayError::PayloadTooLarge(config.relay_max_payload_bytes));
    }
    let room = match fields.get("room") {
        Some(Value::String(room))
            if joined.iter().any(|r| r == room) && crate::rooms::parse_name(room).is_ok() =>
        {
            room.clone()
        }
        _ => return Err(RelayError::NotJoined),
    };
    let in_between = config.relay_in_between_types.contains(&kind);
    if in_between && now_ms().abs_diff(timestamp) > config.relay_max_age_ms.unsigned_abs() {
        return Err(RelayError::Stale);
    }
    if !(in_between && config.log_format == LogFormat::Json) {
        tracing::debug!(socket_id = %s.id, user_id = %user, event = %kind, room, "relaying");
    }
    let event = json!({ "type": kind, "timestamp": timestamp, "userId": user, "payload": Value::Object(payload), "room": room });
    // `s.to` excludes the sender; socketioxide's adapter reaches every node.
    if let Err(err) = s.to(room).emit("event", &event).await {
        tracing::warn!(error = %err, "relay missed some sockets");
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

fn is_event_type(kind: &str) -> bool {
    let bytes = kind.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

fn reply<A: Adapter>(s: &SocketRef<A>, ack: AckSender<A>, value: Value) {
    if let Err(err) = ack.send(&value) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack");
    }
}
