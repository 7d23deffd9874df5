//! The `*_sync` messages of note sync (docs/protocol.md, "Note sync"), one
//! builder each, used by the WebSocket pipeline (`fromUserId` the sender)
//! and by GraphQL mutations (`fromUserId: "server"`). They travel as durable
//! pushes of the same event name, so a plain connection reads
//! `{ "type": <event>, …fields }` and a Socket.IO socket the event with the
//! fields as its payload.

use serde_json::{json, Map, Value};

pub const NOTE_SYNC: &str = "note_sync";
pub const NOTE_CREATED_SYNC: &str = "note_created_sync";
pub const NOTE_DELETED_SYNC: &str = "note_deleted_sync";
pub const FOLDER_CREATED_SYNC: &str = "folder_created_sync";
pub const FOLDER_UPDATED_SYNC: &str = "folder_updated_sync";
pub const FOLDER_DELETED_SYNC: &str = "folder_deleted_sync";

/// `fromUserId` of what GraphQL mutations push.
pub const FROM_SERVER: &str = "server";

/// `changes` are the kept fields; `updatedAt` is added here.
pub fn note_sync(
    note_id: &str,
    mut changes: Map<String, Value>,
    updated_note: Value,
    updated_at: i64,
    timestamp: i64,
    from: &str,
) -> Value {
    changes.insert("updatedAt".into(), updated_at.into());
    json!({
        "noteId": note_id,
        "changes": changes,
        "updatedNote": updated_note,
        "timestamp": timestamp,
        "fromUserId": from,
    })
}

pub fn note_created_sync(note_data: Value, timestamp: i64, from: &str) -> Value {
    json!({ "noteData": note_data, "timestamp": timestamp, "fromUserId": from })
}

pub fn note_deleted_sync(note_id: &str, timestamp: i64, from: &str) -> Value {
    json!({ "noteId": note_id, "timestamp": timestamp, "fromUserId": from })
}

pub fn folder_created_sync(folder_data: Value, timestamp: i64, from: &str) -> Value {
    json!({ "folderData": folder_data, "timestamp": timestamp, "fromUserId": from })
}

/// `updatedFolder` only when there is one.
pub fn folder_updated_sync(
    folder_id: &str,
    changes: Value,
    updated_folder: Option<Value>,
    timestamp: i64,
    from: &str,
) -> Value {
    let mut sync = json!({
        "folderId": folder_id,
        "changes": changes,
        "timestamp": timestamp,
        "fromUserId": from,
    });
    if let (Some(folder), Value::Object(fields)) = (updated_folder, &mut sync) {
        fields.insert("updatedFolder".into(), folder);
    }
    sync
}

pub fn folder_deleted_sync(folder_id: &str, timestamp: i64, from: &str) -> Value {
    json!({ "folderId": folder_id, "timestamp": timestamp, "fromUserId": from })
}
