//! The notes app's notes and folders over GraphQL (docs/protocol.md, "Note
//! sync"), with the same JWT as the note-sync WebSocket (`Authorization:
//! Bearer`). Every change is pushed to the owner's connections as the
//! `*_sync` message the WebSocket path sends, with `fromUserId: "server"`.
//!
//! - `store`: rows and the contract's change filter, shared with the
//!   WebSocket pipeline in the host crate.
//! - `sync`: the `*_sync` payloads.

pub mod store;
pub mod sync;

use async_graphql::{Context, MaybeUndefined, Object, ID};
use entity::{folder, note, now_ms, user};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::query::{page_size, viewer};
use crate::types::{backend, parse_id, Timestamp};
use store::{NoteChanges, UpdateError, ENCRYPTED_MARK};

const WRITE_COST: usize = 50;
const MAX_FOLDER_NAME: usize = 200;
const MAX_COLOR: usize = 32;

/// The id a user owns notes under: the outside id their token names (what
/// the app's client calls `userId`), or their Tidings UUID.
pub fn owner_of(user: &user::Model) -> String {
    match user.username.strip_prefix("ext:") {
        Some(outside) => outside.to_owned(),
        None => user.id.to_string(),
    }
}

pub struct Note(pub note::Model);

#[Object]
impl Note {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.clone())
    }
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }
    async fn content(&self) -> Option<&str> {
        self.0.content.as_deref()
    }
    async fn encrypted_title(&self) -> Option<&str> {
        self.0.encrypted_title.as_deref()
    }
    async fn encrypted_content(&self) -> Option<&str> {
        self.0.encrypted_content.as_deref()
    }
    async fn starred(&self) -> bool {
        self.0.starred
    }
    async fn archived(&self) -> bool {
        self.0.archived
    }
    async fn deleted(&self) -> bool {
        self.0.deleted
    }
    async fn hidden(&self) -> bool {
        self.0.hidden
    }
    async fn folder_id(&self) -> Option<ID> {
        self.0.folder_id.map(|f| ID(f.to_string()))
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
}

pub struct Folder(pub folder::Model);

#[Object]
impl Folder {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn color(&self) -> Option<&str> {
        self.0.color.as_deref()
    }
    async fn parent_id(&self) -> Option<ID> {
        self.0.parent_id.map(|f| ID(f.to_string()))
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
}

#[derive(Default)]
pub struct NoteQueries;

#[Object]
impl NoteQueries {
    /// The caller's notes, newest first; `after` is the last id of the
    /// previous page.
    async fn notes(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<ID>,
        folder_id: Option<ID>,
    ) -> ApiResult<Vec<Note>> {
        let owner = owner_of(viewer(ctx)?);
        let first = page_size(first, "first")?;
        let after = after.map(|id| parse_id(&id, "after")).transpose()?;
        let folder = folder_id.map(|id| parse_id(&id, "folderId")).transpose()?;
        let notes = store::list_notes(backend(ctx).db(), &owner, first, after, folder).await?;
        Ok(notes.into_iter().map(Note).collect())
    }

