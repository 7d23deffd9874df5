//! The rules of a relayed event (`{ type, timestamp, payload, room }`), for
//! every transport: type pattern, payload size, joined room, and the
//! recency window of "in-between" types (cursor positions, frames), which
//! are superseded by the next one and so dropped rather than shown late.
//!
//! Pure: the caller says which rooms the sender is in and what time it is,
//! and gets back the event to fan out, `userId` stamped with the sender's
//! real user so a client cannot speak for someone else.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::Config;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
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
    #[error("this connection may only listen in that room")]
    ReadOnly,
    #[error("chatroomId must be a chatroom id")]
    BadChatroom,
    #[error("authenticate first")]
    Unauthenticated,
    #[error("stale event dropped")]
    Stale,
}

/// A relay that passed the rules: where it goes and what is sent.
#[derive(Debug)]
pub struct Relay {
    pub kind: String,
    pub room: String,
    /// `{ type, timestamp, userId, payload, room }`.
    pub event: Value,
    pub in_between: bool,
}

/// Checks `data` sent by `user`. `room` is the event's own `room` field or,
/// when it has none, `default_room` (a plain connection's path room);
/// `joined` says whether the sender is in a room.
pub fn check(
    data: Option<Value>,
    user: Uuid,
    default_room: Option<&str>,
    joined: impl Fn(&str) -> bool,
    config: &Config,
    now_ms: i64,
) -> Result<Relay, RelayError> {
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
        Some(Value::String(room)) => room.as_str(),
        None | Some(Value::Null) => default_room.ok_or(RelayError::NotJoined)?,
        Some(_) => return Err(RelayError::NotJoined),
    };
    if !joined(room) || crate::rooms::parse_name(room).is_err() {
        return Err(RelayError::NotJoined);
    }
    let in_between = config.relay_in_between_types.contains(&kind);
    if in_between && now_ms.abs_diff(timestamp) > config.relay_max_age_ms.unsigned_abs() {
        return Err(RelayError::Stale);
    }
    let event = json!({ "type": kind, "timestamp": timestamp, "userId": user, "payload": Value::Object(payload), "room": room });
    Ok(Relay {
        kind,
        room: room.to_owned(),
        event,
        in_between,
    })
}

pub fn is_event_type(kind: &str) -> bool {
    let bytes = kind.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::for_database("sqlite::memory:")
    }

    #[test]
    fn a_relay_is_stamped_with_the_real_user_and_falls_back_to_the_path_room() {
        let user = Uuid::now_v7();
        let data =
            json!({ "type": "DRAW", "timestamp": 1, "userId": "mallory", "payload": { "x": 1 } });
        let relay = check(
            Some(data),
            user,
            Some("topic:a"),
            |r| r == "topic:a",
            &config(),
            1,
        )
        .expect("valid relay");
        assert_eq!(relay.room, "topic:a");
        assert_eq!(relay.event["userId"], json!(user));
    }

    #[test]
    fn bad_relays_are_refused_with_their_reason() {
        let user = Uuid::now_v7();
        let cfg = config();
        let joined = |r: &str| r == "topic:a";
        let run = |data: Value| check(Some(data), user, None, joined, &cfg, 10_000_000).err();
        assert_eq!(run(json!(1)), Some(RelayError::NotAnObject));
        assert_eq!(
            run(json!({ "type": "lower", "timestamp": 1, "payload": {}, "room": "topic:a" })),
            Some(RelayError::BadType)
        );
        assert_eq!(
            run(json!({ "type": "A", "timestamp": "x", "payload": {}, "room": "topic:a" })),
            Some(RelayError::BadTimestamp)
        );
        assert_eq!(
            run(json!({ "type": "A", "timestamp": 1, "payload": 3, "room": "topic:a" })),
            Some(RelayError::BadPayload)
        );
        assert_eq!(
            run(json!({ "type": "A", "timestamp": 1, "payload": {}, "room": "topic:b" })),
            Some(RelayError::NotJoined)
        );
        assert_eq!(
            run(json!({ "type": "A", "timestamp": 1, "payload": {} })),
            Some(RelayError::NotJoined)
        );
        assert_eq!(
            run(json!({ "type": "CURSOR_SYNC", "timestamp": 1, "payload": {}, "room": "topic:a" })),
            Some(RelayError::Stale)
        );
    }
}
