//! Each node's figures for the operator view, shared through Redis.
//!
//! Every two seconds a node writes its snapshot under
//! `<prefix>:node:{<node id>}:stats` (one key per node, its id as the hash
//! tag) with a ten-second expiry: a node that dies drops out of the
//! cluster view by itself, with nobody to clean up. The operator view reads
//! every node's key, so whichever node a browser reaches shows the whole
//! cluster.

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

/// The publisher, for the application's tasks (`tasks`); it also ends
/// when the application is gone.
pub async fn publish(app: WeakAppState) {
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
        let key = key(&app.config().redis_prefix, &app.node_id().to_string());
        let written: Result<(), redis::RedisError> = redis::cmd("SET")
            .arg(&key)
            .arg(stats.to_string())
            .arg("EX")
            .arg(EXPIRES_SECS)
            .query_async(&mut bus.connection())
            .await;
        if let Err(err) = written {
            tracing::debug!(error = %err, "could not publish node stats");
        }
    }
}

/// Every node's last snapshot (those written in the last ten seconds).
pub async fn cluster(bus: &RedisBus, prefix: &str) -> Result<Vec<Value>, redis::RedisError> {
    let mut conn = bus.connection();
    let pattern = format!("{prefix}:node:{{*}}:stats");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut nodes = Vec::with_capacity(keys.len());
    // One GET per key, not MGET: the keys live in different hash slots.
    for key in keys {
        let text: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if let Some(stats) = text.and_then(|t| serde_json::from_str(&t).ok()) {
            nodes.push(stats);
        }
    }
    Ok(nodes)
}
