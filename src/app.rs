//! Composition: everything the process runs is built here, in one place.
//!
//! `Application::build` binds its listener before returning, so a caller
//! (a test, `main`) can ask for port 0 and read the real port back.

use std::future::Future;
use std::sync::Arc;

use socketioxide::{ParserConfig, SocketIo};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::auth::{AuthError, Authenticator};
use crate::config::{Config, ConfigError};
use crate::http::{self, HttpState};
use crate::push::PushService;
use crate::state::AppState;
use crate::{gateway, persistence};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("authenticator: {0}")]
    Auth(#[from] AuthError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    io: SocketIo,
    state: AppState,
    schema: graphql::TidingsSchema,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartError> {
        config.validate()?;
        let db = persistence::connect(&config.database_url, config.db_pool_size).await?;
        persistence::migrate(&db).await?;
        let auth = Authenticator::new(db.clone(), config.argon2_concurrency()).await?;

        let (socket_layer, io) = socket_io(&config);
        let state = AppState::new(config.clone(), db, auth, PushService::new(io.clone()));
        gateway::register(&io, state.clone());

        let limits = graphql::SchemaLimits {
            max_depth: config.graphql_max_depth,
            max_complexity: config.graphql_max_complexity,
            introspection: config.graphql_introspection,
            ..Default::default()
        };
        let schema = graphql::build_schema(Arc::new(state.clone()), &limits);
        let router = http::router(HttpState {
            app: state.clone(),
            schema: schema.clone(),
        })
        .layer(
            ServiceBuilder::new()
                .layer(tower_http::trace::TraceLayer::new_for_http())
                .layer(http::cors(&config.allowed_origins))
                .layer(socket_layer),
        );

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            router,
            io,
            state,
            schema,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn schema(&self) -> &graphql::TidingsSchema {
        &self.schema
    }

    /// Serves until `shutdown` resolves, then closes every socket (their
    /// disconnect handlers run) and lets in-flight HTTP requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let addr = self.listener.local_addr()?;
        tracing::info!(%addr, "tidings is serving");
        let io = self.io;
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: closing sockets");
                io.close().await;
            })
            .await
    }
}

/// Socket.IO with every incoming size bounded: socketioxide bounds packets
/// by `max_payload` but leaves WebSocket messages at tungstenite's 64 MiB
/// and binary attachments nearly unbounded unless told otherwise.
fn socket_io(config: &Config) -> (socketioxide::layer::SocketIoLayer, SocketIo) {
    let max = config.max_packet_bytes;
    let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
    SocketIo::builder()
        .max_payload(max)
        .ws_max_message_size(max_usize)
        .ws_max_frame_size(max_usize)
        .max_buffer_size(config.socket_buffer_packets)
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(16)
                .max_incoming_binary_buf_size(max_usize),
        )
        .build_layer()
}
