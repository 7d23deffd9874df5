//! How a logged push reaches the other nodes: one Redis channel,
//! `<prefix>:delivery`, carrying `{ node, user, seq, event, payload }`.
//!
//! socketioxide-redis cannot carry these: it hands each socket the event
//! directly, while a durable push must pass through the receiving
//! connection's cursor (order, no duplicate, gaps filled from the log). Each
//! node hands what it receives to the cursors of its own connections of
//! that user; its own messages come back to it too and are skipped, since
//! it delivered them before publishing.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use socketioxide_redis::drivers::Driver;
use uuid::Uuid;

use crate::cluster::RedisBus;

/// Pushes from other nodes delivered at once. Delivering one waits for the
/// cursors of its user's connections, and a cursor is held while its
/// connection authenticates or replays (up to seconds when the database is
/// slow): one at a time, a few such connections held up every other user's
/// pushes until the subscription's buffer overflowed and dropped them
/// (23,134 in the 10,000-client jitter run). Taken out of order, a push is
/// still delivered right: a cursor fills a gap from the log and drops what
/// its connection already has.
const CONCURRENT_DELIVERIES: usize = 256;

#[derive(Serialize, Deserialize, Debug)]
pub struct LoggedMessage {
    pub node: Uuid,
    pub user: Uuid,
    pub seq: u64,
    pub event: String,
    pub payload: Value,
}

#[derive(Clone)]
pub struct DeliveryChannel {
    bus: RedisBus,
    name: String,
    node: Uuid,
}

impl DeliveryChannel {
    pub fn new(bus: RedisBus, prefix: &str, node: Uuid) -> Self {
        Self {
            bus,
            name: format!("{prefix}:delivery"),
            node,
        }
    }

    /// Tells the other nodes of a logged push. A failure loses only the
    /// live copy: their connections get it from the log at their next push
    /// or reconnect.
    pub async fn publish(&self, user: Uuid, seq: u64, event: &str, payload: &Value) {
        let message = LoggedMessage {
            node: self.node,
            user,
            seq,
            event: event.to_owned(),
            payload: payload.clone(),
        };
        let text = match serde_json::to_string(&message) {
            Ok(text) => text,
            Err(err) => {
                tracing::error!(error = %err, "logged push not encodable");
                return;
            }
        };
        if let Err(err) = self.bus.publish_text(&self.name, &text).await {
            tracing::warn!(user_id = %user, seq, error = %err, "logged push not published to other nodes");
        }
    }

    /// Hands every logged push published by another node to `deliver`,
    /// until the bus goes away. Resubscribing after a Redis outage is the
    /// bus's job.
    pub async fn listen<F, Fut>(self, deliver: F)
    where
        F: Fn(LoggedMessage) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let messages = loop {
            match self.bus.subscribe(self.name.clone(), 4096).await {
                Ok(messages) => break messages,
                Err(err) => {
                    tracing::warn!(channel = %self.name, error = %err, "cannot subscribe to the delivery channel yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        };
        let node = self.node;
        let deliver = &deliver;
        messages
            .for_each_concurrent(CONCURRENT_DELIVERIES, |(_, raw)| async move {
                match serde_json::from_slice::<LoggedMessage>(&raw) {
                    Ok(message) if message.node == node => {}
                    Ok(message) => deliver(message).await,
                    Err(err) => {
                        tracing::warn!(error = %err, "unreadable message on the delivery channel")
                    }
                }
            })
            .await;
    }
}
