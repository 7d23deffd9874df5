//! The plain WebSocket transport: `GET /ws` and `GET /ws/<room>`, JSON text
//! frames (docs/protocol.md, "Plain WebSocket"), for clients that do not
//! speak Socket.IO. It shares users, rooms, the room policy, relay rules and
//! the push service with the Socket.IO gateway; only the framing differs.
//!
//! - `wire`: every message both ways, parsed and built.
//! - `identity`: who is connecting (upgrade request or in-band `auth`).
//! - `connection`: one connection's reader loop, limits and writer.
//! - `channel`: room traffic and revocations for plain connections on
//!   the other nodes (`<prefix>:plain` in Redis).
//! - `registry`: this node's plain connections by user, room and tab, which
//!   the push service reaches them through.

mod channel;
mod connection;
pub(crate) mod identity;
mod registry;
pub mod wire;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};

pub use channel::{PlainChannel, PlainOp};
pub use connection::close;
pub(crate) use connection::write_frames;
pub use registry::{Handle, PlainRegistry};

use crate::http::HttpState;

/// A room granted to a connection by its identity (a JWT `rooms` claim):
/// `publish: false` lets it listen but not relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub room: String,
    pub publish: bool,
}

/// `GET /ws`.
pub async fn upgrade(State(state): State<HttpState>, request: Request) -> Response {
    accept(state, request, None).await
}

/// `GET /ws/<room>`: the same, joining `<room>` once authenticated (a
/// refusal closes with 4403).
pub async fn upgrade_into(
    State(state): State<HttpState>,
    Path(room): Path<String>,
    request: Request,
) -> Response {
    accept(state, request, Some(room)).await
}

async fn accept(state: HttpState, request: Request, path_room: Option<String>) -> Response {
    let app = state.app;
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let config = app.config();
    let durable = query_flag(parts.uri.query(), "durable");
    let addr = crate::gateway::client_addr(&parts, &config.trusted_proxies);
    let identity = match identity::from_request(&app, &parts, addr).await {
        Ok(identity) => identity,
        Err(refusal) => {
            tracing::info!(reason = %refusal, "plain WebSocket upgrade refused");
            return refusal.into_response();
        }
    };
    let accepted = connection::Accepted {
        addr,
        path_room,
        durable,
        identity,
    };
    let max = usize::try_from(config.max_packet_bytes).unwrap_or(usize::MAX);
    // The same small initial read buffer as Socket.IO's WebSockets
    // (`--ws-read-buffer-bytes`) rather than tungstenite's default 128 KiB
    // reserved per connection; it grows for larger messages.
    upgrade
        .read_buffer_size(config.ws_read_buffer_bytes)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| connection::serve(app, socket, accepted))
}

/// Whether `?name=1` (or `true`) is in the query.
fn query_flag(query: Option<&str>, name: &str) -> bool {
    query.into_iter().flat_map(|q| q.split('&')).any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == name && matches!(value, "1" | "true")
    })
}
