//! The Socket.IO gateway: every client event and what it does. This file
//! wires them; `session` holds a socket's identity and the
//! `initialConnection` flow, `handshake` reads credentials sent with the
//! handshake, `rooms` is `joinRoom`/`leaveRoom`, `relay` is `event` and
//! `typing`, `chats` is `getChats`.
//!
//! Two steps per socket:
//! - `attach`, a connect *middleware*: socketioxide awaits middlewares
//!   before it sends the CONNECT packet, so the handlers registered there
//!   exist before the client can send anything. (The connect handler runs
//!   in a task spawned after CONNECT; an event that arrived before it had
//!   registered its handlers would be dropped unanswered.)
//! - `on_connect`, the connect handler: what needs the socket connected
//!   (emitting `tabWindowId`, answering handshake credentials).
//!
//! Each socket gets a [`Session`] that its handlers share, captured by the
//! handler closures, so no handler can silently miss it the way a missing
//! socketioxide `Extension` would make it skip. Sessions and handlers hold
//! the application state weakly: the socket layer lives inside the state
//! (through the push service), and strong references back would make a
//! cycle that never frees the database pool.

mod chats;
mod checkpoints;
mod engine_requests;
mod handshake;
mod kicks;
mod relay;
pub(crate) mod resume;
mod rooms;
mod session;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http;

use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketIo, TransportType};
use socketioxide_core::adapter::DefinedAdapter;
use uuid::Uuid;

use crate::delivery::Cursor;
use crate::metrics::SocketCensus;
use crate::push::tab_room;
use crate::state::{AppState, WeakAppState};
pub use engine_requests::{Device, PendingUpgrades, DEVICE_COOKIE};
pub use session::{emit, emit_error, Session};

/// Attaches the gateway to the default namespace. With the Redis adapter
/// the result is a future that subscribes the namespace's channels.
pub fn register<A: Adapter + DefinedAdapter>(
    io: &SocketIo<A>,
    app: &AppState,
    pending: &PendingUpgrades,
) -> A::InitRes {
    let app = app.downgrade();
    let kicks = kicks::Kicks::default();
    let attach = move |s: SocketRef<A>| {
        let app = app.clone();
        let kicks = kicks.clone();
        async move { attach(&s, app, kicks) }
    };
    let pending = pending.clone();
    let on_connect = move |s: SocketRef<A>, auth: TryData<Value>| {
        let pending = pending.clone();
        async move { on_connect(s, auth, pending).await }
    };
    io.ns("/", on_connect.with(attach))
}

/// Drain (see `crate::drain`): saves where the socket stopped in its
/// user's log, then cuts its transport, so the client reconnects by itself
/// (to another node) and resumes from there. Cutting the TCP connection is
/// what makes a Socket.IO client reconnect: a server DISCONNECT packet
/// would make it stop for good ("io server disconnect").
pub async fn move_elsewhere<A: Adapter>(s: &SocketRef<A>, app: &AppState) {
    let Some(session) = s.extensions.get::<Arc<Session>>() else {
        cut_transport_of_handshake(s);
        return;
    };
    if let Some((user, place)) = session.cursor().place_to_leave() {
        session.leave_place(app, user, place).await;
    }
    session.cut_transport(s);
}

/// Cuts the connection the socket's handshake came on; false if there was
/// none to cut.
fn cut_transport_of_handshake<A: Adapter>(s: &SocketRef<A>) -> bool {
    match crate::connections::Peer::of(&s.req_parts().extensions) {
        Some(peer) => {
            peer.sever.sever();
            true
        }
        None => false,
    }
}

/// Saves every socket's place in its user's log now and then (see
/// `checkpoints`); runs until the application is gone.
pub fn keep_checkpoints<A: Adapter>(
    io: SocketIo<A>,
    app: &AppState,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    checkpoints::keep(io, app.downgrade())
}

/// The HTTP middleware that reads every request of an Engine.IO session
/// (see `engine_requests`), to put in front of the Socket.IO layer.
pub fn engine_request_layer<A: Adapter>(
    io: SocketIo<A>,
    app: &AppState,
    pending: PendingUpgrades,
) -> impl Fn(
    axum::extract::Request,
    axum::middleware::Next,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let app = app.downgrade();
    move |request, next| {
        Box::pin(engine_requests::handle(
            io.clone(),
            app.clone(),
            pending.clone(),
            request,
            next,
        ))
    }
}

