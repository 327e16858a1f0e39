//! How many runs a node holds: its slots plus a window of runs claimed
//! ahead of them.
//!
//! Runs claimed ahead hide the pipeline's round trips: with only as many
//! runs as slots, a node executes a wave, then waits for the outbox to
//! commit the wave's endings (which is when a run stops being held) and for
//! the next claim. But each run held ahead is one that another node can't
//! take, and one that waits here. So the window follows this node's own
//! completion rate: it holds about [`HORIZON`] of work ahead, at least its
//! concurrency (short of that, a busy node claims one run per statement)
//! and at most [`MAX_AHEAD`] times it. No-op runs at thousands a second get
//! a deep window; runs of seconds get the shallow one, so a node doesn't sit
//! on slow work that idle nodes could start.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How much work, at the recent completion rate, is held ahead.
const HORIZON: Duration = Duration::from_millis(100);

/// The deepest window, as a multiple of the concurrency.
const MAX_AHEAD: usize = 31;

/// How often the completion rate is sampled.
const SAMPLE: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub(crate) struct Ahead {
    concurrency: usize,
    /// Runs let go since start.
    ended: AtomicU64,
    rate: Mutex<Rate>,
}

#[derive(Debug)]
struct Rate {
    since: Instant,
    ended_then: u64,
    /// Runs let go per second, smoothed.
    per_second: f64,
}

impl Ahead {
    pub(crate) fn new(concurrency: usize) -> Self {
        Ahead {
            concurrency,
            ended: AtomicU64::new(0),
            rate: Mutex::new(Rate {
                since: Instant::now(),
                ended_then: 0,
                per_second: 0.0,
            }),
        }
    }

    /// A held run was let go (its ending committed, or handed back).
    pub(crate) fn ended(&self) {
        self.ended.fetch_add(1, Ordering::Relaxed);
    }

    /// How many runs the node may hold now.
    pub(crate) fn hold_limit(&self) -> usize {
        let mut rate = self.rate.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = rate.since.elapsed();
        if elapsed >= SAMPLE {
            let ended = self.ended.load(Ordering::Relaxed);
            let sampled = (ended - rate.ended_then) as f64 / elapsed.as_secs_f64();
            // Rises at once (a burst needs the window now), falls by half
            // per sample (a pause between bursts shouldn't empty it).
            rate.per_second = sampled.max(rate.per_second / 2.0);
            rate.since = Instant::now();
            rate.ended_then = ended;
        }
        let ahead = (rate.per_second * HORIZON.as_secs_f64()) as usize;
        self.concurrency + ahead.clamp(self.concurrency, self.concurrency * MAX_AHEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_completion_rate_between_its_bounds() {
        let ahead = Ahead::new(32);
        assert_eq!(ahead.hold_limit(), 64, "at rest: twice the concurrency");
        {
            let mut rate = ahead.rate.lock().unwrap();
            rate.since = Instant::now() - Duration::from_secs(1);
        }
        for _ in 0..5_000 {
            ahead.ended();
        }
        // 5,000 a second: about 500 in the horizon.
        let limit = ahead.hold_limit();
        assert!((32 + 490..=32 + 500).contains(&limit), "{limit}");
        {
            let mut rate = ahead.rate.lock().unwrap();
            rate.since = Instant::now() - Duration::from_secs(1);
        }
        for _ in 0..100_000 {
            ahead.ended();
        }
        assert_eq!(ahead.hold_limit(), 32 + 32 * MAX_AHEAD, "capped");
        {
            let mut rate = ahead.rate.lock().unwrap();
            rate.since = Instant::now() - Duration::from_secs(1);
        }
        // Nothing ended for a second: the rate halves, the window stays
        // at its cap (half of ~100,000 a second is still past it).
        assert_eq!(ahead.hold_limit(), 32 + 32 * MAX_AHEAD);
        {
            let mut rate = ahead.rate.lock().unwrap();
            rate.since = Instant::now() - Duration::from_secs(1);
            rate.per_second = 2_000.0;
        }
        // Nothing again: 1,000 a second, 100 ahead.
        assert_eq!(ahead.hold_limit(), 32 + 100);
    }
}
