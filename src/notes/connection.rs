//! One note-sync connection: greeting, authentication deadline, keep-alive,
//! and the message pipeline in the contract's order (docs/protocol.md,
//! "Note sync" §4): size, rate, JSON, envelope, then dispatch by `type`.
//! The connection stays open after every error.
//!
//! One task handles a connection's messages in order, so a `ping` sent
//! after a `note_update` is answered after the update was stored and its
//! `note_sync` sent: tests use it as a barrier.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use entity::now_ms;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;
use uuid::Uuid;

use super::envelope::{self, NonceMemory, SessionKeys, Signed};
use super::rate::MessageWindow;
use super::wire::{self, AuthFailure, NoteError};
use crate::auth::jwt::JwtError;
use crate::auth::outside;
use crate::plain::{self, Handle};
use crate::state::AppState;

/// Frames larger than this are answered `Message too large` (and not
/// counted by the rate limit); the connection stays open.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// What the WebSocket layer reads at all: past this a frame cannot be
/// answered, and the connection is closed with 1009.
pub const MAX_READ_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// Who a connection is, once `auth` succeeded.
pub(super) struct Session {
    /// The Tidings user (the push service's address).
    pub user: Uuid,
    /// The token's user claim, as the client knows it (`userId`).
    pub user_id: String,
    /// The token of the last `auth`: the secrets are derived from it.
    token: String,
    /// The `sessionSecret` of the last `auth_success`.
    secret: String,
}

pub(super) struct Connection {
    pub app: AppState,
    pub handle: Arc<Handle>,
    /// This connection's tab: the push service leaves it out of the syncs
    /// it caused.
    pub tab: String,
    addr: Option<IpAddr>,
    messages: MessageWindow,
    nonces: NonceMemory,
    pub session: Option<Session>,
    closing: bool,
}

/// Where the user's last notes connection stopped in their log. The notes
/// app's client sends no `seq`, so a device that comes back with no other
/// connection of the user open anywhere picks up there (the rule Socket.IO
/// sockets follow with their own key, `gateway::resume`): syncs made while
/// it was away are not lost.
const LAST_NOTES_CONNECTION: &str = "last-notes-connection";

/// Serves one upgraded connection until it closes.
#[tracing::instrument(name = "notes_connection", skip_all, fields(connection))]
pub async fn serve(app: AppState, socket: WebSocket, addr: Option<IpAddr>) {
    let config = app.config();
    let (sink, stream) = socket.split();
    let (tx, rx) = mpsc::channel(config.socket_buffer_packets);
    let writer = tokio::spawn(plain::write_frames(sink, rx));
    let tab = Uuid::new_v4().simple().to_string();
    let handle = app.push().plain().add(tx, tab.clone(), false);
    tracing::Span::current().record("connection", handle.id);
    handle.send_json(&wire::greeting());
    let per_minute = config.notes_messages_per_minute;
    let mut conn = Connection {
        messages: MessageWindow::new(per_minute),
        // Nothing younger than 5 min can be forgotten within the rate limit.
        nonces: NonceMemory::new(per_minute.saturating_mul(5)),
        app: app.clone(),
        handle,
        tab,
        addr,
        session: None,
        closing: false,
    };
    conn.read(stream).await;
    conn.finish().await;
    drop(conn);
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        tracing::debug!("notes connection writer did not finish in time");
    }
}

impl Connection {
    pub fn send(&self, frame: &Value) {
        self.handle.send_json(frame);
    }

    fn refuse(&self, err: &NoteError) {
        if let NoteError::Database(cause) = err {
            tracing::error!(error = %cause, "note store failed");
        }
        self.send(&err.frame());
    }

    fn close(&mut self, code: u16, reason: &str) {
        tracing::debug!(code, reason, "closing notes connection");
        self.handle.close(code, reason);
        self.closing = true;
    }

