//! A minimal Engine.IO 4 / Socket.IO 5 client over WebSocket, built for load:
//! one tokio task per connection, pings answered in the task, and an optional
//! [`Tap`] that consumes measured events right where they arrive (so a
//! benchmark never has to poll ten thousand receivers).
//!
//! Connections are spread over the source addresses 127.0.0.1..=127.0.0.20 so
//! that more than ~28k sockets can reach one listening port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Longest single await (connect, handshake, ack) before it counts as failed.
pub const STEP: Duration = Duration::from_secs(30);

/// Number of loopback source addresses connections are spread over.
pub const SOURCES: usize = 20;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process' benchmark epoch; embedded in payloads and
/// compared on receipt (sender and receiver are the same process).
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

pub fn source_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES) as u8))
}

/// How frames are understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Engine.IO 4 + Socket.IO 5.
    SocketIo,
    /// Plain text frames (the floor server).
    Raw,
    /// Tidings' plain WebSocket (`/ws`, docs/protocol.md §10): one JSON
    /// object per frame; an event `E` arrives as `{ "type": "E", … }`.
    Plain,
}

/// Called for every event (Socket.IO) or text frame (raw; `name` is empty and
/// `arg` the frame parsed as JSON) with its arrival time. Returning `true`
/// consumes it; otherwise it is queued on [`Conn::rx`].
pub type Tap = Arc<dyn Fn(&str, &Value, u64) -> bool + Send + Sync>;

#[derive(Debug)]
pub enum Incoming {
    Connected,
    ConnectError(Value),
    Event(String, Vec<Value>),
    Ack(u64, Vec<Value>),
    Closed,
}

pub struct Conn {
    out: mpsc::UnboundedSender<String>,
    pub rx: mpsc::UnboundedReceiver<Incoming>,
    next_ack: u64,
    framing: Framing,
}

/// Opens a TCP connection from `source` (any free port) and upgrades it.
pub async fn ws_connect(
    target: SocketAddr,
    path: &str,
    source: IpAddr,
) -> Result<WebSocketStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("bind {source}"))?;
    let stream = timeout(STEP, socket.connect(target))
        .await
        .context("tcp connect timed out")??;
    stream.set_nodelay(true)?;
    let url = format!("ws://{target}{path}");
    let (ws, _) = timeout(STEP, tokio_tungstenite::client_async(url, stream))
        .await
        .context("websocket handshake timed out")??;
    Ok(ws)
}

pub const SIO_PATH: &str = "/socket.io/?EIO=4&transport=websocket";

impl Conn {
    /// Connects and, for Socket.IO, completes the namespace connect (`40`).
    pub async fn open(
        target: SocketAddr,
        source: IpAddr,
        framing: Framing,
        tap: Option<Tap>,
    ) -> Result<Self> {
        let path = match framing {
            Framing::SocketIo => SIO_PATH,
            Framing::Raw => "/",
            Framing::Plain => "/ws",
        };
        let ws = ws_connect(target, path, source).await?;
        let (out, out_rx) = mpsc::unbounded_channel();
        let (in_tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drive(ws, framing, out_rx, in_tx, tap));
        let mut conn = Self {
            out,
            rx,
            next_ack: 0,
            framing,
        };
        // Socket.IO's namespace connect; the plain greeting `{ tabWindowId }`.
        if framing != Framing::Raw {
            match timeout(STEP, conn.rx.recv()).await {
                Ok(Some(Incoming::Connected)) => {}
                Ok(other) => bail!("connect refused: {other:?}"),
                Err(_) => bail!("connect timed out"),
            }
        }
        Ok(conn)
    }

