//! Lingering on an oversize request body, as nginx's lingering close does.
//!
//! When a handler refuses a body for its size, hyper answers 413 and closes
//! the connection with the rest of the body still arriving. Closing a
//! socket whose receive buffer holds unread bytes makes the kernel send a
//! TCP reset, and a reset makes the client's kernel throw away the 413 it
//! had already received: the client sees "connection reset" and no status
//! at all (two runs in three for a 5 MB `/api/push`, issue 16).
//!
//! So the body is read here first, up to the route's limit. Past it, the
//! rest is read and thrown away, but only up to [`LINGER_BYTES`] more and
//! for at most [`LINGER_TIME`] (a client that sends forever is not waited
//! for), and the route then sees a body one byte over its limit, so its own
//! limit answers 413 exactly as before, in that endpoint's own format.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt;

/// Most bytes past the limit read and thrown away before closing.
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;
/// Longest time spent throwing an oversize body away.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// `limit` is the route's own body limit (which must stay in place: this
/// layer hands it a body one byte over it to refuse).
pub async fn linger_on_oversize_bodies(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let mut stream = body.into_data_stream();
    let mut kept = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            // The client went away or sent a broken body: nothing to answer.
            return StatusCode::BAD_REQUEST.into_response();
        };
        if kept.len() + chunk.len() > limit {
            let room = limit + 1 - kept.len();
            kept.extend_from_slice(&chunk[..room]);
            let drained = drain(&mut stream).await;
            tracing::info!(limit, drained, "oversize request body read and discarded");
            // The route's limit refuses a declared length at once.
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(kept.len()));
            let mut response = next
                .run(Request::from_parts(parts, Body::from(kept.freeze())))
                .await;
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        kept.extend_from_slice(&chunk);
    }
    next.run(Request::from_parts(parts, Body::from(kept.freeze())))
        .await
}

/// Reads the rest of the body until its end, `LINGER_BYTES` or
/// `LINGER_TIME`, whichever comes first; returns how many bytes it read.
async fn drain<S>(stream: &mut S) -> usize
where
    S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    let mut drained = 0;
    let reading = async {
        while drained < LINGER_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => drained += chunk.len(),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, reading).await;
    drained
}
