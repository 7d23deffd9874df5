//! Listens on the `BackgroundPush` Redis channel and delivers each message
//! through the push service.
//!
//! A bad message is logged with its reason and counted, never fatal: the
//! loop only ends with the process. Reconnecting after a Redis outage is the
//! bus's job (it resubscribes by itself), so the stream simply goes quiet
//! and resumes.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{BackgroundPush, Target};
use crate::metrics::PushKind;
use crate::state::AppState;

/// How long a node remembers a message it saw, to tell a repeat of it from
/// the same message seen by every node (see `Claims`).
const CLAIM_WINDOW: Duration = Duration::from_secs(10);

pub async fn listen(app: AppState) {
    let Some(bus) = app.bus().cloned() else {
        return;
    };
    let channel = app.config().background_push_channel.clone();
    let mut messages = loop {
        match bus.subscribe_to_services(channel.clone(), 1024).await {
            Ok(messages) => break messages,
            Err(err) => {
                tracing::warn!(channel, error = %err, "cannot subscribe to BackgroundPush yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(channel, "listening for backend pushes");
    let mut claims = Claims::default();
    while let Some((_, raw)) = messages.next().await {
        deliver(&app, &raw, &mut claims).await;
    }
}

/// Every node receives every message on the channel. Pushes to rooms and
/// tabs are delivered by each node to its own sockets, so together they
/// reach every node once. A push to a user is durable and must be logged
/// once: the node that claims it in Redis logs it and delivers it to the
/// whole cluster, the others leave it.
pub async fn deliver(app: &AppState, raw: &[u8], claims: &mut Claims) {
    let metrics = app.metrics();
    let here = app.push().this_node();
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
            here.to_rooms(vec![room.clone()], &message.event, &message.payload)
                .await;
        }
        Target::User { user, tab: None } => match claims.claim(app, raw).await {
            Ok(true) => {
                app.push()
                    .to_user(*user, &message.event, &message.payload)
                    .await
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(user_id = %user, error = %err, "cannot claim a BackgroundPush; delivering here without logging");
                here.to_users_at_most_once(&[*user], &message.event, &message.payload)
                    .await;
            }
        },
        Target::User {
            user,
            tab: Some(tab),
        } => {
            // Only the node that holds the tab finds it; the others have
            // nothing to do, so not finding it here is not an error.
            let delivered = here
                .to_tab(*user, tab, &message.event, &message.payload)
                .await;
            tracing::debug!(user_id = %user, delivered, "BackgroundPush to a tab");
        }
    }
    // Every node takes each message for its own sockets: counted per node.
    metrics.pushed(PushKind::background, started);
}

/// Which node logs a `BackgroundPush` to a user. Messages carry no id, and
/// a backend may well publish the same message twice on purpose; but every
/// node subscribed to the channel sees the same messages in the same order.
/// So the k-th copy of a message within `CLAIM_WINDOW` is claimed in Redis
/// as `<digest>:<k>` (`SET NX`): exactly one node wins each copy.
#[derive(Default)]
pub struct Claims {
    /// Copies of each message seen within the window.
    copies: HashMap<[u8; 32], usize>,
    /// The same copies, oldest first, so expiring them costs only what
    /// expires (not a walk over every message of the window per message).
    seen: VecDeque<(Instant, [u8; 32])>,
}

impl Claims {
    async fn claim(&mut self, app: &AppState, raw: &[u8]) -> Result<bool, redis::RedisError> {
        let Some(bus) = app.bus() else {
            return Ok(true);
        };
        let now = Instant::now();
        while let Some((at, digest)) = self.seen.front().copied() {
            if now - at <= CLAIM_WINDOW {
                break;
            }
            self.seen.pop_front();
            if let Some(count) = self.copies.get_mut(&digest) {
                *count -= 1;
                if *count == 0 {
                    self.copies.remove(&digest);
                }
            }
        }
        let digest: [u8; 32] = Sha256::digest(raw).into();
        self.seen.push_back((now, digest));
        let copies = self.copies.entry(digest).or_default();
        *copies += 1;
        let key = format!(
            "{}:bgpush:{}:{}",
            app.config().redis_prefix,
            hex(&digest),
            copies
        );
        let mut claim = redis::cmd("SET");
        claim
            .arg(key)
            .arg(app.node_id().to_string())
            .arg("NX")
            .arg("PX")
            .arg(CLAIM_WINDOW.as_millis() as u64 * 2);
        let mut conn = bus.connection();
        let won: Option<String> = bus
            .bounded(async move { claim.query_async(&mut conn).await })
            .await?;
        Ok(won.is_some())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
