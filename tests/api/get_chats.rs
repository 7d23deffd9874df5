//! The `getChats` socket request (docs/protocol.md §8.3): answered with the
//! chat list, with credentials or on a signed-in socket; every malformed
//! payload and wrong secret refused with `error` and nothing else; its
//! failures counted like `initialConnection`'s.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const SEND: &str =
    "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id createdAt } }";

/// An acknowledged round trip: what the server queued for `socket` before
/// has arrived once it returns.
async fn barrier(socket: &mut SioClient) {
    let ack = socket
        .emit_with_ack("leaveRoom", &json!("topic:barrier"))
        .await;
    assert_eq!(ack, vec![json!({ "ok": true })]);
}

async fn nothing_but_errors_came(socket: &mut SioClient) {
    barrier(socket).await;
    for event in ["getChats", "auth"] {
        socket.expect_none(event, Duration::ZERO).await;
    }
}

/// The shapes `initialConnection` is tested with (socket_auth.rs), for `user`.
fn malformed(user: &TestUser) -> Vec<Value> {
    vec![
        json!(null),
        json!(42),
        json!("a string"),
        json!([user.id, user.secret]),
        json!({}),
        json!({ "id": user.id }),
        json!({ "secretkey": user.secret }),
        json!({ "id": { "id": user.id }, "secretkey": user.secret }),
        json!({ "id": user.id, "secretkey": { "$gt": "" } }),
        json!({ "id": "<img src=x onerror=alert(1)>", "secretkey": user.secret }),
        json!({ "id": format!("{}<b>", user.id), "secretkey": user.secret }),
        json!({ "id": user.id, "secretkey": "x".repeat(100 * 1024) }),
        json!({ "id": "' OR '1'='1", "secretkey": "' OR '1'='1" }),
        json!({ "id": user.id, "secretkey": "'; DROP TABLE users; --" }),
        json!({ "id": 12345, "secretkey": 12345 }),
        json!({ "id": true, "secretkey": false }),
    ]
}

fn carries_credentials(payload: &Value) -> bool {
    payload
        .as_object()
        .is_some_and(|o| o.contains_key("id") || o.contains_key("secretkey"))
}

#[tokio::test]
async fn get_chats_with_credentials_answers_the_chat_list_without_signing_the_socket_in() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    app.graphql_ok(
        "mutation { setName(name: \"Bob B.\") { id } }",
        json!({}),
        Some(&bob),
    )
    .await;
    let quiet_chat = app.direct_chatroom(&carol, &alice).await;
    let chat = app.direct_chatroom(&alice, &bob).await;
    let sent = app
        .graphql_ok(SEND, json!({ "c": chat, "t": "see you" }), Some(&bob))
        .await;
    let mut socket = app.socket(Transport::WebSocket).await;

    let ack = socket.emit_with_ack("getChats", &alice.credentials()).await;
    let chats = socket.expect("getChats").await;
    assert_eq!(ack, vec![chats.clone()], "the ack carries the same list");
    let list = chats.as_array().expect("a list");
    assert_eq!(list.len(), 2, "{chats}");
    let newest = &list[0];
    assert_eq!(newest["id"], json!(chat), "most recently active first");
    let mut users: Vec<(Value, Value)> = newest["chatroomUsers"]
        .as_array()
        .expect("chatroomUsers")
        .iter()
        .map(|u| (u["id"].clone(), u["name"].clone()))
        .collect();
    users.sort_by_key(|(id, _)| id.to_string());
    let mut expected = vec![
        (json!(alice.id), json!(alice.username)),
        (json!(bob.id), json!("Bob B.")),
    ];
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(users, expected);
    let last = &newest["lastMessage"];
    assert_eq!(last["content"], json!("see you"));
    assert_eq!(last["read"], json!(false));
    assert_eq!(last["date"], sent["sendMessage"]["createdAt"]);
    assert_eq!(last["sender"]["id"], json!(bob.id));
    assert_eq!(list[1]["id"], json!(quiet_chat));
    assert_eq!(list[1]["lastMessage"], json!(null), "no message yet");

    // The socket was not signed in: pushes to alice do not reach it.
    let mut signed_in = app.authed_socket(&alice, Transport::WebSocket).await;
    app.graphql_ok(
        "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
        json!({ "u": alice.id }),
        Some(&bob),
    )
    .await;
    signed_in.expect("Followed").await;
    barrier(&mut socket).await;
    socket.expect_none("Followed", Duration::ZERO).await;
    socket.expect_none("auth", Duration::ZERO).await;
}

