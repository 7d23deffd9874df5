//! One socket's view of who it is, and the `initialConnection` flow.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use entity::{now_ms, user};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::socket::DisconnectReason;
use socketioxide_core::adapter::Room;
use uuid::Uuid;

use crate::auth::{AuthError, Blocked, Credentials, CredentialsError};
use crate::limits::TokenBucket;
use crate::push::user_room;
use crate::state::{AppState, WeakAppState};

use super::handshake;

pub struct Session {
    /// Weak: see the module doc of `gateway` (the socket layer lives inside
    /// the state; a strong reference back would be a cycle).
    app: WeakAppState,
    max_failed_auth: u32,
    auth_deadline: Option<Duration>,
    /// The client's address (see `gateway::client_addr`), for the
    /// per-address failure limit.
    addr: Option<IpAddr>,
    events: TokenBucket,
    /// Events refused in a row by the rate limit; a socket that keeps
    /// flooding after being told is disconnected.
    refused_in_a_row: AtomicU32,
    flood_limit: u32,
    /// The user this socket authenticated as. A std mutex: it is only ever
    /// held for a read or a write, never across an `.await`.
    user: Mutex<Option<Uuid>>,
    failed_attempts: AtomicU32,
    /// Set once the socket has failed too often; it is disconnected right
    /// after its answer is queued.
    cut_off: AtomicBool,
    /// Serializes authentication attempts of this one socket, so two
    /// `initialConnection`s in flight cannot interleave their bind/unbind.
    auth_turn: tokio::sync::Mutex<()>,
    /// Ends the authentication-deadline task when the socket disconnects.
    /// Without it a closed socket was kept whole, by the task sleeping out
    /// the rest of its deadline.
    deadline_lifted: tokio::sync::Notify,
}

/// What one authentication attempt came to.
enum Outcome {
    Bound(Uuid),
    Refused(String),
    Denied,
    /// The client address has failed too often; nothing was verified.
    AddressBlocked,
    /// Attempts at this user have failed too often; nothing was verified.
    UserBlocked,
    Failed,
}

impl Session {
    pub fn new(app: &AppState, addr: Option<IpAddr>) -> Self {
        let config = app.config();
        Self {
            app: app.downgrade(),
            max_failed_auth: config.max_failed_auth_per_socket,
            auth_deadline: config.auth_deadline(),
            addr,
            events: TokenBucket::new(config.socket_events_per_sec, config.socket_events_burst),
            refused_in_a_row: AtomicU32::new(0),
            flood_limit: config.socket_events_burst,
            user: Mutex::new(None),
            failed_attempts: AtomicU32::new(0),
            cut_off: AtomicBool::new(false),
            auth_turn: tokio::sync::Mutex::new(()),
            deadline_lifted: tokio::sync::Notify::new(),
        }
    }

    /// The application, unless it is shutting down.
    pub fn app(&self) -> Option<AppState> {
        self.app.upgrade()
    }

    /// Lets an event through if the socket is within its rate. Otherwise it
    /// answers `error` `rate limited` (and the ack with `{ error }`), and
    /// disconnects a socket that goes on flooding: returns `None` then.
    pub fn admit<A: Adapter>(&self, s: &SocketRef<A>, ack: AckSender<A>) -> Option<AckSender<A>> {
        if self.events.try_take() {
            self.refused_in_a_row.store(0, Ordering::Relaxed);
            return Some(ack);
        }
        let refused = self.refused_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if refused == 1 {
            tracing::info!(socket_id = %s.id, "rate limited");
        }
        emit_error(s, "rate limited");
        if let Err(err) = ack.send(&serde_json::json!({ "error": "rate limited" })) {
            tracing::debug!(socket_id = %s.id, error = %err, "could not ack a refused event");
        }
        if refused >= self.flood_limit {
            tracing::warn!(socket_id = %s.id, refused, "socket keeps flooding, disconnecting");
            if let Err(err) = s.clone().disconnect() {
                tracing::debug!(socket_id = %s.id, error = %err, "socket already gone");
            }
        }
        None
    }

    /// The user this socket acts for, if it is still bound. Membership of the
    /// user's room is the binding: the push service revokes a user's sockets
    /// (on any node) by making them leave it.
    pub fn bound_user<A: Adapter>(&self, s: &SocketRef<A>) -> Option<Uuid> {
        self.bound_user_among(&s.rooms())
    }

    /// `bound_user`, given the socket's rooms already read, for handlers
    /// that need them anyway (`s.rooms()` builds a new list each call).
    pub fn bound_user_among(&self, rooms: &[Room]) -> Option<Uuid> {
        let user = (*self.user.lock().unwrap_or_else(|p| p.into_inner()))?;
        let room = user_room(user);
        rooms.iter().any(|r| *r == room).then_some(user)
    }