    /// One of the caller's notes; null for any other id.
    async fn note(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Note>> {
        let owner = owner_of(viewer(ctx)?);
        Ok(store::owned_note(backend(ctx).db(), &owner, id.as_str())
            .await?
            .map(Note))
    }

    async fn folders(&self, ctx: &Context<'_>) -> ApiResult<Vec<Folder>> {
        let owner = owner_of(viewer(ctx)?);
        let folders = store::list_folders(backend(ctx).db(), &owner).await?;
        Ok(folders.into_iter().map(Folder).collect())
    }
}

/// Plain text is refused here rather than dropped: a GraphQL caller asked
/// for this one field and should hear why it was not stored.
fn encrypted_only(field: &'static str, value: &MaybeUndefined<String>) -> ApiResult<()> {
    match value {
        MaybeUndefined::Value(text) if text != ENCRYPTED_MARK => Err(ApiError::bad_input(format!(
            "{field} must be \"{ENCRYPTED_MARK}\": notes are encrypted on the client, plain text is never stored"
        ))),
        _ => Ok(()),
    }
}

fn put_text(fields: &mut Map<String, Value>, key: &str, value: MaybeUndefined<String>) {
    match value {
        MaybeUndefined::Value(text) => {
            fields.insert(key.into(), Value::String(text));
        }
        MaybeUndefined::Null => {
            fields.insert(key.into(), Value::Null);
        }
        MaybeUndefined::Undefined => {}
    }
}

fn put_id(fields: &mut Map<String, Value>, key: &str, value: MaybeUndefined<ID>) {
    put_text(fields, key, value.map_value(|id| id.0));
}

fn put_flag(fields: &mut Map<String, Value>, key: &str, value: Option<bool>) {
    if let Some(flag) = value {
        fields.insert(key.into(), Value::Bool(flag));
    }
}

fn note_error(err: UpdateError) -> ApiError {
    match err {
        UpdateError::Folder => ApiError::NotFound("folder"),
        UpdateError::Database(db) => db.into(),
    }
}

fn check_folder_fields(name: Option<&str>, color: Option<&str>) -> ApiResult<()> {
    if let Some(name) = name {
        if name.trim().is_empty() || name.chars().count() > MAX_FOLDER_NAME {
            return Err(ApiError::bad_input(format!(
                "name must be 1 to {MAX_FOLDER_NAME} characters"
            )));
        }
    }
    if color.is_some_and(|c| c.chars().count() > MAX_COLOR) {
        return Err(ApiError::bad_input(format!(
            "color is at most {MAX_COLOR} characters"
        )));
    }
    Ok(())
}

/// The caller's folder `id` as a parent, or NOT_FOUND.
async fn parent_folder(ctx: &Context<'_>, owner: &str, id: &ID) -> ApiResult<Uuid> {
    Ok(store::owned_folder(backend(ctx).db(), owner, id.as_str())
        .await?
        .ok_or(ApiError::NotFound("folder"))?
        .id)
}

#[derive(Default)]
pub struct NoteMutations;

#[Object]
impl NoteMutations {
    #[graphql(complexity = "WRITE_COST")]
    async fn create_note(
        &self,
        ctx: &Context<'_>,
        title: MaybeUndefined<String>,
        content: MaybeUndefined<String>,
        encrypted_title: MaybeUndefined<String>,
        encrypted_content: MaybeUndefined<String>,
        folder_id: MaybeUndefined<ID>,
    ) -> ApiResult<Note> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        encrypted_only("title", &title)?;
        encrypted_only("content", &content)?;
        let mut fields = Map::new();
        put_text(&mut fields, "title", title);
        put_text(&mut fields, "content", content);
        put_text(&mut fields, "encryptedTitle", encrypted_title);
        put_text(&mut fields, "encryptedContent", encrypted_content);
        put_id(&mut fields, "folderId", folder_id);
        let (changes, _) =
            NoteChanges::filter(&fields).map_err(|e| ApiError::bad_input(e.to_string()))?;
        let now = now_ms();
        let note = store::create_note(backend(ctx).db(), &owner, &changes, now)
            .await
            .map_err(note_error)?;
        let payload = sync::note_created_sync(store::note_json(&note), now, sync::FROM_SERVER);
        backend(ctx)
            .push_to_users(&[user.id], sync::NOTE_CREATED_SYNC, payload)
            .await;
        Ok(Note(note))
    }

    #[graphql(complexity = "WRITE_COST")]
    #[allow(clippy::too_many_arguments)]
    async fn update_note(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: MaybeUndefined<String>,
        content: MaybeUndefined<String>,
        encrypted_title: MaybeUndefined<String>,
        encrypted_content: MaybeUndefined<String>,
        folder_id: MaybeUndefined<ID>,
        starred: Option<bool>,
        archived: Option<bool>,
        deleted: Option<bool>,
        hidden: Option<bool>,
    ) -> ApiResult<Note> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        encrypted_only("title", &title)?;
        encrypted_only("content", &content)?;
        let mut fields = Map::new();
        put_text(&mut fields, "title", title);
        put_text(&mut fields, "content", content);
        put_text(&mut fields, "encryptedTitle", encrypted_title);
        put_text(&mut fields, "encryptedContent", encrypted_content);
        put_flag(&mut fields, "starred", starred);
        put_flag(&mut fields, "archived", archived);
        put_flag(&mut fields, "deleted", deleted);
        put_flag(&mut fields, "hidden", hidden);
        put_id(&mut fields, "folderId", folder_id);
        let (changes, kept) =
            NoteChanges::filter(&fields).map_err(|e| ApiError::bad_input(e.to_string()))?;
        if kept.is_empty() {
            return Err(ApiError::bad_input("No valid fields to update"));
        }
        let db = backend(ctx).db();
        let note = store::owned_note(db, &owner, id.as_str())
            .await?
            .ok_or(ApiError::NotFound("note"))?;
        let now = now_ms();
        let note = store::update_note(db, note, &changes, now)
            .await
            .map_err(note_error)?;
        let payload = sync::note_sync(
            &note.id.to_string(),
            kept,
            store::note_json(&note),
            note.updated_at,
            now,
            sync::FROM_SERVER,
        );
        backend(ctx)
            .push_to_users(&[user.id], sync::NOTE_SYNC, payload)
            .await;
        Ok(Note(note))
    }

