//! Sanitizing a credential pair before anything else looks at it.
//!
//! The rules are strict on purpose: a user id is a UUID in canonical text
//! form, a secret is 1 to 256 printable ASCII characters. Anything else —
//! null, numbers, arrays, nested objects, markup, oversized strings — is
//! refused here and never reaches argon2 or the database.

use std::fmt;

use serde_json::Value;
use uuid::Uuid;

pub const MAX_SECRET_LEN: usize = 256;

/// A secret whose `Debug` never shows it, so it cannot end up in a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Clone, Debug)]
pub struct Credentials {
    pub user_id: Uuid,
    pub secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("credentials must be an object {{ id, secretkey }}")]
    NotAnObject,
    #[error("id is missing")]
    MissingId,
    #[error("secretkey is missing")]
    MissingSecret,
    #[error("id must be a user id (a UUID)")]
    BadId,
    #[error("secretkey must be 1 to {MAX_SECRET_LEN} printable ASCII characters")]
    BadSecret,
}

impl Credentials {
    /// From the JSON a client sent (`initialConnection` payload or the
    /// handshake `auth` object).
    pub fn from_json(value: &Value) -> Result<Self, CredentialsError> {
        let object = value.as_object().ok_or(CredentialsError::NotAnObject)?;
        let id = object.get("id").ok_or(CredentialsError::MissingId)?;
        let secret = object
            .get("secretkey")
            .ok_or(CredentialsError::MissingSecret)?;
        let id = id.as_str().ok_or(CredentialsError::BadId)?;
        let secret = secret.as_str().ok_or(CredentialsError::BadSecret)?;
        Self::from_parts(id, secret)
    }

    /// From two strings (cookies, HTTP Basic auth).
    pub fn from_parts(id: &str, secret: &str) -> Result<Self, CredentialsError> {
        Ok(Self {
            user_id: parse_user_id(id)?,
            secret: parse_secret(secret)?,
        })
    }
}

/// Only the canonical hyphenated form (either case): `Uuid::parse_str` would
/// also take braces, `urn:uuid:` and the unhyphenated form, which no client
/// of ours sends.
pub fn parse_user_id(id: &str) -> Result<Uuid, CredentialsError> {
    if id.len() != 36 {
        return Err(CredentialsError::BadId);
    }
    let parsed = Uuid::try_parse(id).map_err(|_| CredentialsError::BadId)?;
    if parsed.hyphenated().to_string().eq_ignore_ascii_case(id) {
        Ok(parsed)
    } else {
        Err(CredentialsError::BadId)
    }
}

fn parse_secret(secret: &str) -> Result<Secret, CredentialsError> {
    let printable = secret.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN || !printable {
        return Err(CredentialsError::BadSecret);
    }
    Ok(Secret(secret.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "0192f3a4-5b6c-7d8e-9f00-112233445566";

    #[test]
    fn accepts_a_canonical_id_and_printable_secret() {
        let creds =
            Credentials::from_json(&json!({"id": ID, "secretkey": "s3cret-_~!"})).expect("valid");
        assert_eq!(creds.user_id.to_string(), ID);
        assert_eq!(creds.secret.expose(), "s3cret-_~!");
        assert!(Credentials::from_parts(&ID.to_uppercase(), "x").is_ok());
    }

    #[test]
    fn refuses_every_other_shape() {
        use CredentialsError::*;
        let cases = [
            (json!(null), NotAnObject),
            (json!(42), NotAnObject),
            (json!("string"), NotAnObject),
            (json!([ID, "secret"]), NotAnObject),
            (json!({"secretkey": "x"}), MissingId),
            (json!({"id": ID}), MissingSecret),
            (json!({"id": {"$ne": null}, "secretkey": "x"}), BadId),
            (json!({"id": ID, "secretkey": {"nested": true}}), BadSecret),
            (json!({"id": 7, "secretkey": "x"}), BadId),
            (
                json!({"id": "<script>alert(1)</script>", "secretkey": "x"}),
                BadId,
            ),
            (json!({"id": "' OR 1=1 --", "secretkey": "x"}), BadId),
            (json!({"id": ID.replace('-', ""), "secretkey": "x"}), BadId),
            (json!({"id": format!("{{{ID}}}"), "secretkey": "x"}), BadId),
            (json!({"id": ID, "secretkey": ""}), BadSecret),
            (json!({"id": ID, "secretkey": "a".repeat(257)}), BadSecret),
            (json!({"id": ID, "secretkey": "tab\there"}), BadSecret),
            (json!({"id": ID, "secretkey": "ünïcode"}), BadSecret),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Credentials::from_json(&input).map(|_| ()),
                Err(expected),
                "{input}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let creds = Credentials::from_parts(ID, "hunter2").expect("valid");
        assert!(!format!("{creds:?}").contains("hunter2"));
    }
}
