//! The plain WebSocket's JSON, both ways (contract §3): what a client may
//! send, parsed into one enum, and every frame the server sends, built
//! here and nowhere else.

use serde_json::{json, Map, Value};

/// The event a backend push gets when it names none; such a push is sent
/// to plain clients as its payload exactly.
pub use crate::backend_push::DEFAULT_EVENT;

/// One message from a client.
#[derive(Debug)]
pub enum Inbound {
    JoinRoom(Value),
    LeaveRoom(Value),
    Ping,
    /// `{ type: "auth", token }` or `{ type: "auth", id, secretkey }`.
    Auth(Value),
    /// `{ type: "resume", since }`.
    Resume(Value),
    /// Any other `{ type, … }`: a relay, checked by `protocol::relay`.
    Relay(Value),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("a message is a JSON object")]
    NotAnObject,
    #[error("unknown message: expected joinRoom, leaveRoom or a type")]
    Unknown,
}

impl Inbound {
    pub fn parse(text: &str) -> Result<Self, InboundError> {
        // serde_json stops at 128 levels of nesting: a 10,000-deep document
        // is a parse error here, not a stack overflow.
        let value: Value =
            serde_json::from_str(text).map_err(|e| InboundError::Malformed(e.to_string()))?;
        let Value::Object(fields) = value else {
            return Err(InboundError::NotAnObject);
        };
        if let Some(room) = fields.get("joinRoom") {
            return Ok(Self::JoinRoom(room.clone()));
        }
        if let Some(room) = fields.get("leaveRoom") {
            return Ok(Self::LeaveRoom(room.clone()));
        }
        match fields.get("type").and_then(Value::as_str) {
            Some("ping") => Ok(Self::Ping),
            Some("auth") => Ok(Self::Auth(Value::Object(fields))),
            Some("resume") => Ok(Self::Resume(Value::Object(fields))),
            Some(_) => Ok(Self::Relay(Value::Object(fields))),
            None => Err(InboundError::Unknown),
        }
    }
}

/// The first frame: the token a backend addresses this tab by.
pub fn greeting(tab: &str) -> Value {
    json!({ "tabWindowId": tab })
}

/// Both keys, so clients of either convention read it.
pub fn error(reason: &str) -> Value {
    json!({ "type": "error", "error": reason, "message": reason })
}

pub fn pong(now_ms: i64) -> Value {
    json!({ "type": "pong", "timestamp": now_ms })
}

pub fn auth_success(user: &str) -> Value {
    json!({ "type": "auth_success", "userId": user })
}

pub fn auth_failed(reason: &str) -> Value {
    json!({ "type": "auth_failed", "message": reason })
}

/// Event `event` with `payload` as a plain client receives it: the default
/// event's payload exactly; an object payload with `type` added; anything
/// else as `{ type, data }`.
pub fn push(event: &str, payload: &Value) -> Value {
    if event == DEFAULT_EVENT {
        return payload.clone();
    }
    match payload {
        Value::Object(fields) => {
            let mut frame = Map::with_capacity(fields.len() + 1);
            frame.insert("type".into(), Value::String(event.into()));
            for (k, v) in fields {
                if k != "type" {
                    frame.insert(k.clone(), v.clone());
                }
            }
            Value::Object(frame)
        }
        other => json!({ "type": event, "data": other }),
    }
}

/// The envelope of a durable push for clients that opted in (`?durable=1`):
/// `{ type, seq, data }` (and `replayed: true` when resent by `resume`), one
/// shape for every event so `seq` is always in the same place.
pub fn durable_push(event: &str, payload: &Value, meta: &Value) -> Value {
    let mut frame = json!({ "type": event, "data": payload });
    if let (Value::Object(frame), Value::Object(meta)) = (&mut frame, meta) {
        for (k, v) in meta {
            frame.insert(k.clone(), v.clone());
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_take_the_contract_shapes() {
        assert_eq!(push("push", &json!([1, 2])), json!([1, 2]));
        assert_eq!(
            push("Followed", &json!({ "by": "a", "type": "x" })),
            json!({ "type": "Followed", "by": "a" })
        );
        assert_eq!(
            push("Count", &json!(3)),
            json!({ "type": "Count", "data": 3 })
        );
        assert_eq!(
            durable_push("push", &json!(3), &json!({ "seq": 7 })),
            json!({ "type": "push", "data": 3, "seq": 7 })
        );
    }

    #[test]
    fn inbound_messages_parse_or_say_why_not() {
        assert!(matches!(
            Inbound::parse(r#"{"joinRoom":"topic:a"}"#),
            Ok(Inbound::JoinRoom(_))
        ));
        assert!(matches!(
            Inbound::parse(r#"{"type":"ping"}"#),
            Ok(Inbound::Ping)
        ));
        assert!(matches!(
            Inbound::parse(r#"{"type":"DRAW"}"#),
            Ok(Inbound::Relay(_))
        ));
        assert_eq!(Inbound::parse("[1]").err(), Some(InboundError::NotAnObject));
        assert_eq!(Inbound::parse("{}").err(), Some(InboundError::Unknown));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            Inbound::parse(&deep),
            Err(InboundError::Malformed(_))
        ));
    }
}
