//! Composition: everything the process runs is built here, in one place.
//!
//! `Application::build` binds its listener before returning, so a caller
//! (a test, `main`) can ask for port 0 and read the real port back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use socketioxide::adapter::Adapter;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{ParserConfig, SocketIo, SocketIoBuilder};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use uuid::Uuid;

use crate::auth::{AuthError, Authenticator, SharedVerifications};
use crate::cluster::{ClusterAdapter, RedisBus};
use crate::config::{Config, ConfigError};
use crate::delivery::{DeliveryChannel, PushLog, RedisLog, SqlLog};
use crate::gateway::PendingUpgrades;
use crate::http::{self, HttpState};
use crate::limits::FailureLedger;
use crate::metrics::Metrics;
use crate::plain::PlainChannel;
use crate::presence::Presence;
use crate::push::PushService;
use crate::state::AppState;
use crate::tasks::Tasks;
use crate::{backend_push, gateway, persistence};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("authenticator: {0}")]
    Auth(#[from] AuthError),
    #[error("redis: {0}")]
    Redis(#[from] crate::cluster::BusError),
    #[error("JWT: {0}")]
    Jwt(#[from] crate::auth::jwt::JwtConfigError),
    #[error("{0}")]
    AuthProxy(#[from] crate::auth::proxy::ProxyConfigError),
    #[error("Socket.IO adapter: {0}")]
    Adapter(String),
    #[error("--static-dir {path}: {source}")]
    StaticDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: crate::connections::Listener,
    router: axum::Router,
    state: AppState,
    schema: graphql::TidingsSchema,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let node_id = Uuid::now_v7();
        tracing::info!(node_id = %node_id, "starting node");
        let db = persistence::connect(
            &config.database_url,
            config.db_pool_size,
            config.db_acquire_timeout(),
        )
        .await?;
        persistence::migrate(&db).await?;
        let jwt = crate::auth::jwt::JwtVerifier::from_config(&config)?;
        let auth_proxy = crate::auth::proxy::AuthProxy::from_config(&config)?;
        let metrics = Arc::new(Metrics::default());
        let ledger = FailureLedger::new(
            config.max_failed_auth_per_address,
            config.max_failed_auth_per_user,
            Duration::from_secs(config.failed_auth_window_secs),
        );
        let auth = Authenticator::new(
            db.clone(),
            config.argon2_concurrency(),
            ledger,
            metrics.clone(),
            jwt,
        )
        .await?;

        let tasks = Tasks::default();
        let parts = |push: PushService, bus: Option<RedisBus>| {
            let presence = Presence::start(
                &config,
                push.clone(),
                db.clone(),
                bus.as_ref(),
                node_id,
                metrics.clone(),
                &tasks,
            );
            AppState::new(
                config.clone(),
                node_id,
                db.clone(),
                auth.clone(),
                push,
                presence,
                bus,
                tasks.clone(),
                auth_proxy.clone(),
            )
        };
        let (state, router, schema) = match config.redis_topology() {
            None => {
                let (layer, io) = socket_io(&config).build_layer();
                let log = SqlLog::new(db.clone(), config.retention());
                tasks.spawn(
                    "push log sweep",
                    sweep_log(log.clone(), config.retention().window),
                );
                let push = PushService::in_process(io.clone(), PushLog::Sql(log), metrics.clone());
                let state = parts(push, None);
                state.metrics().set_census(gateway::census(io.clone()));
                let pending = PendingUpgrades::default();
                gateway::register(&io, &state, &pending);
                tasks.spawn("checkpoints", gateway::keep_checkpoints(io.clone(), &state));
                let engine = gateway::engine_request_layer(io.clone(), &state, pending);
                let (router, schema) =
                    serve_stack(&state, layer, engine, gateway::directory(io), &config)?;
                (state, router, schema)
            }
            Some(topology) => {
                let bus = RedisBus::connect(&topology, config.redis_timeout()).await?;
                auth.share_verifications(SharedVerifications::new(
                    bus.clone(),
                    &config.redis_prefix,
                ));
                let adapter_config =
                    RedisAdapterConfig::new().with_prefix(format!("{}:sio", config.redis_prefix));
                let adapter = RedisAdapterCtr::new_with_driver(bus.clone(), adapter_config);
                let (layer, io) = socket_io(&config)
                    .with_adapter::<ClusterAdapter>(adapter)
                    .build_layer();
                let log = RedisLog::new(
                    bus.clone(),
                    &config.redis_prefix,
                    config.retention(),
                    config.redis_log_replicas,
                );
                let channel = DeliveryChannel::new(bus.clone(), &config.redis_prefix, node_id);
                let plain_channel = PlainChannel::new(bus.clone(), &config.redis_prefix, node_id);
                let push = PushService::cluster(
                    io.clone(),
                    PushLog::Redis(log),
                    channel.clone(),
                    plain_channel.clone(),
                    metrics.clone(),
                );
                let state = parts(push, Some(bus));
                state.metrics().set_census(gateway::census(io.clone()));
                tasks.spawn(
                    "BackgroundPush listener",
                    backend_push::listener::listen(state.clone()),
                );
                tasks.spawn(
                    "delivery channel listener",
                    listen_for_logged_pushes(channel, state.push().clone()),
                );
                tasks.spawn(
                    "plain channel listener",
                    listen_for_plain_ops(plain_channel, state.push().clone()),
                );
                let pending = PendingUpgrades::default();
                gateway::register(&io, &state, &pending)
                    .await
                    .map_err(|e| StartError::Adapter(e.to_string()))?;
                tasks.spawn("checkpoints", gateway::keep_checkpoints(io.clone(), &state));
                tasks.spawn(
                    "node stats",
                    crate::cluster::node_stats::publish(state.downgrade()),
                );
                let engine = gateway::engine_request_layer(io.clone(), &state, pending);
                let (router, schema) =
                    serve_stack(&state, layer, engine, gateway::directory(io), &config)?;
                (state, router, schema)
            }
        };

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener: crate::connections::Listener::new(listener),
            router,
            state,
            schema,
        })
    }

    pub fn port(&self) -> u16 {
        axum::serve::Listener::local_addr(&self.listener)
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn schema(&self) -> &graphql::TidingsSchema {
        &self.schema
    }

    /// Serves until `shutdown` resolves, then drains (see `drain`: readiness
    /// off, clients moved elsewhere over `--drain-window-secs`, places in
    /// the log saved, background tasks awaited) and lets in-flight HTTP
    /// requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = axum::serve::Listener::local_addr(&self.listener)?;
        tracing::info!(%addr, node_id = %self.state.node_id(), "tidings is serving");
        let state = self.state;
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<crate::connections::Peer>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            crate::drain::run(&state).await;
        })
        .await
    }
}

