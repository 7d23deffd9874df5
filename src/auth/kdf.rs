//! argon2id with working memory that is reused, not reallocated per call.
//!
//! One argon2id call at OWASP parameters needs 19 MiB. Allocated per call on
//! whichever blocking-pool thread ran it, glibc kept those chunks in
//! per-thread arenas: after a cold storm of 2,000 users an idle node still
//! held about 500 MiB it no longer used (`scripts/bench`, idle scenario).
//! Calls are bounded by the authenticator's semaphore anyway, so at most
//! `concurrency` buffers are ever in use: they are allocated and touched once
//! at start and handed from call to call, which also spares every call
//! thousands of page faults.

use std::sync::Mutex;

use argon2::password_hash::{rand_core::OsRng, Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Output of a freshly issued hash, in bytes (the argon2 crate's default).
const OUTPUT_BYTES: usize = Params::DEFAULT_OUTPUT_LEN;

pub struct Kdf {
    /// Idle working memories, each `Params::default().block_count()` long.
    idle: Mutex<Vec<Vec<Block>>>,
    capacity: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum KdfError {
    #[error("not a usable argon2 PHC string: {0}")]
    BadHash(String),
    #[error("argon2 failed: {0}")]
    Argon2(#[from] argon2::Error),
}

impl Kdf {
    /// Keeps `capacity` working memories, allocated and touched now.
    pub fn new(capacity: usize) -> Self {
        let blocks = Params::default().block_count();
        let idle = (0..capacity)
            .map(|_| vec![Block::default(); blocks])
            .collect();
        Self {
            idle: Mutex::new(idle),
            capacity,
        }
    }

    /// An argon2id PHC string for `secret` with the crate's defaults, which
    /// are OWASP's recommendation (m = 19 MiB, t = 2, p = 1). Blocking.
    pub fn hash(&self, secret: &[u8]) -> Result<String, KdfError> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt
            .decode_b64(&mut salt_bytes)
            .map_err(|e| KdfError::BadHash(e.to_string()))?;
        let params = Params::default();
        let mut out = [0u8; OUTPUT_BYTES];
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        self.with_memory(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(secret, salt_bytes, &mut out, blocks)
        })?;
        let output = Output::new(&out).map_err(|e| KdfError::BadHash(e.to_string()))?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: (&params)
                .try_into()
                .map_err(|e: argon2::password_hash::Error| KdfError::BadHash(e.to_string()))?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(phc.to_string())
    }

    /// Whether `secret` matches the PHC string `phc` (compared in constant
    /// time). Blocking.
    pub fn verify(&self, secret: &[u8], phc: &str) -> Result<bool, KdfError> {
        let bad = |e: argon2::password_hash::Error| KdfError::BadHash(e.to_string());
        let parsed = PasswordHash::new(phc).map_err(bad)?;
        let algorithm = Algorithm::try_from(parsed.algorithm).map_err(bad)?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(bad)?;
        let expected = parsed
            .hash
            .ok_or_else(|| KdfError::BadHash("no hash".into()))?;
        let salt = parsed
            .salt
            .ok_or_else(|| KdfError::BadHash("no salt".into()))?;
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(bad)?;
        let mut out = vec![0u8; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        self.with_memory(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(secret, salt_bytes, &mut out, blocks)
        })?;
        let actual = Output::new(&out).map_err(bad)?;
        // `Output`'s equality is constant-time.
        Ok(actual == expected)
    }

    /// Runs `work` on a pooled working memory of at least `blocks` blocks.
    /// A hash with larger parameters than the default gets a one-off buffer
    /// and leaves the pool alone.
    fn with_memory<T>(&self, blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
        let pooled_blocks = Params::default().block_count();
        if blocks > pooled_blocks {
            return work(&mut vec![Block::default(); blocks]);
        }
        let mut memory = self
            .lock()
            .pop()
            .unwrap_or_else(|| vec![Block::default(); pooled_blocks]);
        let result = work(&mut memory[..blocks]);
        let mut idle = self.lock();
        if idle.len() < self.capacity {
            idle.push(memory);
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // A panic inside argon2 cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

    use super::*;

    #[test]
    fn its_hashes_verify_with_the_argon2_crate_and_back() {
        let kdf = Kdf::new(1);
        let ours = kdf.hash(b"s3cret").expect("hash");
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&ours).expect("phc");
        assert!(Argon2::default()
            .verify_password(b"s3cret", &parsed)
            .is_ok());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"other", &salt)
            .expect("hash")
            .to_string();
        assert!(kdf.verify(b"other", &theirs).expect("verify"));
        assert!(!kdf.verify(b"wrong", &theirs).expect("verify"));
        assert!(!kdf.verify(b"s3cre", &ours).expect("verify"));
    }

    #[test]
    fn a_hash_with_other_parameters_still_verifies() {
        let kdf = Kdf::new(1);
        let salt = SaltString::generate(&mut OsRng);
        let params = Params::new(32 * 1024, 1, 1, None).expect("params");
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"x", &salt)
            .expect("hash")
            .to_string();
        assert!(kdf.verify(b"x", &phc).expect("verify"));
        assert!(!kdf.verify(b"y", &phc).expect("verify"));
        assert_eq!(kdf.lock().len(), 1, "the pooled memory is kept");
    }

    #[test]
    fn a_broken_hash_is_an_error_not_a_match() {
        let kdf = Kdf::new(1);
        assert!(kdf.verify(b"x", "not a hash").is_err());
        assert!(kdf
            .verify(b"x", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ")
            .is_err());
    }
}
