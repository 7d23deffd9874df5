//! What an operator watches, served at `GET /metrics` (OpenMetrics text,
//! which Prometheus reads), through `prometheus-client`.
//!
//! One struct of handles, so a call site stays one line
//! (`app.metrics().relay_stale_dropped.inc()`), and each handle is an
//! atomic: counting costs no lock on the hot path. Labels are bounded
//! enums (a transport, an outcome), never a user id or anything else a
//! client chooses. The socket gauges are counted when scraped, from the
//! sockets themselves (`SocketCensus`), not kept up to date per event: a
//! polling socket that upgrades to WebSocket, or one unbound by
//! `rotateSecret` on another node, is then counted right without a hook in
//! every place that changes it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of what `render` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)] // label values are written as spelled here
pub enum Transport {
    polling,
    websocket,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

/// How an authentication attempt that reached the authenticator ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum AuthOutcome {
    /// The secret matched.
    ok,
    /// Unknown user or wrong secret.
    wrong,
    /// The database could not be asked, or hashing failed.
    unavailable,
    /// Refused without verifying: too many failures from the address or
    /// for the user.
    blocked,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: AuthOutcome,
}

/// What a push was, as a bounded label: events named by backends are
/// theirs to choose, so they count under their source, not their name.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PushKind {
    Followed,
    chatroom,
    updatedChat,
    /// Another event a GraphQL mutation pushed.
    graphql_other,
    /// `POST /api/push`.
    api,
    /// The `BackgroundPush` Redis channel.
    background,
    /// A user going online or offline, to their followers.
    presence,
}

impl PushKind {
    /// The kind of an event a GraphQL mutation pushed.
    pub fn of_graphql_event(event: &str) -> Self {
        match event {
            "Followed" => Self::Followed,
            "chatroom" => Self::chatroom,
            "updatedChat" => Self::updatedChat,
            _ => Self::graphql_other,
        }
    }
}

const PUSH_KINDS: [PushKind; 7] = [
    PushKind::Followed,
    PushKind::chatroom,
    PushKind::updatedChat,
    PushKind::graphql_other,
    PushKind::api,
    PushKind::background,
    PushKind::presence,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: PushKind,
}

/// Local sockets at the moment of a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketCensus {
    pub polling: i64,
    pub websocket: i64,
    pub authenticated: i64,
    /// Distinct users bound to those sockets.
    pub users: i64,
    /// Distinct rooms they are in (each socket's own room excluded).
    pub rooms: i64,
}

