//! Secrets verified on one node, remembered for every node of the cluster.
//!
//! Each node keeps its own cache of verified secrets (see `authenticator`),
//! so a client that reconnects to a node it has never used costs that node
//! one argon2id verification. When a whole node's clients move at once (a
//! crash, a redeploy, jittery phones spread over the nodes by the load
//! balancer) the storm of cold verifications is bounded by argon2 on the
//! receiving node: tens a second on two cores, which left clients waiting
//! minutes for `auth` and their pushes older than the resume window
//! (docs/benchmarks.md, issue 11's first runs). With this, the node that
//! verified a secret leaves a proof in Redis, and any other node accepts
//! the same secret against the same stored hash with one `GET`.
//!
//! The proof is `SHA-256(domain ‖ user id ‖ secret ‖ stored argon2 hash)`.
//! - Secrets are 256 random bits issued by the gateway, so a fast hash of
//!   one cannot be brute-forced back (a slow hash is for guessable
//!   passwords, which these are not).
//! - The stored hash (with its random salt) is only in the database: someone
//!   who can write Redis but not read the database cannot forge a proof for
//!   a secret of their own, and a proof read from Redis gives neither the
//!   secret nor the hash.
//! - A rotated secret changes the stored hash, so old proofs stop matching
//!   on every node at once, as with the local cache.
//!
//! Redis being slow or down only costs the shortcut: every call is bounded
//! by the push path's timeout and breaker, and a miss falls back to argon2.
//! The key lives in the user's hash slot (`{u:<id>}`) like the rest of a
//! user's keys.

use std::time::Duration;

use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::cluster::RedisBus;

/// How long a proof is kept after the verification that left it. Proofs
/// do not go stale (a rotation invalidates them by itself); this only
/// bounds Redis memory for users who stopped coming back.
const KEPT_FOR: Duration = Duration::from_secs(24 * 60 * 60);
const DOMAIN: &[u8] = b"tidings verified secret v1";

/// A verification's proof, derived from the credentials and the user row.
#[derive(Clone, PartialEq, Eq)]
pub struct Proof([u8; 32]);

impl Proof {
    pub fn of(user: Uuid, secret: &[u8], stored_hash: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        hasher.update(user.as_bytes());
        // Lengths first, so no two (secret, hash) pairs hash the same text.
        hasher.update((secret.len() as u64).to_be_bytes());
        hasher.update(secret);
        hasher.update(stored_hash.as_bytes());
        Self(hasher.finalize().into())
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Clone)]
pub struct SharedVerifications {
    bus: RedisBus,
    prefix: String,
}

impl SharedVerifications {
    pub fn new(bus: RedisBus, prefix: &str) -> Self {
        Self {
            bus,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, user: Uuid) -> String {
        format!("{}:{{u:{user}}}:verified", self.prefix)
    }

    /// Whether some node verified exactly this proof; false when Redis
    /// cannot tell in time.
    pub async fn holds(&self, user: Uuid, proof: &Proof) -> bool {
        let mut conn = self.bus.connection();
        let key = self.key(user);
        match self
            .bus
            .bounded(async move { conn.get::<_, Option<String>>(key).await })
            .await
        {
            Ok(Some(stored)) => constant_time_eq(stored.as_bytes(), proof.hex().as_bytes()),
            Ok(None) => false,
            Err(err) => {
                tracing::debug!(user_id = %user, error = %err, "shared verification unreadable; verifying here");
                false
            }
        }
    }

    /// Leaves the proof for the other nodes. A failure only costs them a
    /// verification of their own.
    pub async fn remember(&self, user: Uuid, proof: &Proof) {
        let mut conn = self.bus.connection();
        let key = self.key(user);
        let value = proof.hex();
        if let Err(err) = self
            .bus
            .bounded(async move {
                conn.set_ex::<_, _, ()>(key, value, KEPT_FOR.as_secs())
                    .await
            })
            .await
        {
            tracing::debug!(user_id = %user, error = %err, "shared verification not stored");
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_binds_the_user_the_secret_and_the_stored_hash() {
        let user = Uuid::from_u128(7);
        let proof = Proof::of(user, b"secret", "$argon2id$hash");
        assert!(proof == Proof::of(user, b"secret", "$argon2id$hash"));
        assert!(proof != Proof::of(Uuid::from_u128(8), b"secret", "$argon2id$hash"));
        assert!(proof != Proof::of(user, b"secreT", "$argon2id$hash"));
        assert!(proof != Proof::of(user, b"secret", "$argon2id$rotated"));
        // The boundary between secret and hash is part of the proof.
        assert!(Proof::of(user, b"ab", "c") != Proof::of(user, b"a", "bc"));
    }

    #[test]
    fn comparison_needs_equal_text() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
