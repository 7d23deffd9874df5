//! The plain WebSocket transport (`/ws`, docs/protocol.md "Plain
//! WebSocket"): greeting, in-band auth, rooms, relays shared with Socket.IO
//! clients, pushes, and every kind of bad input.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::plain_client::PlainClient;

async fn plain_as(app: &TestApp, user: &TestUser) -> PlainClient {
    PlainClient::authed(app.port, "/ws", &user.id, &user.secret).await
}

#[tokio::test]
async fn a_plain_connection_is_greeted_answers_pings_and_signs_in_in_band() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    assert_eq!(client.tab.len(), 32, "a 128-bit token");

    client.send(&json!({ "type": "ping" })).await;
    let pong = client.expect_type("pong").await;
    assert!(pong["timestamp"].as_i64().is_some(), "{pong}");

    client
        .send(&json!({ "type": "auth", "id": alice.id, "secretkey": "wrong" }))
        .await;
    let failed = client.expect_type("auth_failed").await;
    assert!(
        failed["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{failed}"
    );

    for _ in 0..2 {
        // Real clients send `auth` twice: both are answered alike.
        client
            .send(&json!({ "type": "auth", "id": alice.id, "secretkey": alice.secret }))
            .await;
        let ok = client.expect_type("auth_success").await;
        assert_eq!(ok["userId"], alice.id);
    }
}

#[tokio::test]
async fn in_band_auth_failures_are_limited_per_connection() {
    let app = spawn_app_with(|c| c.max_failed_auth_per_socket = 2).await;
    let alice = app.sign_up("alice").await;
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    for _ in 0..2 {
        client
            .send(&json!({ "type": "auth", "id": alice.id, "secretkey": "nope" }))
            .await;
        client.expect_type("auth_failed").await;
    }
    assert_eq!(client.expect_close().await, Some(1008));
}

#[tokio::test]
async fn rooms_are_joined_left_and_refused_by_the_one_policy() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mallory = app.sign_up("mallory").await;
    let chatroom = format!("chatroom:{}", app.direct_chatroom(&alice, &bob).await);

    let mut anonymous = PlainClient::connect(app.port, "/ws", &[]).await;
    anonymous.send(&json!({ "joinRoom": "topic:news" })).await;
    let error = anonymous.expect_type("error").await;
    assert_eq!(
        error["error"], error["message"],
        "both keys carry the reason"
    );
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("authenticate first")),
        "{error}"
    );

    let mut outsider = plain_as(&app, &mallory).await;
    for (room, reason) in [
        (json!(chatroom), "not a member"),
        (json!(format!("user:{}", bob.id)), "server's own"),
        (json!("lobby"), "room names are"),
        (json!(42), "a room is a name"),
    ] {
        outsider.send(&json!({ "joinRoom": room })).await;
        let error = outsider.expect_type("error").await;
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("joinRoom:") && e.contains(reason)),
            "{room}: {error}"
        );
    }

    // A member joins (twice: harmless) and hears the room; after leaving,
    // it does not.
    let mut member = plain_as(&app, &bob).await;
    for _ in 0..2 {
        member.send(&json!({ "joinRoom": chatroom })).await;
    }
    member.round_trip().await;
    let mut sender = app.authed_socket(&alice, Transport::WebSocket).await;
    sender.emit_with_ack("joinRoom", &json!(chatroom)).await;
    let event = json!({ "type": "NOTE", "timestamp": entity::now_ms(), "payload": { "n": 1 }, "room": chatroom });
    sender.emit_with_ack("event", &event).await;
    let heard = member.expect_type("NOTE").await;
    assert_eq!(heard["userId"], alice.id);
    member.send(&json!({ "leaveRoom": chatroom })).await;
    member.round_trip().await;
    sender.emit_with_ack("event", &event).await;
    member.round_trip().await;
}

