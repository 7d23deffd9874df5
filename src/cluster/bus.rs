//! One Redis bus per node, the same type over the three deployments Tidings
//! runs on (see `topology`): one Redis, a Redis Cluster, or a master
//! followed through Sentinel. The rest of the code sends commands through
//! `connection()` and publishes through the bus without caring which.
//!
//! - **One Redis**: redis-rs's `ConnectionManager`, which reconnects with
//!   back-off and resubscribes every channel by itself.
//! - **Redis Cluster**: redis-rs's async `ClusterConnection`. It follows
//!   `MOVED`/`ASK` and refreshes the slot map when a node fails, and it
//!   tracks subscriptions and moves them to whichever node now owns their
//!   slot. Node-to-node channels are sharded (`SPUBLISH`/`SSUBSCRIBE`): a
//!   message goes to the one shard owning its channel's slot instead of
//!   being broadcast over the whole cluster bus. Channels shared with
//!   backend services (`BackgroundPush`, `Presence`) stay plain
//!   `PUBLISH`/`SUBSCRIBE`, which a backend can send to any node.
//! - **Sentinel**: a `ConnectionManager` to the master Sentinel names. The
//!   heartbeat asks Sentinel again whenever the master stops answering (and
//!   every few seconds anyway, to see a manual failover); when Sentinel
//!   names another master, a new manager replaces the old one and every
//!   channel is subscribed on it again.
//!
//! An outage must not stall delivery. While a connection reconnects every
//! command waits for it (7.5 s per push in issue 16's measurement), and
//! socketioxide's adapter publishes before it delivers even to this node's
//! sockets. So every command on the push path is bounded by `timeout`, and
//! a breaker remembers that Redis is unreachable: once a command has timed
//! out or lost its connection, publishes fail at once (the push service
//! then delivers locally, see `push::emit`) until the heartbeat's PING
//! answers again. On a cluster the heartbeat asks for `CLUSTER INFO`
//! instead, so the breaker is open while some slot has no master (from a
//! master's death until its replica is promoted).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{
    Cmd, ErrorKind, Pipeline, ProtocolVersion, PushInfo, PushKind, RedisError, RedisFuture, Value,
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use super::topology::{node_url, RedisTopology};

type Subscribers = RwLock<HashMap<String, Subscription>>;

/// Where a channel's messages go, and how it was subscribed.
struct Subscription {
    tx: mpsc::Sender<ChanItem>,
    /// `SSUBSCRIBE` on a cluster (node-to-node channels).
    sharded: bool,
}

const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest wait for a command off the push path.
const OFF_PATH_TIMEOUT: Duration = Duration::from_secs(2);
/// With Sentinel, how many heartbeats pass between two questions to
/// Sentinel while the master answers (a manual failover leaves the old
/// master up, as a replica).
const SENTINEL_CHECK_EVERY: u32 = 5;

/// Why a node could not join its Redis at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to Redis at {url}: {source}")]
    Unreachable { url: String, source: RedisError },
    #[error("cannot join the Redis Cluster through any of its seeds ({seeds}): {source}")]
    NoClusterSeed { seeds: String, source: RedisError },
    #[error("no Sentinel answered ({sentinels}): {reason}")]
    NoSentinel { sentinels: String, reason: String },
    #[error("Sentinel knows no master named {master:?} (asked {sentinels})")]
    UnknownMaster { master: String, sentinels: String },
    #[error("cannot connect to the master {master:?} at {addr} that Sentinel names: {source}")]
    MasterUnreachable {
        master: String,
        addr: String,
        source: RedisError,
    },
    #[error("bad Redis address: {0}")]
    Address(RedisError),
}

#[derive(Clone)]
pub struct RedisBus {
    link: Link,
    subscribers: Arc<Subscribers>,
    /// Longest wait for one command (`--redis-timeout-ms`).
    timeout: Duration,
    /// The breaker: set when a command found Redis unreachable, cleared by
    /// the heartbeat's next answered PING.
    down: Arc<AtomicBool>,
}

#[derive(Clone)]
enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<Followed>),
}

/// The master Sentinel names, and a manager connected to it.
struct Followed {
    sentinels: Vec<String>,
    master: String,
    current: RwLock<(String, ConnectionManager)>,
}

