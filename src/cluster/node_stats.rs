//! Each node's figures for the operator view, shared through Redis.
//!
//! Every two seconds a node writes its snapshot under
//! `<prefix>:node:{<node id>}:stats` (one key per node, its id as the hash
//! tag) with a ten-second expiry, and its id with the time into the sorted
//! set `<prefix>:node-stats`: a node that dies drops out of the cluster
//! view by itself, with nobody to clean up. The operator view reads the
//! ids of the last ten seconds from the set and then each node's key, so
//! whichever node a browser reaches shows the whole cluster. (Not `SCAN`:
//! on a Redis Cluster it would see one shard's keys only.)

use std::time::Duration;

use serde_json::Value;
use tokio::time::MissedTickBehavior;

use super::RedisBus;
use crate::state::{AppState, WeakAppState};

pub const PUBLISH_EVERY: Duration = Duration::from_secs(2);
const EXPIRES_SECS: u64 = 10;

fn key(prefix: &str, node_id: &str) -> String {
    format!("{prefix}:node:{{{node_id}}}:stats")
}

/// This node's snapshot with its identity, time and dependencies' state.
pub async fn snapshot(app: &AppState) -> Value {
    let mut stats = app.metrics().snapshot();
    let database = crate::persistence::ping(app.db()).await;
    let redis = match app.bus() {
        Some(bus) => Some(bus.ping().await),
        None => None,
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    if let Some(fields) = stats.as_object_mut() {
        fields.insert("nodeId".into(), app.node_id().to_string().into());
        fields.insert("at".into(), now_ms().into());
        fields.insert("database".into(), word(database).into());
        fields.insert("redis".into(), redis.map_or("not configured", word).into());
    }
    stats
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// Starts the publisher; it stops when the application is gone.
pub fn spawn(app: WeakAppState) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(PUBLISH_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(app) = app.upgrade() else {
                return;
            };
            let Some(bus) = app.bus() else {
                return;
            };
            let stats = snapshot(&app).await;
            let prefix = &app.config().redis_prefix;
            let node = app.node_id().to_string();
            let written = write(bus, prefix, &node, &stats).await;
            if let Err(err) = written {
                tracing::debug!(error = %err, "could not publish node stats");
            }
        }
    });
}

fn index_key(prefix: &str) -> String {
    format!("{prefix}:node-stats")
}

/// This node's snapshot, then its entry in the index (older entries out).
async fn write(
    bus: &RedisBus,
    prefix: &str,
    node: &str,
    stats: &Value,
) -> Result<(), redis::RedisError> {
    let mut conn = bus.connection();
    redis::cmd("SET")
        .arg(key(prefix, node))
        .arg(stats.to_string())
        .arg("EX")
        .arg(EXPIRES_SECS)
        .query_async::<()>(&mut conn)
        .await?;
    let now = now_ms();
    redis::cmd("ZADD")
        .arg(index_key(prefix))
        .arg(now)
        .arg(node)
        .query_async::<()>(&mut conn)
        .await?;
    redis::cmd("ZREMRANGEBYSCORE")
        .arg(index_key(prefix))
        .arg("-inf")
        .arg(now.saturating_sub(EXPIRES_SECS * 1000))
        .query_async::<()>(&mut conn)
        .await
}

/// Every node's last snapshot (those written in the last ten seconds).
pub async fn cluster(bus: &RedisBus, prefix: &str) -> Result<Vec<Value>, redis::RedisError> {
    let mut conn = bus.connection();
    let since = now_ms().saturating_sub(EXPIRES_SECS * 1000);
    let nodes: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(index_key(prefix))
        .arg(since)
        .arg("+inf")
        .query_async(&mut conn)
        .await?;
    let mut snapshots = Vec::with_capacity(nodes.len());
    // One GET per key, not MGET: the keys live in different hash slots.
    for node in nodes {
        let text: Option<String> = redis::cmd("GET")
            .arg(key(prefix, &node))
            .query_async(&mut conn)
            .await?;
        if let Some(stats) = text.and_then(|t| serde_json::from_str(&t).ok()) {
            snapshots.push(stats);
        }
    }
    Ok(snapshots)
}