    async fn read(&mut self, mut stream: futures_util::stream::SplitStream<WebSocket>) {
        let config = self.app.config();
        let auth_by = Instant::now() + Duration::from_secs(config.notes_auth_timeout_secs);
        // The app sends nothing while its user reads; a WebSocket ping (which
        // browsers answer on their own) tells a live client from a dead
        // TCP connection, which would otherwise hold a connection slot.
        let silence = Duration::from_secs(config.plain_idle_timeout_secs);
        let mut keepalive = tokio::time::interval(silence / 4);
        keepalive.reset();
        let mut heard = Instant::now();
        while !self.closing {
            let deadline = if self.session.is_none() {
                auth_by
            } else {
                Instant::now() + Duration::from_secs(86_400)
            };
            let next = tokio::select! {
                next = stream.next() => next,
                _ = tokio::time::sleep_until(deadline) => {
                    self.refuse(&NoteError::AuthTimeout);
                    self.close(plain::close::UNAUTHORIZED, "authentication timeout");
                    break;
                }
                _ = keepalive.tick() => {
                    if heard.elapsed() >= silence {
                        self.close(plain::close::IDLE, "idle");
                        break;
                    }
                    if self.handle_ping() {
                        continue;
                    }
                    break;
                }
            };
            heard = Instant::now();
            let message = match next {
                None => break,
                Some(Err(err)) => {
                    let text = err.to_string();
                    if text.contains("Space limit exceeded") {
                        self.close(plain::close::TOO_BIG, "message too big");
                    } else {
                        tracing::debug!(error = %text, "notes connection read error");
                    }
                    break;
                }
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) => self.on_frame(text.len(), Some(text.as_str())).await,
                Message::Binary(bytes) => self.on_frame(bytes.len(), None).await,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    fn handle_ping(&self) -> bool {
        self.handle.ping()
    }

    /// Steps 1 to 3 of the pipeline, then the envelope and dispatch.
    async fn on_frame(&mut self, len: usize, text: Option<&str>) {
        if len > MAX_MESSAGE_BYTES {
            return self.refuse(&NoteError::TooLarge);
        }
        if !self.messages.admit(Instant::now()) {
            return self.refuse(&NoteError::RateLimited);
        }
        let Some(text) = text else {
            return self.refuse(&NoteError::InvalidFormat);
        };
        // serde_json stops at 128 levels: a 10,000-deep document is a parse
        // error here, not a stack overflow.
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(text) else {
            return self.refuse(&NoteError::InvalidFormat);
        };
        let message = if fields.get("signature").is_some_and(|s| !s.is_null()) {
            match self.open_envelope(text) {
                Ok(message) => message,
                Err(err) => return self.refuse(&err),
            }
        } else {
            Value::Object(fields)
        };
        if let Err(err) = self.dispatch(message).await {
            self.refuse(&err);
        }
    }

    /// The signed message inside `text`, if it verifies (§3). Before
    /// authentication only a signed `auth` is let through, on its time
    /// bounds and nonce: the JWT inside is then what is checked.
    fn open_envelope(&mut self, text: &str) -> Result<Value, NoteError> {
        let now = now_ms();
        let signed = Signed::parse(text).map_err(|err| {
            tracing::info!(reason = %err, "signed message refused");
            NoteError::Signature
        })?;
        let payload = signed.payload().map_err(|_| NoteError::InvalidFormat)?;
        let checked = match &self.session {
            Some(session) => signed.verify(
                SessionKeys {
                    token: &session.token,
                    user_id: &session.user_id,
                    current: &session.secret,
                },
                &mut self.nonces,
                now,
            ),
            None if payload.get("type").and_then(Value::as_str) == Some("auth") => {
                signed.verify_unkeyed(&mut self.nonces, now)
            }
            None => Err(envelope::EnvelopeError::NoSecret),
        };
        checked.map_err(|err| {
            tracing::info!(reason = %err, "signed message refused");
            NoteError::Signature
        })?;
        Ok(payload)
    }

    async fn dispatch(&mut self, message: Value) -> Result<(), NoteError> {
        let Value::Object(fields) = message else {
            return Err(NoteError::InvalidFormat);
        };
        let kind = fields
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match kind.as_str() {
            "ping" => {
                self.send(&wire::pong(now_ms()));
                Ok(())
            }
            "auth" => {
                self.authenticate(fields.get("token")).await;
                Ok(())
            }
            "note_update" if self.session.is_none() => Err(NoteError::AuthenticationRequired),
            // Ignored before authentication (contract §4).
            "join_note" | "leave_note" | "note_created" | "note_deleted" | "folder_created"
            | "folder_updated" | "folder_deleted"
                if self.session.is_none() =>
            {
                Ok(())
            }
            "join_note" => self.join_note(&fields).await,
            "leave_note" => self.leave_note(&fields),
            "note_update" => self.note_update(&fields).await,
            "note_created" => self.note_created(&fields).await,
            "note_deleted" => self.note_deleted(&fields).await,
            "folder_created" => self.folder_created(&fields).await,
            "folder_updated" => self.folder_updated(&fields).await,
            "folder_deleted" => self.folder_deleted(&fields).await,
            _ => Err(NoteError::UnknownType),
        }
    }

    /// `{ type: "auth", token }` (§2), also on an authenticated connection:
    /// the client sends it twice on every connect, and again with a fresh
    /// token; each success answers with the secret of the new token.
    async fn authenticate(&mut self, token: Option<&Value>) {
        let app = self.app.clone();
        if self
            .addr
            .is_some_and(|addr| app.failed_auth().is_blocked(addr))
        {
            tracing::info!("notes authentication refused: address blocked");
            return self.auth_failed(AuthFailure::Failed);
        }
        let Some(token) = token.and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            app.failed_auth().record_failure(self.addr, None);
            return self.auth_failed(AuthFailure::Failed);
        };
        let Some(verifier) = app.auth().jwt() else {
            tracing::warn!("notes authentication needs JWT keys (--jwt-*)");
            return self.auth_failed(AuthFailure::Failed);
        };
        let claims = match verifier.verify(token) {
            Ok(claims) => claims,
            Err(err) => {
                app.failed_auth().record_failure(self.addr, None);
                tracing::info!(reason = %err, "notes authentication refused");
                let why = if err == JwtError::Expired {
                    AuthFailure::Expired
                } else {
                    AuthFailure::Failed
                };
                return self.auth_failed(why);
            }
        };
        let user = match outside::ensure_user(app.db(), &claims.user).await {
            Ok(user) => user,
            Err(err) => {
                tracing::info!(error = %err, "notes authentication refused");
                return self.auth_failed(AuthFailure::Failed);
            }
        };
        let first = self.session.as_ref().map(|s| s.user) != Some(user);
        // Asked before this connection counts as the user's: "alone" must
        // not be answered by itself.
        let alone = first
            && !app
                .presence()
                .online(&[user])
                .await
                .first()
                .copied()
                .unwrap_or(false);
        let registry = app.push().plain();
        let mut position = self.handle.cursor().lock().await;
        let max = app.config().notes_max_connections_per_user;
        if registry.bind(self.handle.id, user, max).is_err() {
            drop(position);
            tracing::info!(user_id = %user, max, "notes connection over the per-user cap");
            self.refuse(&NoteError::TooManyConnections);
            return self.close(plain::close::POLICY, "too many connections");
        }
        let catch_up = if alone {
            crate::gateway::resume::take_saved_place(&app, user, LAST_NOTES_CONNECTION).await
        } else {
            None
        };
        if first && catch_up.is_none() {
            // Follows the user's log from now, before it hears
            // `auth_success`, so a sync caused next reaches it.
            crate::gateway::resume::follow_from_now(&app, &mut position, user).await;
        }
        let secret = envelope::session_secret(token, &claims.user, now_ms());
        self.send(&wire::auth_success(&claims.user, &secret));
        if let Some(since) = catch_up {
            // After `auth_success`, as the client expects; live syncs wait
            // on the held position meanwhile and follow in order.
            let outbox: &Handle = &self.handle;
            let max = app.config().resume_max_events;
            match position
                .replay(app.push().log(), outbox, user, since, max)
                .await
            {
                Ok(replayed) => {
                    app.metrics().pushes_replayed.inc_by(replayed.count as u64);
                    tracing::debug!(user_id = %user, since, count = replayed.count, "notes device caught up");
                }
                Err(err) => {
                    tracing::warn!(user_id = %user, error = %err, "notes device not caught up; following from the next push");
                    position.follow(user, None);
                }
            }
        }
        drop(position);
        self.session = Some(Session {
            user,
            user_id: claims.user,
            token: token.to_owned(),
            secret,
        });
        if first {
            app.presence().refresh(user).await;
            tracing::info!(user_id = %user, "notes connection authenticated");
        }
    }

    /// `auth_failed`, then the connection is closed (§2).
    fn auth_failed(&mut self, why: AuthFailure) {
        self.send(&wire::auth_failed(why));
        self.close(plain::close::UNAUTHORIZED, "authentication failed");
    }

    async fn finish(&mut self) {
        if let Some((user, seq)) = self.handle.cursor().place_to_leave() {
            let log = self.app.push().log();
            if let Err(err) = log
                .save_device_cursor(user, LAST_NOTES_CONNECTION, seq)
                .await
            {
                tracing::warn!(user_id = %user, error = %err, "could not save where a notes connection stopped");
            }
        }
        if let Some(user) = self.app.push().plain().remove(self.handle.id) {
            self.app.presence().refresh(user).await;
        }
        tracing::debug!("notes connection closed");
    }
}
