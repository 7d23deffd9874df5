//! How a chatroom's members hear about a message: a new one, one marked
//! read, one deleted. Every such change goes out the same way, as `chatroom`
//! then `updatedChat` to every member, so a client has one place to listen
//! and each push carries both vocabularies (see `events`).

use entity::message;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::events::{self, ChatroomMessage, FlatMessage, MessagePayload, UpdatedChat};
use crate::types::with_senders;
use crate::Backend;

/// Pushes `chatroom` (about `message`) and `updatedChat` (with the
/// chatroom's newest message now, and `timestamp`: when the change
/// happened) to `members`.
pub(crate) async fn announce(
    backend: &dyn Backend,
    members: &[Uuid],
    message: MessagePayload,
    about: FlatMessage,
    last_message: Option<MessagePayload>,
    timestamp: i64,
) {
    let chatroom_id = message.chatroom_id;
    let message_event = ChatroomMessage {
        chatroom_id,
        message,
        about: about.clone(),
    };
    backend
        .push_to_users(members, events::CHATROOM, json(&message_event))
        .await;
    let chat_event = UpdatedChat {
        chatroom_id,
        member_ids: members.to_vec(),
        last_message,
        timestamp,
        about: Some(about),
    };
    backend
        .push_to_users(members, events::UPDATED_CHAT, json(&chat_event))
        .await;
}

/// The chatroom's newest message, with its sender's names.
pub(crate) async fn newest_message(
    db: &impl ConnectionTrait,
    chatroom_id: Uuid,
) -> ApiResult<Option<MessagePayload>> {
    let newest = message::Entity::find()
        .filter(message::Column::ChatroomId.eq(chatroom_id))
        .order_by_desc(message::Column::Id)
        .one(db)
        .await?;
    match newest {
        Some(row) => Ok(with_senders(db, vec![row]).await?.pop()),
        None => Ok(None),
    }
}

/// Event payloads are plain structs of strings, numbers and ids, which
/// always serialize.
pub(crate) fn json<T: serde::Serialize>(event: &T) -> serde_json::Value {
    serde_json::to_value(event).unwrap_or(serde_json::Value::Null)
}
