//! A client that behaves like a durable-delivery client library: it sends
//! `since` (the last `seq` it saw) with its credentials in the handshake
//! `auth`, reads the second argument `{ seq }` of every durable push, and
//! keeps, per user, what it received, so a scenario can count what was
//! lost, duplicated or out of order across reconnects.
//!
//! Unlike [`crate::sio::Conn`] (one driver task per socket, events handed
//! over through a channel), one task here owns a user's whole life: every
//! connection span one after another, and the tally of what arrived. That
//! keeps the bookkeeping next to the frames, with no shared map to lock.

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::seed::SECRET;
use crate::sio::{self, now_ns, SIO_PATH};
use crate::stats::Latencies;

/// The event name the scenarios push to users with `POST /api/push`.
pub const EVENT: &str = "durable";

/// socket.io-client's `timeout` option: how long one connection attempt
/// (TCP, WebSocket, Engine.IO open, Socket.IO connect) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What one user's client saw over all its connection spans.
#[derive(Debug, Default)]
pub struct Tally {
    /// Payload ids (`data.j`) received, each once.
    pub ids: HashSet<u64>,
    /// `seq`s received, each once.
    pub seqs: HashSet<u64>,
    /// The highest `seq` seen: what the next handshake sends as `since`.
    pub last_seq: u64,
    /// Pushes whose `seq` had already been received.
    pub duplicates: u64,
    /// Pushes with a `seq` lower than one already seen on the same span.
    pub out_of_order: u64,
    /// Seqs skipped on a span (a push after `since` that never came on it).
    pub gaps: u64,
    /// `resync` events (the log no longer held all that was asked for).
    pub resyncs: u64,
    /// Pushes without a `seq` (not logged by the server).
    pub unlogged: u64,
    /// Pushes marked `replayed`.
    pub replayed: u64,
    /// Spans that reached `auth` true.
    pub spans: u64,
    /// Attempts that failed before `auth` true (connect, refused, closed).
    pub failed_attempts: u64,
}

/// Counters every client of a scenario updates as pushes arrive.
#[derive(Default)]
pub struct Shared {
    /// Distinct (user, payload id) pairs received so far, by every client.
    pub unique: std::sync::atomic::AtomicU64,
    /// Push sent (`data.t`) → first receipt, live or replayed.
    pub latency: Latencies,
}

/// How a span ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SpanEnd {
    /// The client closed it (its time was up).
    ClosedByClient,
    /// The scenario is over.
    Done,
    /// The server or the network ended it, after `auth` true.
    Lost,
    /// It never reached `auth` true (with the reason).
    Failed(String),
}

/// Closes nothing until `done` turns true.
pub async fn until_done(done: &mut watch::Receiver<bool>) {
    let _ = done.wait_for(|d| *d).await;
}

/// One connection span of `user`: connects to `addr` from `source`, sends
/// `auth: { id, secretkey, since: tally.last_seq }`, calls `on_auth` at
/// `auth` true, and tallies every push until `close_when` (polled only
/// after authentication) completes, the connection ends, or `done`.
/// `auth_limit` bounds the wait for `auth`.
#[allow(clippy::too_many_arguments)]
pub async fn span<F: Future<Output = ()>>(
    addr: SocketAddr,
    source: IpAddr,
    user: &str,
    tally: &mut Tally,
    shared: &Shared,
    on_auth: &mut (dyn FnMut() + Send),
    close_when: F,
    auth_limit: Duration,
    done: &mut watch::Receiver<bool>,
) -> SpanEnd {
    if *done.borrow() {
        return SpanEnd::Done;
    }
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, sio::ws_connect(addr, SIO_PATH, source));
    let mut ws = match opened.await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return fail(tally, format!("connect: {e:#}")),
        Err(_) => return fail(tally, "connect timed out".into()),
    };
    let since = tally.last_seq;
    let hello = format!(
        "40{}",
        json!({ "id": user, "secretkey": SECRET, "since": since })
    );
    let started = Instant::now();
    let mut authed = false;
    // The highest seq seen on this span (starts at what was asked for).
    let mut span_max = since;
    tokio::pin!(close_when);
    let done_fut = until_done(done);
    tokio::pin!(done_fut);
    let auth_deadline = tokio::time::sleep(auth_limit);
    tokio::pin!(auth_deadline);
    loop {
        let frame = tokio::select! {
            _ = &mut done_fut => return SpanEnd::Done,
            _ = &mut close_when, if authed => return SpanEnd::ClosedByClient,
            _ = &mut auth_deadline, if !authed => {
                return fail(tally, format!("no auth within {auth_limit:?}"));
            }
            frame = ws.next() => frame,
        };
        let at = now_ns();
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let text = text.as_str();
        let reply = match text.split_at_checked(1) {
            // Engine.IO open: Socket.IO connect with the credentials.
            Some(("0", _)) => Some(hello.clone()),
            Some(("2", _)) => Some("3".to_owned()),
            Some(("1", _)) => break,
            Some(("4", sio)) => match sio.split_at_checked(1) {
                Some(("4", err)) => return fail(tally, format!("connect refused: {err}")),
                Some(("1", _)) => break,
                Some(("2", body)) => {
                    let Ok(Value::Array(args)) = serde_json::from_str::<Value>(body) else {
                        continue;
                    };
                    let name = args.first().and_then(Value::as_str).unwrap_or("");
                    let first = args.get(1).unwrap_or(&Value::Null);
                    match name {
                        "auth" if *first == Value::Bool(true) && !authed => {
                            authed = true;
                            tally.spans += 1;
                            on_auth();
                        }
                        // Real clients send credentials twice; so may we hear.
                        "auth" if *first == Value::Bool(true) => {}
                        "auth" => return fail(tally, format!("auth {first}")),
                        "resync" => tally.resyncs += 1,
                        EVENT => {
                            let meta = args.get(2).unwrap_or(&Value::Null);
                            record(tally, shared, first, meta, &mut span_max, at);
                        }
                        _ => {}
                    }
                    None
                }
                _ => None,
            },
            _ => None,
        };
        if let Some(reply) = reply {
            if ws.send(Message::text(reply)).await.is_err() {
                break;
            }
        }
        // A server that never answers the handshake is bounded too.
        if !authed && started.elapsed() > auth_limit + CONNECT_TIMEOUT {
            return fail(tally, "handshake took too long".into());
        }
    }
    if authed {
        SpanEnd::Lost
    } else {
        fail(tally, "closed before auth".into())
    }
}

