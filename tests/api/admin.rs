//! The operator view (`/admin`) and its JSON.

use serde_json::{json, Value};

use crate::helpers::*;

async fn stats_with(app: &TestApp, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = app.http.get(app.url("/admin/api/stats"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn bearer() -> String {
    format!("Bearer {API_KEY}")
}

#[tokio::test]
async fn the_operator_view_is_off_without_an_api_key() {
    let app = spawn_app_with(|config| config.api_key = None).await;
    for path in ["/admin", "/admin/admin.js", "/admin/api/stats"] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
    let (status, _) = stats_with(&app, &[("authorization", "Bearer anything-at-all-123")]).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn its_json_wants_the_key_and_refuses_cross_origin_use() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/admin").await.status(),
        200,
        "the page itself holds no data"
    );
    let key = bearer();

    assert_eq!(stats_with(&app, &[]).await.0, 401);
    assert_eq!(
        stats_with(&app, &[("authorization", "Bearer wrong-key-0123456789")])
            .await
            .0,
        401
    );
    assert_eq!(stats_with(&app, &[("authorization", &key)]).await.0, 200);
    let same_origin = format!("http://127.0.0.1:{}", app.port);
    assert_eq!(
        stats_with(
            &app,
            &[
                ("authorization", &key),
                ("origin", &same_origin),
                ("sec-fetch-site", "same-origin")
            ]
        )
        .await
        .0,
        200
    );
    for refused in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
    ] {
        let mut headers = refused.clone();
        headers.push(("authorization", &key));
        assert_eq!(stats_with(&app, &headers).await.0, 403, "{refused:?}");
    }
}

#[tokio::test]
async fn stats_show_this_nodes_connections_users_and_pushes() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    let _alice_socket = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut bob_socket = app.authed_socket(&bob, Transport::Polling).await;
    app.graphql_ok(
        "mutation($u: ID!) { followUnfollowUser(userId: $u) { following } }",
        json!({ "u": bob.id }),
        Some(&alice),
    )
    .await;
    bob_socket.expect("Followed").await;

    let (status, stats) = stats_with(&app, &[("authorization", &bearer())]).await;

    assert_eq!(status, 200, "{stats}");
    let node = &stats["node"];
    assert_eq!(node["nodeId"], app.node_id().await);
    assert_eq!(node["connections"], json!({ "polling": 1, "websocket": 1 }));
    assert_eq!(node["authenticatedSockets"], 2);
    assert_eq!(node["onlineUsers"], 2);
    assert_eq!(node["pushes"]["Followed"], 1);
    assert_eq!(node["pushLatency"]["count"], 1);
    assert_eq!(node["auth"]["ok"], 3, "two sockets and one GraphQL request");
    assert_eq!(node["database"], "ok");
    assert_eq!(node["redis"], "not configured");
    assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_operator_can_disconnect_every_socket_of_a_user() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let mut first = app.authed_socket(&alice, Transport::WebSocket).await;
    let mut second = app.authed_socket(&alice, Transport::Polling).await;
    let disconnect = |id: &str| {
        app.http
            .post(app.url(&format!("/admin/api/users/{id}/disconnect")))
            .header("authorization", bearer())
            .send()
    };

    assert_eq!(
        disconnect("not-a-uuid").await.expect("request").status(),
        400
    );
    let unauthorized = app
        .http
        .post(app.url(&format!("/admin/api/users/{}/disconnect", alice.id)))
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status(), 401);
    assert!(!first.is_closed());

    assert_eq!(disconnect(&alice.id).await.expect("request").status(), 200);
    first.expect_closed().await;
    second.expect_closed().await;
}

#[tokio::test]
async fn every_node_sees_the_whole_cluster() {
    let (nodes, _dir) = spawn_cluster(2).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, stats) = stats_with(&nodes[0], &[("authorization", &bearer())]).await;
        assert_eq!(status, 200, "{stats}");
        let seen = stats["nodes"].as_array().map(Vec::len).unwrap_or_default();
        if seen == 2 {
            assert_eq!(stats["nodes"][0]["nodeId"], nodes[0].node_id().await);
            assert_eq!(stats["nodes"][1]["nodeId"], nodes[1].node_id().await);
            assert_eq!(stats["nodes"][1]["redis"], "ok");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_operator_sees_a_users_sockets_on_every_node() {
    let (nodes, _dir) = spawn_cluster(2).await;
    let alice = nodes[0].sign_up("alice").await;
    let bob = nodes[0].sign_up("bob").await;
    let _here = nodes[0].authed_socket(&alice, Transport::WebSocket).await;
    let _there = nodes[1].authed_socket(&alice, Transport::Polling).await;
    let _bob = nodes[1].authed_socket(&bob, Transport::WebSocket).await;
    let lookup = |id: String| {
        nodes[0]
            .http
            .get(nodes[0].url(&format!("/admin/api/users/{id}/sockets")))
            .header("authorization", bearer())
            .send()
    };

    let answer: Value = lookup(alice.id.clone())
        .await
        .expect("request")
        .json()
        .await
        .expect("json");

    let sockets = answer["sockets"].as_array().expect("sockets");
    assert_eq!(sockets.len(), 2, "{answer}");
    let servers: std::collections::HashSet<_> =
        sockets.iter().map(|s| s["serverId"].to_string()).collect();
    assert_eq!(servers.len(), 2, "one socket on each node: {answer}");
    assert_eq!(
        lookup("nobody".into()).await.expect("request").status(),
        400
    );
}
