use sea_orm::entity::prelude::*;

/// A note of the notes app (docs/protocol.md, "Note sync"), owned by one
/// user. `user_id` is the owner's id as their token names it (a JWT `sub`
/// such as `user_2abc`, or a Tidings UUID as text), because that is the
/// `userId` the app's client compares with its own. Title and content are
/// never plain text: the app encrypts on the client and stores the
/// ciphertext in `encrypted_*`, with `"[ENCRYPTED]"` (or nothing) in
/// `title`/`content`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: String,
    pub title: Option<String>,
    pub content: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub encrypted_title: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub encrypted_content: Option<String>,
    pub starred: bool,
    pub archived: bool,
    pub deleted: bool,
    pub hidden: bool,
    pub folder_id: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
