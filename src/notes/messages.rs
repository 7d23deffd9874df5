//! The note and folder messages of an authenticated connection (contract
//! §4), one method each. What is stored goes through
//! `graphql::notes::store`, the same code as the GraphQL mutations; every
//! `*_sync` is a durable push to the user's other connections on every node
//! (the sender left out), built by `graphql::notes::sync`.

use entity::now_ms;
use graphql::notes::store::{self, NoteChanges, UpdateError};
use graphql::notes::sync;
use serde_json::{Map, Value};

use super::connection::Connection;
use super::wire::{self, NoteError};

type Fields = Map<String, Value>;

/// An id field: `None` when missing, null or empty (the contract's
/// "missing"); a present value of another type is a format failure.
fn id_field<'a>(fields: &'a Fields, key: &str) -> Result<Option<&'a str>, NoteError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(NoteError::InvalidFormat),
    }
}

/// An object field: `None` when missing or null; another type is a format
/// failure.
fn object_field<'a>(fields: &'a Fields, key: &str) -> Result<Option<&'a Fields>, NoteError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(_) => Err(NoteError::InvalidFormat),
    }
}

impl Connection {
    fn caller(&self) -> Result<(uuid::Uuid, String), NoteError> {
        self.session
            .as_ref()
            .map(|s| (s.user, s.user_id.clone()))
            .ok_or(NoteError::AuthenticationRequired)
    }

    /// To every other connection of the caller, on every node.
    async fn broadcast(&self, event: &str, payload: Value) {
        if let Some(session) = &self.session {
            self.app
                .push()
                .to_user_except(session.user, &self.tab, event, payload)
                .await;
        }
    }

    async fn owned_note(&self, owner: &str, id: &str) -> Result<entity::note::Model, NoteError> {
        store::owned_note(self.app.db(), owner, id)
            .await?
            .ok_or(NoteError::NoteNotFound)
    }

    async fn owned_folder(&self, owner: &str, id: &str) -> Result<(), NoteError> {
        store::owned_folder(self.app.db(), owner, id)
            .await?
            .map(|_| ())
            .ok_or(NoteError::FolderNotFound)
    }

    pub(super) async fn join_note(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "noteId")?.ok_or(NoteError::MissingNoteId)?;
        self.owned_note(&owner, id).await?;
        self.send(&wire::note_joined(id));
        Ok(())
    }

    pub(super) fn leave_note(&mut self, fields: &Fields) -> Result<(), NoteError> {
        if let Some(id) = id_field(fields, "noteId")? {
            self.send(&wire::note_left(id));
        }
        Ok(())
    }

    pub(super) async fn note_update(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "noteId")?.ok_or(NoteError::MissingNoteId)?;
        let Some(changes) = object_field(fields, "changes")?.filter(|c| !c.is_empty()) else {
            // Empty or missing changes: no answer at all.
            return Ok(());
        };
        let (changes, kept) = NoteChanges::filter(changes).map_err(|_| NoteError::InvalidFormat)?;
        if kept.is_empty() {
            return Err(NoteError::NoValidFields);
        }
        let note = self.owned_note(&owner, id).await?;
        let now = now_ms();
        let note = match store::update_note(self.app.db(), note, &changes, now).await {
            Ok(note) => note,
            Err(UpdateError::Folder) => return Err(NoteError::FolderNotFound),
            Err(UpdateError::Database(err)) => return Err(err.into()),
        };
        let updated = store::note_json(&note);
        let payload = sync::note_sync(id, kept, updated.clone(), note.updated_at, now, &owner);
        self.broadcast(sync::NOTE_SYNC, payload).await;
        self.send(&wire::note_update_success(id, updated, now));
        Ok(())
    }

    pub(super) async fn note_created(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "noteId")?;
        let data = object_field(fields, "noteData")?;
        let (Some(_), Some(data)) = (id, data) else {
            return Err(NoteError::MissingNoteData);
        };
        if data.get("userId").and_then(Value::as_str) != Some(owner.as_str()) {
            return Err(NoteError::NotTheCreator);
        }
        let payload = sync::note_created_sync(Value::Object(data.clone()), now_ms(), &owner);
        self.broadcast(sync::NOTE_CREATED_SYNC, payload).await;
        Ok(())
    }

    pub(super) async fn note_deleted(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "noteId")?.ok_or(NoteError::MissingNoteId)?;
        self.owned_note(&owner, id).await?;
        let payload = sync::note_deleted_sync(id, now_ms(), &owner);
        self.broadcast(sync::NOTE_DELETED_SYNC, payload).await;
        Ok(())
    }

    pub(super) async fn folder_created(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "folderId")?;
        let data = object_field(fields, "folderData")?;
        let (Some(_), Some(data)) = (id, data) else {
            return Err(NoteError::MissingFolderData);
        };
        if data.get("userId").and_then(Value::as_str) != Some(owner.as_str()) {
            return Err(NoteError::NotTheCreator);
        }
        let payload = sync::folder_created_sync(Value::Object(data.clone()), now_ms(), &owner);
        self.broadcast(sync::FOLDER_CREATED_SYNC, payload).await;
        Ok(())
    }

    pub(super) async fn folder_updated(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "folderId")?;
        let changes = object_field(fields, "changes")?;
        let (Some(id), Some(changes)) = (id, changes) else {
            return Err(NoteError::MissingFolderChanges);
        };
        let updated = object_field(fields, "updatedFolder")?.map(|f| Value::Object(f.clone()));
        self.owned_folder(&owner, id).await?;
        let payload = sync::folder_updated_sync(
            id,
            Value::Object(changes.clone()),
            updated,
            now_ms(),
            &owner,
        );
        self.broadcast(sync::FOLDER_UPDATED_SYNC, payload).await;
        Ok(())
    }

    pub(super) async fn folder_deleted(&mut self, fields: &Fields) -> Result<(), NoteError> {
        let (_, owner) = self.caller()?;
        let id = id_field(fields, "folderId")?.ok_or(NoteError::MissingFolderId)?;
        self.owned_folder(&owner, id).await?;
        let payload = sync::folder_deleted_sync(id, now_ms(), &owner);
        self.broadcast(sync::FOLDER_DELETED_SYNC, payload).await;
        Ok(())
    }
}
