//! The HTTP side: health probes and GraphQL. Socket.IO is a layer over the
//! same router (see `app.rs`), so everything shares one port.

mod graphql;
mod health;
mod push_api;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::state::AppState;

/// What the HTTP handlers share: the application state, and the schema
/// (kept beside it, not inside it, because the schema holds the state).
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: ::graphql::TidingsSchema,
}

pub fn router(state: HttpState) -> Router {
    let body_limit = state.app.config().graphql_max_body_bytes;
    let push_limit = state.app.config().push_max_body_bytes;
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/push",
            post(push_api::push).layer(DefaultBodyLimit::max(push_limit)),
        )
        .route(
            "/graphql",
            get(graphql::graphiql)
                .post(graphql::execute)
                .layer(RequestBodyLimitLayer::new(body_limit)),
        )
        .with_state(state)
}

/// CORS for exactly the configured origins; none configured means no
/// cross-origin browser access at all (never `permissive`).
pub fn cors(allowed_origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .allow_credentials(true)
}

/// Gives a request's URI (and axum's copy of it) and header values their
/// own small allocations.
///
/// hyper parses them as slices of the connection's 16 KiB read buffer, and
/// engineioxide keeps the request head for a socket's whole life, so every
/// WebSocket pinned that buffer: 16 KiB per idle connection, the largest
/// single cost heaptrack found (docs/benchmarks.md). Copying costs a few
/// hundred bytes once per request.
pub async fn detach_request_head(mut req: axum::extract::Request) -> axum::extract::Request {
    if let Some(uri) = detached(req.uri()) {
        *req.uri_mut() = uri;
    }
    if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
        if let Some(uri) = detached(&original.0) {
            original.0 = uri;
        }
    }
    for value in req.headers_mut().values_mut() {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
    }
    req
}

fn detached(uri: &axum::http::Uri) -> Option<axum::http::Uri> {
    axum::http::Uri::try_from(uri.to_string()).ok()
}
