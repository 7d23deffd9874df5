//! Delivery across reconnects (issue 11): durable pushes to users while
//! connections come and go.
//!
//! - [`jitter`]: every client's connection is closed every ~15 s and comes
//!   back ~2 s later, alternately on each of two nodes, while pushes flow;
//!   what arrived is compared with what the server accepted.
//! - [`avalanche`]: every client of one node loses it at once (SIGKILL) and
//!   reconnects to the other with socket.io-client's default backoff.
//! - [`log_cost`]: bytes per retained push in Redis (`MEMORY USAGE`).
//!
//! Clients are [`crate::durable`] clients (they resume with `since`);
//! pushes are `POST /api/push` to `users`, from a thread and runtime of
//! their own ([`Pusher`]) so ten thousand client tasks cannot starve them.
//! Every phase is bounded in time.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::durable::{self, Backoff, Shared, SpanEnd, Tally};
use crate::report::Row;
use crate::scenarios::{deploy, socket_capacity, Deployment, Progress, Settings};
use crate::servers::{Target, API_KEY};
use crate::sio::{self, now_ns};
use crate::stats::Latencies;

/// Knobs of the jitter and avalanche scenarios.
#[derive(Clone, Debug)]
pub struct DurableSettings {
    /// Seconds of jitter (connections closing and coming back).
    pub jitter_secs: u64,
    /// Mean time a connection stays up (uniform over ½–1½ of it).
    pub up: Duration,
    /// Mean time a client stays away (uniform over ¾–1¼ of it).
    pub down: Duration,
    /// `POST /api/push` requests per second, each to `batch` users.
    pub push_rate: u32,
    /// Users per push request (at most 100, the API's limit).
    pub batch: usize,
    /// log-cost: pushes per user at each measuring point.
    pub log_depths: Vec<u32>,
}

impl Default for DurableSettings {
    fn default() -> Self {
        Self {
            jitter_secs: 120,
            up: Duration::from_secs(15),
            down: Duration::from_secs(2),
            push_rate: 100,
            batch: 10,
            log_depths: vec![1, 10, 100],
        }
    }
}

// ---------------------------------------------------------------- pusher

/// Pushes accepted (202) by the server: payload id, the users (indices) it
/// went to, when it was accepted (`now_ns`).
struct Accepted {
    id: u64,
    users: Vec<usize>,
    at_ns: u64,
}

#[derive(Default)]
struct PushOutcome {
    accepted: Vec<Accepted>,
    /// Requests not answered 202 (or not answered in time).
    rejected: u64,
    /// Request sent → 202.
    http: Latencies,
}

/// Steady `POST /api/push` to users (client index, user id), round robin, the
/// requests spread over `targets`, until `stop` or `until`.
struct Pusher {
    stop: Arc<AtomicBool>,
    outcome: tokio::sync::oneshot::Receiver<PushOutcome>,
    /// (user, push) pairs accepted so far.
    accepted_pairs: Arc<AtomicU64>,
}

impl Pusher {
    fn start(
        targets: Vec<SocketAddr>,
        users: Vec<(usize, String)>,
        rate: u32,
        batch: usize,
        until: Instant,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted_pairs = Arc::new(AtomicU64::new(0));
        let (tx, outcome) = tokio::sync::oneshot::channel();
        let (stop2, pairs2) = (stop.clone(), accepted_pairs.clone());
        std::thread::Builder::new()
            .name("pusher".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("  pusher: no runtime: {e}");
                        let _ = tx.send(PushOutcome::default());
                        return;
                    }
                };
                let out = rt.block_on(push_steadily(
                    targets, users, rate, batch, until, stop2, pairs2,
                ));
                let _ = tx.send(out);
            })?;
        Ok(Self {
            stop,
            outcome,
            accepted_pairs,
        })
    }

    async fn finish(self) -> Result<PushOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.outcome.await.context("pusher thread died")
    }
}

