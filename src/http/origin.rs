//! The `Origin` check in front of the Socket.IO endpoint.
//!
//! A browser lets any page open a WebSocket (or send a polling request) to
//! any host, and says which page did it only in `Origin`. CORS does not
//! apply to WebSockets, and a polling handshake needs no preflight, so
//! without this check any site could open sockets here in its visitors'
//! browsers. It runs before socketioxide sees the request, so a refused
//! page never gets an Engine.IO session or a `101 Switching Protocols`.
//!
//! A page the gateway serves itself (its own origin) is always let through.
//! A request without `Origin` is not from a browser page (servers, mobile
//! apps, the JS client under Node) and is let through: such a client can
//! write any header it likes anyway. With no allowed origins configured,
//! nothing is checked (cookies from a foreign origin are still ignored, see
//! `auth::cookies`).

use axum::extract::{Request, State};
use axum::http::header::ORIGIN;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::cookies;
use crate::state::AppState;

/// Where socketioxide serves Engine.IO (its default path, which we keep).
const SOCKET_IO_PATH: &str = "/socket.io";

pub async fn refuse_foreign_origins(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if is_foreign_socket_request(&app, &request) {
        app.metrics().origin_refused.inc();
        let origin = request.headers().get(ORIGIN);
        tracing::info!(origin = ?origin, path = request.uri().path(), "Socket.IO request refused: origin not allowed");
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    next.run(request).await
}

fn is_foreign_socket_request(app: &AppState, request: &Request) -> bool {
    let config = app.config();
    if config.allowed_origins.is_empty() {
        return false;
    }
    let path = request.uri().path();
    let under_socket_io = path == SOCKET_IO_PATH
        || path
            .strip_prefix(SOCKET_IO_PATH)
            .is_some_and(|rest| rest.starts_with('/'));
    if !under_socket_io {
        return false;
    }
    match request.headers().get(ORIGIN) {
        None => false,
        Some(origin) => !origin.to_str().is_ok_and(|origin| {
            config.origin_allowed(origin) || cookies::same_origin(origin, request.headers())
        }),
    }
}
