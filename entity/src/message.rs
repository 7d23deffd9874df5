use sea_orm::entity::prelude::*;

/// A chat message. Ids are UUIDv7, so ordering by id is ordering by time; the
/// `(chatroom_id, id)` index serves newest-first paging.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chatroom_id: Uuid,
    pub sender_id: Uuid,
    pub content: String,
    pub created_at: i64,
    /// Whether another member has marked the chatroom read since it was
    /// sent (`markChatroomRead`).
    pub read: bool,
    /// What kind of message it is; [`TEXT`] for everything sent so far.
    #[sea_orm(column_name = "type")]
    pub kind: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The `type` of an ordinary message.
pub const TEXT: &str = "text";
