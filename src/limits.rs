//! Rates and failure counts (§6.5): how many events a socket may send per
//! second, how many mutations a user may run, and how many failed
//! authentications an address or a target user may collect.
//!
//! Small enough to write out rather than pull in a framework, and their
//! exact semantics matter: buckets refill continuously, and the failure
//! ledger can be *asked* whether an attempt would be blocked without
//! spending anything (so a blocked attempt is refused before any argon2
//! work is done for it). Every method that reads the clock has an `_at`
//! twin taking `now`, so refill and expiry are unit-tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A token bucket: `burst` tokens, refilled at `per_second`.
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<Tokens>,
}

#[derive(Clone, Copy)]
struct Tokens {
    left: f64,
    at: Instant,
}

impl Tokens {
    fn refilled(self, now: Instant, per_second: f64, burst: f64) -> Self {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        Self {
            left: (self.left + elapsed * per_second).min(burst),
            at: now.max(self.at),
        }
    }
}

impl TokenBucket {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self::new_at(f64::from(per_second), burst, Instant::now())
    }

    /// A bucket refilling at a fractional rate (e.g. per minute / 60), full
    /// at `now`.
    pub fn new_at(per_second: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            state: Mutex::new(Tokens {
                left: f64::from(burst),
                at: now,
            }),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    pub fn try_take_at(&self, now: Instant) -> bool {
        self.take_at(1, now).is_ok()
    }

    /// Takes `n` tokens if there are that many; otherwise takes nothing and
    /// says how long until there will be (never for more than the burst).
    pub fn take_at(&self, n: u32, now: Instant) -> Result<(), Option<Duration>> {
        let n = f64::from(n);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = state.refilled(now, self.per_second, self.burst);
        *state = tokens;
        if tokens.left >= n {
            state.left -= n;
            return Ok(());
        }
        if n > self.burst || self.per_second <= 0.0 {
            return Err(None);
        }
        Err(Some(Duration::from_secs_f64(
            (n - tokens.left) / self.per_second,
        )))
    }

    /// Whether the bucket is full at `now` (it can then be forgotten).
    fn is_full_at(&self, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.refilled(now, self.per_second, self.burst).left >= self.burst
    }
}

/// One token bucket per key (a user), created full on first use. Full
/// buckets are forgotten when the map grows, so it holds only keys that
/// were busy lately.
pub struct KeyedBuckets<K> {
    per_second: f64,
    burst: u32,
    buckets: Mutex<HashMap<K, TokenBucket>>,
}

impl<K: Hash + Eq + Copy> KeyedBuckets<K> {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take_at(&self, key: K, n: u32, now: Instant) -> Result<(), Option<Duration>> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|_, bucket| !bucket.is_full_at(now));
        }
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new_at(self.per_second, self.burst, now))
            .take_at(n, now)
    }
}

/// Failed authentications within a window, per key.
struct Counts<K> {
    max: u32,
    window: Duration,
    entries: HashMap<K, (Instant, u32)>,
}

impl<K: Hash + Eq> Counts<K> {
    fn is_blocked_at(&self, key: &K, now: Instant) -> bool {
        self.entries.get(key).is_some_and(|(since, count)| {
            now.saturating_duration_since(*since) < self.window && *count >= self.max
        })
    }

