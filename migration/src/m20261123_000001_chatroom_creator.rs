//! Group chatrooms have a creator, who alone may remove other members.
//! Nullable: direct chatrooms have none, and a creator may delete their
//! account (the column is then cleared by the application).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Chatrooms {
    Table,
    CreatedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Chatrooms::Table)
                    .add_column(uuid_null(Chatrooms::CreatedBy))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Chatrooms::Table)
                    .drop_column(Chatrooms::CreatedBy)
                    .to_owned(),
            )
            .await
    }
}
