//! Configuration: read once from flags and environment at start, validated,
//! then passed down. Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "tidings",
    version,
    about = "Realtime Socket.IO gateway for social apps"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve HTTP, Socket.IO and GraphQL (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users from the command line.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user and print its id and secret (shown only this once).
    Create { username: String },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for production log pipelines.
    Json,
}

/// Every setting, each with the environment variable that sets the same thing.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address to listen on (HTTP, Socket.IO and GraphQL share it).
    #[arg(long, env = "TIDINGS_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// sea-orm database URL: `sqlite://…` or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tidings.db?mode=rwc"
    )]
    pub database_url: String,

    /// Redis URL for multi-node fan-out; unset (with no cluster or
    /// Sentinel either) means a single node.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// A Redis Cluster instead of one Redis: seed nodes as
    /// `host:port,host:port,…` (the rest is learnt from them).
    #[arg(long, env = "TIDINGS_REDIS_CLUSTER_NODES", value_delimiter = ',')]
    pub redis_cluster_nodes: Vec<String>,

    /// A Redis master followed through Sentinel instead of one Redis:
    /// the Sentinels as `host:port,…` (with `--redis-sentinel-master`).
    #[arg(long, env = "TIDINGS_REDIS_SENTINELS", value_delimiter = ',')]
    pub redis_sentinels: Vec<String>,

    /// After logging a push, wait (`WAIT`) until this many replicas have
    /// it, so a failover cannot lose a push the log accepted (0: do not
    /// wait; a missing replica then costs each push half of
    /// `--redis-timeout-ms`). See docs/deploy/README.md, "Failover".
    #[arg(long, env = "TIDINGS_REDIS_LOG_REPLICAS", default_value_t = 0)]
    pub redis_log_replicas: u32,

    /// The name Sentinel knows the master by (with `--redis-sentinels`).
    #[arg(long, env = "TIDINGS_REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,

    /// Prefix of every Redis key and channel Tidings owns (the Socket.IO
    /// adapter's included), so two clusters can share one Redis.
    #[arg(long, env = "TIDINGS_REDIS_PREFIX", default_value = "tidings")]
    pub redis_prefix: String,

    /// Longest wait (ms) for connecting to Redis and for any one command
    /// (`/readyz`'s PING included); past it on the push path Redis counts
    /// as down and pushes go to this node's sockets only until it answers.
    #[arg(long, env = "TIDINGS_REDIS_TIMEOUT_MS", default_value_t = 250)]
    pub redis_timeout_ms: u64,

    /// Redis channel other services publish backend pushes on (not prefixed).
    #[arg(
        long,
        env = "TIDINGS_BACKGROUND_PUSH_CHANNEL",
        default_value = "BackgroundPush"
    )]
    pub background_push_channel: String,

    /// Redis channel presence changes are published on, for backend
    /// services (not prefixed, like the `BackgroundPush` channel).
    #[arg(long, env = "TIDINGS_PRESENCE_CHANNEL", default_value = "Presence")]
    pub presence_channel: String,

    /// Longest time (ms) a dead node's users stay online. Nodes beat every
    /// sixth of it; one silent for half of it is declared dead by the others.
    #[arg(long, env = "TIDINGS_PRESENCE_TIMEOUT_MS", default_value_t = 30_000)]
    pub presence_timeout_ms: u64,

    /// Key that enables `POST /api/push` (`Authorization: Bearer <key>`);
    /// unset, the endpoint answers 404.
    #[arg(long, env = "TIDINGS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Largest `POST /api/push` body, in bytes (413 beyond).
    #[arg(long, env = "TIDINGS_PUSH_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub push_max_body_bytes: usize,

    /// Longest wait (ms) for a database connection (from the pool or a new
    /// one); past it the request fails instead of hanging on an outage.
    #[arg(long, env = "TIDINGS_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000)]
    pub db_acquire_timeout_ms: u64,

    /// Largest database connection pool (PostgreSQL; SQLite file databases too).
    #[arg(long, env = "TIDINGS_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// Browser origins allowed for CORS and for cookie credentials on the
    /// Socket.IO handshake, comma-separated (e.g. `https://app.example.com`).
    /// Empty: no cross-origin browser access, cookies only from non-browsers.
    #[arg(long, env = "TIDINGS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Largest Socket.IO packet accepted, in bytes (Node's default: 1 MB).
    #[arg(long, env = "TIDINGS_MAX_PACKET_BYTES", default_value_t = 1_000_000)]
    pub max_packet_bytes: u64,

    /// Packets buffered per socket before an emit to it fails.
    #[arg(long, env = "TIDINGS_SOCKET_BUFFER_PACKETS", default_value_t = 1024)]
    pub socket_buffer_packets: usize,

    /// Initial read buffer of each WebSocket, in bytes. It is allocated for
    /// every connection and grows on demand, so a small start saves memory
    /// per idle socket without limiting message size.
    #[arg(long, env = "TIDINGS_WS_READ_BUFFER_BYTES", default_value_t = 256)]
    pub ws_read_buffer_bytes: usize,

    /// Seconds a socket may stay connected without authenticating (0: forever).
    #[arg(long, env = "TIDINGS_AUTH_DEADLINE_SECS", default_value_t = 60)]
    pub auth_deadline_secs: u64,

    /// Failed `initialConnection` attempts after which a socket is disconnected.
    #[arg(long, env = "TIDINGS_MAX_FAILED_AUTH_PER_SOCKET", default_value_t = 5)]
    pub max_failed_auth_per_socket: u32,

    /// Failed authentications one client address may make per window,
    /// across all its sockets; beyond it, attempts are refused unverified.
    #[arg(
        long,
        env = "TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS",
        default_value_t = 20
    )]
    pub max_failed_auth_per_address: u32,

    /// Failed authentications for one user (from any addresses) per window;
    /// beyond it, attempts that would need argon2 are refused unverified (a
    /// secret verified a moment ago still works).
    #[arg(long, env = "TIDINGS_MAX_FAILED_AUTH_PER_USER", default_value_t = 50)]
    pub max_failed_auth_per_user: u32,

    /// The window of `--max-failed-auth-per-address`, in seconds.
    #[arg(long, env = "TIDINGS_FAILED_AUTH_WINDOW_SECS", default_value_t = 300)]
    pub failed_auth_window_secs: u64,

    /// Events one socket may send per second (sustained).
    #[arg(long, env = "TIDINGS_SOCKET_EVENTS_PER_SEC", default_value_t = 20)]
    pub socket_events_per_sec: u32,

    /// Events one socket may send in a burst; a socket that goes on sending
    /// this many more while refused is disconnected.
    #[arg(long, env = "TIDINGS_SOCKET_EVENTS_BURST", default_value_t = 40)]
    pub socket_events_burst: u32,

    /// Proxies whose `X-Forwarded-For` is believed (comma-separated IPs).
    /// Others' headers are ignored: anyone can write one.
    #[arg(long, env = "TIDINGS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// GraphQL mutations one signed-in user may run per minute (sustained,
    /// across all their requests on this node).
    #[arg(long, env = "TIDINGS_MUTATIONS_PER_MINUTE", default_value_t = 60)]
    pub mutations_per_minute: u32,

    /// GraphQL mutations one user may run at once before the per-minute
    /// rate applies.
    #[arg(long, env = "TIDINGS_MUTATIONS_BURST", default_value_t = 20)]
    pub mutations_burst: u32,

    /// Rooms one socket may be in at once (`joinRoom`).
    #[arg(long, env = "TIDINGS_MAX_ROOMS_PER_SOCKET", default_value_t = 50)]
    pub max_rooms_per_socket: usize,

    /// Relay event types that are "in-between" updates: dropped when their
    /// timestamp is too far from now, and not logged in production.
    #[arg(
        long,
        env = "TIDINGS_RELAY_IN_BETWEEN_TYPES",
        value_delimiter = ',',
        default_value = "FRAME_UPDATE,CURSOR_SYNC,TYPING"
    )]
    pub relay_in_between_types: Vec<String>,

    /// How far (ms) an in-between event's timestamp may be from the server's
    /// clock, in the past or the future, before it is dropped.
    #[arg(long, env = "TIDINGS_RELAY_MAX_AGE_MS", default_value_t = 5000)]
    pub relay_max_age_ms: i64,

    /// Largest relay `payload`, in bytes of JSON.
    #[arg(long, env = "TIDINGS_RELAY_MAX_PAYLOAD_BYTES", default_value_t = 16 * 1024)]
    pub relay_max_payload_bytes: usize,

    /// argon2id verifications run at once (default: the number of cores).
    #[arg(long, env = "TIDINGS_ARGON2_CONCURRENCY")]
    pub argon2_concurrency: Option<usize>,

    /// Largest GraphQL request body, in bytes.
    #[arg(long, env = "TIDINGS_GRAPHQL_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub graphql_max_body_bytes: usize,

    /// Deepest GraphQL selection accepted.
    #[arg(long, env = "TIDINGS_GRAPHQL_MAX_DEPTH", default_value_t = 10)]
    pub graphql_max_depth: usize,

    /// Largest GraphQL query complexity accepted (a field costs 1, a mutation 50, one that hashes 200).
    #[arg(long, env = "TIDINGS_GRAPHQL_MAX_COMPLEXITY", default_value_t = 1000)]
    pub graphql_max_complexity: usize,

    /// Answer GraphQL introspection queries (switch off in production if you like).
    #[arg(long, env = "TIDINGS_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// Seconds a push to a user stays in their log, for connections that
    /// come back to resume (docs/protocol.md, "Delivery guarantees").
    #[arg(long, env = "TIDINGS_RESUME_WINDOW_SECS", default_value_t = 120)]
    pub resume_window_secs: u64,

    /// Most pushes kept in one user's log; older ones are dropped first.
    #[arg(long, env = "TIDINGS_RESUME_MAX_EVENTS", default_value_t = 1000)]
    pub resume_max_events: usize,

    /// Also send the events of the social app's existing web client whose
    /// names differ from Tidings' own (today: `followed` beside `Followed`).
    /// Off by default: a client of Tidings' own vocabulary would receive a
    /// second event for every follow.
    #[arg(long, env = "TIDINGS_SOCIAL_CLIENT_EVENTS", default_value_t = false, action = clap::ArgAction::Set)]
    pub social_client_events: bool,

    /// On SIGTERM, connected clients are asked to reconnect elsewhere (their
    /// connections are closed) one after another over this many seconds, so
    /// the other nodes are not hit by all of them at once. 0: all at once.
    #[arg(long, env = "TIDINGS_DRAIN_WINDOW_SECS", default_value_t = 10)]
    pub drain_window_secs: u64,

    /// Directory served at `/` instead of the embedded web app (its
    /// `index.html` for `/`); paths cannot leave it, symlinks included.
    #[arg(long, env = "TIDINGS_STATIC_DIR")]
    pub static_dir: Option<std::path::PathBuf>,

    /// Most plain WebSocket connections one user may hold on one node.
    #[arg(
        long,
        env = "TIDINGS_PLAIN_MAX_CONNECTIONS_PER_USER",
        default_value_t = 32
    )]
    pub plain_max_connections_per_user: usize,

    /// A plain WebSocket connection that sends nothing (not even a ping)
    /// for this long is closed with 4408.
    #[arg(long, env = "TIDINGS_PLAIN_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    pub plain_idle_timeout_secs: u64,

    /// Note sync (`/notes`): seconds a new connection has to send `auth`
    /// before it is told so and closed.
    #[arg(long, env = "TIDINGS_NOTES_AUTH_TIMEOUT_SECS", default_value_t = 30)]
    pub notes_auth_timeout_secs: u64,

    /// Note sync: most authenticated plain connections (`/notes` and `/ws`
    /// together) one user may hold on one node when a `/notes` connection
    /// authenticates.
    #[arg(
        long,
        env = "TIDINGS_NOTES_MAX_CONNECTIONS_PER_USER",
        default_value_t = 20
    )]
    pub notes_max_connections_per_user: usize,

    /// Note sync: most messages one connection may send in any 60 s
    /// (counted before authentication too).
    #[arg(long, env = "TIDINGS_NOTES_MESSAGES_PER_MINUTE", default_value_t = 300)]
    pub notes_messages_per_minute: usize,

    /// Shared secret of HS256 tokens (32 bytes at least).
    #[arg(long, env = "TIDINGS_JWT_HS256_SECRET", hide_env_values = true)]
    pub jwt_hs256_secret: Option<String>,

    /// PEM public key of RS256 or ES256 tokens.
    #[arg(long, env = "TIDINGS_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<String>,

    /// JWKS file: RS256/ES256 keys chosen by the token's `kid`.
    #[arg(long, env = "TIDINGS_JWT_JWKS_FILE")]
    pub jwt_jwks_file: Option<String>,

    /// The claim that holds the user id.
    #[arg(long, env = "TIDINGS_JWT_USER_CLAIM", default_value = "sub")]
    pub jwt_user_claim: String,

    /// Required `iss`, when set.
    #[arg(long, env = "TIDINGS_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud`, when set.
    #[arg(long, env = "TIDINGS_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// A cookie that may carry the token (honoured only from allowed origins).
    #[arg(long, env = "TIDINGS_JWT_COOKIE")]
    pub jwt_cookie: Option<String>,

    /// Header holding the user id, set by a forward-auth proxy; honoured
    /// only from `--trusted-proxies`.
    #[arg(long, env = "TIDINGS_TRUSTED_USER_HEADER")]
    pub trusted_user_header: Option<String>,

    /// Header holding a guest id (user `guest:<value>`), same rule.
    #[arg(long, env = "TIDINGS_TRUSTED_GUEST_HEADER")]
    pub trusted_guest_header: Option<String>,

    /// An app's session endpoint: plain WebSocket upgrades that carry
    /// cookies (or `--auth-proxy-headers`) are POSTed there as JSON and it
    /// answers `200 { userId, rooms? }` or a refusal (docs/protocol.md §10.4).
    #[arg(long, env = "TIDINGS_AUTH_PROXY_URL")]
    pub auth_proxy_url: Option<String>,

    /// Request headers forwarded to the auth proxy besides the cookies
    /// (comma-separated names, e.g. `authorization`).
    #[arg(long, env = "TIDINGS_AUTH_PROXY_HEADERS", value_delimiter = ',')]
    pub auth_proxy_headers: Vec<String>,

    /// How long (ms) to wait for the auth proxy before refusing with 504.
    #[arg(long, env = "TIDINGS_AUTH_PROXY_TIMEOUT_MS", default_value_t = 2000)]
    pub auth_proxy_timeout_ms: u64,

    /// How long (ms) an auth proxy answer (a user or a refusal) is reused
    /// for the same cookies and headers; 0 asks every time. A signed-out
    /// session keeps working at most this long.
    #[arg(long, env = "TIDINGS_AUTH_PROXY_CACHE_MS", default_value_t = 5000)]
    pub auth_proxy_cache_ms: u64,

    /// Log line format.
    #[arg(long, env = "TIDINGS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Below this, heartbeats (a sixth of the timeout) would flood Redis and a
