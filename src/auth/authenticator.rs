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
//! - With Redis, a verification is also left as a proof for the other
//!   nodes (`shared_verifications`), so a client moving to another node
//!   costs it a `GET`, not argon2.
//! - An unknown user id still costs one argon2 verification (against a dummy
//!   hash), so response time does not reveal which ids exist.
//! - Every path that checks a credential comes through here, so one
//!   `FailureLedger` sees every failure, per address and per target user.
//!   A blocked address is refused before the database and argon2; a
//!   blocked user is refused before argon2, but a secret verified a moment
//!   ago (a cache hit) still works: guessers cannot lock a signed-in user
//!   out of their next tab.
//! - One address may hold at most half of the argon2 slots (at least one),
//!   so a guesser cannot make a real user's sign-in wait behind its guesses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use base64::Engine;
use entity::user;
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use uuid::Uuid;

use super::credentials::{Credentials, Secret};
use super::kdf::{Kdf, KdfError};
use super::shared_verifications::{Proof, SharedVerifications};
use crate::limits::FailureLedger;
use crate::metrics::{AuthOutcome, Metrics};

/// Users whose last verified secret is remembered.
const CACHE_CAPACITY: usize = 100_000;
/// Past this many addresses, shares nobody waits on are swept.
const SHARES_SWEEP_ABOVE: usize = 1_000;
/// Random bytes in a generated secret (URL-safe base64: 43 characters).
const SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or wrong secret; deliberately not told apart.
    #[error("wrong user id or secret")]
    Rejected,
    /// Refused without verifying: too many failures lately.
    #[error("too many failed authentication attempts {0}")]
    TooManyFailures(Blocked),
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

/// Whose failures blocked an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Address,
    User,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Blocked::Address => "from this address",
            Blocked::User => "for this user",
        })
    }
}