/// Hands logged pushes published by other nodes to this node's sockets.
async fn listen_for_logged_pushes(channel: DeliveryChannel, push: PushService) {
    channel
        .listen(|message| {
            let push = push.clone();
            async move { push.deliver_logged(message).await }
        })
        .await;
}

/// Appends trim their own user's log; this drops what expired for users
/// nobody pushed to since, every tenth of the window.
async fn listen_for_plain_ops(channel: PlainChannel, push: PushService) {
    channel
        .listen(|op| {
            let push = push.clone();
            async move { push.apply_plain(op).await }
        })
        .await;
}

async fn sweep_log(log: SqlLog, window: std::time::Duration) {
    let every = (window / 10).max(std::time::Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match log.sweep().await {
            Ok(0) => {}
            Ok(dropped) => tracing::debug!(dropped, "expired pushes dropped from the log"),
            Err(err) => tracing::warn!(error = %err, "could not sweep the push log"),
        }
    }
}

/// The GraphQL schema and the router, with the Socket.IO layer of
/// whichever adapter was chosen outermost, so HTTP, GraphQL and Socket.IO
/// share one port.
fn serve_stack<A: Adapter, E>(
    state: &AppState,
    socket_layer: SocketIoLayer<A>,
    engine_requests: E,
    sockets: gateway::SocketDirectory,
    config: &Config,
) -> Result<(axum::Router, graphql::TidingsSchema), StartError>
where
    E: Fn(
            axum::extract::Request,
            axum::middleware::Next,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = axum::response::Response> + Send>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let limits = graphql::SchemaLimits {
        max_depth: config.graphql_max_depth,
        max_complexity: config.graphql_max_complexity,
        introspection: config.graphql_introspection,
        ..Default::default()
    };
    let backend: Arc<dyn graphql::Backend> = Arc::new(state.clone());
    let schema = graphql::build_schema(backend.clone(), &limits);
    let router = http::router(HttpState {
        app: state.clone(),
        schema: schema.clone(),
        introspection: graphql::build_introspection_schema(backend, &limits),
        sockets,
        static_dir: config
            .static_dir
            .as_deref()
            .map(|path| {
                http::web::StaticDir::new(path).map_err(|source| StartError::StaticDir {
                    path: path.to_owned(),
                    source,
                })
            })
            .transpose()?,
    })
    .layer(
        ServiceBuilder::new()
            // The path only: a query may hold a token (`/ws?token=`), and
            // tokens do not belong in logs.
            .layer(
                tower_http::trace::TraceLayer::new_for_http().make_span_with(
                    |request: &axum::extract::Request| {
                        tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
                    },
                ),
            )
            .layer(http::cors(&config.allowed_origins))
            .layer(axum::middleware::map_request(http::detach_request_head))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                http::refuse_foreign_origins,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::drain::refuse_new_connections,
            ))
            .layer(axum::middleware::from_fn(engine_requests))
            .layer(socket_layer),
    );
    Ok((router, schema))
}

/// Socket.IO with every incoming size bounded: socketioxide bounds packets
/// by `max_payload` but leaves WebSocket messages at tungstenite's 64 MiB
/// and binary attachments nearly unbounded unless told otherwise.
fn socket_io(config: &Config) -> SocketIoBuilder {
    let max = config.max_packet_bytes;
    let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
    SocketIo::builder()
        .max_payload(max)
        .ws_max_message_size(max_usize)
        .ws_max_frame_size(max_usize)
        .max_buffer_size(config.socket_buffer_packets)
        .ws_read_buffer_size(config.ws_read_buffer_bytes)
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(16)
                .max_incoming_binary_buf_size(max_usize),
        )
}
