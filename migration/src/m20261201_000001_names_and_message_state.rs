//! What the social app's own web client reads: a display `name` on users,
//! and on messages whether they were `read` and their `type` (`text` for
//! every message so far). Existing rows get the defaults: no name (shown as
//! the username), unread, `text`.
//!
//! One column per `ALTER TABLE`: SQLite takes only one change per statement.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Name,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Read,
    Type,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (Users::Table.into_iden(), string_null(Users::Name)),
            (
                Messages::Table.into_iden(),
                boolean(Messages::Read).default(false).to_owned(),
            ),
            (
                Messages::Table.into_iden(),
                string(Messages::Type).default("text").to_owned(),
            ),
        ];
        for (table, mut column) in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let columns = [
            (Users::Table.into_iden(), Users::Name.into_iden()),
            (Messages::Table.into_iden(), Messages::Read.into_iden()),
            (Messages::Table.into_iden(), Messages::Type.into_iden()),
        ];
        for (table, column) in columns {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
