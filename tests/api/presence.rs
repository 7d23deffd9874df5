//! Presence (§5): a user is online while they have an authenticated socket
//! anywhere; followers hear each transition once, not each extra tab; a
//! dead node's users go offline within the configured bound.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

const FOLLOW: &str = "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }";
const IS_ONLINE: &str = "query($u: ID!) { isOnline(userId: $u) }";
const ONLINE_FOLLOWING: &str = "{ onlineFollowing { id username } }";

/// Short enough for a test to wait out, long enough for a loaded machine
/// not to declare a live node dead: beats every 300 ms, dead after 900 ms.
const PRESENCE_TIMEOUT_MS: u64 = 1800;

async fn follow(node: &TestApp, follower: &TestUser, followee: &TestUser) {
    let data = node
        .graphql_ok(FOLLOW, json!({ "u": followee.id }), Some(follower))
        .await;
    assert_eq!(data["followUnfollowUser"]["following"], json!(true));
}

async fn is_online(node: &TestApp, asker: &TestUser, user: &TestUser) -> bool {
    let data = node
        .graphql_ok(IS_ONLINE, json!({ "u": user.id }), Some(asker))
        .await;
    data["isOnline"].as_bool().expect("isOnline is a boolean")
}

/// The next `presence` event, checked to be about `user` and `online`.
async fn expect_presence(socket: &mut SioClient, user: &TestUser, online: bool) {
    let event = socket.expect("presence").await;
    assert_eq!(event["userId"], json!(user.id), "{event}");
    assert_eq!(event["online"], json!(online), "{event}");
    assert!(event["timestamp"].is_i64(), "integer timestamp: {event}");
}

/// The next message on the `Presence` Redis channel, as JSON.
async fn next_published(pubsub: &mut redis::aio::PubSub, within: Duration) -> Option<Value> {
    let message = tokio::time::timeout(within, pubsub.on_message().next())
        .await
        .ok()??;
    let text: String = message.get_payload().expect("text payload");
    Some(serde_json::from_str(&text).expect("Presence messages are JSON"))
}

#[tokio::test]
async fn followers_hear_online_and_offline_once_however_many_tabs() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let carol = app.sign_up("carol").await;
    follow(&app, &bob, &alice).await;
    let mut bob_socket = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut carol_socket = app.authed_socket(&carol, Transport::WebSocket).await;
    assert!(!is_online(&app, &bob, &alice).await);

    let first = app.authed_socket(&alice, Transport::WebSocket).await;
    expect_presence(&mut bob_socket, &alice, true).await;
    assert!(is_online(&app, &bob, &alice).await);
    let second = app.authed_socket(&alice, Transport::Polling).await;
    bob_socket.expect_none("presence", QUIET).await;

    first.disconnect();
    bob_socket.expect_none("presence", QUIET).await;
    assert!(is_online(&app, &bob, &alice).await, "one tab is still open");
    second.disconnect();
    expect_presence(&mut bob_socket, &alice, false).await;
    assert!(!is_online(&app, &bob, &alice).await);

    // Carol does not follow Alice.
    carol_socket.expect_none("presence", QUIET).await;
}

#[tokio::test]
async fn re_authenticating_as_the_same_user_is_not_a_transition() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    follow(&app, &bob, &alice).await;
    let mut bob_socket = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    expect_presence(&mut bob_socket, &alice, true).await;

    let ack = socket
        .emit_with_ack("initialConnection", &alice.credentials())
        .await;
    assert_eq!(ack, vec![json!(true)]);
    bob_socket.expect_none("presence", QUIET).await;

    // A wrong secret unbinds the socket: that is going offline.
    let wrong = json!({ "id": alice.id, "secretkey": "not-the-secret" });
    assert_eq!(
        socket.emit_with_ack("initialConnection", &wrong).await,
        vec![json!(false)]
    );
    expect_presence(&mut bob_socket, &alice, false).await;
}

