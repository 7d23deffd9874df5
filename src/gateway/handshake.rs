//! Credentials presented with the Socket.IO handshake, so that reconnects
//! re-authenticate without client code.
//!
//! Two carriers: the `auth` object of socket.io-client ≥ 3, and the cookies
//! `id` / `secretkey` (all a 2.x client can send; see `auth::cookies` for
//! the origin rule that keeps other sites from riding them). The `auth`
//! object wins when it carries either field.

use axum::http::request::Parts;
use serde_json::Value;

use crate::auth::{cookies, Credentials, CredentialsError};
use crate::config::Config;

/// `None` when the handshake carried no credentials at all (then nothing is
/// emitted); otherwise the sanitized credentials or why they were refused.
pub fn credentials(
    parts: &Parts,
    auth: Option<&Value>,
    config: &Config,
) -> Option<Result<Credentials, CredentialsError>> {
    match auth {
        Some(Value::Object(fields))
            if fields.contains_key("id") || fields.contains_key("secretkey") =>
        {
            return Some(Credentials::from_json(&Value::Object(fields.clone())));
        }
        Some(Value::Object(_)) | None => {}
        Some(_) => return Some(Err(CredentialsError::NotAnObject)),
    }
    cookies::credentials(&parts.headers, config)
}
