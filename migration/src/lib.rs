//! Schema migrations, run at start-up and by `tidings migrate`.
//!
//! Written only with sea-orm-migration's backend-neutral helpers so that one
//! migration serves SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;
mod m20261123_000001_chatroom_creator;
mod m20261201_000001_names_and_message_state;
mod m20261201_100000_push_log;
mod m20261201_200000_notes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_tables::Migration),
            Box::new(m20261123_000001_chatroom_creator::Migration),
            Box::new(m20261201_000001_names_and_message_state::Migration),
            Box::new(m20261201_100000_push_log::Migration),
            Box::new(m20261201_200000_notes::Migration),
        ]
    }
}