#[tokio::test]
async fn authenticating_as_someone_else_moves_presence() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let dave = app.sign_up("dave").await;
    let bob = app.sign_up("bob").await;
    follow(&app, &bob, &alice).await;
    follow(&app, &bob, &dave).await;
    let mut bob_socket = app.authed_socket(&bob, Transport::WebSocket).await;
    let mut socket = app.authed_socket(&alice, Transport::WebSocket).await;
    expect_presence(&mut bob_socket, &alice, true).await;

    let ack = socket
        .emit_with_ack("initialConnection", &dave.credentials())
        .await;
    assert_eq!(ack, vec![json!(true)]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let event = bob_socket.expect("presence").await;
        seen.push((event["userId"].clone(), event["online"].clone()));
    }
    seen.sort_by_key(|(user, _)| user.to_string());
    let mut wanted = vec![
        (json!(alice.id), json!(false)),
        (json!(dave.id), json!(true)),
    ];
    wanted.sort_by_key(|(user, _)| user.to_string());
    assert_eq!(seen, wanted);
    assert!(!is_online(&app, &bob, &alice).await);
    assert!(is_online(&app, &bob, &dave).await);
}

#[tokio::test]
async fn online_following_lists_whom_the_caller_follows_that_is_online() {
    let app = spawn_app().await;
    let bob = app.sign_up("bob").await;
    let alice = app.sign_up("alice").await;
    let carol = app.sign_up("carol").await;
    let dave = app.sign_up("dave").await;
    follow(&app, &bob, &alice).await;
    follow(&app, &bob, &carol).await;
    let _alice_socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let _dave_socket = app.authed_socket(&dave, Transport::WebSocket).await;

    let data = app
        .graphql_ok(ONLINE_FOLLOWING, json!({}), Some(&bob))
        .await;
    assert_eq!(
        data["onlineFollowing"],
        json!([{ "id": alice.id, "username": alice.username }]),
        "Carol is offline and Bob does not follow Dave"
    );

    let anonymous = app.graphql(ONLINE_FOLLOWING, json!({}), None).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn rotating_the_secret_takes_the_user_offline_once_on_every_node() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    follow(&nodes[0], &bob, &alice).await;
    let mut bob_socket = nodes[0].authed_socket(&bob, Transport::WebSocket).await;
    let _a = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    let _b = nodes[1].authed_socket(&alice, Transport::WebSocket).await;
    expect_presence(&mut bob_socket, &alice, true).await;

    nodes[1]
        .graphql_ok("mutation { rotateSecret { id } }", json!({}), Some(&alice))
        .await;
    expect_presence(&mut bob_socket, &alice, false).await;
    bob_socket.expect_none("presence", QUIET).await;
    for node in &nodes {
        assert!(!is_online(node, &bob, &alice).await);
    }
}

#[tokio::test]
async fn three_tabs_on_two_nodes_make_one_transition_each_way() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    follow(&nodes[1], &bob, &alice).await;
    let mut published = nodes[0].subscribe_presence().await;
    // Bob watches from both nodes.
    let mut bob_on = [
        nodes[0].authed_socket(&bob, Transport::WebSocket).await,
        nodes[1].authed_socket(&bob, Transport::Polling).await,
    ];
    // Bob's own sockets made him go online; that is published too.
    let bob_online = next_published(&mut published, WAIT)
        .await
        .expect("Bob's transition is published");
    assert_eq!(bob_online["userId"], json!(bob.id));

    let tab1 = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    let tab2 = nodes[1].authed_socket(&alice, Transport::WebSocket).await;
    let tab3 = nodes[1].authed_socket(&alice, Transport::Polling).await;
    for socket in &mut bob_on {
        expect_presence(socket, &alice, true).await;
    }
    let online = next_published(&mut published, WAIT)
        .await
        .expect("published on Presence");
    assert_eq!(online["userId"], json!(alice.id));
    assert_eq!(online["online"], json!(true));
    assert!(online["timestamp"].is_i64());
    assert!(online["nodeId"].is_string());
    for node in &nodes {
        assert!(is_online(node, &bob, &alice).await);
    }

    tab2.disconnect();
    tab1.disconnect();
    for socket in &mut bob_on {
        socket.expect_none("presence", QUIET).await;
    }
    for node in &nodes {
        assert!(is_online(node, &bob, &alice).await, "tab 3 is still open");
    }
    tab3.disconnect();
    for socket in &mut bob_on {
        expect_presence(socket, &alice, false).await;
        socket.expect_none("presence", QUIET).await;
    }
    let offline = next_published(&mut published, WAIT)
        .await
        .expect("published on Presence");
    assert_eq!(
        (offline["userId"].clone(), offline["online"].clone()),
        (json!(alice.id), json!(false))
    );
    assert!(
        next_published(&mut published, QUIET).await.is_none(),
        "one message per transition"
    );
}

