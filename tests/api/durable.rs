//! What the durable-delivery tests share: pushing numbered pushes over
//! `POST /api/push`, reading them back with their `seq`, and a barrier.

use serde_json::{json, Value};

use crate::helpers::*;

/// Pushes `n` over `POST /api/push` to `user` as event `push` with data
/// `{ n }`, counting from `from`.
pub async fn push(app: &TestApp, user: &TestUser, from: u64, n: u64) {
    for i in from..from + n {
        let body = json!({ "users": [user.id], "event": "push", "data": { "n": i } });
        let (status, answer) = app.api_push(Some(API_KEY), body.to_string()).await;
        assert_eq!(status, 202, "{answer}");
    }
}

/// The next `push` event: its `n` and its second argument.
pub async fn next_push(socket: &mut SioClient) -> (u64, Value) {
    let args = socket
        .next_event("push", WAIT)
        .await
        .expect("a push event within the wait");
    let n = args[0]["n"].as_u64().expect("data.n");
    (n, args.get(1).cloned().unwrap_or(Value::Null))
}

/// The next push with a `seq` above `last`, skipping repeats as the
/// contract lets a client do: a push in flight when a connection died may
/// come again with its `seq`. Returns it and how many repeats came first.
pub async fn next_new_push(socket: &mut SioClient, last: u64) -> ((u64, Value), usize) {
    let mut repeats = 0;
    loop {
        let (n, meta) = next_push(socket).await;
        if meta["seq"].as_u64().is_some_and(|seq| seq > last) {
            return ((n, meta), repeats);
        }
        repeats += 1;
    }
}

/// Connects with handshake `auth` and waits for `auth` true.
pub async fn connect_with(app: &TestApp, auth: Value) -> SioClient {
    let mut socket = app
        .socket_with(
            Transport::WebSocket,
            ConnectOptions {
                auth: Some(auth),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(socket.expect("auth").await, json!(true));
    socket
}

/// A barrier: once a `resume` from `since` is acknowledged, nothing sent
/// to the socket before it can still be on its way.
pub async fn barrier(socket: &mut SioClient, since: u64) -> Value {
    let ack = socket
        .emit_with_ack("resume", &json!({ "since": since }))
        .await;
    ack[0].clone()
}
