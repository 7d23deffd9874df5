//! §6: no client input crashes the node; limits cut off abusers and leave
//! everyone else alone.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::*;

/// Opens a raw WebSocket, completes the Socket.IO connect, and returns it.
async fn raw_socket(
    app: &TestApp,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        app.port
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let open = ws.next().await.expect("open").expect("open frame");
    assert!(open.to_text().expect("text").starts_with('0'));
    ws.send(Message::text("40")).await.expect("send connect");
    loop {
        let frame = ws.next().await.expect("connected").expect("frame");
        match frame.to_text().expect("text") {
            "2" => ws.send(Message::text("3")).await.expect("pong"),
            text if text.starts_with("40") => return ws,
            other => panic!("expected the CONNECT answer, got {other:?}"),
        }
    }
}

/// Reads until the server closes the connection; fails after `WAIT`.
async fn expect_cut_off<S>(ws: &mut S)
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let closed = tokio::time::timeout(WAIT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept the connection open");
}

#[tokio::test]
async fn a_10_mb_websocket_message_cuts_the_socket_off_and_the_node_stays_up() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let mut bystander = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut ws = raw_socket(&app).await;
    let huge = format!(
        "42[\"initialConnection\",\"{}\"]",
        "x".repeat(10 * 1024 * 1024)
    );
    // The server may close mid-send; either way the socket must end.
    let _ = ws.send(Message::text(huge)).await;
    expect_cut_off(&mut ws).await;

    assert!(app.is_up().await);
    bystander.emit("initialConnection", &alice.credentials());
    assert_eq!(bystander.expect("auth").await, json!(true));
}

#[tokio::test]
async fn a_packet_over_the_configured_limit_is_refused() {
    let app = spawn_app_with(|c| c.max_packet_bytes = 64 * 1024).await;
    let mut ws = raw_socket(&app).await;
    let packet = format!("42[\"initialConnection\",\"{}\"]", "x".repeat(100 * 1024));
    let _ = ws.send(Message::text(packet)).await;
    expect_cut_off(&mut ws).await;
}

#[tokio::test]
async fn a_flood_of_declared_binary_attachments_cuts_the_socket_off() {
    let app = spawn_app().await;
    let mut ws = raw_socket(&app).await;
    let _ = ws
        .send(Message::text(
            "451000000-[\"initialConnection\",{\"_placeholder\":true,\"num\":0}]",
        ))
        .await;
    // Whatever the server does with the header, it must not wait for (or
    // buffer) fifty-one million attachments: more than 16 is refused.
    for _ in 0..32 {
        if ws.send(Message::binary(vec![0u8; 1024])).await.is_err() {
            break;
        }
    }
    expect_cut_off(&mut ws).await;
    assert!(app.is_up().await);
}

#[tokio::test]
async fn too_many_failed_attempts_disconnect_the_socket_but_not_its_neighbour() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 3).await;
    let alice = app.sign_up("alice").await;
    let mut neighbour = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut attacker = app.socket(Transport::WebSocket).await;
    let guess = json!({ "id": alice.id, "secretkey": "guess" });
    for _ in 0..3 {
        attacker.emit("initialConnection", &guess);
        assert_eq!(attacker.expect("auth").await, json!(false));
    }
    let error = attacker.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many")),
        "{error}"
    );
    attacker.expect_closed().await;

    assert!(!neighbour.is_closed());
    neighbour.emit("initialConnection", &alice.credentials());
    assert_eq!(neighbour.expect("auth").await, json!(true));
}

/// The last refused attempt is still acknowledged before the socket is cut
/// off (a client waiting on its callback is never left hanging), over
/// long-polling too, where a disconnect queued first would win.
#[tokio::test]
async fn the_attempt_that_trips_the_limit_is_still_acknowledged() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 2).await;
    let alice = app.sign_up("alice").await;
    for transport in [Transport::Polling, Transport::WebSocket] {
        let mut attacker = app.socket(transport).await;
        let guess = json!({ "id": alice.id, "secretkey": "guess" });
        for _ in 0..2 {
            assert_eq!(
                attacker.emit_with_ack("initialConnection", &guess).await,
                vec![json!(false)]
            );
        }
        attacker.expect_closed().await;
    }
}

