//! The push service: the one way anything reaches a user.
//!
//! GraphQL resolvers, the Redis listener and the HTTP push API call this;
//! none of them touch sockets. A user is addressed through the room
//! `user:<id>`, which every socket joins when it authenticates as that user
//! and leaves when it is unbound: so "send to this user" reaches every tab
//! and device, and membership of that room *is* the binding (it is what the
//! gateway checks before acting for a user).
//!
//! Pushes to users are durable: logged first (which gives them their
//! `seq`), then offered to each connection's cursor, here and on every
//! other node (`crate::delivery`). Everything else (rooms, presence, the
//! `auth` of a revocation) is at-most-once and goes straight through
//! socketioxide.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::SocketRef;
use socketioxide::{BroadcastError, SocketIo};
use uuid::Uuid;

use crate::cluster::ClusterAdapter;
use crate::delivery::{Cursor, DeliveryChannel, LoggedMessage, Outbox, PushLog};
use crate::metrics::Metrics;
use crate::plain::{self, PlainChannel, PlainOp, PlainRegistry};

/// Name of the room that holds the one socket that was given `token` as its
/// `tabWindowId`.
pub fn tab_room(token: &str) -> String {
    format!("tab:{token}")
}

/// Name of the room that holds every authenticated socket of `user`.
pub fn user_room(user: Uuid) -> String {
    format!("user:{user}")
}

/// The Socket.IO handle, in-process or across nodes through Redis. Every
/// operation below works on either; with Redis, socketioxide's adapter
/// carries it to the sockets on every node.
#[derive(Clone)]
enum Fanout {
    Local(SocketIo<LocalAdapter>),
    Cluster(SocketIo<ClusterAdapter>),
}

#[derive(Clone)]
pub struct PushService {
    fanout: Fanout,
    /// Deliver to this node's sockets only: for messages every node receives
    /// anyway (the `BackgroundPush` channel), where a cluster-wide emit from
    /// each node would hand every socket one copy per node.
    this_node_only: bool,
    log: PushLog,
    /// Carries logged pushes to the other nodes (cluster only).
    channel: Option<DeliveryChannel>,
    metrics: Arc<Metrics>,
    /// This node's plain WebSocket connections, reached beside its sockets.
    plain: Arc<PlainRegistry>,
    /// Carries room frames and revocations to other nodes' plain
    /// connections (cluster only).
    plain_channel: Option<PlainChannel>,
}

/// Runs `$body` with `$io` bound to whichever `SocketIo` the service holds.
macro_rules! on_io {
    ($self:ident, $io:ident => $body:expr) => {
        match &$self.fanout {
            Fanout::Local($io) => $body,
            Fanout::Cluster($io) => $body,
        }
    };
}

impl PushService {
    pub fn in_process(io: SocketIo<LocalAdapter>, log: PushLog, metrics: Arc<Metrics>) -> Self {
        Self {
            fanout: Fanout::Local(io),
            this_node_only: false,
            log,
            channel: None,
            metrics,
            plain: Arc::default(),
            plain_channel: None,
        }
    }

