//! Listens on the `BackgroundPush` Redis channel and delivers each message
//! through the push service.
//!
//! A bad message is logged with its reason and counted, never fatal: the
//! loop only ends with the process. Reconnecting after a Redis outage is the
//! bus's job (it resubscribes by itself), so the stream simply goes quiet
//! and resumes.

use futures_util::StreamExt;
use socketioxide_redis::drivers::Driver;

use super::{BackgroundPush, Target};
use crate::metrics::PushKind;
use crate::state::AppState;

pub async fn listen(app: AppState) {
    let Some(bus) = app.bus().cloned() else {
        return;
    };
    let channel = app.config().background_push_channel.clone();
    let mut messages = loop {
        match bus.subscribe(channel.clone(), 1024).await {
            Ok(messages) => break messages,
            Err(err) => {
                tracing::warn!(channel, error = %err, "cannot subscribe to BackgroundPush yet; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(channel, "listening for backend pushes");
    while let Some((_, raw)) = messages.next().await {
        deliver(&app, &raw).await;
    }
}

/// Every node receives every message on the channel, so each delivers to
/// its own sockets only: together they reach every node exactly once.
pub async fn deliver(app: &AppState, raw: &[u8]) {
    let metrics = app.metrics();
    let push = app.push().this_node();
    metrics.background_push_received.inc();
    let message = match BackgroundPush::parse(raw) {
        Ok(push) => push,
        Err(reason) => {
            metrics.background_push_rejected.inc();
            tracing::warn!(%reason, bytes = raw.len(), "BackgroundPush message rejected");
            return;
        }
    };
    let started = std::time::Instant::now();
    match &message.target {
        Target::Room(room) => {
            push.to_rooms(vec![room.clone()], &message.event, &message.payload)
                .await;
        }
        Target::User { user, tab: None } => {
            push.to_user(*user, &message.event, &message.payload).await;
        }
        Target::User {
            user,
            tab: Some(tab),
        } => {
            // Only the node that holds the tab finds it; the others have
            // nothing to do, so not finding it here is not an error.
            let delivered = push
                .to_tab(*user, tab, &message.event, &message.payload)
                .await;
            tracing::debug!(user_id = %user, delivered, "BackgroundPush to a tab");
        }
    }
    // Every node takes each message for its own sockets: counted per node.
    metrics.pushed(PushKind::background, started);
}
