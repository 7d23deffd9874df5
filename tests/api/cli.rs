//! §1: the `tidings` binary — subcommands, configuration errors, shutdown.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

fn tidings() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("TIDINGS_REDIS_CLUSTER_NODES")
        .env_remove("TIDINGS_REDIS_SENTINELS")
        .env_remove("TIDINGS_REDIS_SENTINEL_MASTER")
        .env_remove("TIDINGS_LISTEN");
    command
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display())
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().expect("dir");
    run_ok(&["--database-url", &sqlite_url(&dir), "migrate"]);
    assert!(dir.path().join("cli.db").exists());
}

#[tokio::test]
async fn user_create_prints_an_id_and_a_secret_that_authenticate() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    let output = run_ok(&["--database-url", &url, "user", "create", "operator_made"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let user = TestUser {
        id: field("id:"),
        username: "operator_made".into(),
        secret: field("secretkey:"),
    };

    let app = spawn_app_with(|c| c.database_url = url.clone()).await;
    let data = app
        .graphql_ok("{ me { username } }", json!({}), Some(&user))
        .await;
    assert_eq!(data["me"]["username"], "operator_made");
}

/// Runs `tidings` with `args`, expecting it to succeed.
fn run_ok(args: &[&str]) -> std::process::Output {
    let output = tidings().args(args).output().expect("run");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `tidings` with `args`, expecting it to fail and to say `reason`.
fn assert_refused(args: &[&str], reason: &str) {
    let output = tidings().args(args).output().expect("run");
    assert!(!output.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(reason), "{args:?}: {stderr}");
}

#[tokio::test]
async fn user_create_refuses_a_bad_name_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(&dir);
    assert_refused(
        &["--database-url", &url, "user", "create", "no spaces"],
        "username may only hold",
    );
}

#[tokio::test]
async fn invalid_configuration_is_refused_at_start_with_a_clear_message() {
    assert_refused(&["--allowed-origins", "not-an-origin"], "not-an-origin");
    assert_refused(&["--database-url", "mysql://nope"], "--database-url");
    assert_refused(&["--api-key", "short"], "--api-key");
    assert_refused(&["--redis-prefix", "has space"], "--redis-prefix");
}

#[tokio::test]
async fn a_redis_set_up_that_names_two_deployments_or_half_of_one_is_refused_at_start() {
    assert_refused(
        &[
            "--redis-url",
            "redis://127.0.0.1:6379",
            "--redis-cluster-nodes",
            "127.0.0.1:7101",
        ],
        "--redis-url and --redis-cluster-nodes cannot be used together",
    );
    assert_refused(
        &[
            "--redis-cluster-nodes",
            "127.0.0.1:7101",
            "--redis-sentinels",
            "127.0.0.1:27201",
            "--redis-sentinel-master",
            "tidings",
        ],
        "--redis-cluster-nodes and --redis-sentinels cannot be used together",
    );
    assert_refused(
        &["--redis-sentinels", "127.0.0.1:27201"],
        "--redis-sentinels needs --redis-sentinel-master",
    );
    assert_refused(
        &["--redis-sentinel-master", "tidings"],
        "--redis-sentinels needs --redis-sentinel-master",
    );
    assert_refused(
        &["--redis-cluster-nodes", "127.0.0.1:7101,127.0.0.1"],
        "\"127.0.0.1\" is not host:port",
    );
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = tidings()
        .args([
            "--database-url",
            &sqlite_url(&dir),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(started.elapsed() < WAIT, "server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut socket =
        SioClient::connect(port, Transport::WebSocket, ConnectOptions::default()).await;

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    socket.expect_closed().await;
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = server.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < WAIT,
            "server did not stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}
