//! One socket's view of who it is, and the `initialConnection` flow.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
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
use crate::delivery::{Cursor, Position};
use crate::limits::TokenBucket;
use crate::push::user_room;
use crate::state::{AppState, WeakAppState};

use super::engine_requests::Carried;
use super::handshake;
use super::resume::{self, Start};

/// Server-side authentication failures tried again before `auth` false:
/// 0.25 s, 0.5 s, 1 s, 2 s (±50 %), about 4 s in all, well inside the
/// authentication deadline.
const TRANSIENT_RETRIES: u32 = 4;
const TRANSIENT_RETRY_FIRST: Duration = Duration::from_millis(250);

/// Runs `attempt`, and again after a growing pause while its failure is
/// `transient` (the server's own, e.g. the database pool exhausted by a
/// reconnect storm) and the socket is still there; see
/// `Session::authenticate_patiently`.
async fn patiently<
    A: Adapter,
    T,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<T, E>>,
>(
    s: &SocketRef<A>,
    mut attempt: impl FnMut() -> F,
    transient: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let mut pause = TRANSIENT_RETRY_FIRST;
    for _ in 0..TRANSIENT_RETRIES {
        match attempt().await {
            Err(err) if transient(&err) && s.connected() => {
                tracing::warn!(socket_id = %s.id, error = %err, retry_in_ms = pause.as_millis() as u64, "authentication failed on the server's side; trying again");
                tokio::time::sleep(jittered(pause)).await;
                pause *= 2;
            }
            result => return result,
        }
    }
    attempt().await
}

/// A pause spread over ½–1½ of itself, so sockets that failed together do
/// not come back together.
fn jittered(pause: Duration) -> Duration {
    use rand::Rng;
    pause.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
}

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
    /// This socket's place in its user's push log (also in the socket's
    /// extensions, where the push service finds it).
    cursor: Arc<Cursor>,
    /// The browser this socket is, by its device cookie: where it stops is
    /// where it resumes after a reconnect.
    device: Mutex<Option<String>>,
    /// The connection of the session's WebSocket upgrade, when it came on
    /// another connection than the handshake (long-polling first): cut with
    /// it when the socket is made to reconnect (see `cut_transport`).
    upgraded_on: Mutex<Option<crate::connections::Sever>>,
    /// Where a kick is recorded, so that the connection cannot start over.
    kicks: super::kicks::Kicks,
}

/// What a socket signs in with: its Tidings id and secret, or a JWT from an
/// outside identity provider (`{ token }`, docs/protocol.md §10.4; the
/// token's `rooms` claim applies to plain connections only).
pub enum Proof {
    Secret(Credentials),
    Token(String),
}

impl Proof {
    /// `{ token }` or `{ id, secretkey }` from a client's JSON.
    pub fn from_json(value: &Value) -> Result<Self, CredentialsError> {
        match value.get("token") {
            Some(Value::String(token)) => Ok(Self::Token(token.clone())),
            Some(_) => Err(CredentialsError::NotAnObject),
            None => Credentials::from_json(value).map(Self::Secret),
        }
    }
}

/// What one authentication attempt came to.
enum Outcome {
    Bound(Uuid, Start),
    Refused(String),
    Denied,
    /// The client address has failed too often; nothing was verified.
    AddressBlocked,
    /// Attempts at this user have failed too often; nothing was verified.
    UserBlocked,
    Failed,
}

