//! One plain WebSocket connection, from greeting to close: its reader loop
//! (limits, dispatch of each message) and its writer task.
//!
//! Everything a connection does is handled in order by one task, so a
//! `{ "type": "ping" }` sent after a `joinRoom` is answered after the join
//! took effect: clients (and tests) use it as a barrier.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use entity::now_ms;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::registry::{Handle, RegistryError};
use super::wire::{self, Inbound};
use super::Grant;
use crate::gateway::resume::parse_since;
use crate::limits::TokenBucket;
use crate::protocol::relay::{self as rules, RelayError};
use crate::rooms::{self, RoomError};
use crate::state::AppState;

/// Close codes, beside the standard 1003 (unsupported data), 1008 (policy)
/// and 1009 (too big).
pub mod close {
    pub const UNSUPPORTED: u16 = 1003;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    /// Not authenticated in time, or the binding was revoked.
    pub const UNAUTHORIZED: u16 = 4401;
    /// The path's room was refused.
    pub const FORBIDDEN: u16 = 4403;
    /// Nothing received for the idle deadline.
    pub const IDLE: u16 = 4408;
}

/// What the upgrade request settled before the WebSocket was accepted.
pub struct Accepted {
    /// The client's address, for the failed-authentication limit.
    pub addr: Option<IpAddr>,
    /// The room of `/ws/<room>`.
    pub path_room: Option<String>,
    pub durable: bool,
    /// Who it is, when the upgrade request said so (JWT, trusted header).
    pub identity: Option<(Uuid, Vec<Grant>)>,
}

struct Connection {
    app: AppState,
    handle: Arc<Handle>,
    addr: Option<IpAddr>,
    path_room: Option<String>,
    events: TokenBucket,
    refused_in_a_row: u32,
    failed_attempts: u32,
    user: Option<Uuid>,
    /// Rooms granted by the identity, with whether they may be published to.
    grants: Vec<Grant>,
    /// Set when the connection asked to be closed; the loop ends.
    closing: bool,
}

/// Serves one upgraded connection until it closes.
pub async fn serve(app: AppState, socket: WebSocket, accepted: Accepted) {
    let config = app.config();
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::channel(config.socket_buffer_packets);
    let writer = tokio::spawn(write_frames(sink, rx));
    let tab = Uuid::new_v4().simple().to_string();
    let handle = app.push().plain().add(tx, tab.clone(), accepted.durable);
    handle.send_json(&wire::greeting(&tab));
    let mut conn = Connection {
        events: TokenBucket::new(config.socket_events_per_sec, config.socket_events_burst),
        app: app.clone(),
        handle,
        addr: accepted.addr,
        path_room: accepted.path_room,
        refused_in_a_row: 0,
        failed_attempts: 0,
        user: None,
        grants: Vec::new(),
        closing: false,
    };
    if let Some((user, grants)) = accepted.identity {
        conn.grants = grants;
        conn.bind(user, false).await;
    }
    if !conn.closing {
        conn.read(stream).await;
    }
    conn.finish().await;
    // The writer ends once it has sent a close, or when every sender is gone.
    drop(conn);
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        tracing::debug!("plain connection writer did not finish in time");
    }
}

/// A connection's writer: sends what its handle queues, in order, and ends
/// after a close frame or a failed send. Shared by every plain WebSocket
/// endpoint (`/ws`, `/notes`).
pub(crate) async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Message>,
) {
    while let Some(message) = rx.recv().await {
        let closing = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() || closing {
            break;
        }
    }
}

impl Connection {
    fn send(&self, frame: &Value) {
        self.handle.send_json(frame);
    }

    fn error(&self, reason: &str) {
        self.send(&wire::error(reason));
    }

    fn close(&mut self, code: u16, reason: &str) {
        tracing::debug!(
            connection = self.handle.id,
            code,
            reason,
            "closing plain connection"
        );
        self.handle.close(code, reason);
        self.closing = true;
    }

