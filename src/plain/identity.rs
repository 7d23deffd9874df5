//! Who a plain connection is: decided on the upgrade request when it says
//! so, or by the first `{ type: "auth" }` message (contract §2).

use serde_json::Value;
use uuid::Uuid;

use super::Grant;
use crate::auth::{AuthError, Credentials, CredentialsError};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid credentials: {0}")]
    Malformed(#[from] CredentialsError),
    #[error("wrong user id or secret")]
    Rejected,
    #[error("token authentication is not configured on this server")]
    TokensOff,
    #[error("authentication is unavailable, try again later")]
    Unavailable,
}

impl IdentityError {
    /// Whether the failure counts towards the address's limit: a guess that
    /// was checked (or could not even be read) does; our own outage does not.
    pub fn counts(&self) -> bool {
        !matches!(self, Self::Unavailable | Self::TokensOff)
    }
}

/// `{ type: "auth", id, secretkey }`: the argon2 path of
/// `initialConnection`, through the same authenticator and its cache.
pub async fn in_band(app: &AppState, fields: &Value) -> Result<(Uuid, Vec<Grant>), IdentityError> {
    if fields.get("token").is_some() {
        return Err(IdentityError::TokensOff);
    }
    let credentials = Credentials::from_json(fields)?;
    match app.auth().authenticate(&credentials).await {
        Ok(user) => Ok((user.id, Vec::new())),
        Err(AuthError::Rejected) => Err(IdentityError::Rejected),
        Err(err) => {
            tracing::error!(error = %err, "plain authentication failed");
            Err(IdentityError::Unavailable)
        }
    }
}