async fn push_steadily(
    targets: Vec<SocketAddr>,
    users: Vec<(usize, String)>,
    rate: u32,
    batch: usize,
    until: Instant,
    stop: Arc<AtomicBool>,
    pairs: Arc<AtomicU64>,
) -> PushOutcome {
    let http = reqwest::Client::new();
    let batch = batch.clamp(1, 100).min(users.len().max(1));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_user = 0usize;
    let mut id = 0u64;
    let latency = Arc::new(Latencies::new());
    let mut out = PushOutcome::default();
    let reap = |r: Result<Option<Accepted>, tokio::task::JoinError>, out: &mut PushOutcome| match r
    {
        Ok(Some(a)) => out.accepted.push(a),
        _ => out.rejected += 1,
    };
    while !stop.load(Ordering::Relaxed) && Instant::now() < until && !users.is_empty() {
        tick.tick().await;
        id += 1;
        let picked = (0..batch).map(|k| &users[(next_user + k) % users.len()]);
        let (chosen, ids): (Vec<usize>, Vec<&str>) =
            picked.map(|(i, id)| (*i, id.as_str())).unzip();
        next_user = (next_user + batch) % users.len();
        let body = json!({
            "users": ids,
            "event": durable::EVENT,
            "data": { "j": id, "t": now_ns() },
        });
        let url = format!("http://{}/api/push", targets[id as usize % targets.len()]);
        let (http, pairs, latency) = (http.clone(), pairs.clone(), latency.clone());
        tasks.spawn(async move {
            let sent = now_ns();
            let r = tokio::time::timeout(
                sio::STEP,
                http.post(url).bearer_auth(API_KEY).json(&body).send(),
            )
            .await;
            let ok = matches!(r, Ok(Ok(ref resp)) if resp.status().as_u16() == 202);
            ok.then(|| {
                let at = now_ns();
                latency.record(sent, at);
                pairs.fetch_add(chosen.len() as u64, Ordering::Relaxed);
                Accepted {
                    id,
                    users: chosen,
                    at_ns: at,
                }
            })
        });
        // Reap what is done, so the set does not grow with the run.
        while let Some(r) = tasks.try_join_next() {
            reap(r, &mut out);
        }
    }
    while let Some(r) = tasks.join_next().await {
        reap(r, &mut out);
    }
    drop(tasks);
    out.http = Arc::try_unwrap(latency).unwrap_or_default();
    out
}

// ---------------------------------------------------------------- common

/// Waits until `unique` reaches `expected` (everything accepted arrived),
/// or nothing new arrived for `quiet`, at most `limit`.
async fn drain(unique: &AtomicU64, expected: u64, quiet: Duration, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut last = (unique.load(Ordering::Relaxed), Instant::now());
    while start.elapsed() < limit {
        let now = unique.load(Ordering::Relaxed);
        if now >= expected {
            break;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// Waits for each client task (bounded), returning its tally by index.
async fn collect(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> Vec<Option<Tally>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .ok()
                .and_then(Result::ok),
        );
    }
    out
}

/// What the clients received against what the server accepted.
#[derive(Debug, Default)]
struct Verdict {
    accepted_requests: u64,
    accepted_pairs: u64,
    delivered_pairs: u64,
    /// Accepted (user, push) pairs not received, by acceptance time.
    missing_at_ns: Vec<u64>,
    /// Received but never acknowledged as accepted (a request that timed
    /// out on the bench's side yet was processed).
    unexpected: u64,
    duplicates: u64,
    out_of_order: u64,
    gaps: u64,
    resyncs: u64,
    replayed: u64,
    unlogged: u64,
    spans: u64,
    failed_attempts: u64,
}

fn verdict(outcome: &PushOutcome, tallies: &[Option<Tally>]) -> Verdict {
    let mut v = Verdict {
        accepted_requests: outcome.accepted.len() as u64,
        ..Verdict::default()
    };
    let mut expected: HashMap<usize, HashSet<u64>> = HashMap::new();
    for a in &outcome.accepted {
        for &u in &a.users {
            v.accepted_pairs += 1;
            expected.entry(u).or_default().insert(a.id);
            if tallies
                .get(u)
                .and_then(Option::as_ref)
                .is_some_and(|t| t.ids.contains(&a.id))
            {
                v.delivered_pairs += 1;
            } else {
                v.missing_at_ns.push(a.at_ns);
            }
        }
    }
    for (u, t) in tallies.iter().enumerate() {
        let Some(t) = t else { continue };
        v.duplicates += t.duplicates;
        v.out_of_order += t.out_of_order;
        v.gaps += t.gaps;
        v.resyncs += t.resyncs;
        v.replayed += t.replayed;
        v.unlogged += t.unlogged;
        v.spans += t.spans;
        v.failed_attempts += t.failed_attempts;
        let owed = expected.get(&u);
        v.unexpected += t
            .ids
            .iter()
            .filter(|id| !owed.is_some_and(|o| o.contains(id)))
            .count() as u64;
    }
    v
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// Sleeps for `d` unless `done` comes first; returns false if it did.
async fn pause(d: Duration, done: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = durable::until_done(done) => false,
    }
}

fn jittered(rng: &mut impl Rng, mean: Duration, spread: f64) -> Duration {
    mean.mul_f64(rng.gen_range((1.0 - spread)..(1.0 + spread)))
}

// ---------------------------------------------------------------- jitter

/// N clients on two Tidings nodes (PostgreSQL + Redis); each connection is
/// closed by its client every ~`up` and comes back ~`down` later on the
/// other node, resuming with `since`, for `jitter_secs`, while pushes flow.
pub async fn jitter(s: &Settings, target: Target, requested: usize) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        eprintln!(
            "  jitter: runs on two Tidings nodes only; skipped for {}",
            target.name()
        );
        return Ok(Vec::new());
    }
    let n = requested.min(socket_capacity()).max(2);
    let d = deploy(s, target, n, 2).await?;
    let result = jitter_run(s, &d, n).await;
    d.teardown(s).await;
    result
}

