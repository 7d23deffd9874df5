//! The durable per-user push log of a node that runs without Redis
//! (docs/protocol.md, "Delivery guarantees"). With Redis the log lives
//! there instead and these tables stay empty.
//!
//! `push_log_heads` holds each user's last sequence number; `push_log` the
//! pushes still inside the retention window. No foreign key to `users`:
//! backend services may push to an id before its row exists, and the log is
//! trimmed by time anyway.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PushLogHeads {
    Table,
    UserId,
    Seq,
}

#[derive(DeriveIden)]
enum PushLog {
    Table,
    UserId,
    Seq,
    Event,
    Payload,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PushLogHeads::Table)
                    .if_not_exists()
                    .col(uuid(PushLogHeads::UserId).primary_key())
                    .col(big_integer(PushLogHeads::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(PushLog::Table)
                    .if_not_exists()
                    .col(uuid(PushLog::UserId))
                    .col(big_integer(PushLog::Seq))
                    .col(string(PushLog::Event))
                    .col(text(PushLog::Payload))
                    .col(big_integer(PushLog::CreatedAt))
                    .primary_key(Index::create().col(PushLog::UserId).col(PushLog::Seq))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PushLog::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(PushLogHeads::Table).to_owned())
            .await
    }
}
