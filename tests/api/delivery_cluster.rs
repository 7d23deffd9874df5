//! Durable delivery across nodes: one log per user in Redis, whichever node
//! a push enters by and whichever node a socket comes back to.

use serde_json::{json, Value};

use crate::durable::*;
use crate::helpers::*;

#[tokio::test]
async fn sockets_of_one_user_on_two_nodes_get_each_push_once_in_order_whichever_node_it_enters() {
    let (nodes, _db) = spawn_cluster(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let user = a.sign_up("both").await;
    let mut on_a = a.authed_socket(&user, Transport::WebSocket).await;
    let mut on_b = b.authed_socket(&user, Transport::Polling).await;
    for i in 1..=6 {
        push(if i % 2 == 0 { a } else { b }, &user, i, 1).await;
    }
    for socket in [&mut on_a, &mut on_b] {
        for expected in 1..=6 {
            assert_eq!(
                next_push(socket).await,
                (expected, json!({ "seq": expected }))
            );
        }
        assert_eq!(barrier(socket, 6).await["ok"], json!(true));
        socket.expect_none("push", std::time::Duration::ZERO).await;
    }
}

#[tokio::test]
async fn a_client_that_comes_back_on_another_node_resumes_there() {
    let (nodes, _db) = spawn_cluster(2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let user = a.sign_up("moves").await;
    let mut on_a = connect_with(a, user.credentials()).await;
    push(a, &user, 1, 2).await;
    assert_eq!(next_push(&mut on_a).await.0, 1);
    assert_eq!(next_push(&mut on_a).await.0, 2);
    on_a.disconnect();
    a.wait_for_socket_id(&user, |id| id.is_none()).await;

    push(a, &user, 3, 2).await;
    push(b, &user, 5, 2).await;
    // Unchanged client: no `since`; it was the user's only socket.
    let mut on_b = connect_with(b, user.credentials()).await;
    // 1 and 2 were sent just before the drop: they may come again.
    let (first, repeats) = next_new_push(&mut on_b, 2).await;
    assert_eq!(first, (3, json!({ "seq": 3, "replayed": true })));
    assert!(repeats <= 2, "{repeats} repeats");
    for expected in 4..=6 {
        assert_eq!(
            next_push(&mut on_b).await,
            (expected, json!({ "seq": expected, "replayed": true }))
        );
    }
    push(a, &user, 7, 1).await;
    assert_eq!(next_push(&mut on_b).await, (7, json!({ "seq": 7 })));
}

#[tokio::test]
async fn a_background_push_to_a_user_is_logged_once_however_many_nodes_hear_it() {
    let (nodes, _db) = spawn_cluster(3).await;
    let user = nodes[0].sign_up("bg").await;
    let mut socket = nodes[1].authed_socket(&user, Transport::WebSocket).await;
    // The same message twice on purpose: two pushes, not one, not three.
    let message = json!({ "pushToUser": user.id, "payload": { "n": 1 } }).to_string();
    nodes[2].publish_background_push(&message).await;
    nodes[2].publish_background_push(&message).await;
    assert_eq!(next_push(&mut socket).await, (1, json!({ "seq": 1 })));
    assert_eq!(next_push(&mut socket).await, (1, json!({ "seq": 2 })));
    assert_eq!(barrier(&mut socket, 2).await["ok"], json!(true));
    socket.expect_none("push", std::time::Duration::ZERO).await;
    let logged: u64 = {
        let mut total = 0;
        for node in &nodes {
            total += node.metric("tidings_pushes_logged_total").await;
        }
        total
    };
    assert_eq!(logged, 2);
}

#[tokio::test]
async fn a_redis_restart_loses_nothing_the_log_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let mut redis = PrivateRedis::start_durable(port, dir.path());
    redis.wait_until_up().await;
    let url = format!("redis://127.0.0.1:{port}");
    let (nodes, _db) = spawn_cluster_on(1, &url).await;
    let node = &nodes[0];
    let user = node.sign_up("restart").await;
    push(node, &user, 1, 3).await;

    redis.stop();
    let redis = PrivateRedis::start_durable(port, dir.path());
    redis.wait_until_up().await;

    let mut auth = user.credentials();
    auth["since"] = json!(0);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    // The node reconnects to Redis by itself; until it has, a resume cannot
    // read the log and says so.
    let mut socket = loop {
        let mut socket = connect_with(node, auth.clone()).await;
        match socket
            .next_event("push", std::time::Duration::from_millis(500))
            .await
        {
            Some(args) => {
                assert_eq!(args[0], json!({ "n": 1 }));
                break socket;
            }
            None => assert!(
                tokio::time::Instant::now() < deadline,
                "the log was not readable again after the restart"
            ),
        }
    };
    assert_eq!(next_push(&mut socket).await.0, 2);
    assert_eq!(next_push(&mut socket).await.0, 3);
    push(node, &user, 4, 1).await;
    assert_eq!(next_push(&mut socket).await, (4, json!({ "seq": 4 })));
}

#[tokio::test]
async fn with_redis_down_pushes_still_reach_connected_sockets_and_the_loss_is_counted() {
    let mut redis = PrivateRedis::start();
    redis.wait_until_up().await;
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let (nodes, _db) = spawn_cluster_on(1, &url).await;
    let node = &nodes[0];
    let user = node.sign_up("down").await;
    let mut socket = node.authed_socket(&user, Transport::WebSocket).await;
    push(node, &user, 1, 1).await;
    assert_eq!(next_push(&mut socket).await, (1, json!({ "seq": 1 })));

    redis.stop();
    push(node, &user, 2, 1).await;
    assert_eq!(
        next_push(&mut socket).await,
        (2, Value::Null),
        "delivered without a seq"
    );
    assert_eq!(node.metric("tidings_pushes_not_logged_total").await, 1);
    assert!(node.is_up().await);
}
