//! Tokens from an outside identity provider (contract §2.1): HS256 with a
//! shared secret, RS256/ES256 with a PEM public key or a JWKS file.
//!
//! Each key is pinned to one algorithm when it is loaded, and a token is
//! checked only against keys of the algorithm its header names. So `alg:
//! none` (which `jsonwebtoken` cannot even parse) and the classic "HS256
//! signed with the RSA public key" find no key and are refused: the public
//! key is never used as an HMAC secret.
//!
//! `exp` is required and checked, `nbf` checked when present, with 5 s of
//! leeway for clocks (jsonwebtoken's default is 60 s: a minute more for a
//! stolen token than its issuer meant). `iss` and `aud` are checked when
//! configured; without a configured audience, `aud` is not checked.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::Config;

const LEEWAY_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("--jwt-hs256-secret must be at least 32 bytes")]
    ShortSecret,
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} holds no RSA or EC (P-256) public key in PEM")]
    BadPem(String),
    #[error("{0} is not a JWKS with RS256/ES256 keys: {1}")]
    BadJwks(String, String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("token is malformed")]
    Malformed,
    #[error("no key for this token's algorithm or key id")]
    NoKey,
    #[error("token is expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token has the wrong audience")]
    Audience,
    #[error("token has the wrong issuer")]
    Issuer,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has no usable {0} claim")]
    NoUser(String),
    #[error("token is invalid")]
    Invalid,
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// What a valid token says.
#[derive(Debug)]
pub struct TokenClaims {
    /// The user claim, as the provider wrote it.
    pub user: String,
    /// The `rooms` claim, if any.
    pub rooms: Option<Value>,
}

pub struct JwtVerifier {
    keys: Vec<Key>,
    user_claim: String,
    issuer: Option<String>,
    audience: Option<String>,
}

impl JwtVerifier {
    /// The verifier the configuration asks for; none when no key is set.
    pub fn from_config(config: &Config) -> Result<Option<Self>, JwtConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = &config.jwt_hs256_secret {
            if secret.len() < 32 {
                return Err(JwtConfigError::ShortSecret);
            }
            keys.push(Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = &config.jwt_public_key_file {
            let pem = read(path)?;
            let key = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
                (Algorithm::RS256, key)
            } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, key)
            } else {
                return Err(JwtConfigError::BadPem(path.clone()));
            };
            keys.push(Key {
                kid: None,
                algorithm: key.0,
                key: key.1,
            });
        }
        if let Some(path) = &config.jwt_jwks_file {
            let text = read(path)?;
            let set: JwkSet = serde_json::from_slice(&text)
                .map_err(|e| JwtConfigError::BadJwks(path.clone(), e.to_string()))?;
            for jwk in &set.keys {
                let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                    (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => {
                        Algorithm::RS256
                    }
                    (AlgorithmParameters::EllipticCurve(_), None | Some(KeyAlgorithm::ES256)) => {
                        Algorithm::ES256
                    }
                    _ => {
                        return Err(JwtConfigError::BadJwks(
                            path.clone(),
                            "only RSA (RS256) and EC P-256 (ES256) keys".into(),
                        ))
                    }
                };
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| JwtConfigError::BadJwks(path.clone(), e.to_string()))?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                });
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            keys,
            user_claim: config.jwt_user_claim.clone(),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
        }))
    }

    /// Checks `token`; the user claim and the `rooms` claim if valid.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        let candidates = self.keys.iter().filter(|key| {
            key.algorithm == header.alg
                && match (&key.kid, &header.kid) {
                    (Some(ours), Some(theirs)) => ours == theirs,
                    (Some(_), None) => false,
                    (None, _) => true,
                }
        });
        let mut last = JwtError::NoKey;
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            validation.leeway = LEEWAY_SECS;
            validation.validate_nbf = true;
            match &self.audience {
                Some(aud) => validation.set_audience(&[aud]),
                None => validation.validate_aud = false,
            }
            if let Some(iss) = &self.issuer {
                validation.set_issuer(&[iss]);
            }
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => return self.claims(data.claims),
                Err(err) => {
                    use jsonwebtoken::errors::ErrorKind;
                    last = match err.kind() {
                        ErrorKind::ExpiredSignature => JwtError::Expired,
                        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                        ErrorKind::InvalidAudience => JwtError::Audience,
                        ErrorKind::InvalidIssuer => JwtError::Issuer,
                        ErrorKind::InvalidSignature => JwtError::Signature,
                        ErrorKind::MissingRequiredClaim(_) => JwtError::Invalid,
                        _ => JwtError::Invalid,
                    };
                    // A signature that fails may fit another key of the same
                    // algorithm; any other failure is the token's own.
                    if last != JwtError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn claims(&self, mut claims: Value) -> Result<TokenClaims, JwtError> {
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(user)) if !user.is_empty() => user.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(JwtError::NoUser(self.user_claim.clone())),
        };
        let rooms = claims.get_mut("rooms").map(Value::take);
        Ok(TokenClaims { user, rooms })
    }
}

fn read(path: &str) -> Result<Vec<u8>, JwtConfigError> {
    std::fs::read(path).map_err(|e| JwtConfigError::Read(path.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn fixture(name: &str) -> String {
        format!("{}/tests/api/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn an_rsa_only_verifier_refuses_hs256_signed_with_its_public_key() {
        let mut config = Config::for_database("sqlite::memory:");
        config.jwt_public_key_file = Some(fixture("rsa-public.pem"));
        let verifier = JwtVerifier::from_config(&config)
            .expect("valid configuration")
            .expect("a verifier");
        let public = std::fs::read(fixture("rsa-public.pem")).expect("fixture");
        let claims = json!({ "sub": "u", "exp": entity::now_ms() / 1000 + 600 });
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(&public),
        )
        .expect("token");
        assert_eq!(verifier.verify(&forged).err(), Some(JwtError::NoKey));
        let none = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.";
        assert_eq!(verifier.verify(none).err(), Some(JwtError::Malformed));
    }
}