/// A node that stopped beating (killed: it cannot say goodbye) is written
/// into Redis by hand as if it had held Alice, with its last beat long ago.
/// The live nodes must sweep it and take Alice offline within the bound.
#[tokio::test]
async fn a_dead_nodes_users_go_offline_within_the_bound() {
    let redis_url = std::env::var("TIDINGS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (nodes, _db) = spawn_cluster_with(2, &redis_url, |config| {
        config.presence_timeout_ms = PRESENCE_TIMEOUT_MS;
    })
    .await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    follow(&nodes[0], &bob, &alice).await;
    let mut bob_socket = nodes[1].authed_socket(&bob, Transport::WebSocket).await;
    let mut published = nodes[0].subscribe_presence().await;

    let keys = format!(
        "{}:presence:",
        nodes[0].redis_prefix.as_deref().expect("cluster")
    );
    let dead = uuid::Uuid::new_v4().to_string();
    let mut redis = nodes[0].redis().await;
    redis::pipe()
        .sadd(format!("{keys}user:{{{}}}", alice.id), &dead)
        .sadd(format!("{keys}node:{{{dead}}}"), &alice.id)
        // Its last beat: just now by the clock, so the full wait is tested.
        .zadd(format!("{keys}nodes"), &dead, entity::now_ms())
        .exec_async(&mut redis)
        .await
        .expect("write the dead node");
    assert!(is_online(&nodes[1], &bob, &alice).await);

    let started = std::time::Instant::now();
    expect_presence(&mut bob_socket, &alice, false).await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(PRESENCE_TIMEOUT_MS),
        "offline after {took:?}, bound {PRESENCE_TIMEOUT_MS} ms"
    );
    assert!(!is_online(&nodes[0], &bob, &alice).await);
    let message = next_published(&mut published, WAIT)
        .await
        .expect("published");
    assert_eq!(message["online"], json!(false));
    // Swept once, announced once, though both nodes sweep.
    bob_socket.expect_none("presence", QUIET).await;
    let left: bool = redis::cmd("EXISTS")
        .arg(format!("{keys}node:{{{dead}}}"))
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    assert!(!left, "the dead node's entries are gone");
}

/// A live node can be swept too, if it was cut off from Redis for longer
/// than half the bound. Its next beat finds it unregistered and puts its
/// users back: they come online again by themselves.
#[tokio::test]
async fn a_node_swept_while_alive_puts_its_users_back() {
    let redis_url = std::env::var("TIDINGS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let (nodes, _db) = spawn_cluster_with(2, &redis_url, |config| {
        config.presence_timeout_ms = PRESENCE_TIMEOUT_MS;
    })
    .await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    follow(&nodes[0], &bob, &alice).await;
    let mut bob_socket = nodes[1].authed_socket(&bob, Transport::WebSocket).await;
    let _alice_socket = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    expect_presence(&mut bob_socket, &alice, true).await;

    // What the other node's sweep does to node 0, done by hand.
    let keys = format!(
        "{}:presence:",
        nodes[0].redis_prefix.as_deref().expect("cluster")
    );
    let node = nodes[0].node_id().await;
    let mut redis = nodes[0].redis().await;
    redis::pipe()
        .zrem(format!("{keys}nodes"), &node)
        .srem(format!("{keys}user:{{{}}}", alice.id), &node)
        .del(format!("{keys}node:{{{node}}}"))
        .exec_async(&mut redis)
        .await
        .expect("sweep node 0 by hand");
    // Not asserted here that Alice reads as offline: node 0's next beat
    // (every 300 ms) may already have put her back. That it did is what the
    // second `online` transition below shows: it needs the removal first.

    expect_presence(&mut bob_socket, &alice, true).await;
    assert!(is_online(&nodes[1], &bob, &alice).await);
}
