//! `POST /api/push`: how a backend service reaches users over HTTP.
//!
//! Body: `{ "users": [ids] (at most 100), "rooms": [names], "event": name
//! (default "push"), "data": any JSON (required) }`. 202 with what was
//! accepted; 400 with the reason; 401 without the right key; 404 when no key
//! is configured (the API is off); 413 over the size limit.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use entity::user;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::HttpState;
use crate::backend_push::{check_event, check_room, parse_user, PushRejected, DEFAULT_EVENT};
use crate::metrics::PushKind;

pub const MAX_USERS: usize = 100;
pub const MAX_ROOMS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum PushApiError {
    #[error("the push API is not enabled on this server")]
    Disabled,
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("{0}")]
    BadBody(String),
    #[error("request body is too large")]
    TooLarge,
    #[error("internal error")]
    Database(#[from] sea_orm::DbErr),
}

impl From<PushRejected> for PushApiError {
    fn from(reason: PushRejected) -> Self {
        PushApiError::BadBody(reason.to_string())
    }
}

impl IntoResponse for PushApiError {
    /// The one place this endpoint's errors become HTTP; internal causes are
    /// logged, never sent.
    fn into_response(self) -> Response {
        let status = match &self {
            PushApiError::Disabled => StatusCode::NOT_FOUND,
            PushApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            PushApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            PushApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PushApiError::Database(err) => {
                tracing::error!(error = %err, "database error in /api/push");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
        }
        response
    }
}

/// A validated request.
struct PushRequest {
    users: Vec<Uuid>,
    rooms: Vec<String>,
    event: String,
    data: Value,
}

pub async fn push(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let metrics = state.app.metrics();
    match accept(&state, &headers, body).await {
        Ok(accepted) => {
            metrics.api_push_accepted.inc();
            (StatusCode::ACCEPTED, Json(accepted)).into_response()
        }
        Err(err) => {
            metrics.api_push_rejected.inc();
            tracing::info!(reason = %err, "POST /api/push refused");
            err.into_response()
        }
    }
}

async fn accept(
    state: &HttpState,
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Value, PushApiError> {
    let key = state
        .app
        .config()
        .api_key
        .as_deref()
        .ok_or(PushApiError::Disabled)?;
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(PushApiError::Unauthorized)?;
    if !same_key(given.trim(), key) {
        return Err(PushApiError::Unauthorized);
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            PushApiError::TooLarge
        } else {
            PushApiError::BadBody(rejection.body_text())
        }
    })?;
    let request = parse(&body)?;

    let known: Vec<Uuid> = if request.users.is_empty() {
        Vec::new()
    } else {
        user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .filter(user::Column::Id.is_in(request.users.clone()))
            .into_tuple()
            .all(state.app.db())
            .await?
    };
    let unknown: Vec<Uuid> = request
        .users
        .iter()
        .filter(|id| !known.contains(id))
        .copied()
        .collect();
    let push = state.app.push();
    let started = std::time::Instant::now();
    push.to_users(&known, &request.event, &request.data).await;
    if !request.rooms.is_empty() {
        push.to_rooms(request.rooms.clone(), &request.event, &request.data)
            .await;
    }
    state.app.metrics().pushed(PushKind::api, started);
    Ok(json!({
        "accepted": { "users": known.len(), "rooms": request.rooms.len(), "event": request.event },
        "unknownUsers": unknown,
    }))
}

fn parse(body: &[u8]) -> Result<PushRequest, PushApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| PushApiError::BadBody(format!("body is not JSON: {e}")))?;
    let Value::Object(mut fields) = value else {
        return Err(PushApiError::BadBody("body must be a JSON object".into()));
    };
    let data = fields
        .remove("data")
        .ok_or_else(|| PushApiError::BadBody("data is required".into()))?;
    let users = string_list(&fields, "users", MAX_USERS)?
        .into_iter()
        .map(parse_user)
        .collect::<Result<Vec<_>, _>>()?;
    let rooms = string_list(&fields, "rooms", MAX_ROOMS)?;
    for room in &rooms {
        check_room(room)?;
    }
    if users.is_empty() && rooms.is_empty() {
        return Err(PushApiError::BadBody(
            "name at least one target in users or rooms".into(),
        ));
    }
    let event = match fields.get("event") {
        None | Some(Value::Null) => DEFAULT_EVENT.to_owned(),
        Some(Value::String(event)) => event.clone(),
        Some(_) => return Err(PushApiError::BadBody("event must be a string".into())),
    };
    check_event(&event)?;
    let mut users = users;
    users.sort_unstable();
    users.dedup();
    Ok(PushRequest {
        users,
        rooms: rooms.into_iter().map(str::to_owned).collect(),
        event,
        data,
    })
}

fn string_list<'a>(
    fields: &'a serde_json::Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Vec<&'a str>, PushApiError> {
    let list = match fields.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(PushApiError::BadBody(format!(
                "{name} must be an array of strings"
            )))
        }
    };
    if list.len() > max {
        return Err(PushApiError::BadBody(format!(
            "{name} holds {} entries, at most {max}",
            list.len()
        )));
    }
    list.iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| PushApiError::BadBody(format!("{name} must be an array of strings")))
        })
        .collect()
}

/// Compares digests, so the time taken says nothing about how much of the
/// key was right.
pub(super) fn same_key(given: &str, key: &str) -> bool {
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(key.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