#[tokio::test]
async fn a_signed_in_socket_gets_its_chats_without_credentials() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chat = app.direct_chatroom(&alice, &bob).await;
    for transport in [Transport::WebSocket, Transport::Polling] {
        let mut socket = app.authed_socket(&alice, transport).await;
        socket.emit_bare("getChats");
        assert_eq!(socket.expect("getChats").await[0]["id"], json!(chat));
        for payload in [json!(null), json!({}), json!({ "page": 1 })] {
            let ack = socket.emit_with_ack("getChats", &payload).await;
            assert_eq!(ack[0][0]["id"], json!(chat), "{payload}");
            assert_eq!(socket.expect("getChats").await[0]["id"], json!(chat));
        }
        // Credentials, when sent, are checked even on a signed-in socket.
        let ack = socket.emit_with_ack("getChats", &bob.credentials()).await;
        assert_eq!(ack[0][0]["id"], json!(chat), "bob's chats");
        socket.expect("getChats").await;
    }
}

#[tokio::test]
async fn every_malformed_payload_and_wrong_secret_gets_an_error_and_nothing_else() {
    let app = spawn_app_with(|c| {
        c.max_failed_auth_per_socket = 1000;
        c.max_failed_auth_per_address = 1000;
    })
    .await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    app.direct_chatroom(&alice, &bob).await;
    let mut payloads = malformed(&alice);
    payloads.push(json!({ "id": alice.id, "secretkey": "not-the-secret" }));
    payloads.push(json!({ "id": uuid::Uuid::now_v7().to_string(), "secretkey": "whatever" }));

    let mut socket = app.socket(Transport::WebSocket).await;
    for payload in &payloads {
        let ack = socket.emit_with_ack("getChats", payload).await;
        let reason = ack[0]["error"].as_str().unwrap_or_default().to_owned();
        assert!(reason.starts_with("getChats: "), "{payload}: {ack:?}");
        assert_eq!(
            socket.expect("error").await["error"],
            json!(reason),
            "{payload}"
        );
    }
    socket.emit_bare("getChats");
    let error = socket.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid credentials")),
        "{error}"
    );
    nothing_but_errors_came(&mut socket).await;
    assert!(app.is_up().await);

    // On a signed-in socket, a payload that carries credentials is checked
    // all the same (the shapes without any are answered: the test above).
    let mut signed_in = app.authed_socket(&alice, Transport::Polling).await;
    for payload in payloads.iter().filter(|p| carries_credentials(p)) {
        let ack = signed_in.emit_with_ack("getChats", payload).await;
        assert!(ack[0]["error"].is_string(), "{payload}: {ack:?}");
        signed_in.expect("error").await;
    }
    nothing_but_errors_came(&mut signed_in).await;
    // A failed getChats does not unbind: the socket still gets its chats.
    signed_in.emit_bare("getChats");
    signed_in.expect("getChats").await;
}

#[tokio::test]
async fn failed_get_chats_count_towards_the_sockets_failed_attempt_limit() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 3).await;
    let alice = app.sign_up("alice").await;
    let guess = json!({ "id": alice.id, "secretkey": "guess" });

    let mut only_requests = app.socket(Transport::WebSocket).await;
    for _ in 0..3 {
        let ack = only_requests.emit_with_ack("getChats", &guess).await;
        assert!(ack[0]["error"].is_string(), "{ack:?}");
    }
    only_requests.expect_closed().await;

    // Mixed with initialConnection, the failures add up on one count.
    let mut mixed = app.socket(Transport::Polling).await;
    mixed.emit_with_ack("getChats", &guess).await;
    mixed.emit_with_ack("getChats", &json!(42)).await;
    assert_eq!(
        mixed.emit_with_ack("initialConnection", &guess).await,
        vec![json!(false)]
    );
    let mut told = false;
    while let Some(args) = mixed.next_event("error", WAIT).await {
        if args[0]["error"] == json!("too many failed authentication attempts") {
            told = true;
            break;
        }
    }
    assert!(told, "the socket was told why");
    mixed.expect_closed().await;
}

#[tokio::test]
async fn failed_get_chats_count_towards_the_address_limit_across_sockets() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_address = 3).await;
    let alice = app.sign_up("alice").await;
    let guess = json!({ "id": alice.id, "secretkey": "guess" });
    for _ in 0..3 {
        let mut socket = app.socket(Transport::WebSocket).await;
        let ack = socket.emit_with_ack("getChats", &guess).await;
        assert!(ack[0]["error"].is_string(), "{ack:?}");
    }
    // Now even the right secret is refused from this address, unverified,
    // for getChats and for initialConnection alike.
    let mut socket = app.socket(Transport::WebSocket).await;
    let ack = socket.emit_with_ack("getChats", &alice.credentials()).await;
    assert!(
        ack[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("your address")),
        "{ack:?}"
    );
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(false));
}