    pub fn cluster(
        io: SocketIo<ClusterAdapter>,
        log: PushLog,
        channel: DeliveryChannel,
        plain_channel: PlainChannel,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            fanout: Fanout::Cluster(io),
            this_node_only: false,
            log,
            channel: Some(channel),
            metrics,
            plain: Arc::default(),
            plain_channel: Some(plain_channel),
        }
    }

    /// The same service, delivering to this node's sockets only.
    pub fn this_node(&self) -> Self {
        Self {
            this_node_only: true,
            ..self.clone()
        }
    }

    /// The counters this service and the rest of the node share.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// This node's plain WebSocket connections.
    pub fn plain(&self) -> &PlainRegistry {
        &self.plain
    }

    /// A relayed event from a plain connection (`except`, which does not
    /// get its own event back): to the room's Socket.IO sockets on every
    /// node, and to its plain connections on this node.
    pub async fn relay_to_rooms(&self, room: &str, event: &Value, except: Option<u64>) {
        let result = on_io!(self, io => emit(io, self.this_node_only, vec![room.to_owned()], "event", event).await);
        report(result, "event", 1);
        self.relay_to_plain(room, event, except).await;
    }

    /// A relayed event, to the room's plain connections on this node (the
    /// Socket.IO side was reached by the sender's own socket).
    pub async fn relay_to_plain(&self, room: &str, event: &Value, except: Option<u64>) {
        let rooms = vec![room.to_owned()];
        self.plain.to_rooms(&rooms, event, except);
        self.tell_other_nodes(PlainOp::Rooms {
            rooms,
            frame: event.clone(),
        })
        .await;
    }

    /// Publishes `op` for the other nodes' plain connections, unless this
    /// service serves this node only (then every node got the message).
    async fn tell_other_nodes(&self, op: PlainOp) {
        if self.this_node_only {
            return;
        }
        if let Some(channel) = &self.plain_channel {
            channel.publish(op).await;
        }
    }

    /// What another node asked of this node's plain connections.
    pub async fn apply_plain(&self, op: PlainOp) {
        match op {
            PlainOp::Rooms { rooms, frame } => {
                self.plain.to_rooms(&rooms, &frame, None);
            }
            PlainOp::Revoke { user } => self.revoke_plain_here(user),
            PlainOp::Evict { user, room } => self.plain.evict(user, &room),
        }
    }

    fn revoke_plain_here(&self, user: Uuid) {
        for connection in self.plain.revoke(user) {
            connection.send_json(&plain::wire::auth_failed("credentials revoked"));
            connection.close(plain::close::UNAUTHORIZED, "credentials revoked");
        }
    }

    /// The per-user log every durable push is written to.
    pub fn log(&self) -> &PushLog {
        &self.log
    }

    /// A durable push: logged for each of `users`, then sent to every
    /// authenticated socket of theirs on every node, with `{ seq }` as its
    /// second argument. When the log cannot be written (Redis down) the
    /// push still goes to the sockets that can be reached now, without a
    /// `seq`, and the loss of its durability is counted.
    pub async fn to_users<T: Serialize + ?Sized>(&self, users: &[Uuid], event: &str, payload: &T) {
        if users.is_empty() {
            return;
        }
        let payload = match serde_json::to_value(payload) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(event, error = %err, "push payload not encodable");
                return;
            }
        };
        match self.log.append(users, event, &payload).await {
            Ok(seqs) => {
                self.metrics.pushes_logged.inc_by(seqs.len() as u64);
                for (user, seq) in users.iter().zip(seqs) {
                    self.deliver_logged_here(*user, seq, event, &payload).await;
                    if let Some(channel) = &self.channel {
                        channel.publish(*user, seq, event, &payload).await;
                    }
                }
            }
            Err(err) => {
                self.metrics.pushes_not_logged.inc_by(users.len() as u64);
                tracing::warn!(event, users = users.len(), error = %err, "push not logged; delivering to reachable sockets without a seq");
                if let Some(payload) = crate::delivery::addressed(&payload, None) {
                    self.to_users_at_most_once(users, event, payload.as_ref())
                        .await;
                }
            }
        }
    }

    pub async fn to_user<T: Serialize + ?Sized>(&self, user: Uuid, event: &str, payload: &T) {
        self.to_users(&[user], event, payload).await;
    }

    /// A durable push to every connection of `user` on every node but the
    /// plain connection whose tab is `except` (the one that caused it).
    /// `payload` must be a JSON object: the mark rides in it.
    pub async fn to_user_except(&self, user: Uuid, except: &str, event: &str, mut payload: Value) {
        if let Value::Object(fields) = &mut payload {
            fields.insert(
                crate::delivery::EXCEPT_KEY.to_owned(),
                Value::String(except.to_owned()),
            );
        }
        self.to_users(&[user], event, &payload).await;
    }

    /// A logged push from another node, for this node's sockets.
    pub async fn deliver_logged(&self, message: LoggedMessage) {
        self.deliver_logged_here(message.user, message.seq, &message.event, &message.payload)
            .await;
    }

    async fn deliver_logged_here(&self, user: Uuid, seq: u64, event: &str, payload: &Value) {
        on_io!(self, io => offer_to_local_sockets(io, &self.log, user, seq, event, payload).await);
        for connection in self.plain.connections_of(user) {
            connection
                .cursor()
                .lock()
                .await
                .offer(&self.log, &*connection, user, seq, event, payload)
                .await;
        }
    }

    /// Emits `event` to every authenticated socket of each of `users`, not
    /// logged (presence: a state, which `onlineFollowing` answers anyway).
    /// A socket in several of the rooms still receives the event once.
    pub async fn to_users_at_most_once<T: Serialize + ?Sized>(
        &self,
        users: &[Uuid],
        event: &str,
        payload: &T,
    ) {
        if users.is_empty() {
            return;
        }
        let rooms: Vec<String> = users.iter().copied().map(user_room).collect();
        let result = on_io!(self, io => emit(io, self.this_node_only, rooms, event, payload).await);
        report(result, event, users.len());
    }

    /// Emits `event` to every socket in the named rooms.
    pub async fn to_rooms<T: Serialize + ?Sized>(
        &self,
        rooms: Vec<String>,
        event: &str,
        payload: &T,
    ) {
        let targets = rooms.len();
        if let Ok(value) = serde_json::to_value(payload) {
            let frame = plain::wire::push(event, &value);
            self.plain.to_rooms(&rooms, &frame, None);
            self.tell_other_nodes(PlainOp::Rooms {
                rooms: rooms.clone(),
                frame,
            })
            .await;
        }
        let result = on_io!(self, io => emit(io, self.this_node_only, rooms, event, payload).await);
        report(result, event, targets);
    }

    /// Emits to the one socket whose `tabWindowId` is `tab`, only if it is
    /// bound to `user` right now (checked at send time, so a socket unbound by
    /// a secret rotation is not reached). Returns whether it was.
    pub async fn to_tab<T: Serialize + ?Sized>(
        &self,
        user: Uuid,
        tab: &str,
        event: &str,
        payload: &T,
    ) -> bool {
        if let Some(connection) = self.plain.tab_of(user, tab) {
            return match serde_json::to_value(payload) {
                Ok(value) => connection.send_json(&plain::wire::push(event, &value)),
                Err(_) => false,
            };
        }
        on_io!(self, io => to_tab(io, self.this_node_only, user, tab, event, payload).await)
    }

    /// Unbinds every socket of `user` and tells each `auth` false. They stay
    /// connected, as after any failed authentication.
    /// Plain connections of the user on this node are told `auth_failed`
    /// and closed (4401): they have no way to sign in again.
    pub async fn revoke(&self, user: Uuid) {
        self.revoke_plain_here(user);
        self.tell_other_nodes(PlainOp::Revoke { user }).await;
        on_io!(self, io => revoke(io, user).await)
    }

    /// Makes every socket of `user` leave `room`, on every node, before
    /// returning: after a removal the user hears nothing more of the room.
    pub async fn evict(&self, user: Uuid, room: &str) {
        self.plain.evict(user, room);
        self.tell_other_nodes(PlainOp::Evict {
            user,
            room: room.to_owned(),
        })
        .await;
        on_io!(self, io => evict(io, user, room).await)
    }

    /// Disconnects every socket of `user`.
    pub async fn disconnect(&self, user: Uuid) {
        for connection in self.plain.connections_of(user) {
            connection.close(plain::close::UNAUTHORIZED, "account closed");
        }
        let result = on_io!(self, io => disconnect(io, user).await);
        if let Err(err) = result {
            tracing::error!(user_id = %user, error = %err, "could not disconnect sockets");
        }
    }

    /// Closes every socket of this node (at shutdown).
    pub async fn close(&self) {
        self.plain.close_all(1001, "server shutting down");
        on_io!(self, io => io.close().await)
    }

    /// How many authenticated sockets of `user` this node holds (presence
    /// counts per node; the cluster-wide answer is the presence store's).
    pub fn local_sockets_of(&self, user: Uuid) -> usize {
        on_io!(self, io => io.local().to(user_room(user)).sockets().len())
            + self.plain.count_of(user)
    }
}

