//! Running as many nodes: the Redis bus that carries Socket.IO fan-out
//! between nodes (through socketioxide-redis) and our own channels, over
//! one Redis, a Redis Cluster or a Sentinel-followed master (`topology`).
//!
//! With no Redis configured the process is a single node and none of this
//! runs; the push service then fans out in process.

mod bus;
pub mod node_stats;
pub mod topology;

pub use bus::{BusConnection, BusError, RedisBus};
pub use topology::RedisTopology;

/// socketioxide's Redis adapter, over our reconnecting bus.
pub type ClusterAdapter =
    socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, RedisBus>;
