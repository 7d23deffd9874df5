//! The GraphQL API of Tidings: schema, resolvers and the events they push.
//!
//! # Layout
//!
//! - [`backend`]: what the API needs from the process that hosts it (database,
//!   secrets, pushes). The `tidings` crate implements it with its shared
//!   application state; this crate never touches sockets or argon2 itself, so
//!   resolvers can only reach users through the one push service.
//! - [`viewer`]: who is asking; resolved by the HTTP edge before execution.
//! - `error`: the one error type of the API and its mapping to
//!   `extensions.code`.
//! - `types`: GraphQL object types; `query` and `mutation`: the roots.
//! - `chatroom_admin`: group chatrooms and live membership.
//! - `content`: how message text (and display names) are made safe.
//! - `message_state`: read receipts and deleting messages; `message_push`:
//!   how any change to a chatroom's messages reaches its members.
//! - `introspection`: the second schema that answers pure introspection
//!   documents under a depth limit of their own (so GraphiQL can load).
//! - [`events`]: payloads of the Socket.IO events that mutations push.
//! - [`notes`]: the notes app's notes and folders: their store (shared with
//!   the note-sync WebSocket), sync payloads, queries and mutations.

pub mod backend;
mod chatroom_admin;
mod content;
mod error;
pub mod events;
mod introspection;
mod message_push;
mod message_state;
mod mutation;
pub mod notes;
mod push_log;
mod query;
mod types;
pub mod viewer;

use std::sync::Arc;

use async_graphql::{EmptySubscription, Schema};

pub use backend::Backend;
pub use content::{clean_message, clean_name};
pub use error::ApiError;
pub use introspection::{
    build_introspection_schema, is_introspection_only, INTROSPECTION_MAX_DEPTH,
};
pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use viewer::Viewer;

pub type TidingsSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// Limits that keep one request from costing the server more than it should.
#[derive(Clone, Debug)]
pub struct SchemaLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub max_directives: usize,
    pub introspection: bool,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        Self {
            max_depth: 10,
            max_complexity: 1000,
            max_directives: 5,
            introspection: true,
        }
    }
}

/// Builds the schema once at start-up. `backend` is the application's shared
/// state; resolvers get it from the schema data.
pub fn build_schema(backend: Arc<dyn Backend>, limits: &SchemaLimits) -> TidingsSchema {
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        EmptySubscription,
    )
    .data(backend)
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_directives(limits.max_directives);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}