    /// The `initialConnection` event. Every attempt is answered: `auth`
    /// true/false, the ack (if asked for) with the same boolean, and an
    /// `error` event saying what was wrong with a malformed payload.
    pub async fn initial_connection<A: Adapter>(
        &self,
        s: SocketRef<A>,
        data: Option<Value>,
        ack: AckSender<A>,
    ) {
        let credentials = match &data {
            Some(value) => Credentials::from_json(value),
            None => Err(CredentialsError::NotAnObject),
        };
        let authenticated = self.attempt(&s, credentials).await;
        if let Err(err) = ack.send(&authenticated) {
            tracing::debug!(socket_id = %s.id, error = %err, "could not send initialConnection ack");
        }
        self.disconnect_if_cut_off(&s);
    }

    /// Credentials that came with the handshake (the `auth` object or
    /// cookies): the same flow, answered with `auth` right after connect.
    /// A handshake without credentials is answered with nothing.
    pub async fn handshake<A: Adapter>(&self, s: &SocketRef<A>, auth: Option<Value>) {
        let Some(app) = self.app() else { return };
        if let Some(credentials) =
            handshake::credentials(s.req_parts(), auth.as_ref(), app.config())
        {
            self.attempt(s, credentials).await;
            self.disconnect_if_cut_off(s);
        }
    }

