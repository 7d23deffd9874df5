//! §2.1 of the contract: the `initialConnection` flow and handshake auth.

use serde_json::{json, Value};

use crate::helpers::*;

const FOLLOW: &str = "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }";

#[tokio::test]
async fn right_credentials_get_auth_true_over_websocket_and_polling() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    for transport in [Transport::WebSocket, Transport::Polling] {
        let mut socket = app.socket(transport).await;
        socket.emit("initialConnection", &alice.credentials());
        assert_eq!(socket.expect("auth").await, json!(true), "{transport:?}");
    }
}

#[tokio::test]
async fn wrong_secret_gets_auth_false_and_no_pushes() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut socket = app.socket(Transport::WebSocket).await;
    socket.emit(
        "initialConnection",
        &json!({ "id": alice.id, "secretkey": "not-the-secret" }),
    );
    assert_eq!(socket.expect("auth").await, json!(false));

    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    socket.expect_none("Followed", QUIET).await;
    assert!(
        !socket.is_closed(),
        "a failed attempt leaves the socket connected"
    );
}

#[tokio::test]
async fn unknown_user_gets_auth_false() {
    let app = spawn_app().await;
    let mut socket = app.socket(Transport::WebSocket).await;
    socket.emit(
        "initialConnection",
        &json!({ "id": uuid::Uuid::now_v7().to_string(), "secretkey": "whatever" }),
    );
    assert_eq!(socket.expect("auth").await, json!(false));
}

#[tokio::test]
async fn every_malformed_payload_gets_auth_false_and_an_error_and_the_node_stays_up() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 1000).await;
    let alice = app.sign_up("alice").await;
    let malformed: Vec<Value> = vec![
        json!(null),
        json!(42),
        json!("a string"),
        json!([alice.id, alice.secret]),
        json!({}),
        json!({ "id": alice.id }),
        json!({ "secretkey": alice.secret }),
        json!({ "id": { "id": alice.id }, "secretkey": alice.secret }),
        json!({ "id": alice.id, "secretkey": { "$gt": "" } }),
        json!({ "id": "<img src=x onerror=alert(1)>", "secretkey": alice.secret }),
        json!({ "id": format!("{}<b>", alice.id), "secretkey": alice.secret }),
        json!({ "id": alice.id, "secretkey": "x".repeat(100 * 1024) }),
        json!({ "id": "' OR '1'='1", "secretkey": "' OR '1'='1" }),
        json!({ "id": alice.id, "secretkey": "'; DROP TABLE users; --" }),
        json!({ "id": 12345, "secretkey": 12345 }),
        json!({ "id": true, "secretkey": false }),
    ];
    let mut socket = app.socket(Transport::WebSocket).await;
    for payload in &malformed {
        socket.emit("initialConnection", payload);
        assert_eq!(
            socket.expect("auth").await,
            json!(false),
            "payload {payload}"
        );
    }
    // An event with no argument at all is answered too.
    socket.emit_bare("initialConnection");
    assert_eq!(socket.expect("auth").await, json!(false));

    // Every malformed shape was also explained (the SQL-looking secret is
    // well-formed, just wrong, so it gets no `error`).
    let mut errors = 0;
    while let Some(args) = socket.next_event("error", QUIET).await {
        assert!(
            args[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{args:?}"
        );
        errors += 1;
    }
    assert_eq!(errors, malformed.len() + 1 - 1);

    // The node is still up, and the real credentials still work.
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
    assert!(app.is_up().await);
}

#[tokio::test]
async fn the_ack_callback_receives_the_same_boolean() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let mut socket = app.socket(Transport::WebSocket).await;
    let ack = socket
        .emit_with_ack(
            "initialConnection",
            &json!({ "id": alice.id, "secretkey": "nope" }),
        )
        .await;
    assert_eq!(ack, vec![json!(false)]);
    assert_eq!(socket.expect("auth").await, json!(false));
    let ack = socket
        .emit_with_ack("initialConnection", &alice.credentials())
        .await;
    assert_eq!(ack, vec![json!(true)]);
    assert_eq!(socket.expect("auth").await, json!(true));
}

#[tokio::test]
async fn handshake_auth_payload_authenticates_without_initial_connection() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let options = ConnectOptions {
        auth: Some(alice.credentials()),
        ..Default::default()
    };
    let mut socket = app.socket_with(Transport::WebSocket, options).await;
    assert_eq!(socket.expect("auth").await, json!(true));
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    assert_eq!(socket.expect("Followed").await["followerId"], json!(bob.id));
}

#[tokio::test]
async fn handshake_auth_with_a_wrong_secret_gets_auth_false() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let auth = json!({ "id": alice.id, "secretkey": "wrong" });
    let mut socket = app
        .socket_with(
            Transport::Polling,
            ConnectOptions {
                auth: Some(auth),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(socket.expect("auth").await, json!(false));
}

#[tokio::test]
async fn handshake_cookies_authenticate_non_browser_clients() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let cookie = format!("theme=dark; id={}; secretkey={}", alice.id, alice.secret);
    for transport in [Transport::WebSocket, Transport::Polling] {
        let options = ConnectOptions {
            headers: vec![("cookie", cookie.clone())],
            ..Default::default()
        };
        let mut socket = app.socket_with(transport, options).await;
        assert_eq!(socket.expect("auth").await, json!(true), "{transport:?}");
    }
}

