//! How room traffic and revocations reach plain connections on the other
//! nodes: one Redis channel, `<prefix>:plain`, carrying `{ node, op, … }`.
//!
//! socketioxide-redis carries Socket.IO's share of every room emit, but it
//! knows only Socket.IO sockets. Rather than a second home-made protocol,
//! the node that emits publishes the plain frame once, already encoded for
//! plain clients; every other node hands it to its own plain members (its
//! own message comes back to it too and is skipped: it served its members
//! before publishing). Durable pushes to users do not use this channel:
//! they travel on `<prefix>:delivery` to each connection's cursor.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socketioxide_redis::drivers::Driver;
use uuid::Uuid;

use crate::cluster::RedisBus;

/// What another node is asked to do with its plain connections.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum PlainOp {
    /// Send `frame` to the members of any of `rooms`, once each.
    Rooms { rooms: Vec<String>, frame: Value },
    /// The user's secret was rotated (or the account deleted): close them.
    Revoke { user: Uuid },
    /// The user was removed from `room`.
    Evict { user: Uuid, room: String },
}

#[derive(Serialize, Deserialize, Debug)]
struct PlainMessage {
    node: Uuid,
    #[serde(flatten)]
    op: PlainOp,
}

#[derive(Clone)]
pub struct PlainChannel {
    bus: RedisBus,
    name: String,
    node: Uuid,
}

impl PlainChannel {
    pub fn new(bus: RedisBus, prefix: &str, node: Uuid) -> Self {
        Self {
            bus,
            name: format!("{prefix}:plain"),
            node,
        }
    }

    /// Tells the other nodes; a failure is logged (their plain members miss
    /// this at-most-once event, as Socket.IO members would).
    pub async fn publish(&self, op: PlainOp) {
        let message = PlainMessage {
            node: self.node,
            op,
        };
        let text = match serde_json::to_string(&message) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, "plain channel message not encodable");
                return;
            }
        };
        if let Err(err) = self.bus.publish_text(&self.name, &text).await {
            tracing::warn!(error = %err, "plain channel message not published to other nodes");
        }
    }

    /// Hands every operation published by another node to `apply`, until
    /// the bus goes away.
    pub async fn listen<F, Fut>(self, apply: F)
    where
        F: Fn(PlainOp) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut messages = loop {
            match self.bus.subscribe(self.name.clone(), 4096).await {
                Ok(messages) => break messages,
                Err(err) => {
                    tracing::warn!(channel = %self.name, error = %err, "cannot subscribe to the plain channel yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        while let Some((_, raw)) = messages.next().await {
            match serde_json::from_slice::<PlainMessage>(&raw) {
                Ok(message) if message.node == self.node => {}
                Ok(message) => apply(message.op).await,
                Err(err) => tracing::warn!(error = %err, "unreadable message on the plain channel"),
            }
        }
    }
}
