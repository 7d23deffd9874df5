//! Payloads of the Socket.IO events the API pushes. Field names are the wire
//! contract (`docs/protocol.md`); serde renames them to camelCase.
//!
//! Two vocabularies share these payloads: Tidings' own (`Followed`, and
//! `chatroom`/`updatedChat` with a nested `message`) and the one the social
//! app's existing web client reads (`followed`, and the flat message fields
//! `id`, `sender`, `content`, `date`, `read`, `type` at the top level). The
//! flat fields are added beside the nested ones rather than sent as separate
//! events, so both kinds of client read one push and neither misses one.

use entity::{message, user};
use serde::Serialize;
use uuid::Uuid;

pub const FOLLOWED: &str = "Followed";
/// The social app's client listens for a lower-case `followed`, on follow
/// only; it is sent beside `Followed` when the host is set to
/// (`Backend::social_client_events`): a second event per follow would
/// surprise clients of Tidings' own vocabulary.
pub const NEW_FOLLOWER: &str = "followed";
pub const UPDATED_CHAT: &str = "updatedChat";
pub const CHATROOM: &str = "chatroom";

/// What a `chatroom`/`updatedChat` push is about, in its top-level `type`:
/// a new message carries its own type (`text`); these two are changes to
/// messages already sent.
pub const READ: &str = "read";
pub const DELETED: &str = "deleted";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Followed {
    pub follower_id: Uuid,
    pub follower_username: String,
    pub following: bool,
    pub timestamp: i64,
}

/// A user as the social app's client shows them.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub id: Uuid,
    /// The display name, or the username when none was chosen.
    pub name: String,
    pub username: String,
}

impl Person {
    pub fn of(user: &user::Model) -> Self {
        Self {
            id: user.id,
            name: user.display_name().to_owned(),
            username: user.username.clone(),
        }
    }
}

/// `followed`: `id` is the follower's id (a follow has no id of its own:
/// the pair of users is its key).
#[derive(Serialize)]
pub struct NewFollower {
    pub id: Uuid,
    pub follower: Person,
    pub timestamp: i64,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct MessagePayload {
    pub id: Uuid,
    pub chatroom_id: Uuid,
    pub sender_id: Uuid,
    pub sender_username: String,
    /// The sender's display name (their username when they chose none).
    pub sender_name: String,
    pub content: String,
    pub created_at: i64,
    pub read: bool,
    #[serde(rename = "type")]
    pub kind: String,
}

impl MessagePayload {
    /// A stored message as pushes and the API show it. A sender that is
    /// gone (their account deleted in between) shows as empty names.
    pub fn from_row(m: message::Model, sender: Option<&user::Model>) -> Self {
        Self {
            sender_username: sender.map(|u| u.username.clone()).unwrap_or_default(),
            sender_name: sender
                .map(|u| u.display_name().to_owned())
                .unwrap_or_default(),
            id: m.id,
            chatroom_id: m.chatroom_id,
            sender_id: m.sender_id,
            content: m.content,
            created_at: m.created_at,
            read: m.read,
            kind: m.kind,
        }
    }
}

/// The flat message fields at the top level of `chatroom` and `updatedChat`
/// (the social app's client reads `data.sender.id`, `data.content`…). `type`
/// says what the push is about: the message's own type for a new message,
/// [`READ`] or [`DELETED`] for a change to one.
#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FlatMessage {
    pub id: Uuid,
    pub sender: Person,
    pub content: String,
    /// When the message was sent, ms since the epoch.
    pub date: i64,
    pub read: bool,
    #[serde(rename = "type")]
    pub kind: String,
    /// Who marked it read (with [`READ`] only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<Person>,
}

impl FlatMessage {
    /// The fields of `message`, announced as `kind`.
    pub fn of(message: &MessagePayload, kind: &str) -> Self {
        Self {
            id: message.id,
            sender: Person {
                id: message.sender_id,
                name: message.sender_name.clone(),
                username: message.sender_username.clone(),
            },
            content: message.content.clone(),
            date: message.created_at,
            read: message.read,
            kind: kind.to_owned(),
            read_by: None,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedChat {
    pub chatroom_id: Uuid,
    pub member_ids: Vec<Uuid>,
    /// The chatroom's newest message now (`null` when it has none).
    pub last_message: Option<MessagePayload>,
    pub timestamp: i64,
    /// The message this update is about, when it is about one.
    #[serde(flatten)]
    pub about: Option<FlatMessage>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatroomMessage {
    pub chatroom_id: Uuid,
    pub message: MessagePayload,
    #[serde(flatten)]
    pub about: FlatMessage,
}