/// Creates the socket's session and registers its handlers, before the
/// client is told it is connected.
///
/// Every event goes through one handler, `dispatch`, registered as
/// socketioxide's fallback. socketioxide keeps a map and a boxed handler
/// per registered event on every socket; one dispatcher keeps that to one
/// box, about half a KiB less per idle connection (docs/benchmarks.md), and
/// puts the event table in one `match`.
fn attach<A: Adapter>(
    s: &SocketRef<A>,
    app: WeakAppState,
    kicks: kicks::Kicks,
) -> Result<(), &'static str> {
    if kicks.is_kicked(s.id) {
        // A CONNECT again on a connection whose socket was kicked: no fresh
        // session (see `kicks`); the connection goes now.
        tracing::info!(socket_id = %s.id, "connect on a kicked connection refused");
        cut_transport_of_handshake(s);
        return Err("this connection was cut off");
    }
    let app = app.upgrade().ok_or("the server is shutting down")?;
    let cursor = Arc::new(Cursor::default());
    let device = s
        .req_parts()
        .extensions
        .get::<Device>()
        .map(|d| d.0.clone());
    let session = Arc::new(Session::new(
        &app,
        client_addr(s.req_parts(), &app.config().trusted_proxies),
        cursor.clone(),
        device,
        kicks,
    ));
    s.on_fallback({
        let session = session.clone();
        move |s: SocketRef<A>,
              Event(event): Event,
              TryData(data): TryData<Value>,
              ack: AckSender<A>| {
            let session = session.clone();
            async move { dispatch(session, s, event, data.ok(), ack).await }
        }
    });
    s.on_disconnect({
        let session = session.clone();
        move |s: SocketRef<A>, reason: DisconnectReason| {
            let session = session.clone();
            async move { session.disconnected(s, reason).await }
        }
    });
    s.extensions.insert(session);
    s.extensions.insert(cursor);
    Ok(())
}

/// Runs the handler of `event`, behind the socket's event rate limit.
/// Payloads arrive as raw JSON (`TryData<Value>`): a typed extractor that
/// failed to parse would skip the handler and leave the client unanswered.
async fn dispatch<A: Adapter>(
    session: Arc<Session>,
    s: SocketRef<A>,
    event: String,
    data: Option<Value>,
    ack: AckSender<A>,
) {
    // `event` logs itself, with its type, so that production logs can
    // leave out the high-rate in-between types.
    if event != "event" && tracing::enabled!(tracing::Level::DEBUG) {
        let user_id = session.bound_user(&s);
        let shown = shown_event(&event);
        tracing::debug!(socket_id = %s.id, user_id = ?user_id, event = %shown, "received");
    }
    let Some(ack) = session.admit(&s, ack) else {
        if let Some(app) = session.app() {
            app.metrics().rate_limited.inc();
        }
        return;
    };
    match event.as_str() {
        "initialConnection" => session.initial_connection(s, data, ack).await,
        "joinRoom" => rooms::join(&session, s, data, ack).await,
        "leaveRoom" => rooms::leave(s, data, ack).await,
        "event" => relay::relay(&session, s, data, ack).await,
        "typing" => relay::typing(&session, s, data, ack).await,
        "resume" => resume::resume_event(&session, s, data, ack).await,
        "getChats" => chats::get_chats(&session, s, data, ack).await,
        _ => unknown_event(&s, &event, ack),
    }
}

async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    TryData(handshake_auth): TryData<Value>,
    pending: PendingUpgrades,
) {
    tracing::debug!(socket_id = %s.id, transport = ?s.transport_type(), "socket connected");
    let Some(session) = s.extensions.get::<Arc<Session>>() else {
        tracing::error!(socket_id = %s.id, "socket has no session; disconnecting");
        if let Err(err) = s.disconnect() {
            tracing::debug!(error = %err, "socket already gone");
        }
        return;
    };
    give_tab_window_id(&s);
    session.handshake(&s, handshake_auth.ok()).await;
    // An upgrade that came before the socket was connected left its cookies.
    if let Some(carried) = pending.take(s.id) {
        session.carried(&s, carried).await;
    }
    session.enforce_auth_deadline(s);
}

