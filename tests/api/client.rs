//! A small Socket.IO v5 (Engine.IO 4) client for the tests, over WebSocket or
//! long-polling. Hand-written rather than a crate so tests can also send
//! what no well-behaved client would (raw frames, oversized packets).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long any expected packet may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Polling,
}

/// What the client saw arrive.
#[derive(Debug, Clone)]
pub enum Packet {
    Connected,
    #[allow(dead_code)] // shown in failure messages via Debug
    ConnectError(Value),
    Event(String, Vec<Value>),
    Ack(u64, Vec<Value>),
    /// The server disconnected the socket, or the transport closed.
    Closed,
}

#[derive(Default, Clone)]
pub struct ConnectOptions {
    pub auth: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

pub struct SioClient {
    outgoing: mpsc::UnboundedSender<String>,
    incoming: mpsc::UnboundedReceiver<Packet>,
    unread: VecDeque<Packet>,
    next_ack: u64,
    closed: bool,
}

impl SioClient {
    pub async fn connect(port: u16, transport: Transport, options: ConnectOptions) -> Self {
        let (to_server, outgoing_rx) = mpsc::unbounded_channel::<String>();
        let (incoming_tx, incoming) = mpsc::unbounded_channel::<Packet>();
        match transport {
            Transport::WebSocket => spawn_websocket(port, &options, outgoing_rx, incoming_tx).await,
            Transport::Polling => spawn_polling(port, &options, outgoing_rx, incoming_tx).await,
        }
        let connect = match &options.auth {
            Some(auth) => format!("0{auth}"),
            None => "0".to_owned(),
        };
        to_server.send(connect).expect("transport alive");
        let mut client = Self {
            outgoing: to_server,
            incoming,
            unread: VecDeque::new(),
            next_ack: 0,
            closed: false,
        };
        let wanted = |p: &Packet| matches!(p, Packet::Connected | Packet::ConnectError(_));
        match tokio::time::timeout(WAIT, client.next_matching(wanted))
            .await
            .ok()
            .flatten()
        {
            Some(Packet::Connected) => client,
            other => panic!("Socket.IO connect failed: {other:?}"),
        }
    }

    pub fn emit(&self, event: &str, data: &Value) {
        self.send_raw(format!("2{}", serde_json::json!([event, data])));
    }

    /// Emits with no argument at all after the event name.
    pub fn emit_bare(&self, event: &str) {
        self.send_raw(format!("2{}", serde_json::json!([event])));
    }

    pub async fn emit_with_ack(&mut self, event: &str, data: &Value) -> Vec<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_raw(format!("2{id}{}", serde_json::json!([event, data])));
        let wanted = |p: &Packet| matches!(p, Packet::Ack(n, _) if *n == id);
        match tokio::time::timeout(WAIT, self.next_matching(wanted))
            .await
            .ok()
            .flatten()
        {
            Some(Packet::Ack(_, args)) => args,
            other => panic!("no ack for {event}: {other:?}"),
        }
    }

    /// A raw Socket.IO packet such as `2["event",1]` (the transport adds the
    /// Engine.IO message prefix `4`).
    pub fn send_raw(&self, packet: String) {
        // A closed transport simply drops it; tests then see `Closed`.
        let _ = self.outgoing.send(packet);
    }

    /// The first argument of the next `event`, failing the test after `WAIT`.
    pub async fn expect(&mut self, event: &str) -> Value {
        match self.next_event(event, WAIT).await {
            Some(args) => args.into_iter().next().unwrap_or(Value::Null),
            None => panic!(
                "no {event:?} event within {WAIT:?}; unread: {:?}",
                self.unread
            ),
        }
    }

    /// Asserts that no `event` arrives within `window`.
    pub async fn expect_none(&mut self, event: &str, window: Duration) {
        if let Some(args) = self.next_event(event, window).await {
            panic!("unexpected {event:?} event: {args:?}");
        }
    }

    pub async fn next_event(&mut self, event: &str, within: Duration) -> Option<Vec<Value>> {
        let found = tokio::time::timeout(
            within,
            self.next_matching(|p| matches!(p, Packet::Event(name, _) if name == event)),
        )
        .await
        .ok()
        .flatten();
        match found {
            Some(Packet::Event(_, args)) => Some(args),
            _ => None,
        }
    }

    /// Waits until the server closes this socket.
    pub async fn expect_closed(&mut self) {
        let closed =
            tokio::time::timeout(WAIT, self.next_matching(|p| matches!(p, Packet::Closed))).await;
        assert!(closed.is_ok(), "socket was not closed within {WAIT:?}");
    }

    pub fn is_closed(&mut self) -> bool {
        while let Ok(packet) = self.incoming.try_recv() {
            self.note(packet);
        }
        self.closed || self.unread.iter().any(|p| matches!(p, Packet::Closed))
    }

