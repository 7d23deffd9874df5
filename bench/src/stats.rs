//! Latency recording on HdrHistogram, shared between connection tasks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Latencies in microseconds, 1 µs .. 10 min, 3 significant digits.
pub struct Latencies {
    hist: Mutex<Histogram<u64>>,
    count: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latencies {
    pub fn new() -> Self {
        Self {
            hist: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            ),
            count: AtomicU64::new(0),
            first_ns: AtomicU64::new(u64::MAX),
            last_ns: AtomicU64::new(0),
        }
    }

    /// Records `received_ns - sent_ns` (both from [`crate::sio::now_ns`]).
    pub fn record(&self, sent_ns: u64, received_ns: u64) {
        let us = received_ns.saturating_sub(sent_ns) / 1000;
        if let Ok(mut h) = self.hist.lock() {
            h.saturating_record(us.max(1));
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.first_ns.fetch_min(received_ns, Ordering::Relaxed);
        self.last_ns.fetch_max(received_ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Arrival time of the last recorded sample (0 if none).
    pub fn last_ns(&self) -> u64 {
        self.last_ns.load(Ordering::Relaxed)
    }

    pub fn summary(&self) -> Summary {
        let h = match self.hist.lock() {
            Ok(h) => h.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}
