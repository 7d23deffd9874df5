//! Where "who is online" is kept: in process for one node, in Redis for a
//! cluster. Both answer the same questions, and both report a change only
//! to the one caller whose step made it, so each transition is announced
//! exactly once however many nodes race.
//!
//! In Redis (keys under `<prefix>:presence:`, each hash-tagged so that no
//! script or command touches two hash slots of a Redis Cluster):
//! - `user:{<id>}`: the set of nodes holding at least one authenticated
//!   socket of that user. The user is online while it is not empty.
//! - `node:{<id>}`: the users a node has put itself down for, so that a
//!   dead node's entries can be taken out without scanning every user.
//! - `nodes`: when each node last beat, by Redis's own clock (no skew
//!   between nodes). A node silent for too long is swept: it is taken out
//!   of every set it was in, and the users it leaves empty go offline.
//!
//! Whether a user went online or offline is decided by one Lua script on
//! that user's key alone, so it is atomic with respect to every other step
//! on that user, and a sweep takes each dead node out of `nodes` in one
//! script, so only one sweeper handles it. The node's own index is kept
//! beside, by single-key commands: it is only ever a list of candidates
//! (a stale entry costs a no-op `SREM`).

use std::collections::HashSet;
use std::sync::Mutex;

use entity::now_ms;
use redis::{RedisError, Script};
use uuid::Uuid;

use crate::cluster::{BusConnection, RedisBus};

/// A user went online or offline at `timestamp` (ms since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub user: Uuid,
    pub online: bool,
    pub timestamp: i64,
}

/// What a sweep of dead nodes found.
#[derive(Debug, Default)]
pub struct Sweep {
    pub dead_nodes: Vec<String>,
    pub went_offline: Vec<Transition>,
}

pub enum Store {
    InProcess(Mutex<HashSet<Uuid>>),
    Redis(Box<RedisStore>),
}

impl Store {
    pub fn in_process() -> Self {
        Self::InProcess(Mutex::default())
    }

    /// This node holds (`here`) or no longer holds an authenticated socket
    /// of `user`. Returns the transition if this step made one.
    pub async fn set(&self, user: Uuid, here: bool) -> Result<Option<Transition>, RedisError> {
        match self {
            Self::InProcess(online) => {
                let mut online = online.lock().unwrap_or_else(|p| p.into_inner());
                let changed = if here {
                    online.insert(user)
                } else {
                    online.remove(&user)
                };
                Ok(changed.then(|| Transition {
                    user,
                    online: here,
                    timestamp: now_ms(),
                }))
            }
            Self::Redis(store) => store.set(user, here).await,
        }
    }

    /// Every node lost every socket of `user` at once (a secret rotation
    /// unbinds them all). Returns the offline transition if there was one.
    pub async fn forget(&self, user: Uuid) -> Result<Option<Transition>, RedisError> {
        match self {
            Self::InProcess(_) => self.set(user, false).await,
            Self::Redis(store) => store.forget(user).await,
        }
    }

    /// Which of `users` are online, in the same order.
    pub async fn online(&self, users: &[Uuid]) -> Result<Vec<bool>, RedisError> {
        match self {
            Self::InProcess(online) => {
                let online = online.lock().unwrap_or_else(|p| p.into_inner());
                Ok(users.iter().map(|u| online.contains(u)).collect())
            }
            Self::Redis(store) => store.online(users).await,
        }
    }
}

/// The Redis side, over the node's bus. It asks the bus for a connection
/// at each step rather than keeping one: with Sentinel the bus moves to a
/// new master after a failover.
pub struct RedisStore {
    bus: RedisBus,
    /// `<prefix>:presence:`
    keys: String,
    node: String,
    scripts: Scripts,
}

/// Each hashed once; redis-rs runs them by hash and loads them on a miss.
struct Scripts {
    here: Script,
    gone: Script,
    forget: Script,
    beat: Script,
    sweep: Script,
}

/// KEYS: the user's set. ARGV: this node.
const HERE: &str = r"
local added = redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then return {1, now} end
return {0, now}
";

/// KEYS: the user's set. ARGV: the node that no longer holds the user.
const GONE: &str = r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return {1, now} end
return {0, now}
";

/// KEYS: the user's set. Returns whether it held a node, the time, and the
/// nodes it held (whose indexes the caller updates).
const FORGET: &str = r"
local nodes = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if #nodes > 0 then return {1, now, nodes} end
return {0, now, nodes}
";

/// Returns 1 if the node was not registered (first beat, or it had been
/// swept as dead and must put its users back).
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now, ARGV[1])
";

/// KEYS: `nodes`. ARGV: silence (ms) after which a node is dead, and a
/// node id to remove regardless (a node leaving on shutdown) or ''.
/// Returns the time and the nodes this call took out (each taken out by
/// exactly one caller, which then releases its users).
const SWEEP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead
if ARGV[2] ~= '' then
  dead = {ARGV[2]}