/// When the jitter starts and ends (set once every client is in).
type Window = Option<(Instant, Instant)>;

async fn jitter_run(s: &Settings, d: &Deployment, n: usize) -> Result<Vec<Row>> {
    let c = &s.durable;
    let nodes = [d.servers[0].addr, d.servers[1].addr];
    let shared = Arc::new(Shared::default());
    let (done_tx, done_rx) = watch::channel(false);
    let (window_tx, window_rx) = watch::channel::<Window>(None);
    let authed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let user = d.users[i].id.clone();
        let (shared, authed, gate) = (shared.clone(), authed.clone(), gate.clone());
        let (mut done, window) = (done_rx.clone(), window_rx.clone());
        let (up, down, limit) = (c.up, c.down, s.phase_limit);
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut tally = Tally::default();
            let mut node = i % 2;
            // Held until the first `auth` true: the setup's concurrency.
            let mut permit = gate.acquire_owned().await.ok();
            let mut first = true;
            loop {
                let offset = if first {
                    up.mul_f64(rng.gen_range(0.0..1.0))
                } else {
                    jittered(&mut rng, up, 0.5)
                };
                let mut w = window.clone();
                let close_when = async move {
                    // Copied out at once: a watch `Ref` holds a lock.
                    let win = w.wait_for(Option::is_some).await.ok().and_then(|r| *r);
                    let Some((start, end)) = win else {
                        return std::future::pending().await;
                    };
                    // The first close of each client falls anywhere in its
                    // first period, so closes are spread, not synchronised.
                    let at = if first {
                        start + offset
                    } else {
                        Instant::now() + offset
                    };
                    if at >= end {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep_until(at.into()).await;
                };
                let mut on_auth = || {
                    if permit.take().is_some() {
                        authed.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let end = durable::span(
                    nodes[node],
                    sio::source_addr(i),
                    &user,
                    &mut tally,
                    &shared,
                    &mut on_auth,
                    close_when,
                    limit,
                    &mut done,
                )
                .await;
                let away = match end {
                    SpanEnd::Done => break,
                    SpanEnd::ClosedByClient => {
                        first = false;
                        jittered(&mut rng, down, 0.25)
                    }
                    SpanEnd::Lost | SpanEnd::Failed(_) => Duration::from_secs(1),
                };
                // Back on the other node: a reconnect that lands elsewhere.
                node = 1 - node;
                if !pause(away, &mut done).await {
                    break;
                }
            }
            tally
        }));
    }
    let label = "jitter setup".to_owned();
    let progress = Progress::start(label.clone(), n, authed.clone(), failed.clone());
    let setup = Instant::now();
    while authed.load(Ordering::Relaxed) < n && setup.elapsed() < s.phase_limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(progress);
    let connected = authed.load(Ordering::Relaxed);
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!(
        "  [jitter] {connected}/{n} authenticated in {setup_secs:.1} s; jitter for {} s",
        c.jitter_secs
    );
    let start = Instant::now();
    let end = start + Duration::from_secs(c.jitter_secs);
    let users = d
        .users
        .iter()
        .take(n)
        .map(|u| u.id.clone())
        .enumerate()
        .collect();
    let pusher = Pusher::start(nodes.to_vec(), users, c.push_rate, c.batch, end)?;
    let _ = window_tx.send(Some((start, end)));
    while Instant::now() < end {
        let left = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_secs(10))).await;
        eprintln!(
            "  [jitter] {:.0} s: {} of {} accepted (user, push) pairs received",
            start.elapsed().as_secs_f64(),
            shared.unique.load(Ordering::Relaxed),
            pusher.accepted_pairs.load(Ordering::Relaxed)
        );
    }
    let pairs = pusher.accepted_pairs.clone();
    let outcome = pusher.finish().await?;
    let drained = drain(
        &shared.unique,
        pairs.load(Ordering::Relaxed),
        Duration::from_secs(15),
        Duration::from_secs(90),
    )
    .await;
    let _ = done_tx.send(true);
    let tallies = collect(tasks).await;
    let v = verdict(&outcome, &tallies);
    let lat = shared.latency.summary();
    let http = outcome.http.summary();
    let delivered = pct(v.delivered_pairs, v.accepted_pairs);
    eprintln!(
        "  [jitter] delivered {}/{} ({delivered:.3} %), {} duplicates, {} out of order, {} gaps, {} resyncs, {} reconnects; latency p99 {:.1} ms",
        v.delivered_pairs, v.accepted_pairs, v.duplicates, v.out_of_order, v.gaps, v.resyncs,
        v.spans.saturating_sub(connected as u64), lat.p99_ms
    );
    let (sc, t) = ("jitter", "tidings");
    Ok(vec![
        Row::new(sc, t, n, "connected", connected as f64, "sockets"),
        Row::new(sc, t, n, "setup_time", setup_secs, "s"),
        Row::new(sc, t, n, "jitter_time", c.jitter_secs as f64, "s"),
        Row::new(
            sc,
            t,
            n,
            "reconnects",
            v.spans.saturating_sub(connected as u64) as f64,
            "spans",
        ),
        Row::new(
            sc,
            t,
            n,
            "failed_attempts",
            v.failed_attempts as f64,
            "attempts",
        ),
        Row::new(
            sc,
            t,
            n,
            "requests_accepted",
            v.accepted_requests as f64,
            "requests",
        ),
        Row::new(
            sc,
            t,
            n,
            "requests_rejected",
            outcome.rejected as f64,
            "requests",
        ),
        Row::new(
            sc,
            t,
            n,
            "pushes_accepted",
            v.accepted_pairs as f64,
            "pushes",
        ),
        Row::new(
            sc,
            t,
            n,
            "pushes_delivered",
            v.delivered_pairs as f64,
            "pushes",
        ),
        Row::new(sc, t, n, "delivered", delivered, "%"),
        Row::new(sc, t, n, "duplicates", v.duplicates as f64, "pushes"),
        Row::new(sc, t, n, "out_of_order", v.out_of_order as f64, "pushes"),
        Row::new(sc, t, n, "gaps", v.gaps as f64, "seqs"),
        Row::new(sc, t, n, "resyncs", v.resyncs as f64, "events"),
        Row::new(sc, t, n, "replayed", v.replayed as f64, "pushes"),
        Row::new(sc, t, n, "unlogged", v.unlogged as f64, "pushes"),
        Row::new(sc, t, n, "unexpected", v.unexpected as f64, "pushes"),
        Row::new(sc, t, n, "drain_time", drained.as_secs_f64(), "s"),
        Row::new(sc, t, n, "p50", lat.p50_ms, "ms"),
        Row::new(sc, t, n, "p99", lat.p99_ms, "ms"),
        Row::new(sc, t, n, "max", lat.max_ms, "ms"),
        Row::new(sc, t, n, "api_push_p99", http.p99_ms, "ms"),
    ])
}

