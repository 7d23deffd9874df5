//! GraphQL over HTTP: GraphiQL on GET, execution on POST.
//!
//! Credentials are resolved here, once per request, before execution:
//! `Authorization: Basic base64(id:secretkey)`, `Authorization: Bearer
//! <jwt>` (when JWT keys are configured), or the cookies `id` and
//! `secretkey`. Cookies count only from an allowed (or absent) `Origin`, so
//! another site cannot post mutations with a user's cookies. Verification
//! goes through the same cached authenticator as sockets, so a request does
//! not pay for argon2 each time.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::Html;
use base64::Engine;
use graphql::Viewer;

use super::HttpState;
use crate::auth::{cookies, AuthError, Credentials, CredentialsError};
use crate::config::Config;

pub async fn graphiql() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

/// `GraphQLRequest` takes one operation; a JSON array (a batch) is refused,
/// so one request cannot smuggle in hundreds of operations.
pub async fn execute(
    State(state): State<HttpState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let viewer = viewer(&state, &headers).await;
    let mut response = state
        .schema
        .execute(request.into_inner().data(viewer))
        .await;
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

async fn viewer(state: &HttpState, headers: &HeaderMap) -> Viewer {
    if let Some(token) = bearer(headers) {
        return token_viewer(state, token).await;
    }
    let Some(credentials) = credentials(headers, state.app.config()) else {
        return Viewer::Anonymous;
    };
    let Ok(credentials) = credentials else {
        return Viewer::Rejected;
    };
    match state.app.auth().authenticate(&credentials).await {
        Ok(user) => Viewer::User(user),
        Err(AuthError::Rejected) => Viewer::Rejected,
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
