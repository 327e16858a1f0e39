//! Where a worker's runs wait to start in this process: for a concurrency
//! slot, and while the worker is paused. Waiting runs start by priority,
//! highest first, then in the order they came (a tokio semaphore is FIFO
//! only, hence this one).
//!
//! A worker without a concurrency limit that is not paused costs one
//! atomic load per run: such a run takes no permit.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::sync::lock;

/// One worker's gate.
#[derive(Debug)]
pub(crate) struct Gate {
    /// How many runs may execute at once; `None`: no limit.
    limit: Option<usize>,
    /// How many new runs may wait; `None`: no bound.
    queue_limit: Option<usize>,
    paused: AtomicBool,
    inner: Mutex<Inner>,
}

/// Highest priority first, then first come.
type Place = (Reverse<i32>, u64);

#[derive(Debug, Default)]
struct Inner {
    /// Permits out: runs executing that took one.
    in_use: usize,
    waiting: BTreeMap<Place, Arc<Ticket>>,
    next: u64,
    /// Of `waiting`, the new runs (what `queue_limit` bounds; retries
    /// don't count).
    counted: usize,
    /// Of `waiting`, the runs already counted as running (all but jobs
    /// that haven't started): `WorkerStats::running` leaves them out.
    admitted: usize,
}

#[derive(Debug, Default)]
struct Ticket {
    granted: AtomicBool,
    waker: Mutex<Option<Waker>>,
    counted: bool,
    admitted: bool,
}

impl Inner {
    /// A ticket leaves the line (granted, or given up).
    fn leave(&mut self, ticket: &Ticket) {
        if ticket.counted {
            self.counted -= 1;
        }
        if ticket.admitted {
            self.admitted -= 1;
        }
    }
}

/// A run's claim on its gate: `None` for a run that needed no permit.
/// Boxed: every run's task carries one, and most workers have no limit.
pub(crate) type Claim = Option<Box<Slot>>;

/// A claim on a permit of a gate.
#[derive(Debug)]
pub(crate) enum Slot {
    /// The permit, held while an attempt executes.
    Held(#[expect(dead_code, reason = "held for its Drop: it gives the permit back")] Permit),
    /// Waiting for a permit.
    Waiting(Waiting),
}

/// A permit: given back to the gate on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = lock(&self.gate.inner);
        inner.in_use -= 1;
        self.gate.grant(&mut inner);
    }
}

/// A run's place in line; leaves the line on drop, however the wait ends.
#[derive(Debug)]
pub(crate) struct Waiting {
    gate: Arc<Gate>,
    place: Place,
    ticket: Arc<Ticket>,
    /// The permit was handed out by `poll`.
    taken: bool,
    /// When the wait began, for the wait percentiles.
    pub(crate) since: Instant,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let mut inner = lock(&self.gate.inner);
        if self.ticket.granted.load(Acquire) {
            // Granted but never taken: the permit goes to the next.
            inner.in_use -= 1;
            self.gate.grant(&mut inner);
        } else if inner.waiting.remove(&self.place).is_some() {
            inner.leave(&self.ticket);
        }
    }
}

impl Waiting {
    /// Ready with the permit once the gate granted it.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Permit> {
        if !self.ticket.granted.load(Acquire) {
            *lock(&self.ticket.waker) = Some(cx.waker().clone());
            // Granted between the load and storing the waker: no wake-up
            // would come.
            if !self.ticket.granted.load(Acquire) {
                return Poll::Pending;
            }
        }
        self.taken = true;
        Poll::Ready(Permit {
            gate: self.gate.clone(),
        })
    }
}

impl Gate {
    pub(crate) fn new(limit: Option<usize>, queue_limit: Option<usize>) -> Arc<Self> {
        Arc::new(Gate {
            limit,
            queue_limit,
            paused: AtomicBool::new(false),
            inner: Mutex::default(),
        })
    }

    /// A permit for a new run, or its place in line by `priority`; refused
    /// with an overload error once `queue_limit` new runs wait.
    pub(crate) fn admit(self: &Arc<Self>, worker: &str, priority: i32) -> Result<Claim> {
        self.enter(Some(worker), priority, true)
    }

    /// A permit or a place for a retry: retries don't count against
    /// `queue_limit`, which bounds new runs.
    pub(crate) fn retry(self: &Arc<Self>, priority: i32) -> Claim {
        self.enter(None, priority, true).unwrap_or_default()
    }

    /// A permit or a place for a job whose time has come: not counted as
    /// running until it starts, nor against `queue_limit` (it was accepted
    /// when it was called).
    pub(crate) fn job(self: &Arc<Self>, priority: i32) -> Claim {
        self.enter(None, priority, false).unwrap_or_default()
    }

