//! Counters (and the runtime's task count) an operator watches, served at
//! `GET /metrics` in the Prometheus text format. A handful of atomics do not
//! justify a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub background_push_received: Counter,
    pub background_push_rejected: Counter,
    pub api_push_accepted: Counter,
    pub api_push_rejected: Counter,
    pub relay_stale_dropped: Counter,
    pub pushes_logged: Counter,
    pub pushes_not_logged: Counter,
    pub pushes_replayed: Counter,
    pub resyncs: Counter,
    pub origin_refused: Counter,
    pub argon2_verifications: Counter,
    pub auth_refused_unverified: Counter,
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, counter) in [
            (
                "tidings_background_push_received_total",
                "BackgroundPush messages received",
                &self.background_push_received,
            ),
            (
                "tidings_background_push_rejected_total",
                "BackgroundPush messages rejected as malformed",
                &self.background_push_rejected,
            ),
            (
                "tidings_api_push_accepted_total",
                "POST /api/push requests accepted",
                &self.api_push_accepted,
            ),
            (
                "tidings_relay_stale_dropped_total",
                "in-between relay events dropped as too old or in the future",
                &self.relay_stale_dropped,
            ),
            (
                "tidings_api_push_rejected_total",
                "POST /api/push requests refused",
                &self.api_push_rejected,
            ),
            (
                "tidings_pushes_logged_total",
                "pushes to users written to the durable log (one per user)",
                &self.pushes_logged,
            ),
            (
                "tidings_pushes_not_logged_total",
                "pushes to users the log could not take (delivered without a seq where reachable)",
                &self.pushes_not_logged,
            ),
            (
                "tidings_pushes_replayed_total",
                "logged pushes sent again to a connection that resumed",
                &self.pushes_replayed,
            ),
            (
                "tidings_resyncs_total",
                "resumes that asked for more than the log still held",
                &self.resyncs,
            ),
            (
                "tidings_origin_refused_total",
                "Socket.IO requests refused with 403 because their Origin is not allowed",
                &self.origin_refused,
            ),
            (
                "tidings_argon2_verifications_total",
                "secrets verified with argon2 (cache misses, dummy verifications of unknown users included)",
                &self.argon2_verifications,
            ),
            (
                "tidings_auth_refused_unverified_total",
                "authentication attempts refused without verifying: too many failures from the address or for the user",
                &self.auth_refused_unverified,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        // A count that only grows under a steady load is a task leak: each
        // socket's tasks should end with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let _ = writeln!(
                out,
                "# HELP tidings_runtime_alive_tasks tokio tasks alive now\n\
                 # TYPE tidings_runtime_alive_tasks gauge\n\
                 tidings_runtime_alive_tasks {}",
                runtime.metrics().num_alive_tasks()
            );
        }
        out
    }
}
