//! Opening the database and bringing its schema up to date.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement,
    TransactionTrait,
};

/// Connects with settings that suit each back-end.
///
/// SQLite: WAL so readers never wait on the writer; an in-memory database
/// gets exactly one connection, because each connection to `sqlite::memory:`
/// would otherwise open its own empty database.
///
/// `acquire_timeout` bounds both taking a pooled connection and opening a
/// new one: during an outage a request fails after it with a clear error,
/// instead of every request waiting (10 s each before issue 16).
pub async fn connect(
    url: &str,
    pool_size: u32,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(if in_memory { 1 } else { pool_size })
        .min_connections(if in_memory { 1 } else { 0 })
        .connect_timeout(acquire_timeout)
        .acquire_timeout(acquire_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |sqlite| {
            let sqlite = sqlite
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            if in_memory {
                sqlite
            } else {
                sqlite
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
            }
        });
    Database::connect(options).await
}

/// Any fixed number: the key of the PostgreSQL advisory lock that makes
/// nodes take turns at migrating.
const MIGRATION_LOCK: i64 = 0x7469_6469_6e67; // "tiding"

/// Applies pending migrations.
///
/// On PostgreSQL, nodes of a cluster often start together. The migrations
/// run inside one transaction that first takes a transaction-scoped
/// advisory lock, so the nodes take turns: the first migrates, the others
/// then find nothing left to do. (sea-orm-migration's own transaction nests
/// inside ours as a savepoint.)
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1)",
        [MIGRATION_LOCK.into()],
    ))
    .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// Longest `/readyz` waits for the database: an orchestrator polling it
/// needs an answer, not a hang, when the database is away.
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Whether the database answers a trivial query within `PING_TIMEOUT`
/// (for `/readyz`).
pub async fn ping(db: &DatabaseConnection) -> bool {
    tokio::time::timeout(PING_TIMEOUT, db.ping())
        .await
        .is_ok_and(|answer| answer.is_ok())
}
