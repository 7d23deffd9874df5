//! Which Redis deployment a node talks to, as chosen on the command line:
//! one Redis (`--redis-url`), a Redis Cluster (`--redis-cluster-nodes`) or
//! a master followed through Sentinel (`--redis-sentinels` with
//! `--redis-sentinel-master`). Exactly one may be given; `Config::validate`
//! refuses the rest before anything connects.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One Redis, by URL.
    Single { url: String },
    /// A Redis Cluster, found from any of these seed nodes (`host:port` or
    /// `redis://…` URLs); the rest of the cluster is learnt from them.
    Cluster { seeds: Vec<String> },
    /// The master Sentinel names `master`, asked of these Sentinels.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl RedisTopology {
    /// Whether node-to-node channels are sharded (`SPUBLISH`/`SSUBSCRIBE`).
    pub fn sharded(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }
}

impl fmt::Display for RedisTopology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single { .. } => f.write_str("one Redis"),
            Self::Cluster { seeds } => write!(f, "Redis Cluster (seeds {})", seeds.join(",")),
            Self::Sentinel { sentinels, master } => {
                write!(
                    f,
                    "Sentinel master {master:?} (via {})",
                    sentinels.join(",")
                )
            }
        }
    }
}

/// A `host:port` entry as a `redis://` URL (full URLs are kept, so a
/// password or TLS scheme can be given per entry).
pub fn node_url(entry: &str) -> String {
    if entry.contains("://") {
        entry.to_owned()
    } else {
        format!("redis://{entry}")
    }
}

/// Whether `entry` reads as `host:port` or a `redis(s)://` URL: a list
/// with a typo is refused at start rather than failing to connect.
pub fn valid_node(entry: &str) -> bool {
    if let Some(rest) = entry
        .strip_prefix("redis://")
        .or_else(|| entry.strip_prefix("rediss://"))
    {
        return !rest.is_empty();
    }
    match entry.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains('/')
                && port.parse::<u16>().is_ok_and(|port| port > 0)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_entries_are_host_port_or_urls() {
        assert!(valid_node("127.0.0.1:7101"));
        assert!(valid_node("redis-a.internal:6379"));
        assert!(valid_node("redis://:secret@10.0.0.1:6379"));
        assert!(!valid_node("127.0.0.1"));
        assert!(!valid_node("127.0.0.1:0"));
        assert!(!valid_node("127.0.0.1:99999"));
        assert!(!valid_node(":6379"));
        assert!(!valid_node(""));
        assert_eq!(node_url("h:1"), "redis://h:1");
        assert_eq!(node_url("rediss://h:1"), "rediss://h:1");
    }
}