    #[graphql(complexity = "WRITE_COST")]
    async fn delete_note(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        let Ok(note) = Uuid::parse_str(id.as_str()) else {
            return Err(ApiError::NotFound("note"));
        };
        if !store::delete_note(backend(ctx).db(), &owner, note).await? {
            return Err(ApiError::NotFound("note"));
        }
        let payload = sync::note_deleted_sync(&note.to_string(), now_ms(), sync::FROM_SERVER);
        backend(ctx)
            .push_to_users(&[user.id], sync::NOTE_DELETED_SYNC, payload)
            .await;
        Ok(true)
    }

    #[graphql(complexity = "WRITE_COST")]
    async fn create_folder(
        &self,
        ctx: &Context<'_>,
        name: String,
        color: Option<String>,
        parent_id: Option<ID>,
    ) -> ApiResult<Folder> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        check_folder_fields(Some(&name), color.as_deref())?;
        let parent = match &parent_id {
            Some(id) => Some(parent_folder(ctx, &owner, id).await?),
            None => None,
        };
        let now = now_ms();
        let folder = folder::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(owner),
            name: Set(name),
            color: Set(color),
            parent_id: Set(parent),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(backend(ctx).db())
        .await?;
        let payload =
            sync::folder_created_sync(store::folder_json(&folder), now, sync::FROM_SERVER);
        backend(ctx)
            .push_to_users(&[user.id], sync::FOLDER_CREATED_SYNC, payload)
            .await;
        Ok(Folder(folder))
    }

    #[graphql(complexity = "WRITE_COST")]
    async fn update_folder(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        color: MaybeUndefined<String>,
        parent_id: MaybeUndefined<ID>,
    ) -> ApiResult<Folder> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        check_folder_fields(name.as_deref(), color.as_opt_deref().flatten())?;
        let db = backend(ctx).db();
        let folder = store::owned_folder(db, &owner, id.as_str())
            .await?
            .ok_or(ApiError::NotFound("folder"))?;
        let mut changes = Map::new();
        let mut row = folder.clone().into_active_model();
        if let Some(name) = name {
            changes.insert("name".into(), Value::String(name.clone()));
            row.name = Set(name);
        }
        put_text(&mut changes, "color", color.clone());
        match color {
            MaybeUndefined::Value(color) => row.color = Set(Some(color)),
            MaybeUndefined::Null => row.color = Set(None),
            MaybeUndefined::Undefined => {}
        }
        match &parent_id {
            MaybeUndefined::Value(parent) => {
                let parent = parent_folder(ctx, &owner, parent).await?;
                if parent == folder.id {
                    return Err(ApiError::bad_input("a folder cannot be its own parent"));
                }
                changes.insert("parentId".into(), Value::String(parent.to_string()));
                row.parent_id = Set(Some(parent));
            }
            MaybeUndefined::Null => {
                changes.insert("parentId".into(), Value::Null);
                row.parent_id = Set(None);
            }
            MaybeUndefined::Undefined => {}
        }
        let now = now_ms();
        row.updated_at = Set(now);
        let folder = row.update(db).await?;
        let payload = sync::folder_updated_sync(
            &folder.id.to_string(),
            Value::Object(changes),
            Some(store::folder_json(&folder)),
            now,
            sync::FROM_SERVER,
        );
        backend(ctx)
            .push_to_users(&[user.id], sync::FOLDER_UPDATED_SYNC, payload)
            .await;
        Ok(Folder(folder))
    }

    #[graphql(complexity = "WRITE_COST")]
    async fn delete_folder(&self, ctx: &Context<'_>, id: ID) -> ApiResult<bool> {
        let user = viewer(ctx)?;
        let owner = owner_of(user);
        let Ok(folder) = Uuid::parse_str(id.as_str()) else {
            return Err(ApiError::NotFound("folder"));
        };
        if !store::delete_folder(backend(ctx).db(), &owner, folder).await? {
            return Err(ApiError::NotFound("folder"));
        }
        let payload = sync::folder_deleted_sync(&folder.to_string(), now_ms(), sync::FROM_SERVER);
        backend(ctx)
            .push_to_users(&[user.id], sync::FOLDER_DELETED_SYNC, payload)
            .await;
        Ok(true)
    }
}
