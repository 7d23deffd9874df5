//! `getChats`: the social app's web client asks for its chat list over the
//! socket, with `{ id, secretkey }` in the payload (it re-asks on every
//! `updatedChat`), and reads the answer from an event of the same name.
//!
//! The credentials go through `Session::verify_request`: the same checks,
//! authenticator and cache as `initialConnection`, and the same failure
//! limits, but the socket is *not* bound. The client signs its socket in
//! with `initialConnection` separately; binding here too would let any
//! request silently move a socket to another user's pushes. A socket that
//! is already signed in may send no credentials at all (no argument,
//! `null`, or an object with neither `id` nor `secretkey`) and gets its own
//! user's chats.

use std::collections::HashMap;

use entity::{chatroom, chatroom_member, message, user};
use graphql::events::{FlatMessage, MessagePayload, Person};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use uuid::Uuid;

use super::session::{emit, emit_error, Session};
use crate::auth::{Credentials, CredentialsError};

const EVENT: &str = "getChats";

/// One chat of the list, as the social app's client reads it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChatSummary {
    id: Uuid,
    /// A group chatroom's name; `null` for a direct chat.
    name: Option<String>,
    /// Every member, the asker included, in the order they joined.
    chatroom_users: Vec<Person>,
    /// `{ id, sender, content, date, read, type }`, or `null` before the
    /// first message.
    last_message: Option<FlatMessage>,
    updated_at: i64,
}

/// Answers `getChats`: the event `getChats` with the list (and the ack, if
/// asked for, with the same list), or `error` (and the ack with
/// `{ error }`).
pub async fn get_chats<A: Adapter>(
    session: &Session,
    s: SocketRef<A>,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    let answer = match asker(session, &s, data.as_ref()).await {
        Ok(user_id) => match load(session, user_id).await {
            Ok(chats) => Ok(chats),
            Err(err) => {
                tracing::error!(socket_id = %s.id, user_id = %user_id, error = %err, "could not load chats");
                let reason = format!("{EVENT}: internal error");
                emit_error(&s, &reason);
                Err(reason)
            }
        },
        Err(reason) => Err(reason),
    };
    let reply = match answer {
        Ok(chats) => {
            let chats = serde_json::to_value(&chats).unwrap_or(Value::Null);
            emit(&s, EVENT, &chats);
            chats
        }
        Err(reason) => json!({ "error": reason }),
    };
    if let Err(err) = ack.send(&reply) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack getChats");
    }
    session.cut_off_if_over_limit(&s);
}

/// Whose chats to list: the socket's own user when no credentials came,
/// otherwise the user the credentials verify as. A refusal has been told
/// to the socket already.
async fn asker<A: Adapter>(
    session: &Session,
    s: &SocketRef<A>,
    data: Option<&Value>,
) -> Result<Uuid, String> {
    if carries_no_credentials(data) {
        if let Some(user) = session.bound_user(s) {
            return Ok(user);
        }
    }
    let credentials = match data {
        Some(value) => Credentials::from_json(value),
        None => Err(CredentialsError::NotAnObject),
    };
    session.verify_request(s, EVENT, credentials).await
}

fn carries_no_credentials(data: Option<&Value>) -> bool {
    match data {
        None | Some(Value::Null) => true,
        Some(Value::Object(fields)) => {
            !fields.contains_key("id") && !fields.contains_key("secretkey")
        }
        Some(_) => false,
    }
}

/// The user's chatrooms, most recently active first. One query per
/// chatroom for its newest message (as the GraphQL `lastMessage` field
/// does); the rest is one query each for all chatrooms.
async fn load(session: &Session, user_id: Uuid) -> Result<Vec<ChatSummary>, DbErr> {
    let Some(app) = session.app() else {
        return Err(DbErr::Custom("the server is shutting down".to_owned()));
    };
    let db = app.db();
    let ids: Vec<Uuid> = chatroom_member::Entity::find()
        .filter(chatroom_member::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.chatroom_id)
        .collect();
    let rooms = chatroom::Entity::find()
        .filter(chatroom::Column::Id.is_in(ids.clone()))
        .order_by_desc(chatroom::Column::UpdatedAt)
        .all(db)
        .await?;
    let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for m in chatroom_member::Entity::find()
        .filter(chatroom_member::Column::ChatroomId.is_in(ids))
        .order_by_asc(chatroom_member::Column::JoinedAt)
        .all(db)
        .await?
    {
        members.entry(m.chatroom_id).or_default().push(m.user_id);
    }
    let mut newest: HashMap<Uuid, message::Model> = HashMap::new();
    for room in &rooms {
        if let Some(m) = newest_message(db, room.id).await? {
            newest.insert(room.id, m);
        }
    }
    let mut people: Vec<Uuid> = members.values().flatten().copied().collect();
    people.extend(newest.values().map(|m| m.sender_id));
    people.sort_unstable();
    people.dedup();
    let users: HashMap<Uuid, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(people))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(rooms
        .into_iter()
        .map(|room| ChatSummary {
            chatroom_users: members
                .get(&room.id)
                .into_iter()
                .flatten()
                .filter_map(|id| users.get(id).map(Person::of))
                .collect(),
            last_message: newest.remove(&room.id).map(|m| {
                let sender = users.get(&m.sender_id);
                let message = MessagePayload::from_row(m, sender);
                FlatMessage::of(&message, &message.kind)
            }),
            id: room.id,
            name: room.name,
            updated_at: room.updated_at,
        })
        .collect())
}

async fn newest_message(
    db: &DatabaseConnection,
    chatroom_id: Uuid,
) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find()
        .filter(message::Column::ChatroomId.eq(chatroom_id))
        .order_by_desc(message::Column::Id)
        .one(db)
        .await
}
