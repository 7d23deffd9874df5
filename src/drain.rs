//! Graceful drain: what the node does between SIGTERM and its exit, so that
//! a rolling restart loses nobody's pushes and does not send every client
//! to the other nodes in the same second.
//!
//! In order:
//! 1. readiness goes false (`/readyz` answers 503, so the load balancer
//!    stops sending new clients) and new connections are refused with 503
//!    (a Socket.IO handshake, a plain WebSocket upgrade); requests of
//!    sessions already open still pass;
//! 2. connected clients are moved, one at a time, spread evenly over
//!    `--drain-window-secs`: each socket's place in its user's durable log
//!    is saved, then its transport is cut (see `connections`) so the
//!    client reconnects by itself, to another node, and resumes from that
//!    place; plain WebSocket connections are closed with 1012 (service
//!    restart);
//! 3. whatever is left (a long-polling session whose next request has not
//!    come) is closed with the rest of the Socket.IO server;
//! 4. this node leaves the presence set, and the background tasks are told
//!    to stop and awaited.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::state::AppState;

/// Longest wait for the background tasks once told to stop.
const TASKS_GRACE: Duration = Duration::from_secs(5);

/// Runs the whole drain; returns when the node may exit.
pub async fn run(app: &AppState) {
    app.begin_drain();
    let window = app.config().drain_window();
    tracing::info!(
        window_secs = window.as_secs(),
        "draining: readiness off, new connections refused, clients moved elsewhere over the window"
    );
    let moved = app.push().move_clients_elsewhere(app, window).await;
    tracing::info!(moved, "draining: clients moved; closing what is left");
    app.push().close().await;
    app.presence().depart().await;
    if app.tasks().stop(TASKS_GRACE).await {
        tracing::info!("drained: every background task stopped");
    } else {
        tracing::warn!(
            grace_secs = TASKS_GRACE.as_secs(),
            "drained, but some background tasks did not stop in time"
        );
    }
}

/// When each of `n` departures is due: evenly over `window` from `start`,
/// the first at once.
pub fn schedule(start: Instant, n: usize, window: Duration) -> impl Iterator<Item = Instant> {
    (0..n).map(move |i| start + window.mul_f64(i as f64 / n as f64))
}

/// Refuses new connections while draining: a Socket.IO request that opens
/// a session (no `sid`) and a plain WebSocket upgrade get 503, so the
/// client tries again, on another node. Everything else passes, including
/// the requests of sessions still open here.
pub async fn refuse_new_connections(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if app.is_draining() && opens_a_connection(&request) {
        tracing::debug!(path = %request.uri().path(), "new connection refused: draining");
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

fn opens_a_connection(request: &Request) -> bool {
    let path = request.uri().path();
    if path.starts_with("/socket.io") {
        let query = request.uri().query().unwrap_or_default();
        return !query
            .split('&')
            .any(|pair| pair.starts_with("sid=") && pair.len() > "sid=".len());
    }
    path == "/ws" || path.starts_with("/ws/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departures_are_spread_evenly_over_the_window_the_first_at_once() {
        let start = Instant::now();
        let due: Vec<_> = schedule(start, 4, Duration::from_secs(8))
            .map(|at| at - start)
            .collect();
        assert_eq!(
            due,
            [0, 2, 4, 6].map(Duration::from_secs).to_vec(),
            "4 departures over 8 s"
        );
        assert_eq!(schedule(start, 0, Duration::from_secs(8)).count(), 0);
        assert!(schedule(start, 3, Duration::ZERO).all(|at| at == start));
    }

    #[test]
    fn only_requests_that_open_a_connection_are_refused() {
        let request = |uri: &str| Request::builder().uri(uri).body(axum::body::Body::empty());
        let opens = |uri: &str| opens_a_connection(&request(uri).expect("a valid request"));
        assert!(opens("/socket.io/?EIO=4&transport=polling"));
        assert!(opens("/socket.io/?EIO=4&transport=websocket"));
        assert!(opens("/socket.io/?EIO=4&transport=polling&sid="));
        assert!(!opens("/socket.io/?EIO=4&transport=polling&sid=abc"));
        assert!(!opens("/socket.io/?EIO=4&transport=websocket&sid=abc"));
        assert!(opens("/ws"));
        assert!(opens("/ws/room-1"));
        assert!(!opens("/readyz"));
        assert!(!opens("/graphql"));
        assert!(!opens("/wsx"));
    }
}
