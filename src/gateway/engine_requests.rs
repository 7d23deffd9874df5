//! What the HTTP requests of an Engine.IO session carry besides packets:
//! credential cookies on the WebSocket upgrade, and the device cookie.
//!
//! A browser page on another origin of the same site sends its first
//! (long-polling) request without cookies, while the WebSocket upgrade that
//! follows carries them. socketioxide only shows a socket its first
//! request, so this layer, in front of it, reads every request of a
//! session: credentials on a later request authenticate a socket that is
//! not bound yet (with the same origin rule as the handshake), and the
//! device cookie lets a page that reconnects pick up where it left off.
//!
//! The upgrade may arrive before the socket has finished connecting, so
//! what it carried waits in [`PendingUpgrades`] until the socket takes it.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use socketioxide::adapter::Adapter;
use socketioxide::SocketIo;
use socketioxide_core::Sid;
use uuid::Uuid;

use super::session::Session;
use crate::auth::{cookies, Credentials, CredentialsError};
use crate::state::WeakAppState;

/// Cookie naming a browser across reconnects, set by the gateway.
pub const DEVICE_COOKIE: &str = "tidings_device";
/// How long an unclaimed upgrade's cookies are kept.
const PENDING_FOR: Duration = Duration::from_secs(30);

/// The device a request came from, put in the request's extensions (so a
/// socket finds it in its handshake's parts).
#[derive(Clone, Debug)]
pub struct Device(pub String);

/// What a later request of a session carried, for its socket.
#[derive(Default)]
pub struct Carried {
    pub credentials: Option<Result<Credentials, CredentialsError>>,
    pub device: Option<String>,
    /// The upgrade's own connection, cut with the socket's.
    pub connection: Option<crate::connections::Sever>,
}

#[derive(Clone, Default)]
pub struct PendingUpgrades {
    waiting: Arc<Mutex<HashMap<Sid, (Instant, Carried)>>>,
}

impl PendingUpgrades {
    fn put(&self, sid: Sid, carried: Carried) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.retain(|_, (at, _)| at.elapsed() < PENDING_FOR);
        waiting.insert(sid, (Instant::now(), carried));
    }

    /// What waits for socket `sid`, taken once.
    pub fn take(&self, sid: Sid) -> Option<Carried> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        waiting.remove(&sid).map(|(_, carried)| carried)
    }
}

/// The middleware, for the Socket.IO layer's requests.
pub async fn handle<A: Adapter>(
    io: SocketIo<A>,
    app: WeakAppState,
    pending: PendingUpgrades,
    mut request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/socket.io") {
        return next.run(request).await;
    }
    let query = request.uri().query().unwrap_or_default();
    let sid = query_param(query, "sid").and_then(|sid| Sid::from_str(sid).ok());
    let upgrade = query_param(query, "transport") == Some("websocket");
    // A device is known by a cookie the client sent back: one we only set
    // is not (a client without a cookie jar would leave a place under a new
    // name at every disconnect). Only session starts and upgrades are given
    // one: a poll answered with a cookie the page cannot keep would only
    // cost a random id per poll.
    let device = device_cookie(request.headers());
    let new_device = (device.is_none() && (sid.is_none() || upgrade))
        .then(|| Uuid::new_v4().simple().to_string());
    if let Some(device) = &device {
        request.extensions_mut().insert(Device(device.clone()));
    }
    if let (Some(sid), true, Some(app)) = (sid, upgrade, app.upgrade()) {
        // A device named on this very upgrade is the page's from now on: the
        // browser keeps the cookie set on a WebSocket's answer.
        let carried = Carried {
            credentials: cookies::credentials(request.headers(), app.config()),
            device: device.clone().or_else(|| new_device.clone()),
            connection: crate::connections::Peer::of(request.extensions())
                .map(|peer| peer.sever.clone()),
        };
        pending.put(sid, carried);
        if let Some(socket) = io.get_socket(sid) {
            if let (Some(carried), Some(session)) =
                (pending.take(sid), socket.extensions.get::<Arc<Session>>())
            {
                tokio::spawn(async move { session.carried(&socket, carried).await });
            }
        }
    }
    let mut response = next.run(request).await;
    if let Some(device) = new_device {
        let cookie =
            format!("{DEVICE_COOKIE}={device}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The device cookie, if it is one we could have set (32 hex digits).
pub fn device_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| cookie::Cookie::split_parse(h).flatten())
        .find(|c| c.name() == DEVICE_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_cookie_is_read_only_in_the_form_we_set() {
        let mut headers = HeaderMap::new();
        let id = Uuid::new_v4().simple().to_string();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=1; {DEVICE_COOKIE}={id}")).expect("header"),
        );
        assert_eq!(device_cookie(&headers), Some(id));
        headers.insert(COOKIE, HeaderValue::from_static("tidings_device=<script>"));
        assert_eq!(device_cookie(&headers), None);
    }

    #[test]
    fn query_parameters_are_found_by_exact_name() {
        let q = "EIO=4&transport=websocket&sid=abc";
        assert_eq!(query_param(q, "sid"), Some("abc"));
        assert_eq!(query_param(q, "transport"), Some("websocket"));
        assert_eq!(query_param(q, "id"), None);
    }
}