/// Offers a logged push to the cursor of each of this node's sockets of
/// `user`.
async fn offer_to_local_sockets<A: Adapter>(
    io: &SocketIo<A>,
    log: &PushLog,
    user: Uuid,
    seq: u64,
    event: &str,
    payload: &Value,
) {
    for socket in io.local().to(user_room(user)).sockets() {
        let Some(cursor) = socket.extensions.get::<Arc<Cursor>>() else {
            continue;
        };
        let outbox = SocketOutbox(&socket);
        cursor
            .lock()
            .await
            .offer(log, &outbox, user, seq, event, payload)
            .await;
    }
}

/// A Socket.IO socket as a cursor's outbox: the payload first, `meta` as a
/// second argument (so one-argument listeners keep working).
pub struct SocketOutbox<'a, A: Adapter>(pub &'a SocketRef<A>);

impl<A: Adapter> Outbox for SocketOutbox<'_, A> {
    fn send(&self, event: &str, payload: &Value, meta: &Value) -> bool {
        let Some(payload) = crate::delivery::addressed(payload, None) else {
            return true;
        };
        let payload = payload.as_ref();
        let sent = if meta.is_null() {
            self.0.emit(event, payload)
        } else {
            self.0.emit(event, &(payload, meta))
        };
        match sent {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(socket_id = %self.0.id, event, error = %err, "durable push not queued to socket");
                false
            }
        }
    }
}

