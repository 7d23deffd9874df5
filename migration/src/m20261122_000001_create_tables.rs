//! The first schema: users, follows, chatrooms, their members and messages.
//!
//! Every row that belongs to a user hangs off `users` with `ON DELETE
//! CASCADE`, so deleting an account is one statement and leaves nothing
//! dangling on either back-end.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    SecretHash,
    SocketId,
    CreatedAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum Follows {
    Table,
    FollowerId,
    FolloweeId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Chatrooms {
    Table,
    Id,
    Name,
    DirectKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ChatroomMembers {
    Table,
    ChatroomId,
    UserId,
    JoinedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ChatroomId,
    SenderId,
    Content,
    CreatedAt,
}

fn cascade_to_user<T: IntoIden + 'static>(
    from: (T, impl IntoIden + 'static),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn cascade_to_chatroom<T: IntoIden + 'static>(
    from: (T, impl IntoIden + 'static),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(Chatrooms::Table, Chatrooms::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(pk_uuid(Users::Id))
                    .col(string_len_uniq(Users::Username, 32))
                    .col(string(Users::SecretHash))
                    .col(string_null(Users::SocketId))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::LastSeenAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Follows::Table)
                    .if_not_exists()
                    .col(uuid(Follows::FollowerId))
                    .col(uuid(Follows::FolloweeId))
                    .col(big_integer(Follows::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Follows::FollowerId)
                            .col(Follows::FolloweeId),
                    )
                    .foreign_key(&mut cascade_to_user((Follows::Table, Follows::FollowerId)))
                    .foreign_key(&mut cascade_to_user((Follows::Table, Follows::FolloweeId)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_follows_followee")
                    .table(Follows::Table)
                    .col(Follows::FolloweeId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Chatrooms::Table)
                    .if_not_exists()
                    .col(pk_uuid(Chatrooms::Id))
                    .col(string_len_null(Chatrooms::Name, 100))
                    .col(string_null(Chatrooms::DirectKey).unique_key())
                    .col(big_integer(Chatrooms::CreatedAt))
                    .col(big_integer(Chatrooms::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatroomMembers::Table)
                    .if_not_exists()
                    .col(uuid(ChatroomMembers::ChatroomId))
                    .col(uuid(ChatroomMembers::UserId))
                    .col(big_integer(ChatroomMembers::JoinedAt))
                    .primary_key(
                        Index::create()
                            .col(ChatroomMembers::ChatroomId)
                            .col(ChatroomMembers::UserId),
                    )
                    .foreign_key(&mut cascade_to_chatroom((
                        ChatroomMembers::Table,
                        ChatroomMembers::ChatroomId,
                    )))
                    .foreign_key(&mut cascade_to_user((
                        ChatroomMembers::Table,
                        ChatroomMembers::UserId,
                    )))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_chatroom_members_user")
                    .table(ChatroomMembers::Table)
                    .col(ChatroomMembers::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .if_not_exists()
                    .col(pk_uuid(Messages::Id))
                    .col(uuid(Messages::ChatroomId))
                    .col(uuid(Messages::SenderId))
                    .col(text(Messages::Content))
                    .col(big_integer(Messages::CreatedAt))
                    .foreign_key(&mut cascade_to_chatroom((
                        Messages::Table,
                        Messages::ChatroomId,
                    )))
                    .foreign_key(&mut cascade_to_user((Messages::Table, Messages::SenderId)))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_chatroom_id")
                    .table(Messages::Table)
                    .col(Messages::ChatroomId)
                    .col(Messages::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_messages_sender")
                    .table(Messages::Table)
                    .col(Messages::SenderId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Messages::Table.into_iden(),
            ChatroomMembers::Table.into_iden(),
            Chatrooms::Table.into_iden(),
            Follows::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
