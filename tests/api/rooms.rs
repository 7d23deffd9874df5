//! §5 (rooms, relay, typing): who may join what, and relayed events reach
//! the room's other sockets only, stamped with the sender's real user.

use serde_json::{json, Value};

use crate::helpers::*;

fn relay_event(kind: &str, timestamp: i64, room: &str) -> Value {
    json!({ "type": kind, "timestamp": timestamp, "userId": "someone-else", "payload": { "x": 1 }, "room": room })
}

fn now() -> i64 {
    entity::now_ms()
}

/// Alice's socket (the sender, on `sender_node`) and Bob's (the listener,
/// over `transport` on `listener_node`), both in `room`.
struct RelayPair {
    alice: TestUser,
    sender: SioClient,
    listener: SioClient,
}

async fn relay_pair(
    sender_node: &TestApp,
    listener_node: &TestApp,
    transport: Transport,
    room: &str,
) -> RelayPair {
    let alice = sender_node.sign_up("alice").await;
    let bob = sender_node.sign_up("bob").await;
    let mut sender = sender_node
        .authed_socket(&alice, Transport::WebSocket)
        .await;
    let mut listener = listener_node.authed_socket(&bob, transport).await;
    for socket in [&mut sender, &mut listener] {
        socket.emit_with_ack("joinRoom", &json!(room)).await;
    }
    RelayPair {
        alice,
        sender,
        listener,
    }
}

#[tokio::test]
async fn who_may_join_which_room() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let mallory = app.sign_up("mallory").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut outsider = app.authed_socket(&mallory, Transport::WebSocket).await;
    let mut anonymous = app.socket(Transport::WebSocket).await;

    let ok = json!([{ "ok": true }]);
    assert_eq!(
        Value::from(socket.emit_with_ack("joinRoom", &json!("topic:news")).await),
        ok
    );
    assert_eq!(
        Value::from(
            socket
                .emit_with_ack(
                    "joinRoom",
                    &json!({ "room": format!("chatroom:{chatroom}") })
                )
                .await
        ),
        ok
    );

    // Which socket asks: 0 alice (a member), 1 mallory (an outsider), 2 nobody.
    let refusals = [
        (1, json!(format!("chatroom:{chatroom}")), "not a member"),
        (2, json!("topic:news"), "authenticate first"),
        (0, json!(format!("user:{}", bob.id)), "server's own"),
        (0, json!("tab:whatever"), "server's own"),
        (0, json!("topic:Not Lowercase"), "topic names"),
        (0, json!("lobby"), "room names are"),
        (0, json!(42), "a room is a name"),
    ];
    for (who, room, reason) in refusals {
        let client = match who {
            0 => &mut socket,
            1 => &mut outsider,
            _ => &mut anonymous,
        };
        let ack = client.emit_with_ack("joinRoom", &room).await;
        assert!(
            ack[0]["error"].as_str().is_some_and(|e| e.contains(reason)),
            "{room}: {ack:?}"
        );
        let error = client.expect("error").await;
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("joinRoom:")),
            "{error}"
        );
    }
    assert_eq!(
        Value::from(
            socket
                .emit_with_ack("leaveRoom", &json!("topic:news"))
                .await
        ),
        ok
    );
}

