//! Write side. Each mutation persists first and pushes after, so a push never
//! announces something the database does not hold.

use async_graphql::{Context, Object, ID};
use entity::{chatroom, follow, message, now_ms, user};
use sea_orm::{
    sea_query::OnConflict, ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set,
    SqlErr, TransactionTrait,
};
use uuid::Uuid;

use crate::chatroom_admin::{announce, insert_members};
use crate::content::{clean_message, clean_name};
use crate::error::{ApiError, ApiResult};
use crate::events::{self, FlatMessage, Followed, MessagePayload, NewFollower, Person};
use crate::message_push::{self, json};
use crate::query::{ensure_member, viewer};
use crate::types::{
    backend, existing_user, member_ids, parse_id, Chatroom, FollowPayload, Message, SignUpPayload,
    User,
};

/// Accounts, follows and direct chats.
#[derive(Default)]
pub struct SocialMutations;

/// Every mutation: this crate's mutation groups, merged.
#[derive(async_graphql::MergedObject, Default)]
pub struct MutationRoot(
    SocialMutations,
    crate::chatroom_admin::ChatroomMutations,
    crate::message_state::MessageStateMutations,
    crate::notes::NoteMutations,
);

/// Mutations that hash with argon2 cost the most; their complexity keeps a
/// request of aliased copies under the schema's limit.
const ARGON2_COST: usize = 200;
const WRITE_COST: usize = 50;