type Census = Box<dyn Fn() -> SocketCensus + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    census: OnceLock<Census>,
    pub background_push_received: Counter,
    pub background_push_rejected: Counter,
    pub api_push_accepted: Counter,
    pub api_push_rejected: Counter,
    pub relay_stale_dropped: Counter,
    /// Events refused by a socket's event rate limit.
    pub rate_limited: Counter,
    pub pushes_logged: Counter,
    pub pushes_not_logged: Counter,
    pub pushes_replayed: Counter,
    pub resyncs: Counter,
    pub origin_refused: Counter,
    pub argon2_verifications: Counter,
    pub shared_verification_hits: Counter,
    pub auth_refused_unverified: Counter,

    /// Time from credentials to a verdict (database, cache, argon2).
    pub auth_latency: Histogram,
    /// Time an argon2 verification or hash waited for a slot.
    pub argon2_queue_wait: Histogram,
    /// Time one push spent in the push service (to every node's sockets).
    pub push_latency: Histogram,
    auth_outcomes: Family<OutcomeLabel, Counter>,
    pushes: Family<KindLabel, Counter>,
    connections: Family<TransportLabel, Gauge>,
    authenticated_sockets: Gauge,
    online_users: Gauge,
    rooms: Gauge,
    alive_tasks: Gauge,
    /// The push latency histogram's sum and count, readable for the
    /// operator view (prometheus-client keeps its own private).
    push_latency_micros: AtomicU64,
    pushes_timed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let background_push_received = counter(
            &mut registry,
            "tidings_background_push_received",
            "BackgroundPush messages received",
        );
        let background_push_rejected = counter(
            &mut registry,
            "tidings_background_push_rejected",
            "BackgroundPush messages rejected as malformed",
        );
        let api_push_accepted = counter(
            &mut registry,
            "tidings_api_push_accepted",
            "POST /api/push requests accepted",
        );
        let api_push_rejected = counter(
            &mut registry,
            "tidings_api_push_rejected",
            "POST /api/push requests refused",
        );
        let relay_stale_dropped = counter(
            &mut registry,
            "tidings_relay_stale_dropped",
            "in-between relay events dropped as too old or in the future",
        );
        let rate_limited = counter(
            &mut registry,
            "tidings_rate_limited_events",
            "socket events refused by the per-socket event rate limit",
        );
        // 0.25 ms to about 8 s: a cache hit is well under a millisecond,
        // argon2 at OWASP parameters tens of milliseconds, a queue behind a
        // reconnect storm seconds.
        let pushes_logged = counter(
            &mut registry,
            "tidings_pushes_logged",
            "pushes to users written to the durable log (one per user)",
        );
        let pushes_not_logged = counter(
            &mut registry,
            "tidings_pushes_not_logged",
            "pushes to users the log could not take (delivered without a seq where reachable)",
        );
        let pushes_replayed = counter(
            &mut registry,
            "tidings_pushes_replayed",
            "logged pushes sent again to a connection that resumed",
        );
        let resyncs = counter(
            &mut registry,
            "tidings_resyncs",
            "resumes that asked for more than the log still held",
        );
        let origin_refused = counter(
            &mut registry,
            "tidings_origin_refused",
            "Socket.IO requests refused with 403 because their Origin is not allowed",
        );
        let argon2_verifications = counter(
            &mut registry,
            "tidings_argon2_verifications",
            "secrets verified with argon2 (cache misses, dummy verifications of unknown users included)",
        );
        let shared_verification_hits = counter(
            &mut registry,
            "tidings_auth_shared_verification_hits",
            "secrets accepted without argon2 because another node had verified them (proof in Redis)",
        );
        let auth_refused_unverified = counter(
            &mut registry,
            "tidings_auth_refused_unverified",
            "authentication attempts refused without verifying: too many failures from the address or for the user",
        );
        let seconds = || Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let auth_latency = seconds();
        registry.register(
            "tidings_auth_latency_seconds",
            "time to verify a socket's or request's credentials",
            auth_latency.clone(),
        );
        let argon2_queue_wait = seconds();
        registry.register(
            "tidings_argon2_queue_wait_seconds",
            "time an argon2 verification or hash waited for one of the --argon2-concurrency slots",
            argon2_queue_wait.clone(),
        );
        let push_latency = seconds();
        registry.register(
            "tidings_push_latency_seconds",
            "time one push spent in the push service, delivery to every node included",
            push_latency.clone(),
        );
        let pushes = Family::<KindLabel, Counter>::default();
        for kind in PUSH_KINDS {
            drop(pushes.get_or_create(&KindLabel { kind }));
        }
        registry.register(
            "tidings_pushes",
            "pushes handed to the push service, by kind",
            pushes.clone(),
        );
        let auth_outcomes = Family::<OutcomeLabel, Counter>::default();
        for outcome in [
            AuthOutcome::ok,
            AuthOutcome::wrong,
            AuthOutcome::unavailable,
            AuthOutcome::blocked,
        ] {
            // Created at 0, so a dashboard shows every outcome from the start.
            drop(auth_outcomes.get_or_create(&OutcomeLabel { outcome }));
        }
        registry.register(
            "tidings_auth_outcomes",
            "credential verifications by outcome",
            auth_outcomes.clone(),
        );
        let connections = Family::<TransportLabel, Gauge>::default();
        registry.register(
            "tidings_connections",
            "Socket.IO connections on this node, by transport",
            connections.clone(),
        );
        let authenticated_sockets = Gauge::default();
        registry.register(
            "tidings_authenticated_sockets",
            "sockets on this node bound to a user",
            authenticated_sockets.clone(),
        );
        let online_users = Gauge::default();
        registry.register(
            "tidings_online_users",
            "distinct users with a socket on this node",
            online_users.clone(),
        );
        let rooms = Gauge::default();
        registry.register(
            "tidings_rooms",
            "distinct rooms the sockets on this node are in (their own rooms excluded)",
            rooms.clone(),
        );
        // A count that only grows under a steady load is a task leak: each
        // socket's tasks should end with it.
        let alive_tasks = Gauge::default();
        registry.register(
            "tidings_runtime_alive_tasks",
            "tokio tasks alive now",
            alive_tasks.clone(),
        );
        Self {
            registry,
            census: OnceLock::new(),
            background_push_received,
            background_push_rejected,
            api_push_accepted,
            api_push_rejected,
            relay_stale_dropped,
            rate_limited,
            pushes_logged,
            pushes_not_logged,
            pushes_replayed,
            resyncs,
            origin_refused,
            argon2_verifications,
            shared_verification_hits,
            auth_refused_unverified,
            auth_latency,
            argon2_queue_wait,
            push_latency,
            auth_outcomes,
            pushes,
            connections,
            authenticated_sockets,
            online_users,
            rooms,
            alive_tasks,
            push_latency_micros: AtomicU64::new(0),
            pushes_timed: AtomicU64::new(0),
        }
    }

    pub fn auth_outcome(&self, outcome: AuthOutcome) {
        self.auth_outcomes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts a push and the time since `started` (taken just before it
    /// was handed to the push service).
    pub fn pushed(&self, kind: PushKind, started: Instant) {
        self.pushes.get_or_create(&KindLabel { kind }).inc();
        let elapsed = started.elapsed();
        Self::observe(&self.push_latency, elapsed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.push_latency_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.pushes_timed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe(histogram: &Histogram, elapsed: Duration) {
        histogram.observe(elapsed.as_secs_f64());
    }

    /// How to count the sockets at a scrape; set once, when the Socket.IO
    /// layer exists (it is built after the state that holds this).
    pub fn set_census(&self, census: impl Fn() -> SocketCensus + Send + Sync + 'static) {
        if self.census.set(Box::new(census)).is_err() {
            tracing::warn!("socket census set twice; keeping the first");
        }
    }

    /// This node's figures for the operator view: counters as totals since
    /// start (the view turns them into rates), gauges counted now.
    pub fn snapshot(&self) -> serde_json::Value {
        let census = self.census.get().map(|census| census()).unwrap_or_default();
        let pushes: serde_json::Map<String, serde_json::Value> = PUSH_KINDS
            .iter()
            .map(|&kind| {
                let name = format!("{kind:?}");
                let count = self.pushes.get_or_create(&KindLabel { kind }).get();
                (name, count.into())
            })
            .collect();
        let outcome = |outcome| {
            self.auth_outcomes
                .get_or_create(&OutcomeLabel { outcome })
                .get()
        };
        serde_json::json!({
            "connections": { "polling": census.polling, "websocket": census.websocket },
            "authenticatedSockets": census.authenticated,
            "onlineUsers": census.users,
            "rooms": census.rooms,
            "pushes": pushes,
            "pushLatency": {
                "count": self.pushes_timed.load(Ordering::Relaxed),
                "sumMicros": self.push_latency_micros.load(Ordering::Relaxed),
            },
            "auth": {
                "ok": outcome(AuthOutcome::ok),
                "wrong": outcome(AuthOutcome::wrong),
                "unavailable": outcome(AuthOutcome::unavailable),
                "blocked": outcome(AuthOutcome::blocked),
            },
            "rateLimited": self.rate_limited.get(),
            "originRefused": self.origin_refused.get(),
            "authRefusedUnverified": self.auth_refused_unverified.get(),
            "log": {
                "logged": self.pushes_logged.get(),
                "notLogged": self.pushes_not_logged.get(),
                "replayed": self.pushes_replayed.get(),
                "resyncs": self.resyncs.get(),
            },
            "relayStaleDropped": self.relay_stale_dropped.get(),
            "apiPushRejected": self.api_push_rejected.get(),
            "backgroundPushRejected": self.background_push_rejected.get(),
        })
    }

    pub fn render(&self) -> String {
        if let Some(census) = self.census.get() {
            let now = census();
            self.online_users.set(now.users);
            self.rooms.set(now.rooms);
            for (transport, count) in [
                (Transport::polling, now.polling),
                (Transport::websocket, now.websocket),
            ] {
                self.connections
                    .get_or_create(&TransportLabel { transport })
                    .set(count);
            }
            self.authenticated_sockets.set(now.authenticated);
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            self.alive_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "could not encode metrics");
        }
        out
    }
}
