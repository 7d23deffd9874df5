//! A plain WebSocket client for the tests: JSON text frames in and out, and
//! whatever a misbehaving client might send (binary, oversize, garbage).

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::WAIT;

pub struct PlainClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub tab: String,
    closed_with: Option<u16>,
}

/// What a refused upgrade answered.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    /// The JSON body of the refusal, when it had one.
    pub body: Option<Value>,
}

impl PlainClient {
    /// Connects to `path` (`/ws`, `/ws/topic:x?durable=1`) with `headers`,
    /// and reads the greeting.
    pub async fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::try_connect(port, path, headers)
            .await
            .expect("plain WebSocket upgrade accepted")
    }

    pub async fn try_connect(
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Self, Refused> {
        let mut request = format!("ws://127.0.0.1:{port}{path}")
            .into_client_request()
            .expect("request");
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(Refused {
                    status: response.status().as_u16(),
                    body: response
                        .body()
                        .as_deref()
                        .and_then(|b| serde_json::from_slice(b).ok()),
                })
            }
            Err(err) => panic!("connect failed: {err}"),
        };
        let mut client = Self {
            ws,
            tab: String::new(),
            closed_with: None,
        };
        let greeting = client.next().await;
        client.tab = greeting["tabWindowId"]
            .as_str()
            .expect("the first frame is { tabWindowId }")
            .to_owned();
        assert_eq!(greeting.as_object().map(|o| o.len()), Some(1), "{greeting}");
        Ok(client)
    }

    /// Connects to `/ws` and signs in with `{ type: "auth", id, secretkey }`.
    pub async fn authed(port: u16, path: &str, id: &str, secret: &str) -> Self {
        let mut client = Self::connect(port, path, &[]).await;
        client
            .send(&json!({ "type": "auth", "id": id, "secretkey": secret }))
            .await;
        let answer = client.next().await;
        assert_eq!(answer["type"], "auth_success", "{answer}");
        client
    }

    pub async fn send(&mut self, value: &Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.ws.send(Message::text(text)).await.expect("frame sent");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .expect("frame sent");
    }

    /// The next JSON text frame (ping and pong control frames skipped).
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

    /// The next frame with `"type": kind`, skipping none: anything else
    /// first fails the test.
    pub async fn expect_type(&mut self, kind: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(frame["type"], kind, "{frame}");
        frame
    }

    /// A barrier: a ping answered means everything sent before it was
    /// handled, and whatever it caused for this connection already queued.
    /// Fails if any other frame comes first.
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
                Some(Ok(Message::Close(close))) => {
                    return close.map(|c| u16::from(c.code));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next JSON text frame, or None once the server closed (its code
    /// kept for `last_close`).
    pub async fn next_or_close(&mut self) -> Option<Value> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("JSON text frame"))
                }
                Some(Ok(Message::Close(close))) => {
                    self.closed_with = close.map(|c| u16::from(c.code));
                    return None;
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub fn last_close(&self) -> Option<u16> {
        self.closed_with
    }

    #[allow(dead_code)]
    pub fn close_code(code: u16) -> CloseCode {
        CloseCode::from(code)
    }
}