/// short network hiccup would take a healthy node's users offline.
pub const MIN_PRESENCE_TIMEOUT_MS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--allowed-origins: {0:?} is not an origin like https://app.example.com")]
    BadOrigin(String),
    #[error("--database-url must start with sqlite: or postgres:")]
    BadDatabaseUrl,
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("--api-key must be at least 16 characters")]
    WeakApiKey,
    #[error("--presence-timeout-ms must be at least {MIN_PRESENCE_TIMEOUT_MS}")]
    PresenceTimeout,
    #[error("--static-dir {0:?} is not a directory")]
    StaticDirMissing(std::path::PathBuf),
    #[error("--jwt-hs256-secret must be at least 32 bytes")]
    ShortJwtSecret,
    #[error("{0} must be a valid HTTP header name")]
    BadHeaderName(&'static str),
    #[error("--redis-prefix must be 1 to 64 characters of A-Z a-z 0-9 _ - . :")]
    BadRedisPrefix,
    #[error("give one Redis deployment: {0} cannot be used together")]
    RedisDeployments(&'static str),
    #[error("--redis-sentinels needs --redis-sentinel-master, and the other way round")]
    SentinelHalf,
    #[error("{flag}: {entry:?} is not host:port or a redis:// URL")]
    BadRedisNode { flag: &'static str, entry: String },
}

impl Config {
    /// Rejects settings that would only fail later, and less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for origin in &self.allowed_origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .map(|rest| rest.trim_end_matches('/'));
            let ok = host.is_some_and(|host| {
                !host.is_empty() && host.chars().all(|c| c.is_ascii_graphic() && c != '/')
            });
            if !ok {
                return Err(ConfigError::BadOrigin(origin.clone()));
            }
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(ConfigError::BadDatabaseUrl);
        }
        for (name, value) in [
            ("--db-pool-size", self.db_pool_size as u64),
            ("--db-acquire-timeout-ms", self.db_acquire_timeout_ms),
            ("--redis-timeout-ms", self.redis_timeout_ms),
            ("--max-packet-bytes", self.max_packet_bytes),
            ("--socket-buffer-packets", self.socket_buffer_packets as u64),
            ("--ws-read-buffer-bytes", self.ws_read_buffer_bytes as u64),
            (
                "--max-failed-auth-per-socket",
                self.max_failed_auth_per_socket as u64,
            ),
            (
                "--max-failed-auth-per-address",
                self.max_failed_auth_per_address as u64,
            ),
            (
                "--max-failed-auth-per-user",
                self.max_failed_auth_per_user as u64,
            ),
            ("--socket-events-per-sec", self.socket_events_per_sec as u64),
            ("--socket-events-burst", self.socket_events_burst as u64),
            ("--mutations-per-minute", self.mutations_per_minute as u64),
            ("--mutations-burst", self.mutations_burst as u64),
            ("--graphql-max-depth", self.graphql_max_depth as u64),
            (
                "--graphql-max-complexity",
                self.graphql_max_complexity as u64,
            ),
            ("--resume-window-secs", self.resume_window_secs),
            ("--resume-max-events", self.resume_max_events as u64),
            (
                "--plain-max-connections-per-user",
                self.plain_max_connections_per_user as u64,
            ),
            ("--plain-idle-timeout-secs", self.plain_idle_timeout_secs),
            ("--auth-proxy-timeout-ms", self.auth_proxy_timeout_ms),
            ("--notes-auth-timeout-secs", self.notes_auth_timeout_secs),
            (
                "--notes-max-connections-per-user",
                self.notes_max_connections_per_user as u64,
            ),
            (
                "--notes-messages-per-minute",
                self.notes_messages_per_minute as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        let prefix_ok = (1..=64).contains(&self.redis_prefix.len())
            && self
                .redis_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
        if !prefix_ok {
            return Err(ConfigError::BadRedisPrefix);
        }
        self.validate_redis()?;
        if self.api_key.as_ref().is_some_and(|key| key.len() < 16) {
            return Err(ConfigError::WeakApiKey);
        }
        if self.presence_timeout_ms < MIN_PRESENCE_TIMEOUT_MS {
            return Err(ConfigError::PresenceTimeout);
        }
        if self.presence_channel.is_empty() {
            return Err(ConfigError::Zero("--presence-channel length"));
        }
        if self.background_push_channel.is_empty() {
            return Err(ConfigError::Zero("--background-push-channel length"));
        }
        if let Some(dir) = &self.static_dir {
            if !dir.is_dir() {
                return Err(ConfigError::StaticDirMissing(dir.clone()));
            }
        }
        if self.jwt_hs256_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::ShortJwtSecret);
        }
        for (flag, header) in [
            ("--trusted-user-header", &self.trusted_user_header),
            ("--trusted-guest-header", &self.trusted_guest_header),
        ] {
            if header
                .as_ref()
                .is_some_and(|h| axum::http::HeaderName::try_from(h.as_str()).is_err())
            {
                return Err(ConfigError::BadHeaderName(flag));
            }
        }
        if self.argon2_concurrency == Some(0) {
            return Err(ConfigError::Zero("--argon2-concurrency"));
        }
        Ok(())
    }

    fn validate_redis(&self) -> Result<(), ConfigError> {
        let url = self.redis_url.is_some();
        let cluster = !self.redis_cluster_nodes.is_empty();
        let sentinel = !self.redis_sentinels.is_empty() || self.redis_sentinel_master.is_some();
        match (url, cluster, sentinel) {
            (true, true, _) => {
                return Err(ConfigError::RedisDeployments(
                    "--redis-url and --redis-cluster-nodes",
                ))
            }
            (true, _, true) => {
                return Err(ConfigError::RedisDeployments(
                    "--redis-url and --redis-sentinels",
                ))
            }
            (_, true, true) => {
                return Err(ConfigError::RedisDeployments(
                    "--redis-cluster-nodes and --redis-sentinels",
                ))
            }
            _ => {}
        }
        if sentinel
            && (self.redis_sentinels.is_empty()
                || self
                    .redis_sentinel_master
                    .as_deref()
                    .is_none_or(str::is_empty))
        {
            return Err(ConfigError::SentinelHalf);
        }
        for (flag, entries) in [
            ("--redis-cluster-nodes", &self.redis_cluster_nodes),
            ("--redis-sentinels", &self.redis_sentinels),
        ] {
            if let Some(entry) = entries
                .iter()
                .find(|e| !crate::cluster::topology::valid_node(e))
            {
                return Err(ConfigError::BadRedisNode {
                    flag,
                    entry: entry.clone(),
                });
            }
        }
        Ok(())
    }

    /// The Redis deployment this node joins, if any (after `validate`).
    pub fn redis_topology(&self) -> Option<crate::cluster::RedisTopology> {
        use crate::cluster::RedisTopology;
        if let Some(url) = &self.redis_url {
            Some(RedisTopology::Single { url: url.clone() })
        } else if !self.redis_cluster_nodes.is_empty() {
            Some(RedisTopology::Cluster {
                seeds: self.redis_cluster_nodes.clone(),
            })
        } else {
            match (&self.redis_sentinel_master, self.redis_sentinels.is_empty()) {
                (Some(master), false) => Some(RedisTopology::Sentinel {
                    sentinels: self.redis_sentinels.clone(),
                    master: master.clone(),
                }),
                _ => None,
            }
        }
    }

    pub fn presence_timeout(&self) -> Duration {
        Duration::from_millis(self.presence_timeout_ms)
    }

    /// What the durable push log keeps per user.
    pub fn retention(&self) -> crate::delivery::Retention {
        crate::delivery::Retention {
            window: Duration::from_secs(self.resume_window_secs),
            max_events: self.resume_max_events,
        }
    }

    pub fn drain_window(&self) -> Duration {
        Duration::from_secs(self.drain_window_secs)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }

    pub fn auth_deadline(&self) -> Option<Duration> {
        (self.auth_deadline_secs > 0).then(|| Duration::from_secs(self.auth_deadline_secs))
    }

    pub fn argon2_concurrency(&self) -> usize {
        self.argon2_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }

    /// Whether a browser request from `origin` may use cookie credentials.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin)
    }

    /// Settings for tests and embedders: everything default, given database,
    /// port 0 so the OS picks a free one.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut config = Cli::parse_from(["tidings"]).config;
        config.listen = ([127, 0, 0, 1], 0).into();
        config.database_url = database_url.into();
        config.redis_url = None;
        config.redis_cluster_nodes.clear();
        config.redis_sentinels.clear();
        config.redis_sentinel_master = None;
        config
    }
}
