//! Issue 16: with allowed origins configured, a browser page from any other
//! origin gets 403 on every Socket.IO request, polling and WebSocket alike,
//! before an Engine.IO session exists. Requests without `Origin` (servers,
//! apps) are still served.

use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::helpers::*;

const GOOD: &str = "https://good.example";
const EVIL: &str = "https://evil.example";

async fn app_allowing_good_origin() -> TestApp {
    spawn_app_with(|c| c.allowed_origins = vec![GOOD.to_owned()]).await
}

/// The status of an Engine.IO polling handshake sent with `origin`.
async fn polling_handshake(app: &TestApp, origin: Option<&str>) -> (u16, String) {
    let mut request = app.http.get(app.url("/socket.io/?EIO=4&transport=polling"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.expect("polling request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// The HTTP status a WebSocket upgrade with `origin` is answered with
/// (101 when it is accepted).
async fn websocket_upgrade(app: &TestApp, origin: Option<&str>) -> u16 {
    let url = format!(
        "ws://127.0.0.1:{}/socket.io/?EIO=4&transport=websocket",
        app.port
    );
    let mut request = url.into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("upgrade failed without an HTTP answer: {other}"),
    }
}

#[tokio::test]
async fn a_polling_handshake_from_a_foreign_origin_gets_403_and_no_session() {
    let app = app_allowing_good_origin().await;
    let (status, body) = polling_handshake(&app, Some(EVIL)).await;
    assert_eq!(status, 403);
    assert!(!body.contains("sid"), "no Engine.IO session: {body}");
    assert_eq!(app.metric("tidings_origin_refused_total").await, 1);
    hostile_report(
        "polling handshake from a foreign Origin (allowed origins set)",
        "403, no session, counted",
        format!("{status}, no sid, counted"),
    );
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_gets_403_not_101() {
    let app = app_allowing_good_origin().await;
    let evil = websocket_upgrade(&app, Some(EVIL)).await;
    assert_eq!(evil, 403);
    assert_eq!(websocket_upgrade(&app, Some("null")).await, 403);
    assert_eq!(app.metric("tidings_origin_refused_total").await, 2);
    hostile_report(
        "WebSocket upgrade from a foreign Origin, and from Origin: null",
        "403, not 101",
        format!("{evil} and 403"),
    );
}

#[tokio::test]
async fn an_allowed_origin_connects_by_polling_and_websocket() {
    let app = app_allowing_good_origin().await;
    let (status, body) = polling_handshake(&app, Some(GOOD)).await;
    assert_eq!(status, 200);
    assert!(body.contains("sid"), "an Engine.IO session: {body}");
    assert_eq!(websocket_upgrade(&app, Some(GOOD)).await, 101);
    assert_eq!(
        websocket_upgrade(&app, Some("https://good.example/")).await,
        403
    );
    assert_eq!(app.metric("tidings_origin_refused_total").await, 1);
}

#[tokio::test]
async fn a_client_without_origin_still_connects_and_authenticates() {
    let app = app_allowing_good_origin().await;
    assert_eq!(polling_handshake(&app, None).await.0, 200);
    assert_eq!(websocket_upgrade(&app, None).await, 101);
    let alice = app.sign_up("alice").await;
    let mut socket = app.socket(Transport::Polling).await;
    socket.emit("initialConnection", &alice.credentials());
    assert_eq!(socket.expect("auth").await, serde_json::json!(true));
    assert_eq!(app.metric("tidings_origin_refused_total").await, 0);
}

#[tokio::test]
async fn with_no_allowed_origins_configured_any_origin_connects() {
    let app = spawn_app().await;
    assert_eq!(polling_handshake(&app, Some(EVIL)).await.0, 200);
    assert_eq!(websocket_upgrade(&app, Some(EVIL)).await, 101);
}

#[tokio::test]
async fn the_origin_check_leaves_other_endpoints_to_cors() {
    let app = app_allowing_good_origin().await;
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("origin", EVIL)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}
