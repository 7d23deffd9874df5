//! One reconnecting Redis pub/sub connection per node.
//!
//! socketioxide-redis ships a driver on a plain multiplexed connection,
//! which stays dead after Redis restarts: cross-node delivery would stop
//! until the node restarts. This driver uses redis-rs's `ConnectionManager`
//! instead, which reconnects with back-off and resubscribes every channel
//! by itself; a heartbeat makes sure a dropped connection is noticed even
//! when nothing is being published. Messages arrive as RESP3 pushes and are
//! routed to the subscriber of their channel.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, PushInfo, PushKind, RedisError, Value};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

type Subscribers = RwLock<HashMap<String, mpsc::Sender<ChanItem>>>;

const HEARTBEAT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct RedisBus {
    conn: ConnectionManager,
    subscribers: Arc<Subscribers>,
}

impl RedisBus {
    pub async fn connect(url: &str) -> Result<Self, RedisError> {
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
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config).await?;
        let bus = Self { conn, subscribers };
        bus.spawn_heartbeat();
        Ok(bus)
    }

    /// Whether Redis answers right now (for `/readyz`).
    pub async fn ping(&self) -> bool {
        redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await
            .is_ok()
    }

    /// A handle on the shared connection, for Tidings' own keys (presence).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Publishes a text message (our own channels, e.g. `Presence`).
    pub async fn publish_text(&self, channel: &str, message: &str) -> Result<(), RedisError> {
        self.conn
            .clone()
            .publish::<_, _, Value>(channel, message)
            .await
            .map(|_| ())
    }

    fn spawn_heartbeat(&self) {
        let alive: Weak<Subscribers> = Arc::downgrade(&self.subscribers);
        let mut conn = self.conn.clone();
        tokio::spawn(async move {
            let mut was_up = true;
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                if alive.strong_count() == 0 {
                    return;
                }
                let up = redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok();
                if up != was_up {
                    if up {
                        tracing::info!("Redis is back; cross-node delivery resumes");
                    } else {
                        tracing::warn!("Redis is unreachable; delivering to local sockets only");
                    }
                    was_up = up;
                }
            }
        });
    }
}

impl Driver for RedisBus {
    type Error = RedisError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), RedisError> {
        self.conn
            .clone()
            .publish::<_, _, Value>(chan, val)
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
        let (_, count): (String, u16) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(chan)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count)
    }
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