#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    permits: Semaphore,
    /// Slots one address may hold at once (half of `permits`, at least 1).
    share: usize,
    /// Each address's share of the slots, while any of its attempts wait.
    shares: Mutex<HashMap<IpAddr, Weak<Semaphore>>>,
    ledger: FailureLedger,
    metrics: Arc<Metrics>,
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
    /// Verifications shared with the other nodes, once Redis is connected.
    shared: OnceLock<SharedVerifications>,
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
        ledger: FailureLedger,
        metrics: Arc<Metrics>,
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
                share: (concurrency / 2).max(1),
                shares: Mutex::default(),
                ledger,
                metrics,
                kdf,
                cache: quick_cache::sync::Cache::new(CACHE_CAPACITY),
                digest_key,
                dummy_hash,
                jwt,
                shared: OnceLock::new(),
            }),
        })
    }

    /// From now on, verifications are shared with the cluster's other
    /// nodes through Redis (set once, when the node joins a cluster).
    pub fn share_verifications(&self, shared: SharedVerifications) {
        if self.inner.shared.set(shared).is_err() {
            tracing::warn!("verifications were already shared; the second store is ignored");
        }
    }

    /// Verifies outside tokens; none when no JWT key is configured.
    pub fn jwt(&self) -> Option<&super::jwt::JwtVerifier> {
        self.inner.jwt.as_ref()
    }

    /// The counters this authenticator adds to (the application's).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The failed-authentication ledger every credential path shares.
    pub fn ledger(&self) -> &FailureLedger {
        &self.inner.ledger
    }

    /// The user the credentials belong to; `Rejected`, or `TooManyFailures`
    /// without verifying. `from` is the client's address, when known.
    /// Counted by outcome, and timed, in the metrics.
    pub async fn authenticate(
        &self,
        credentials: &Credentials,
        from: Option<IpAddr>,
    ) -> Result<user::Model, AuthError> {
        let started = Instant::now();
        let result = self.check(credentials, from).await;
        let metrics = &self.inner.metrics;
        Metrics::observe(&metrics.auth_latency, started.elapsed());
        metrics.auth_outcome(match &result {
            Ok(_) => AuthOutcome::ok,
            Err(AuthError::Rejected) => AuthOutcome::wrong,
            Err(AuthError::TooManyFailures(_)) => AuthOutcome::blocked,
            Err(_) => AuthOutcome::unavailable,
        });
        result
    }

    async fn check(
        &self,
        credentials: &Credentials,
        from: Option<IpAddr>,
    ) -> Result<user::Model, AuthError> {
        let user_id = credentials.user_id;
        self.refuse_if_blocked(from, None)?;
        let row = user::Entity::find_by_id(user_id)
            .one(&self.inner.db)
            .await?;
        let verified = row.as_ref().map(|row| Verified {
            secret: self.digest(credentials.secret.expose().as_bytes()),
            hash: self.digest(row.secret_hash.as_bytes()),
        });
        let proof = row.as_ref().map(|row| {
            Proof::of(
                row.id,
                credentials.secret.expose().as_bytes(),
                &row.secret_hash,
            )
        });
        if let (Some(row), Some(verified), Some(proof)) = (&row, &verified, &proof) {
            if let Some(hit) = self.inner.cache.get(&row.id) {
                if hit.secret == verified.secret && hit.hash == verified.hash {
                    return Ok(row.clone());
                }
            }
            if let Some(shared) = self.inner.shared.get() {
                if shared.holds(row.id, proof).await {
                    self.inner.metrics.shared_verification_hits.inc();
                    self.inner.cache.insert(row.id, verified.clone());
                    return Ok(row.clone());
                }
            }
        }
        // Checked before queueing for a slot (a refusal needs none), and
        // again with one in hand: attempts that queued while the limit was
        // reached must not all be verified.
        self.refuse_if_blocked(from, Some(user_id))?;
        let _turn = self.argon2_turn_for(from).await?;
        self.refuse_if_blocked(from, Some(user_id))?;
        let hash = row.as_ref().map_or_else(
            || self.inner.dummy_hash.clone(),
            |row| row.secret_hash.clone(),
        );
        // An unknown user costs the same as a wrong secret.
        let matches = self.verify_holding_turn(&credentials.secret, hash).await?;
        match (row, verified) {
            (Some(row), Some(verified)) if matches => {
                self.inner.cache.insert(row.id, verified);
                if let (Some(shared), Some(proof)) = (self.inner.shared.get(), &proof) {
                    shared.remember(row.id, proof).await;
                }
                Ok(row)
            }
            _ => {
                self.inner.ledger.record_failure(from, Some(user_id));
                Err(AuthError::Rejected)
            }
        }
    }

    fn refuse_if_blocked(&self, from: Option<IpAddr>, user: Option<Uuid>) -> Result<(), AuthError> {
        let now = Instant::now();
        let ledger = &self.inner.ledger;
        let blocked = if from.is_some_and(|addr| ledger.address_blocked_at(addr, now)) {
            Some(Blocked::Address)
        } else if user.is_some_and(|user| ledger.user_blocked_at(user, now)) {
            Some(Blocked::User)
        } else {
            None
        };
        match blocked {
            Some(blocked) => {
                self.inner.metrics.auth_refused_unverified.inc();
                tracing::info!(addr = ?from, user_id = ?user, %blocked, "authentication refused unverified: too many failures");
                Err(AuthError::TooManyFailures(blocked))
            }
            None => Ok(()),
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

    /// Runs one verification; the caller holds an argon2 turn.
    async fn verify_holding_turn(&self, secret: &Secret, hash: String) -> Result<bool, AuthError> {
        self.inner.metrics.argon2_verifications.inc();
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
    async fn argon2_turn(&self) -> Result<SemaphorePermit<'_>, AuthError> {
        let started = Instant::now();
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()));
        Metrics::observe(&self.inner.metrics.argon2_queue_wait, started.elapsed());
        permit
    }

    /// An argon2 slot, taken only once the address's share has room.
    async fn argon2_turn_for(
        &self,
        from: Option<IpAddr>,
    ) -> Result<(Option<OwnedSemaphorePermit>, SemaphorePermit<'_>), AuthError> {
        let share = match from {
            Some(addr) => Some(
                self.share_of(addr)
                    .acquire_owned()
                    .await
                    .map_err(|e| AuthError::Hashing(e.to_string()))?,
            ),
            None => None,
        };
        Ok((share, self.argon2_turn().await?))
    }

    fn share_of(&self, addr: IpAddr) -> Arc<Semaphore> {
        let mut shares = self.inner.shares.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(share) = shares.get(&addr).and_then(Weak::upgrade) {
            return share;
        }
        if shares.len() > SHARES_SWEEP_ABOVE {
            shares.retain(|_, share| share.strong_count() > 0);
        }
        let share = Arc::new(Semaphore::new(self.inner.share));
        shares.insert(addr, Arc::downgrade(&share));
        share
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
