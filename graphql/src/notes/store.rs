//! Notes and folders, read and written for one owner at a time. Both the
//! note-sync WebSocket (`tidings::notes`) and the GraphQL resolvers go
//! through here, so "this user's note" and "which changes may be stored"
//! mean the same thing on both paths.
//!
//! An id that is not a UUID names nothing (it is never sent to the
//! database as text), so a SQL-looking id is simply "not found".

use entity::{folder, note};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// The only text a note's `title`/`content` may hold: the app encrypts on
/// the client and keeps the ciphertext in `encryptedTitle`/`encryptedContent`.
pub const ENCRYPTED_MARK: &str = "[ENCRYPTED]";

/// The fields `note_update` may change, in the contract's order.
pub const UPDATABLE: [&str; 9] = [
    "title",
    "content",
    "encryptedTitle",
    "encryptedContent",
    "starred",
    "archived",
    "deleted",
    "hidden",
    "folderId",
];

/// A kept field whose value has the wrong JSON type.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} has the wrong type")]
pub struct WrongType(pub &'static str);

/// What an update sets; `Some(None)` clears a nullable field.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NoteChanges {
    pub title: Option<Option<String>>,
    pub content: Option<Option<String>>,
    pub encrypted_title: Option<Option<String>>,
    pub encrypted_content: Option<Option<String>>,
    pub starred: Option<bool>,
    pub archived: Option<bool>,
    pub deleted: Option<bool>,
    pub hidden: Option<bool>,
    /// The folder as the client named it; checked against the owner's
    /// folders before anything is written.
    pub folder_id: Option<Option<String>>,
}

impl NoteChanges {
    /// Keeps what the contract allows of a client's `changes`: only the
    /// [`UPDATABLE`] keys (so `__proto__`, `userId`, `id` and the rest are
    /// dropped), and a string `title`/`content` only when it is
    /// [`ENCRYPTED_MARK`]. Returns the changes and the kept fields as the
    /// client sent them (what `note_sync` echoes).
    pub fn filter(changes: &Map<String, Value>) -> Result<(Self, Map<String, Value>), WrongType> {
        let mut kept = Map::new();
        let mut out = Self::default();
        for key in UPDATABLE {
            let Some(value) = changes.get(key) else {
                continue;
            };
            match key {
                "title" | "content" => {
                    let slot = match value {
                        Value::String(s) if s == ENCRYPTED_MARK => Some(Some(s.clone())),
                        // Plain text: never stored, silently dropped.
                        Value::String(_) => continue,
                        Value::Null => Some(None),
                        _ => return Err(WrongType(key)),
                    };
                    if key == "title" {
                        out.title = slot;
                    } else {
                        out.content = slot;
                    }
                }
                "encryptedTitle" | "encryptedContent" | "folderId" => {
                    let slot = match value {
                        Value::String(s) => Some(Some(s.clone())),
                        Value::Null => Some(None),
                        _ => return Err(WrongType(key)),
                    };
                    match key {
                        "encryptedTitle" => out.encrypted_title = slot,
                        "encryptedContent" => out.encrypted_content = slot,
                        _ => out.folder_id = slot,
                    }
                }
                _ => {
                    let flag = value.as_bool().ok_or(WrongType(key))?;
                    match key {
                        "starred" => out.starred = Some(flag),
                        "archived" => out.archived = Some(flag),
                        "deleted" => out.deleted = Some(flag),
                        _ => out.hidden = Some(flag),
                    }
                }
            }
            kept.insert(key.to_owned(), value.clone());
        }
        Ok((out, kept))
    }
}

fn parse(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

/// The owner's note `id`, if there is one.
pub async fn owned_note<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    id: &str,
) -> Result<Option<note::Model>, DbErr> {
    let Some(id) = parse(id) else {
        return Ok(None);
    };
    note::Entity::find_by_id(id)
        .filter(note::Column::UserId.eq(owner))
        .one(db)
        .await
}

