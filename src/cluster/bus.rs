//! One reconnecting Redis pub/sub connection per node.
//!
//! socketioxide-redis ships a driver on a plain multiplexed connection,
//! which stays dead after Redis restarts: cross-node delivery would stop
//! until the node restarts. This driver uses redis-rs's `ConnectionManager`
//! instead, which reconnects with back-off and resubscribes every channel
//! by itself; a heartbeat makes sure a dropped connection is noticed even
//! when nothing is being published. Messages arrive as RESP3 pushes and are
//! routed to the subscriber of their channel.
//!
//! An outage must not stall delivery. While `ConnectionManager` reconnects,
//! every command waits for it (7.5 s per push in issue 16's measurement),
//! and socketioxide's adapter publishes before it delivers even to this
//! node's sockets. So every command on the push path is bounded by
//! `timeout`, and a breaker remembers that Redis is unreachable: once a
//! command has timed out or lost its connection, publishes fail at once
//! (the push service then delivers locally, see `push::emit`) until the
//! heartbeat's PING answers again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, ErrorKind, PushInfo, PushKind, RedisError, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

type Subscribers = RwLock<HashMap<String, mpsc::Sender<ChanItem>>>;

const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest wait for a command off the push path.
const OFF_PATH_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisBus {
    conn: ConnectionManager,
    subscribers: Arc<Subscribers>,
    /// Longest wait for one command (`--redis-timeout-ms`).
    timeout: Duration,
    /// The breaker: set when a command found Redis unreachable, cleared by
    /// the heartbeat's next answered PING.
    down: Arc<AtomicBool>,
}

impl RedisBus {
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(with_resp3(url))?;
        let subscribers: Arc<Subscribers> = Arc::default();
        let routes = Arc::downgrade(&subscribers);
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
            // (subscribing at start, presence): a loaded machine must not
            // fail a node's start for a slow SUBSCRIBE. The push path has
            // `bounded`, at `timeout`.
            .set_connection_timeout(Some(timeout.max(OFF_PATH_TIMEOUT)))
            .set_response_timeout(Some(timeout.max(OFF_PATH_TIMEOUT)));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let bus = Self {
            conn,
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
        let up = ping(self.conn.clone(), self.timeout).await;
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

    /// A handle on the shared connection, for Tidings' own keys (presence).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Publishes a text message (our own channels, e.g. `Presence`).
    pub async fn publish_text(&self, channel: &str, message: &str) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.publish::<_, _, Value>(channel, message))
            .await
            .map(|_| ())
    }

    fn spawn_heartbeat(&self) {
        let alive: Weak<Subscribers> = Arc::downgrade(&self.subscribers);
        let (conn, timeout, down) = (self.conn.clone(), self.timeout, self.down.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if alive.strong_count() == 0 {
                    return;
                }
                note_health(&down, ping(conn.clone(), timeout).await);
            }
        });
    }
}

impl Driver for RedisBus {
    type Error = RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), RedisError> {
        let mut conn = self.conn.clone();
        self.bounded(conn.publish::<_, _, Value>(chan, val))
            .await
            .map(|_| ())
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, RedisError> {
        let (tx, rx) = mpsc::channel(size);
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(chan.clone(), tx);
        self.conn.clone().subscribe(chan.as_str()).await?;
        Ok(MessageStream::new(rx))
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), RedisError> {
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&chan);
        self.conn.clone().unsubscribe(chan).await
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, RedisError> {
        let mut conn = self.conn.clone();
        let mut numsub = redis::cmd("PUBSUB");
        numsub.arg("NUMSUB").arg(chan);
        let (_, count): (String, u16) = self.bounded(numsub.query_async(&mut conn)).await?;
        Ok(count)
    }
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

async fn ping(mut conn: ConnectionManager, timeout: Duration) -> bool {
    let ping = async move { redis::cmd("PING").query_async::<String>(&mut conn).await };
    tokio::time::timeout(timeout, ping)
        .await
        .is_ok_and(|answer| answer.is_ok())
}

fn route(push: PushInfo, subscribers: &Subscribers) {
    if push.kind != PushKind::Message || push.data.len() < 2 {
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
    if let Some(tx) = routes.get(&channel) {
        if let Err(err) = tx.try_send((channel, payload)) {
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
