//! The one shared handle: database, authenticator, push service and
//! configuration, cheap to clone (one `Arc`).
//!
//! axum gets it as `State`, async-graphql as schema data (through the
//! [`graphql::Backend`] port it implements), and the Socket.IO gateway as a
//! value captured by its handlers. socketioxide's own `State` extractor is
//! not used because it takes the state before the `SocketIo` handle exists,
//! and this state holds that handle (inside the push service).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use graphql::backend::{BackendError, IssuedSecret, LogEntry};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::auth::proxy::AuthProxy;
use crate::auth::Authenticator;
use crate::cluster::RedisBus;
use crate::config::Config;
use crate::limits::KeyedBuckets;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::push::PushService;
use crate::tasks::Tasks;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    node_id: Uuid,
    db: DatabaseConnection,
    auth: Authenticator,
    push: PushService,
    presence: Presence,
    bus: Option<RedisBus>,
    metrics: Arc<Metrics>,
    mutation_rate: KeyedBuckets<Uuid>,
    /// The background tasks (see `tasks`), stopped and awaited at shutdown.
    tasks: Tasks,
    /// Set at SIGTERM (see `drain`): readiness false, new connections
    /// refused.
    draining: AtomicBool,
    /// The app's session endpoint, for plain WebSocket sign-ins
    /// (`--auth-proxy-url`).
    auth_proxy: Option<AuthProxy>,
}

/// A reference that does not keep the application alive; see
/// `gateway` for why the socket side holds only this.
#[derive(Clone)]
pub struct WeakAppState {
    inner: std::sync::Weak<Inner>,
}

impl WeakAppState {
    pub fn upgrade(&self) -> Option<AppState> {
        self.inner.upgrade().map(|inner| AppState { inner })
    }
}

impl AppState {
    pub fn downgrade(&self) -> WeakAppState {
        WeakAppState {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Called once, by `Application::build`, with each part it composed.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        node_id: Uuid,
        db: DatabaseConnection,
        auth: Authenticator,
        push: PushService,
        presence: Presence,
        bus: Option<RedisBus>,
        tasks: Tasks,
        auth_proxy: Option<AuthProxy>,
    ) -> Self {
        // One set of counters: the authenticator counts into it too.
        let metrics = auth.metrics().clone();
        let mutation_rate = KeyedBuckets::new(
            f64::from(config.mutations_per_minute) / 60.0,
            config.mutations_burst,
        );
        Self {
            inner: Arc::new(Inner {
                config,
                node_id,
                db,
                auth,
                push,
                presence,
                bus,
                metrics,
                mutation_rate,
                tasks,
                draining: AtomicBool::new(false),
                auth_proxy,
            }),
        }
    }

    /// This process's identity in the cluster (UUIDv7, new at every start).
    pub fn node_id(&self) -> Uuid {
        self.inner.node_id
    }

    /// Failed authentications per client address and per user, shared by
    /// every path that checks a credential.
    pub fn failed_auth(&self) -> &crate::limits::FailureLedger {
        self.inner.auth.ledger()
    }

    /// Each signed-in user's allowance of GraphQL mutations.
    pub fn mutation_rate(&self) -> &KeyedBuckets<Uuid> {
        &self.inner.mutation_rate
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The Redis connection, when running as one node of many.
    pub fn bus(&self) -> Option<&RedisBus> {
        self.inner.bus.as_ref()
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The app's session endpoint (`--auth-proxy-url`), when configured.
    pub fn auth_proxy(&self) -> Option<&AuthProxy> {
        self.inner.auth_proxy.as_ref()
    }

    pub fn push(&self) -> &PushService {
        &self.inner.push
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    pub fn tasks(&self) -> &Tasks {
        &self.inner.tasks
    }

    /// From now on this node is going away: `/readyz` says so and new
    /// connections are refused (see `drain`).
    pub fn begin_drain(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl graphql::Backend for AppState {
    fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    async fn issue_secret(&self) -> Result<IssuedSecret, BackendError> {
        let (secret, hash) = self
            .auth()
            .issue_secret()
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(IssuedSecret { secret, hash })
    }

    async fn push_to_users(&self, users: &[Uuid], event: &str, payload: serde_json::Value) {
        let started = std::time::Instant::now();
        self.push().to_users(users, event, &payload).await;
        self.metrics()
            .pushed(crate::metrics::PushKind::of_graphql_event(event), started);
    }

    async fn revoke_sockets(&self, user: Uuid) {
        self.push().revoke(user).await;
        self.presence().forget(user).await;
    }

    async fn disconnect_sockets(&self, user: Uuid) {
        self.push().disconnect(user).await;
    }

    async fn evict(&self, user: Uuid, room: &str) {
        self.push().evict(user, room).await;
    }

    async fn push_log(
        &self,
        user: Uuid,
        since: u64,
        first: usize,
    ) -> Result<Vec<LogEntry>, BackendError> {
        let read = self
            .push()
            .log()
            .read(user, since, first)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(read
            .entries
            .into_iter()
            .map(|entry| LogEntry {
                seq: entry.seq,
                event: entry.event,
                // Without the mark of the connection a sync left out.
                payload: crate::delivery::addressed(&entry.payload, None)
                    .map(std::borrow::Cow::into_owned)
                    .unwrap_or_default(),
                created_at: entry.created_at,
            })
            .collect())
    }

    async fn online(&self, users: &[Uuid]) -> Vec<bool> {
        self.presence().online(users).await
    }

    fn social_client_events(&self) -> bool {
        self.config().social_client_events
    }
}