#[tokio::test]
async fn a_path_room_is_joined_at_once_and_a_refused_one_closes_with_4403() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mallory = app.sign_up("mallory").await;
    let chatroom = format!("chatroom:{}", app.direct_chatroom(&alice, &bob).await);

    let mut refused = PlainClient::authed(
        app.port,
        &format!("/ws/{chatroom}"),
        &mallory.id,
        &mallory.secret,
    )
    .await;
    refused.expect_type("error").await;
    assert_eq!(refused.expect_close().await, Some(4403));

    let mut canvas =
        PlainClient::authed(app.port, "/ws/topic:canvas-42", &bob.id, &bob.secret).await;
    canvas.round_trip().await;
    let mut peer =
        PlainClient::authed(app.port, "/ws/topic:canvas-42", &alice.id, &alice.secret).await;
    // Without `room`, a relay goes to the path's room.
    peer.send(&json!({ "type": "DRAW", "timestamp": entity::now_ms(), "payload": { "x": 1 } }))
        .await;
    let drawn = canvas.expect_type("DRAW").await;
    assert_eq!(drawn["room"], "topic:canvas-42");
    assert_eq!(drawn["userId"], alice.id);
}

#[tokio::test]
async fn a_canvas_relay_crosses_transports_without_echo_or_stale_in_between_events() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let room = "topic:canvas-7";
    let mut plain =
        PlainClient::authed(app.port, &format!("/ws/{room}"), &alice.id, &alice.secret).await;
    plain.round_trip().await;
    let mut sio = app.authed_socket(&bob, Transport::WebSocket).await;
    sio.emit_with_ack("joinRoom", &json!(room)).await;

    // Plain → Socket.IO, `userId` stamped, the sender hears nothing back.
    let now = entity::now_ms();
    plain
        .send(&json!({ "type": "FRAME_UPDATE", "timestamp": now - 60_000, "userId": "forged", "payload": { "old": true } }))
        .await;
    plain
        .send(&json!({ "type": "FRAME_UPDATE", "timestamp": now, "userId": "forged", "payload": { "f": 2 } }))
        .await;
    plain.round_trip().await;
    let event = sio.expect("event").await;
    assert_eq!(
        event["payload"],
        json!({ "f": 2 }),
        "the stale frame was dropped: {event}"
    );
    assert_eq!(event["userId"], alice.id);

    // Socket.IO → plain.
    let ack = sio
        .emit_with_ack("event", &json!({ "type": "CURSOR_SYNC", "timestamp": entity::now_ms(), "payload": { "x": 3 }, "room": room }))
        .await;
    assert_eq!(ack[0], json!({ "ok": true }));
    let heard = plain.expect_type("CURSOR_SYNC").await;
    assert_eq!(heard["userId"], bob.id);
    assert_eq!(heard["payload"], json!({ "x": 3 }));
}

#[tokio::test]
async fn a_backend_push_reaches_each_plain_connection_and_socket_of_the_user_once() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let mut plain = plain_as(&app, &alice).await;
    let mut durable =
        PlainClient::authed(app.port, "/ws?durable=1", &alice.id, &alice.secret).await;
    let mut sio = app.authed_socket(&alice, Transport::WebSocket).await;

    let (status, _) = app
        .api_push(
            Some(API_KEY),
            json!({ "users": [alice.id], "data": { "hello": [1, 2] } }).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        plain.next().await,
        json!({ "hello": [1, 2] }),
        "the payload exactly"
    );
    let enveloped = durable.expect_type("push").await;
    assert_eq!(enveloped["data"], json!({ "hello": [1, 2] }));
    let seq = enveloped["seq"]
        .as_u64()
        .expect("a seq for the durable client");
    assert_eq!(sio.expect("push").await, json!({ "hello": [1, 2] }));

    let (status, _) = app
        .api_push(
            Some(API_KEY),
            json!({ "users": [alice.id], "event": "Count", "data": 5 }).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(plain.next().await, json!({ "type": "Count", "data": 5 }));
    plain.round_trip().await;

    // The durable client resumes from before the first push: both again.
    durable.expect_type("Count").await;
    durable
        .send(&json!({ "type": "resume", "since": seq - 1 }))
        .await;
    let replayed = durable.expect_type("push").await;
    assert_eq!(
        (replayed["seq"].as_u64(), replayed["replayed"].clone()),
        (Some(seq), json!(true))
    );
    durable.expect_type("Count").await;
    durable.round_trip().await;
}