#[tokio::test]
async fn a_socket_may_hold_only_so_many_rooms() {
    let app = spawn_app_with(|c| c.max_rooms_per_socket = 2).await;
    let alice = app.sign_up("alice").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    for topic in ["topic:a", "topic:b"] {
        assert_eq!(
            socket.emit_with_ack("joinRoom", &json!(topic)).await[0]["ok"],
            true
        );
    }
    let ack = socket.emit_with_ack("joinRoom", &json!("topic:c")).await;
    assert!(
        ack[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 2")),
        "{ack:?}"
    );
    assert_eq!(
        socket.emit_with_ack("joinRoom", &json!("topic:a")).await[0]["ok"],
        true,
        "rejoining is free"
    );
}

#[tokio::test]
async fn relay_reaches_the_rooms_other_sockets_with_the_senders_real_user_id() {
    let app = spawn_app().await;
    let RelayPair {
        alice,
        mut sender,
        mut listener,
    } = relay_pair(&app, &app, Transport::Polling, "topic:board").await;
    let carol = app.sign_up("carol").await;
    let mut elsewhere = app.authed_socket(&carol, Transport::WebSocket).await;
    elsewhere
        .emit_with_ack("joinRoom", &json!("topic:other"))
        .await;

    let ack = sender
        .emit_with_ack("event", &relay_event("SHAPE_ADDED", now(), "topic:board"))
        .await;
    assert_eq!(ack, vec![json!({ "ok": true })]);
    let event = listener.expect("event").await;
    assert_eq!(
        event["userId"],
        json!(alice.id),
        "the server stamps the sender"
    );
    assert_eq!(event["type"], "SHAPE_ADDED");
    assert_eq!(event["payload"], json!({ "x": 1 }));
    assert_eq!(event["room"], "topic:board");
    sender.expect_none("event", QUIET).await;
    elsewhere.expect_none("event", QUIET).await;
}

#[tokio::test]
async fn in_between_events_are_dropped_when_stale_or_from_the_future_and_others_pass() {
    let app = spawn_app().await;
    let RelayPair {
        mut sender,
        mut listener,
        ..
    } = relay_pair(&app, &app, Transport::WebSocket, "topic:canvas").await;
    for (kind, offset_ms, passes) in [
        ("CURSOR_SYNC", -4_000, true),
        ("CURSOR_SYNC", 4_000, true),
        ("CURSOR_SYNC", -6_000, false),
        ("FRAME_UPDATE", 6_000, false),
        ("TYPING", -60_000, false),
        ("SHAPE_ADDED", -60_000, true),
    ] {
        let ack = sender
            .emit_with_ack(
                "event",
                &relay_event(kind, now() + offset_ms, "topic:canvas"),
            )
            .await;
        if passes {
            assert_eq!(ack, vec![json!({ "ok": true })], "{kind} {offset_ms}");
            assert_eq!(listener.expect("event").await["type"], kind);
        } else {
            assert_eq!(ack[0]["error"], "stale event dropped", "{kind} {offset_ms}");
            listener.expect_none("event", QUIET).await;
        }
    }
    // Timestamps at the ends of the 64-bit range are stale too, not a
    // crashed handler that never answers.
    for timestamp in [i64::MIN, i64::MAX] {
        let ack = sender
            .emit_with_ack(
                "event",
                &relay_event("CURSOR_SYNC", timestamp, "topic:canvas"),
            )
            .await;
        assert_eq!(ack[0]["error"], "stale event dropped", "{timestamp}");
    }
    listener.expect_none("event", QUIET).await;
    assert_eq!(app.metric("tidings_relay_stale_dropped_total").await, 5);
}

#[tokio::test]
async fn malformed_relay_events_are_refused_with_the_reason() {
    let app = spawn_app_with(|c| c.relay_max_payload_bytes = 1024).await;
    let alice = app.sign_up("alice").await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    socket.emit_with_ack("joinRoom", &json!("topic:x")).await;
    let good = relay_event("OK", now(), "topic:x");
    let with = |field: &str, value: Value| {
        let mut event = good.clone();
        event[field] = value;
        event
    };
    for (event, reason) in [
        (json!("not an object"), "must be an object"),
        (with("type", json!("lowercase")), "type must match"),
        (with("type", json!("A".repeat(65))), "type must match"),
        (with("timestamp", json!("yesterday")), "timestamp"),
        (with("payload", json!([1, 2])), "payload must be an object"),
        (
            with("payload", json!({ "big": "x".repeat(2000) })),
            "too large",
        ),
        (with("room", json!("topic:not-joined")), "joined"),
        (with("room", json!(format!("user:{}", alice.id))), "joined"),
    ] {
        let ack = socket.emit_with_ack("event", &event).await;
        assert!(
            ack[0]["error"].as_str().is_some_and(|e| e.contains(reason)),
            "{event}: {ack:?}"
        );
    }
}

#[tokio::test]
async fn typing_reaches_the_chatrooms_other_sockets() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut typist = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut reader = app.authed_socket(&bob, Transport::WebSocket).await;
    for socket in [&mut typist, &mut reader] {
        assert_eq!(
            socket
                .emit_with_ack("joinRoom", &json!(format!("chatroom:{chatroom}")))
                .await[0]["ok"],
            true
        );
    }
    let ack = typist
        .emit_with_ack("typing", &json!({ "chatroomId": chatroom }))
        .await;
    assert_eq!(ack, vec![json!({ "ok": true })]);
    let event = reader.expect("typing").await;
    assert_eq!(event["chatroomId"], json!(chatroom));
    assert_eq!(event["userId"], json!(alice.id));
    assert!(event["timestamp"].as_i64().is_some());
    typist.expect_none("typing", QUIET).await;

    let ack = typist
        .emit_with_ack(
            "typing",
            &json!({ "chatroomId": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert!(ack[0]["error"].as_str().is_some(), "{ack:?}");
}

#[tokio::test]
async fn re_authenticating_as_someone_else_keeps_only_rooms_the_new_user_may_hold() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let chatroom = app.direct_chatroom(&alice, &bob).await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    socket
        .emit_with_ack("joinRoom", &json!(format!("chatroom:{chatroom}")))
        .await;
    socket.emit_with_ack("joinRoom", &json!("topic:all")).await;
    let mut member = app.authed_socket(&bob, Transport::WebSocket).await;
    member
        .emit_with_ack("joinRoom", &json!(format!("chatroom:{chatroom}")))
        .await;
    member.emit_with_ack("joinRoom", &json!("topic:all")).await;

    assert_eq!(
        socket
            .emit_with_ack("initialConnection", &carol.credentials())
            .await,
        vec![json!(true)]
    );
    let ack = member
        .emit_with_ack("typing", &json!({ "chatroomId": chatroom }))
        .await;
    assert_eq!(ack[0]["ok"], true);
    socket.expect_none("typing", QUIET).await;
    member
        .emit_with_ack("event", &relay_event("HELLO", now(), "topic:all"))
        .await;
    assert_eq!(
        socket.expect("event").await["userId"],
        json!(bob.id),
        "topics stay"
    );
}

#[tokio::test]
async fn relay_crosses_nodes() {
    let (nodes, _db) = spawn_cluster(2).await;
    let RelayPair {
        alice,
        mut sender,
        mut listener,
    } = relay_pair(&nodes[0], &nodes[1], Transport::WebSocket, "topic:shared").await;
    sender
        .emit_with_ack("event", &relay_event("PING", now(), "topic:shared"))
        .await;
    assert_eq!(listener.expect("event").await["userId"], json!(alice.id));
    listener.expect_none("event", QUIET).await;
}

const CREATE: &str = "mutation($n: String!, $m: [ID!]!) { createChatroom(name: $n, memberIds: $m) { id name memberIds } }";
const ADD: &str =
    "mutation($c: ID!, $u: ID!) { addChatroomMember(chatroomId: $c, userId: $u) { id } }";
const REMOVE: &str =
    "mutation($c: ID!, $u: ID!) { removeChatroomMember(chatroomId: $c, userId: $u) { id } }";

#[tokio::test]
async fn group_chatrooms_are_created_and_grown_with_updated_chat_to_every_member() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let mut to_bob = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut to_carol = app.authed_socket(&carol, Transport::WebSocket).await;

    let data = app
        .graphql_ok(CREATE, json!({ "n": "Trip", "m": [bob.id] }), Some(&alice))
        .await;
    let room = data["createChatroom"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        data["createChatroom"]["memberIds"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        to_bob.expect("updatedChat").await["chatroomId"],
        json!(room)
    );
    to_carol.expect_none("updatedChat", QUIET).await;

    // Any member may add; the new member hears of it.
    app.graphql_ok(ADD, json!({ "c": room, "u": carol.id }), Some(&bob))
        .await;
    let update = to_carol.expect("updatedChat").await;
    assert_eq!(update["memberIds"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        to_bob.expect("updatedChat").await["chatroomId"],
        json!(room)
    );

    // Bad input and outsiders.
    let response = app
        .graphql(CREATE, json!({ "n": "  ", "m": [] }), Some(&alice))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let ghost = uuid::Uuid::now_v7().to_string();
    let response = app
        .graphql(CREATE, json!({ "n": "x", "m": [ghost] }), Some(&alice))
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
    let mallory = app.sign_up("mallory").await;
    let response = app
        .graphql(ADD, json!({ "c": room, "u": mallory.id }), Some(&mallory))
        .await;
    assert_eq!(error_code(&response), "NOT_FOUND");
}

#[tokio::test]
async fn only_the_creator_removes_others_and_direct_chatrooms_keep_their_two_members() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    let data = app
        .graphql_ok(
            CREATE,
            json!({ "n": "Team", "m": [bob.id, carol.id] }),
            Some(&alice),
        )
        .await;
    let room = data["createChatroom"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = app
        .graphql(REMOVE, json!({ "c": room, "u": carol.id }), Some(&bob))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT", "{response}");
    app.graphql_ok(REMOVE, json!({ "c": room, "u": carol.id }), Some(&alice))
        .await;
    let left = app
        .graphql_ok(
            "mutation($c: ID!) { leaveChatroom(chatroomId: $c) }",
            json!({ "c": room }),
            Some(&bob),
        )
        .await;
    assert_eq!(left["leaveChatroom"], true);

    let direct = app.direct_chatroom(&alice, &bob).await;
    let response = app
        .graphql(REMOVE, json!({ "c": direct, "u": bob.id }), Some(&alice))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
    let response = app
        .graphql(ADD, json!({ "c": direct, "u": carol.id }), Some(&alice))
        .await;
    assert_eq!(error_code(&response), "BAD_USER_INPUT");
}

#[tokio::test]
async fn a_removed_member_hears_nothing_more_of_the_room_on_any_node() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let data = nodes[0]
        .graphql_ok(CREATE, json!({ "n": "Ops", "m": [bob.id] }), Some(&alice))
        .await;
    let room = data["createChatroom"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let name = format!("chatroom:{room}");
    let mut speaker = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    let mut removed = vec![
        nodes[0].authed_socket(&bob, Transport::WebSocket).await,
        nodes[1].authed_socket(&bob, Transport::Polling).await,
    ];
    speaker.emit_with_ack("joinRoom", &json!(name)).await;
    for socket in &mut removed {
        assert_eq!(
            socket.emit_with_ack("joinRoom", &json!(name)).await[0]["ok"],
            true
        );
    }
    speaker
        .emit_with_ack("event", &relay_event("BEFORE", now(), &name))
        .await;
    for socket in &mut removed {
        assert_eq!(socket.expect("event").await["type"], "BEFORE");
    }

    nodes[1]
        .graphql_ok(REMOVE, json!({ "c": room, "u": bob.id }), Some(&alice))
        .await;
    // The very next event of the room reaches no socket of bob's, on either node.
    speaker
        .emit_with_ack("event", &relay_event("AFTER", now(), &name))
        .await;
    speaker
        .emit_with_ack("typing", &json!({ "chatroomId": room }))
        .await;
    for socket in &mut removed {
        socket.expect_none("event", QUIET).await;
        socket.expect_none("typing", QUIET).await;
        let ack = socket.emit_with_ack("joinRoom", &json!(name)).await;
        assert!(
            ack[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("not a member")),
            "{ack:?}"
        );
    }
}

#[tokio::test]
async fn a_relayed_event_many_times_the_websocket_read_buffer_arrives_whole() {
    let app = spawn_app_with(|c| c.ws_read_buffer_bytes = 256).await;
    let RelayPair {
        mut sender,
        mut listener,
        ..
    } = relay_pair(&app, &app, Transport::WebSocket, "topic:board").await;
    let text: String = (0..6000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut event = relay_event("SHAPE_ADDED", now(), "topic:board");
    event["payload"] = json!({ "text": text });

    let ack = sender.emit_with_ack("event", &event).await;
    assert_eq!(ack, vec![json!({ "ok": true })]);
    let relayed = listener.expect("event").await;
    assert_eq!(relayed["payload"]["text"], json!(text));
}
