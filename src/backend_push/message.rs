//! The `BackgroundPush` Redis message: a JSON object with `payload` (any
//! JSON, required), exactly one of `pushToUser` (user id) or `pushToRoom`
//! (room name), optional `tabWindowId` (with `pushToUser`: only that socket),
//! optional `event` (default `push`). Unknown fields are ignored.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{check_event, check_room, parse_user, DEFAULT_EVENT};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRejected {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("payload is required")]
    MissingPayload,
    #[error("exactly one of pushToUser or pushToRoom is required, not both")]
    BothTargets,
    #[error("exactly one of pushToUser or pushToRoom is required")]
    NoTarget,
    #[error("{0} must be a string")]
    NotAString(&'static str),
    #[error("not a user id (UUID): {0:?}")]
    BadUser(String),
    #[error("not a room name (1-128 printable ASCII characters, no spaces): {0:?}")]
    BadRoom(String),
    #[error("tabWindowId needs pushToUser")]
    TabWithoutUser,
    #[error("tabWindowId must be 1 to 64 printable ASCII characters")]
    BadTab,
    #[error("event must be 1 to 64 printable ASCII characters without spaces")]
    BadEvent,
    #[error("event {0:?} is reserved")]
    ReservedEvent(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    User { user: Uuid, tab: Option<String> },
    Room(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackgroundPush {
    pub target: Target,
    pub event: String,
    pub payload: Value,
}

impl BackgroundPush {
    pub fn parse(raw: &[u8]) -> Result<Self, PushRejected> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|e| PushRejected::NotJson(e.to_string()))?;
        let Value::Object(mut fields) = value else {
            return Err(PushRejected::NotAnObject);
        };
        let payload = fields
            .remove("payload")
            .ok_or(PushRejected::MissingPayload)?;
        let user = string_field(&fields, "pushToUser")?;
        let room = string_field(&fields, "pushToRoom")?;
        let tab = string_field(&fields, "tabWindowId")?;
        let event = string_field(&fields, "event")?.unwrap_or(DEFAULT_EVENT);
        check_event(event)?;
        let target = match (user, room) {
            (Some(_), Some(_)) => return Err(PushRejected::BothTargets),
            (None, None) => return Err(PushRejected::NoTarget),
            (Some(user), None) => {
                let tab = match tab {
                    Some(tab)
                        if tab.is_empty()
                            || tab.len() > 64
                            || !tab.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
                    {
                        return Err(PushRejected::BadTab)
                    }
                    tab => tab.map(str::to_owned),
                };
                Target::User {
                    user: parse_user(user)?,
                    tab,
                }
            }
            (None, Some(room)) => {
                if tab.is_some() {
                    return Err(PushRejected::TabWithoutUser);
                }
                check_room(room)?;
                Target::Room(room.to_owned())
            }
        };
        Ok(Self {
            target,
            event: event.to_owned(),
            payload,
        })
    }
}

fn string_field<'a>(
    fields: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, PushRejected> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(PushRejected::NotAString(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USER: &str = "0192f3a4-5b6c-7d8e-9f00-112233445566";

    fn parse(v: Value) -> Result<BackgroundPush, PushRejected> {
        BackgroundPush::parse(v.to_string().as_bytes())
    }

    #[test]
    fn accepts_user_tab_and_room_targets() {
        let push = parse(json!({ "pushToUser": USER, "payload": { "n": 1 } })).expect("valid");
        assert_eq!(push.event, "push");
        assert_eq!(
            push.target,
            Target::User {
                user: USER.parse().expect("uuid"),
                tab: None
            }
        );
        let push = parse(
            json!({ "pushToUser": USER, "tabWindowId": "t1", "event": "ping", "payload": null }),
        )
        .expect("valid");
        assert_eq!(push.event, "ping");
        assert!(matches!(push.target, Target::User { tab: Some(ref t), .. } if t == "t1"));
        let push = parse(json!({ "pushToRoom": "topic:news", "payload": [1, 2] })).expect("valid");
        assert_eq!(push.target, Target::Room("topic:news".into()));
    }

    #[test]
    fn rejects_every_malformed_message_with_its_reason() {
        assert!(matches!(
            BackgroundPush::parse(b"not json"),
            Err(PushRejected::NotJson(_))
        ));
        let cases = [
            (json!([1, 2]), PushRejected::NotAnObject),
            (json!({ "pushToUser": USER }), PushRejected::MissingPayload),
            (json!({ "payload": 1 }), PushRejected::NoTarget),
            (
                json!({ "pushToUser": USER, "pushToRoom": "r", "payload": 1 }),
                PushRejected::BothTargets,
            ),
            (
                json!({ "pushToUser": 5, "payload": 1 }),
                PushRejected::NotAString("pushToUser"),
            ),
            (
                json!({ "pushToUser": "bo b", "payload": 1 }),
                PushRejected::BadUser("bo b".into()),
            ),
            (
                json!({ "pushToRoom": "has space", "payload": 1 }),
                PushRejected::BadRoom("has space".into()),
            ),
            (
                json!({ "pushToRoom": "r", "tabWindowId": "t", "payload": 1 }),
                PushRejected::TabWithoutUser,
            ),
            (
                json!({ "pushToUser": USER, "event": "auth", "payload": 1 }),
                PushRejected::ReservedEvent("auth".into()),
            ),
            (
                json!({ "pushToUser": USER, "event": "", "payload": 1 }),
                PushRejected::BadEvent,
            ),
            (
                json!({ "pushToUser": USER, "event": ["x"], "payload": 1 }),
                PushRejected::NotAString("event"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input.clone()), Err(expected), "{input}");
        }
    }
}
