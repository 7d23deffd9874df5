//! Every frame note sync sends, and every error text, built here and
//! nowhere else: the notes app's client branches on these exact strings
//! (docs/protocol.md, "Note sync").

use serde_json::{json, Value};

/// A refusal the client hears as `{ "type": "error", "message": <text> }`;
/// the connection stays open unless the caller closes it.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("Message too large. Maximum size is 1MB.")]
    TooLarge,
    #[error("Rate limit exceeded. Please slow down.")]
    RateLimited,
    #[error("Invalid message format")]
    InvalidFormat,
    #[error("Message authentication failed")]
    Signature,
    #[error("Unknown message type")]
    UnknownType,
    #[error("Authentication required")]
    AuthenticationRequired,
    #[error("Missing noteId or userId")]
    MissingNoteId,
    #[error("Note not found or access denied")]
    NoteNotFound,
    #[error("No valid fields to update")]
    NoValidFields,
    #[error("Missing noteId or noteData")]
    MissingNoteData,
    #[error("Access denied: Cannot broadcast resource created by another user")]
    NotTheCreator,
    #[error("Missing folderId or folderData")]
    MissingFolderData,
    #[error("Missing folderId or changes")]
    MissingFolderChanges,
    #[error("Missing folderId or userId")]
    MissingFolderId,
    #[error("Folder not found or access denied")]
    FolderNotFound,
    #[error("Maximum connections exceeded for this user")]
    TooManyConnections,
    #[error("Authentication timeout. Connection will be closed.")]
    AuthTimeout,
    /// The store failed: logged, and told as a format failure (contract:
    /// "a failure in what follows").
    #[error("Invalid message format")]
    Database(#[from] sea_orm::DbErr),
}

impl NoteError {
    pub fn frame(&self) -> Value {
        json!({ "type": "error", "message": self.to_string() })
    }
}

pub fn greeting() -> Value {
    json!({ "type": "connection_established", "message": "Please authenticate to continue" })
}

pub fn pong(now_ms: i64) -> Value {
    json!({ "type": "pong", "timestamp": now_ms })
}

pub fn auth_success(user_id: &str, session_secret: &str) -> Value {
    json!({
        "type": "auth_success",
        "message": "Authentication successful",
        "userId": user_id,
        "sessionSecret": session_secret,
    })
}

/// Why `auth` failed, in the client's two vocabularies (`message` and
/// `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Failed,
    Expired,
}

pub fn auth_failed(why: AuthFailure) -> Value {
    let (message, reason) = match why {
        AuthFailure::Failed => ("Authentication failed", "auth-failed"),
        AuthFailure::Expired => ("Token expired", "token-expired"),
    };
    json!({ "type": "auth_failed", "message": message, "reason": reason })
}

pub fn note_joined(note_id: &str) -> Value {
    json!({
        "type": "note_joined",
        "noteId": note_id,
        "message": "Successfully joined note for real-time sync",
    })
}

pub fn note_left(note_id: &str) -> Value {
    json!({ "type": "note_left", "noteId": note_id })
}

pub fn note_update_success(note_id: &str, updated_note: Value, timestamp: i64) -> Value {
    json!({
        "type": "note_update_success",
        "noteId": note_id,
        "updatedNote": updated_note,
        "timestamp": timestamp,
    })
}
