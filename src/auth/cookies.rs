//! Credentials carried by the cookies `id` and `secretkey` (as the web app
//! already holds them), for the Socket.IO handshake and for GraphQL.
//!
//! A browser attaches cookies to every request to our host, including one
//! forged by another site's page (cross-site request forgery, cross-site
//! WebSocket hijacking). So cookies count only when the request has no
//! `Origin` (not a browser) or one of the configured allowed origins.

use axum::http::header::{COOKIE, ORIGIN};
use axum::http::HeaderMap;

use super::{Credentials, CredentialsError};
use crate::config::Config;

/// `None` when no credential cookie was sent, or when the origin may not use
/// cookies; otherwise the sanitized credentials or why they were refused.
pub fn credentials(
    headers: &HeaderMap,
    config: &Config,
) -> Option<Result<Credentials, CredentialsError>> {
    if let Some(origin) = headers.get(ORIGIN) {
        if !origin
            .to_str()
            .is_ok_and(|origin| config.origin_allowed(origin))
        {
            tracing::debug!(origin = ?origin, "cookie credentials ignored: origin not allowed");
            return None;
        }
    }
    let (mut id, mut secret) = (None, None);
    for header in headers.get_all(COOKIE) {
        let Ok(header) = header.to_str() else {
            continue;
        };
        for cookie in cookie::Cookie::split_parse(header).flatten() {
            match cookie.name() {
                "id" => id = Some(cookie.value().to_owned()),
                "secretkey" => secret = Some(cookie.value().to_owned()),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (None, None) => None,
        (Some(id), Some(secret)) => Some(Credentials::from_parts(&id, &secret)),
        (None, Some(_)) => Some(Err(CredentialsError::MissingId)),
        (Some(_), None) => Some(Err(CredentialsError::MissingSecret)),
    }
}
