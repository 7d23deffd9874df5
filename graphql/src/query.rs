//! Read side. Every query needs a signed-in caller: who exists, who follows
//! whom and who is online are not public.

use async_graphql::{Context, Object, ID};
use entity::{chatroom, chatroom_member, follow, message, user};
use sea_orm::{
    sea_query::{Expr, Func, LikeExpr},
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::types::{backend, parse_id, with_senders, Chatroom, Message, User};
use crate::Viewer;

pub const MAX_PAGE: u64 = 100;

/// Every query: this crate's query groups, merged.
#[derive(async_graphql::MergedObject, Default)]
pub struct QueryRoot(
    SocialQueries,
    crate::push_log::PushLogQueries,
    crate::notes::NoteQueries,
);

/// Users, follows, chatrooms and presence.
#[derive(Default)]
pub struct SocialQueries;

#[Object]
impl SocialQueries {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<User> {
        Ok(User(viewer(ctx)?.clone()))
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<User>> {
        viewer(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(user::Entity::find_by_id(id)
            .one(backend(ctx).db())
            .await?
            .map(User))
    }

    /// Users whose name contains `search`, ignoring case, by name.
    async fn users(
        &self,
        ctx: &Context<'_>,
        search: Option<String>,
        #[graphql(default = 20)] first: i32,
    ) -> ApiResult<Vec<User>> {
        viewer(ctx)?;
        let first = page_size(first, "first")?;
        let mut query = user::Entity::find()
            .order_by_asc(user::Column::Username)
            .limit(first);
        if let Some(search) = search.filter(|s| !s.is_empty()) {
            if search.chars().count() > 32 {
                return Err(ApiError::bad_input("search is at most 32 characters"));
            }
            let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
            let username = Func::lower(Expr::col(user::Column::Username));
            query = query.filter(Expr::expr(username).like(LikeExpr::new(pattern).escape('\\')));
        }
        Ok(query
            .all(backend(ctx).db())
            .await?
            .into_iter()
            .map(User)
            .collect())
    }

    /// Who follows `userId`.
    async fn followers(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<Vec<User>> {
        viewer(ctx)?;
        let id = parse_id(&user_id, "userId")?;
        let db = backend(ctx).db();
        let ids = follow::Entity::find()
            .filter(follow::Column::FolloweeId.eq(id))
            .all(db)
            .await?
            .into_iter()
            .map(|f| f.follower_id);
        users_by_ids(db, ids).await
    }

    /// Whom `userId` follows.
    async fn following(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<Vec<User>> {
        viewer(ctx)?;
        let id = parse_id(&user_id, "userId")?;
        let db = backend(ctx).db();
        let ids = follow::Entity::find()
            .filter(follow::Column::FollowerId.eq(id))
            .all(db)
            .await?
            .into_iter()
            .map(|f| f.followee_id);
        users_by_ids(db, ids).await
    }

    /// Whom the caller follows that is online right now (anywhere in the
    /// cluster), by name.
    async fn online_following(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let me = viewer(ctx)?;
        let backend = backend(ctx);
        let followed: Vec<Uuid> = follow::Entity::find()
            .select_only()
            .column(follow::Column::FolloweeId)
            .filter(follow::Column::FollowerId.eq(me.id))
            .into_tuple()
            .all(backend.db())
            .await?;
        let online = backend.online(&followed).await;
        let ids = followed
            .into_iter()
            .zip(online)
            .filter_map(|(id, online)| online.then_some(id));
        users_by_ids(backend.db(), ids).await
    }

    /// The caller's chatrooms, most recently active first.
    async fn chatrooms(&self, ctx: &Context<'_>) -> ApiResult<Vec<Chatroom>> {
        let me = viewer(ctx)?;
        let db = backend(ctx).db();
        let ids: Vec<Uuid> = chatroom_member::Entity::find()
            .filter(chatroom_member::Column::UserId.eq(me.id))
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.chatroom_id)
            .collect();
        let rooms = chatroom::Entity::find()
            .filter(chatroom::Column::Id.is_in(ids))
            .order_by_desc(chatroom::Column::UpdatedAt)
            .all(db)
            .await?;
        Ok(rooms.into_iter().map(Chatroom).collect())
    }

    /// Up to `last` messages of a chatroom the caller belongs to, older than
    /// the message `before` when given; oldest first, so the newest is last.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        chatroom_id: ID,
        before: Option<ID>,
        #[graphql(default = 50)] last: i32,
    ) -> ApiResult<Vec<Message>> {
        let me = viewer(ctx)?;
        let chatroom_id = parse_id(&chatroom_id, "chatroomId")?;
        let last = page_size(last, "last")?;
        let db = backend(ctx).db();
        ensure_member(db, chatroom_id, me.id).await?;
        let mut query = message::Entity::find()
            .filter(message::Column::ChatroomId.eq(chatroom_id))
            .order_by_desc(message::Column::Id)
            .limit(last);
        if let Some(before) = before {
            query = query.filter(message::Column::Id.lt(parse_id(&before, "before")?));
        }
        let mut rows = query.all(db).await?;
        rows.reverse();
        Ok(with_senders(db, rows)
            .await?
            .into_iter()
            .map(Message)
            .collect())
    }

    /// Whether the user has at least one authenticated socket.
    async fn is_online(&self, ctx: &Context<'_>, user_id: ID) -> ApiResult<bool> {
        viewer(ctx)?;
        let id = parse_id(&user_id, "userId")?;
        Ok(backend(ctx).is_online(id).await)
    }
}

pub(crate) fn viewer<'a>(ctx: &Context<'a>) -> ApiResult<&'a user::Model> {
    match ctx.data_opt::<Viewer>() {
        Some(viewer) => viewer.user(),
        None => Viewer::Anonymous.user(),
    }
}

/// Fails with NOT_FOUND, not FORBIDDEN, for a chatroom the caller is not in:
/// outsiders learn nothing, not even that it exists.
pub(crate) async fn ensure_member(
    db: &DatabaseConnection,
    chatroom: Uuid,
    user: Uuid,
) -> ApiResult<()> {
    chatroom_member::Entity::find_by_id((chatroom, user))
        .one(db)
        .await?
        .map(|_| ())
        .ok_or(ApiError::NotFound("chatroom"))
}

pub(crate) fn page_size(n: i32, argument: &str) -> ApiResult<u64> {
    match u64::try_from(n) {
        Ok(n @ 1..=MAX_PAGE) => Ok(n),
        _ => Err(ApiError::bad_input(format!(
            "{argument} must be between 1 and {MAX_PAGE}, got {n}"
        ))),
    }
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

async fn users_by_ids(
    db: &DatabaseConnection,
    ids: impl Iterator<Item = Uuid>,
) -> ApiResult<Vec<User>> {
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.collect::<Vec<_>>()))
        .order_by_asc(user::Column::Username)
        .all(db)
        .await?;
    Ok(users.into_iter().map(User).collect())
}
