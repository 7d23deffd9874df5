//! The one shared handle: database, authenticator, push service and
//! configuration, cheap to clone (one `Arc`).
//!
//! axum gets it as `State`, async-graphql as schema data (through the
//! [`graphql::Backend`] port it implements), and the Socket.IO gateway as a
//! value captured by its handlers. socketioxide's own `State` extractor is
//! not used because it takes the state before the `SocketIo` handle exists,
//! and this state holds that handle (inside the push service).

use std::sync::Arc;

use graphql::backend::{BackendError, IssuedSecret};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::push::PushService;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    db: DatabaseConnection,
    auth: Authenticator,
    push: PushService,
}

impl AppState {
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        auth: Authenticator,
        push: PushService,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                auth,
                push,
            }),
        }
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

    pub fn push(&self) -> &PushService {
        &self.inner.push
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
        self.push().to_users(users, event, &payload).await;
    }

    async fn revoke_sockets(&self, user: Uuid) {
        self.push().revoke(user).await;
    }

    async fn disconnect_sockets(&self, user: Uuid) {
        self.push().disconnect(user).await;
    }

    async fn is_online(&self, user: Uuid) -> bool {
        self.push().is_online(user).await
    }
}
