//! Who a plain connection is (contract §2), the first that applies:
//!
//! 1. a JWT in `Authorization: Bearer`, `?token=` or the `--jwt-cookie`
//!    cookie (a cookie only from an allowed `Origin`: cross-site WebSocket
//!    hijacking), checked by `auth::jwt`;
//! 2. `--trusted-user-header` / `--trusted-guest-header`, only from a
//!    `--trusted-proxies` peer (anyone else can write a header; one from
//!    elsewhere is refused, not ignored, so a misrouted proxy shows up);
//! 3. `--auth-proxy-url`: the request's cookies and `--auth-proxy-headers`
//!    asked about at the app's session endpoint (`auth::proxy`), when it
//!    carries any (cookies only from an allowed `Origin`, as above);
//! 4. in band: the first `{ type: "auth", token }` or `{ type: "auth", id,
//!    secretkey }` message.
//!
//! A refusal on the upgrade request is HTTP 401 (403 for a bad origin, the
//! auth proxy's own status for its refusals, 502/503/504 when the proxy
//! fails), before any WebSocket exists.

use std::net::IpAddr;

use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use uuid::Uuid;

use super::Grant;
use crate::auth::jwt::JwtError;
use crate::auth::outside::{self, OutsideError};
use crate::auth::proxy::{Answer, ProxyError};
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
    #[error("{0}")]
    Token(#[from] JwtError),
    #[error("rooms claim: {0}")]
    BadRooms(String),
    #[error("{0}")]
    BadOutsideId(#[from] outside::BadOutsideId),
    #[error("identity header from an untrusted address")]
    UntrustedHeader,
    #[error("cookie credentials from an origin that is not allowed")]
    BadOrigin,
    #[error("too many failed authentication attempts from your address; try again later")]
    AddressBlocked,
    #[error("authentication is unavailable, try again later")]
    Unavailable,
    #[error("refused by the auth proxy")]
    ProxyRefused(StatusCode),
    #[error("{0}, try again later")]
    Proxy(#[from] ProxyError),
}

impl IdentityError {
    /// Whether the failure counts towards the address's limit: a guess that
    /// was checked (or could not even be read) does; our own outage or
    /// configuration does not.
    /// A wrong secret is not among them here: the authenticator records
    /// the guesses it verifies itself, in the same ledger.
    pub fn counts(&self) -> bool {
        !matches!(
            self,
            Self::Unavailable
                | Self::TokensOff
                | Self::AddressBlocked
                | Self::BadOrigin
                | Self::Rejected
                | Self::Proxy(_)
        )
    }
}

impl From<OutsideError> for IdentityError {
    fn from(err: OutsideError) -> Self {
        match err {
            OutsideError::BadId(bad) => Self::BadOutsideId(bad),
            OutsideError::Database(cause) => {
                tracing::error!(error = %cause, "could not create an outside user's row");
                Self::Unavailable
            }
        }
    }
}

/// The upgrade's refusal: 401 with the reason, or 403 for a bad origin.
impl IntoResponse for IdentityError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::BadOrigin => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::ProxyRefused(status) if status.is_client_error() => status,
            Self::Proxy(ProxyError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Proxy(ProxyError::Down) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Proxy(_) => StatusCode::BAD_GATEWAY,
            _ => StatusCode::UNAUTHORIZED,
        };
        (status, axum::Json(super::wire::error(&self.to_string()))).into_response()
    }
}

pub type Identity = (Uuid, Vec<Grant>);

/// The identity the upgrade request carries, if any (none: in band).
pub async fn from_request(
    app: &AppState,
    parts: &Parts,
    addr: Option<IpAddr>,
) -> Result<Option<Identity>, IdentityError> {
    // With the auth proxy and no JWT keys, a bearer token is the app's own
    // (forwarded when `--auth-proxy-headers` names `authorization`).
    let tokens_to_proxy = app.auth().jwt().is_none() && app.auth_proxy().is_some();
    let token = if tokens_to_proxy {
        None
    } else {
        token_in(app, parts)?
    };
    if let Some(token) = token {
        if addr.is_some_and(|addr| app.failed_auth().is_blocked(addr)) {
            return Err(IdentityError::AddressBlocked);
        }
        let verified = verify_token(app, &token).await;
        if let (Err(err), Some(addr)) = (&verified, addr) {
            if err.counts() {
                app.failed_auth().record_failure(Some(addr), None);
            }
        }
        return verified.map(Some);
    }
    let config = app.config();
    let headers = [
        (config.trusted_user_header.as_deref(), ""),
        (config.trusted_guest_header.as_deref(), "guest:"),
    ];
    for (name, prefix) in headers {
        let Some(value) = name.and_then(|name| parts.headers.get(name)) else {
            continue;
        };
        let peer = crate::connections::Peer::of(&parts.extensions).map(|p| p.addr.ip());
        if !peer.is_some_and(|peer| config.trusted_proxies.contains(&peer)) {
            tracing::warn!(peer = ?peer, "identity header from an untrusted address refused");
            return Err(IdentityError::UntrustedHeader);
        }
        let value = value
            .to_str()
            .map_err(|_| IdentityError::BadOutsideId(outside::BadOutsideId))?;
        let user = outside::ensure_user(app.db(), &format!("{prefix}{value}")).await?;
        return Ok(Some((user, Vec::new())));
    }
    from_proxy(app, parts, addr).await
}