#[tokio::test]
async fn a_socket_that_never_authenticates_is_disconnected_after_the_deadline() {
    let app = spawn_app_with(|c| c.auth_deadline_secs = 1).await;
    let alice = app.sign_up("alice").await;
    let mut idle = app.socket(Transport::WebSocket).await;
    let mut authenticated = app.authed_socket(&alice, Transport::WebSocket).await;
    let error = idle.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{error}"
    );
    idle.expect_closed().await;
    authenticated
        .expect_none("error", Duration::from_millis(1500))
        .await;
    assert!(!authenticated.is_closed());
}

#[tokio::test]
async fn a_socket_unbound_again_before_the_deadline_is_disconnected_at_it() {
    let app = spawn_app_with(|c| c.auth_deadline_secs = 1).await;
    let alice = app.sign_up("alice").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let wrong = json!({ "id": alice.id, "secretkey": "wrong" });
    assert_eq!(
        socket.emit_with_ack("initialConnection", &wrong).await,
        vec![json!(false)]
    );
    let error = socket.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{error}"
    );
    socket.expect_closed().await;
}

#[tokio::test]
async fn garbage_frames_do_not_take_the_node_down() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    for garbage in [
        "",
        "4",
        "42",
        "42[",
        "42{}",
        "42[1,2]",
        "4299999999999999999999[\"x\"]",
        "9",
        "4\u{fffd}",
        "42[\"initialConnection\",\"\u{0}\"]",
    ] {
        let mut ws = raw_socket(&app).await;
        let _ = ws.send(Message::text(garbage)).await;
        let _ = ws.send(Message::binary(vec![0xff, 0xfe, 0x00])).await;
    }
    let mut socket = app.socket(Transport::Polling).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
}

#[tokio::test]
async fn a_socket_over_its_event_rate_is_refused_then_cut_off_while_its_neighbour_is_untouched() {
    let app = spawn_app_with(|c| {
        c.socket_events_per_sec = 1;
        c.socket_events_burst = 5;
    })
    .await;
    let alice = app.sign_up("alice").await;
    let mut neighbour = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut flooder = app.socket(Transport::WebSocket).await;
    // One at a time (each event's handler runs in its own task, so only
    // awaited acks give an order): the burst passes, the next is refused.
    for _ in 0..5 {
        let ack = flooder.emit_with_ack("noSuchEvent", &json!({})).await;
        assert!(
            ack[0]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("unknown event")),
            "{ack:?}"
        );
    }
    let ack = flooder.emit_with_ack("noSuchEvent", &json!({})).await;
    assert_eq!(ack[0]["error"], "rate limited");
    // Flooding on after being told: disconnected.
    for _ in 0..10 {
        flooder.emit("noSuchEvent", &json!({}));
    }
    flooder.expect_closed().await;

    assert!(!neighbour.is_closed());
    let ack = neighbour
        .emit_with_ack("initialConnection", &alice.credentials())
        .await;
    assert_eq!(ack, vec![json!(true)]);
}

