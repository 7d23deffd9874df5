use sea_orm::entity::prelude::*;

/// A person who can hold sockets. `secret_hash` is an argon2id PHC string; the
/// secret itself is never stored. `socket_id` is the most recent socket that
/// authenticated as this user (a user may hold several; see the push service).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub username: String,
    /// The display name the user chose (cleaned of markup), if any.
    pub name: Option<String>,
    pub secret_hash: String,
    pub socket_id: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl Model {
    /// What people see the user as: their chosen name, or their username
    /// until they choose one, so a client never has an empty label to show.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.username)
    }
}
