//! A definition: what a run reads about its worker (name, options,
//! counters, its gate, its keys in use, where it was declared). The code that runs
//! it, the [`Launcher`](crate::launch::Launcher), sits a layer up beside it
//! in the manager's registry, so that this layer needs no run or context.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::gate::Gate;
use crate::name_rule::name_problem;
use crate::options::{WorkerOptions, invalid};
use crate::run_id::RunId;
use crate::schedule::Schedule;
use crate::stats::StatsCell;

pub(crate) struct Definition {
    pub(crate) name: Box<str>,
    pub(crate) options: WorkerOptions,
    pub(crate) stats: StatsCell,
    /// When the worker runs by itself, parsed from its options.
    pub(crate) schedule: Option<Schedule>,
    /// Where its runs wait to start: for a concurrency slot, for room
    /// under its limits, or while the worker is paused.
    pub(crate) gate: Arc<Gate>,
    /// The runs with a unique key that are scheduled, queued or running
    /// in this process, by key.
    pub(crate) keys: Mutex<HashMap<Box<str>, RunId>>,
    /// `file:line` of a `#[worker]` declaration; `None` for `register`.
    pub(crate) origin: Option<String>,
    /// When its timer fires next, in ms since the Unix epoch; 0 while no
    /// timer runs.
    pub(crate) next_tick_ms: AtomicU64,
}

impl fmt::Debug for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definition")
            .field("name", &self.name)
            .field("options", &self.options)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Definition {
    pub(crate) fn new(
        name: String,
        options: WorkerOptions,
        origin: Option<String>,
    ) -> Result<Arc<Self>> {
        validate_name(&name)?;
        options.validate(&name)?;
        let schedule = Schedule::of(&options).map_err(|problem| invalid(&name, &problem))?;
        let gate = Gate::new(&options);
        Ok(Arc::new(Definition {
            name: name.into_boxed_str(),
            options,
            stats: StatsCell::default(),
            schedule,
            gate,
            keys: Mutex::default(),
            origin,
            next_tick_ms: AtomicU64::new(0),
        }))
    }

    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.options.get_timeout()
    }

    /// When its timer fires next, if one runs.
    pub(crate) fn next_tick(&self) -> Option<SystemTime> {
        match self.next_tick_ms.load(Relaxed) {
            0 => None,
            ms => Some(UNIX_EPOCH + Duration::from_millis(ms)),
        }
    }
}

/// A name given at run time, checked by the rule `#[worker]` checks at
/// compile time (see `name_rule`).
pub(crate) fn validate_name(name: &str) -> Result<()> {
    match name_problem(name) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["send-email", "a", "notify.sms", "ré-essai", "x_1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " ",
            "send email",
            "tab\there",
            "nl\n",
            "bell\u{7}",
            "nbsp\u{a0}x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