    async fn read(&mut self, mut stream: futures_util::stream::SplitStream<WebSocket>) {
        let config = self.app.config();
        let idle = Duration::from_secs(config.plain_idle_timeout_secs);
        let auth_by = config.auth_deadline().map(|d| Instant::now() + d);
        while !self.closing {
            let idle_by = Instant::now() + idle;
            let until = match auth_by {
                Some(auth_by) if self.user.is_none() => idle_by.min(auth_by),
                _ => idle_by,
            };
            let next = tokio::time::timeout_at(until, stream.next()).await;
            let message = match next {
                Err(_elapsed) if self.user.is_none() && auth_by.is_some_and(|t| t <= until) => {
                    self.error("authentication deadline passed");
                    self.close(close::UNAUTHORIZED, "authentication deadline passed");
                    break;
                }
                Err(_elapsed) => {
                    self.close(close::IDLE, "idle");
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(err))) => {
                    // tungstenite's capacity error is the only read error a
                    // client can cause on purpose with a valid stream.
                    let text = err.to_string();
                    if text.contains("Space limit exceeded") {
                        self.close(close::TOO_BIG, "message too big");
                    } else {
                        tracing::debug!(connection = self.handle.id, error = %text, "plain connection read error");
                    }
                    break;
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    if self.admit() {
                        self.on_text(text.as_str()).await;
                    }
                }
                Message::Binary(_) => {
                    if self.admit() {
                        self.error("binary frames are not supported: send JSON text");
                    }
                }
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    /// The per-connection message rate (the Socket.IO event rate): over it a
    /// message is refused with an error; a connection that keeps flooding
    /// after being told is closed with 1008.
    fn admit(&mut self) -> bool {
        if self.events.try_take() {
            self.refused_in_a_row = 0;
            return true;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row == 1 {
            tracing::info!(connection = self.handle.id, "plain connection rate limited");
        }
        self.error("rate limited");
        if self.refused_in_a_row >= self.app.config().socket_events_burst {
            self.close(close::POLICY, "rate limited");
        }
        false
    }

    async fn on_text(&mut self, text: &str) {
        let inbound = match Inbound::parse(text) {
            Ok(inbound) => inbound,
            Err(err) => return self.error(&err.to_string()),
        };
        match inbound {
            Inbound::Ping => self.send(&wire::pong(now_ms())),
            Inbound::JoinRoom(room) => {
                if let Err(err) = self.join(Some(&room)).await {
                    self.room_error("joinRoom", &err);
                }
            }
            Inbound::LeaveRoom(room) => match rooms::parse_payload(Some(&room)) {
                Ok(room) => self.app.push().plain().leave(self.handle.id, &room.name()),
                Err(err) => self.room_error("leaveRoom", &err),
            },
            Inbound::Auth(fields) => self.authenticate(&fields).await,
            Inbound::Resume(fields) => self.resume(&fields).await,
            Inbound::Relay(fields) => self.relay(fields).await,
        }
    }

    fn room_error(&self, what: &str, err: &RoomError) {
        if let RoomError::Database(cause) = err {
            tracing::error!(connection = self.handle.id, error = %cause, "database error in room request");
            return self.error(&format!("{what}: internal error"));
        }
        self.error(&format!("{what}: {err}"));
    }

    /// `rooms::may_join` decides, as for Socket.IO; a room granted by the
    /// identity needs no other check, and keeps its read-only mark.
    async fn join(&mut self, payload: Option<&Value>) -> Result<(), RoomError> {
        let room = rooms::parse_payload(payload)?;
        let user = self.user.ok_or(RoomError::Unauthenticated)?;
        let name = room.name();
        let grant = self.grants.iter().find(|g| g.room == name);
        if grant.is_none() {
            rooms::may_join(self.app.db(), user, &room).await?;
        }
        let read_only = grant.is_some_and(|g| !g.publish);
        let max = self.app.config().max_rooms_per_socket;
        self.app
            .push()
            .plain()
            .join(self.handle.id, &name, read_only, max)
            .map_err(|err| match err {
                RegistryError::TooManyRooms(max) => RoomError::TooMany(max),
                RegistryError::TooManyConnections(_) => RoomError::TooMany(max),
            })
    }

    /// Binds the connection to `user`: it follows the user's push log from
    /// now (before it hears `auth_success`, so a push the client causes
    /// next reaches it), joins its granted rooms and its path room.
    async fn bind(&mut self, user: Uuid, in_band: bool) {
        let app = self.app.clone();
        let registry = app.push().plain();
        let mut position = self.handle.cursor().lock().await;
        let max = app.config().plain_max_connections_per_user;
        if let Err(err) = registry.bind(self.handle.id, user, max) {
            drop(position);
            let reason = err.to_string();
            if in_band {
                self.send(&wire::auth_failed(&reason));
            } else {
                self.error(&reason);
            }
            return self.close(close::POLICY, &reason);
        }
        self.user = Some(user);
        crate::gateway::resume::follow_from_now(&app, &mut position, user).await;
        if in_band {
            self.send(&wire::auth_success(&user.to_string()));
        }
        drop(position);
        app.presence().refresh(user).await;
        tracing::info!(connection = self.handle.id, user_id = %user, "plain connection authenticated");
        let max_rooms = app.config().max_rooms_per_socket;
        for grant in self.grants.clone() {
            if let Err(err) = registry.join(self.handle.id, &grant.room, !grant.publish, max_rooms)
            {
                self.error(&format!("joinRoom: {err}"));
            }
        }
        if let Some(room) = self.path_room.clone() {
            if let Err(err) = self.join(Some(&Value::String(room))).await {
                let reason = format!("joinRoom: {err}");
                self.error(&reason);
                self.close(close::FORBIDDEN, &reason);
            }
        }
    }

    /// In-band authentication (contract §2.4): the same authenticator, the
    /// same per-connection and per-address failure limits as
    /// `initialConnection`.
    async fn authenticate(&mut self, fields: &Value) {
        let app = self.app.clone();
        let max_failures = app.config().max_failed_auth_per_socket;
        if self.user.is_some() {
            // Clients repeat `auth`; a bound connection answers it again.
            if let Some(user) = self.user {
                self.send(&wire::auth_success(&user.to_string()));
            }
            return;
        }
        if self
            .addr
            .is_some_and(|addr| app.failed_auth().is_blocked(addr))
        {
            self.send(&wire::auth_failed(
                "too many failed authentication attempts from your address; try again later",
            ));
            return self.close(close::POLICY, "too many failed authentication attempts");
        }
        let outcome = match super::identity::in_band(&app, fields, self.addr).await {
            Ok((user, grants)) => {
                self.grants = grants;
                return self.bind(user, true).await;
            }
            Err(err) => err,
        };
        if outcome.counts() {
            app.failed_auth().record_failure(self.addr, None);
        }
        tracing::info!(connection = self.handle.id, reason = %outcome, "plain authentication refused");
        self.send(&wire::auth_failed(&outcome.to_string()));
        self.failed_attempts += 1;
        if self.failed_attempts >= max_failures {
            self.close(close::POLICY, "too many failed authentication attempts");
        }
    }

    /// `{ type: "resume", since }`: what the user's log holds after `since`,
    /// in the durable envelope.
    async fn resume(&mut self, fields: &Value) {
        let Some(user) = self.user else {
            return self.error("resume: authenticate first");
        };
        let since = match fields.get("since").map(parse_since) {
            Some(Ok(since)) => since,
            Some(Err(err)) => return self.error(&format!("resume: {err}")),
            None => return self.error("resume: since is missing"),
        };
        let app = self.app.clone();
        let max = app.config().resume_max_events;
        let mut position = self.handle.cursor().lock().await;
        let outbox: &Handle = &self.handle;
        match position
            .replay(app.push().log(), outbox, user, since, max)
            .await
        {
            Ok(replayed) => {
                app.metrics().pushes_replayed.inc_by(replayed.count as u64);
                if replayed.resync_from.is_some() {
                    app.metrics().resyncs.inc();
                }
            }
            Err(err) => {
                drop(position);
                self.error(&format!("resume: {err}"));
            }
        }
    }

    async fn relay(&mut self, fields: Value) {
        let Some(user) = self.user else {
            return self.error(&format!("event: {}", RelayError::Unauthenticated));
        };
        let app = self.app.clone();
        let registry = app.push().plain();
        let id = self.handle.id;
        let checked = rules::check(
            Some(fields),
            user,
            self.path_room.as_deref(),
            |room| registry.in_room(id, room),
            app.config(),
            now_ms(),
        )
        .and_then(|relay| {
            if registry.may_publish(id, &relay.room) {
                Ok(relay)
            } else {
                Err(RelayError::ReadOnly)
            }
        });
        match checked {
            Ok(relay) => {
                app.push()
                    .relay_to_rooms(&relay.room, &relay.event, Some(id))
                    .await;
            }
            // Superseded anyway: dropped without a word, as for Socket.IO.
            Err(RelayError::Stale) => {
                app.metrics().relay_stale_dropped.inc();
            }
            Err(err) => self.error(&format!("event: {err}")),
        }
    }

    /// Leaves the registry; presence learns the user may be gone.
    async fn finish(&mut self) {
        let registry = self.app.push().plain();
        if let Some(user) = registry.remove(self.handle.id) {
            self.app.presence().refresh(user).await;
        }
        tracing::debug!(connection = self.handle.id, user_id = ?self.user, "plain connection closed");
    }
}
