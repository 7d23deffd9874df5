//! `note-sync`: the notes app's protocol (`/notes`, docs/protocol.md §11)
//! under load. One Tidings node (SQLite or PostgreSQL, `--db`) holds `n`
//! authenticated users, one idle `/notes` connection each; `--pairs` more
//! users each have two devices. Device A of each pair sends signed
//! `note_update`s (HMAC-SHA256, as the app does) to one note; device B's
//! `note_sync` is timed against the send.
//!
//! 1. Open loop: `--rate` updates per second over all pairs for
//!    `--seconds`: the sync latency p50/p99 at that load.
//! 2. Closed loop: every device A sends its next update as soon as its
//!    `note_update_success` arrives, for `--seconds`: updates/s the node
//!    stores and syncs, and the latency at that saturation.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::report::Row;
use crate::scenarios::{self, Db, Progress, Settings};
use crate::servers::Target;
use crate::sio::{self, now_ns, STEP};
use crate::stats::Latencies;

const JWT_SECRET: &str = "bench-notes-hs256-secret-0123456789abcdef";
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

type Ws = WebSocketStream<TcpStream>;

fn b64url(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

fn hmac(key: &[u8], text: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// An HS256 session token for `sub`, valid for an hour.
fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let body = format!(
        "{}.{}",
        b64url(&json!({ "alg": "HS256", "typ": "JWT" })),
        b64url(&json!({ "sub": sub, "iat": now, "exp": now + 3600 }))
    );
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac(JWT_SECRET.as_bytes(), &body));
    format!("{body}.{signature}")
}

/// The envelope the app sends: `payload` signed with `secret`.
fn signed(secret: &str, payload: &Value, nonce: u64) -> String {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let nonce = format!("\"{nonce}\"");
    let text = format!("{{\"payload\":{payload},\"timestamp\":{timestamp},\"nonce\":{nonce}}}");
    let signature =
        base64::engine::general_purpose::STANDARD.encode(hmac(secret.as_bytes(), &text));
    format!("{{\"payload\":{payload},\"signature\":\"{signature}\",\"timestamp\":{timestamp},\"nonce\":{nonce}}}")
}

async fn next_json(ws: &mut Ws) -> Result<Value> {
    loop {
        let frame = tokio::time::timeout(STEP, ws.next())
            .await
            .context("no frame in time")?
            .context("closed")??;
        if let Message::Text(text) = frame {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
}

/// A `/notes` connection authenticated as `sub`, and its session secret.
async fn device(d: &scenarios::Deployment, i: usize, sub: &str) -> Result<(Ws, String)> {
    let mut ws = sio::ws_connect(d.sock, "/notes", sio::source_addr(i)).await?;
    let greeting = next_json(&mut ws).await?;
    if greeting["type"] != "connection_established" {
        bail!("unexpected greeting {greeting}");
    }
    ws.send(Message::text(
        json!({ "type": "auth", "token": token(sub) }).to_string(),
    ))
    .await?;
    let answer = next_json(&mut ws).await?;
    let Some(secret) = answer["sessionSecret"].as_str() else {
        bail!("auth refused: {answer}");
    };
    Ok((ws, secret.to_owned()))
}

/// Reads (and drops) everything an idle device receives, answering pings.
async fn idle(mut ws: Ws) {
    while let Some(Ok(frame)) = ws.next().await {
        if matches!(frame, Message::Close(_)) {
            break;
        }
    }
}

enum Cmd {
    /// One update, stamped with its send time.
    Once,
    /// Update after update, each when the last was acknowledged, until then.
    Until(Instant),
}

/// Device A: sends signed updates of `note` as told; counts acknowledgements.
async fn sender(
    mut ws: Ws,
    secret: String,
    note: String,
    mut rx: mpsc::Receiver<Cmd>,
    acked: Arc<AtomicU64>,
) {
    let mut nonce = 0u64;
    let mut until: Option<Instant> = None;
    let update = |nonce: u64| {
        let payload = json!({ "type": "note_update", "noteId": note, "changes": {
            "title": "[ENCRYPTED]", "encryptedContent": now_ns().to_string() } });
        signed(&secret, &payload, nonce)
    };
    loop {
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                if let Cmd::Until(at) = cmd {
                    until = Some(at);
                }
                nonce += 1;
                if ws.send(Message::text(update(nonce))).await.is_err() {
                    break;
                }
            }
            frame = ws.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    if frame.is_none() { break; }
                    continue;
                };
                if !text.as_str().contains("\"note_update_success\"") {
                    continue;
                }
                acked.fetch_add(1, Ordering::Relaxed);
                if until.is_some_and(|at| Instant::now() < at) {
                    nonce += 1;
                    if ws.send(Message::text(update(nonce))).await.is_err() {
                        break;
                    }
                } else {
                    until = None;
                }
            }
        }
    }
}

