//! Tidings: a Socket.IO gateway that knows who each socket belongs to and
//! pushes events to the right users.
//!
//! # Layout
//!
//! - [`config`]: flags and environment, read once and validated.
//! - [`app`]: `Application::build` composes everything; `main.rs` only
//!   parses the command line and calls it.
//! - [`state`]: the one shared handle (database, authenticator, push
//!   service, configuration) given to axum, socketioxide and async-graphql.
//! - [`auth`]: sanitizing credentials and verifying them (argon2id, bounded
//!   and cached safely).
//! - [`gateway`]: Socket.IO handlers: connect, `initialConnection`, resuming
//!   (`since`, devices), what later requests of a session carry,
//!   rooms, relay, typing, `getChats`, disconnect.
//! - [`plain`]: the plain WebSocket transport (`/ws`, `/ws/<room>`), on
//!   the same users, rooms and pushes as the gateway.
//! - [`notes`]: note sync, the notes app's WebSocket protocol (`/notes`):
//!   signed envelope, pipeline, note and folder messages, on the same
//!   registry and durable pushes as `/ws`.
//! - [`protocol`]: wire rules both transports share (relayed events).
//! - [`rooms`]: room names and the one policy deciding who may join what.
//! - [`push`]: the push service, the only way anything reaches a user.
//! - [`delivery`]: what durable pushes stand on: the per-user log (`seq`),
//!   each connection's cursor in it, and the Redis channel that carries
//!   logged pushes between nodes.
//! - [`presence`]: who is online across the cluster, and telling their
//!   followers when that changes.
//! - [`backend_push`]: pushes from other services, over the Redis channel
//!   `BackgroundPush` or `POST /api/push`.
//! - [`cluster`]: the Redis bus that joins nodes (socketioxide-redis).
//! - [`metrics`]: the series served at `/metrics` (prometheus-client).
//! - [`limits`]: the event rate per socket and failed logins per address.
//! - [`http`]: health probes, the GraphQL endpoint, the operator view
//!   (`/admin`), and the web app at `/`
//!   (embedded `web/`, or `--static-dir`).
//! - [`persistence`]: opening the database and migrating it.
//! - [`admin`]: operator commands (`tidings user create`).
//! - Member crates: `entity` (rows), `migration` (schema), `graphql`
//!   (schema and resolvers).

pub mod admin;
pub mod app;
pub mod auth;
pub mod backend_push;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod notes;
pub mod persistence;
pub mod plain;
pub mod presence;
pub mod protocol;
pub mod push;
pub mod rooms;
pub mod shutdown;
pub mod state;
pub mod telemetry;

pub use app::Application;
pub use config::Config;