// ---------------------------------------------------------------- avalanche

/// Every client of node A (as many as one process may hold here) loses it
/// at once (SIGKILL) and reconnects to node B with socket.io-client's
/// default backoff, resuming with `since`, while pushes to all of them
/// keep going to node B.
pub async fn avalanche(s: &Settings, target: Target, requested: usize) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        eprintln!(
            "  avalanche: runs on two Tidings nodes only; skipped for {}",
            target.name()
        );
        return Ok(Vec::new());
    }
    let n = requested.min(socket_capacity()).max(2);
    if n < requested {
        eprintln!(
            "  avalanche: {requested} clients asked for; this process may hold {n} sockets \
             (RLIMIT_NOFILE hard limit less 500 for other files)"
        );
    }
    let mut d = deploy(s, target, n, 2).await?;
    let result = avalanche_run(s, &mut d, n, requested, Departure::Kill).await;
    d.teardown(s).await;
    result
}

/// How node A goes away in [`avalanche_run`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// SIGKILL; its clients reconnect to node B.
    Kill,
    /// SIGTERM: the node drains (readiness off, clients' transports cut
    /// one after another over its `--drain-window-secs`); its clients
    /// reconnect alternately to node B and node C.
    Drain,
}

/// `drain`: SIGTERM on one of three nodes holding `requested` clients (capped like
/// [`avalanche`]): when each client is let go (from SIGTERM), how soon it
/// is back signed in on another node, and what it lost.
pub async fn sigterm(s: &Settings, target: Target, requested: usize) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        eprintln!(
            "  drain: runs on three Tidings nodes only; skipped for {}",
            target.name()
        );
        return Ok(Vec::new());
    }
    let n = requested.min(socket_capacity()).max(2);
    if n < requested {
        eprintln!("  drain: {requested} clients asked for; this process may hold {n} sockets");
    }
    let mut d = deploy(s, target, n, 3).await?;
    let result = avalanche_run(s, &mut d, n, requested, Departure::Drain).await;
    d.teardown(s).await;
    result
}

