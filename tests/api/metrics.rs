//! `/metrics`: each series moves when the thing it counts happens.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const WEBSOCKETS: &str = "tidings_connections{transport=\"websocket\"}";
const POLLING: &str = "tidings_connections{transport=\"polling\"}";
const AUTHENTICATED: &str = "tidings_authenticated_sockets";
const AUTH_OK: &str = "tidings_auth_outcomes_total{outcome=\"ok\"}";
const AUTH_WRONG: &str = "tidings_auth_outcomes_total{outcome=\"wrong\"}";
const AUTH_TIMED: &str = "tidings_auth_latency_seconds_count";
const ARGON2_WAITS: &str = "tidings_argon2_queue_wait_seconds_count";
const RATE_LIMITED: &str = "tidings_rate_limited_events_total";

/// Scrapes until `name` reads `want`: a disconnect reaches the server a
/// moment after the client sends it, with nothing to acknowledge it.
async fn metric_becomes(app: &TestApp, name: &str, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = app.metric(name).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} stayed {now}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_scrape_is_openmetrics_text_and_keeps_the_old_counter_names() {
    let app = spawn_app().await;
    let response = app.get("/metrics").await;
    assert!(response.headers()["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("application/openmetrics-text")));
    let text = response.text().await.expect("body");
    for name in [
        "tidings_background_push_received_total 0",
        "tidings_background_push_rejected_total 0",
        "tidings_api_push_accepted_total 0",
        "tidings_api_push_rejected_total 0",
        "tidings_relay_stale_dropped_total 0",
        "tidings_runtime_alive_tasks ",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn connection_gauges_follow_sockets_by_transport_and_by_authentication() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    assert_eq!(app.metric(WEBSOCKETS).await, 0);

    let mut socket = app.socket(Transport::WebSocket).await;
    assert_eq!(app.metric(WEBSOCKETS).await, 1);
    assert_eq!(app.metric(AUTHENTICATED).await, 0);

    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
    assert_eq!(app.metric(AUTHENTICATED).await, 1);

    let polling = app.authed_socket(&alice, Transport::Polling).await;
    assert_eq!(app.metric(POLLING).await, 1);
    assert_eq!(app.metric(WEBSOCKETS).await, 1);
    assert_eq!(app.metric(AUTHENTICATED).await, 2);

    socket.disconnect();
    metric_becomes(&app, WEBSOCKETS, 0).await;
    metric_becomes(&app, AUTHENTICATED, 1).await;
    polling.disconnect();
    metric_becomes(&app, POLLING, 0).await;
    metric_becomes(&app, AUTHENTICATED, 0).await;
}

#[tokio::test]
async fn authentication_outcomes_latency_and_argon2_waits_are_counted() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let waits_after_sign_up = app.metric(ARGON2_WAITS).await;
    assert!(waits_after_sign_up >= 1, "signUp hashes: one argon2 turn");
    let (ok, wrong, timed) = (
        app.metric(AUTH_OK).await,
        app.metric(AUTH_WRONG).await,
        app.metric(AUTH_TIMED).await,
    );

    let mut socket = app.socket(Transport::WebSocket).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
    assert_eq!(app.metric(AUTH_OK).await, ok + 1);
    assert_eq!(app.metric(AUTH_TIMED).await, timed + 1);
    assert_eq!(
        app.metric(ARGON2_WAITS).await,
        waits_after_sign_up + 1,
        "first sight of the secret: verified"
    );

    socket.emit(
        "initialConnection",
        &json!({ "id": alice.id, "secretkey": "not the secret" }),
    );
    assert_eq!(socket.expect("auth").await, json!(false));
    assert_eq!(app.metric(AUTH_WRONG).await, wrong + 1);
    assert_eq!(app.metric(AUTH_OK).await, ok + 1);
    assert_eq!(app.metric(AUTH_TIMED).await, timed + 2);

    // GraphQL requests go through the same authenticator.
    app.graphql_ok("{ me { id } }", json!({}), Some(&alice))
        .await;
    assert_eq!(app.metric(AUTH_OK).await, ok + 2);
}

#[tokio::test]
async fn events_refused_by_the_rate_limit_are_counted() {
    let app = spawn_app_with(|c| {
        c.socket_events_per_sec = 1;
        c.socket_events_burst = 3;
    })
    .await;
    let mut socket = app.socket(Transport::WebSocket).await;
    let mut refused = 0;
    for _ in 0..5 {
        let ack = socket.emit_with_ack("noSuchEvent", &json!({})).await;
        if ack[0]["error"] == "rate limited" {
            refused += 1;
        }
    }

    assert!(refused >= 1, "the burst of 3 was passed");
    assert_eq!(app.metric(RATE_LIMITED).await, refused);
}

#[tokio::test]
async fn every_series_the_grafana_dashboard_reads_is_served() {
    let app = spawn_app().await;
    let scrape = app.get("/metrics").await.text().await.expect("body");
    let dashboard = include_str!("../../docs/deploy/grafana-dashboard.json");

    let names: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("tidings_"))
        .collect();

    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        assert!(
            scrape.lines().any(|line| line.starts_with(name)),
            "the dashboard reads {name}, which /metrics does not serve"
        );
    }
}

