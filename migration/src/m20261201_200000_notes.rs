//! Notes and folders of the notes app (docs/protocol.md, "Note sync").
//!
//! Owners are text ids (a JWT `sub`), not foreign keys to `users`: the app's
//! client compares them as it wrote them. Every read is "this user's",
//! so both tables are indexed by owner first.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Notes {
    Table,
    Id,
    UserId,
    Title,
    Content,
    EncryptedTitle,
    EncryptedContent,
    Starred,
    Archived,
    Deleted,
    Hidden,
    FolderId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Folders {
    Table,
    Id,
    UserId,
    Name,
    Color,
    ParentId,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Notes::Table)
                    .if_not_exists()
                    .col(uuid(Notes::Id).primary_key())
                    .col(string(Notes::UserId))
                    .col(string_null(Notes::Title))
                    .col(string_null(Notes::Content))
                    .col(text_null(Notes::EncryptedTitle))
                    .col(text_null(Notes::EncryptedContent))
                    .col(boolean(Notes::Starred).default(false))
                    .col(boolean(Notes::Archived).default(false))
                    .col(boolean(Notes::Deleted).default(false))
                    .col(boolean(Notes::Hidden).default(false))
                    .col(uuid_null(Notes::FolderId))
                    .col(big_integer(Notes::CreatedAt))
                    .col(big_integer(Notes::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("notes_by_owner")
                    .table(Notes::Table)
                    .col(Notes::UserId)
                    .col(Notes::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Folders::Table)
                    .if_not_exists()
                    .col(uuid(Folders::Id).primary_key())
                    .col(string(Folders::UserId))
                    .col(string(Folders::Name))
                    .col(string_null(Folders::Color))
                    .col(uuid_null(Folders::ParentId))
                    .col(big_integer(Folders::CreatedAt))
                    .col(big_integer(Folders::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("folders_by_owner")
                    .table(Folders::Table)
                    .col(Folders::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Folders::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Notes::Table).to_owned())
            .await
    }
}