/// Emits to `rooms` on every node. When Redis is unreachable the adapter
/// fails before it delivers anything, even locally; the sockets on this
/// node are then served directly, so an outage degrades to single-node
/// delivery instead of no delivery.
async fn emit<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    this_node_only: bool,
    rooms: Vec<String>,
    event: &str,
    payload: &T,
) -> Result<(), BroadcastError> {
    if this_node_only {
        return io.local().to(rooms).emit(event, payload).await;
    }
    match io.to(rooms.clone()).emit(event, payload).await {
        Err(BroadcastError::Adapter(err)) => {
            tracing::warn!(event, error = %err, "cross-node fan-out unavailable; delivering on this node only");
            io.local().to(rooms).emit(event, payload).await
        }
        other => other,
    }
}

async fn to_tab<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    this_node_only: bool,
    user: Uuid,
    tab: &str,
    event: &str,
    payload: &T,
) -> bool {
    let lookup = if this_node_only {
        io.local().to(tab_room(tab))
    } else {
        io.to(tab_room(tab))
    };
    let sockets = match lookup.fetch_sockets().await {
        Ok(sockets) => sockets,
        Err(err) => {
            tracing::warn!(error = %err, "cluster-wide tab lookup unavailable; looking on this node");
            match io.local().to(tab_room(tab)).fetch_sockets().await {
                Ok(sockets) => sockets,
                Err(_) => return false,
            }
        }
    };
    let owner = user_room(user);
    for socket in sockets {
        let bound = socket
            .rooms()
            .await
            .is_ok_and(|rooms| rooms.iter().any(|r| *r == owner));
        if bound {
            if let Err(err) = socket.emit(event, payload).await {
                tracing::warn!(event, error = %err, "push to tab failed");
                return false;
            }
            return true;
        }
    }
    false
}

async fn revoke<A: Adapter>(io: &SocketIo<A>, user: Uuid) {
    let room = user_room(user);
    report(
        emit(io, false, vec![room.clone()], "auth", &false).await,
        "auth",
        1,
    );
    if let Err(err) = io.to(room.clone()).leave(room.clone()).await {
        tracing::warn!(user_id = %user, error = %err, "cross-node unbind unavailable; unbinding on this node only");
        if let Err(err) = io.local().to(room.clone()).leave(room).await {
            tracing::error!(user_id = %user, error = %err, "could not unbind sockets");
        }
    }
}

async fn evict<A: Adapter>(io: &SocketIo<A>, user: Uuid, room: &str) {
    let owner = user_room(user);
    if let Err(err) = io.to(owner.clone()).leave(room.to_owned()).await {
        tracing::warn!(user_id = %user, error = %err, "cross-node eviction unavailable; evicting on this node only");
        if let Err(err) = io.local().to(owner).leave(room.to_owned()).await {
            tracing::error!(user_id = %user, error = %err, "could not evict sockets from a room");
        }
    }
}

async fn disconnect<A: Adapter>(io: &SocketIo<A>, user: Uuid) -> Result<(), BroadcastError> {
    match io.to(user_room(user)).disconnect().await {
        Err(BroadcastError::Adapter(err)) => {
            tracing::warn!(user_id = %user, error = %err, "cross-node disconnect unavailable; disconnecting on this node only");
            io.local().to(user_room(user)).disconnect().await
        }
        other => other,
    }
}

/// A failed emit is never thrown away silently. A socket whose send buffer
/// is full (a client that stopped reading) or that is closing misses the
/// event; that is logged with the count so an operator sees it.
fn report(result: Result<(), BroadcastError>, event: &str, targets: usize) {
    match result {
        Ok(()) => tracing::debug!(event, targets, "pushed"),
        Err(BroadcastError::Socket(errors)) => {
            tracing::warn!(event, targets, failed_sockets = errors.len(), errors = ?errors, "push missed some sockets")
        }
        Err(err) => tracing::error!(event, targets, error = %err, "push failed"),
    }
}
