//! Several nodes on one database and one Redis: every guarantee of the
//! contract holds across nodes. (Each node here is a full `Application` in
//! the test process, with its own Redis connections; nothing is shared in
//! memory between them.)

use serde_json::json;

use crate::helpers::*;

const FOLLOW: &str = "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }";
const IS_ONLINE: &str = "query($u: ID!) { isOnline(userId: $u) }";

#[tokio::test]
async fn a_mutation_on_one_node_reaches_the_users_sockets_on_the_others() {
    let (nodes, _db) = spawn_cluster(3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let alice = a.sign_up("alice").await;
    let bob = a.sign_up("bob").await;
    let carol = a.sign_up("carol").await;
    let mut on_a = a.authed_socket(&alice, Transport::WebSocket).await;
    let mut on_c = c.authed_socket(&alice, Transport::Polling).await;
    let mut carol_on_a = a.authed_socket(&carol, Transport::WebSocket).await;

    b.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    for socket in [&mut on_a, &mut on_c] {
        assert_eq!(socket.expect("Followed").await["followerId"], json!(bob.id));
        socket.expect_none("Followed", QUIET).await;
    }
    carol_on_a.expect_none("Followed", QUIET).await;
}

#[tokio::test]
async fn rotate_secret_on_one_node_unbinds_sockets_on_the_others() {
    let (nodes, _db) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let mut remote = nodes[1].authed_socket(&alice, Transport::WebSocket).await;
    nodes[0]
        .graphql_ok("mutation { rotateSecret { id } }", json!({}), Some(&alice))
        .await;
    assert_eq!(remote.expect("auth").await, json!(false));
    nodes[0]
        .graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    remote.expect_none("Followed", QUIET).await;
}

#[tokio::test]
async fn delete_account_disconnects_sockets_on_every_node() {
    let (nodes, _db) = spawn_cluster(3).await;
    let alice = nodes[0].sign_up("alice").await;
    let mut sockets = Vec::new();
    for node in &nodes {
        sockets.push(node.authed_socket(&alice, Transport::WebSocket).await);
    }
    nodes[1]
        .graphql_ok("mutation { deleteAccount }", json!({}), Some(&alice))
        .await;
    for socket in &mut sockets {
        socket.expect_closed().await;
    }
}

#[tokio::test]
async fn is_online_is_right_from_every_node() {
    let (nodes, _db) = spawn_cluster(3).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    for node in &nodes {
        let data = node
            .graphql_ok(IS_ONLINE, json!({ "u": alice.id }), Some(&bob))
            .await;
        assert_eq!(data["isOnline"], json!(false));
    }
    let socket = nodes[2].authed_socket(&alice, Transport::WebSocket).await;
    for node in &nodes {
        let data = node
            .graphql_ok(IS_ONLINE, json!({ "u": alice.id }), Some(&bob))
            .await;
        assert_eq!(
            data["isOnline"],
            json!(true),
            "asked node on port {}",
            node.port
        );
    }
    socket.disconnect();
    let deadline = tokio::time::Instant::now() + WAIT;
    for node in &nodes {
        while node
            .graphql_ok(IS_ONLINE, json!({ "u": alice.id }), Some(&bob))
            .await["isOnline"]
            == json!(true)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "alice stayed online"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn readyz_shows_each_nodes_id_and_redis() {
    let (nodes, _db) = spawn_cluster(2).await;
    let mut ids = Vec::new();
    for node in &nodes {
        let body: serde_json::Value = node.get("/readyz").await.json().await.expect("json");
        assert_eq!(body["redis"], "ok", "{body}");
        assert_eq!(body["ready"], true);
        ids.push(body["node_id"].as_str().expect("node id").to_owned());
    }
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn when_redis_goes_away_local_delivery_goes_on_and_cross_node_delivery_resumes_after() {
    let mut redis = PrivateRedis::start();
    redis.wait_until_up().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (nodes, _db) = spawn_cluster_on(2, &url).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let alice = a.sign_up("alice").await;
    let bob = a.sign_up("bob").await;
    let mut on_a = a.authed_socket(&alice, Transport::WebSocket).await;
    let mut on_b = b.authed_socket(&alice, Transport::WebSocket).await;

    redis.stop();
    // Local delivery: a mutation on node A reaches alice's socket on A.
    a.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
        .await;
    assert_eq!(on_a.expect("Followed").await["following"], json!(true));
    let ready = a.get("/readyz").await;
    assert_eq!(ready.status(), 503, "not ready without Redis");

    let port = redis.port;
    let _redis = PrivateRedis::start_on(port);
    _redis.wait_until_up().await;
    // Cross-node delivery comes back by itself: keep toggling on A until the
    // socket on B hears one (the first ones may fall in the reconnect gap).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        a.graphql_ok(FOLLOW, json!({ "u": alice.id }), Some(&bob))
            .await;
        if on_b
            .next_event("Followed", std::time::Duration::from_millis(500))
            .await
            .is_some()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cross-node delivery did not resume"
        );
    }
    assert!(
        !on_a.is_closed() && !on_b.is_closed(),
        "sockets survive a Redis outage"
    );
    // The BackgroundPush listener resubscribed by itself too.
    let message = json!({ "pushToUser": alice.id, "payload": "after the outage" });
    b.publish_background_push(&message.to_string()).await;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.expect("push").await, json!("after the outage"));
    }
    let ready = b.get("/readyz").await;
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn nodes_that_start_together_on_one_postgres_database_do_not_race_on_migrations() {
    // Always PostgreSQL: the advisory lock is what is under test.
    let url = fresh_postgres_database().await;
    let build = || {
        let mut config = tidings::Config::for_database(url.clone());
        config.db_pool_size = 2;
        tidings::Application::build(config)
    };
    let (a, b, c, d) = tokio::join!(build(), build(), build(), build());
    for node in [a, b, c, d] {
        assert!(node.is_ok(), "a node failed to start: {:?}", node.err());
    }
}

/// A client moving to a node it has never used (a crash, a redeploy, a
/// phone's new connection landing elsewhere) must not cost that node an
/// argon2 verification: the first node's verification is shared through
/// Redis. Only the same secret against the same stored hash is accepted.
#[tokio::test]
async fn a_secret_verified_on_one_node_is_not_verified_again_on_another() {
    const VERIFIED: &str = "tidings_argon2_verifications_total";
    const SHARED: &str = "tidings_auth_shared_verification_hits_total";
    let (nodes, _db) = spawn_cluster(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let alice = a.sign_up("alice").await;
    let _on_a = a.authed_socket(&alice, Transport::WebSocket).await;

    let verified_on_b = b.metric(VERIFIED).await;
    let _on_b = b.authed_socket(&alice, Transport::Polling).await;
    assert_eq!(b.metric(VERIFIED).await, verified_on_b);
    assert_eq!(b.metric(SHARED).await, 1);

    // A wrong secret finds no proof: verified here, and refused.
    let mut guess = b.socket(Transport::WebSocket).await;
    let wrong = TestUser {
        secret: format!("{}x", alice.secret),
        ..alice.clone()
    };
    guess.emit("initialConnection", &wrong.credentials());
    assert_eq!(guess.expect("auth").await, json!(false));
    assert_eq!(b.metric(VERIFIED).await, verified_on_b + 1);

    // A rotated secret invalidates the shared proof on every node at once.
    let rotated = a
        .graphql_ok(
            "mutation { rotateSecret { secretkey } }",
            json!({}),
            Some(&alice),
        )
        .await;
    let mut stale = b.socket(Transport::WebSocket).await;
    stale.emit("initialConnection", &alice.credentials());
    assert_eq!(stale.expect("auth").await, json!(false));
    let renewed = TestUser {
        secret: rotated["rotateSecret"]["secretkey"]
            .as_str()
            .expect("secret")
            .to_owned(),
        ..alice.clone()
    };
    let _renewed_on_b = b.authed_socket(&renewed, Transport::WebSocket).await;
    let verified_on_a = a.metric(VERIFIED).await;
    let _renewed_on_a = a.authed_socket(&renewed, Transport::WebSocket).await;
    assert_eq!(a.metric(VERIFIED).await, verified_on_a);
    assert_eq!(a.metric(SHARED).await, 1);
}
