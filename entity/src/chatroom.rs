use sea_orm::entity::prelude::*;

/// A conversation. A direct chatroom between two users carries `direct_key`
/// (the two ids, smaller first), which is unique: the database, not a
/// check-then-insert, guarantees one direct chatroom per pair.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chatrooms")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: Option<String>,
    #[sea_orm(unique)]
    pub direct_key: Option<String>,
    /// Who created a group chatroom (and may remove members); `None` for
    /// direct chatrooms.
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The `direct_key` of the direct chatroom between `a` and `b`, whichever asks.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}
