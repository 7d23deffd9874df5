//! Who a client is: sanitizing credentials, and verifying them against the
//! argon2id hash on the user row.
//!
//! Every entry point (the `initialConnection` event, the Socket.IO handshake,
//! GraphQL cookies and Basic auth) goes through [`Credentials`] and then
//! [`Authenticator::authenticate`], so the rules are written once.

mod authenticator;
pub mod cookies;
mod credentials;
pub mod jwt;
mod kdf;
pub mod outside;
pub mod proxy;
mod shared_verifications;

pub use authenticator::{AuthError, Authenticator, Blocked};
pub use credentials::{parse_user_id, Credentials, CredentialsError, Secret};
pub use shared_verifications::SharedVerifications;
