//! Issue 16: outages never stall. With Redis or the database gone, `/readyz`
//! says 503 within a second, and pushes to this node's sockets go on at
//! once. Each test stops a dependency of its own (a private redis-server, a
//! TCP relay in front of PostgreSQL), never the shared ones. The figures
//! go to docs/reliability.md (`scripts/hostile`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::helpers::*;

/// The bound the issue sets for `/readyz` during any outage.
const READYZ_BOUND: Duration = Duration::from_secs(1);
/// A generous bound for a push to reach a socket on the same node.
const LOCAL_PUSH_BOUND: Duration = Duration::from_secs(1);

async fn timed_readyz(app: &TestApp) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.get("/readyz").await.status().as_u16();
    (status, started.elapsed())
}

#[tokio::test]
async fn with_redis_down_readyz_says_503_within_a_second_and_local_pushes_arrive_at_once() {
    let mut redis = PrivateRedis::start();
    redis.wait_until_up().await;
    let (nodes, _db) = spawn_cluster_on(1, &redis.url()).await;
    let app = &nodes[0];
    let alice = app.sign_up("alice").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    assert_eq!(timed_readyz(app).await.0, 200);

    redis.stop();

    // The first push finds Redis gone (at most --redis-timeout-ms); the
    // breaker then sends the next ones straight to local delivery.
    let mut took = Vec::new();
    for n in 0..5 {
        let started = Instant::now();
        let body = json!({ "users": [alice.id], "event": "notice", "data": { "n": n } });
        let (status, answer) = app.api_push(Some(API_KEY), body.to_string()).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(socket.expect("notice").await, json!({ "n": n }));
        took.push(started.elapsed());
    }
    let later = took[1..].iter().max().copied().unwrap_or_default();
    for push in &took {
        assert!(*push < LOCAL_PUSH_BOUND, "a local push took {push:?}");
    }
    hostile_report(
        "Redis down: /api/push to a socket on the same node",
        "arrives < 1 s (first: ≤ --redis-timeout-ms 250)",
        format!("first {:.0?}, next 4 at most {later:.0?}", took[0]),
    );

    let (status, took) = timed_readyz(app).await;
    assert_eq!(status, 503);
    assert!(took < READYZ_BOUND, "/readyz took {took:?}");
    hostile_report(
        "Redis down: /readyz",
        "503 < 1 s",
        format!("{status} in {took:.0?}"),
    );
}

/// A TCP relay in front of PostgreSQL; `cut` closes every relayed
/// connection and stops listening, as a database that went away does.
struct Relay {
    port: u16,
    task: JoinHandle<()>,
}

impl Relay {
    async fn to(target: SocketAddr) -> Self {
        Self::on(0, target).await
    }

    /// A relay on a given port: the database coming back where it was.
    async fn on(port: u16, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { port, task }
    }

    /// Aborting the task drops the listener and every connection with it.
    async fn cut(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

#[tokio::test]
async fn with_the_database_down_readyz_says_503_within_a_second_and_requests_fail_fast() {
    // Always PostgreSQL: a server that goes away is what is under test.
    let url = fresh_postgres_database().await;
    let (scheme_user, rest) = url.split_once('@').expect("postgres://user@host:port/db");
    let (host_port, database) = rest.split_once('/').expect("host:port/db");
    let target: SocketAddr = host_port.parse().expect("an IP:port");
    let relay = Relay::to(target).await;
    let relayed = format!("{scheme_user}@127.0.0.1:{}/{database}", relay.port);
    let app = spawn_app_with(|c| {
        c.database_url = relayed;
        c.db_acquire_timeout_ms = 500;
    })
    .await;
    let alice = app.sign_up("alice").await;
    assert_eq!(timed_readyz(&app).await.0, 200);

    relay.cut().await;

    let (status, took) = timed_readyz(&app).await;
    assert_eq!(status, 503);
    assert!(took < READYZ_BOUND, "/readyz took {took:?}");
    hostile_report(
        "PostgreSQL down: /readyz",
        "503 < 1 s",
        format!("{status} in {took:.0?}"),
    );

    let started = Instant::now();
    let answer = app.graphql("{ me { id } }", json!({}), Some(&alice)).await;
    let took = started.elapsed();
    assert!(answer["errors"].is_array(), "{answer}");
    // The configured 500 ms acquire timeout, plus slack for a loaded machine.
    assert!(
        took < Duration::from_millis(1500),
        "the request took {took:?}"
    );
    hostile_report(
        "PostgreSQL down: a signed-in GraphQL request (--db-acquire-timeout-ms 500)",
        "clear error < 1.5 s",
        format!("{} in {took:.0?}", error_code(&answer)),
    );
}

/// A node on a fresh PostgreSQL database reached through a relay (with
/// `configure` on top), the relay, and where it leads.
async fn behind_a_relay(
    configure: impl FnOnce(&mut tidings::config::Config),
) -> (TestApp, Relay, SocketAddr) {
    let url = fresh_postgres_database().await;
    let (scheme_user, rest) = url.split_once('@').expect("postgres://user@host:port/db");
    let (host_port, database) = rest.split_once('/').expect("host:port/db");
    let target: SocketAddr = host_port.parse().expect("an IP:port");
    let relay = Relay::to(target).await;
    let port = relay.port;
    let app = spawn_app_with(|c| {
        c.database_url = format!("{scheme_user}@127.0.0.1:{port}/{database}");
        c.db_acquire_timeout_ms = 300;
        configure(c);
    })
    .await;
    (app, relay, target)
}

/// A socket that authenticates while the database is briefly away (as
/// when a reconnect storm exhausts the pool) is signed in once it answers
/// again, without `auth` false in between: answering false would make
/// every client of a storm come back at once, and a page that emits
/// `initialConnection` only once would stay signed out.
#[tokio::test]
async fn a_sign_in_during_a_short_database_outage_succeeds_when_it_is_back() {
    let (app, relay, target) = behind_a_relay(|_| {}).await;
    let port = relay.port;
    let alice = app.sign_up("alice").await;
    let mut socket = app.socket(Transport::WebSocket).await;

    relay.cut().await;
    socket.emit("initialConnection", &alice.credentials());
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _back = Relay::on(port, target).await;

    assert_eq!(socket.expect("auth").await, json!(true));
}

/// The same for an outside identity's first sign-in (a JWT in the
/// handshake), whose user row is created at first sight: a storm of them
/// exhausted the pool and was answered `auth` false.
#[tokio::test]
async fn a_first_jwt_sign_in_during_a_short_database_outage_succeeds_when_it_is_back() {
    use crate::notes_client::{new_sub, token, JWT_SECRET};
    let (app, relay, target) =
        behind_a_relay(|c| c.jwt_hs256_secret = Some(JWT_SECRET.into())).await;
    let port = relay.port;

    relay.cut().await;
    let mut socket = app
        .socket_with(
            Transport::WebSocket,
            crate::client::ConnectOptions {
                auth: Some(json!({ "token": token(&new_sub(), 600) })),
                ..Default::default()
            },
        )
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _back = Relay::on(port, target).await;

    assert_eq!(socket.expect("auth").await, json!(true));
}
