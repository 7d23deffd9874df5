//! Probes for orchestrators: alive (`/healthz`) and able to serve (`/readyz`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use crate::persistence;

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 only when every dependency answers; the body says which did not.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let database = persistence::ping(state.app.db()).await;
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": database,
        "database": if database { "ok" } else { "unreachable" },
    });
    (status, Json(body))
}
