//! §4: other services reach users over the Redis channel `BackgroundPush`
//! and over `POST /api/push`, on every node.

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn every_socket_is_given_its_own_tab_window_id_right_after_connect() {
    let app = spawn_app().await;
    let mut first = app.socket(Transport::WebSocket).await;
    let mut second = app.socket(Transport::Polling).await;
    let a = first.expect("tabWindowId").await;
    let b = second.expect("tabWindowId").await;
    assert!(a.as_str().is_some_and(|t| t.len() >= 32), "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn background_push_reaches_a_user_on_every_node_and_no_one_else() {
    let (nodes, _db) = spawn_cluster(3).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let mut alice_sockets = vec![
        nodes[0].authed_socket(&alice, Transport::WebSocket).await,
        nodes[2].authed_socket(&alice, Transport::Polling).await,
    ];
    let mut bob_socket = nodes[1].authed_socket(&bob, Transport::WebSocket).await;

    let message = json!({ "pushToUser": alice.id, "payload": { "hello": "alice" } });
    nodes[1].publish_background_push(&message.to_string()).await;
    for socket in &mut alice_sockets {
        assert_eq!(socket.expect("push").await, json!({ "hello": "alice" }));
        socket.expect_none("push", QUIET).await; // exactly once, not once per node
    }
    bob_socket.expect_none("push", QUIET).await;

    let named = json!({ "pushToUser": alice.id, "event": "invoiceReady", "payload": 42 });
    nodes[1].publish_background_push(&named.to_string()).await;
    for socket in &mut alice_sockets {
        assert_eq!(socket.expect("invoiceReady").await, json!(42));
    }
}

#[tokio::test]
async fn background_push_to_a_tab_reaches_that_one_socket_only_and_only_for_its_user() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let mut other_tab = nodes[0].socket(Transport::WebSocket).await;
    other_tab.emit("initialConnection", &alice.credentials());
    assert_eq!(other_tab.expect("auth").await, json!(true));
    let mut this_tab = nodes[1].socket(Transport::WebSocket).await;
    let token = this_tab.expect("tabWindowId").await;
    this_tab.emit("initialConnection", &alice.credentials());
    assert_eq!(this_tab.expect("auth").await, json!(true));

    let message = json!({ "pushToUser": alice.id, "tabWindowId": token, "payload": "just you" });
    nodes[0].publish_background_push(&message.to_string()).await;
    assert_eq!(this_tab.expect("push").await, json!("just you"));
    this_tab.expect_none("push", QUIET).await;
    other_tab.expect_none("push", QUIET).await;

    // Bob cannot be reached through alice's tab, nor alice's tab through bob.
    let wrong_owner = json!({ "pushToUser": bob.id, "tabWindowId": token, "payload": "leak?" });
    nodes[0]
        .publish_background_push(&wrong_owner.to_string())
        .await;
    this_tab.expect_none("push", QUIET).await;
}

#[tokio::test]
async fn background_push_to_a_room_reaches_its_sockets_on_every_node() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let mut sockets = vec![
        nodes[0].authed_socket(&alice, Transport::WebSocket).await,
        nodes[1].authed_socket(&alice, Transport::WebSocket).await,
    ];
    let message =
        json!({ "pushToRoom": format!("user:{}", alice.id), "payload": { "to": "room" } });
    nodes[0].publish_background_push(&message.to_string()).await;
    for socket in &mut sockets {
        assert_eq!(socket.expect("push").await, json!({ "to": "room" }));
        socket.expect_none("push", QUIET).await;
    }
}

#[tokio::test]
async fn malformed_background_pushes_are_counted_and_the_listener_keeps_going() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let mut socket = nodes[1].authed_socket(&alice, Transport::WebSocket).await;
    let bad: Vec<String> = vec![
        "not json".into(),
        "[1,2,3]".into(),
        "null".into(),
        json!({ "pushToUser": alice.id }).to_string(),
        json!({ "payload": 1 }).to_string(),
        json!({ "pushToUser": alice.id, "pushToRoom": "r", "payload": 1 }).to_string(),
        json!({ "pushToUser": 12, "payload": 1 }).to_string(),
        json!({ "pushToUser": "'; DROP TABLE users; --", "payload": 1 }).to_string(),
        json!({ "pushToRoom": "r", "tabWindowId": "t", "payload": 1 }).to_string(),
        json!({ "pushToUser": alice.id, "event": "auth", "payload": true }).to_string(),
        format!(
            "{{\"pushToUser\":\"{}\",\"payload\":\"{}\"",
            alice.id,
            "x".repeat(1000)
        ),
    ];
    for message in &bad {
        nodes[0].publish_background_push(message).await;
    }
    // A good message after all of them still arrives, so the listener lived.
    let good = json!({ "pushToUser": alice.id, "payload": "still here" });
    nodes[0].publish_background_push(&good.to_string()).await;
    assert_eq!(socket.expect("push").await, json!("still here"));
    socket.expect_none("auth", QUIET).await;
    for node in &nodes {
        assert_eq!(
            node.metric("tidings_background_push_rejected_total").await,
            bad.len() as u64
        );
    }
}

