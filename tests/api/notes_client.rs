//! A note-sync client for the tests, written from the contract
//! (docs/protocol.md, "Note sync"): it reads the greeting, authenticates
//! with a JWT, keeps the `sessionSecret`, and signs like the notes app's
//! web client (HMAC-SHA256 over `{"payload":…,"timestamp":…,"nonce":…}`).

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::WAIT;
use crate::helpers::*;

pub const JWT_SECRET: &str = "a-notes-hs256-secret-of-32-bytes-or-more";

/// An HS256 session token for `sub`, valid for `ttl_secs` (negative:
/// already expired).
pub fn token(sub: &str, ttl_secs: i64) -> String {
    let now = entity::now_ms() / 1000;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": sub, "exp": now + ttl_secs, "iat": now }),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("token")
}

/// A unique outside id, as a Clerk `sub` looks.
pub fn new_sub() -> String {
    format!("user_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A node with the notes' JWT key (and `configure` on top).
pub async fn notes_app_with(configure: impl FnOnce(&mut tidings::config::Config)) -> TestApp {
    spawn_app_with(|c| {
        c.jwt_hs256_secret = Some(JWT_SECRET.into());
        configure(c);
    })
    .await
}

pub async fn notes_app() -> TestApp {
    notes_app_with(|_| {}).await
}

pub fn sign(secret: &str, text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

pub struct NotesClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub secret: Option<String>,
    pub user_id: Option<String>,
}

impl NotesClient {
    /// Connects to `/notes` and reads the greeting.
    pub async fn connect(port: u16) -> Self {
        Self::try_connect(port, "/notes", None)
            .await
            .expect("upgrade accepted")
    }

    /// The upgrade, with `origin`; `Err(status)` when refused.
    pub async fn try_connect(
        port: u16,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Self, (u16, String)> {
        let mut request = format!("ws://127.0.0.1:{port}{path}")
            .into_client_request()
            .expect("request");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                return Err((response.status().as_u16(), body));
            }
            Err(err) => panic!("connect failed: {err}"),
        };
        let mut client = Self {
            ws,
            secret: None,
            user_id: None,
        };
        assert_eq!(
            client.next().await,
            json!({ "type": "connection_established", "message": "Please authenticate to continue" })
        );
        Ok(client)
    }

    /// Connects and authenticates as `sub`.
    pub async fn signed_in(port: u16, sub: &str) -> Self {
        let mut client = Self::connect(port).await;
        let answer = client.auth(&token(sub, 600)).await;
        assert_eq!(answer["type"], "auth_success", "{answer}");
        client
    }

    /// Sends `auth` (unsigned) and returns the answer, keeping the secret.
    pub async fn auth(&mut self, token: &str) -> Value {
        self.send(&json!({ "type": "auth", "token": token })).await;
        self.read_auth_answer().await
    }

    pub async fn read_auth_answer(&mut self) -> Value {
        let answer = self.next().await;
        if answer["type"] == "auth_success" {
            self.secret = answer["sessionSecret"].as_str().map(str::to_owned);
            self.user_id = answer["userId"].as_str().map(str::to_owned);
        }
        answer
    }

    pub async fn send(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("frame sent");
    }

    /// The envelope the app's client sends: `payload` signed with `secret`
    /// at `timestamp` with `nonce`.
    pub fn envelope(secret: &str, payload: &Value, timestamp: i64, nonce: &str) -> String {
        let signed = json!({ "payload": payload, "timestamp": timestamp, "nonce": nonce });
        // serde_json keeps insertion order only with preserve_order; build
        // the text as JSON.stringify writes it instead.
        let text = format!(
            "{{\"payload\":{},\"timestamp\":{},\"nonce\":{}}}",
            payload, signed["timestamp"], signed["nonce"]
        );
        let signature = sign(secret, &text);
        format!(
            "{{\"payload\":{},\"signature\":\"{signature}\",\"timestamp\":{timestamp},\"nonce\":{}}}",
            payload, signed["nonce"]
        )
    }

    /// Sends `payload` signed with this connection's secret, now, with a
    /// fresh nonce.
    pub async fn send_signed(&mut self, payload: &Value) {
        let secret = self.secret.clone().expect("authenticated");
        let nonce =
            base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes());
        let text = Self::envelope(&secret, payload, entity::now_ms(), &nonce);
        self.send_text(text).await;
    }

    /// The next JSON text frame (control frames skipped).
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame readable");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("JSON text frame")
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be `{ type: "error", message }`.
    pub async fn expect_error(&mut self, message: &str) {
        assert_eq!(
            self.next().await,
            json!({ "type": "error", "message": message })
        );
    }

    pub async fn expect_type(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "{frame}");
        frame
    }

    /// A barrier: everything sent before was handled, and nothing it caused
    /// for this connection is still to come. Fails if anything else arrives.
    pub async fn round_trip(&mut self) {
        self.send(&json!({ "type": "ping" })).await;
        let frame = self.next().await;
        assert_eq!(
            frame["type"], "pong",
            "expected nothing before the pong: {frame}"
        );
    }

    /// Waits for the server to close; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("closed in time");
            match frame {
                Some(Ok(Message::Close(close))) => return close.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// Creates a note for `sub` through GraphQL (Bearer), returns its id.
pub async fn create_note(app: &TestApp, sub: &str) -> String {
    let data = graphql_bearer(
        app,
        &token(sub, 600),
        "mutation { createNote(title: \"[ENCRYPTED]\", encryptedTitle: \"c1\") { id } }",
        json!({}),
    )
    .await;
    assert!(data.get("errors").is_none(), "{data}");
    data["data"]["createNote"]["id"]
        .as_str()
        .expect("note id")
        .to_owned()
}

pub async fn graphql_bearer(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    app.http
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("graphql request")
        .json()
        .await
        .expect("graphql json")
}
