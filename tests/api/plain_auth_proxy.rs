//! The auth proxy (docs/protocol.md §10.4, `--auth-proxy-url`): an app's
//! own session endpoint, here a real HTTP server the test starts, says who
//! a plain WebSocket upgrade is from its cookies and configured headers.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::plain_client::{PlainClient, Refused};

/// The app's session endpoint: what it was asked, in order.
#[derive(Clone, Default)]
struct Session {
    asked: Arc<Mutex<Vec<Value>>>,
}

impl Session {
    fn asked(&self) -> Vec<Value> {
        self.asked.lock().expect("lock").clone()
    }
}

/// Answers by the `sid` cookie or the `authorization` header, as an app
/// with its own sessions would.
async fn session(State(session): State<Session>, Json(body): Json<Value>) -> Response {
    session.asked.lock().expect("lock").push(body.clone());
    if body["headers"]["authorization"] == "Bearer app-token-bob" {
        return Json(json!({ "userId": "app:bob" })).into_response();
    }
    match body["cookies"]["sid"].as_str().unwrap_or("") {
        "alice" => Json(json!({
            "userId": "app:alice",
            "rooms": [{ "room": "topic:doc-1", "publish": false }]
        }))
        .into_response(),
        "numbered" => Json(json!({ "userId": 17 })).into_response(),
        "banned" => StatusCode::FORBIDDEN.into_response(),
        "to-login" => (StatusCode::FOUND, [(header::LOCATION, "/login")]).into_response(),
        "broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "html" => (StatusCode::OK, "<html>signed in</html>").into_response(),
        "bad-id" => Json(json!({ "userId": "has spaces in it" })).into_response(),
        "bad-rooms" => Json(json!({ "userId": "app:x", "rooms": ["no-kind"] })).into_response(),
        "hangs" => std::future::pending().await,
        _ => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// The session endpoint on a port of its own, and its URL.
async fn start_session_endpoint() -> (Session, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let state = Session::default();
    let router = axum::Router::new()
        .route("/session", post(session))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (state, format!("http://127.0.0.1:{port}/session"))
}

async fn proxied_app(url: &str, configure: impl FnOnce(&mut tidings::Config)) -> TestApp {
    let url = url.to_owned();
    spawn_app_with(|c| {
        c.auth_proxy_url = Some(url);
        c.auth_proxy_headers = vec!["authorization".into()];
        c.auth_proxy_timeout_ms = 500;
        c.allowed_origins = vec!["https://app.example".into()];
        configure(c);
    })
    .await
}

async fn refused(app: &TestApp, headers: &[(&str, &str)]) -> Refused {
    PlainClient::try_connect(app.port, "/ws", headers)
        .await
        .err()
        .expect("the upgrade is refused")
}

#[tokio::test]
async fn a_session_cookie_or_header_is_asked_about_and_the_apps_user_signs_in() {
    let (endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |_| {}).await;

    let mut alice = PlainClient::connect(
        app.port,
        "/ws",
        &[
            ("cookie", "sid=alice; theme=dark"),
            ("origin", "https://app.example"),
            ("x-not-forwarded", "secret"),
        ],
    )
    .await;
    alice.round_trip().await;
    assert_eq!(
        endpoint.asked(),
        vec![json!({ "cookies": { "sid": "alice", "theme": "dark" }, "headers": {} })],
        "cookies and only the configured headers are forwarded"
    );
    let mut bob = PlainClient::connect(
        app.port,
        "/ws",
        &[("authorization", "Bearer app-token-bob")],
    )
    .await;
    let mut seventeen = PlainClient::connect(app.port, "/ws", &[("cookie", "sid=numbered")]).await;
    seventeen.round_trip().await;

    // The app's ids are Tidings users: a backend push names them.
    let (status, answer) = app
        .api_push(
            Some(API_KEY),
            json!({ "users": ["app:alice", "app:bob", "17"], "data": { "n": 1 } }).to_string(),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    for client in [&mut alice, &mut bob, &mut seventeen] {
        assert_eq!(client.next().await, json!({ "n": 1 }));
        client.round_trip().await;
    }

    // The rooms of the answer are granted, read-only here.
    let draw = json!({ "type": "DRAW", "timestamp": entity::now_ms(), "payload": {}, "room": "topic:doc-1" });
    alice.send(&draw).await;
    let refusal = alice.expect_type("error").await;
    assert!(
        refusal["error"]
            .as_str()
            .is_some_and(|e| e.contains("only listen")),
        "{refusal}"
    );
}

#[tokio::test]
async fn the_proxys_refusals_are_passed_on_and_a_redirect_to_sign_in_is_a_401() {
    let (_endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |_| {}).await;
    for (cookie, status) in [
        ("sid=signed-out", 401),
        ("sid=banned", 403),
        ("sid=to-login", 401),
    ] {
        let refusal = refused(&app, &[("cookie", cookie)]).await;
        assert_eq!(refusal.status, status, "{cookie}");
        assert_eq!(
            refusal.body.as_ref().map(|b| b["error"].clone()),
            Some(json!("refused by the auth proxy")),
            "{cookie}"
        );
    }
}

#[tokio::test]
async fn a_failing_hanging_or_absent_proxy_gives_a_clear_refusal_not_a_user() {
    let (_endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |_| {}).await;
    for (cookie, status, reason) in [
        (
            "sid=broken",
            502,
            "the auth proxy failed (500 Internal Server Error), try again later",
        ),
        (
            "sid=html",
            502,
            "the auth proxy's answer could not be read, try again later",
        ),
        (
            "sid=bad-id",
            502,
            "the auth proxy's answer could not be read, try again later",
        ),
        (
            "sid=bad-rooms",
            502,
            "the auth proxy's answer could not be read, try again later",
        ),
        (
            "sid=hangs",
            504,
            "the auth proxy did not answer in time, try again later",
        ),
    ] {
        let refusal = refused(&app, &[("cookie", cookie)]).await;
        assert_eq!(refusal.status, status, "{cookie}");
        assert_eq!(
            refusal.body.as_ref().map(|b| b["error"].clone()),
            Some(json!(reason)),
            "{cookie}"
        );
    }

    // Nothing listens there.
    let down = proxied_app(&format!("http://127.0.0.1:{}/session", free_port()), |_| {}).await;
    let refusal = refused(&down, &[("cookie", "sid=alice")]).await;
    assert_eq!(refusal.status, 503);
    assert_eq!(
        refusal.body.map(|b| b["error"].clone()),
        Some(json!("the auth proxy is unavailable, try again later"))
    );
    assert!(down.is_up().await, "the node stays up");
}

#[tokio::test]
async fn answers_are_kept_briefly_per_cookie_and_failures_are_not_kept() {
    let (endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |c| c.auth_proxy_cache_ms = 60_000).await;
    for _ in 0..3 {
        PlainClient::connect(app.port, "/ws", &[("cookie", "sid=alice")])
            .await
            .round_trip()
            .await;
        assert_eq!(refused(&app, &[("cookie", "sid=banned")]).await.status, 403);
    }
    PlainClient::connect(app.port, "/ws", &[("cookie", "sid=numbered")])
        .await
        .round_trip()
        .await;
    assert_eq!(
        endpoint.asked().len(),
        3,
        "one question per distinct cookie: {:?}",
        endpoint.asked()
    );
    for _ in 0..2 {
        assert_eq!(refused(&app, &[("cookie", "sid=broken")]).await.status, 502);
    }
    assert_eq!(endpoint.asked().len(), 5, "a failure is asked again");

    let (uncached, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |c| c.auth_proxy_cache_ms = 0).await;
    for _ in 0..2 {
        PlainClient::connect(app.port, "/ws", &[("cookie", "sid=alice")])
            .await
            .round_trip()
            .await;
    }
    assert_eq!(uncached.asked().len(), 2, "0 keeps nothing");
}

#[tokio::test]
async fn cookies_from_a_foreign_origin_are_never_forwarded_and_no_cookie_means_in_band() {
    let (endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |_| {}).await;
    let refusal = refused(
        &app,
        &[("cookie", "sid=alice"), ("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(refusal.status, 403);

    // Nothing to ask about: the connection opens and may sign in in band.
    let user = app.sign_up("proxied").await;
    let mut client = PlainClient::connect(app.port, "/ws", &[]).await;
    client
        .send(&json!({ "type": "auth", "id": user.id, "secretkey": user.secret }))
        .await;
    assert_eq!(client.expect_type("auth_success").await["userId"], user.id);
    assert!(endpoint.asked().is_empty(), "{:?}", endpoint.asked());
}

#[tokio::test]
async fn refused_sessions_count_towards_the_addresss_failure_limit() {
    let (endpoint, url) = start_session_endpoint().await;
    let app = proxied_app(&url, |c| {
        c.max_failed_auth_per_address = 3;
        c.auth_proxy_cache_ms = 0;
    })
    .await;
    for n in 0..3 {
        let cookie = format!("sid=guess-{n}");
        assert_eq!(refused(&app, &[("cookie", &cookie)]).await.status, 401);
    }
    let blocked = refused(&app, &[("cookie", "sid=alice")]).await;
    assert_eq!(blocked.status, 401);
    assert!(
        blocked.body.as_ref().is_some_and(|b| b["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many failed"))),
        "{:?}",
        blocked.body
    );
    assert_eq!(
        endpoint.asked().len(),
        3,
        "a blocked address is not asked about"
    );
}
