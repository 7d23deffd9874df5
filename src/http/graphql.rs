//! GraphQL over HTTP: execution on POST (GraphiQL, on GET, is a page of
//! the embedded web app: `web.rs`).
//!
//! Credentials are resolved here, once per request, before execution:
//! `Authorization: Basic base64(id:secretkey)`, `Authorization: Bearer
//! <jwt>` (when JWT keys are configured), or the cookies `id` and
//! `secretkey`. Cookies count only from an allowed (or absent) `Origin`, so
//! another site cannot post mutations with a user's cookies. Verification
//! goes through the same cached authenticator as sockets, so a request does
//! not pay for argon2 each time.

use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::Engine;
use graphql::Viewer;
use std::net::IpAddr;

use super::HttpState;
use crate::auth::{cookies, AuthError, Credentials, CredentialsError};
use crate::config::Config;
use crate::gateway::client_addr;

/// `GraphQLRequest` takes one operation; a JSON array (a batch) is refused,
/// so one request cannot smuggle in hundreds of operations. A document
/// asking only for introspection runs on the introspection schema (see
/// `graphql::build_introspection_schema`: its own depth limit).
pub async fn execute(
    State(state): State<HttpState>,
    parts: Parts,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let request = request.into_inner();
    let introspection = state.introspection.as_ref().filter(|_| {
        graphql::is_introspection_only(&request.query, request.operation_name.as_deref())
    });
    let mut response = match introspection {
        // Introspection reads no user data: no credentials to verify.
        Some(schema) => schema.execute(request.data(Viewer::Anonymous)).await,
        None => {
            let from = client_addr(&parts, &state.app.config().trusted_proxies);
            let viewer = viewer(&state, &parts.headers, from).await;
            if let Viewer::User(user) = &viewer {
                if let Err(limited) = super::mutation_rate::check(&state.app, user.id, &request) {
                    return async_graphql::Response::from_errors(vec![limited]).into();
                }
            }
            state.schema.execute(request.data(viewer)).await
        }
    };
    for error in &mut response.errors {
        code_client_errors(error);
    }
    response.into()
}

/// Every error a resolver raises carries its code already (`ApiError`).
/// The ones without are async-graphql's own, raised before any resolver
/// runs: a query that does not parse, an argument of the wrong type or
/// missing, a query too deep or too complex. All are the client's to fix.
fn code_client_errors(error: &mut async_graphql::ServerError) {
    let coded = error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some());
    if !coded {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", "BAD_USER_INPUT");
    }
}

/// Who the request is from. Every failure goes to the one ledger (the
/// authenticator records wrong secrets; malformed ones are recorded here),
/// so guessing over GraphQL is limited exactly as over sockets.
async fn viewer(state: &HttpState, headers: &HeaderMap, from: Option<IpAddr>) -> Viewer {
    if let Some(token) = bearer(headers) {
        if from.is_some_and(|addr| state.app.failed_auth().is_blocked(addr)) {
            return Viewer::TooManyFailures;
        }
        let viewer = token_viewer(state, token).await;
        // A refused token is a failed authentication like any other.
        if matches!(viewer, Viewer::Rejected) {
            state.app.failed_auth().record_failure(from, None);
        }
        return viewer;
    }
    let Some(credentials) = credentials(headers, state.app.config()) else {
        return Viewer::Anonymous;
    };
    let Ok(credentials) = credentials else {
        if from.is_some_and(|addr| state.app.failed_auth().is_blocked(addr)) {
            return Viewer::TooManyFailures;
        }
        state.app.failed_auth().record_failure(from, None);
        return Viewer::Rejected;
    };
    match state.app.auth().authenticate(&credentials, from).await {
        Ok(user) => Viewer::User(user),
        Err(AuthError::Rejected) => Viewer::Rejected,
        Err(AuthError::TooManyFailures(_)) => Viewer::TooManyFailures,
        Err(err) => {
            tracing::error!(user_id = %credentials.user_id, error = %err, "could not verify GraphQL credentials");
            Viewer::Unverifiable
        }
    }
}

/// `Authorization: Bearer <jwt>`: the same tokens, keys and outside users
/// as plain WebSocket connections (docs/protocol.md §10.4).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn token_viewer(state: &HttpState, token: &str) -> Viewer {
    use crate::plain::identity::{verify_token, IdentityError};
    use sea_orm::EntityTrait;
    let user = match verify_token(&state.app, token).await {
        Ok((user, _grants)) => user,
        Err(IdentityError::Unavailable) => return Viewer::Unverifiable,
        Err(err) => {
            tracing::debug!(reason = %err, "GraphQL bearer token refused");
            return Viewer::Rejected;
        }
    };
    match entity::user::Entity::find_by_id(user)
        .one(state.app.db())
        .await
    {
        Ok(Some(row)) => Viewer::User(row),
        Ok(None) => Viewer::Rejected,
        Err(err) => {
            tracing::error!(user_id = %user, error = %err, "could not load a token's user");
            Viewer::Unverifiable
        }
    }
}

/// `None` when no credentials were sent; `Some(Err(_))` when they were
/// sent but are malformed.
fn credentials(
    headers: &HeaderMap,
    config: &Config,
) -> Option<Result<Credentials, CredentialsError>> {
    match headers.get(AUTHORIZATION) {
        Some(value) => Some(basic(value.to_str().unwrap_or_default())),
        None => cookies::credentials(headers, config),
    }
}

fn basic(header: &str) -> Result<Credentials, CredentialsError> {
    let decoded = header
        .strip_prefix("Basic ")
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(CredentialsError::NotAnObject)?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or(CredentialsError::MissingSecret)?;
    Credentials::from_parts(id, secret)
}
