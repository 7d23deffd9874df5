//! Users inserted straight into the `users` table, many at a time.
//!
//! Every seeded user has the same secret, [`SECRET`], and the same argon2id
//! PHC string, hashed ONCE per run here at m=19456 KiB, t=2, p=1 (the OWASP
//! parameters Tidings itself uses). The salt is therefore shared, which is
//! fine for a benchmark: the servers still verify per *user*, so a cold
//! authentication storm of N users costs N argon2id verifications on the
//! server (Tidings caches verified secrets per user id, not per hash).

use anyhow::{Context, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait, Set};
use uuid::Uuid;

/// The secret every seeded user shares (printable ASCII, as the protocol asks).
pub const SECRET: &str = "bench-secret-0123456789abcdefXYZ";

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
}

pub fn hash_secret() -> Result<String> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon
        .hash_password(SECRET.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string())
}

/// Inserts `n` users sharing `hash`; usernames are unique per run.
pub async fn seed_users(database_url: &str, n: usize, hash: &str) -> Result<Vec<User>> {
    let db = Database::connect(database_url)
        .await
        .with_context(|| format!("connect {database_url}"))?;
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut users = Vec::with_capacity(n);
    let mut batch = Vec::new();
    for i in 0..n {
        let id = Uuid::now_v7();
        users.push(User { id: id.to_string() });
        batch.push(entity::user::ActiveModel {
            id: Set(id),
            username: Set(format!("b{run}_{i}")),
            name: Set(None),
            secret_hash: Set(hash.to_owned()),
            socket_id: Set(None),
            created_at: Set(now),
            last_seen_at: Set(now),
        });
        if batch.len() == 1000 || i + 1 == n {
            entity::user::Entity::insert_many(std::mem::take(&mut batch))
                .exec_without_returning(&db)
                .await
                .context("insert users")?;
        }
    }
    db.close().await.ok();
    Ok(users)
}

/// `CREATE DATABASE <name>` on the server of `admin_url`; returns the URL of
/// the new database.
pub async fn create_pg_database(admin_url: &str, name: &str) -> Result<String> {
    let db = Database::connect(admin_url)
        .await
        .with_context(|| format!("connect {admin_url}"))?;
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    db.close().await.ok();
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

pub async fn drop_pg_database(admin_url: &str, name: &str) {
    if let Ok(db) = Database::connect(admin_url).await {
        let _ = db
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        db.close().await.ok();
    }
}

pub async fn connect(url: &str) -> Result<DatabaseConnection> {
    Ok(Database::connect(url).await?)
}