#[tokio::test]
async fn api_push_delivers_to_users_and_rooms_on_every_node() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let mut to_alice = nodes[1].authed_socket(&alice, Transport::WebSocket).await;
    let mut to_bob = nodes[0].authed_socket(&bob, Transport::Polling).await;
    let ghost = uuid::Uuid::now_v7().to_string();
    let body = json!({ "users": [alice.id, ghost], "event": "notice", "data": { "n": 1 } });
    let (status, answer) = nodes[0].api_push(Some(API_KEY), body.to_string()).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["accepted"]["users"], 1);
    assert_eq!(answer["unknownUsers"], json!([ghost]));
    assert_eq!(to_alice.expect("notice").await, json!({ "n": 1 }));
    to_alice.expect_none("notice", QUIET).await;
    to_bob.expect_none("notice", QUIET).await;

    let body = json!({ "rooms": [format!("user:{}", bob.id)], "data": "room" });
    let (status, _) = nodes[1].api_push(Some(API_KEY), body.to_string()).await;
    assert_eq!(status, 202);
    assert_eq!(to_bob.expect("push").await, json!("room"));
}

#[tokio::test]
async fn api_push_refuses_bad_bodies_with_the_reason_and_wrong_keys_with_401() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let too_many: Vec<String> = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "not JSON"),
        ("[1]".into(), "object"),
        (json!({ "users": [alice.id] }).to_string(), "data"),
        (json!({ "data": 1 }).to_string(), "target"),
        (
            json!({ "users": [], "rooms": [], "data": 1 }).to_string(),
            "target",
        ),
        (json!({ "users": alice.id, "data": 1 }).to_string(), "array"),
        (
            json!({ "users": [1], "data": 1 }).to_string(),
            "array of strings",
        ),
        (
            json!({ "users": ["no pe"], "data": 1 }).to_string(),
            "user id",
        ),
        (
            json!({ "users": too_many, "data": 1 }).to_string(),
            "at most 100",
        ),
        (
            json!({ "rooms": ["has space"], "data": 1 }).to_string(),
            "room",
        ),
        (
            json!({ "users": [alice.id], "event": 5, "data": 1 }).to_string(),
            "event",
        ),
        (
            json!({ "users": [alice.id], "event": "error", "data": 1 }).to_string(),
            "reserved",
        ),
    ];
    for (body, mentions) in &cases {
        let (status, answer) = app.api_push(Some(API_KEY), body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let reason = answer["error"].as_str().unwrap_or_default();
        assert!(reason.contains(mentions), "{body}: {reason}");
    }
    let good = json!({ "users": [alice.id], "data": 1 }).to_string();
    assert_eq!(app.api_push(None, good.clone()).await.0, 401);
    assert_eq!(
        app.api_push(Some("wrong-key-wrong-key"), good.clone())
            .await
            .0,
        401
    );
    let huge = json!({ "users": [alice.id], "data": "x".repeat(2 * 1024 * 1024) }).to_string();
    assert_eq!(app.api_push(Some(API_KEY), huge).await.0, 413);
    assert_eq!(
        app.api_push(Some(API_KEY), good).await.0,
        202,
        "still serving"
    );
    assert_eq!(
        app.metric("tidings_api_push_rejected_total").await,
        cases.len() as u64 + 3
    );
}

#[tokio::test]
async fn api_push_is_off_without_a_key() {
    let app = spawn_app_with(|c| c.api_key = None).await;
    let (status, answer): (u16, Value) = app
        .api_push(Some(API_KEY), json!({ "data": 1 }).to_string())
        .await;
    assert_eq!(status, 404, "{answer}");
}
