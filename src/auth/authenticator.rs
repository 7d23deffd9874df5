//! Verifying secrets with argon2id, cheaply enough to survive a reconnect
//! storm and safely enough to survive a secret rotation.
//!
//! - argon2id at OWASP parameters (19 MiB, 2 passes) costs tens of
//!   milliseconds of CPU and 19 MiB of RAM per verification. It runs on the
//!   blocking pool, but never more than `concurrency` at once (a semaphore):
//!   an unbounded `spawn_blocking` would grow hundreds of threads and
//!   gigabytes of RAM under a storm. The RAM is reused (see `kdf`).
//! - A secret verified a moment ago is not verified again. The cache maps a
//!   user to keyed digests of the secret *and of the hash it was checked
//!   against* (64 bytes a user, whatever the hash's length). The user row
//!   is read on every attempt anyway (it is needed to bind the socket), and
//!   a hit requires the row's hash to be the one in the cache, so a rotated
//!   secret stops working at once on every node without any invalidation
//!   message.
//! - An unknown user id still costs one argon2 verification (against a dummy
//!   hash), so response time does not reveal which ids exist.

use std::sync::Arc;

use base64::Engine;
use entity::user;
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::credentials::{Credentials, Secret};
use super::kdf::{Kdf, KdfError};

/// Users whose last verified secret is remembered.
const CACHE_CAPACITY: usize = 100_000;
/// Random bytes in a generated secret (URL-safe base64: 43 characters).
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong secret; deliberately not told apart.
    #[error("wrong user id or secret")]
    Rejected,
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    #[error("argon2 task failed: {0}")]
    Hashing(String),
}

impl From<KdfError> for AuthError {
    fn from(e: KdfError) -> Self {
        Self::Hashing(e.to_string())
    }
}

#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    permits: Semaphore,
    /// argon2id with one reusable working memory per permit.
    kdf: Arc<Kdf>,
    cache: quick_cache::sync::Cache<Uuid, Verified>,
    /// Keys the cache digests, so a memory dump does not hold a plain hash
    /// of anyone's secret.
    digest_key: [u8; 32],
    /// Hash of a random secret nobody knows, verified for unknown users.
    dummy_hash: String,
    /// Outside tokens (JWT), when keys are configured.
    jwt: Option<super::jwt::JwtVerifier>,
}

#[derive(Clone)]
struct Verified {
    secret: [u8; 32],
    hash: [u8; 32],
}

impl Authenticator {
    pub async fn new(
        db: DatabaseConnection,
        concurrency: usize,
        jwt: Option<super::jwt::JwtVerifier>,
    ) -> Result<Self, AuthError> {
        let mut digest_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut digest_key);
        let concurrency = concurrency.max(1);
        let (kdf, dummy_hash) = blocking(move || {
            let kdf = Kdf::new(concurrency);
            let dummy_hash = kdf.hash(random_secret().as_bytes());
            (Arc::new(kdf), dummy_hash)
        })
        .await?;
        let dummy_hash = dummy_hash?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                permits: Semaphore::new(concurrency),
                kdf,
                cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
                digest_key,
                dummy_hash,
                jwt,
            }),
        })
    }

    /// Verifies outside tokens; none when no JWT key is configured.
    pub fn jwt(&self) -> Option<&super::jwt::JwtVerifier> {
        self.inner.jwt.as_ref()
    }

    /// The user the credentials belong to, or `Rejected`.
    pub async fn authenticate(&self, credentials: &Credentials) -> Result<user::Model, AuthError> {
        let row = user::Entity::find_by_id(credentials.user_id)
            .one(&self.inner.db)
            .await?;
        let Some(row) = row else {
            // Same cost as a wrong secret; the result is ignored on purpose.
            let _ = self
                .verify(&credentials.secret, self.inner.dummy_hash.clone())
                .await;
            return Err(AuthError::Rejected);
        };
        let verified = Verified {
            secret: self.digest(credentials.secret.expose().as_bytes()),
            hash: self.digest(row.secret_hash.as_bytes()),
        };
        if let Some(hit) = self.inner.cache.get(&row.id) {
            if hit.secret == verified.secret && hit.hash == verified.hash {
                return Ok(row);
            }
        }
        if self
            .verify(&credentials.secret, row.secret_hash.clone())
            .await?
        {
            self.inner.cache.insert(row.id, verified);
            Ok(row)
        } else {
            Err(AuthError::Rejected)
        }
    }

    /// A new random secret and its argon2id hash.
    pub async fn issue_secret(&self) -> Result<(String, String), AuthError> {
        let _permit = self.argon2_turn().await?;
        let secret = random_secret();
        let for_hashing = secret.clone();
        let kdf = self.inner.kdf.clone();
        let hash = blocking(move || kdf.hash(for_hashing.as_bytes())).await??;
        Ok((secret, hash))
    }

    async fn verify(&self, secret: &Secret, hash: String) -> Result<bool, AuthError> {
        let _permit = self.argon2_turn().await?;
        let secret = secret.clone();
        let kdf = self.inner.kdf.clone();
        blocking(
            move || match kdf.verify(secret.expose().as_bytes(), &hash) {
                Ok(matches) => matches,
                Err(err) => {
                    tracing::error!(error = %err, "stored secret hash is unusable");
                    false
                }
            },
        )
        .await
    }

    /// Waits for one of the `concurrency` argon2 slots.
    async fn argon2_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AuthError> {
        self.inner
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))
    }

    fn digest(&self, bytes: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.inner.digest_key);
        hasher.update(bytes);
        hasher.finalize().into()
    }
}

fn random_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))
}