/// The owner's folder `id`, if there is one.
pub async fn owned_folder<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    id: &str,
) -> Result<Option<folder::Model>, DbErr> {
    let Some(id) = parse(id) else {
        return Ok(None);
    };
    folder::Entity::find_by_id(id)
        .filter(folder::Column::UserId.eq(owner))
        .one(db)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("Folder not found or access denied")]
    Folder,
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Applies `changes` to `note` (its owner's, already checked), with
/// `updated_at = now`, and returns the stored note. A `folderId` must name
/// one of the owner's folders.
pub async fn update_note<C: ConnectionTrait>(
    db: &C,
    note: note::Model,
    changes: &NoteChanges,
    now: i64,
) -> Result<note::Model, UpdateError> {
    let folder_id = match &changes.folder_id {
        Some(Some(folder)) => Some(Some(
            owned_folder(db, &note.user_id, folder)
                .await?
                .ok_or(UpdateError::Folder)?
                .id,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let mut row = note.into_active_model();
    if let Some(v) = &changes.title {
        row.title = Set(v.clone());
    }
    if let Some(v) = &changes.content {
        row.content = Set(v.clone());
    }
    if let Some(v) = &changes.encrypted_title {
        row.encrypted_title = Set(v.clone());
    }
    if let Some(v) = &changes.encrypted_content {
        row.encrypted_content = Set(v.clone());
    }
    if let Some(v) = changes.starred {
        row.starred = Set(v);
    }
    if let Some(v) = changes.archived {
        row.archived = Set(v);
    }
    if let Some(v) = changes.deleted {
        row.deleted = Set(v);
    }
    if let Some(v) = changes.hidden {
        row.hidden = Set(v);
    }
    if let Some(v) = folder_id {
        row.folder_id = Set(v);
    }
    row.updated_at = Set(now);
    Ok(row.update(db).await?)
}

/// A new note of `owner`; `changes` as for an update (flags default to false).
pub async fn create_note<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    changes: &NoteChanges,
    now: i64,
) -> Result<note::Model, UpdateError> {
    let row = note::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(owner.to_owned()),
        title: Set(None),
        content: Set(None),
        encrypted_title: Set(None),
        encrypted_content: Set(None),
        starred: Set(false),
        archived: Set(false),
        deleted: Set(false),
        hidden: Set(false),
        folder_id: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let created = row.insert(db).await?;
    if *changes == NoteChanges::default() {
        return Ok(created);
    }
    match update_note(db, created.clone(), changes, now).await {
        Ok(note) => Ok(note),
        Err(err) => {
            // The note must not outlive a refused folder.
            note::Entity::delete_by_id(created.id).exec(db).await?;
            Err(err)
        }
    }
}

/// The owner's notes, newest first, after the note `after` (keyset
/// pagination by id: ids are UUIDv7, so by creation), in `folder` if given.
pub async fn list_notes<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    first: u64,
    after: Option<Uuid>,
    folder: Option<Uuid>,
) -> Result<Vec<note::Model>, DbErr> {
    let mut query = note::Entity::find()
        .filter(note::Column::UserId.eq(owner))
        .order_by_desc(note::Column::Id)
        .limit(first);
    if let Some(after) = after {
        query = query.filter(note::Column::Id.lt(after));
    }
    if let Some(folder) = folder {
        query = query.filter(note::Column::FolderId.eq(folder));
    }
    query.all(db).await
}

/// Deletes the owner's note; false if they have none of that id.
pub async fn delete_note<C: ConnectionTrait>(db: &C, owner: &str, id: Uuid) -> Result<bool, DbErr> {
    let deleted = note::Entity::delete_many()
        .filter(note::Column::Id.eq(id))
        .filter(note::Column::UserId.eq(owner))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

pub async fn list_folders<C: ConnectionTrait>(
    db: &C,
    owner: &str,
) -> Result<Vec<folder::Model>, DbErr> {
    folder::Entity::find()
        .filter(folder::Column::UserId.eq(owner))
        .order_by_asc(folder::Column::Id)
        .all(db)
        .await
}

/// Deletes the owner's folder; its notes and sub-folders move to the top
/// level (nothing is lost with a folder).
pub async fn delete_folder<C: ConnectionTrait>(
    db: &C,
    owner: &str,
    id: Uuid,
) -> Result<bool, DbErr> {
    let deleted = folder::Entity::delete_many()
        .filter(folder::Column::Id.eq(id))
        .filter(folder::Column::UserId.eq(owner))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Ok(false);
    }
    note::Entity::update_many()
        .col_expr(
            note::Column::FolderId,
            sea_orm::sea_query::Expr::value(Option::<Uuid>::None),
        )
        .filter(note::Column::UserId.eq(owner))
        .filter(note::Column::FolderId.eq(id))
        .exec(db)
        .await?;
    folder::Entity::update_many()
        .col_expr(
            folder::Column::ParentId,
            sea_orm::sea_query::Expr::value(Option::<Uuid>::None),
        )
        .filter(folder::Column::UserId.eq(owner))
        .filter(folder::Column::ParentId.eq(id))
        .exec(db)
        .await?;
    Ok(true)
}

/// A note as the app's client reads it.
pub fn note_json(note: &note::Model) -> Value {
    json!({
        "id": note.id.to_string(),
        "userId": note.user_id,
        "title": note.title,
        "content": note.content,
        "encryptedTitle": note.encrypted_title,
        "encryptedContent": note.encrypted_content,
        "starred": note.starred,
        "archived": note.archived,
        "deleted": note.deleted,
        "hidden": note.hidden,
        "folderId": note.folder_id.map(|f| f.to_string()),
        "createdAt": note.created_at,
        "updatedAt": note.updated_at,
    })
}

/// A folder as the app's client reads it.
pub fn folder_json(folder: &folder::Model) -> Value {
    json!({
        "id": folder.id.to_string(),
        "userId": folder.user_id,
        "name": folder.name,
        "color": folder.color,
        "parentId": folder.parent_id.map(|f| f.to_string()),
        "createdAt": folder.created_at,
        "updatedAt": folder.updated_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_contract_fields_are_kept_and_plain_text_never() {
        let changes = json!({
            "title": "my secret", "content": "[ENCRYPTED]", "encryptedTitle": "x1",
            "starred": true, "__proto__": { "admin": true }, "userId": "someone", "id": "n"
        });
        let (out, kept) = NoteChanges::filter(changes.as_object().expect("object")).expect("types");
        assert_eq!(out.title, None);
        assert_eq!(out.content, Some(Some(ENCRYPTED_MARK.into())));
        assert_eq!(out.starred, Some(true));
        assert_eq!(
            Value::Object(kept),
            json!({ "content": "[ENCRYPTED]", "encryptedTitle": "x1", "starred": true })
        );
        let wrong = json!({ "starred": "yes" });
        assert_eq!(
            NoteChanges::filter(wrong.as_object().expect("object")).err(),
            Some(WrongType("starred"))
        );
    }
}