    pub fn disconnect(self) {
        self.send_raw("1".to_owned());
    }

    /// Next packet satisfying `wanted`, keeping the others for later calls.
    async fn next_matching(&mut self, wanted: impl Fn(&Packet) -> bool) -> Option<Packet> {
        if let Some(i) = self.unread.iter().position(&wanted) {
            return self.unread.remove(i);
        }
        loop {
            let packet = match self.incoming.recv().await {
                Some(packet) => packet,
                None => Packet::Closed,
            };
            if wanted(&packet) {
                if matches!(packet, Packet::Closed) {
                    self.closed = true;
                }
                return Some(packet);
            }
            if matches!(packet, Packet::Closed) {
                // Nothing else can arrive after the end.
                self.note(packet);
                return None;
            }
            self.note(packet);
        }
    }

    fn note(&mut self, packet: Packet) {
        if matches!(packet, Packet::Closed) {
            self.closed = true;
        }
        self.unread.push_back(packet);
    }
}

/// Decodes one Socket.IO packet (without its Engine.IO `4` prefix).
fn decode(packet: &str) -> Option<Packet> {
    let (kind, rest) = packet.split_at_checked(1)?;
    match kind {
        "0" => Some(Packet::Connected),
        "1" => Some(Packet::Closed),
        "4" => Some(Packet::ConnectError(
            serde_json::from_str(rest).unwrap_or(Value::Null),
        )),
        "2" | "3" => {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let args: Vec<Value> = serde_json::from_str(&rest[digits.len()..]).ok()?;
            if kind == "3" {
                return Some(Packet::Ack(digits.parse().ok()?, args));
            }
            let mut args = args.into_iter();
            let name = args.next()?.as_str()?.to_owned();
            Some(Packet::Event(name, args.collect()))
        }
        _ => None,
    }
}

/// Handles one Engine.IO packet; returns `false` once the session is over.
fn on_engine_packet(
    packet: &str,
    pong: impl FnOnce(),
    incoming: &mpsc::UnboundedSender<Packet>,
) -> bool {
    match packet.split_at_checked(1) {
        Some(("2", _)) => pong(),
        Some(("4", sio)) => {
            if let Some(decoded) = decode(sio) {
                let closed = matches!(decoded, Packet::Closed);
                let _ = incoming.send(decoded);
                if closed {
                    return false;
                }
            }
        }
        Some(("1", _)) => return false,
        _ => {}
    }
    true
}

async fn spawn_websocket(
    port: u16,
    options: &ConnectOptions,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    incoming: mpsc::UnboundedSender<Packet>,
) {
    let url = format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket");
    let mut request = url.into_client_request().expect("request");
    for (name, value) in &options.headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connect");
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                out = outgoing.recv() => match out {
                    Some(packet) => {
                        if sink.send(WsMessage::text(format!("4{packet}"))).await.is_err() { break; }
                    }
                    None => break,
                },
                msg = stream.next() => match msg {
                    Some(Ok(WsMessage::Text(text))) => {
                        let mut pong = false;
                        let alive = on_engine_packet(text.as_str(), || pong = true, &incoming);
                        if pong && sink.send(WsMessage::text("3")).await.is_err() { break; }
                        if !alive { break; }
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                },
            }
        }
        let _ = incoming.send(Packet::Closed);
    });
}

async fn spawn_polling(
    port: u16,
    options: &ConnectOptions,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    incoming: mpsc::UnboundedSender<Packet>,
) {
    let base = format!("http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling");
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &options.headers {
        headers.insert(*name, value.parse().expect("header value"));
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client");
    let open = http
        .get(&base)
        .send()
        .await
        .expect("polling handshake")
        .text()
        .await
        .expect("body");
    let open: Value =
        serde_json::from_str(open.strip_prefix('0').expect("open packet")).expect("open json");
    let sid = open["sid"].as_str().expect("sid").to_owned();
    let url = format!("{base}&sid={sid}");

    let (pong_tx, mut pongs) = mpsc::unbounded_channel::<()>();
    let post_http = http.clone();
    let post_url = url.clone();
    tokio::spawn(async move {
        loop {
            let body = tokio::select! {
                out = outgoing.recv() => match out { Some(p) => format!("4{p}"), None => break },
                pong = pongs.recv() => match pong { Some(()) => "3".to_owned(), None => break },
            };
            if post_http.post(&post_url).body(body).send().await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        'session: loop {
            let body = match http.get(&url).send().await {
                Ok(response) if response.status().is_success() => {
                    response.text().await.unwrap_or_default()
                }
                _ => break,
            };
            for packet in body.split('\u{1e}') {
                if !on_engine_packet(
                    packet,
                    || {
                        let _ = pong_tx.send(());
                    },
                    &incoming,
                ) {
                    break 'session;
                }
            }
        }
        let _ = incoming.send(Packet::Closed);
    });
}