fn fail(tally: &mut Tally, why: String) -> SpanEnd {
    tally.failed_attempts += 1;
    SpanEnd::Failed(why)
}

/// Tallies one durable push: `data = { j: id, t: sent ns }`, `meta = { seq,
/// replayed? }`.
fn record(
    tally: &mut Tally,
    shared: &Shared,
    data: &Value,
    meta: &Value,
    span_max: &mut u64,
    at: u64,
) {
    if meta["replayed"] == Value::Bool(true) {
        tally.replayed += 1;
    }
    match meta["seq"].as_u64() {
        Some(seq) => {
            if !tally.seqs.insert(seq) {
                tally.duplicates += 1;
            }
            if seq < *span_max {
                tally.out_of_order += 1;
            } else {
                tally.gaps += seq.saturating_sub(*span_max + 1);
                *span_max = seq;
            }
            tally.last_seq = tally.last_seq.max(seq);
        }
        None => tally.unlogged += 1,
    }
    if let Some(id) = data["j"].as_u64() {
        if tally.ids.insert(id) {
            shared
                .unique
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(sent) = data["t"].as_u64() {
                shared.latency.record(sent, at);
            }
        }
    }
}

/// socket.io-client's reconnection backoff (`backo2` as used by its
/// Manager): `min · 2^attempt`, randomized by ±`jitter` of itself, capped
/// at `max`. Defaults: 1000 ms, 5000 ms, 0.5.
pub struct Backoff {
    pub min_ms: f64,
    pub max_ms: f64,
    pub jitter: f64,
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min_ms: 1000.0,
            max_ms: 5000.0,
            jitter: 0.5,
            attempts: 0,
        }
    }
}

impl Backoff {
    /// The delay before the next attempt (and counts the attempt).
    pub fn next(&mut self, rng: &mut impl rand::Rng) -> Duration {
        let mut ms = self.min_ms * 2f64.powi(self.attempts.min(30) as i32);
        self.attempts += 1;
        let r: f64 = rng.gen();
        let deviation = (r * self.jitter * ms).floor();
        ms = if ((r * 10.0).floor() as u64) & 1 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
        Duration::from_millis(ms.min(self.max_ms) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_stays_within_socket_io_clients_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let mut b = Backoff::default();
            let first = b.next(&mut rng).as_millis();
            assert!((500..=1500).contains(&first), "{first}");
            let second = b.next(&mut rng).as_millis();
            assert!((1000..=3000).contains(&second), "{second}");
            for _ in 0..5 {
                assert!(b.next(&mut rng).as_millis() <= 5000);
            }
        }
    }

    #[test]
    fn a_tally_counts_duplicates_reorders_and_gaps() {
        let shared = Shared::default();
        let mut t = Tally::default();
        let mut max = 0;
        for (j, seq) in [(1, 1), (2, 2), (2, 2), (4, 4), (3, 3)] {
            record(
                &mut t,
                &shared,
                &json!({ "j": j, "t": 0 }),
                &json!({ "seq": seq }),
                &mut max,
                1,
            );
        }
        assert_eq!((t.duplicates, t.out_of_order, t.gaps), (1, 1, 1));
        assert_eq!(t.ids.len(), 4);
        assert_eq!(t.last_seq, 4);
    }
}