    fn enter(
        self: &Arc<Self>,
        counted_for: Option<&str>,
        priority: i32,
        admitted: bool,
    ) -> Result<Claim> {
        if self.limit.is_none() && !self.paused.load(Acquire) {
            return Ok(None);
        }
        let mut inner = lock(&self.inner);
        let paused = self.paused.load(Acquire);
        if !paused && inner.waiting.is_empty() && self.has_room(&inner) {
            inner.in_use += 1;
            return Ok(Some(Box::new(Slot::Held(Permit { gate: self.clone() }))));
        }
        if let Some(worker) = counted_for {
            if let Some(limit) = self.queue_limit {
                if inner.counted >= limit {
                    return Err(Error::Overloaded {
                        worker: worker.to_owned(),
                        waiting: inner.counted,
                    });
                }
            }
            inner.counted += 1;
        }
        let ticket = Arc::new(Ticket {
            counted: counted_for.is_some(),
            admitted,
            ..Ticket::default()
        });
        if admitted {
            inner.admitted += 1;
        }
        let place = (Reverse(priority), inner.next);
        inner.next += 1;
        inner.waiting.insert(place, ticket.clone());
        Ok(Some(Box::new(Slot::Waiting(Waiting {
            gate: self.clone(),
            place,
            ticket,
            taken: false,
            since: crate::sync::now(),
        }))))
    }

    fn has_room(&self, inner: &Inner) -> bool {
        self.limit.is_none_or(|limit| inner.in_use < limit)
    }

    /// Hands free permits to the first in line while not paused.
    fn grant(&self, inner: &mut Inner) {
        while !self.paused.load(Acquire) && self.has_room(inner) {
            let Some((_, ticket)) = inner.waiting.pop_first() else {
                return;
            };
            inner.in_use += 1;
            inner.leave(&ticket);
            ticket.granted.store(true, Release);
            if let Some(waker) = lock(&ticket.waker).take() {
                waker.wake();
            }
        }
    }

    /// Stops or restarts handing out permits: while paused, new runs and
    /// retries wait; runs executing go on.
    pub(crate) fn set_paused(&self, paused: bool) {
        let mut inner = lock(&self.inner);
        self.paused.store(paused, Release);
        if !paused {
            self.grant(&mut inner);
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Acquire)
    }

    /// How many runs wait in line now, and how many of those are counted
    /// as running (see `Inner::admitted`).
    pub(crate) fn waiting(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        (inner.waiting.len(), inner.admitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn waiting(claim: Claim) -> Waiting {
        match claim.map(|slot| *slot) {
            Some(Slot::Waiting(waiting)) => waiting,
            _ => panic!("expected to wait"),
        }
    }

    #[test]
    fn waiting_runs_start_by_priority_then_in_order() {
        let gate = Gate::new(Some(1), None);
        let first = gate.admit("w", 0).unwrap();
        assert!(matches!(first.as_deref(), Some(Slot::Held(_))));
        let mut low = waiting(gate.admit("w", 0).unwrap());
        let mut high_a = waiting(gate.admit("w", 5).unwrap());
        let mut high_b = waiting(gate.admit("w", 5).unwrap());
        assert_eq!(gate.waiting(), (3, 3));
        drop(first);
        let a = high_a.poll(&mut noop());
        assert!(a.is_ready() && high_b.poll(&mut noop()).is_pending());
        drop(a);
        let b = high_b.poll(&mut noop());
        assert!(b.is_ready() && low.poll(&mut noop()).is_pending());
        drop(b);
        assert!(low.poll(&mut noop()).is_ready());
        assert_eq!(gate.waiting(), (0, 0));
        let _held = gate.admit("w", 0).unwrap();
        let job = gate.job(0);
        assert_eq!(
            gate.waiting(),
            (1, 0),
            "a job waiting to start is not running"
        );
        drop(job);
        assert_eq!(gate.waiting(), (0, 0));
    }

    #[test]
    fn a_paused_gate_holds_every_run_until_resumed() {
        let gate = Gate::new(None, None);
        assert!(gate.admit("w", 0).unwrap().is_none());
        gate.set_paused(true);
        let mut held = waiting(gate.admit("w", 0).unwrap());
        assert!(held.poll(&mut noop()).is_pending());
        gate.set_paused(false);
        assert!(held.poll(&mut noop()).is_ready());
    }

    #[test]
    fn a_wait_given_up_frees_its_place_and_a_granted_permit() {
        let gate = Gate::new(Some(1), Some(1));
        let held = gate.admit("w", 0).unwrap();
        let gone = gate.admit("w", 0).unwrap();
        assert!(gate.admit("w", 0).unwrap_err().is_overloaded());
        drop(gone);
        let next = waiting(gate.admit("w", 0).unwrap());
        drop(held); // granted to `next`, which never takes it
        drop(next);
        assert!(matches!(
            gate.admit("w", 0).unwrap().as_deref(),
            Some(Slot::Held(_))
        ));
    }
}