#[Object]
impl SocialMutations {
    /// Open registration. The secret is generated here and shown only in
    /// this answer. `name` is an optional display name (cleaned like
    /// message text); without one the user is shown by their username.
    #[graphql(complexity = "ARGON2_COST")]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        username: String,
        name: Option<String>,
    ) -> ApiResult<SignUpPayload> {
        validate_username(&username)?;
        let name = name.as_deref().map(clean_name).transpose()?;
        let backend = backend(ctx);
        let db = backend.db();
        if username_taken(db, &username).await? {
            return Err(ApiError::bad_input(format!(
                "username {username:?} is taken"
            )));
        }
        let issued = backend.issue_secret().await?;
        let now = now_ms();
        let row = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            username: Set(username.clone()),
            name: Set(name),
            secret_hash: Set(issued.hash),
            socket_id: Set(None),
            created_at: Set(now),
            last_seen_at: Set(now),
        };
        let created = match row.insert(db).await {
            Ok(created) => created,
            Err(err) if is_unique_violation(&err) => {
                return Err(ApiError::bad_input(format!(
                    "username {username:?} is taken"
                )))
            }
            Err(err) => return Err(err.into()),
        };
        tracing::info!(user_id = %created.id, "user signed up");
        Ok(SignUpPayload {
            id: ID(created.id.to_string()),
            username: created.username,
            secretkey: issued.secret,
        })
    }

    /// Follows `userId`, or unfollows if already following; the followed
    /// user is told either way.
    #[graphql(complexity = "WRITE_COST")]
    async fn follow_unfollow_user(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> ApiResult<FollowPayload> {
        let me = viewer(ctx)?;
        let target_id = parse_id(&user_id, "userId")?;
        if target_id == me.id {
            return Err(ApiError::bad_input("you cannot follow yourself"));
        }
        let backend = backend(ctx);
        let db = backend.db();
        let target = existing_user(db, target_id).await?;
        let removed = follow::Entity::delete_by_id((me.id, target_id))
            .exec(db)
            .await?;
        let following = removed.rows_affected == 0;
        if following {
            let row = follow::ActiveModel {
                follower_id: Set(me.id),
                followee_id: Set(target_id),
                created_at: Set(now_ms()),
            };
            follow::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([follow::Column::FollowerId, follow::Column::FolloweeId])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
        }
        let event = Followed {
            follower_id: me.id,
            follower_username: me.username.clone(),
            following,
            timestamp: now_ms(),
        };
        backend
            .push_to_users(&[target_id], events::FOLLOWED, json(&event))
            .await;
        if following && backend.social_client_events() {
            let event = NewFollower {
                id: me.id,
                follower: Person::of(me),
                timestamp: event.timestamp,
            };
            backend
                .push_to_users(&[target_id], events::NEW_FOLLOWER, json(&event))
                .await;
        }
        Ok(FollowPayload {
            following,
            user: User(target),
        })
    }

    /// The direct chatroom between the caller and `userId`, created on first
    /// use (and then announced to both with `updatedChat`).
    #[graphql(complexity = "WRITE_COST")]
    async fn get_location(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<Chatroom> {
        let me = viewer(ctx)?;
        let other = parse_id(&user_id, "userId")?;
        if other == me.id {
            return Err(ApiError::bad_input("a direct chatroom needs another user"));
        }
        let backend = backend(ctx);
        let db = backend.db();
        existing_user(db, other).await?;
        let key = chatroom::direct_key(me.id, other);
        if let Some(existing) = find_direct(db, &key).await? {
            return Ok(Chatroom(existing));
        }
        let now = now_ms();
        let txn = db.begin().await?;
        let created = chatroom::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(None),
            direct_key: Set(Some(key.clone())),
            created_by: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await;
        let created = match created {
            Ok(created) => created,
            // Someone created the same pair's chatroom in between: theirs wins.
            Err(err) if is_unique_violation(&err) => {
                txn.rollback().await?;
                return find_direct(db, &key)
                    .await?
                    .map(Chatroom)
                    .ok_or(ApiError::NotFound("chatroom"));
            }
            Err(err) => return Err(err.into()),
        };
        let members = [me.id, other];
        insert_members(&txn, created.id, &members, now).await?;
        txn.commit().await?;
        announce(backend.as_ref(), created.id, &members, &members).await;
        Ok(Chatroom(created))
    }

    /// Posts to a chatroom the caller belongs to. The content is cleaned of
    /// markup first (see `docs/protocol.md`).
    #[graphql(complexity = "WRITE_COST")]
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        chatroom_id: ID,
        content: String,
    ) -> ApiResult<Message> {
        let me = viewer(ctx)?;
        let chatroom_id = parse_id(&chatroom_id, "chatroomId")?;
        let backend = backend(ctx);
        let db = backend.db();
        ensure_member(db, chatroom_id, me.id).await?;
        let content = clean_message(&content)?;

        let now = now_ms();
        let txn = db.begin().await?;
        let row = message::ActiveModel {
            id: Set(Uuid::now_v7()),
            chatroom_id: Set(chatroom_id),
            sender_id: Set(me.id),
            content: Set(content),
            created_at: Set(now),
            read: Set(false),
            kind: Set(message::TEXT.to_owned()),
        }
        .insert(&txn)
        .await?;
        chatroom::Entity::update_many()
            .col_expr(chatroom::Column::UpdatedAt, now.into())
            .filter(chatroom::Column::Id.eq(chatroom_id))
            .exec(&txn)
            .await?;
        txn.commit().await?;

        let payload = MessagePayload::from_row(row, Some(me));
        let members = member_ids(db, chatroom_id).await?;
        let about = FlatMessage::of(&payload, &payload.kind);
        message_push::announce(
            backend.as_ref(),
            &members,
            payload.clone(),
            about,
            Some(payload.clone()),
            now,
        )
        .await;
        Ok(Message(payload))
    }

    /// Sets the caller's display name (cleaned like message text, 1 to 64
    /// characters, one line); `null` clears it, and the username shows
    /// again.
    #[graphql(complexity = "WRITE_COST")]
    async fn set_name(&self, ctx: &Context<'_>, name: Option<String>) -> ApiResult<User> {
        let me = viewer(ctx)?;
        let name = name.as_deref().map(clean_name).transpose()?;
        let backend = backend(ctx);
        user::Entity::update_many()
            .col_expr(user::Column::Name, name.clone().into())
            .filter(user::Column::Id.eq(me.id))
            .exec(backend.db())
            .await?;
        Ok(User(user::Model { name, ..me.clone() }))
    }

    /// Replaces the caller's secret. The old one stops working at once, and
    /// every socket that authenticated with it is unbound and told `auth`
    /// false.
    #[graphql(complexity = "ARGON2_COST")]
    async fn rotate_secret(&self, ctx: &Context<'_>) -> ApiResult<SignUpPayload> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        let issued = backend.issue_secret().await?;
        user::Entity::update_many()
            .col_expr(user::Column::SecretHash, issued.hash.into())
            .col_expr(user::Column::SocketId, Option::<String>::None.into())
            .filter(user::Column::Id.eq(me.id))
            .exec(backend.db())
            .await?;
        backend.revoke_sockets(me.id).await;
        tracing::info!(user_id = %me.id, "secret rotated");
        Ok(SignUpPayload {
            id: ID(me.id.to_string()),
            username: me.username.clone(),
            secretkey: issued.secret,
        })
    }

    /// Deletes the caller with their follows, memberships and messages, and
    /// disconnects every socket they hold.
    #[graphql(complexity = "WRITE_COST")]
    async fn delete_account(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        // `created_by` has no foreign key (SQLite cannot add one to an
        // existing table); clear it here so no chatroom names a ghost.
        chatroom::Entity::update_many()
            .col_expr(chatroom::Column::CreatedBy, Option::<Uuid>::None.into())
            .filter(chatroom::Column::CreatedBy.eq(me.id))
            .exec(backend.db())
            .await?;
        user::Entity::delete_by_id(me.id).exec(backend.db()).await?;
        backend.disconnect_sockets(me.id).await;
        tracing::info!(user_id = %me.id, "account deleted");
        Ok(true)
    }
}

fn validate_username(username: &str) -> ApiResult<()> {
    let len = username.chars().count();
    if !(3..=32).contains(&len) {
        return Err(ApiError::bad_input(format!(
            "username must be 3 to 32 characters, got {len}"
        )));
    }
    if let Some(bad) = username
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(ApiError::bad_input(format!(
            "username may only hold A-Z a-z 0-9 _ . - (found {bad:?})"
        )));
    }
    Ok(())
}

async fn username_taken(db: &sea_orm::DatabaseConnection, username: &str) -> ApiResult<bool> {
    Ok(user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await?
        .is_some())
}

async fn find_direct(
    db: &impl sea_orm::ConnectionTrait,
    key: &str,
) -> Result<Option<chatroom::Model>, DbErr> {
    chatroom::Entity::find()
        .filter(chatroom::Column::DirectKey.eq(key))
        .one(db)
        .await
}

fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}
