//! Periodic work that may not take more than its share of the time.
//!
//! Why: reaping, vacuuming and claims from the front of the queue cost
//! little while vacuum keeps the tables clean, and grow with every dead row
//! version while a long transaction holds vacuum back. Done at a fixed
//! period, they would then take all of a node's time (and the database's)
//! exactly when it has least to spare. Paced, each waits its period or a
//! multiple of what it last cost, whichever is longer.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    every: Duration,
    /// The work takes at most one part in this many of the time.
    share: u32,
    last: Instant,
    cost: Duration,
}

impl Pace {
    /// Work due every `every`, and taking at most `1 / share` of the time.
    /// The first is due after `first`.
    pub(crate) fn new(every: Duration, share: u32, first: Duration) -> Pace {
        let now = Instant::now();
        Pace {
            every,
            share,
            last: now.checked_sub(every.saturating_sub(first)).unwrap_or(now),
            cost: Duration::ZERO,
        }
    }

    /// How long the pause after the last one is.
    pub(crate) fn pause(&self) -> Duration {
        self.every.max(self.cost * self.share)
    }

    pub(crate) fn is_due(&self) -> bool {
        self.last.elapsed() >= self.pause()
    }

    /// How long until it is due: zero if it is.
    pub(crate) fn until_due(&self) -> Duration {
        self.pause().saturating_sub(self.last.elapsed())
    }

    /// The work was done now, after `started`.
    pub(crate) fn done(&mut self, started: Instant) {
        self.last = Instant::now();
        self.cost = self.last - started;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costly_work_waits_longer() {
        let mut pace = Pace::new(Duration::from_millis(250), 20, Duration::ZERO);
        assert!(pace.is_due(), "the first is due at once");
        let started = Instant::now() - Duration::from_millis(100);
        pace.done(started);
        assert!(pace.pause() >= Duration::from_secs(2), "{:?}", pace.pause());
        assert!(!pace.is_due());
        pace.done(Instant::now());
        assert_eq!(pace.pause(), Duration::from_millis(250));
    }
}
