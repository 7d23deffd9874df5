//! Which rooms a socket may be in. `may_join` is the one policy every join
//! goes through: change who may join what here, and only here.
//!
//! Room names:
//! - `chatroom:<id>`: the members of that chatroom (checked in the database
//!   at join time; removal from a chatroom makes the user's sockets leave).
//! - `topic:<name>`: any authenticated user; `<name>` is 1 to 64 of
//!   `a-z 0-9 _ - . /`.
//! - `user:<id>`, `tab:<token>`: the server's own (the user binding and the
//!   `tabWindowId` token); never joined or left by clients.

use entity::chatroom_member;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Room {
    Chatroom(Uuid),
    Topic(String),
}

impl Room {
    pub fn name(&self) -> String {
        match self {
            Room::Chatroom(id) => chatroom_room(*id),
            Room::Topic(topic) => format!("topic:{topic}"),
        }
    }
}

pub fn chatroom_room(id: Uuid) -> String {
    format!("chatroom:{id}")
}

#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    #[error("a room is a name, or {{ room: name }}")]
    BadPayload,
    #[error("room names are chatroom:<id> or topic:<name>")]
    UnknownKind,
    #[error("user: and tab: rooms are the server's own")]
    Reserved,
    #[error("not a chatroom id")]
    BadChatroomId,
    #[error("topic names are 1 to 64 of a-z 0-9 _ - . /")]
    BadTopic,
    #[error("authenticate first")]
    Unauthenticated,
    #[error("not a member of this chatroom")]
    NotAMember,
    #[error("at most {0} rooms per socket")]
    TooMany(usize),
    #[error("join the room first")]
    NotJoined,
    #[error("internal error")]
    Database(#[from] DbErr),
}

/// A room from a `joinRoom` / `leaveRoom` payload: a string or `{ room }`.
pub fn parse_payload(payload: Option<&Value>) -> Result<Room, RoomError> {
    let name = match payload {
        Some(Value::String(name)) => name.as_str(),
        Some(Value::Object(fields)) => fields
            .get("room")
            .and_then(Value::as_str)
            .ok_or(RoomError::BadPayload)?,
        _ => return Err(RoomError::BadPayload),
    };
    parse_name(name)
}

pub fn parse_name(name: &str) -> Result<Room, RoomError> {
    if let Some(id) = name.strip_prefix("chatroom:") {
        let id = crate::auth::parse_user_id(id).map_err(|_| RoomError::BadChatroomId)?;
        return Ok(Room::Chatroom(id));
    }
    if let Some(topic) = name.strip_prefix("topic:") {
        let ok = (1..=64).contains(&topic.len())
            && topic
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-./".contains(&b));
        return if ok {
            Ok(Room::Topic(topic.to_owned()))
        } else {
            Err(RoomError::BadTopic)
        };
    }
    if name.starts_with("user:") || name.starts_with("tab:") {
        return Err(RoomError::Reserved);
    }
    Err(RoomError::UnknownKind)
}

/// The policy: may `user` be in `room`?
pub async fn may_join(db: &DatabaseConnection, user: Uuid, room: &Room) -> Result<(), RoomError> {
    match room {
        Room::Topic(_) => Ok(()),
        Room::Chatroom(id) => chatroom_member::Entity::find_by_id((*id, user))
            .one(db)
            .await?
            .map(|_| ())
            .ok_or(RoomError::NotAMember),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_parse_into_the_two_kinds_and_nothing_else() {
        let id = "0192f3a4-5b6c-7d8e-9f00-112233445566";
        assert_eq!(
            parse_name(&format!("chatroom:{id}")).ok(),
            Some(Room::Chatroom(id.parse().expect("uuid")))
        );
        assert_eq!(
            parse_payload(Some(&json!({ "room": "topic:news/eu" }))).ok(),
            Some(Room::Topic("news/eu".into()))
        );
        assert!(matches!(
            parse_name(&format!("user:{id}")),
            Err(RoomError::Reserved)
        ));
        assert!(matches!(parse_name("tab:abc"), Err(RoomError::Reserved)));
        assert!(matches!(parse_name("topic:News"), Err(RoomError::BadTopic)));
        assert!(matches!(
            parse_name(&format!("topic:{}", "a".repeat(65))),
            Err(RoomError::BadTopic)
        ));
        assert!(matches!(
            parse_name("chatroom:42"),
            Err(RoomError::BadChatroomId)
        ));
        assert!(matches!(parse_name("lobby"), Err(RoomError::UnknownKind)));
        assert!(matches!(
            parse_payload(Some(&json!(7))),
            Err(RoomError::BadPayload)
        ));
        assert!(matches!(parse_payload(None), Err(RoomError::BadPayload)));
    }
}
