//! Beyond one Redis: nodes on a Redis Cluster (three masters, three
//! replicas) and on a master followed through Sentinel, both started by
//! `scripts/redis-topologies`; and the start-up errors of a bad set-up.

use serde_json::json;
use tidings::app::Application;
use tidings::config::Config;

use crate::durable::*;
use crate::helpers::*;

/// Pushes entering by either node reach the user's sockets on both, each
/// once, in order; a `BackgroundPush` published on another Redis node than
/// the one the nodes subscribed through is logged once and delivered too.
async fn pushes_cross_nodes(nodes: &[TestApp], publish_at: &str) {
    let (a, b) = (&nodes[0], &nodes[1]);
    let user = a.sign_up("topo").await;
    let mut on_a = a.authed_socket(&user, Transport::WebSocket).await;
    let mut on_b = b.authed_socket(&user, Transport::WebSocket).await;
    for i in 1..=4 {
        push(if i % 2 == 0 { a } else { b }, &user, i, 1).await;
    }
    let message = json!({ "pushToUser": user.id, "event": "push", "payload": { "n": 5 } });
    let channel = a.background_channel.clone().expect("a cluster node");
    let mut backend = redis::Client::open(publish_at)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("a backend reaches Redis");
    redis::cmd("PUBLISH")
        .arg(&channel)
        .arg(message.to_string())
        .query_async::<i64>(&mut backend)
        .await
        .expect("publish");
    for socket in [&mut on_a, &mut on_b] {
        for expected in 1..=5 {
            assert_eq!(
                next_push(socket).await,
                (expected, json!({ "seq": expected }))
            );
        }
        assert_eq!(barrier(socket, 5).await["ok"], json!(true));
        socket.expect_none("push", std::time::Duration::ZERO).await;
    }
    let mut logged = 0;
    for node in nodes {
        logged += node.metric("tidings_pushes_logged_total").await;
    }
    assert_eq!(logged, 5, "each push logged once in the whole cluster");
    let online = b
        .graphql_ok(
            "query($u: ID!) { isOnline(userId: $u) }",
            json!({ "u": user.id }),
            Some(&user),
        )
        .await;
    assert_eq!(online["isOnline"], json!(true));
}

#[tokio::test]
async fn on_a_redis_cluster_pushes_cross_nodes_over_sharded_channels() {
    let vars = redis_topology("cluster");
    let (nodes, _db) = spawn_on_redis_cluster(2, &vars).await;
    // The nodes were given the first three seeds; a backend publishes to
    // the last node of the cluster, a replica's port included in none.
    pushes_cross_nodes(&nodes, "redis://127.0.0.1:7106").await;
    for node in &nodes {
        assert_eq!(node.get("/readyz").await.status(), 200);
    }
}

#[tokio::test]
async fn on_sentinel_pushes_cross_nodes_through_the_named_master() {
    let vars = redis_topology("sentinel");
    let (nodes, _db) = spawn_on_sentinel(2, &vars).await;
    pushes_cross_nodes(&nodes, &vars["TIDINGS_TEST_REDIS_URL"]).await;
}

/// The text of the error `Application::build` fails with.
async fn start_error(configure: impl FnOnce(&mut Config)) -> String {
    let dir = tempfile::tempdir().expect("dir");
    let mut config = Config::for_database(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ));
    configure(&mut config);
    config.validate().expect("a valid configuration");
    match Application::build(config).await {
        Ok(_) => panic!("the node started"),
        Err(err) => err.to_string(),
    }
}

#[tokio::test]
async fn a_node_refuses_to_start_when_no_cluster_seed_answers_or_a_seed_is_no_cluster() {
    let unreachable = start_error(|c| {
        c.redis_cluster_nodes = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
    })
    .await;
    assert!(
        unreachable.contains("cannot join the Redis Cluster through any of its seeds")
            && unreachable.contains("127.0.0.1:1,127.0.0.1:2"),
        "{unreachable}"
    );
    let plain = std::env::var("TIDINGS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let not_a_cluster = start_error(|c| c.redis_cluster_nodes = vec![plain.clone()]).await;
    assert!(
        not_a_cluster.contains("cannot join the Redis Cluster"),
        "{not_a_cluster}"
    );
}

#[tokio::test]
async fn a_node_refuses_to_start_on_a_sentinel_that_knows_no_such_master() {
    let vars = redis_topology("sentinel");
    let sentinels: Vec<String> = vars["TIDINGS_TEST_REDIS_SENTINELS"]
        .split(',')
        .map(str::to_owned)
        .collect();
    let unknown = start_error(|c| {
        c.redis_sentinels = sentinels.clone();
        c.redis_sentinel_master = Some("no-such-master".into());
    })
    .await;
    assert!(
        unknown.contains("Sentinel knows no master named \"no-such-master\""),
        "{unknown}"
    );
    let silent = start_error(|c| {
        c.redis_sentinels = vec!["127.0.0.1:1".into()];
        c.redis_sentinel_master = Some("tidings".into());
    })
    .await;
    assert!(silent.contains("no Sentinel answered"), "{silent}");
}