    fn record_at(&mut self, key: K, now: Instant) {
        let window = self.window;
        if self.entries.len() > SWEEP_ABOVE {
            self.entries
                .retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
        }
        let entry = self.entries.entry(key).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// The one ledger of failed authentications, for every path that checks a
/// credential (Socket.IO handshake and `initialConnection`, GraphQL Basic
/// and cookies): per client address, and per user the attempt was for, so
/// neither many guesses from one address nor guesses at one user from many
/// addresses get unlimited argon2 verifications.
pub struct FailureLedger {
    addresses: Mutex<Counts<IpAddr>>,
    users: Mutex<Counts<Uuid>>,
}

/// Past this many keys, expired (or full) entries are swept on the next write.
const SWEEP_ABOVE: usize = 10_000;

impl FailureLedger {
    pub fn new(max_per_address: u32, max_per_user: u32, window: Duration) -> Self {
        Self {
            addresses: Mutex::new(Counts {
                max: max_per_address,
                window,
                entries: HashMap::new(),
            }),
            users: Mutex::new(Counts {
                max: max_per_user,
                window,
                entries: HashMap::new(),
            }),
        }
    }

    pub fn is_blocked(&self, addr: IpAddr) -> bool {
        self.address_blocked_at(addr, Instant::now())
    }

    pub fn address_blocked_at(&self, addr: IpAddr, now: Instant) -> bool {
        let addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
        addresses.is_blocked_at(&addr, now)
    }

    pub fn user_blocked_at(&self, user: Uuid, now: Instant) -> bool {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.is_blocked_at(&user, now)
    }

    /// A failure from `addr` (if known) at `user` (if the credentials named
    /// one).
    pub fn record_failure(&self, addr: Option<IpAddr>, user: Option<Uuid>) {
        self.record_failure_at(addr, user, Instant::now());
    }

    pub fn record_failure_at(&self, addr: Option<IpAddr>, user: Option<Uuid>, now: Instant) {
        if let Some(addr) = addr {
            let mut addresses = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            addresses.record_at(addr, now);
        }
        if let Some(user) = user {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            users.record_at(user, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_bucket_allows_a_burst_then_refuses() {
        let bucket = TokenBucket::new(1, 3);
        assert!((0..3).all(|_| bucket.try_take()));
        assert!(!bucket.try_take());
    }

    #[test]
    fn the_bucket_refills_at_its_rate_and_never_above_its_burst() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new_at(2.0, 4, t0);
        assert!((0..4).all(|_| bucket.try_take_at(t0)));
        assert!(!bucket.try_take_at(t0));
        // Half a second at 2 per second is one token.
        assert!(bucket.try_take_at(t0 + SECOND / 2));
        assert!(!bucket.try_take_at(t0 + SECOND / 2));
        // An hour later it holds the burst, not 7,200.
        let later = t0 + 3600 * SECOND;
        assert!((0..4).all(|_| bucket.try_take_at(later)));
        assert!(!bucket.try_take_at(later));
    }

    #[test]
    fn a_refused_take_says_how_long_until_it_would_succeed() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new_at(1.0 / 60.0, 2, t0); // 1 per minute
        assert_eq!(bucket.take_at(2, t0), Ok(()));
        let wait = bucket.take_at(1, t0).expect_err("empty").expect("a wait");
        assert!(wait > 59 * SECOND && wait <= 60 * SECOND, "{wait:?}");
        assert_eq!(
            bucket.take_at(3, t0),
            Err(None),
            "more than the burst never fits"
        );
        assert_eq!(bucket.take_at(1, t0 + 60 * SECOND), Ok(()));
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_refill_or_panic() {
        let t0 = Instant::now() + 10 * SECOND;
        let bucket = TokenBucket::new_at(1.0, 1, t0);
        assert!(bucket.try_take_at(t0));
        assert!(!bucket.try_take_at(t0 - 5 * SECOND));
    }

    #[test]
    fn keyed_buckets_are_separate_per_key() {
        let t0 = Instant::now();
        let buckets = KeyedBuckets::new(1.0, 1);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(buckets.take_at(a, 1, t0).is_ok());
        assert!(buckets.take_at(a, 1, t0).is_err());
        assert!(buckets.take_at(b, 1, t0).is_ok());
        assert!(buckets.take_at(a, 1, t0 + SECOND).is_ok());
    }

    #[test]
    fn an_address_is_blocked_after_max_failures_until_the_window_passes() {
        let t0 = Instant::now();
        let ledger = FailureLedger::new(2, 100, 60 * SECOND);
        let addr: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        ledger.record_failure_at(Some(addr), None, t0);
        assert!(!ledger.address_blocked_at(addr, t0));
        ledger.record_failure_at(Some(addr), None, t0 + SECOND);
        assert!(ledger.address_blocked_at(addr, t0 + SECOND));
        assert!(!ledger.address_blocked_at(other, t0 + SECOND));
        assert!(ledger.address_blocked_at(addr, t0 + 59 * SECOND));
        assert!(
            !ledger.address_blocked_at(addr, t0 + 60 * SECOND),
            "an expired window forgets"
        );
        ledger.record_failure_at(Some(addr), None, t0 + 61 * SECOND);
        assert!(
            !ledger.address_blocked_at(addr, t0 + 61 * SECOND),
            "a new window starts from zero"
        );
    }

    #[test]
    fn a_user_is_blocked_after_max_failures_from_any_addresses() {
        let t0 = Instant::now();
        let ledger = FailureLedger::new(100, 3, 60 * SECOND);
        let user = Uuid::now_v7();
        for n in 0..3u8 {
            assert!(!ledger.user_blocked_at(user, t0));
            ledger.record_failure_at(Some([10, 0, 0, n].into()), Some(user), t0);
        }
        assert!(ledger.user_blocked_at(user, t0));
        assert!(!ledger.user_blocked_at(Uuid::now_v7(), t0));
        assert!(!ledger.address_blocked_at([10, 0, 0, 0].into(), t0));
        assert!(!ledger.user_blocked_at(user, t0 + 60 * SECOND));
    }
}
