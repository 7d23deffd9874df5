//! Payloads of the Socket.IO events the API pushes. Field names are the wire
//! contract (`docs/protocol.md`); serde renames them to camelCase.

use serde::Serialize;
use uuid::Uuid;

pub const FOLLOWED: &str = "Followed";
pub const UPDATED_CHAT: &str = "updatedChat";
pub const CHATROOM: &str = "chatroom";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Followed {
    pub follower_id: Uuid,
    pub follower_username: String,
    pub following: bool,
    pub timestamp: i64,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct MessagePayload {
    pub id: Uuid,
    pub chatroom_id: Uuid,
    pub sender_id: Uuid,
    pub sender_username: String,
    pub content: String,
    pub created_at: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedChat {
    pub chatroom_id: Uuid,
    pub member_ids: Vec<Uuid>,
    pub last_message: Option<MessagePayload>,
    pub timestamp: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatroomMessage {
    pub chatroom_id: Uuid,
    pub message: MessagePayload,
}
