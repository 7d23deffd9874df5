//! Credentials carried by the cookies `id` and `secretkey` (as the web app
//! already holds them), for the Socket.IO handshake and for GraphQL.
//!
//! A browser attaches cookies to every request to our host, including one
//! forged by another site's page (cross-site request forgery, cross-site
//! WebSocket hijacking). So cookies count only when the request has no
//! `Origin` (not a browser), one of the configured allowed origins, or the
//! gateway's own (a page it serves itself).

use axum::http::header::{COOKIE, HOST, ORIGIN};
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
        let allowed = origin
            .to_str()
            .is_ok_and(|origin| config.origin_allowed(origin) || same_origin(origin, headers));
        if !allowed {
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

/// A page served by this very host (`--static-dir`, the web app): its
/// `Origin` names the host the request was sent to. The scheme is not
/// compared: behind a TLS-terminating proxy the gateway sees plain HTTP.
pub fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    matches!((authority, host), (Some(a), Some(h)) if !a.is_empty() && a.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn an_origin_is_the_same_only_when_it_names_the_host_asked() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("localhost:3000"));
        assert!(same_origin("http://localhost:3000", &headers));
        assert!(same_origin("https://LOCALHOST:3000", &headers));
        assert!(!same_origin("http://localhost:3001", &headers));
        assert!(!same_origin("http://evil.example", &headers));
        assert!(!same_origin("null", &headers));
        assert!(!same_origin("http://", &headers));
        assert!(!same_origin("http://localhost:3000", &HeaderMap::new()));
    }
}