async fn avalanche_run(
    s: &Settings,
    d: &mut Deployment,
    n: usize,
    requested: usize,
    departure: Departure,
) -> Result<Vec<Row>> {
    let c = &s.durable;
    let sc = match departure {
        Departure::Kill => "avalanche",
        Departure::Drain => "drain",
    };
    let (a, b) = (d.servers[0].addr, d.servers[1].addr);
    // Where a client of A goes next: B, or B and C in turn when there are
    // three nodes.
    let other = d.servers.get(2).map_or(b, |server| server.addr);
    // From SIGTERM (or SIGKILL) to each client's connection ending.
    let left = Arc::new(Latencies::new());
    let shared = Arc::new(Shared::default());
    let reauth = Arc::new(Latencies::new());
    let (done_tx, done_rx) = watch::channel(false);
    // Set when node A is killed: `now_ns` then.
    let (kill_tx, kill_rx) = watch::channel::<Option<u64>>(None);
    let authed = Arc::new(AtomicUsize::new(0));
    let reauthed = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(s.concurrency.max(1)));
    let on_a: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let user = d.users[i].id.clone();
        let flags = on_a.clone();
        let (shared, authed, reauthed, gate, reauth) = (
            shared.clone(),
            authed.clone(),
            reauthed.clone(),
            gate.clone(),
            reauth.clone(),
        );
        let (mut done, kill) = (done_rx.clone(), kill_rx.clone());
        let limit = s.phase_limit;
        let left = left.clone();
        let to = if i % 2 == 0 { b } else { other };
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(i as u64);
            let mut tally = Tally::default();
            let source = sio::source_addr(i);
            // On node A until it dies (retrying the setup until then).
            let mut permit = gate.acquire_owned().await.ok();
            let mut was_on_a = false;
            while kill.borrow().is_none() {
                let mut on_auth = || {
                    if permit.take().is_some() {
                        flags[i].store(true, Ordering::Relaxed);
                        authed.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let end = durable::span(
                    a,
                    source,
                    &user,
                    &mut tally,
                    &shared,
                    &mut on_auth,
                    std::future::pending(),
                    limit,
                    &mut done,
                )
                .await;
                match end {
                    SpanEnd::Done => return tally,
                    SpanEnd::Lost => {
                        if let Some(at) = *kill.borrow() {
                            left.record(at, now_ns());
                        }
                        was_on_a = true;
                        break;
                    }
                    SpanEnd::ClosedByClient | SpanEnd::Failed(_) => {
                        if !pause(Duration::from_secs(1), &mut done).await {
                            return tally;
                        }
                    }
                }
            }
            if !was_on_a {
                // Never connected to A before it was killed: not part of
                // the avalanche (not counted as connected).
                return tally;
            }
            // The avalanche: socket.io-client's reconnection to B.
            let mut backoff = Backoff::default();
            let mut counted = false;
            loop {
                if !pause(backoff.next(&mut rng), &mut done).await {
                    return tally;
                }
                let killed_at = (*kill.borrow()).unwrap_or_else(now_ns);
                let mut on_auth = || {
                    if !counted {
                        counted = true;
                        reauth.record(killed_at, now_ns());
                        reauthed.fetch_add(1, Ordering::Relaxed);
                    }
                };
                let end = durable::span(
                    to,
                    source,
                    &user,
                    &mut tally,
                    &shared,
                    &mut on_auth,
                    std::future::pending(),
                    limit,
                    &mut done,
                )
                .await;
                if end == SpanEnd::Done {
                    return tally;
                }
            }
        }));
    }
    let progress = Progress::start("avalanche setup".into(), n, authed.clone(), failed.clone());
    let setup = Instant::now();
    while authed.load(Ordering::Relaxed) < n && setup.elapsed() < s.phase_limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(progress);
    let connected = authed.load(Ordering::Relaxed);
    let setup_secs = setup.elapsed().as_secs_f64();
    eprintln!("  [avalanche] {connected}/{n} authenticated on node A in {setup_secs:.1} s");
    if connected == 0 {
        let _ = done_tx.send(true);
        collect(tasks).await;
        bail!("no client authenticated on node A");
    }
    // Pushes go to the clients that are on A (a client that never got in
    // cannot be owed anything).
    let users = d
        .users
        .iter()
        .take(n)
        .enumerate()
        .filter(|(i, _)| on_a[*i].load(Ordering::Relaxed))
        .map(|(i, u)| (i, u.id.clone()))
        .collect();
    let hard_stop = Instant::now() + s.phase_limit + Duration::from_secs(60);
    let pusher = Pusher::start(vec![b], users, c.push_rate, c.batch, hard_stop)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_b_before = d.servers[1].rss_kb();
    let kill_ns = now_ns();
    let _ = kill_tx.send(Some(kill_ns));
    match departure {
        Departure::Kill => {
            d.servers[0].kill().await;
            eprintln!("  [avalanche] node A killed; {connected} clients reconnect to node B");
        }
        Departure::Drain => {
            d.servers[0].terminate()?;
            eprintln!("  [drain] SIGTERM to node A; {connected} clients move to nodes B and C");
        }
    }
    let storm = Instant::now();
    let progress = Progress::start(
        format!("{sc} re-auth"),
        connected,
        reauthed.clone(),
        failed.clone(),
    );
    let mut peak_kb = rss_b_before;
    while reauthed.load(Ordering::Relaxed) < connected && storm.elapsed() < s.phase_limit {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_kb = peak_kb.max(d.servers[1].rss_kb());
    }
    drop(progress);
    let all_in_ns = reauth.last_ns();
    let back = reauthed.load(Ordering::Relaxed);
    let all_in = if back >= connected {
        all_in_ns.saturating_sub(kill_ns) as f64 / 1e9
    } else {
        f64::NAN
    };
    eprintln!(
        "  [{sc}] {back}/{connected} re-authenticated elsewhere after {:.1} s",
        storm.elapsed().as_secs_f64()
    );
    let exited = match departure {
        Departure::Kill => None,
        Departure::Drain => d.servers[0].wait_exit(Duration::from_secs(60)).await,
    };
    // A few more seconds of pushes to settled clients, then drain.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak_kb = peak_kb.max(d.servers[1].rss_kb());
    }
    let pairs = pusher.accepted_pairs.clone();
    let outcome = pusher.finish().await?;
    let drained = drain(
        &shared.unique,
        pairs.load(Ordering::Relaxed),
        Duration::from_secs(15),
        Duration::from_secs(90),
    )
    .await;
    peak_kb = peak_kb.max(d.servers[1].rss_kb());
    let _ = done_tx.send(true);
    let tallies = collect(tasks).await;
    let v = verdict(&outcome, &tallies);
    let storm_end = if back >= connected {
        all_in_ns
    } else {
        now_ns()
    };
    let in_storm = outcome
        .accepted
        .iter()
        .filter(|p| p.at_ns >= kill_ns && p.at_ns <= storm_end)
        .map(|p| p.users.len() as u64)
        .sum::<u64>();
    let lost_in_storm = v
        .missing_at_ns
        .iter()
        .filter(|&&at| at >= kill_ns && at <= storm_end)
        .count();
    let lost = v.accepted_pairs - v.delivered_pairs;
    let r = reauth.summary();
    eprintln!(
        "  [{sc}] all in {all_in:.1} s, p99 {:.0} ms; {lost} of {} pushes lost ({lost_in_storm} of {in_storm} during the storm); {} duplicates, {} out of order, {} resyncs; peak RSS B {:.0} MiB",
        r.p99_ms, v.accepted_pairs, v.duplicates, v.out_of_order, v.resyncs, peak_kb as f64 / 1024.0
    );
    let gone = left.summary();
    if departure == Departure::Drain {
        eprintln!(
            "  [drain] clients let go from SIGTERM: p50 {:.0} ms, p99 {:.0} ms, last {:.0} ms ({} of them); node A exited: {exited:?}",
            gone.p50_ms, gone.p99_ms, gone.max_ms, gone.count
        );
    }
    let t = "tidings";
    let mut rows = vec![
        Row::new(sc, t, n, "left_p50", gone.p50_ms, "ms"),
        Row::new(sc, t, n, "left_p99", gone.p99_ms, "ms"),
        Row::new(sc, t, n, "left_last", gone.max_ms, "ms"),
    ];
    if let Some(code) = exited {
        rows.push(Row::new(sc, t, n, "exit_code", f64::from(code), "code"));
    }
    rows.extend([
        Row::new(sc, t, n, "requested", requested as f64, "clients"),
        Row::new(sc, t, n, "connected", connected as f64, "clients"),
        Row::new(sc, t, n, "setup_time", setup_secs, "s"),
        Row::new(sc, t, n, "reauthenticated", back as f64, "clients"),
        Row::new(sc, t, n, "all_in", all_in, "s"),
        Row::new(sc, t, n, "auth_p50", r.p50_ms, "ms"),
        Row::new(sc, t, n, "auth_p99", r.p99_ms, "ms"),
        Row::new(
            sc,
            t,
            n,
            "failed_attempts",
            v.failed_attempts as f64,
            "attempts",
        ),
        Row::new(
            sc,
            t,
            n,
            "pushes_accepted",
            v.accepted_pairs as f64,
            "pushes",
        ),
        Row::new(sc, t, n, "pushes_lost", lost as f64, "pushes"),
        Row::new(sc, t, n, "storm_pushes", in_storm as f64, "pushes"),
        Row::new(
            sc,
            t,
            n,
            "storm_pushes_lost",
            lost_in_storm as f64,
            "pushes",
        ),
        Row::new(sc, t, n, "duplicates", v.duplicates as f64, "pushes"),
        Row::new(sc, t, n, "out_of_order", v.out_of_order as f64, "pushes"),
        Row::new(sc, t, n, "resyncs", v.resyncs as f64, "events"),
        Row::new(sc, t, n, "replayed", v.replayed as f64, "pushes"),
        Row::new(
            sc,
            t,
            n,
            "rss_b_before",
            rss_b_before as f64 / 1024.0,
            "MiB",
        ),
        Row::new(sc, t, n, "rss_b_peak", peak_kb as f64 / 1024.0, "MiB"),
        Row::new(sc, t, n, "drain_time", drained.as_secs_f64(), "s"),
        Row::new(
            sc,
            t,
            n,
            "requests_rejected",
            outcome.rejected as f64,
            "requests",
        ),
    ]);
    Ok(rows)
}

