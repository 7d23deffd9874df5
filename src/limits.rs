//! Per-socket and per-address limits (§6): how many events a socket may send
//! per second, and how many failed authentications an address may make.
//!
//! Both are small enough to write out rather than pull in a framework, and
//! their exact semantics matter: the event bucket refills continuously, and
//! the failure ledger can be *asked* whether an address is blocked without
//! spending anything (so a blocked address is refused before any argon2
//! work is done for it).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled at `per_second`.
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst),
            state: Mutex::new((f64::from(burst), Instant::now())),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Failed authentications per client address within a sliding window.
pub struct FailureLedger {
    max: u32,
    window: Duration,
    entries: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Past this many addresses, expired entries are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

impl FailureLedger {
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_blocked(&self, addr: IpAddr) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&addr)
            .is_some_and(|(since, count)| since.elapsed() < self.window && *count >= self.max)
    }

    pub fn record_failure(&self, addr: IpAddr) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > SWEEP_ABOVE {
            entries.retain(|_, (since, _)| since.elapsed() < self.window);
        }
        let entry = entries.entry(addr).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refuses() {
        let bucket = TokenBucket::new(1, 3);
        assert!((0..3).all(|_| bucket.try_take()));
        assert!(!bucket.try_take());
    }

    #[test]
    fn an_address_is_blocked_after_max_failures_within_the_window() {
        let ledger = FailureLedger::new(2, Duration::from_secs(60));
        let addr: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        ledger.record_failure(addr);
        assert!(!ledger.is_blocked(addr));
        ledger.record_failure(addr);
        assert!(ledger.is_blocked(addr));
        assert!(!ledger.is_blocked(other));
        let short = FailureLedger::new(1, Duration::ZERO);
        short.record_failure(addr);
        assert!(!short.is_blocked(addr), "an expired window forgets");
    }
}