/// Step 3: the app's session endpoint, when configured and the request
/// carries something to ask about.
async fn from_proxy(
    app: &AppState,
    parts: &Parts,
    addr: Option<IpAddr>,
) -> Result<Option<Identity>, IdentityError> {
    let Some(proxy) = app.auth_proxy() else {
        return Ok(None);
    };
    let Some(forwarded) = proxy.forwarded(&parts.headers) else {
        return Ok(None);
    };
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if forwarded.has_cookies() && origin.is_some_and(|o| !app.config().origin_allowed(o)) {
        return Err(IdentityError::BadOrigin);
    }
    if addr.is_some_and(|addr| app.failed_auth().is_blocked(addr)) {
        return Err(IdentityError::AddressBlocked);
    }
    match proxy.ask(&forwarded, std::time::Instant::now()).await? {
        Answer::Refused(status) => {
            // A guessed session cookie is a guess like any other.
            app.failed_auth().record_failure(addr, None);
            Err(IdentityError::ProxyRefused(status))
        }
        Answer::User { id, rooms } => {
            // The proxy's mistakes are the proxy's: 502, not the client's 401.
            let grants = match &rooms {
                None | Some(Value::Null) => Vec::new(),
                Some(rooms) => grants(rooms).map_err(|err| {
                    tracing::warn!(error = %err, "the auth proxy granted rooms that do not exist");
                    ProxyError::Unreadable
                })?,
            };
            let user = match outside::ensure_user(app.db(), &id).await {
                Ok(user) => user,
                Err(OutsideError::BadId(_)) => {
                    tracing::warn!("the auth proxy answered a user id that is not one");
                    return Err(ProxyError::Unreadable.into());
                }
                Err(err) => return Err(err.into()),
            };
            Ok(Some((user, grants)))
        }
    }
}

/// The token of the request: the header, the query, then the cookie.
fn token_in(app: &AppState, parts: &Parts) -> Result<Option<String>, IdentityError> {
    if let Some(bearer) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Ok(Some(bearer.trim().to_owned()));
    }
    let in_query = parts
        .uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("token="));
    if let Some(token) = in_query {
        return Ok(Some(token.to_owned()));
    }
    let config = app.config();
    let Some(name) = &config.jwt_cookie else {
        return Ok(None);
    };
    let cookie = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned());
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    if origin.is_some_and(|origin| !config.origin_allowed(origin)) {
        return Err(IdentityError::BadOrigin);
    }
    Ok(Some(cookie))
}

/// A JWT: its user (created at first sight when an outside id) and rooms.
pub async fn verify_token(app: &AppState, token: &str) -> Result<Identity, IdentityError> {
    let verifier = app.auth().jwt().ok_or(IdentityError::TokensOff)?;
    let claims = verifier.verify(token)?;
    let grants = match &claims.rooms {
        None | Some(Value::Null) => Vec::new(),
        Some(rooms) => grants(rooms)?,
    };
    let user = outside::ensure_user(app.db(), &claims.user).await?;
    Ok((user, grants))
}

/// The `rooms` claim: names, or `{ room, publish }` (`publish: false`:
/// listen only). Every name must be a room clients may be in.
fn grants(rooms: &Value) -> Result<Vec<Grant>, IdentityError> {
    let Value::Array(entries) = rooms else {
        return Err(IdentityError::BadRooms("must be an array".into()));
    };
    entries
        .iter()
        .map(|entry| {
            let (room, publish) = match entry {
                Value::String(room) => (room.as_str(), true),
                Value::Object(fields) => (
                    fields.get("room").and_then(Value::as_str).ok_or_else(|| {
                        IdentityError::BadRooms("an entry is a name or { room, publish }".into())
                    })?,
                    fields
                        .get("publish")
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                ),
                _ => {
                    return Err(IdentityError::BadRooms(
                        "an entry is a name or { room, publish }".into(),
                    ))
                }
            };
            let room = crate::rooms::parse_name(room)
                .map_err(|e| IdentityError::BadRooms(e.to_string()))?
                .name();
            Ok(Grant { room, publish })
        })
        .collect()
}

/// `{ type: "auth", token }` or `{ type: "auth", id, secretkey }`: the
/// argon2 path of `initialConnection`, through the same authenticator and
/// its cache, or the token path of the upgrade request.
pub async fn in_band(
    app: &AppState,
    fields: &Value,
    addr: Option<IpAddr>,
) -> Result<Identity, IdentityError> {
    if let Some(token) = fields.get("token") {
        let token = token
            .as_str()
            .ok_or(IdentityError::Token(JwtError::Malformed))?;
        return verify_token(app, token).await;
    }
    let credentials = Credentials::from_json(fields)?;
    match app.auth().authenticate(&credentials, addr).await {
        Ok(user) => Ok((user.id, Vec::new())),
        Err(AuthError::Rejected) => Err(IdentityError::Rejected),
        Err(AuthError::TooManyFailures(_)) => Err(IdentityError::AddressBlocked),
        Err(err) => {
            tracing::error!(error = %err, "plain authentication failed");
            Err(IdentityError::Unavailable)
        }
    }
}
