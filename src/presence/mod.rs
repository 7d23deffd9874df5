//! Presence: a user is online while at least one authenticated socket of
//! theirs exists anywhere in the cluster.
//!
//! Each node counts only its own sockets (the members of `user:<id>` on this
//! node, which is what "bound" means everywhere else too) and tells the
//! [`store`] whether it holds the user at all. Extra tabs change nothing
//! there; the store reports a transition only when the first node takes a
//! user or the last one lets go, and whoever's step made it announces it:
//! `presence` to the user's followers, and the `Presence` Redis channel.
//!
//! A node that dies cannot let go. So nodes beat (see [`liveness`]), and
//! the others sweep a node that has been silent for half the configured
//! timeout, taking its users offline within the timeout.

pub mod liveness;
pub mod store;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use entity::follow;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use crate::cluster::RedisBus;
use crate::config::Config;
use crate::metrics::{Metrics, PushKind};
use crate::push::PushService;
use store::{RedisStore, Store, Transition};

/// Per-user steps on one node are taken in turn (read the local count, then
/// tell the store), or two racing steps could leave the store saying the
/// opposite of the last count. Users share a lock only on a hash collision.
const TURNS: usize = 256;

#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    push: PushService,
    db: DatabaseConnection,
    /// Where changes are published for backend services (cluster only).
    announce: Option<(RedisBus, String)>,
    node_id: Uuid,
    /// Presence pushes are counted with the others (`tidings_pushes_total`).
    metrics: Arc<Metrics>,
    turns: Vec<tokio::sync::Mutex<()>>,
    /// Users this node has told the store it holds: the ones to put back if
    /// the others ever sweep this node while it was only cut off.
    held: Mutex<HashSet<Uuid>>,
    /// Users whose last step did not reach the store (Redis down), retried
    /// at every beat.
    unsettled: Mutex<HashSet<Uuid>>,
}

impl Presence {
    /// In process for a single node; in Redis, with this node beating, for
    /// a cluster.
    pub fn start(
        config: &Config,
        push: PushService,
        db: DatabaseConnection,
        bus: Option<&RedisBus>,
        node_id: Uuid,
        metrics: Arc<Metrics>,
    ) -> Self {
        let Some(bus) = bus else {
            return Self::new(Store::in_process(), push, db, None, node_id, metrics);
        };
        let store = RedisStore::new(bus.clone(), &config.redis_prefix, node_id);
        let announce = Some((bus.clone(), config.presence_channel.clone()));
        let presence = Self::new(
            Store::Redis(Box::new(store)),
            push,
            db,
            announce,
            node_id,
            metrics,
        );
        liveness::spawn(&presence, config.presence_timeout());
        presence
    }

    fn new(
        store: Store,
        push: PushService,
        db: DatabaseConnection,
        announce: Option<(RedisBus, String)>,
        node_id: Uuid,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                push,
                db,
                announce,
                node_id,
                metrics,
                turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
                held: Mutex::default(),
                unsettled: Mutex::default(),
            }),
        }
    }

    /// Brings the store in line with this node's sockets of `user`, after a
    /// socket was bound to or unbound from them. Awaited by the caller, so
    /// `isOnline` agrees with a socket as soon as it has its `auth` answer.
    pub async fn refresh(&self, user: Uuid) {
        let inner = &self.inner;
        let _turn = inner.turn(user).lock().await;
        let here = inner.push.local_sockets_of(user) > 0;
        {
            let mut held = lock(&inner.held);
            if here {
                held.insert(user);
            } else {
                held.remove(&user);
            }
        }
        match inner.store.set(user, here).await {
            Ok(transition) => {
                lock(&inner.unsettled).remove(&user);
                if let Some(t) = transition {
                    self.announce(t).await;
                }
            }
            Err(err) => {
                tracing::warn!(user_id = %user, error = %err, "presence not recorded; retrying at the next beat");
                lock(&inner.unsettled).insert(user);
            }
        }
    }

    /// Every socket of `user`, on every node, was just unbound at once (a
    /// secret rotation): the user is offline whatever the nodes had said.
    pub async fn forget(&self, user: Uuid) {
        let inner = &self.inner;
        let _turn = inner.turn(user).lock().await;
        lock(&inner.held).remove(&user);
        match inner.store.forget(user).await {
            Ok(Some(t)) => self.announce(t).await,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(user_id = %user, error = %err, "presence not cleared; retrying at the next beat");
                lock(&inner.unsettled).insert(user);
            }
        }
    }

    /// Which of `users` are online anywhere, in the same order. Without the
    /// store (Redis down) this node answers for its own sockets.
    pub async fn online(&self, users: &[Uuid]) -> Vec<bool> {
        match self.inner.store.online(users).await {
            Ok(online) => online,
            Err(err) => {
                tracing::warn!(error = %err, "presence unavailable; answering for this node");
                users
                    .iter()
                    .map(|u| self.inner.push.local_sockets_of(*u) > 0)
                    .collect()
            }
        }
    }

    /// Tells the user's followers, and backend services, of a transition.
    async fn announce(&self, t: Transition) {
        let inner = &self.inner;
        tracing::info!(user_id = %t.user, online = t.online, "presence changed");
        let payload = json!({ "userId": t.user, "online": t.online, "timestamp": t.timestamp });
        match followers_of(&inner.db, t.user).await {
            Ok(followers) => {
                let started = std::time::Instant::now();
                inner
                    .push
                    .to_users_at_most_once(&followers, "presence", &payload)
                    .await;
                // A user nobody follows: nothing was pushed.
                if !followers.is_empty() {
                    inner.metrics.pushed(PushKind::presence, started);
                }
            }
            Err(err) => {
                tracing::error!(user_id = %t.user, error = %err, "cannot read followers; presence not pushed")
            }
        }
        if let Some((bus, channel)) = &inner.announce {
            let message = json!({
                "userId": t.user,
                "online": t.online,
                "timestamp": t.timestamp,
                "nodeId": inner.node_id,
            });
            if let Err(err) = bus.publish_to_services(channel, &message.to_string()).await {
                tracing::warn!(user_id = %t.user, channel, error = %err, "presence not published");
            }
        }
    }
}

impl Inner {
    fn turn(&self, user: Uuid) -> &tokio::sync::Mutex<()> {
        // UUIDv4 and v7 both end in random bits.
        let slot = (user.as_u128() % TURNS as u128) as usize;
        &self.turns[slot]
    }
}

async fn followers_of(db: &DatabaseConnection, user: Uuid) -> Result<Vec<Uuid>, sea_orm::DbErr> {
    follow::Entity::find()
        .select_only()
        .column(follow::Column::FollowerId)
        .filter(follow::Column::FolloweeId.eq(user))
        .into_tuple()
        .all(db)
        .await
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
