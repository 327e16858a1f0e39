//! The words every crate uses for where a run stands: [`RunState`], and
//! [`Outcome`] once it has ended. Their spellings in the database and in
//! JSON live here, in one `as_str` and one `FromStr` each; everything else
//! holds the types and spells them only at that edge.
//!
//! Neither enum is `#[non_exhaustive]`, and no code outside this module
//! matches them with a catch-all arm: a new state or outcome is a compile
//! error at every place that has to handle it.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How a run ended: each run ends exactly once, with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The worker returned `Ok`.
    Succeeded,
    /// The worker returned an error (after its retries, if any).
    Failed,
    /// The last attempt ran past its timeout.
    TimedOut,
    /// The last attempt panicked.
    Panicked,
    /// Cancelled by id, by handle or by shutdown.
    Cancelled,
    /// Durable mode: its node died or lost its lease past the backend's
    /// stall budget.
    Stalled,
}

impl Outcome {
    /// Every outcome, in the order dashboards list them.
    pub const ALL: [Outcome; 6] = [
        Outcome::Succeeded,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Panicked,
        Outcome::Cancelled,
        Outcome::Stalled,
    ];

    /// The outcome of a run that ended with `error`: the one map from
    /// errors to outcomes.
    ///
    /// ```
    /// use worker_core::{Error, Outcome};
    /// assert_eq!(Outcome::of(&Error::validation("no 'to'")), Outcome::Failed);
    /// assert_eq!(Outcome::of(&Error::from_kind("timeout", "late", "w", "r")), Outcome::TimedOut);
    /// ```
    pub fn of(error: &Error) -> Outcome {
        if error.is_timeout() {
            Outcome::TimedOut
        } else if error.is_panic() {
            Outcome::Panicked
        } else if error.is_cancelled() {
            Outcome::Cancelled
        } else if error.is_stalled() {
            Outcome::Stalled
        } else {
            Outcome::Failed
        }
    }

    /// The outcome's name in snake case, as metrics labels, JSON and the
    /// durable backend use it: `succeeded`, `failed`, `timed_out`,
    /// `panicked`, `cancelled`, `stalled`.
    ///
    /// ```
    /// use worker_core::observe::Outcome;
    /// assert_eq!(Outcome::TimedOut.as_str(), "timed_out");
    /// assert_eq!("timed_out".parse::<Outcome>(), Ok(Outcome::TimedOut));
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Panicked => "panicked",
            Outcome::Cancelled => "cancelled",
            Outcome::Stalled => "stalled",
        }
    }

    /// Whether the run failed: an error, a timeout, a panic or a stall.
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Failed | Outcome::TimedOut | Outcome::Panicked | Outcome::Stalled => true,
            Outcome::Succeeded | Outcome::Cancelled => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its [`as_str`](Outcome::as_str) spelling, so JSON views hold the type.
impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "'{text}' is not an outcome; use one of succeeded, failed, timed_out, panicked, cancelled, stalled"
                )
            })
    }
}

/// Where a run stands: waiting for a slot or a node, executing, or ended
/// with its [`Outcome`].
///
/// ```
/// use worker_core::{Outcome, RunState};
/// assert_eq!(RunState::Ended(Outcome::TimedOut).as_str(), "timed_out");
/// assert_eq!("running".parse::<RunState>(), Ok(RunState::Running));
/// assert_eq!("queued".parse::<RunState>().unwrap().outcome(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Stored or admitted, not executing yet.
    Queued,
    /// An attempt is executing.
    Running,
    /// It ended, this way.
    Ended(Outcome),
}

impl RunState {
    /// The state's name in snake case, as the durable backend stores it
    /// and JSON gives it: `queued`, `running`, or the outcome's name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Ended(outcome) => outcome.as_str(),
        }
    }

    /// How it ended; `None` while queued or running.
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            RunState::Ended(outcome) => Some(outcome),
            RunState::Queued | RunState::Running => None,
        }
    }

    /// Whether it has ended.
    pub fn is_ended(self) -> bool {
        self.outcome().is_some()
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "queued" => Ok(RunState::Queued),
            "running" => Ok(RunState::Running),
            ended => ended.parse().map(RunState::Ended).map_err(|_| {
                format!(
                    "'{text}' is not a run state; use queued, running, or an outcome: succeeded, failed, timed_out, panicked, cancelled, stalled"
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_spelling() {
        let states = [RunState::Queued, RunState::Running]
            .into_iter()
            .chain(Outcome::ALL.map(RunState::Ended));
        for state in states {
            assert_eq!(state.as_str().parse::<RunState>(), Ok(state));
        }
        assert!(
            "done"
                .parse::<RunState>()
                .unwrap_err()
                .contains("'done' is not a run state")
        );
    }

    #[test]
    fn each_error_maps_to_the_outcome_its_predicate_names() {
        let cases = [
            (
                Error::from_kind("timeout", "late", "w", "r"),
                Outcome::TimedOut,
            ),
            (
                Error::from_kind("panic", "boom", "w", "r"),
                Outcome::Panicked,
            ),
            (
                Error::from_kind("cancelled", "", "w", "r"),
                Outcome::Cancelled,
            ),
            (Error::from_kind("stalled", "3", "w", "r"), Outcome::Stalled),
            (Error::validation("bad"), Outcome::Failed),
            (Error::permanent("closed"), Outcome::Failed),
            (Error::msg("plain"), Outcome::Failed),
        ];
        for (error, outcome) in cases {
            assert_eq!(Outcome::of(&error), outcome, "{error}");
        }
    }
}
