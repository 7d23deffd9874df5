//! Shared set-up: every test gets its own server on a random port and its
//! own database (a fresh SQLite file, or a fresh PostgreSQL database when
//! `TIDINGS_TEST_DATABASE=postgres`), so tests run in parallel.

use std::time::Duration;

use base64::Engine;
use entity::user;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use serde_json::{json, Value};
use tidings::{Application, Config};
use uuid::Uuid;

pub use crate::client::{ConnectOptions, SioClient, Transport, WAIT};

/// The API key every test server accepts on `POST /api/push`.
pub const API_KEY: &str = "test-api-key-0123456789";

/// How long a test waits to be sure something does *not* happen.
pub const QUIET: Duration = Duration::from_millis(400);

pub struct TestApp {
    pub port: u16,
    pub http: reqwest::Client,
    pub db: DatabaseConnection,
    /// The `BackgroundPush` channel of this test's cluster (with Redis).
    pub background_channel: Option<String>,
    /// The `Presence` channel of this test's cluster (with Redis).
    pub presence_channel: Option<String>,
    /// The key prefix of this test's cluster (with Redis).
    pub redis_prefix: Option<String>,
    pub redis_url: Option<String>,
    _sqlite_dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub secret: String,
}

impl TestUser {
    pub fn credentials(&self) -> Value {
        json!({ "id": self.id, "secretkey": self.secret })
    }

