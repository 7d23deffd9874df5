//! Probes for orchestrators: alive (`/healthz`) and able to serve (`/readyz`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use crate::persistence;

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 only when every dependency answers and the node is not draining
/// (after SIGTERM, see `drain`: the load balancer must stop sending new
/// clients first); the body says which did not, and which node answered.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    // Asked together, each within its own timeout, so an outage answers
    // 503 in under a second instead of hanging the probe.
    let redis = async {
        match state.app.bus() {
            Some(bus) => Some(bus.ping().await),
            None => None,
        }
    };
    let (database, redis) = tokio::join!(persistence::ping(state.app.db()), redis);
    let draining = state.app.is_draining();
    let ready = database && redis.unwrap_or(true) && !draining;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |up: bool| if up { "ok" } else { "unreachable" };
    let body = json!({
        "ready": ready,
        "node_id": state.app.node_id(),
        "database": word(database),
        "redis": redis.map_or("not configured", word),
        "draining": draining,
    });
    (status, Json(body))
}

/// Every series, in the OpenMetrics text format (Prometheus reads it).
pub async fn metrics(State(state): State<HttpState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.app.metrics().render(),
    )
}