/// A connection for Tidings' own commands, whatever the deployment.
/// Cheap to clone; on a cluster each command goes to the node owning its
/// key's slot, so a script or pipeline must keep its keys in one slot.
#[derive(Clone)]
pub enum BusConnection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for BusConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl RedisBus {
    pub async fn connect(topology: &RedisTopology, timeout: Duration) -> Result<Self, BusError> {
        let subscribers: Arc<Subscribers> = Arc::default();
        let link = match topology {
            RedisTopology::Single { url } => {
                let conn = manager(&with_resp3(url), &subscribers, timeout)
                    .await
                    .map_err(|source| BusError::Unreachable {
                        url: url.clone(),
                        source,
                    })?;
                Link::Single(conn)
            }
            RedisTopology::Cluster { seeds } => {
                Link::Cluster(cluster(seeds, &subscribers, timeout).await?)
            }
            RedisTopology::Sentinel { sentinels, master } => {
                let addr = find_master(sentinels, master, timeout).await?;
                let conn = manager(
                    &format!("redis://{addr}?protocol=resp3"),
                    &subscribers,
                    timeout,
                )
                .await
                .map_err(|source| BusError::MasterUnreachable {
                    master: master.clone(),
                    addr: addr.clone(),
                    source,
                })?;
                tracing::info!(master, %addr, "following the master Sentinel names");
                Link::Sentinel(Arc::new(Followed {
                    sentinels: sentinels.clone(),
                    master: master.clone(),
                    current: RwLock::new((addr, conn)),
                }))
            }
        };
        let bus = Self {
            link,
            subscribers,
            timeout,
            down: Arc::default(),
        };
        bus.spawn_heartbeat();
        Ok(bus)
    }

    /// Whether Redis answers right now, within the timeout (for `/readyz`;
    /// it asks even while the breaker is open, and sets the breaker).
    pub async fn ping(&self) -> bool {
        let up = ping(self.connection(), self.timeout).await;
        note_health(&self.down, up);
        up
    }