    async fn attempt<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        credentials: Result<Credentials, CredentialsError>,
    ) -> bool {
        let _turn = self.auth_turn.lock().await;
        let Some(app) = self.app() else {
            emit_error(s, "the server is shutting down");
            emit(s, "auth", &false);
            return false;
        };
        let limit = self.max_failed_auth;
        if self.failed_attempts.load(Ordering::Relaxed) >= limit {
            emit(s, "auth", &false);
            return self.too_many_failures(s);
        }
        let blocked = self
            .addr
            .is_some_and(|addr| app.failed_auth().is_blocked(addr));
        let outcome = match credentials {
            _ if blocked => {
                self.unbind(&app, s).await;
                Outcome::AddressBlocked
            }
            Err(reason) => {
                self.unbind(&app, s).await;
                Outcome::Refused(format!("invalid credentials: {reason}"))
            }
            Ok(credentials) => self.bind(&app, s, &credentials).await,
        };
        // Wrong secrets are recorded by the authenticator; malformed
        // credentials never reach it.
        if matches!(outcome, Outcome::Refused(_)) {
            app.failed_auth().record_failure(self.addr, None);
        }
        // The socket keeps only the rooms its (new) identity may hold.
        let now_bound = match &outcome {
            Outcome::Bound(user) => Some(*user),
            _ => None,
        };
        super::rooms::prune(s, &app, now_bound).await;
        let authenticated = match outcome {
            Outcome::Bound(user_id) => {
                tracing::info!(socket_id = %s.id, user_id = %user_id, "socket authenticated");
                true
            }
            Outcome::Refused(reason) => {
                tracing::info!(socket_id = %s.id, reason, "malformed credentials");
                emit_error(s, &reason);
                false
            }
            Outcome::Denied => {
                tracing::info!(socket_id = %s.id, "wrong credentials");
                false
            }
            Outcome::AddressBlocked => {
                tracing::warn!(socket_id = %s.id, addr = ?self.addr, "authentication refused: too many failures from this address");
                emit_error(
                    s,
                    "too many failed authentication attempts from your address; try again later",
                );
                false
            }
            Outcome::UserBlocked => {
                emit_error(
                    s,
                    "too many failed authentication attempts for this user; try again later",
                );
                false
            }
            Outcome::Failed => {
                emit_error(s, "authentication is unavailable, try again later");
                false
            }
        };
        emit(s, "auth", &authenticated);
        if authenticated {
            self.failed_attempts.store(0, Ordering::Relaxed);
        } else if self.failed_attempts.fetch_add(1, Ordering::Relaxed) + 1 >= limit {
            return self.too_many_failures(s);
        }
        authenticated
    }

    /// Drops any previous binding, verifies, then binds the socket to the
    /// user. Presence is settled once at the end, so re-authenticating as
    /// the same user is not seen as going offline and back.
    async fn bind<A: Adapter>(
        &self,
        app: &AppState,
        s: &SocketRef<A>,
        credentials: &Credentials,
    ) -> Outcome {
        let previous = self.release(app, s).await;
        let outcome = self.verify_and_bind(app, s, credentials).await;
        let now = match outcome {
            Outcome::Bound(user) => Some(user),
            _ => None,
        };
        if let Some(user) = now {
            app.presence().refresh(user).await;
        }
        if let Some(user) = previous.filter(|p| Some(*p) != now) {
            app.presence().refresh(user).await;
        }
        outcome
    }

    async fn verify_and_bind<A: Adapter>(
        &self,
        app: &AppState,
        s: &SocketRef<A>,
        credentials: &Credentials,
    ) -> Outcome {
        let user = match app.auth().authenticate(credentials, self.addr).await {
            Ok(user) => user,
            Err(AuthError::Rejected) => return Outcome::Denied,
            Err(AuthError::TooManyFailures(Blocked::Address)) => return Outcome::AddressBlocked,
            Err(AuthError::TooManyFailures(Blocked::User)) => return Outcome::UserBlocked,
            Err(err) => {
                tracing::error!(socket_id = %s.id, error = %err, "authentication failed");
                return Outcome::Failed;
            }
        };
        let sid = s.id.to_string();
        let stored = user::Entity::update_many()
            .col_expr(user::Column::SocketId, Some(sid.clone()).into())
            .col_expr(user::Column::LastSeenAt, now_ms().into())
            .filter(user::Column::Id.eq(user.id))
            .exec(app.db())
            .await;
        if let Err(err) = stored {
            tracing::error!(socket_id = %s.id, user_id = %user.id, error = %err, "could not store socket id");
            return Outcome::Failed;
        }
        *self.user.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.id);
        s.join(user_room(user.id));
        // The socket may have gone while we verified: then the disconnect
        // handler ran before the binding existed, and it is ours to undo.
        if !s.connected() {
            self.release(app, s).await;
            return Outcome::Failed;
        }
        Outcome::Bound(user.id)
    }

    /// Forgets the user of this socket and settles their presence.
    async fn unbind<A: Adapter>(&self, app: &AppState, s: &SocketRef<A>) {
        if let Some(user) = self.release(app, s).await {
            app.presence().refresh(user).await;
        }
    }

    /// Leaves the user's room and clears `users.socket_id` if (and only if)
    /// it still names this socket. Returns the user it was bound to; their
    /// presence is the caller's to settle.
    async fn release<A: Adapter>(&self, app: &AppState, s: &SocketRef<A>) -> Option<Uuid> {
        let user_id = self.user.lock().unwrap_or_else(|p| p.into_inner()).take()?;
        s.leave(user_room(user_id));
        clear_socket_id(app, s, user_id).await;
        Some(user_id)
    }

    pub async fn disconnected<A: Adapter>(&self, s: SocketRef<A>, reason: DisconnectReason) {
        self.deadline_lifted.notify_one();
        let user_id = *self.user.lock().unwrap_or_else(|p| p.into_inner());
        tracing::debug!(socket_id = %s.id, user_id = ?user_id, ?reason, "socket disconnected");
        match self.app() {
            Some(app) => self.unbind(&app, &s).await,
            // Shutting down: the row keeps its socket id until that user's
            // next connection replaces it.
            None => drop(self.user.lock().unwrap_or_else(|p| p.into_inner()).take()),
        }
    }

    /// Tells the socket why and marks it to be cut off. Returns the answer
    /// for the attempt's ack (false). The disconnect itself waits until the
    /// ack is queued (`disconnect_if_cut_off`): disconnecting first would
    /// leave the client's callback unanswered.
    fn too_many_failures<A: Adapter>(&self, s: &SocketRef<A>) -> bool {
        tracing::warn!(socket_id = %s.id, "too many failed authentication attempts, disconnecting");
        emit_error(s, "too many failed authentication attempts");
        self.cut_off.store(true, Ordering::Relaxed);
        false
    }

    fn disconnect_if_cut_off<A: Adapter>(&self, s: &SocketRef<A>) {
        if self.cut_off.load(Ordering::Relaxed) {
            if let Err(err) = s.clone().disconnect() {
                tracing::debug!(socket_id = %s.id, error = %err, "socket already gone");
            }
        }
    }

    /// A socket that never authenticates would otherwise hold its slot
    /// forever (socketioxide's `connect_timeout` covers only the CONNECT
    /// packet). It is told why, then disconnected. The deadline is checked
    /// once, at its time (docs/protocol.md, 2.6): a socket that authenticated
    /// but was unbound again before then is disconnected too.
    pub fn enforce_auth_deadline<A: Adapter>(self: std::sync::Arc<Self>, s: SocketRef<A>) {
        let Some(deadline) = self.auth_deadline else {
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(deadline) => {}
                () = self.deadline_lifted.notified() => return,
            }
            if s.connected() && self.bound_user(&s).is_none() {
                tracing::info!(socket_id = %s.id, "authentication deadline passed, disconnecting");
                emit_error(&s, "authentication deadline passed");
                if let Err(err) = s.disconnect() {
                    tracing::debug!(error = %err, "socket already gone");
                }
            }
        });
    }
}

pub fn emit<A: Adapter, T: serde::Serialize + ?Sized>(s: &SocketRef<A>, event: &str, payload: &T) {
    if let Err(err) = s.emit(event, payload) {
        tracing::warn!(socket_id = %s.id, event, error = %err, "emit to socket failed");
    }
}

/// The `error` event of the contract: `{ error: "<reason>" }`.
pub fn emit_error<A: Adapter>(s: &SocketRef<A>, reason: &str) {
    emit(s, "error", &json!({ "error": reason }));
}

/// Clears `users.socket_id` if (and only if) it still names this socket: a
/// newer socket of the same user may have written its own id since.
async fn clear_socket_id<A: Adapter>(app: &AppState, s: &SocketRef<A>, user_id: Uuid) {
    let cleared = user::Entity::update_many()
        .col_expr(user::Column::SocketId, Option::<String>::None.into())
        .col_expr(user::Column::LastSeenAt, now_ms().into())
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::SocketId.eq(s.id.to_string()))
        .exec(app.db())
        .await;
    if let Err(err) = cleared {
        tracing::error!(socket_id = %s.id, user_id = %user_id, error = %err, "could not clear socket id");
    }
}