#[tokio::test]
async fn bad_input_gets_an_error_or_a_close_code_and_harms_no_one_else() {
    let app = spawn_app_with(|c| c.max_packet_bytes = 64 * 1024).await;
    let alice = app.sign_up("alice").await;
    let mut bystander = plain_as(&app, &alice).await;
    let mut client = plain_as(&app, &alice).await;

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for text in ["not json", "[1,2]", "{}", r#"{"type":"lower"}"#, &deep] {
        client.send_text(text.to_owned()).await;
        let error = client.expect_type("error").await;
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{text:.40}: {error}"
        );
    }
    client.send_binary(vec![1, 2, 3]).await;
    let error = client.expect_type("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("binary")),
        "{error}"
    );
    client.round_trip().await;

    client
        .send_text(format!("{{\"x\":\"{}\"}}", "a".repeat(100 * 1024)))
        .await;
    assert_eq!(client.expect_close().await, Some(1009));

    bystander.round_trip().await;
    assert!(app.is_up().await);
}

#[tokio::test]
async fn a_flooding_connection_is_refused_then_closed() {
    let app = spawn_app_with(|c| {
        c.socket_events_per_sec = 1;
        c.socket_events_burst = 3;
    })
    .await;
    let alice = app.sign_up("alice").await;
    let mut bystander = PlainClient::connect(app.port, "/ws", &[]).await;
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    for _ in 0..10 {
        client.send(&json!({ "type": "ping" })).await;
    }
    let mut limited = 0;
    let code = loop {
        let frame: Value = match tokio::time::timeout(WAIT, client.next_or_close()).await {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => break client.last_close(),
        };
        if frame["error"] == "rate limited" {
            limited += 1;
        }
    };
    assert!(limited >= 1, "told it was rate limited");
    assert_eq!(code, Some(1008));
    bystander
        .send(&json!({ "type": "auth", "id": alice.id, "secretkey": alice.secret }))
        .await;
    bystander.expect_type("auth_success").await;
}

#[tokio::test]
async fn a_connection_that_never_signs_in_is_closed_at_the_deadline() {
    let app = spawn_app_with(|c| c.auth_deadline_secs = 1).await;
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    let error = client.expect_type("error").await;
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "{error}"
    );
    assert_eq!(client.expect_close().await, Some(4401));
}

#[tokio::test]
async fn a_rotated_secret_closes_the_users_plain_connections_and_presence_counts_them() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mut plain = plain_as(&app, &alice).await;
    let mut other = plain_as(&app, &bob).await;
    let online = app
        .graphql_ok(
            "query($u: ID!) { isOnline(userId: $u) }",
            json!({ "u": alice.id }),
            Some(&bob),
        )
        .await;
    assert_eq!(
        online["isOnline"],
        json!(true),
        "a plain connection counts as online"
    );

    app.graphql_ok("mutation { rotateSecret { id } }", json!({}), Some(&alice))
        .await;
    let told = plain.expect_type("auth_failed").await;
    assert!(
        told["message"]
            .as_str()
            .is_some_and(|m| m.contains("revoked")),
        "{told}"
    );
    assert_eq!(plain.expect_close().await, Some(4401));
    other.round_trip().await;
}