// ---------------------------------------------------------------- log cost

/// A typical durable push: a chat message as `chatroom` carries it.
fn typical_payload(k: u64) -> Value {
    json!({
        "chatroomId": "0193a5c2-7f4e-7c1a-9d2b-3e4f5a6b7c8d",
        "message": {
            "id": format!("0193a5c2-8a00-7000-8000-{k:012}"),
            "senderId": "0193a5c2-7f4e-7c1a-9d2b-111122223333",
            "content": "On my way, see you at the station in ten minutes!",
            "createdAt": 1_764_567_890_123u64 + k,
        }
    })
}

/// Bytes per retained push in Redis: `users` users get pushes of a typical
/// payload through `POST /api/push` (100 users a request) until each holds
/// `depth` entries, for each depth of `s.durable.log_depths`; then the
/// `MEMORY USAGE` (exact: `SAMPLES 0`) of every `:log` stream and `:seq`
/// counter of the run's prefix, divided by the pushes held.
pub async fn log_cost(s: &Settings, target: Target, users: usize) -> Result<Vec<Row>> {
    if target != Target::Tidings {
        eprintln!("  log-cost: Tidings only; skipped for {}", target.name());
        return Ok(Vec::new());
    }
    let users = users.max(1);
    let d = deploy(s, target, users, 2).await?;
    let result = log_cost_run(s, &d, users).await;
    d.teardown(s).await;
    result
}

