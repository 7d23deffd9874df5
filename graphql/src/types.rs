//! GraphQL object types. Each wraps its row; fields that need more data
//! (membership, the sender's name, presence) resolve it on demand.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{Context, Object, Scalar, ScalarType, SimpleObject, Value, ID};
use entity::{chatroom, chatroom_member, message, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::events::MessagePayload;
use crate::Backend;

pub(crate) fn backend<'a>(ctx: &Context<'a>) -> &'a Arc<dyn Backend> {
    // Inserted by `build_schema`; its absence is a programming error that no
    // request can cause.
    ctx.data_unchecked::<Arc<dyn Backend>>()
}

/// Parses a GraphQL `ID` argument that must name a row by UUID.
pub(crate) fn parse_id(id: &ID, argument: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| {
        ApiError::bad_input(format!(
            "{argument} must be a UUID, got {:?}",
            truncate(id.as_str())
        ))
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Milliseconds since the Unix epoch. A scalar of its own because GraphQL's
/// `Int` is 32-bit and cannot hold it.
pub struct Timestamp(pub i64);

#[Scalar(name = "Timestamp")]
impl ScalarType for Timestamp {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::Number(n) => n.as_i64().map(Timestamp).ok_or_else(|| {
                async_graphql::InputValueError::custom("expected whole milliseconds")
            }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

pub struct User(pub user::Model);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// The display name the user chose, or their username until they do.
    async fn name(&self) -> &str {
        self.0.display_name()
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn last_seen_at(&self) -> Timestamp {
        Timestamp(self.0.last_seen_at)
    }
    /// Whether the user has at least one authenticated socket right now.
    async fn online(&self, ctx: &Context<'_>) -> bool {
        backend(ctx).is_online(self.0.id).await
    }
}

#[derive(SimpleObject)]
pub struct SignUpPayload {
    pub id: ID,
    pub username: String,
    /// Shown once; only its argon2id hash is stored.
    pub secretkey: String,
}

#[derive(SimpleObject)]
pub struct FollowPayload {
    pub following: bool,
    pub user: User,
}

pub struct Message(pub MessagePayload);

#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn chatroom_id(&self) -> ID {
        ID(self.0.chatroom_id.to_string())
    }
    async fn sender_id(&self) -> ID {
        ID(self.0.sender_id.to_string())
    }
    async fn sender_username(&self) -> &str {
        &self.0.sender_username
    }
    /// The sender's display name (their username if they chose none).
    async fn sender_name(&self) -> &str {
        &self.0.sender_name
    }
    /// Plain text that is also inert HTML; render it as text.
    async fn content(&self) -> &str {
        &self.0.content
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    /// Whether another member has marked the chatroom read since it was
    /// sent.
    async fn read(&self) -> bool {
        self.0.read
    }
    /// `text` for every message today.
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.0.kind
    }
}

pub struct Chatroom(pub chatroom::Model);

#[Object]
impl Chatroom {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    /// True for the one-to-one chatroom `getLocation` creates.
    async fn direct(&self) -> bool {
        self.0.direct_key.is_some()
    }
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.0.updated_at)
    }
    async fn member_ids(&self, ctx: &Context<'_>) -> ApiResult<Vec<ID>> {
        let ids = member_ids(backend(ctx).db(), self.0.id).await?;
        Ok(ids.into_iter().map(|id| ID(id.to_string())).collect())
    }
    async fn members(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let db = backend(ctx).db();
        let ids = member_ids(db, self.0.id).await?;
        let users = user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .order_by_asc(user::Column::Username)
            .all(db)
            .await?;
        Ok(users.into_iter().map(User).collect())
    }
    async fn last_message(&self, ctx: &Context<'_>) -> ApiResult<Option<Message>> {
        let db = backend(ctx).db();
        let last = message::Entity::find()
            .filter(message::Column::ChatroomId.eq(self.0.id))
            .order_by_desc(message::Column::Id)
            .one(db)
            .await?;
        match last {
            Some(row) => Ok(with_senders(db, vec![row]).await?.pop().map(Message)),
            None => Ok(None),
        }
    }
}

/// The user `id` names, or NOT_FOUND.
pub(crate) async fn existing_user(
    db: &sea_orm::DatabaseConnection,
    id: Uuid,
) -> ApiResult<user::Model> {
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

pub(crate) async fn member_ids(
    db: &sea_orm::DatabaseConnection,
    chatroom: Uuid,
) -> ApiResult<Vec<Uuid>> {
    Ok(chatroom_member::Entity::find()
        .filter(chatroom_member::Column::ChatroomId.eq(chatroom))
        .order_by_asc(chatroom_member::Column::JoinedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .collect())
}

/// Attaches each message's sender names, with one query for all senders.
pub(crate) async fn with_senders(
    db: &impl sea_orm::ConnectionTrait,
    rows: Vec<message::Model>,
) -> ApiResult<Vec<MessagePayload>> {
    let mut sender_ids: Vec<Uuid> = rows.iter().map(|m| m.sender_id).collect();
    sender_ids.sort_unstable();
    sender_ids.dedup();
    let senders: HashMap<Uuid, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(sender_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(rows
        .into_iter()
        .map(|m| {
            let sender = senders.get(&m.sender_id);
            MessagePayload::from_row(m, sender)
        })
        .collect())
}
