//! The HTTP side: health probes, GraphQL and the web app. Socket.IO is a
//! layer over the same router (see `app.rs`), so everything shares one port.

mod admin;
mod graphql;
mod health;
mod linger;
mod mutation_rate;
mod origin;
mod push_api;
pub mod web;

pub use origin::refuse_foreign_origins;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;

use crate::state::AppState;
use linger::linger_on_oversize_bodies;

/// What the HTTP handlers share: the application state, and the schema
/// (kept beside it, not inside it, because the schema holds the state).
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: ::graphql::TidingsSchema,
    /// Answers pure introspection documents; `None` when introspection is off.
    pub introspection: Option<::graphql::TidingsSchema>,
    /// `--static-dir`, served at `/` instead of the embedded web app.
    pub static_dir: Option<web::StaticDir>,
    /// A user's sockets on every node, for the operator view.
    pub sockets: crate::gateway::SocketDirectory,
}

pub fn router(state: HttpState) -> Router {
    let body_limit = state.app.config().graphql_max_body_bytes;
    let push_limit = state.app.config().push_max_body_bytes;
    let site = match state.static_dir.clone() {
        Some(dir) => any(web::static_dir).with_state(dir),
        None => any(web::embedded),
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/ws", get(crate::plain::upgrade))
        .route("/ws/{room}", get(crate::plain::upgrade_into))
        .route("/notes", get(crate::notes::upgrade))
        .route("/notes/{*rest}", get(crate::notes::upgrade))
        .route(
            "/api/push",
            post(push_api::push)
                .layer(DefaultBodyLimit::max(push_limit))
                .layer(from_fn_with_state(push_limit, linger_on_oversize_bodies)),
        )
        .route(
            "/graphql",
            get(web::graphiql)
                .post(graphql::execute)
                .layer(RequestBodyLimitLayer::new(body_limit))
                .layer(from_fn_with_state(body_limit, linger_on_oversize_bodies)),
        )
        .merge(admin::routes())
        .fallback_service(site)
        .with_state(state)
}

/// The OpenAPI 3 document of `/api/push`, `/healthz` and `/readyz`, kept
/// true by schemathesis against the live server (scripts/test).
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../docs/openapi.json"),
    )
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

/// Gives a request's URI (axum's copy shares it) and header values one
/// small allocation of their own.
///
/// hyper parses them as slices of the connection's 16 KiB read buffer, and
/// engineioxide keeps the request head for a socket's whole life, so every
/// WebSocket pinned that buffer: 16 KiB per idle connection, the largest
/// single cost heaptrack found (docs/benchmarks.md). The header values are
/// copied into one buffer, not one allocation each, because the copy lives
/// as long as the socket.
pub async fn detach_request_head(mut req: axum::extract::Request) -> axum::extract::Request {
    let original_is_uri = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|original| original.0 == *req.uri());
    if let Some(uri) = detached(req.uri()) {
        *req.uri_mut() = uri;
    }
    let uri = req.uri().clone();
    if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
        match original_is_uri {
            Some(true) => original.0 = uri,
            _ => {
                if let Some(copy) = detached(&original.0) {
                    original.0 = copy;
                }
            }
        }
    }
    detach_header_values(req.headers_mut());
    req
}

fn detached(uri: &axum::http::Uri) -> Option<axum::http::Uri> {
    axum::http::Uri::try_from(uri.to_string()).ok()
}

fn detach_header_values(headers: &mut axum::http::HeaderMap) {
    let total = headers.values().map(|v| v.len()).sum();
    let mut buffer = bytes::BytesMut::with_capacity(total);
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = buffer.freeze();
    let mut at = 0;
    for value in headers.values_mut() {
        let end = at + value.len();
        // The bytes came from a valid value, so this cannot fail; if it
        // somehow did, the original value stays (pinning, not breaking).
        if let Ok(mut copy) = HeaderValue::from_maybe_shared(buffer.slice(at..end)) {
            copy.set_sensitive(value.is_sensitive());
            *value = copy;
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};
    use bytes::Bytes;

    use super::detach_header_values;

    #[test]
    fn header_values_keep_their_bytes_and_flags_but_leave_the_read_buffer() {
        let read_buffer = Bytes::from_static(b"text/plainsecret-tokenfirstsecond");
        let slice = |from, to| HeaderValue::from_maybe_shared(read_buffer.slice(from..to));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", slice(0, 10).expect("valid"));
        let mut secret = slice(10, 22).expect("valid");
        secret.set_sensitive(true);
        headers.insert("cookie", secret);
        headers.append("x-forwarded-for", slice(22, 27).expect("valid"));
        headers.append("x-forwarded-for", slice(27, 33).expect("valid"));

        detach_header_values(&mut headers);

        let buffer = read_buffer.as_ptr_range();
        for value in headers.values() {
            assert!(!buffer.contains(&value.as_bytes().as_ptr()));
        }
        assert_eq!(headers["content-type"], "text/plain");
        assert_eq!(headers["cookie"], "secret-token");
        assert!(headers["cookie"].is_sensitive());
        assert!(!headers["content-type"].is_sensitive());
        let hops: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(hops, ["first", "second"]);
    }
}
