//! Note sync: the notes app's WebSocket protocol on `GET /notes` (and any
//! path under it), keeping a user's notes and folders in sync across their
//! tabs and devices (docs/protocol.md, "Note sync"; the contract the app's
//! existing web client is written against).
//!
//! It is a plain WebSocket connection like `/ws`, in the same registry, so
//! the push service reaches it (durably, through its cursor) exactly as it
//! reaches `/ws` connections and Socket.IO sockets; only the vocabulary
//! differs.
//!
//! - `connection`: one connection, its deadline, keep-alive and pipeline.
//! - `envelope`: the signed envelope (HMAC-SHA256 over the raw text, the
//!   two secret windows, time bounds, nonce memory).
//! - `rate`: the per-connection 60 s message window.
//! - `messages`: the note and folder messages.
//! - `wire`: every frame and error text.
//!
//! Notes and folders are stored by `graphql::notes::store`, shared with
//! the GraphQL API.

mod connection;
pub mod envelope;
mod messages;
mod rate;
pub mod wire;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::ORIGIN;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use connection::{MAX_MESSAGE_BYTES, MAX_READ_BYTES};

use crate::http::HttpState;

/// `GET /notes` and `GET /notes/<anything>`.
pub async fn upgrade(State(state): State<HttpState>, request: Request) -> Response {
    let app = state.app;
    let (mut parts, _body) = request.into_parts();
    let config = app.config();
    // A page may open a WebSocket to any host; only `Origin` says which
    // page did. Absent: not a browser page, let through.
    if let Some(origin) = parts.headers.get(ORIGIN) {
        let allowed = config.allowed_origins.is_empty()
            || origin.to_str().is_ok_and(|origin| {
                config.origin_allowed(origin)
                    || crate::auth::cookies::same_origin(origin, &parts.headers)
            });
        if !allowed {
            app.metrics().origin_refused.inc();
            tracing::info!(origin = ?origin, "notes WebSocket refused: origin not allowed");
            return (StatusCode::FORBIDDEN, "Forbidden: Invalid origin").into_response();
        }
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let addr = crate::gateway::client_addr(&parts, &config.trusted_proxies);
    upgrade
        .max_message_size(MAX_READ_BYTES)
        .max_frame_size(MAX_READ_BYTES)
        .on_upgrade(move |socket| connection::serve(app, socket, addr))
}
