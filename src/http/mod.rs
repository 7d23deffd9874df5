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