async fn log_cost_run(s: &Settings, d: &Deployment, n: usize) -> Result<Vec<Row>> {
    let prefix = d
        .redis_prefix
        .clone()
        .context("a cluster has a Redis prefix")?;
    let redis = redis::Client::open(s.redis_url.as_str())?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    let http = reqwest::Client::new();
    let ids: Vec<&str> = d.users.iter().map(|u| u.id.as_str()).collect();
    let payload_bytes = typical_payload(0).to_string().len();
    let mut rows = Vec::new();
    let mut held = 0u64;
    let mut k = 0u64;
    let max_events = 1000;
    for &depth in &s.durable.log_depths {
        let depth = u64::from(depth).min(max_events);
        let started = Instant::now();
        while held < depth {
            for chunk in ids.chunks(100) {
                k += 1;
                let body =
                    json!({ "users": chunk, "event": "chatroom-like", "data": typical_payload(k) });
                let r = tokio::time::timeout(
                    sio::STEP,
                    http.post(format!("http://{}/api/push", d.http))
                        .bearer_auth(API_KEY)
                        .json(&body)
                        .send(),
                )
                .await
                .context("push timed out")??;
                if r.status().as_u16() != 202 {
                    bail!("push refused: {}", r.status());
                }
            }
            held += 1;
        }
        let pushed_in = started.elapsed();
        if pushed_in > Duration::from_secs(100) {
            eprintln!("  log-cost: pushing took {pushed_in:?}, close to the 120 s window");
        }
        let (log_bytes, log_keys) = memory_of(&mut conn, &format!("{prefix}:{{u:*}}:log")).await?;
        let (seq_bytes, seq_keys) = memory_of(&mut conn, &format!("{prefix}:{{u:*}}:seq")).await?;
        let pushes = held * n as u64;
        let sc = format!("log-cost-{depth}");
        eprintln!(
            "  [log-cost] {depth} per user, {n} users: {log_keys} streams {log_bytes} B, {seq_keys} counters {seq_bytes} B: {:.0} B per push",
            (log_bytes + seq_bytes) as f64 / pushes as f64
        );
        let t = "tidings";
        rows.push(Row::new(&sc, t, n, "pushes_held", pushes as f64, "pushes"));
        rows.push(Row::new(&sc, t, n, "payload", payload_bytes as f64, "B"));
        rows.push(Row::new(&sc, t, n, "log_keys", log_keys as f64, "keys"));
        rows.push(Row::new(
            &sc,
            t,
            n,
            "log_per_push",
            log_bytes as f64 / pushes as f64,
            "B",
        ));
        rows.push(Row::new(
            &sc,
            t,
            n,
            "seq_per_user",
            seq_bytes as f64 / seq_keys.max(1) as f64,
            "B",
        ));
        rows.push(Row::new(
            &sc,
            t,
            n,
            "bytes_per_push",
            (log_bytes + seq_bytes) as f64 / pushes as f64,
            "B",
        ));
    }
    Ok(rows)
}

/// Sum of `MEMORY USAGE <key> SAMPLES 0` over the keys matching `pattern`,
/// and how many there were.
async fn memory_of(
    conn: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Result<(u64, u64)> {
    let mut cursor = 0u64;
    let (mut bytes, mut keys) = (0u64, 0u64);
    let started = Instant::now();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for key in batch {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .arg("SAMPLES")
                .arg(0)
                .query_async(conn)
                .await?;
            bytes += used.unwrap_or(0);
            keys += 1;
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("SCAN of {pattern} took over 300 s");
        }
    }
    Ok((bytes, keys))
}