    /// Runs a command on the push path: refused at once while the breaker
    /// is open, and given up after the timeout (which opens it).
    pub async fn bounded<T>(
        &self,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, RedisError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(RedisError::from((ErrorKind::Io, "Redis is unreachable")));
        }
        let result = match tokio::time::timeout(self.timeout, command).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::from((
                ErrorKind::Io,
                "Redis did not answer in time",
            ))),
        };
        if let Err(err) = &result {
            if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() {
                tracing::debug!(error = %err, "Redis command failed");
                note_health(&self.down, false);
            }
        }
        result
    }

    /// A handle for Tidings' own keys (the log, presence, claims). With
    /// Sentinel, the master of the moment.
    pub fn connection(&self) -> BusConnection {
        self.link.connection()
    }

    /// `WAIT`s until `replicas` replicas of the master holding `key` have
    /// every write this node sent it so far, for at most half the timeout
    /// (so a missing replica slows a push down but never trips the
    /// breaker). Returns how many did. On a cluster the `WAIT` goes to
    /// the master of `key`'s slot, over the same connection as the write.
    pub async fn wait_for_replicas(&self, key: &str, replicas: u32) -> Result<u32, RedisError> {
        let wait_ms = u64::try_from((self.timeout / 2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(wait_ms);
        let answer = match self.connection() {
            BusConnection::Single(mut conn) => {
                self.bounded(async move { wait.query_async::<Value>(&mut conn).await })
                    .await?
            }
            BusConnection::Cluster(mut conn) => {
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(key, SlotAddr::Master),
                ));
                self.bounded(async move { conn.route_command(wait, route).await })
                    .await?
            }
        };
        redis::from_redis_value(answer).map_err(RedisError::from)
    }

    /// Publishes a text message to the other nodes (`<prefix>:delivery`,
    /// `<prefix>:plain`): sharded on a cluster.
    pub async fn publish_text(&self, channel: &str, message: &str) -> Result<(), RedisError> {
        self.publish_to(channel, message.as_bytes().to_vec(), self.sharded())
            .await
    }

    /// Publishes a text message for backend services (`Presence`): a plain
    /// `PUBLISH`, heard by a subscriber on any node of a cluster.
    pub async fn publish_to_services(
        &self,
        channel: &str,
        message: &str,
    ) -> Result<(), RedisError> {
        self.publish_to(channel, message.as_bytes().to_vec(), false)
            .await
    }

    /// Subscribes to a channel backend services publish on
    /// (`BackgroundPush`): a plain `SUBSCRIBE` on every deployment.
    pub async fn subscribe_to_services(
        &self,
        channel: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, RedisError> {
        self.subscribe_to(channel, size, false).await
    }

    fn sharded(&self) -> bool {
        matches!(self.link, Link::Cluster(_))
    }

    async fn publish_to(
        &self,
        channel: &str,
        message: Vec<u8>,
        sharded: bool,
    ) -> Result<(), RedisError> {
        let mut conn = self.connection();
        let verb = if sharded { "SPUBLISH" } else { "PUBLISH" };
        let mut publish = redis::cmd(verb);
        publish.arg(channel).arg(message);
        self.bounded(async move { publish.query_async::<Value>(&mut conn).await })
            .await
            .map(|_| ())
    }

    async fn subscribe_to(
        &self,
        channel: String,
        size: usize,
        sharded: bool,
    ) -> Result<MessageStream<ChanItem>, RedisError> {
        let (tx, rx) = mpsc::channel(size);
        let sharded = sharded && self.sharded();
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.clone(), Subscription { tx, sharded });
        match self.connection() {
            BusConnection::Cluster(mut conn) if sharded => {
                conn.ssubscribe(channel.as_str()).await?
            }
            BusConnection::Cluster(mut conn) => conn.subscribe(channel.as_str()).await?,
            BusConnection::Single(mut conn) => conn.subscribe(channel.as_str()).await?,
        }
        Ok(MessageStream::new(rx))
    }

    fn spawn_heartbeat(&self) {
        // The task must not keep the bus alive: it holds the link and a
        // weak handle on the subscribers, which go with the last bus.
        let alive: Weak<Subscribers> = Arc::downgrade(&self.subscribers);
        let (link, timeout, down) = (self.link.clone(), self.timeout, self.down.clone());
        tokio::spawn(async move {
            let mut beats: u32 = 0;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let Some(subscribers) = alive.upgrade() else {
                    return;
                };
                let up = ping(link.connection(), timeout).await;
                beats = beats.wrapping_add(1);
                if let Link::Cluster(conn) = &link {
                    if up && down.load(Ordering::Relaxed) {
                        resubscribe_sharded(conn.clone(), &subscribers).await;
                    }
                }
                if let Link::Sentinel(followed) = &link {
                    if !up || beats % SENTINEL_CHECK_EVERY == 0 {
                        follow(followed, &subscribers, timeout).await;
                    }
                }
                drop(subscribers);
                note_health(&down, up);
            }
        });
    }
}

impl Link {
    fn connection(&self) -> BusConnection {
        match self {
            Self::Single(conn) => BusConnection::Single(conn.clone()),
            Self::Cluster(conn) => BusConnection::Cluster(conn.clone()),
            Self::Sentinel(followed) => BusConnection::Single(
                followed
                    .current
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .clone(),
            ),
        }
    }
}

