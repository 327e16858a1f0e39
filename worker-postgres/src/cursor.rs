//! Where a node's claim starts reading the queue.
//!
//! Why: a claim reads the index of queued runs in `run_at` order, and every
//! run claimed leaves a dead entry at the front of that index. Vacuum
//! removes those entries only once no transaction could still see them, so
//! while one session sits idle in a transaction (the vacuum horizon pinned)
//! they pile up by the tens of thousands a second, and a claim that starts
//! at the front reads every one of them, every time: throughput falls to a
//! few percent. So a node remembers the latest `run_at` it claimed and
//! starts there, past the dead.
//!
//! A run queued behind that point is one whose transaction committed late:
//! it began before runs this node already claimed. Every transaction that
//! queues runs says in its notification the earliest `run_at` it can have
//! written (its own `now()`, see [`QUEUED_AT`]), and the notification is
//! delivered on commit: the cursor goes back to it. What no notification
//! covers (one lost while the listener reconnected, one from an older
//! version of this crate, a claim of another node that rolled back after
//! this one skipped its locked rows) is found by a claim from the front:
//! on those events, and otherwise every [`FULL_EVERY`], or
//! [`FULL_COST_SHARE`] times what the last one cost, whichever is longer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::pace::Pace;

/// The SQL of a notification that runs were queued: `q <now() in epoch
/// microseconds>`, a lower bound of every `run_at` the transaction wrote.
pub(crate) const QUEUED_AT: &str = "'q ' || floor(extract(epoch FROM now()) * 1000000)::int8";

/// How often a claim starts from the front when nothing asked for it.
pub(crate) const FULL_EVERY: Duration = Duration::from_secs(2);

/// At most one part in this many of the claim loop's time goes to claims
/// from the front (they get slow while the vacuum horizon is pinned).
const FULL_COST_SHARE: u32 = 20;

/// A position in the queue: a `run_at` in epoch microseconds, or the front.
pub(crate) type From = Option<i64>;

/// One node's claim cursor; shared by the listener (which rewinds it) and
/// the claim loop.
#[derive(Debug)]
pub(crate) struct Cursor {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Where the next claim reads from.
    from: From,
    /// The rewinds that arrived while a claim was out (`Some(front)` is
    /// `Some(None)`): that claim's result must not move past them.
    rewound_during: Option<From>,
    claiming: bool,
    /// Claims from the front that nothing asked for.
    full: Pace,
}

/// The earlier of two positions (the front is earliest).
fn earlier(a: From, b: From) -> From {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        _ => None,
    }
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            state: Mutex::new(State {
                from: None,
                rewound_during: None,
                claiming: false,
                full: Pace::new(FULL_EVERY, FULL_COST_SHARE, FULL_EVERY),
            }),
        }
    }
}

impl Cursor {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs were queued at or after `to` (the front: anywhere).
    pub(crate) fn rewind(&self, to: From) {
        let mut state = self.state();
        state.from = earlier(state.from, to);
        if state.claiming {
            state.rewound_during = Some(earlier(state.rewound_during.unwrap_or(to), to));
        }
    }

    /// Where the next claim reads from, as things stand.
    pub(crate) fn position(&self) -> From {
        self.state().from
    }

    /// Where the claim about to be sent reads from.
    pub(crate) fn begin(&self) -> From {
        let mut state = self.state();
        if state.full.is_due() {
            state.from = None;
        }
        state.claiming = true;
        state.rewound_during = None;
        state.from
    }

    /// The claim that read from `from`, sent at `sent`, came back with
    /// runs queued at most at `latest` (`None`: it claimed nothing, or it
    /// failed).
    pub(crate) fn end(&self, from: From, latest: Option<i64>, sent: Instant) {
        let mut state = self.state();
        if from.is_none() {
            state.full.done(sent);
        }
        let reached = match (from, latest) {
            (_, None) => from,
            (None, Some(latest)) => Some(latest),
            (Some(from), Some(latest)) => Some(from.max(latest)),
        };
        state.from = match state.rewound_during.take() {
            Some(to) => earlier(reached, to),
            None => reached,
        };
        state.claiming = false;
    }
}

/// Where a notification's payload (`q` or `q <micros>`) says runs were
/// queued: `q` alone (an older version of this crate) means anywhere.
pub(crate) fn queued_from(rest: Option<&str>) -> From {
    rest.and_then(|micros| micros.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_moves_the_cursor_to_the_latest_run_it_took() {
        let cursor = Cursor::default();
        let from = cursor.begin();
        assert_eq!(from, None, "the first claim reads from the front");
        cursor.end(from, Some(1_000), Instant::now());
        assert_eq!(cursor.begin(), Some(1_000));
        cursor.end(Some(1_000), None, Instant::now());
        assert_eq!(
            cursor.begin(),
            Some(1_000),
            "an empty claim leaves it where it was"
        );
    }

    #[test]
    fn a_late_commit_rewinds_it_also_while_a_claim_is_out() {
        let cursor = Cursor::default();
        let from = cursor.begin();
        cursor.end(from, Some(5_000), Instant::now());
        let from = cursor.begin();
        // Committed while that claim was out: its result can't skip it.
        cursor.rewind(Some(3_000));
        cursor.end(from, Some(9_000), Instant::now());
        assert_eq!(cursor.begin(), Some(3_000));
        cursor.end(Some(3_000), Some(9_000), Instant::now());
        cursor.rewind(None);
        assert_eq!(cursor.begin(), None, "a lost notification: the front");
    }

    #[test]
    fn notifications_say_where_runs_were_queued() {
        assert_eq!(
            queued_from(Some("1765000000123456")),
            Some(1_765_000_000_123_456)
        );
        assert_eq!(queued_from(None), None);
        assert_eq!(queued_from(Some("garbled")), None);
    }
}