impl Session {
    pub fn new(
        app: &AppState,
        addr: Option<IpAddr>,
        cursor: Arc<Cursor>,
        device: Option<String>,
        kicks: super::kicks::Kicks,
    ) -> Self {
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
            cursor,
            device: Mutex::new(device),
            upgraded_on: Mutex::new(None),
            kicks,
        }
    }

    /// Disconnects the socket for good: its Engine.IO connection may not
    /// CONNECT again and is cut after a grace (see `kicks`), so flooding,
    /// failed attempts and the deadline cannot be reset by a re-CONNECT.
    pub fn kick<A: Adapter>(&self, s: &SocketRef<A>) {
        let mut connections: Vec<_> = crate::connections::Peer::of(&s.req_parts().extensions)
            .map(|peer| peer.sever.clone())
            .into_iter()
            .collect();
        if let Some(upgraded) = self
            .upgraded_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            connections.push(upgraded);
        }
        self.kicks.kick(s.id, connections);
        if let Err(err) = s.clone().disconnect() {
            tracing::debug!(socket_id = %s.id, error = %err, "socket already gone");
        }
    }

    /// Cuts the socket's transport at the TCP level (see `connections`):
    /// the connection of its handshake and that of its WebSocket upgrade.
    /// The client sees its transport close and reconnects by itself. A
    /// long-polling session whose requests come on other connections is
    /// left to the next close of the whole server or its heartbeat.
    pub fn cut_transport<A: Adapter>(&self, s: &SocketRef<A>) {
        let upgraded = self
            .upgraded_on
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(sever) = &upgraded {
            sever.sever();
        }
        if !super::cut_transport_of_handshake(s) && upgraded.is_none() {
            tracing::debug!(socket_id = %s.id, "no connection to cut: disconnecting instead");
            if let Err(err) = s.clone().disconnect() {
                tracing::debug!(socket_id = %s.id, error = %err, "socket already gone");
            }
        }
    }

    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    pub fn device(&self) -> Option<String> {
        self.device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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
            self.kick(s);
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
            Some(value) => Proof::from_json(value),
            None => Err(CredentialsError::NotAnObject),
        };
        let authenticated = self.attempt(&s, credentials, None).await;
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
        let since = match auth.as_ref().and_then(|auth| auth.get("since")) {
            Some(since) => match resume::parse_since(since) {
                Ok(since) => Some(since),
                Err(reason) => {
                    emit_error(s, &format!("resume: {reason}"));
                    None
                }
            },
            None => None,
        };
        // A JWT in the `auth` object wins; otherwise id/secret or cookies.
        let token = match auth.as_ref() {
            Some(auth) if auth.get("token").is_some() => Some(Proof::from_json(auth)),
            _ => None,
        };
        let credentials = token.or_else(|| {
            handshake::credentials(s.req_parts(), auth.as_ref(), app.config())
                .map(|found| found.map(Proof::Secret))
        });
        if let Some(credentials) = credentials {
            self.attempt(s, credentials, since).await;
            self.disconnect_if_cut_off(s);
        }
    }

    /// What a later request of the Engine.IO session carried (the WebSocket
    /// upgrade of a browser page on another origin): its device, and
    /// credential cookies that authenticate the socket if nothing did yet.
    pub async fn carried<A: Adapter>(&self, s: &SocketRef<A>, carried: Carried) {
        if let Some(sever) = carried.connection {
            *self.upgraded_on.lock().unwrap_or_else(|p| p.into_inner()) = Some(sever);
        }
        if let Some(device) = carried.device {
            *self.device.lock().unwrap_or_else(|p| p.into_inner()) = Some(device);
        }
        if self.bound_user(s).is_some() {
            return;
        }
        if let Some(credentials) = carried.credentials {
            tracing::debug!(socket_id = %s.id, "credentials on a later request of the session");
            self.attempt(s, credentials.map(Proof::Secret), None).await;
            self.disconnect_if_cut_off(s);
        }
    }

    async fn attempt<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        credentials: Result<Proof, CredentialsError>,
        since: Option<u64>,
    ) -> bool {
        let _turn = self.auth_turn.lock().await;
        // Held until the socket is on its way in the log: pushes for it wait,
        // then arrive after `auth` and after anything replayed.
        let mut position = self.cursor.lock().await;
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
            Ok(credentials) => self.bind(&app, s, &credentials, &position, since).await,
        };
        // Wrong secrets are recorded by the authenticator; malformed
        // credentials never reach it.
        if matches!(outcome, Outcome::Refused(_)) {
            app.failed_auth().record_failure(self.addr, None);
        }
        // The socket keeps only the rooms its (new) identity may hold.
        let now_bound = match &outcome {
            Outcome::Bound(user, _) => Some(*user),
            _ => None,
        };
        super::rooms::prune(s, &app, now_bound).await;
        let mut start = None;
        let authenticated = match outcome {
            Outcome::Bound(user_id, from) => {
                tracing::info!(socket_id = %s.id, user_id = %user_id, "socket authenticated");
                start = Some((user_id, from));
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
        // A socket starting now takes its place before it hears `auth`: a
        // push the client causes once it has its answer must reach it. A
        // replay comes after `auth`, as the client expects.
        let mut replay_after = None;
        match start {
            Some((user, Start::After(since))) => replay_after = Some((user, since)),
            Some((user, Start::Now)) => resume::follow_from_now(&app, &mut position, user).await,
            None => position.unfollow(),
        }
        emit(s, "auth", &authenticated);
        if let Some((user, since)) = replay_after {
            if let Err(err) = resume::replay(&app, s, &mut position, user, since).await {
                emit_error(s, &format!("resume: {err}"));
            }
        }
        drop(position);
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
        credentials: &Proof,
        position: &Position,
        since: Option<u64>,
    ) -> Outcome {
        let was_bound = self.bound_user(s);
        let previous = self.release(app, s).await;
        let outcome = self
            .verify_and_bind(app, s, credentials, position, since, was_bound)
            .await;
        let now = match outcome {
            Outcome::Bound(user, _) => Some(user),
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

    /// Authenticates, trying again while the failure is the server's own
    /// (the database pool exhausted by a reconnect storm, a lost argon2
    /// task) and the socket is still there. Answering `auth` false at once
    /// would make every client of a storm reconnect and try again at the
    /// same moment, which is what exhausted the pool; and a page that
    /// emits `initialConnection` only once would stay signed out.
    async fn authenticate_patiently<A: Adapter>(
        &self,
        app: &AppState,
        s: &SocketRef<A>,
        credentials: &Credentials,
    ) -> Result<entity::user::Model, AuthError> {
        patiently(
            s,
            || app.auth().authenticate(credentials, self.addr),
            |err| matches!(err, AuthError::Database(_) | AuthError::Hashing(_)),
        )
        .await
    }

    async fn verify_and_bind<A: Adapter>(
        &self,
        app: &AppState,
        s: &SocketRef<A>,
        credentials: &Proof,
        position: &Position,
        since: Option<u64>,
        was_bound: Option<Uuid>,
    ) -> Outcome {
        let user_id = match credentials {
            Proof::Secret(credentials) => {
                match self.authenticate_patiently(app, s, credentials).await {
                    Ok(user) => user.id,
                    Err(AuthError::Rejected) => return Outcome::Denied,
                    Err(AuthError::TooManyFailures(Blocked::Address)) => {
                        return Outcome::AddressBlocked
                    }
                    Err(AuthError::TooManyFailures(Blocked::User)) => return Outcome::UserBlocked,
                    Err(err) => {
                        tracing::error!(socket_id = %s.id, error = %err, "authentication failed");
                        return Outcome::Failed;
                    }
                }
            }
            Proof::Token(token) => {
                use crate::plain::identity::{verify_token, IdentityError};
                let verified = patiently(
                    s,
                    || verify_token(app, token),
                    |err| matches!(err, IdentityError::Unavailable),
                )
                .await;
                match verified {
                    Ok((user, _grants)) => user,
                    Err(IdentityError::Unavailable) => return Outcome::Failed,
                    Err(err) => {
                        tracing::info!(socket_id = %s.id, reason = %err, "token refused");
                        return Outcome::Denied;
                    }
                }
            }
        };
        let sid = s.id.to_string();
        let stored = user::Entity::update_many()
            .col_expr(user::Column::SocketId, Some(sid.clone()).into())
            .col_expr(user::Column::LastSeenAt, now_ms().into())
            .filter(user::Column::Id.eq(user_id))
            .exec(app.db())
            .await;
        if let Err(err) = stored {
            tracing::error!(socket_id = %s.id, user_id = %user_id, error = %err, "could not store socket id");
            return Outcome::Failed;
        }
        let start = resume::start_point(app, self, position, user_id, since, was_bound).await;
        *self.user.lock().unwrap_or_else(|p| p.into_inner()) = Some(user_id);
        s.join(user_room(user_id));
        // The socket may have gone while we verified: then the disconnect
        // handler ran before the binding existed, and it is ours to undo.
        if !s.connected() {
            self.release(app, s).await;
            return Outcome::Failed;
        }
        Outcome::Bound(user_id, start)
    }

    /// Forgets the user of this socket and settles their presence. The row's
    /// socket id is cleared last, so whoever sees it cleared also sees the
    /// user's presence settled.
    async fn unbind<A: Adapter>(&self, app: &AppState, s: &SocketRef<A>) {
        let Some(user) = self.user.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return;
        };
        s.leave(user_room(user));
        app.presence().refresh(user).await;
        clear_socket_id(app, s, user).await;
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
            Some(app) => {
                // Saved before the socket lets go of its user, so that once
                // the user shows offline, where they stopped is known.
                if let Some((user, seq)) = self.cursor.place_to_leave() {
                    self.leave_place(&app, user, seq).await;
                }
                self.unbind(&app, &s).await;
            }
            // Shutting down: the row keeps its socket id until that user's
            // next connection replaces it.
            None => drop(self.user.lock().unwrap_or_else(|p| p.into_inner()).take()),
        }
    }

    /// Remembers where this socket stopped in its user's log, for the
    /// window: under its device, and as the user's last socket (used only
    /// if the user has no other socket when one comes back; see `resume`).
    pub(super) async fn leave_place(&self, app: &AppState, user: Uuid, seq: u64) {
        let log = app.push().log();
        let keys = self
            .device()
            .into_iter()
            .chain([resume::LAST_SOCKET.to_owned()]);
        for key in keys {
            if let Err(err) = log.save_device_cursor(user, &key, seq).await {
                tracing::warn!(user_id = %user, error = %err, "could not save where a socket stopped");
            }
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
            self.kick(s);
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
                self.kick(&s);
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

/// Credentials sent with a request (`getChats`) rather than to sign the
/// socket in. Kept apart from `attempt` because the outcome differs (no
/// binding, no `auth` event) while the limits must not: a guess made through
/// a request is a guess all the same.
impl Session {
    /// Verifies `credentials` through the same authenticator and cache as
    /// `initialConnection`, without binding the socket. Every failure counts
    /// towards this socket's limit and (if the credentials were checked and
    /// refused, or malformed) the address's, exactly as an `initialConnection`
    /// failure does. A failure is told here, with `error` `<event>: <reason>`,
    /// and the same reason is returned for the caller's ack; a socket that
    /// reached its limit is then told so and must be cut off once the ack is
    /// queued (`cut_off_if_over_limit`). A success does not reset the
    /// socket's count: only signing in does.
    pub(super) async fn verify_request<A: Adapter>(
        &self,
        s: &SocketRef<A>,
        event: &str,
        credentials: Result<Credentials, CredentialsError>,
    ) -> Result<Uuid, String> {
        let _turn = self.auth_turn.lock().await;
        let Some(app) = self.app() else {
            let reason = format!("{event}: the server is shutting down");
            emit_error(s, &reason);
            return Err(reason);
        };
        if self.failed_attempts.load(Ordering::Relaxed) >= self.max_failed_auth {
            self.too_many_failures(s);
            return Err("too many failed authentication attempts".to_owned());
        }
        let blocked = self
            .addr
            .is_some_and(|addr| app.failed_auth().is_blocked(addr));
        // The authenticator records the failures it verified itself; only a
        // malformed attempt, which never reaches it, is recorded here.
        let (reason, counts_for_address) = match credentials {
            _ if blocked => (
                "too many failed authentication attempts from your address; try again later"
                    .to_owned(),
                false,
            ),
            Err(reason) => (format!("invalid credentials: {reason}"), true),
            Ok(credentials) => match app.auth().authenticate(&credentials, self.addr).await {
                Ok(user) => return Ok(user.id),
                Err(AuthError::Rejected) => ("wrong user id or secret".to_owned(), false),
                Err(AuthError::TooManyFailures(_)) => (
                    "too many failed authentication attempts; try again later".to_owned(),
                    false,
                ),
                Err(err) => {
                    tracing::error!(socket_id = %s.id, event, error = %err, "authentication failed");
                    (
                        "authentication is unavailable, try again later".to_owned(),
                        false,
                    )
                }
            },
        };
        if counts_for_address {
            app.failed_auth().record_failure(self.addr, None);
        }
        tracing::info!(socket_id = %s.id, event, reason, "request credentials refused");
        let reason = format!("{event}: {reason}");
        emit_error(s, &reason);
        if self.failed_attempts.fetch_add(1, Ordering::Relaxed) + 1 >= self.max_failed_auth {
            self.too_many_failures(s);
        }
        Err(reason)
    }

    /// Disconnects a socket `verify_request` found over its limit; called
    /// once the request's ack is queued, so the client hears its answer.
    pub(super) fn cut_off_if_over_limit<A: Adapter>(&self, s: &SocketRef<A>) {
        self.disconnect_if_cut_off(s);
    }
}
