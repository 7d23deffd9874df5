//! The Socket.IO gateway: what happens on connect, on `initialConnection`
//! and on disconnect.
//!
//! Each socket gets a [`Session`] that its handlers share (captured by the
//! handler closures, so no handler can silently miss it the way a missing
//! socketioxide `Extension` would make it skip). Handlers are registered
//! before the first `.await`, so an event sent right after connect is never
//! lost.

mod handshake;
mod session;

use std::sync::Arc;

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::SocketIo;
use socketioxide_core::adapter::DefinedAdapter;

use crate::state::AppState;
pub use session::{emit_error, Session};

/// Attaches the gateway to the default namespace. With the Redis adapter
/// the result is a future that subscribes the namespace's channels.
pub fn register<A: Adapter + DefinedAdapter>(io: &SocketIo<A>, app: AppState) -> A::InitRes {
    io.ns(
        "/",
        move |s: SocketRef<A>, TryData(auth): TryData<Value>| {
            let app = app.clone();
            async move { on_connect(s, auth.ok(), app).await }
        },
    )
}

async fn on_connect<A: Adapter>(s: SocketRef<A>, handshake_auth: Option<Value>, app: AppState) {
    let session = Arc::new(Session::new(app));
    tracing::debug!(socket_id = %s.id, transport = ?s.transport_type(), "socket connected");

    s.on("initialConnection", {
        let session = session.clone();
        move |s: SocketRef<A>, TryData(data): TryData<Value>, ack: AckSender<A>| {
            let session = session.clone();
            async move { session.initial_connection(s, data.ok(), ack).await }
        }
    });
    s.on_fallback(
        |s: SocketRef<A>, Event(event): Event, ack: AckSender<A>| async move {
            unknown_event(&s, &event, ack);
        },
    );
    s.on_disconnect({
        let session = session.clone();
        move |s: SocketRef<A>, reason: DisconnectReason| {
            let session = session.clone();
            async move { session.disconnected(s, reason).await }
        }
    });

    if let Some(credentials) =
        handshake::credentials(s.req_parts(), handshake_auth.as_ref(), session.config())
    {
        session.handshake(&s, credentials).await;
    }
    session.enforce_auth_deadline(s);
}

/// Silence is never an answer: an event the gateway does not know gets an
/// `error` event, and its ack (if one was asked for) gets `{ error }`.
fn unknown_event<A: Adapter>(s: &SocketRef<A>, event: &str, ack: AckSender<A>) {
    let shown: String = event.chars().take(64).collect();
    let reason = format!("unknown event {shown:?}");
    tracing::debug!(socket_id = %s.id, event = %shown, "unknown event");
    emit_error(s, &reason);
    if let Err(err) = ack.send(&serde_json::json!({ "error": reason })) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack unknown event");
    }
}