    /// The next answer of a plain connection among `kinds` (its `type`),
    /// other frames dropped.
    async fn plain_answer(&mut self, kinds: &[&str]) -> Result<(String, Value)> {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.rx.recv()).await {
                Ok(Some(Incoming::Event(name, mut args))) if kinds.contains(&name.as_str()) => {
                    return Ok((name, args.pop().unwrap_or(Value::Null)))
                }
                Ok(Some(Incoming::Closed)) | Ok(None) => bail!("closed before {kinds:?}"),
                Ok(Some(_)) => {}
                Err(_) => bail!("no {kinds:?} within {STEP:?}"),
            }
        }
    }

    /// Signs in with a JWT: in-band `{ type: "auth", token }` on a plain
    /// connection, `initialConnection { token }` on Socket.IO.
    pub async fn authenticate_token(&mut self, token: &str) -> Result<()> {
        if self.framing == Framing::SocketIo {
            let args = self
                .emit_ack("initialConnection", &serde_json::json!({ "token": token }))
                .await?;
            return match args.first() {
                Some(Value::Bool(true)) => Ok(()),
                other => Err(anyhow!("authentication refused: {other:?}")),
            };
        }
        self.send_text(serde_json::json!({ "type": "auth", "token": token }).to_string());
        match self.plain_answer(&["auth_success", "auth_failed"]).await? {
            (kind, _) if kind == "auth_success" => Ok(()),
            (_, answer) => Err(anyhow!("authentication refused: {answer}")),
        }
    }

    /// Sends a text frame as is (for Socket.IO: with the Engine.IO `4`).
    pub fn send_text(&self, text: String) {
        let _ = self.out.send(text);
    }

    pub fn emit(&self, event: &str, data: &Value) {
        self.send_text(format!("42{}", serde_json::json!([event, data])));
    }

    /// Emits with an ack id; returns the ack's arguments. Other packets that
    /// arrive meanwhile are dropped.
    pub async fn emit_ack(&mut self, event: &str, data: &Value) -> Result<Vec<Value>> {
        debug_assert_eq!(self.framing, Framing::SocketIo);
        let id = self.next_ack;
        self.next_ack += 1;
        self.send_text(format!("42{id}{}", serde_json::json!([event, data])));
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.rx.recv()).await {
                Ok(Some(Incoming::Ack(n, args))) if n == id => return Ok(args),
                Ok(Some(Incoming::Closed)) | Ok(None) => bail!("closed before ack of {event}"),
                Ok(Some(_)) => {}
                Err(_) => bail!("no ack for {event} within {STEP:?}"),
            }
        }
    }

    /// `initialConnection` with an ack; true when the server says so.
    pub async fn authenticate(&mut self, id: &str, secret: &str) -> Result<()> {
        if self.framing == Framing::Plain {
            self.send_text(
                serde_json::json!({ "type": "auth", "id": id, "secretkey": secret }).to_string(),
            );
            return match self.plain_answer(&["auth_success", "auth_failed"]).await? {
                (kind, _) if kind == "auth_success" => Ok(()),
                (_, answer) => Err(anyhow!("authentication refused: {answer}")),
            };
        }
        let args = self
            .emit_ack(
                "initialConnection",
                &serde_json::json!({ "id": id, "secretkey": secret }),
            )
            .await?;
        match args.first() {
            Some(Value::Bool(true)) => Ok(()),
            other => Err(anyhow!("authentication refused: {other:?}")),
        }
    }

    pub async fn join_room(&mut self, room: &str) -> Result<()> {
        if self.framing == Framing::Plain {
            // A refusal is an error frame; the pong after it says it was not.
            self.send_text(serde_json::json!({ "joinRoom": room }).to_string());
            self.send_text(r#"{"type":"ping"}"#.to_owned());
            return match self.plain_answer(&["pong", "error"]).await? {
                (kind, _) if kind == "pong" => Ok(()),
                (_, answer) => Err(anyhow!("joinRoom refused: {answer}")),
            };
        }
        let args = self
            .emit_ack("joinRoom", &Value::String(room.into()))
            .await?;
        match args.first() {
            Some(v) if v["ok"] == Value::Bool(true) => Ok(()),
            other => Err(anyhow!("joinRoom refused: {other:?}")),
        }
    }

    /// Ends the connection (the driver task sends a close frame and exits).
    pub fn close(self) {
        drop(self);
    }
}

fn decode_sio(packet: &str) -> Option<Incoming> {
    let (kind, rest) = packet.split_at_checked(1)?;
    match kind {
        "0" => Some(Incoming::Connected),
        "1" => Some(Incoming::Closed),
        "4" => Some(Incoming::ConnectError(
            serde_json::from_str(rest).unwrap_or(Value::Null),
        )),
        "2" | "3" => {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let args: Vec<Value> = serde_json::from_str(&rest[digits..]).ok()?;
            if kind == "3" {
                return Some(Incoming::Ack(rest[..digits].parse().ok()?, args));
            }
            let mut args = args.into_iter();
            let name = args.next()?.as_str()?.to_owned();
            Some(Incoming::Event(name, args.collect()))
        }
        _ => None,
    }
}

async fn drive(
    ws: WebSocketStream<TcpStream>,
    framing: Framing,
    mut out: mpsc::UnboundedReceiver<String>,
    incoming: mpsc::UnboundedSender<Incoming>,
    tap: Option<Tap>,
) {
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            packet = out.recv() => match packet {
                // Socket.IO packets arrive here with their Engine.IO prefix.
                Some(text) => {
                    if sink.send(Message::text(text)).await.is_err() { break; }
                }
                None => {
                    let _ = timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                    break;
                }
            },
            frame = stream.next() => {
                let at = now_ns();
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                match framing {
                    Framing::Raw => {
                        let arg: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        if !tap.as_ref().is_some_and(|t| t("", &arg, at)) {
                            let _ = incoming.send(Incoming::Event(String::new(), vec![arg]));
                        }
                    }
                    Framing::Plain => {
                        let arg: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                        let kind = arg["type"].as_str().unwrap_or_default().to_owned();
                        // Answers the connection waits for never go to the tap.
                        let control = arg.get("tabWindowId").is_some()
                            || matches!(kind.as_str(), "auth_success" | "auth_failed" | "pong" | "error");
                        if arg.get("tabWindowId").is_some() {
                            let _ = incoming.send(Incoming::Connected);
                        } else if control || !tap.as_ref().is_some_and(|t| t(&kind, &arg, at)) {
                            let _ = incoming.send(Incoming::Event(kind, vec![arg]));
                        }
                    }
                    Framing::SocketIo => match text.as_str().split_at_checked(1) {
                        // Engine.IO open: ask for the Socket.IO connect.
                        Some(("0", _)) if sink.send(Message::text("40")).await.is_err() => break,
                        // Engine.IO ping: pong.
                        Some(("2", _)) if sink.send(Message::text("3")).await.is_err() => break,
                        Some(("0" | "2", _)) => {}
                        Some(("1", _)) => break,
                        Some(("4", sio)) => match decode_sio(sio) {
                            Some(Incoming::Event(name, args)) => {
                                let first = args.first().unwrap_or(&Value::Null);
                                if !tap.as_ref().is_some_and(|t| t(&name, first, at)) {
                                    let _ = incoming.send(Incoming::Event(name, args));
                                }
                            }
                            Some(Incoming::Closed) => break,
                            Some(other) => { let _ = incoming.send(other); }
                            None => {}
                        },
                        _ => {}
                    },
                }
            }
        }
    }
    let _ = incoming.send(Incoming::Closed);
}
