//! Delivery across reconnects (docs/protocol.md, "Delivery guarantees"):
//! every push to a user is logged with a `seq`, sent as the event's second
//! argument, and replayed to a socket that comes back.

use serde_json::json;

use crate::durable::*;
use crate::helpers::*;

/// Waits until the server has let go of every socket of `user`.
async fn wait_offline(app: &TestApp, user: &TestUser) {
    app.wait_for_socket_id(user, |id| id.is_none()).await;
}

#[tokio::test]
async fn a_durable_push_carries_its_seq_as_a_second_argument_growing_by_one() {
    let app = spawn_app().await;
    let user = app.sign_up("seq").await;
    let mut socket = app.authed_socket(&user, Transport::WebSocket).await;
    push(&app, &user, 1, 3).await;
    for expected in 1..=3 {
        let (n, meta) = next_push(&mut socket).await;
        assert_eq!(n, expected);
        assert_eq!(
            meta,
            json!({ "seq": expected }),
            "live pushes are not marked replayed"
        );
    }
}

#[tokio::test]
async fn a_client_resuming_with_since_gets_what_it_missed_in_order_then_live_pushes() {
    let app = spawn_app().await;
    let user = app.sign_up("since").await;
    let mut first = app.authed_socket(&user, Transport::WebSocket).await;
    push(&app, &user, 1, 2).await;
    assert_eq!(next_push(&mut first).await.0, 1);
    assert_eq!(next_push(&mut first).await.0, 2);
    first.disconnect();
    wait_offline(&app, &user).await;

    push(&app, &user, 3, 3).await;
    let mut auth = user.credentials();
    auth["since"] = json!(2);
    let mut back = connect_with(&app, auth).await;
    for expected in 3..=5 {
        let (n, meta) = next_push(&mut back).await;
        assert_eq!(n, expected);
        assert_eq!(meta, json!({ "seq": expected, "replayed": true }));
    }
    push(&app, &user, 6, 1).await;
    assert_eq!(next_push(&mut back).await, (6, json!({ "seq": 6 })));
    assert_eq!(
        barrier(&mut back, 6).await,
        json!({ "ok": true, "replayed": 0 })
    );
    back.expect_none("push", std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn an_unchanged_client_that_comes_back_alone_gets_what_it_missed_once() {
    let app = spawn_app().await;
    let user = app.sign_up("alone").await;
    let mut first = connect_with(&app, user.credentials()).await;
    push(&app, &user, 1, 2).await;
    assert_eq!(next_push(&mut first).await.0, 1);
    assert_eq!(next_push(&mut first).await.0, 2);
    first.disconnect();
    wait_offline(&app, &user).await;

    push(&app, &user, 3, 5).await;
    let mut back = connect_with(&app, user.credentials()).await;
    // 1 and 2 were sent just before the drop: they may come again.
    let ((n, meta), repeats) = next_new_push(&mut back, 2).await;
    assert_eq!((n, meta), (3, json!({ "seq": 3, "replayed": true })));
    assert!(repeats <= 2, "{repeats} repeats");
    for expected in 4..=7 {
        assert_eq!(next_push(&mut back).await.0, expected);
    }
    push(&app, &user, 8, 1).await;
    assert_eq!(next_push(&mut back).await.0, 8);
    barrier(&mut back, 8).await;
    back.expect_none("push", std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn a_new_tab_beside_a_connected_one_is_owed_nothing_from_before_it_opened() {
    let app = spawn_app().await;
    let user = app.sign_up("tab").await;
    let mut first = app.authed_socket(&user, Transport::WebSocket).await;
    push(&app, &user, 1, 2).await;
    next_push(&mut first).await;
    next_push(&mut first).await;
    let mut second = app.authed_socket(&user, Transport::Polling).await;
    push(&app, &user, 3, 1).await;
    assert_eq!(next_push(&mut second).await, (3, json!({ "seq": 3 })));
    assert_eq!(next_push(&mut first).await.0, 3);
}

#[tokio::test]
async fn resync_comes_first_when_the_log_no_longer_holds_what_is_asked_for() {
    let app = spawn_app_with(|c| c.resume_max_events = 3).await;
    let user = app.sign_up("resync").await;
    push(&app, &user, 1, 5).await;
    let mut auth = user.credentials();
    auth["since"] = json!(0);
    let mut socket = connect_with(&app, auth).await;
    assert_eq!(
        socket.expect("resync").await,
        json!({ "since": 0, "oldest": 3 })
    );
    for expected in 3..=5 {
        assert_eq!(next_push(&mut socket).await.0, expected);
    }
    assert_eq!(app.metric("tidings_resyncs_total").await, 1);
}

#[tokio::test]
async fn bad_since_values_get_a_clear_error_and_nothing_replayed() {
    let app = spawn_app().await;
    let user = app.sign_up("badsince").await;
    push(&app, &user, 1, 2).await;
    for bad in [
        json!(-1),
        json!(1.5),
        json!("1"),
        json!(1u64 << 60),
        json!(null),
    ] {
        let mut auth = user.credentials();
        auth["since"] = bad.clone();
        let mut socket = app
            .socket_with(
                Transport::WebSocket,
                ConnectOptions {
                    auth: Some(auth),
                    ..Default::default()
                },
            )
            .await;
        let error = socket.expect("error").await;
        assert_eq!(
            error["error"],
            json!("resume: since must be a whole number from 0 to 9007199254740991"),
            "{bad}"
        );
        assert_eq!(socket.expect("auth").await, json!(true), "{bad}");
        // Nothing was replayed: after the barrier no push is waiting.
        barrier(&mut socket, 2).await;
        socket.expect_none("push", std::time::Duration::ZERO).await;
    }

    let mut socket = app.authed_socket(&user, Transport::WebSocket).await;
    for (payload, reason) in [
        (
            json!({ "since": 99 }),
            "since 99 is ahead of this user's log, which ends at 2",
        ),
        (
            json!({ "since": -3 }),
            "since must be a whole number from 0 to 9007199254740991",
        ),
        (
            json!({ "since": "0" }),
            "since must be a whole number from 0 to 9007199254740991",
        ),
        (json!({}), "since is missing"),
        (json!("0"), "the payload must be { since }"),
    ] {
        let ack = socket.emit_with_ack("resume", &payload).await;
        assert_eq!(ack[0], json!({ "error": reason }), "{payload}");
        let error = socket.expect("error").await;
        assert_eq!(error["error"], json!(format!("resume: {reason}")));
    }
    socket.expect_none("push", std::time::Duration::ZERO).await;

    let mut anonymous = app.socket(Transport::WebSocket).await;
    let ack = anonymous
        .emit_with_ack("resume", &json!({ "since": 0 }))
        .await;
    assert_eq!(ack[0], json!({ "error": "authenticate first" }));
}

#[tokio::test]
async fn the_resume_event_replays_after_since_and_acknowledges_the_count() {
    let app = spawn_app().await;
    let user = app.sign_up("resume").await;
    let mut socket = app.authed_socket(&user, Transport::Polling).await;
    push(&app, &user, 1, 3).await;
    for _ in 0..3 {
        next_push(&mut socket).await;
    }
    assert_eq!(
        barrier(&mut socket, 1).await,
        json!({ "ok": true, "replayed": 2 })
    );
    assert_eq!(
        next_push(&mut socket).await,
        (2, json!({ "seq": 2, "replayed": true }))
    );
    assert_eq!(next_push(&mut socket).await.0, 3);
}

#[tokio::test]
async fn push_log_lists_the_callers_pushes_after_since_oldest_first() {
    let app = spawn_app().await;
    let user = app.sign_up("log").await;
    let other = app.sign_up("other").await;
    push(&app, &user, 1, 3).await;
    push(&app, &other, 1, 1).await;
    let query = "query($s: Int!, $f: Int) { pushLog(since: $s, first: $f) { seq event payload createdAt } }";
    let data = app
        .graphql_ok(query, json!({ "s": 1, "f": 10 }), Some(&user))
        .await;
    let log = data["pushLog"].as_array().expect("a list");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["seq"], json!(2));
    assert_eq!(log[0]["event"], json!("push"));
    assert_eq!(log[0]["payload"], json!({ "n": 2 }));
    assert!(log[0]["createdAt"].as_i64().is_some_and(|t| t > 0));
    assert_eq!(log[1]["seq"], json!(3));
    let first = app
        .graphql_ok(query, json!({ "s": 0, "f": 1 }), Some(&user))
        .await;
    assert_eq!(first["pushLog"][0]["seq"], json!(1));
    assert_eq!(first["pushLog"].as_array().map(Vec::len), Some(1));

    for (variables, code) in [
        (json!({ "s": -1 }), "BAD_USER_INPUT"),
        (json!({ "s": 0, "f": 0 }), "BAD_USER_INPUT"),
        (json!({ "s": 0, "f": 5000 }), "BAD_USER_INPUT"),
        (json!({ "s": "x" }), "BAD_USER_INPUT"),
        (json!({ "s": 1.5 }), "BAD_USER_INPUT"),
    ] {
        let response = app.graphql(query, variables.clone(), Some(&user)).await;
        assert_eq!(error_code(&response), code, "{variables}: {response}");
    }
    let response = app.graphql(query, json!({ "s": 0 }), None).await;
    assert_eq!(error_code(&response), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_socket_unbound_by_a_secret_rotation_is_not_given_what_was_pushed_meanwhile() {
    let app = spawn_app().await;
    let user = app.sign_up("rotated").await;
    let mut socket = app.authed_socket(&user, Transport::WebSocket).await;
    push(&app, &user, 1, 1).await;
    assert_eq!(next_push(&mut socket).await.0, 1);
    // Long enough for the socket's place to be saved (every 2 s, once a
    // push is a second old): a saved place must not bring back what was
    // pushed while the socket was unbound.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let rotated = app
        .graphql_ok(
            "mutation { rotateSecret { secretkey } }",
            json!({}),
            Some(&user),
        )
        .await;
    assert_eq!(socket.expect("auth").await, json!(false));
    push(&app, &user, 2, 2).await;

    let renewed = TestUser {
        secret: rotated["rotateSecret"]["secretkey"]
            .as_str()
            .expect("secret")
            .to_owned(),
        ..user.clone()
    };
    socket.emit("initialConnection", &renewed.credentials());
    assert_eq!(socket.expect("auth").await, json!(true));
    push(&app, &user, 4, 1).await;
    assert_eq!(next_push(&mut socket).await, (4, json!({ "seq": 4 })));
}
