//! The operator view at `/admin` and the JSON it polls.
//!
//! Off (404) unless `--api-key` is set, and every JSON endpoint wants that
//! key as `Authorization: Bearer <key>`. The page keeps the key in
//! `sessionStorage` and sends it as a header, never as a cookie: a browser
//! never attaches it on its own, so another site cannot make an operator's
//! browser act (no CSRF). On top, requests a browser marks as coming from
//! another site (`Sec-Fetch-Site`, or an `Origin` that is not this host)
//! are refused before the key is even looked at.

use axum::extract::{Path, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use uuid::Uuid;

use super::push_api::same_key;
use super::{web, HttpState};
use crate::cluster::node_stats;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not found")]
    Off,
    #[error("cross-origin requests are refused")]
    CrossOrigin,
    #[error("missing or wrong API key")]
    Unauthorized,
    #[error("{0:?} is not a user id")]
    BadUserId(String),
    #[error("could not ask every node: {0}")]
    Cluster(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match self {
            AdminError::Off => return StatusCode::NOT_FOUND.into_response(),
            AdminError::CrossOrigin => StatusCode::FORBIDDEN,
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::BadUserId(_) => StatusCode::BAD_REQUEST,
            AdminError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/admin", get(page))
        .route("/admin/admin.js", get(script))
        .route("/admin/api/stats", get(stats))
        .route("/admin/api/users/{id}/disconnect", post(disconnect))
        .route("/admin/api/users/{id}/sockets", get(sockets))
}

fn enabled(state: &HttpState) -> Result<&str, AdminError> {
    state.app.config().api_key.as_deref().ok_or(AdminError::Off)
}

async fn page(State(state): State<HttpState>) -> Result<Response, AdminError> {
    enabled(&state)?;
    Ok(web::embedded_file("admin/index.html"))
}

async fn script(State(state): State<HttpState>) -> Result<Response, AdminError> {
    enabled(&state)?;
    Ok(web::embedded_file("admin/admin.js"))
}

/// Off, cross-origin, or without the key: refused, in that order.
fn guard(state: &HttpState, headers: &HeaderMap) -> Result<(), AdminError> {
    let key = enabled(state)?;
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(AdminError::CrossOrigin);
        }
    }
    if let Some(origin) = header(ORIGIN.as_str()) {
        let host = header(HOST.as_str()).unwrap_or_default();
        let same = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|rest| !host.is_empty() && rest == host);
        if !same {
            return Err(AdminError::CrossOrigin);
        }
    }
    let given = header(AUTHORIZATION.as_str())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AdminError::Unauthorized)?;
    if !same_key(given.trim(), key) {
        return Err(AdminError::Unauthorized);
    }
    Ok(())
}

/// This node's figures now, and every node's last published ones.
async fn stats(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AdminError> {
    guard(&state, &headers)?;
    let node = node_stats::snapshot(&state.app).await;
    let mut nodes = match state.app.bus() {
        Some(bus) => node_stats::cluster(bus, &state.app.config().redis_prefix)
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(error = %err, "could not read the cluster's node stats");
                Vec::new()
            }),
        None => Vec::new(),
    };
    // This node's own entry is the fresh one, not its last publication.
    nodes.retain(|other| other["nodeId"] != node["nodeId"]);
    nodes.insert(0, node.clone());
    Ok(Json(json!({ "node": node, "nodes": nodes })))
}

/// Disconnects every socket of a user, on every node.
async fn disconnect(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    guard(&state, &headers)?;
    let user = Uuid::parse_str(&id).map_err(|_| AdminError::BadUserId(id.clone()))?;
    tracing::info!(user_id = %user, "operator disconnects every socket of a user");
    state.app.push().disconnect(user).await;
    Ok(Json(json!({ "disconnected": user })))
}

/// A user's sockets on every node, with the Socket.IO server id of the
/// node each is on.
async fn sockets(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    guard(&state, &headers)?;
    let user = Uuid::parse_str(&id).map_err(|_| AdminError::BadUserId(id.clone()))?;
    let sockets = (state.sockets)(user).await.map_err(AdminError::Cluster)?;
    let sockets: Vec<_> = sockets
        .into_iter()
        .map(|(socket, server)| json!({ "socketId": socket, "serverId": server }))
        .collect();
    Ok(Json(json!({ "userId": user, "sockets": sockets })))
}