impl Driver for RedisBus {
    type Error = RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), RedisError> {
        self.publish_to(&chan, val, self.sharded()).await
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, RedisError> {
        self.subscribe_to(chan, size, self.sharded()).await
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), RedisError> {
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        match self.connection() {
            BusConnection::Cluster(mut conn) => conn.sunsubscribe(chan).await,
            BusConnection::Single(mut conn) => conn.unsubscribe(chan).await,
        }
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, RedisError> {
        let mut conn = self.connection();
        let mut numsub = redis::cmd("PUBSUB");
        numsub
            .arg(if self.sharded() {
                "SHARDNUMSUB"
            } else {
                "NUMSUB"
            })
            .arg(chan);
        let answer: Value = self
            .bounded(async move { numsub.query_async(&mut conn).await })
            .await?;
        Ok(subscriber_count(answer))
    }
}

/// `PUBSUB NUMSUB`'s answer: `[channel, count]` from one Redis, a map
/// `{channel: count}` once redis-rs has summed a cluster's nodes.
fn subscriber_count(answer: Value) -> u16 {
    let count = match answer {
        Value::Array(items) => items.into_iter().nth(1),
        Value::Map(pairs) => pairs.into_iter().next().map(|(_, count)| count),
        _ => None,
    };
    count
        .and_then(|count| redis::from_redis_value::<u16>(count).ok())
        .unwrap_or(0)
}

/// A `ConnectionManager` whose pushes are routed to `subscribers`.
async fn manager(
    url: &str,
    subscribers: &Arc<Subscribers>,
    timeout: Duration,
) -> Result<ConnectionManager, RedisError> {
    let client = redis::Client::open(url)?;
    let routes = Arc::downgrade(subscribers);
    let config = ConnectionManagerConfig::new()
        .set_push_sender(move |push: PushInfo| {
            if let Some(routes) = routes.upgrade() {
                route(push, &routes);
            }
            Ok::<(), redis::aio::SendError>(())
        })
        .set_automatic_resubscription()
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(2))
        // The connection's own bounds are for what is off the push path
        // (subscribing at start, presence): a loaded machine must not fail
        // a node's start for a slow SUBSCRIBE. The push path has `bounded`,
        // at `timeout`.
        .set_connection_timeout(Some(timeout.max(OFF_PATH_TIMEOUT)))
        .set_response_timeout(Some(timeout.max(OFF_PATH_TIMEOUT)));
    ConnectionManager::new_with_config(client, config).await
}

/// A cluster connection whose pushes (sharded ones included) are routed to
/// `subscribers`.
async fn cluster(
    seeds: &[String],
    subscribers: &Arc<Subscribers>,
    timeout: Duration,
) -> Result<ClusterConnection, BusError> {
    let routes = Arc::downgrade(subscribers);
    let client = ClusterClientBuilder::new(seeds.iter().map(|seed| node_url(seed)))
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(timeout.max(OFF_PATH_TIMEOUT))
        .response_timeout(timeout.max(OFF_PATH_TIMEOUT))
        .push_sender(move |push: PushInfo| {
            if let Some(routes) = routes.upgrade() {
                route(push, &routes);
            }
            Ok::<(), redis::aio::SendError>(())
        })
        .build()
        .map_err(BusError::Address)?;
    client
        .get_async_connection()
        .await
        .map_err(|source| BusError::NoClusterSeed {
            seeds: seeds.join(","),
            source,
        })
}

