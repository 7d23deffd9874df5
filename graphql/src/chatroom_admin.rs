//! Group chatrooms and their members. Membership is enforced live: a user
//! removed from a chatroom leaves `chatroom:<id>` on every socket, on every
//! node, before the mutation answers, so they hear nothing more of it.
//!
//! Who may do what: any member may add members; only the creator may remove
//! someone else; anyone may leave. Direct chatrooms (from `getLocation`)
//! always keep exactly their two members.

use async_graphql::{Context, Object, ID};
use entity::{chatroom, chatroom_member, now_ms, user};
use sea_orm::{
    sea_query::OnConflict, ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::events::{self, UpdatedChat};
use crate::query::{ensure_member, viewer};
use crate::types::{backend, existing_user, member_ids, parse_id, Chatroom};
use crate::Backend;

pub const MAX_MEMBERS: usize = 100;
const WRITE_COST: usize = 50;

#[derive(Default)]
pub struct ChatroomMutations;

#[Object]
impl ChatroomMutations {
    /// A group chatroom named `name` with the caller and `memberIds`.
    #[graphql(complexity = "WRITE_COST")]
    async fn create_chatroom(
        &self,
        ctx: &Context<'_>,
        name: String,
        member_ids: Vec<ID>,
    ) -> ApiResult<Chatroom> {
        let me = viewer(ctx)?;
        let name = name.trim().to_owned();
        let chars = name.chars().count();
        if !(1..=100).contains(&chars) || name.chars().any(char::is_control) {
            return Err(ApiError::bad_input(
                "name must be 1 to 100 characters, without control characters",
            ));
        }
        if member_ids.len() >= MAX_MEMBERS {
            return Err(ApiError::bad_input(format!(
                "at most {MAX_MEMBERS} members, the creator included"
            )));
        }
        let mut members = vec![me.id];
        for id in &member_ids {
            let id = parse_id(id, "memberIds")?;
            if !members.contains(&id) {
                members.push(id);
            }
        }
        let backend = backend(ctx);
        let db = backend.db();
        let known = user::Entity::find()
            .filter(user::Column::Id.is_in(members.clone()))
            .count(db)
            .await?;
        if known as usize != members.len() {
            return Err(ApiError::NotFound("user"));
        }
        let now = now_ms();
        let txn = db.begin().await?;
        let created = chatroom::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(Some(name)),
            direct_key: Set(None),
            created_by: Set(Some(me.id)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        insert_members(&txn, created.id, &members, now).await?;
        txn.commit().await?;
        announce(backend.as_ref(), created.id, &members, &members).await;
        Ok(Chatroom(created))
    }

    /// Adds `userId` to a group chatroom the caller belongs to; everyone,
    /// the new member included, receives `updatedChat`.
    #[graphql(complexity = "WRITE_COST")]
    async fn add_chatroom_member(
        &self,
        ctx: &Context<'_>,
        chatroom_id: ID,
        user_id: ID,
    ) -> ApiResult<Chatroom> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        let db = backend.db();
        let room = group_chatroom(db, parse_id(&chatroom_id, "chatroomId")?, me.id).await?;
        let user_id = parse_id(&user_id, "userId")?;
        existing_user(db, user_id).await?;
        let members = member_ids(db, room.id).await?;
        if !members.contains(&user_id) && members.len() >= MAX_MEMBERS {
            return Err(ApiError::bad_input(format!(
                "a chatroom holds at most {MAX_MEMBERS} members"
            )));
        }
        chatroom_member::Entity::insert(chatroom_member::ActiveModel {
            chatroom_id: Set(room.id),
            user_id: Set(user_id),
            joined_at: Set(now_ms()),
        })
        .on_conflict(
            OnConflict::columns([
                chatroom_member::Column::ChatroomId,
                chatroom_member::Column::UserId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
        let members = member_ids(db, room.id).await?;
        announce(backend.as_ref(), room.id, &members, &members).await;
        Ok(Chatroom(room))
    }

    /// Removes `userId` (the creator may remove anyone; others only
    /// themselves). The removed user's sockets leave the room at once.
    #[graphql(complexity = "WRITE_COST")]
    async fn remove_chatroom_member(
        &self,
        ctx: &Context<'_>,
        chatroom_id: ID,
        user_id: ID,
    ) -> ApiResult<Chatroom> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        let room =
            group_chatroom(backend.db(), parse_id(&chatroom_id, "chatroomId")?, me.id).await?;
        let user_id = parse_id(&user_id, "userId")?;
        if user_id != me.id && room.created_by != Some(me.id) {
            return Err(ApiError::bad_input(
                "only the chatroom's creator may remove other members",
            ));
        }
        remove(backend.as_ref(), &room, user_id).await?;
        Ok(Chatroom(room))
    }

    /// The caller leaves a group chatroom.
    #[graphql(complexity = "WRITE_COST")]
    async fn leave_chatroom(&self, ctx: &Context<'_>, chatroom_id: ID) -> ApiResult<bool> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        let room =
            group_chatroom(backend.db(), parse_id(&chatroom_id, "chatroomId")?, me.id).await?;
        remove(backend.as_ref(), &room, me.id).await?;
        Ok(true)
    }
}

/// A group chatroom the caller belongs to.
async fn group_chatroom(
    db: &DatabaseConnection,
    id: Uuid,
    caller: Uuid,
) -> ApiResult<chatroom::Model> {
    ensure_member(db, id, caller).await?;
    let room = chatroom::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::NotFound("chatroom"))?;
    if room.direct_key.is_some() {
        return Err(ApiError::bad_input(
            "a direct chatroom always keeps its two members",
        ));
    }
    Ok(room)
}

async fn remove(backend: &dyn Backend, room: &chatroom::Model, user_id: Uuid) -> ApiResult<()> {
    let removed = chatroom_member::Entity::delete_by_id((room.id, user_id))
        .exec(backend.db())
        .await?;
    if removed.rows_affected == 0 {
        return Err(ApiError::NotFound("member"));
    }
    backend
        .evict(user_id, &format!("chatroom:{}", room.id))
        .await;
    let members = member_ids(backend.db(), room.id).await?;
    let mut told = members.clone();
    told.push(user_id);
    announce(backend, room.id, &members, &told).await;
    Ok(())
}

/// Adds `members` to a new chatroom, inside the transaction creating it.
pub(crate) async fn insert_members(
    txn: &sea_orm::DatabaseTransaction,
    chatroom_id: Uuid,
    members: &[Uuid],
    now: i64,
) -> Result<(), sea_orm::DbErr> {
    chatroom_member::Entity::insert_many(members.iter().map(|&user_id| {
        chatroom_member::ActiveModel {
            chatroom_id: Set(chatroom_id),
            user_id: Set(user_id),
            joined_at: Set(now),
        }
    }))
    .exec_without_returning(txn)
    .await
    .map(|_| ())
}

/// `updatedChat` with the current members and no new message, to
/// `recipients`.
pub(crate) async fn announce(
    backend: &dyn Backend,
    chatroom_id: Uuid,
    members: &[Uuid],
    recipients: &[Uuid],
) {
    let event = UpdatedChat {
        chatroom_id,
        member_ids: members.to_vec(),
        last_message: None,
        timestamp: now_ms(),
        about: None,
    };
    let payload = serde_json::to_value(&event).unwrap_or(serde_json::Value::Null);
    backend
        .push_to_users(recipients, events::UPDATED_CHAT, payload)
        .await;
}