#[tokio::test]
async fn failed_attempts_are_limited_per_address_across_sockets() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_address = 3).await;
    let alice = app.sign_up("alice").await;
    let guess = json!({ "id": alice.id, "secretkey": "guess" });
    for _ in 0..3 {
        // A fresh socket each time: the per-socket limit never triggers.
        let mut socket = app.socket(Transport::WebSocket).await;
        socket.emit("initialConnection", &guess);
        assert_eq!(socket.expect("auth").await, json!(false));
    }
    // Now even the right secret is refused from this address, unverified.
    let mut socket = app.socket(Transport::Polling).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(false));
    let error = socket.expect("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("your address")),
        "{error}"
    );

    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let forged = ConnectOptions {
        headers: vec![("x-forwarded-for", "198.51.100.7".into())],
        ..Default::default()
    };
    let mut socket = app.socket_with(Transport::WebSocket, forged).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, json!(false));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_one_limited() {
    let app = spawn_app_with(|c| {
        c.max_failed_auth_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let alice = app.sign_up("alice").await;
    let from = |addr: &str| ConnectOptions {
        headers: vec![("x-forwarded-for", addr.to_owned())],
        ..Default::default()
    };
    let guess = json!({ "id": alice.id, "secretkey": "guess" });
    for _ in 0..2 {
        let mut socket = app
            .socket_with(Transport::WebSocket, from("198.51.100.7"))
            .await;
        socket.emit("initialConnection", &guess);
        assert_eq!(socket.expect("auth").await, json!(false));
    }
    let mut blocked = app
        .socket_with(Transport::WebSocket, from("198.51.100.7"))
        .await;
    blocked.emit("initialConnection", &alice.credentials());
    assert_eq!(blocked.expect("auth").await, json!(false));

    // Another client behind the same proxy is not punished.
    let mut other = app
        .socket_with(Transport::WebSocket, from("198.51.100.8"))
        .await;
    other.emit("initialConnection", &alice.credentials());
    assert_eq!(other.expect("auth").await, json!(true));
}

#[tokio::test]
async fn the_authentication_deadline_holds_no_task_once_its_socket_is_gone() {
    let app = spawn_app_with(|c| c.auth_deadline_secs = 600).await;
    let alice = app.sign_up("alice").await;
    let before = app.metric("tidings_runtime_alive_tasks").await;
    for _ in 0..3 {
        let authenticated = app.authed_socket(&alice, Transport::WebSocket).await;
        let anonymous = app.socket(Transport::WebSocket).await;
        drop((authenticated, anonymous));
    }
    // Every socket's tasks end with it; before, each one left a task
    // sleeping out the whole deadline (here ten minutes), holding the socket.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = app.metric("tidings_runtime_alive_tasks").await;
        if now <= before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} tasks alive, {before} before the sockets came and went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads frames until the Socket.IO DISCONNECT of the namespace (`41`).
async fn until_kicked(ws: &mut RawSocket) {
    let kicked = tokio::time::timeout(WAIT, async {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.to_text().is_ok_and(|text| text == "41") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(kicked, Ok(true), "the socket was not disconnected");
}

/// After a kick, a second Socket.IO CONNECT on the same Engine.IO
/// connection gets no new session (which would come with a fresh event
/// bucket, failed-attempt count and deadline): it is refused or the
/// connection is already gone, and the connection ends. Returns what the
/// server sent after the second CONNECT.
async fn connect_again_is_refused_and_the_connection_ends(ws: &mut RawSocket) -> Vec<String> {
    // The send itself may fail once the connection is cut: that is a refusal too.
    let _ = ws.send(Message::text("40")).await;
    let mut after = Vec::new();
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Text(text)) => after.push(text.to_string()),
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the kicked connection stayed open: {after:?}"
    );
    assert!(
        !after.iter().any(|text| text.starts_with("40")),
        "a kicked connection got a new session: {after:?}"
    );
    after
}

#[tokio::test]
async fn a_socket_kicked_for_flooding_cannot_connect_again_on_the_same_connection() {
    let app = spawn_app_with(|c| {
        c.socket_events_per_sec = 1;
        c.socket_events_burst = 3;
    })
    .await;
    let mut ws = raw_socket(&app).await;
    for _ in 0..10 {
        ws.send(Message::text("42[\"noSuchEvent\"]"))
            .await
            .expect("send");
    }
    until_kicked(&mut ws).await;
    connect_again_is_refused_and_the_connection_ends(&mut ws).await;
}

#[tokio::test]
async fn a_socket_kicked_for_failed_attempts_cannot_connect_again_on_the_same_connection() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 2).await;
    let alice = app.sign_up("alice").await;
    let mut ws = raw_socket(&app).await;
    let guess = json!(["initialConnection", { "id": alice.id, "secretkey": "guess" }]);
    for _ in 0..2 {
        ws.send(Message::text(format!("42{guess}")))
            .await
            .expect("send");
    }
    until_kicked(&mut ws).await;
    let after = connect_again_is_refused_and_the_connection_ends(&mut ws).await;
    // Nothing more was verified for this connection either.
    assert!(
        !after.iter().any(|text| text.contains("\"auth\"")),
        "{after:?}"
    );
}

#[tokio::test]
async fn a_socket_past_its_authentication_deadline_cannot_connect_again_for_a_new_one() {
    let app = spawn_app_with(|c| c.auth_deadline_secs = 1).await;
    let mut ws = raw_socket(&app).await;
    until_kicked(&mut ws).await;
    connect_again_is_refused_and_the_connection_ends(&mut ws).await;
}
