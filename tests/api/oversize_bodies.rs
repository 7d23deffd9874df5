//! Issue 16: a body over the limit is answered 413 even while the client is
//! still sending it. Without reading the rest first, the server's close
//! became a TCP reset that destroyed the 413 on its way (the client saw no
//! status at all). A raw TCP client sends all of a 5 MB body, then reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const FIVE_MB: usize = 5 * 1024 * 1024;

/// Sends `POST path` with a `FIVE_MB` body in 64 KiB writes, as an HTTP
/// client does, then returns the response's status line. A client that
/// cannot send its whole body (the server closed on it) reports an error,
/// not the status, so neither does this.
async fn post_five_megabytes(app: &TestApp, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {FIVE_MB}\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < FIVE_MB {
        if let Err(err) = stream.write_all(&chunk).await {
            panic!("the server closed after {sent} bytes, before the body was sent: {err}");
        }
        sent += chunk.len();
    }
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    response.extend_from_slice(&buf[..n]);
                    if response.windows(2).any(|w| w == b"\r\n") {
                        return Ok(());
                    }
                }
                Err(err) => return Err(err),
            }
        }
    })
    .await
    .expect("an answer within WAIT");
    if let Err(err) = read {
        panic!("no status line, the connection failed: {err}");
    }
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_5_mb_api_push_body_gets_its_413_status_line_not_a_reset() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let status = post_five_megabytes(
            &app,
            "/api/push",
            &format!("Authorization: Bearer {API_KEY}\r\n"),
        )
        .await;
        assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    }
    assert!(app.is_up().await);
    hostile_report(
        "5 MB /api/push body streamed over raw TCP, 3 times",
        "whole body sent, then a 413 status line",
        "413 status line, 3 of 3",
    );
}

#[tokio::test]
async fn a_5_mb_graphql_body_gets_its_413_status_line_not_a_reset() {
    let app = spawn_app().await;
    for _ in 0..3 {
        let status = post_five_megabytes(&app, "/graphql", "").await;
        assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    }
    assert!(app.is_up().await);
    hostile_report(
        "5 MB /graphql body streamed over raw TCP, 3 times",
        "whole body sent, then a 413 status line",
        "413 status line, 3 of 3",
    );
}

#[tokio::test]
async fn a_body_within_the_limit_is_still_served_after_the_lingering_layer() {
    let app = spawn_app().await;
    let alice = app.sign_up("alice").await;
    let (status, _) = app
        .api_push(
            Some(API_KEY),
            serde_json::json!({ "users": [alice.id], "data": { "hi": 1 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202);
}