/// Device B: times each `note_sync` against the send time it carries.
async fn receiver(mut ws: Ws, phase: Arc<AtomicU8>, open: Arc<Latencies>, closed: Arc<Latencies>) {
    while let Some(Ok(frame)) = ws.next().await {
        let Message::Text(text) = frame else { continue };
        let at = now_ns();
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        if value["type"] != "note_sync" {
            continue;
        }
        let Some(sent) = value["changes"]["encryptedContent"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        match phase.load(Ordering::Relaxed) {
            OPEN => open.record(sent, at),
            CLOSED => closed.record(sent, at),
            _ => {}
        }
    }
}

pub async fn note_sync(s: &Settings, n: usize) -> Result<Vec<Row>> {
    let mut s = s.clone();
    s.server_env = [
        ("TIDINGS_JWT_HS256_SECRET", JWT_SECRET),
        // The load is the point here; the contract's limits have their tests.
        ("TIDINGS_NOTES_MESSAGES_PER_MINUTE", "100000000"),
        ("TIDINGS_NOTES_MAX_CONNECTIONS_PER_USER", "1000"),
        ("TIDINGS_PLAIN_IDLE_TIMEOUT_SECS", "3600"),
        ("TIDINGS_NOTES_AUTH_TIMEOUT_SECS", "3600"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let d = scenarios::deploy(&s, Target::Tidings, 0, 1).await?;
    let result = run(&s, &d, n).await;
    d.teardown(&s).await;
    result
}

async fn run(s: &Settings, d: &scenarios::Deployment, n: usize) -> Result<Vec<Row>> {
    let target = match s.db {
        Db::Sqlite => "tidings-sqlite",
        Db::Postgres => "tidings-postgres",
    };
    let run = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let label = format!("note-sync {target}");

    // Idle users.
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let progress = Progress::start(label.clone(), n, done.clone(), failed.clone());
    let start = Instant::now();
    let mut idle_tasks = Vec::with_capacity(n);
    let mut opened = futures_util::stream::iter(0..n)
        .map(|i| {
            let sub = format!("bench_{run}_{i}");
            async move { device(d, i, &sub).await }
        })
        .buffer_unordered(s.concurrency.max(1));
    let mut first_error = None;
    while let Some(result) = opened.next().await {
        match result {
            Ok((ws, _)) => {
                done.fetch_add(1, Ordering::Relaxed);
                idle_tasks.push(tokio::spawn(idle(ws)));
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                first_error.get_or_insert(format!("{e:#}"));
            }
        }
    }
    drop(progress);
    let connected = done.load(Ordering::Relaxed);
    eprintln!(
        "  [{label}] {connected}/{n} users connected and authenticated in {:.1} s{}",
        start.elapsed().as_secs_f64(),
        first_error
            .map(|e| format!("; first error: {e}"))
            .unwrap_or_default()
    );

    // Pairs: a note each (GraphQL, Bearer), then devices A and B.
    let http = reqwest::Client::new();
    let k = s.pairs.max(1);
    let phase = Arc::new(AtomicU8::new(0));
    let (open, closed) = (Arc::new(Latencies::new()), Arc::new(Latencies::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(k);
    let mut tasks = Vec::new();
    for p in 0..k {
        let sub = format!("bench_{run}_pair_{p}");
        let answer: Value = http
            .post(format!("http://{}/graphql", d.http))
            .bearer_auth(token(&sub))
            .json(&json!({ "query": "mutation { createNote(title: \"[ENCRYPTED]\") { id } }" }))
            .send()
            .await?
            .json()
            .await?;
        let note = answer["data"]["createNote"]["id"]
            .as_str()
            .with_context(|| format!("createNote: {answer}"))?
            .to_owned();
        let (a, secret) = device(d, n + 2 * p, &sub).await?;
        let (b, _) = device(d, n + 2 * p + 1, &sub).await?;
        let (tx, rx) = mpsc::channel(64);
        senders.push(tx);
        tasks.push(tokio::spawn(sender(a, secret, note, rx, acked.clone())));
        tasks.push(tokio::spawn(receiver(
            b,
            phase.clone(),
            open.clone(),
            closed.clone(),
        )));
    }

    // 1. Open loop at --rate.
    let seconds = Duration::from_secs(s.seconds.max(1));
    phase.store(OPEN, Ordering::Relaxed);
    let rate = s.rate.max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    let until = Instant::now() + seconds;
    let mut sent = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let _ = senders[sent % k].try_send(Cmd::Once);
        sent += 1;
    }
    settle(&open, sent as u64).await;
    let o = open.summary();
    eprintln!(
        "  [{label}] open loop: {} of {sent} synced, p50 {:.2} ms, p99 {:.2} ms",
        o.count, o.p50_ms, o.p99_ms
    );

    // 2. Closed loop.
    phase.store(CLOSED, Ordering::Relaxed);
    let before = acked.load(Ordering::Relaxed);
    let started = Instant::now();
    let until = started + seconds;
    for tx in &senders {
        let _ = tx.try_send(Cmd::Until(until));
    }
    tokio::time::sleep_until(until.into()).await;
    let took = started.elapsed().as_secs_f64();
    let updates = acked.load(Ordering::Relaxed) - before;
    tokio::time::sleep(Duration::from_millis(500)).await;
    phase.store(0, Ordering::Relaxed);
    let c = closed.summary();
    let per_sec = updates as f64 / took;
    eprintln!(
        "  [{label}] closed loop: {updates} updates in {took:.1} s = {per_sec:.0}/s, sync p50 {:.2} ms, p99 {:.2} ms",
        c.p50_ms, c.p99_ms
    );
    for t in tasks.into_iter().chain(idle_tasks) {
        t.abort();
    }
    let row = |metric: &str, value: f64, unit: &str| {
        Row::new("note-sync", target, connected, metric, value, unit)
    };
    Ok(vec![
        row("sync_p50", o.p50_ms, "ms"),
        row("sync_p99", o.p99_ms, "ms"),
        row("sync_max", o.max_ms, "ms"),
        row("synced", o.count as f64, "count"),
        row("sent", sent as f64, "count"),
        row("updates_per_sec", per_sec, "1/s"),
        row("saturated_p50", c.p50_ms, "ms"),
        row("saturated_p99", c.p99_ms, "ms"),
    ])
}

/// Waits until `want` samples arrived, or 5 s passed without progress.
async fn settle(lat: &Latencies, want: u64) {
    let mut last = (lat.count(), Instant::now());
    while lat.count() < want && last.1.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if lat.count() != last.0 {
            last = (lat.count(), Instant::now());
        }
    }
}
