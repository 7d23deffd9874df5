//! Where "who is online" is kept: in process for one node, in Redis for a
//! cluster. Both answer the same questions, and both report a change only
//! to the one caller whose step made it, so each transition is announced
//! exactly once however many nodes race.
//!
//! In Redis (keys under `<prefix>:presence:`):
//! - `user:<id>`: the set of nodes holding at least one authenticated
//!   socket of that user. The user is online while it is not empty.
//! - `node:<id>`: the users a node has put itself down for, so that a dead
//!   node's entries can be taken out without scanning every user.
//! - `nodes`: when each node last beat, by Redis's own clock (no skew
//!   between nodes). A node silent for too long is swept: it is taken out
//!   of every set it was in, and the users it leaves empty go offline.
//!
//! Each step is one Lua script, so it is atomic with respect to the others.

use std::collections::HashSet;
use std::sync::Mutex;

use entity::now_ms;
use redis::aio::ConnectionManager;
use redis::{RedisError, Script};
use uuid::Uuid;

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

/// The Redis side. Clones of one connection (the node's bus) carry it.
pub struct RedisStore {
    conn: ConnectionManager,
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

const HERE: &str = r"
local added = redis.call('SADD', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if added == 1 and redis.call('SCARD', KEYS[1]) == 1 then return {1, now} end
return {0, now}
";

const GONE: &str = r"
local removed = redis.call('SREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if removed == 1 and redis.call('SCARD', KEYS[1]) == 0 then return {1, now} end
return {0, now}
";

const FORGET: &str = r"
local nodes = redis.call('SMEMBERS', KEYS[1])
for _, node in ipairs(nodes) do redis.call('SREM', ARGV[1] .. node, ARGV[2]) end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if #nodes > 0 then return {1, now} end
return {0, now}
";

/// Returns 1 if the node was not registered (first beat, or it had been
/// swept as dead and must put its users back).
const BEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now, ARGV[1])
";

/// ARGV: key prefix, silence (ms) after which a node is dead, and a node id
/// to remove regardless (a node leaving on shutdown) or ''.
const SWEEP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead
if ARGV[3] ~= '' then
  dead = {ARGV[3]}
else
  dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
end
local offline = {}
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  local index = ARGV[1] .. 'node:' .. node
  for _, user in ipairs(redis.call('SMEMBERS', index)) do
    local key = ARGV[1] .. 'user:' .. user
    if redis.call('SREM', key, node) == 1 and redis.call('SCARD', key) == 0 then
      table.insert(offline, user)
    end
  end
  redis.call('DEL', index)
end
return {now, dead, offline}
";

impl RedisStore {
    pub fn new(conn: ConnectionManager, prefix: &str, node: Uuid) -> Self {
        Self {
            conn,
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

    fn user_key(&self, user: Uuid) -> String {
        format!("{}user:{user}", self.keys)
    }

    fn node_key(&self) -> String {
        format!("{}node:{}", self.keys, self.node)
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.keys)
    }

    async fn set(&self, user: Uuid, here: bool) -> Result<Option<Transition>, RedisError> {
        let script = if here {
            &self.scripts.here
        } else {
            &self.scripts.gone
        };
        let (changed, now): (i64, i64) = script
            .key(self.user_key(user))
            .key(self.node_key())
            .arg(&self.node)
            .arg(user.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok((changed == 1).then_some(Transition {
            user,
            online: here,
            timestamp: now,
        }))
    }

    async fn forget(&self, user: Uuid) -> Result<Option<Transition>, RedisError> {
        let (changed, now): (i64, i64) = self
            .scripts
            .forget
            .key(self.user_key(user))
            .arg(format!("{}node:", self.keys))
            .arg(user.to_string())
            .invoke_async(&mut self.conn.clone())
            .await?;
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
        let mut pipe = redis::pipe();
        for user in users {
            pipe.exists(self.user_key(*user));
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Records that this node is alive. Returns true when the node was not
    /// registered: on the first beat, or after the others swept it.
    pub async fn beat(&self) -> Result<bool, RedisError> {
        let added: i64 = self
            .scripts
            .beat
            .key(self.nodes_key())
            .arg(&self.node)
            .invoke_async(&mut self.conn.clone())
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
        let (now, dead_nodes, offline): (i64, Vec<String>, Vec<String>) = self
            .scripts
            .sweep
            .key(self.nodes_key())
            .arg(&self.keys)
            .arg(dead_after_ms)
            .arg(leaving.map(|n| n.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await?;
        let went_offline = offline
            .iter()
            .filter_map(|u| Uuid::parse_str(u).ok())
            .map(|user| Transition {
                user,
                online: false,
                timestamp: now,
            })
            .collect();
        Ok(Sweep {
            dead_nodes,
            went_offline,
        })
    }
}