#[tokio::test]
async fn handshake_cookies_count_only_from_allowed_origins() {
    let app = spawn_app_with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let alice = app.sign_up("alice").await;
    let cookie = format!("id={}; secretkey={}", alice.id, alice.secret);

    let allowed = ConnectOptions {
        headers: vec![
            ("cookie", cookie.clone()),
            ("origin", "https://app.example.com".into()),
        ],
        ..Default::default()
    };
    let mut socket = app.socket_with(Transport::WebSocket, allowed).await;
    assert_eq!(socket.expect("auth").await, json!(true));
    // A page from another origin does not get a socket at all (403 before
    // the handshake, tests/api/origin.rs).
}

#[tokio::test]
async fn with_no_allowed_origins_handshake_cookies_from_a_browser_are_ignored() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let cookie = format!("id={}; secretkey={}", alice.id, alice.secret);
    let hijacker = ConnectOptions {
        headers: vec![
            ("cookie", cookie),
            ("origin", "https://evil.example.net".into()),
        ],
        ..Default::default()
    };
    let mut socket = app.socket_with(Transport::WebSocket, hijacker).await;
    socket.expect_none("auth", QUIET).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(
        socket.expect("auth").await,
        json!(true),
        "explicit credentials still work"
    );
}

#[tokio::test]
async fn socket_id_is_stored_on_auth_and_cleared_on_disconnect() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    assert_eq!(app.stored_socket_id(&alice).await, None);
    let socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let stored = app.stored_socket_id(&alice).await;
    assert!(
        stored.as_deref().is_some_and(|sid| !sid.is_empty()),
        "{stored:?}"
    );
    socket.disconnect();
    app.wait_for_socket_id(&alice, |sid| sid.is_none()).await;
}

#[tokio::test]
async fn disconnect_does_not_clear_a_socket_id_that_a_newer_socket_wrote() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let first = app.authed_socket(&alice, Transport::WebSocket).await;
    let first_sid = app.stored_socket_id(&alice).await.expect("first sid");
    let _second = app.authed_socket(&alice, Transport::Polling).await;
    let second_sid = app.stored_socket_id(&alice).await.expect("second sid");
    assert_ne!(first_sid, second_sid);

    first.disconnect();
    // Give the disconnect handler time to run; the row must keep the newer id.
    tokio::time::sleep(QUIET).await;
    assert_eq!(app.stored_socket_id(&alice).await, Some(second_sid));
}

#[tokio::test]
async fn initial_connection_again_rebinds_the_socket_to_the_new_user() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    socket.emit("initialConnection", &bob.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
    app.wait_for_socket_id(&alice, |sid| sid.is_none()).await;

    // Pushes to alice no longer reach it; pushes to bob do.
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&carol))
        .await;
    app.graphql_ok(FOLLOW, json!({ "u": bob.id }), Some(&carol))
        .await;
    let followed = socket.expect("Followed").await;
    assert_eq!(followed["followerId"], json!(carol.id));
    socket.expect_none("Followed", QUIET).await;
}

#[tokio::test]
async fn a_failed_reauthentication_drops_the_old_binding() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    socket.emit(
        "initialConnection",
        &json!({ "id": alice.id, "secretkey": "wrong" }),
    );
    assert_eq!(socket.expect("auth").await, json!(false));
    app.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    socket.expect_none("Followed", QUIET).await;
}

#[tokio::test]
async fn an_unknown_event_is_answered_with_an_error_and_its_ack() {
    let app = spawn_app().await;
    let mut socket = app.socket(Transport::WebSocket).await;
    let ack = socket
        .emit_with_ack("noSuchEvent", &json!({ "x": 1 }))
        .await;
    assert!(
        ack[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("noSuchEvent")),
        "{ack:?}"
    );
    let error = socket.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown event")),
        "{error}"
    );
}

#[tokio::test]
async fn a_successful_attempt_resets_the_failure_count() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 2).await;
    let alice = app.sign_up("alice").await;
    let mut socket = app.socket(Transport::WebSocket).await;
    let wrong = json!({ "id": alice.id, "secretkey": "wrong" });
    for credentials in [&wrong, &alice.credentials(), &wrong, &alice.credentials()] {
        socket.emit("initialConnection", credentials);
        socket.expect("auth").await;
    }
    assert!(!socket.is_closed(), "never two failures in a row");
}

#[tokio::test]
async fn an_initial_connection_sent_the_moment_connect_is_acknowledged_is_answered() {
    // A real client emits as soon as it sees the CONNECT answer. The
    // handler must already exist then (socketioxide runs the connect
    // handler in a task spawned after CONNECT is sent, so handlers are
    // registered in a connect middleware instead).
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let base = app.url("/socket.io/?EIO=4&transport=polling");
    let open = app
        .http
        .get(&base)
        .send()
        .await
        .expect("handshake")
        .text()
        .await
        .expect("body");
    let open: Value = serde_json::from_str(open.trim_start_matches('0')).expect("open packet");
    let url = format!("{base}&sid={}", open["sid"].as_str().expect("sid"));
    let poll = || async {
        let response = tokio::time::timeout(WAIT, app.http.get(&url).send())
            .await
            .expect("poll answered");
        let body = response.expect("poll").text().await.expect("body");
        assert!(!body.contains("Session ID unknown"), "session closed");
        body
    };
    app.http
        .post(&url)
        .body("40")
        .send()
        .await
        .expect("connect");
    for _ in 0..5 {
        if poll().await.contains("40{") {
            break;
        }
    }
    let event = json!(["initialConnection", alice.credentials()]);
    app.http
        .post(&url)
        .body(format!("42{event}"))
        .send()
        .await
        .expect("event");
    let mut seen = String::new();
    for _ in 0..5 {
        seen.push_str(&poll().await);
        if seen.contains(r#"42["auth",true]"#) {
            return;
        }
    }
    panic!("no auth answer; saw {seen:?}");
}