    pub fn uuid(&self) -> Uuid {
        Uuid::parse_str(&self.id).expect("user id is a UUID")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let (database_url, sqlite_dir) = fresh_database().await;
    let mut config = Config::for_database(database_url);
    config.api_key = Some(API_KEY.to_owned());
    configure(&mut config);
    let mut app = start(config).await;
    app._sqlite_dir = sqlite_dir;
    app
}

/// `nodes` servers sharing one database and one Redis, under a Redis
/// prefix of their own so clusters of parallel tests never hear each other.
pub async fn spawn_cluster(nodes: usize) -> (Vec<TestApp>, Option<tempfile::TempDir>) {
    let redis_url = std::env::var("TIDINGS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    spawn_cluster_on(nodes, &redis_url).await
}

pub async fn spawn_cluster_on(
    nodes: usize,
    redis_url: &str,
) -> (Vec<TestApp>, Option<tempfile::TempDir>) {
    spawn_cluster_with(nodes, redis_url, |_| {}).await
}

/// `spawn_cluster_on`, with every node's settings adjusted by `configure`.
pub async fn spawn_cluster_with(
    nodes: usize,
    redis_url: &str,
    configure: impl Fn(&mut Config),
) -> (Vec<TestApp>, Option<tempfile::TempDir>) {
    let (database_url, sqlite_dir) = fresh_database().await;
    let prefix = format!("tidings-test-{}", Uuid::new_v4().simple());
    let mut apps = Vec::new();
    for _ in 0..nodes {
        let mut config = Config::for_database(database_url.clone());
        config.redis_url = Some(redis_url.to_owned());
        config.redis_prefix = prefix.clone();
        config.api_key = Some(API_KEY.to_owned());
        config.background_push_channel = format!("{prefix}:BackgroundPush");
        config.presence_channel = format!("{prefix}:Presence");
        configure(&mut config);
        apps.push(start(config).await);
    }
    (apps, sqlite_dir)
}

/// A local Redis deployment from `scripts/redis-topologies` (started on
/// first use; idempotent): `"cluster"` or `"sentinel"`. Returns the
/// script's variables (`TIDINGS_TEST_REDIS_*`).
pub fn redis_topology(which: &str) -> std::collections::HashMap<String, String> {
    redis_topology_with(which, &[])
}

/// `redis_topology` with the script's environment (`env`: e.g. other
/// ports and directory, for a private deployment a test kills a master of).
pub fn redis_topology_with(
    which: &str,
    env: &[(&str, String)],
) -> std::collections::HashMap<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/redis-topologies");
    let run = |action: &str| {
        let mut command = std::process::Command::new(script);
        command.args([action, which]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let output = command.output().expect("scripts/redis-topologies runs");
        assert!(
            output.status.success(),
            "scripts/redis-topologies {action} {which}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Tests run in parallel: one start at a time, or two would both try
    // to create the same cluster.
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|p| p.into_inner());
    run("up");
    run("env")
        .lines()
        .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `nodes` servers on the local Redis Cluster (`redis_topology`), under a
/// prefix of their own. Their `redis_url` names one cluster node, where a
/// backend service would publish.
pub async fn spawn_on_redis_cluster(
    nodes: usize,
    vars: &std::collections::HashMap<String, String>,
) -> (Vec<TestApp>, Option<tempfile::TempDir>) {
    let seeds: Vec<String> = vars["TIDINGS_TEST_REDIS_CLUSTER_NODES"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let (mut apps, dir) = spawn_cluster_with(nodes, "", |config| {
        config.redis_url = None;
        config.redis_cluster_nodes = seeds.clone();
    })
    .await;
    for app in &mut apps {
        app.redis_url = Some(vars["TIDINGS_TEST_REDIS_URL"].clone());
    }
    (apps, dir)
}

/// `nodes` servers following the local Sentinel set-up's master.
pub async fn spawn_on_sentinel(
    nodes: usize,
    vars: &std::collections::HashMap<String, String>,
) -> (Vec<TestApp>, Option<tempfile::TempDir>) {
    let sentinels: Vec<String> = vars["TIDINGS_TEST_REDIS_SENTINELS"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let master = vars["TIDINGS_TEST_REDIS_SENTINEL_MASTER"].clone();
    let (mut apps, dir) = spawn_cluster_with(nodes, "", |config| {
        config.redis_url = None;
        config.redis_sentinels = sentinels.clone();
        config.redis_sentinel_master = Some(master.clone());
    })
    .await;
    for app in &mut apps {
        app.redis_url = Some(vars["TIDINGS_TEST_REDIS_URL"].clone());
    }
    (apps, dir)
}

async fn start(mut config: Config) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        tidings::telemetry::init(tidings::config::LogFormat::Text);
    }
    config.db_pool_size = 4;
    let app = Application::build(config)
        .await
        .expect("application starts");
    let port = app.port();
    let db = app.state().db().clone();
    let background_channel = app
        .state()
        .bus()
        .map(|_| app.state().config().background_push_channel.clone());
    let redis_url = app.state().config().redis_url.clone();
    let (presence_channel, redis_prefix) = match app.state().bus() {
        Some(_) => (
            Some(app.state().config().presence_channel.clone()),
            Some(app.state().config().redis_prefix.clone()),
        ),
        None => (None, None),
    };
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        port,
        http: reqwest::Client::new(),
        db,
        background_channel,
        presence_channel,
        redis_prefix,
        redis_url,
        _sqlite_dir: None,
    }
}

async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    if std::env::var("TIDINGS_TEST_DATABASE").as_deref() == Ok("postgres") {
        (fresh_postgres_database().await, None)
    } else {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("tidings.db").display()
        );
        (url, Some(dir))
    }
}

/// A new, empty PostgreSQL database on the machine's server.
pub async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var("TIDINGS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let name = format!("tidings_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url)
        .await
        .expect("PostgreSQL answers");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    format!("{base}/{name}")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET request")
    }

    /// Whether the node still serves (`/healthz` answers 200).
    pub async fn is_up(&self) -> bool {
        self.get("/healthz").await.status() == 200
    }

    /// Posts a GraphQL operation, optionally as `as_user` (Basic auth).
    pub async fn graphql(
        &self,
        query: &str,
        variables: Value,
        as_user: Option<&TestUser>,
    ) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(user) = as_user {
            request = request.header("Authorization", basic(&user.id, &user.secret));
        }
        request
            .send()
            .await
            .expect("graphql request")
            .json()
            .await
            .expect("graphql json")
    }

    /// Like `graphql`, but fails the test on any error.
    pub async fn graphql_ok(
        &self,
        query: &str,
        variables: Value,
        as_user: Option<&TestUser>,
    ) -> Value {
        let response = self.graphql(query, variables, as_user).await;
        assert!(
            response.get("errors").is_none(),
            "GraphQL errors: {response}"
        );
        response["data"].clone()
    }

    pub async fn sign_up(&self, prefix: &str) -> TestUser {
        let username = format!("{prefix}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        let data = self
            .graphql_ok(
                "mutation($u: String!) { signUp(username: $u) { id username secretkey } }",
                json!({ "u": username }),
                None,
            )
            .await;
        let payload = &data["signUp"];
        TestUser {
            id: payload["id"].as_str().expect("id").to_owned(),
            username: payload["username"].as_str().expect("username").to_owned(),
            secret: payload["secretkey"].as_str().expect("secretkey").to_owned(),
        }
    }

    pub async fn socket(&self, transport: Transport) -> SioClient {
        SioClient::connect(self.port, transport, ConnectOptions::default()).await
    }

    pub async fn socket_with(&self, transport: Transport, options: ConnectOptions) -> SioClient {
        SioClient::connect(self.port, transport, options).await
    }

    /// A socket that has completed `initialConnection` as `user`.
    pub async fn authed_socket(&self, user: &TestUser, transport: Transport) -> SioClient {
        let mut socket = self.socket(transport).await;
        socket.emit("initialConnection", &user.credentials());
        assert_eq!(
            socket.expect("auth").await,
            json!(true),
            "{} should authenticate",
            user.username
        );
        socket
    }

    pub async fn stored_socket_id(&self, user: &TestUser) -> Option<String> {
        user::Entity::find_by_id(user.uuid())
            .one(&self.db)
            .await
            .expect("query user")
            .expect("user row")
            .socket_id
    }

    /// Waits until `users.socket_id` of `user` satisfies `check` (it is
    /// written by a handler running concurrently with the test).
    pub async fn wait_for_socket_id(
        &self,
        user: &TestUser,
        check: impl Fn(Option<&str>) -> bool,
    ) -> Option<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let stored = self.stored_socket_id(user).await;
            if check(stored.as_deref()) {
                return stored;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "socket_id stayed {stored:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Publishes on this cluster's `BackgroundPush` channel with a plain
    /// Redis client, as another service would.
    pub async fn publish_background_push(&self, message: &str) {
        let url = self.redis_url.as_deref().expect("a cluster node");
        let channel = self.background_channel.as_deref().expect("a cluster node");
        let client = redis::Client::open(url).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis answers");
        let receivers: i64 = redis::AsyncCommands::publish(&mut conn, channel, message)
            .await
            .expect("publish");
        assert!(receivers > 0, "no node listens on {channel}");
    }

    /// A plain Redis connection to this node's Redis, as another service
    /// would have.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let url = self.redis_url.as_deref().expect("a cluster node");
        redis::Client::open(url)
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis answers")
    }

    /// Subscribes to this cluster's `Presence` channel, as a backend
    /// service would. Returns once the subscription is in place.
    pub async fn subscribe_presence(&self) -> redis::aio::PubSub {
        let url = self.redis_url.as_deref().expect("a cluster node");
        let channel = self.presence_channel.as_deref().expect("a cluster node");
        let mut pubsub = redis::Client::open(url)
            .expect("redis url")
            .get_async_pubsub()
            .await
            .expect("redis answers");
        pubsub.subscribe(channel).await.expect("subscribe");
        pubsub
    }

    /// This node's id, as `/readyz` shows it.
    pub async fn node_id(&self) -> String {
        let body: Value = self.get("/readyz").await.json().await.expect("readyz json");
        body["node_id"].as_str().expect("node_id").to_owned()
    }

    pub async fn api_push(
        &self,
        key: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .post(self.url("/api/push"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn metric(&self, name: &str) -> u64 {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        text.lines()
            .find_map(|line| line.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no metric {name} in {text}"))
    }

    /// A direct chatroom between two users, returning its id.
    pub async fn direct_chatroom(&self, a: &TestUser, b: &TestUser) -> String {
        let data = self
            .graphql_ok(
                "mutation($u: ID!) { getLocation(userId: $u) { id } }",
                json!({ "u": b.id }),
                Some(a),
            )
            .await;
        data["getLocation"]["id"]
            .as_str()
            .expect("chatroom id")
            .to_owned()
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// The `extensions.code` of the first GraphQL error.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<no error>")
}

/// A Redis of the test's own, so stopping it disturbs no other test.
pub struct PrivateRedis {
    pub port: u16,
    process: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &["--save", "", "--appendonly", "no"])
    }

    /// A Redis on `port` that writes every command to its append-only file
    /// in `dir` before answering, so a restart keeps everything it
    /// acknowledged.
    pub fn start_durable(port: u16, dir: &std::path::Path) -> Self {
        let dir = dir.to_str().expect("utf-8 temp dir");
        Self::start_with(
            port,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                dir,
            ],
        )
    }

    fn start_with(port: u16, args: &[&str]) -> Self {
        let process = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        Self {
            port,
            process: Some(process),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub async fn wait_until_up(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "private redis did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Kills it at once (SIGKILL): nothing is flushed that was not yet.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// One row of docs/reliability.md: `scripts/hostile` runs the hostile tests
/// with `--nocapture` and turns these lines into the table. Printed only
/// after the test's assertion about it held.
pub fn hostile_report(case: &str, expected: &str, observed: impl std::fmt::Display) {
    println!("HOSTILE | {case} | {expected} | {observed} |");
}