/// Asks each Sentinel in turn for `master`'s address (`host:port`).
async fn find_master(
    sentinels: &[String],
    master: &str,
    timeout: Duration,
) -> Result<String, BusError> {
    let mut unknown = false;
    let mut last_error = String::from("no Sentinel given");
    for sentinel in sentinels {
        match ask_sentinel(sentinel, master, timeout).await {
            Ok(Some(addr)) => return Ok(addr),
            Ok(None) => unknown = true,
            Err(err) => last_error = format!("{sentinel}: {err}"),
        }
    }
    if unknown {
        Err(BusError::UnknownMaster {
            master: master.to_owned(),
            sentinels: sentinels.join(","),
        })
    } else {
        Err(BusError::NoSentinel {
            sentinels: sentinels.join(","),
            reason: last_error,
        })
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME`: `None` when this Sentinel does not
/// monitor such a master.
async fn ask_sentinel(
    sentinel: &str,
    master: &str,
    timeout: Duration,
) -> Result<Option<String>, RedisError> {
    let client = redis::Client::open(node_url(sentinel))?;
    let bound = timeout.max(OFF_PATH_TIMEOUT);
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(bound))
        .set_response_timeout(Some(bound));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master)
        .query_async(&mut conn)
        .await?;
    Ok(addr.map(|(host, port)| format!("{host}:{port}")))
}

/// Moves to the master Sentinel names now, if it changed: a new manager,
/// every channel subscribed again on it, then swapped in.
async fn follow(followed: &Followed, subscribers: &Arc<Subscribers>, timeout: Duration) {
    let addr = match find_master(&followed.sentinels, &followed.master, timeout).await {
        Ok(addr) => addr,
        Err(err) => {
            tracing::warn!(error = %err, "cannot ask Sentinel for the master");
            return;
        }
    };
    let current = followed
        .current
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .0
        .clone();
    if addr == current {
        return;
    }
    let mut conn = match manager(
        &format!("redis://{addr}?protocol=resp3"),
        subscribers,
        timeout,
    )
    .await
    {
        Ok(conn) => conn,
        Err(err) => {
            tracing::warn!(%addr, error = %err, "cannot connect to the new master yet");
            return;
        }
    };
    let channels: Vec<String> = subscribers
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    for channel in &channels {
        if let Err(err) = conn.subscribe(channel.as_str()).await {
            tracing::warn!(%addr, channel, error = %err, "cannot resubscribe on the new master yet");
            return;
        }
    }
    tracing::warn!(
        master = followed.master,
        from = current,
        to = %addr,
        channels = channels.len(),
        "Sentinel names a new master; following it"
    );
    *followed.current.write().unwrap_or_else(|p| p.into_inner()) = (addr, conn);
}

/// Subscribes every sharded channel again once a cluster is whole after an
/// outage. redis-rs moves subscriptions to a slot's new owner when it
/// refreshes its slot map, but a failover seen only through failed
/// commands can leave a channel on the dead master (seen in
/// tests/api/redis_failover.rs). `SSUBSCRIBE` goes to the slot's master of
/// the moment and is idempotent there. Plain channels are left to redis-rs:
/// subscribed on two nodes, a broadcast `PUBLISH` would arrive twice.
async fn resubscribe_sharded(mut conn: ClusterConnection, subscribers: &Subscribers) {
    let channels: Vec<String> = subscribers
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(_, subscription)| subscription.sharded)
        .map(|(channel, _)| channel.clone())
        .collect();
    for channel in &channels {
        if let Err(err) = conn.ssubscribe(channel.as_str()).await {
            tracing::warn!(channel, error = %err, "cannot subscribe again after the outage");
        }
    }
    tracing::info!(
        channels = channels.len(),
        "sharded channels subscribed again"
    );
}

/// Sets the breaker, logging each change once.
fn note_health(down: &AtomicBool, up: bool) {
    let was_down = down.swap(!up, Ordering::Relaxed);
    if up && was_down {
        tracing::info!("Redis is back; cross-node delivery resumes");
    } else if !up && !was_down {
        tracing::warn!("Redis is unreachable; delivering to local sockets only");
    }
}

/// Whether Redis answers within `timeout`: PING for one Redis; for a
/// cluster, `CLUSTER INFO` from any node saying `cluster_state:ok` (every
/// slot has a master). Not a PING to every master: redis-rs sends that to
/// the masters of its own slot map, which still names a dead master until
/// a keyed command makes it refresh, and the breaker stops those commands.
async fn ping(mut conn: BusConnection, timeout: Duration) -> bool {
    let cluster = matches!(conn, BusConnection::Cluster(_));
    let ask = async move {
        if cluster {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut conn)
                .await?;
            Ok::<bool, RedisError>(info.contains("cluster_state:ok"))
        } else {
            redis::cmd("PING").query_async::<Value>(&mut conn).await?;
            Ok(true)
        }
    };
    tokio::time::timeout(timeout, ask)
        .await
        .is_ok_and(|answer| answer.is_ok_and(|ok| ok))
}

fn route(push: PushInfo, subscribers: &Subscribers) {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) || push.data.len() < 2 {
        return;
    }
    let mut data = push.data.into_iter();
    let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        redis::from_redis_value::<String>(channel),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) else {
        tracing::warn!("unreadable message from Redis");
        return;
    };
    let routes = subscribers.read().unwrap_or_else(|p| p.into_inner());
    if let Some(subscription) = routes.get(&channel) {
        if let Err(err) = subscription.tx.try_send((channel, payload)) {
            tracing::warn!(error = %err, "Redis subscriber is behind; message dropped");
        }
    }
}

/// socketioxide-redis needs RESP3 push messages.
fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_counts_read_from_one_redis_and_from_a_cluster() {
        let one = Value::Array(vec![Value::BulkString(b"chan".to_vec()), Value::Int(3)]);
        assert_eq!(subscriber_count(one), 3);
        let summed = Value::Map(vec![(Value::BulkString(b"chan".to_vec()), Value::Int(2))]);
        assert_eq!(subscriber_count(summed), 2);
        assert_eq!(subscriber_count(Value::Nil), 0);
    }
}