const PUSH_TIMED: &str = "tidings_push_latency_seconds_count";

fn pushes(kind: &str) -> String {
    format!("tidings_pushes_total{{kind=\"{kind}\"}}")
}

#[tokio::test]
async fn pushes_are_counted_by_kind_and_timed() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let timed = app.metric(PUSH_TIMED).await;

    app.graphql_ok(
        "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
        json!({ "u": bob.id }),
        Some(&alice),
    )
    .await;
    to_bob.expect("Followed").await;
    assert_eq!(app.metric(&pushes("Followed")).await, 1);
    assert_eq!(app.metric(PUSH_TIMED).await, timed + 1);

    let chatroom = app.direct_chatroom(&alice, &bob).await;
    app.graphql_ok(
        "mutation($c: ID!) { sendMessage(chatroomId: $c, content: \"hi\") { id } }",
        json!({ "c": chatroom }),
        Some(&alice),
    )
    .await;
    to_bob.expect("chatroom").await;
    assert_eq!(app.metric(&pushes("chatroom")).await, 1);
    assert_eq!(
        app.metric(&pushes("updatedChat")).await,
        2,
        "one when the chatroom was made, one for the message"
    );

    let body = json!({ "users": [bob.id], "event": "custom", "data": {} });
    let (status, answer) = app.api_push(Some(API_KEY), body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    to_bob.expect("custom").await;
    assert_eq!(app.metric(&pushes("api")).await, 1);
    assert_eq!(app.metric(&pushes("background")).await, 0);
    assert_eq!(app.metric(PUSH_TIMED).await, timed + 5);
}

#[tokio::test]
async fn backend_pushes_over_redis_are_counted_on_each_node() {
    let (nodes, _dir) = spawn_cluster(2).await;
    let bob = nodes[0].sign_up("bob").await;
    let mut to_bob = nodes[1].authed_socket(&bob, Transport::WebSocket).await;

    nodes[0]
        .publish_background_push(
            &json!({ "pushToUser": bob.id, "payload": { "n": 1 } }).to_string(),
        )
        .await;
    to_bob.expect("push").await;

    for node in &nodes {
        metric_becomes(node, &pushes("background"), 1).await;
    }
}

#[tokio::test]
async fn presence_pushes_to_followers_are_counted() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    app.graphql_ok(
        "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
        json!({ "u": bob.id }),
        Some(&alice),
    )
    .await;
    let mut to_alice = app.authed_socket(&alice, Transport::WebSocket).await;
    assert_eq!(
        app.metric(&pushes("presence")).await,
        0,
        "alice came online, but nobody follows her"
    );

    let _bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let event = to_alice.expect("presence").await;

    assert_eq!(event["userId"], bob.id);
    assert_eq!(app.metric(&pushes("presence")).await, 1);
}