/// Counts this node's sockets for `/metrics` when it is scraped: by
/// transport as they are now (after any upgrade), and those bound to a user
/// (the same test `bound_user` applies to every event), the distinct users
/// and the distinct rooms.
pub fn census<A: Adapter>(io: SocketIo<A>) -> impl Fn() -> SocketCensus + Send + Sync + 'static {
    move || {
        let mut census = SocketCensus::default();
        let mut users = std::collections::HashSet::new();
        let mut rooms = std::collections::HashSet::new();
        // Before the namespace is registered there is nothing to count
        // (and `io.sockets()` would panic).
        let sockets = io.of("/").map(|ns| ns.sockets()).unwrap_or_default();
        for s in sockets {
            match s.transport_type() {
                TransportType::Polling => census.polling += 1,
                TransportType::Websocket => census.websocket += 1,
            }
            let bound = s
                .extensions
                .get::<Arc<Session>>()
                .and_then(|session| session.bound_user(&s));
            if let Some(user) = bound {
                census.authenticated += 1;
                users.insert(user);
            }
            let own = s.id.as_str();
            rooms.extend(s.rooms().into_iter().filter(|room| room.as_ref() != own));
        }
        census.users = i64::try_from(users.len()).unwrap_or(i64::MAX);
        census.rooms = i64::try_from(rooms.len()).unwrap_or(i64::MAX);
        census
    }
}

/// Finds a user's sockets on every node (for the operator view):
/// `(socket id, socketioxide server id)` pairs.
pub type SocketDirectory = Arc<
    dyn Fn(Uuid) -> futures_util::future::BoxFuture<'static, Result<Vec<(String, String)>, String>>
        + Send
        + Sync,
>;

pub fn directory<A: Adapter>(io: SocketIo<A>) -> SocketDirectory {
    Arc::new(move |user: Uuid| {
        let io = io.clone();
        Box::pin(async move {
            let Some(ns) = io.of("/") else {
                return Ok(Vec::new());
            };
            let sockets = ns
                .to(crate::push::user_room(user))
                .fetch_sockets()
                .await
                .map_err(|err| err.to_string())?;
            Ok(sockets
                .iter()
                .map(|s| (s.data().id.to_string(), s.data().server_id.to_string()))
                .collect())
        })
    })
}

/// The client's address: the TCP peer, or, when the peer is a trusted
/// proxy, the nearest untrusted hop of its `X-Forwarded-For` (behind a load
/// balancer every peer is the balancer, and per-address limits would lump
/// everyone together). An untrusted peer's header is ignored: anyone can
/// write one.
pub fn client_addr(parts: &http::request::Parts, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = crate::connections::Peer::of(&parts.extensions)?.addr.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let hops: Vec<IpAddr> = forwarded
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    Some(
        hops.into_iter()
            .rev()
            .find(|hop| !trusted.contains(hop))
            .unwrap_or(peer),
    )
}

/// Every socket gets a random token of its own, so a web app can tell its
/// backend "this tab" and the backend can push to exactly that socket
/// (`BackgroundPush` with `tabWindowId`). 128 random bits: unguessable, so
/// knowing a user id is not enough to address someone else's tab.
fn give_tab_window_id<A: Adapter>(s: &SocketRef<A>) {
    let token = Uuid::new_v4().simple().to_string();
    s.join(tab_room(&token));
    emit(s, "tabWindowId", &token);
}

/// Silence is never an answer: an event the gateway does not know gets an
/// `error` event, and its ack (if one was asked for) gets `{ error }`.
fn unknown_event<A: Adapter>(s: &SocketRef<A>, event: &str, ack: AckSender<A>) {
    let shown = shown_event(event);
    let reason = format!("unknown event {shown:?}");
    tracing::debug!(socket_id = %s.id, event = %shown, "unknown event");
    emit_error(s, &reason);
    if let Err(err) = ack.send(&serde_json::json!({ "error": reason })) {
        tracing::debug!(socket_id = %s.id, error = %err, "could not ack unknown event");
    }
}

/// An event name as logs and error messages show it: the client picks it,
/// so at most its first 64 characters.
fn shown_event(event: &str) -> String {
    event.chars().take(64).collect()
}
