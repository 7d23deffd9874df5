//! Read receipts and deleting one's own messages. Both persist first and
//! then tell every member of the chatroom (the one who acted too: their
//! other tabs show the same chat) with `chatroom` and `updatedChat`, whose
//! top-level `type` is `read` or `deleted`.
//!
//! `read` is one flag per message: set once any member other than the
//! sender has marked the chatroom read after it arrived. For a direct
//! chatroom that is exactly "the other person has seen it"; in a group it
//! means "someone has".

use async_graphql::{Context, Object, ID};
use entity::{message, now_ms};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::error::{ApiError, ApiResult};
use crate::events::{self, FlatMessage, MessagePayload, Person};
use crate::message_push::{self, newest_message};
use crate::query::{ensure_member, viewer};
use crate::types::{backend, member_ids, parse_id, with_senders};

const WRITE_COST: usize = 50;

#[derive(Default)]
pub struct MessageStateMutations;

#[Object]
impl MessageStateMutations {
    /// Marks every message the other members sent to the chatroom as read,
    /// and returns how many were unread. When any were, every member
    /// receives `chatroom` and `updatedChat` with `type` `read`, about the
    /// newest of them: everything up to it has been read. Marking again
    /// changes and pushes nothing.
    #[graphql(complexity = "WRITE_COST")]
    async fn mark_chatroom_read(&self, ctx: &Context<'_>, chatroom_id: ID) -> ApiResult<i32> {
        let me = viewer(ctx)?;
        let chatroom_id = parse_id(&chatroom_id, "chatroomId")?;
        let backend = backend(ctx);
        let db = backend.db();
        ensure_member(db, chatroom_id, me.id).await?;
        let unread_from_others = || {
            message::Entity::find()
                .filter(message::Column::ChatroomId.eq(chatroom_id))
                .filter(message::Column::SenderId.ne(me.id))
                .filter(message::Column::Read.eq(false))
        };
        let Some(newest) = unread_from_others()
            .order_by_desc(message::Column::Id)
            .one(db)
            .await?
        else {
            return Ok(0);
        };
        // Only up to the newest one seen here: a message arriving meanwhile
        // stays unread, as it was not announced as read.
        let marked = message::Entity::update_many()
            .col_expr(message::Column::Read, true.into())
            .filter(message::Column::ChatroomId.eq(chatroom_id))
            .filter(message::Column::SenderId.ne(me.id))
            .filter(message::Column::Read.eq(false))
            .filter(message::Column::Id.lte(newest.id))
            .exec(db)
            .await?
            .rows_affected;
        let mut read = with_senders(db, vec![newest]).await?;
        let Some(mut read) = read.pop() else {
            return Ok(0);
        };
        read.read = true;
        let mut about = FlatMessage::of(&read, events::READ);
        about.read_by = Some(Person::of(me));
        let members = member_ids(db, chatroom_id).await?;
        let last = newest_message(db, chatroom_id).await?;
        message_push::announce(backend.as_ref(), &members, read, about, last, now_ms()).await;
        tracing::debug!(user_id = %me.id, chatroom_id = %chatroom_id, marked, "chatroom marked read");
        Ok(i32::try_from(marked).unwrap_or(i32::MAX))
    }

    /// Deletes one of the caller's own messages for everyone. Every member
    /// receives `chatroom` and `updatedChat` with `type` `deleted` and the
    /// message's `id` (its content is not sent again).
    #[graphql(complexity = "WRITE_COST")]
    async fn delete_message(&self, ctx: &Context<'_>, message_id: ID) -> ApiResult<bool> {
        let me = viewer(ctx)?;
        let message_id = parse_id(&message_id, "messageId")?;
        let backend = backend(ctx);
        let db = backend.db();
        let row = message::Entity::find_by_id(message_id)
            .one(db)
            .await?
            .ok_or(ApiError::NotFound("message"))?;
        // An outsider learns nothing, not even that the message exists.
        ensure_member(db, row.chatroom_id, me.id)
            .await
            .map_err(|err| match err {
                ApiError::NotFound(_) => ApiError::NotFound("message"),
                other => other,
            })?;
        if row.sender_id != me.id {
            return Err(ApiError::bad_input("you can only delete your own messages"));
        }
        let removed = message::Entity::delete_by_id(row.id)
            .filter(message::Column::SenderId.eq(me.id))
            .exec(db)
            .await?;
        if removed.rows_affected == 0 {
            // Deleted by a concurrent request, which announced it.
            return Err(ApiError::NotFound("message"));
        }
        let chatroom_id = row.chatroom_id;
        let mut gone = MessagePayload::from_row(row, Some(me));
        gone.content = String::new();
        gone.kind = events::DELETED.to_owned();
        let about = FlatMessage::of(&gone, events::DELETED);
        let members = member_ids(db, chatroom_id).await?;
        let last = newest_message(db, chatroom_id).await?;
        message_push::announce(backend.as_ref(), &members, gone, about, last, now_ms()).await;
        tracing::info!(user_id = %me.id, message_id = %message_id, "message deleted");
        Ok(true)
    }
}
