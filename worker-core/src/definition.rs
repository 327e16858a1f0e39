//! A definition: what a run reads about its worker (name, options,
//! counters, concurrency slots, where it was declared). The code that runs
//! it, the [`Launcher`](crate::launch::Launcher), sits a layer up beside it
//! in the manager's registry, so that this layer needs no run or context.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::name_rule::name_problem;
use crate::options::{WorkerOptions, invalid};
use crate::schedule::Schedule;
use crate::stats::StatsCell;

pub(crate) struct Definition {
    pub(crate) name: Box<str>,
    pub(crate) options: WorkerOptions,
    pub(crate) stats: StatsCell,
    /// When the worker runs by itself, parsed from its options.
    pub(crate) schedule: Option<Schedule>,
    /// The concurrency limit's slots; `None` without a limit.
    pub(crate) slots: Option<Arc<Slots>>,
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
        let slots = options.get_concurrency().map(|limit| {
            Arc::new(Slots {
                semaphore: Arc::new(Semaphore::new(limit)),
                waiting: AtomicUsize::new(0),
                queue_limit: options.get_queue_limit(),
            })
        });
        Ok(Arc::new(Definition {
            name: name.into_boxed_str(),
            options,
            stats: StatsCell::default(),
            schedule,
            slots,
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

/// A worker's concurrency slots: a first-in, first-out semaphore, and the
/// count of runs waiting for it that `queue_limit` bounds.
#[derive(Debug)]
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_limit: Option<usize>,
}

/// A run's claim on a concurrency slot; `None` for a worker without a
/// limit. Boxed: every run's task carries one, and most workers have no
/// limit.
pub(crate) type Claim = Option<Box<Slot>>;

/// A claim on a slot of a limited worker.
pub(crate) enum Slot {
    /// The slot, held while an attempt executes.
    Held(
        #[expect(dead_code, reason = "held for its Drop: it frees the slot")] OwnedSemaphorePermit,
    ),
    /// Waiting for a slot.
    Waiting(Waiting),
}

/// A run waiting for a slot: the pending acquisition, and its place in the
/// count `queue_limit` bounds (given back on drop, however the wait ends).
pub(crate) struct Waiting {
    acquire: Pin<Box<dyn Future<Output = Option<OwnedSemaphorePermit>> + Send>>,
    seat: Option<Arc<Slots>>,
    /// When the wait began, for the wait percentiles.
    pub(crate) since: std::time::Instant,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(slots) = self.seat.take() {
            slots.waiting.fetch_sub(1, SeqCst);
        }
    }
}

impl Waiting {
    /// Polls for the slot; `Ready(None)` only if the semaphore was closed,
    /// which never happens.
    pub(crate) fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<OwnedSemaphorePermit>> {
        self.acquire.as_mut().poll(cx)
    }
}

impl Slots {
    /// A slot for a new run, or its place in the queue; refused with an
    /// overload error once `queue_limit` runs wait.
    pub(crate) fn admit(self: &Arc<Self>, worker: &str) -> Result<Claim> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(Some(Box::new(Slot::Held(permit))));
        }
        let taken = self
            .waiting
            .fetch_update(SeqCst, SeqCst, |waiting| match self.queue_limit {
                Some(limit) if waiting >= limit => None,
                _ => Some(waiting + 1),
            });
        match taken {
            Ok(_) => Ok(self.wait(true)),
            Err(waiting) => Err(Error::Overloaded {
                worker: worker.to_owned(),
                waiting,
            }),
        }
    }

    /// A wait for a slot for a retry: retries don't count against
    /// `queue_limit`, which bounds new runs.
    pub(crate) fn retry(self: &Arc<Self>) -> Claim {
        self.wait(false)
    }

    fn wait(self: &Arc<Self>, counted: bool) -> Claim {
        let semaphore = self.semaphore.clone();
        let mut waiting = Waiting {
            acquire: Box::pin(async move { semaphore.acquire_owned().await.ok() }),
            seat: counted.then(|| self.clone()),
            since: crate::sync::now(),
        };
        // Take the place in line now, in the caller's order: an acquisition
        // joins the semaphore's queue when first polled, and the run's task
        // may be first polled much later. The run's driver polls it again
        // with its own waker.
        match waiting.poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(Some(permit)) => Some(Box::new(Slot::Held(permit))),
            // The semaphore is never closed; if it were, there would be no
            // slot to wait for (and the finished wait must not be polled).
            std::task::Poll::Ready(None) => None,
            std::task::Poll::Pending => Some(Box::new(Slot::Waiting(waiting))),
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
