//! The per-connection message limit of note sync: at most `max` messages in
//! any 60 s, every message counted (before authentication too), an
//! oversize frame not (it is refused before it is counted).
//!
//! A sliding window of the arrival times of the messages admitted, so the
//! memory is at most `max` instants and "300 in 60 s" means exactly that,
//! with no burst at a fixed window's edge.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub const WINDOW: Duration = Duration::from_secs(60);

pub struct MessageWindow {
    admitted: VecDeque<Instant>,
    max: usize,
}

impl MessageWindow {
    pub fn new(max: usize) -> Self {
        Self {
            admitted: VecDeque::with_capacity(max.min(1024)),
            max,
        }
    }

    /// Counts a message arriving at `now`; false when it is over the limit
    /// (a refused message is not counted).
    pub fn admit(&mut self, now: Instant) -> bool {
        while self
            .admitted
            .front()
            .is_some_and(|at| now.duration_since(*at) >= WINDOW)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() >= self.max {
            return false;
        }
        self.admitted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_in_any_sixty_seconds() {
        let start = Instant::now();
        let mut window = MessageWindow::new(3);
        assert!(window.admit(start));
        assert!(window.admit(start + Duration::from_secs(10)));
        assert!(window.admit(start + Duration::from_secs(20)));
        assert!(!window.admit(start + Duration::from_secs(59)));
        assert!(window.admit(start + Duration::from_secs(60)));
        assert!(!window.admit(start + Duration::from_secs(61)));
    }
}