else
  dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
end
for _, node in ipairs(dead) do redis.call('ZREM', KEYS[1], node) end
return {now, dead}
";

impl RedisStore {
    pub fn new(bus: RedisBus, prefix: &str, node: Uuid) -> Self {
        Self {
            bus,
            keys: format!("{prefix}:presence:"),
            node: node.to_string(),
            scripts: Scripts {
                here: Script::new(HERE),
                gone: Script::new(GONE),
                forget: Script::new(FORGET),
                beat: Script::new(BEAT),
                sweep: Script::new(SWEEP),
            },
        }
    }

    fn conn(&self) -> BusConnection {
        self.bus.connection()
    }

    fn user_key(&self, user: Uuid) -> String {
        format!("{}user:{{{user}}}", self.keys)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{}node:{{{node}}}", self.keys)
    }

    /// Adds `user` to (or takes it out of) `node`'s index.
    async fn index(&self, node: &str, user: &str, add: bool) -> Result<(), RedisError> {
        let mut command = redis::cmd(if add { "SADD" } else { "SREM" });
        command.arg(self.node_key(node)).arg(user);
        command.query_async(&mut self.conn()).await
    }

    /// Takes `node` out of `user`'s set: the offline transition, if this
    /// step left the set empty.
    async fn release(&self, user: Uuid, node: &str) -> Result<Option<Transition>, RedisError> {
        let (changed, now): (i64, i64) = self
            .scripts
            .gone
            .key(self.user_key(user))
            .arg(node)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((changed == 1).then_some(Transition {
            user,
            online: false,
            timestamp: now,
        }))
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.keys)
    }

    async fn set(&self, user: Uuid, here: bool) -> Result<Option<Transition>, RedisError> {
        let id = user.to_string();
        if !here {
            let transition = self.release(user, &self.node).await?;
            self.index(&self.node, &id, false).await?;
            return Ok(transition);
        }
        // Indexed first: a node dying between the two steps leaves at most
        // an index entry that its sweep finds nothing for.
        self.index(&self.node, &id, true).await?;
        let (changed, now): (i64, i64) = self
            .scripts
            .here
            .key(self.user_key(user))
            .arg(&self.node)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((changed == 1).then_some(Transition {
            user,
            online: true,
            timestamp: now,
        }))
    }

    async fn forget(&self, user: Uuid) -> Result<Option<Transition>, RedisError> {
        let (changed, now, nodes): (i64, i64, Vec<String>) = self
            .scripts
            .forget
            .key(self.user_key(user))
            .invoke_async(&mut self.conn())
            .await?;
        let id = user.to_string();
        for node in &nodes {
            self.index(node, &id, false).await?;
        }
        Ok((changed == 1).then_some(Transition {
            user,
            online: false,
            timestamp: now,
        }))
    }

    async fn online(&self, users: &[Uuid]) -> Result<Vec<bool>, RedisError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // One EXISTS each rather than a pipeline: on a cluster the users'
        // keys live in different slots. The multiplexed connection still
        // sends them together.
        let asks = users.iter().map(|user| {
            let mut conn = self.conn();
            let key = self.user_key(*user);
            async move {
                redis::cmd("EXISTS")
                    .arg(key)
                    .query_async::<bool>(&mut conn)
                    .await
            }
        });
        futures_util::future::try_join_all(asks).await
    }

    /// Records that this node is alive. Returns true when the node was not
    /// registered: on the first beat, or after the others swept it.
    pub async fn beat(&self) -> Result<bool, RedisError> {
        let added: i64 = self
            .scripts
            .beat
            .key(self.nodes_key())
            .arg(&self.node)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(added == 1)
    }

    /// Takes out every node silent for `dead_after` (or, given `leaving`,
    /// that one node) and reports the users left with no node.
    pub async fn sweep(
        &self,
        dead_after: std::time::Duration,
        leaving: Option<Uuid>,
    ) -> Result<Sweep, RedisError> {
        let dead_after_ms = u64::try_from(dead_after.as_millis()).unwrap_or(u64::MAX);
        let (_now, dead_nodes): (i64, Vec<String>) = self
            .scripts
            .sweep
            .key(self.nodes_key())
            .arg(dead_after_ms)
            .arg(leaving.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn())
            .await?;
        let mut went_offline = Vec::new();
        for node in &dead_nodes {
            let index = self.node_key(node);
            let users: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&index)
                .query_async(&mut self.conn())
                .await?;
            for user in users.iter().filter_map(|u| Uuid::parse_str(u).ok()) {
                if let Some(transition) = self.release(user, node).await? {
                    went_offline.push(transition);
                }
            }
            redis::cmd("DEL")
                .arg(&index)
                .query_async::<()>(&mut self.conn())
                .await?;
        }
        Ok(Sweep {
            dead_nodes,
            went_offline,
        })
    }
}
