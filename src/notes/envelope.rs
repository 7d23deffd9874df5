//! The signed envelope of note sync (docs/protocol.md, "Note sync" §3):
//! `{ "payload", "signature", "timestamp", "nonce" }`, where `signature` is
//! HMAC-SHA256, keyed with the UTF-8 bytes of the hex `sessionSecret`, over
//! the text `{"payload":…,"timestamp":…,"nonce":…}` exactly as the client's
//! `JSON.stringify` wrote it.
//!
//! That text is rebuilt from the raw slices of the frame received (serde's
//! `RawValue`), never from a re-serialisation: a parse and re-encode would
//! change number formatting, escapes or key order and refuse honest clients.
//! `JSON.stringify` of the envelope writes each member exactly as it wrote
//! it inside the signed object, so the slices are the signed bytes.

use std::collections::{HashSet, VecDeque};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A session secret belongs to one 300 s window of the clock.
pub const WINDOW_MS: i64 = 300_000;
/// A signed message older than this is refused (and its nonce forgotten).
pub const MAX_AGE_MS: i64 = 300_000;
/// A signed message from further ahead than this is refused.
pub const MAX_AHEAD_MS: i64 = 60_000;

/// The lowercase hex SHA-256 of `"<token>:<userId>:<W>"`, `W` the start of
/// the 300 s window holding `at_ms`.
pub fn session_secret(token: &str, user_id: &str, at_ms: i64) -> String {
    let window = at_ms.div_euclid(WINDOW_MS) * WINDOW_MS;
    let digest = Sha256::digest(format!("{token}:{user_id}:{window}").as_bytes());
    hex(&digest)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
    signature: String,
    #[serde(borrow)]
    timestamp: &'a RawValue,
    #[serde(borrow)]
    nonce: &'a RawValue,
}

/// Why a signed message was refused; the client hears one text for all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("envelope fields missing or of the wrong type")]
    Malformed,
    #[error("timestamp more than 5 min old")]
    Stale,
    #[error("timestamp more than 60 s ahead")]
    Ahead,
    #[error("nonce already used")]
    Replayed,
    #[error("bad signature")]
    Signature,
    #[error("signed before the connection has a secret")]
    NoSecret,
}

/// A signed message, parsed but not yet trusted.
pub struct Signed<'a> {
    /// The exact text that was signed.
    signed_text: String,
    signature: Vec<u8>,
    pub timestamp: i64,
    /// `nonce:timestamp`, as the replay memory keys it.
    replay_key: String,
    raw_payload: &'a RawValue,
}

impl<'a> Signed<'a> {
    /// Reads the envelope's members out of the frame `text` (already known
    /// to be a JSON object with a `signature`).
    pub fn parse(text: &'a str) -> Result<Self, EnvelopeError> {
        let raw: RawEnvelope<'a> =
            serde_json::from_str(text).map_err(|_| EnvelopeError::Malformed)?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(raw.signature.as_bytes())
            .map_err(|_| EnvelopeError::Malformed)?;
        let timestamp: Value =
            serde_json::from_str(raw.timestamp.get()).map_err(|_| EnvelopeError::Malformed)?;
        let timestamp = timestamp
            .as_i64()
            .or_else(|| {
                timestamp
                    .as_f64()
                    .filter(|t| t.is_finite())
                    .map(|t| t as i64)
            })
            .ok_or(EnvelopeError::Malformed)?;
        let nonce: Value =
            serde_json::from_str(raw.nonce.get()).map_err(|_| EnvelopeError::Malformed)?;
        let nonce = nonce.as_str().ok_or(EnvelopeError::Malformed)?;
        let signed_text = format!(
            "{{\"payload\":{},\"timestamp\":{},\"nonce\":{}}}",
            raw.payload.get(),
            raw.timestamp.get(),
            raw.nonce.get()
        );
        Ok(Self {
            signed_text,
            signature,
            timestamp,
            replay_key: format!("{nonce}:{}", raw.timestamp.get()),
            raw_payload: raw.payload,
        })
    }

    /// The message inside.
    pub fn payload(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(self.raw_payload.get())
    }

    /// The age and future bounds.
    pub fn check_time(&self, now_ms: i64) -> Result<(), EnvelopeError> {
        if now_ms - self.timestamp > MAX_AGE_MS {
            return Err(EnvelopeError::Stale);
        }
        if self.timestamp - now_ms > MAX_AHEAD_MS {
            return Err(EnvelopeError::Ahead);
        }
        Ok(())
    }