#[tokio::test]
async fn a_push_reaches_a_plain_connection_on_another_node_once() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let mut far = plain_as(&nodes[1], &alice).await;
    let mut near = plain_as(&nodes[0], &alice).await;
    let (status, _) = nodes[0]
        .api_push(
            Some(API_KEY),
            json!({ "users": [alice.id], "event": "Note", "data": { "n": 1 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    for client in [&mut far, &mut near] {
        assert_eq!(client.next().await, json!({ "type": "Note", "n": 1 }));
        client.round_trip().await;
    }
}

#[tokio::test]
async fn relays_room_pushes_and_revocations_reach_plain_connections_on_other_nodes() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let room = "topic:canvas-x";
    let mut far =
        PlainClient::authed(nodes[1].port, &format!("/ws/{room}"), &bob.id, &bob.secret).await;
    far.round_trip().await;
    let mut near = PlainClient::authed(
        nodes[0].port,
        &format!("/ws/{room}"),
        &alice.id,
        &alice.secret,
    )
    .await;
    near.round_trip().await;
    let mut sio = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    sio.emit_with_ack("joinRoom", &json!(room)).await;

    // Socket.IO on node 0 → plain on both nodes.
    let ack = sio
        .emit_with_ack("event", &json!({ "type": "DRAW", "timestamp": entity::now_ms(), "payload": { "from": "sio" }, "room": room }))
        .await;
    assert_eq!(ack[0], json!({ "ok": true }));
    for client in [&mut far, &mut near] {
        assert_eq!(
            client.expect_type("DRAW").await["payload"],
            json!({ "from": "sio" })
        );
    }
    // Plain on node 1 → Socket.IO and plain on node 0, not back to itself.
    far.send(
        &json!({ "type": "DRAW", "timestamp": entity::now_ms(), "payload": { "from": "far" } }),
    )
    .await;
    assert_eq!(
        sio.expect("event").await["payload"],
        json!({ "from": "far" })
    );
    assert_eq!(
        near.expect_type("DRAW").await["payload"],
        json!({ "from": "far" })
    );
    far.round_trip().await;

    // A backend push to the room, from node 0: once on each node.
    let (status, _) = nodes[0]
        .api_push(
            Some(API_KEY),
            json!({ "rooms": [room], "event": "Notice", "data": { "n": 1 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202);
    for client in [&mut far, &mut near] {
        assert_eq!(client.next().await, json!({ "type": "Notice", "n": 1 }));
        client.round_trip().await;
    }

    // Bob rotates his secret on node 0: his plain connection on node 1 closes.
    nodes[0]
        .graphql_ok("mutation { rotateSecret { id } }", json!({}), Some(&bob))
        .await;
    far.expect_type("auth_failed").await;
    assert_eq!(far.expect_close().await, Some(4401));
}

#[tokio::test]
async fn a_member_removed_from_a_chatroom_stops_hearing_it_on_plain_connections_too() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let data = app
        .graphql_ok(
            "mutation($n: String!, $m: [ID!]!) { createChatroom(name: $n, memberIds: $m) { id } }",
            json!({ "n": "Trip", "m": [bob.id] }),
            Some(&alice),
        )
        .await;
    let room = format!(
        "chatroom:{}",
        data["createChatroom"]["id"].as_str().expect("id")
    );
    let mut plain =
        PlainClient::authed(app.port, &format!("/ws/{room}"), &bob.id, &bob.secret).await;
    plain.round_trip().await;
    let mut sender = app.authed_socket(&alice, Transport::WebSocket).await;
    sender.emit_with_ack("joinRoom", &json!(room)).await;
    let note =
        json!({ "type": "NOTE", "timestamp": entity::now_ms(), "payload": {}, "room": room });
    sender.emit_with_ack("event", &note).await;
    assert_eq!(plain.expect_type("NOTE").await["userId"], alice.id);

    app.graphql_ok(
        "mutation($c: ID!, $u: ID!) { removeChatroomMember(chatroomId: $c, userId: $u) { id } }",
        json!({ "c": data["createChatroom"]["id"], "u": bob.id }),
        Some(&alice),
    )
    .await;
    sender.emit_with_ack("event", &note).await;
    // Everything up to the pong: chat updates may come, the relay may not.
    plain.send(&json!({ "type": "ping" })).await;
    loop {
        let frame = plain.next().await;
        assert_ne!(frame["type"], "NOTE", "an evicted member heard the room");
        if frame["type"] == "pong" {
            break;
        }
    }
}