    /// Whether `secret` signed this.
    fn signed_with(&self, secret: &str) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            return false;
        };
        mac.update(self.signed_text.as_bytes());
        mac.verify_slice(&self.signature).is_ok()
    }

    /// The full check of an authenticated connection: time bounds, then the
    /// secret of the timestamp's window or the connection's current one,
    /// then the nonce (remembered only once the signature is good, so
    /// forgeries cannot fill the memory).
    pub fn verify(
        &self,
        session: SessionKeys<'_>,
        nonces: &mut NonceMemory,
        now_ms: i64,
    ) -> Result<(), EnvelopeError> {
        self.check_time(now_ms)?;
        let windowed = session_secret(session.token, session.user_id, self.timestamp);
        let good = self.signed_with(&windowed)
            || (windowed != session.current && self.signed_with(session.current));
        if !good {
            return Err(EnvelopeError::Signature);
        }
        nonces.remember(&self.replay_key, now_ms)
    }

    /// The check of a signed `auth` before any secret exists here: time
    /// bounds and the nonce; the JWT inside is what authenticates it.
    pub fn verify_unkeyed(
        &self,
        nonces: &mut NonceMemory,
        now_ms: i64,
    ) -> Result<(), EnvelopeError> {
        self.check_time(now_ms)?;
        nonces.remember(&self.replay_key, now_ms)
    }
}

/// What a connection's secrets are derived from.
#[derive(Clone, Copy)]
pub struct SessionKeys<'a> {
    pub token: &'a str,
    pub user_id: &'a str,
    /// The secret last sent in `auth_success`.
    pub current: &'a str,
}

/// The `nonce:timestamp` pairs one connection used in the last 5 min.
///
/// Per connection because a signature only verifies with the secrets of
/// that connection's own token: a message replayed on another connection
/// fails its signature there. The memory is bounded by the rate limit (at
/// most `messages_per_minute × 5` entries can be younger than 5 min);
/// `capacity` is that bound, and at it the oldest entry goes first.
pub struct NonceMemory {
    seen: HashSet<String>,
    order: VecDeque<(i64, String)>,
    capacity: usize,
}

impl NonceMemory {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Records `key`; `Replayed` if it was seen within the last 5 min.
    pub fn remember(&mut self, key: &str, now_ms: i64) -> Result<(), EnvelopeError> {
        while let Some((at, _)) = self.order.front() {
            if now_ms - *at <= MAX_AGE_MS && self.order.len() < self.capacity {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if !self.seen.insert(key.to_owned()) {
            return Err(EnvelopeError::Replayed);
        }
        self.order.push_back((now_ms, key.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, text: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn the_secret_is_the_hex_sha256_of_token_user_and_window() {
        // printf 'tok:user_1:300000' | sha256sum
        assert_eq!(
            session_secret("tok", "user_1", 599_999),
            "67dca60c5f05c26798a8dc7e11bc4e61084c6b4c4637548045a68e0372d94e3a"
        );
        assert_ne!(
            session_secret("tok", "user_1", 600_000),
            session_secret("tok", "user_1", 599_999)
        );
        assert_eq!(session_secret("tok", "user_1", 0).len(), 64);
    }

    #[test]
    fn the_signature_covers_the_raw_text_as_sent() {
        let now = 1_700_000_000_000i64;
        let secret = session_secret("tok", "u", now);
        // Spacing and escapes a re-serialisation would change.
        let payload = r#"{"type":"ping","x":1.50,"s":"\u00e9"}"#;
        let signed = format!(r#"{{"payload":{payload},"timestamp":{now},"nonce":"bm9uY2U="}}"#);
        let sig = sign(&secret, &signed);
        let frame = format!(
            r#"{{"payload":{payload},"signature":"{sig}","timestamp":{now},"nonce":"bm9uY2U="}}"#
        );
        let keys = SessionKeys {
            token: "tok",
            user_id: "u",
            current: &secret,
        };
        let mut nonces = NonceMemory::new(10);
        let envelope = Signed::parse(&frame).expect("parses");
        assert_eq!(envelope.verify(keys, &mut nonces, now), Ok(()));
        assert_eq!(
            envelope.verify(keys, &mut nonces, now),
            Err(EnvelopeError::Replayed)
        );
        assert_eq!(
            envelope.verify(keys, &mut NonceMemory::new(10), now + MAX_AGE_MS + 1),
            Err(EnvelopeError::Stale)
        );
        assert_eq!(
            envelope.verify(keys, &mut NonceMemory::new(10), now - MAX_AHEAD_MS - 1),
            Err(EnvelopeError::Ahead)
        );
        let other = SessionKeys {
            token: "other",
            user_id: "u",
            current: "x",
        };
        assert_eq!(
            envelope.verify(other, &mut NonceMemory::new(10), now),
            Err(EnvelopeError::Signature)
        );
    }

    #[test]
    fn the_nonce_memory_forgets_after_five_minutes_and_stays_bounded() {
        let mut nonces = NonceMemory::new(3);
        assert!(nonces.remember("a:1", 0).is_ok());
        assert_eq!(
            nonces.remember("a:1", MAX_AGE_MS),
            Err(EnvelopeError::Replayed)
        );
        assert!(nonces.remember("a:1", MAX_AGE_MS + 1).is_ok());
        for i in 0..10 {
            let _ = nonces.remember(&format!("n{i}"), MAX_AGE_MS + 2);
        }
        assert_eq!(nonces.len(), 3);
    }
}
