//! Where a worker's runs wait to start in this process: for a concurrency
//! slot, for room under the worker's limits, and while the worker is
//! paused. Waiting runs start by priority, highest first, then in the
//! order they came (a tokio semaphore is FIFO only, hence this one);
//! among the keys of a `limit_by` worker, keys of one priority take turns
//! (see `limiter`).
//!
//! ```text
//!   call, run, call_with ─── admit ─┐ Limits::Apply(its limit key): every limit
//!   a backend's claimed run ─ admit ─┤ Limits::Claimed: `concurrency` only
//!   a job whose time came ─── job ───┤ with the job's limit key
//!   a retry, after backoff ── retry ─┘ with the run's limit key
//!                                    ▼
//!   paused? ── concurrency: a local slot, for every run
//!     ├─ waiting: the runs held by those alone
//!     └─ limiter: global_concurrency, rate; per limit key, key_concurrency
//!                 and key_rate (see `limiter`)
//!                                    │ the first of the two that may start
//!                                    ▼
//!   Permit: held while one attempt executes; its drop lets the next in
//!   timer: at most one per gate, for when only a rate window holds runs
//! ```
//!
//! A worker without limits that is not paused costs one atomic load per
//! run: such a run takes no permit. A run a backend claimed is held to the
//! local `concurrency` only: the backend's claim applied the cluster-wide
//! limits, and counting its start here again would count it twice.
//!
//! Only a running attempt holds a permit: a retry waiting out its backoff
//! holds none, and queues again (a new start for the rates) when it is
//! over. When only a rate window holds runs back, the gate's timer task
//! lets them through the moment the window has room; it holds the gate
//! weakly, and the gate's drop stops it.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::limiter::{Key, Limiter, Place, Rules};
use crate::limits::LimitUse;
use crate::options::WorkerOptions;
use crate::sync::{lock, now};

/// One worker's gate.
#[derive(Debug)]
pub(crate) struct Gate {
    /// How many runs may execute at once in this process; `None`: no limit.
    concurrency: Option<usize>,
    /// How many new runs may wait; `None`: no bound.
    queue_limit: Option<usize>,
    /// Whether the worker has limits besides `concurrency` (then
    /// `Inner::limiter` holds them).
    limited: bool,
    paused: AtomicBool,
    inner: Mutex<Inner>,
    /// The gate itself, for its timer's task, which must not keep it alive.
    me: Weak<Gate>,
}

/// Which of its worker's limits a run is held to, besides the local
/// `concurrency` and a pause.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limits<'a> {
    /// A run of this process: every limit of the worker, with the value of
    /// its `limit_by` field (`None` for a worker without `limit_by`).
    Apply(Option<&'a str>),
    /// A run a backend claimed: its claim applied the cluster-wide limits.
    Claimed,
}

#[derive(Debug, Default)]
struct Inner {
    /// Permits out: runs executing that took one.
    in_use: usize,
    /// The waiting runs held by `concurrency` and a pause alone: every run
    /// of a worker without limits, and runs a backend claimed.
    waiting: BTreeMap<Place, Arc<Ticket>>,
    /// The waiting runs held to the worker's limits, and the limits' use;
    /// `None` for a worker without limits.
    limiter: Option<Limiter<Arc<Ticket>>>,
    /// Places and turns are drawn from this, in `waiting` and the limiter
    /// alike, so that the two compare (and timer ids, to tell them apart).
    next: u64,
    /// Of the waiting runs, the new ones (what `queue_limit` bounds;
    /// retries and jobs don't count).
    counted: usize,
    /// Of the waiting runs, those already counted as running (all but jobs
    /// that haven't started): `WorkerStats::running` leaves them out.
    admitted: usize,
    /// The task that lets runs through when a rate window has room.
    timer: Option<Timer>,
    /// The runtime the last limited run waited in: where the timer goes
    /// when the gate is let go of outside one.
    runtime: Option<Handle>,
}

/// The gate's one armed timer.
#[derive(Debug)]
struct Timer {
    at: Instant,
    /// Tells this timer from the one that replaced it.
    id: u64,
    task: AbortHandle,
}

#[derive(Debug, Default)]
struct Ticket {
    granted: AtomicBool,
    waker: Mutex<Option<Waker>>,
    counted: bool,
    admitted: bool,
    bound: Bound,
}

/// What a permit (or a place in line) counts against besides
/// `concurrency`.
#[derive(Debug, Clone, Default)]
enum Bound {
    /// Nothing else: a worker without limits, or a backend's run.
    #[default]
    Local,
    /// The worker's limits, as a run of this key (`None`: no `limit_by`).
    Limits(Option<Key>),
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
    bound: Bound,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = lock(&self.gate.inner);
        release(&mut inner, &self.bound);
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
            // Granted but never taken: the permit goes to the next (its
            // start stays counted in the rate windows: it was let through).
            release(&mut inner, &self.ticket.bound);
            self.gate.grant(&mut inner);
            return;
        }
        let left = match &self.ticket.bound {
            Bound::Local => inner.waiting.remove(&self.place).is_some(),
            Bound::Limits(key) => {
                let Inner { limiter, next, .. } = &mut *inner;
                limiter
                    .as_mut()
                    .and_then(|limiter| limiter.remove(&self.place, key.as_ref(), now(), next))
                    .is_some()
            }
        };
        if left {
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
            bound: self.ticket.bound.clone(),
        })
    }
}

/// Gives back what a permit held: its slot, and its part of the limits.
fn release(inner: &mut Inner, bound: &Bound) {
    inner.in_use -= 1;
    if let Bound::Limits(key) = bound {
        let Inner { limiter, next, .. } = inner;
        if let Some(limiter) = limiter {
            limiter.finished(key.as_ref(), now(), next);
        }
    }
}

impl Gate {
    /// The gate of a worker with these options.
    pub(crate) fn new(options: &WorkerOptions) -> Arc<Self> {
        let limiter = Rules::of(options).map(Limiter::new);
        Arc::new_cyclic(|me| Gate {
            concurrency: options.get_concurrency(),
            queue_limit: options.get_queue_limit(),
            limited: limiter.is_some(),
            paused: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                limiter,
                ..Inner::default()
            }),
            me: me.clone(),
        })
    }

    /// A permit for a new run, or its place in line by `priority`; refused
    /// with an overload error once `queue_limit` new runs wait.
    pub(crate) fn admit(
        self: &Arc<Self>,
        worker: &str,
        priority: i32,
        limits: Limits<'_>,
    ) -> Result<Claim> {
        self.enter(Some(worker), priority, true, limits)
    }

    /// A permit or a place for a retry, of the run's key: retries don't
    /// count against `queue_limit`, which bounds new runs.
    pub(crate) fn retry(self: &Arc<Self>, priority: i32, key: Option<&str>) -> Claim {
        self.enter(None, priority, true, Limits::Apply(key))
            .unwrap_or_default()
    }

    /// A permit or a place for a job whose time has come, of its key: not
    /// counted as running until it starts, nor against `queue_limit` (it
    /// was accepted when it was called).
    pub(crate) fn job(self: &Arc<Self>, priority: i32, key: Option<&str>) -> Claim {
        self.enter(None, priority, false, Limits::Apply(key))
            .unwrap_or_default()
    }

    fn enter(
        self: &Arc<Self>,
        counted_for: Option<&str>,
        priority: i32,
        admitted: bool,
        limits: Limits<'_>,
    ) -> Result<Claim> {
        // `Some(key)`: held to the worker's limits, as a run of `key`.
        let limited = match limits {
            Limits::Apply(key) if self.limited => Some(key),
            _ => None,
        };
        if limited.is_none() && self.concurrency.is_none() && !self.paused.load(Acquire) {
            return Ok(None);
        }
        let mut inner = lock(&self.inner);
        let key = limited
            .flatten()
            .and_then(|text| Some(inner.limiter.as_ref()?.key(text)));
        let bound = match limited {
            Some(_) => Bound::Limits(key),
            None => Bound::Local,
        };
        if let Some(permit) = self.start_at_once(&mut inner, &bound) {
            return Ok(Some(Box::new(Slot::Held(permit))));
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
        if admitted {
            inner.admitted += 1;
        }
        inner.next += 1;
        let place = (Reverse(priority), inner.next);
        let ticket = Arc::new(Ticket {
            counted: counted_for.is_some(),
            admitted,
            bound,
            ..Ticket::default()
        });
        match &ticket.bound {
            Bound::Local => {
                inner.waiting.insert(place, ticket.clone());
            }
            Bound::Limits(key) => {
                if let Ok(runtime) = Handle::try_current() {
                    inner.runtime = Some(runtime);
                }
                let Inner { limiter, next, .. } = &mut *inner;
                if let Some(limiter) = limiter {
                    limiter.push(place, key.as_ref(), ticket.clone(), now(), next);
                }
                // It may wait for a window only: the timer is set for it.
                self.grant(&mut inner);
            }
        }
        Ok(Some(Box::new(Slot::Waiting(Waiting {
            gate: self.clone(),
            place,
            ticket,
            taken: false,
            since: now(),
        }))))
    }

    /// A permit for a new run if it can start now: not paused, a free
    /// slot, and (for a limited run) room under the limits with no run
    /// ahead of it that could start.
    fn start_at_once(self: &Arc<Self>, inner: &mut Inner, bound: &Bound) -> Option<Permit> {
        if self.paused.load(Acquire) {
            return None;
        }
        let started = match bound {
            Bound::Local => inner.waiting.is_empty() && self.has_room(inner),
            Bound::Limits(key) => {
                // Windows may have made room since the timer was set: the
                // runs already waiting go first.
                self.grant(inner);
                self.has_room(inner)
                    && inner
                        .limiter
                        .as_mut()
                        .is_some_and(|limiter| limiter.try_start(key.as_ref(), now()))
            }
        };
        started.then(|| {
            inner.in_use += 1;
            Permit {
                gate: self.clone(),
                bound: bound.clone(),
            }
        })
    }

    /// Whether a local slot is free.
    fn has_room(&self, inner: &Inner) -> bool {
        self.concurrency.is_none_or(|limit| inner.in_use < limit)
    }

    /// Hands free permits to the first in line while not paused: the
    /// first by priority and place of the runs held by `concurrency`
    /// alone and of the runs the limits let start. Then, if a run waits
    /// for a rate window only, sets the timer for when it has room.
    fn grant(&self, inner: &mut Inner) {
        // Read once for every decision of this round.
        let time = inner.limiter.is_some().then(now);
        while !self.paused.load(Acquire) && self.has_room(inner) {
            let Inner {
                waiting,
                limiter,
                next,
                ..
            } = &mut *inner;
            let local = waiting.first_key_value().map(|(place, _)| *place);
            let limited = match (limiter.as_mut(), time) {
                (Some(limiter), Some(time)) => limiter.first(time, next),
                _ => None,
            };
            let ticket = match (local, limited) {
                (Some(local), limited) if limited.is_none_or(|limited| local < limited) => {
                    waiting.pop_first().map(|(_, ticket)| ticket)
                }
                (_, Some(_)) => limiter
                    .as_mut()
                    .zip(time)
                    .and_then(|(limiter, time)| limiter.start_first(time, next))
                    .map(|(ticket, _)| ticket),
                _ => None,
            };
            let Some(ticket) = ticket else {
                break;
            };
            inner.in_use += 1;
            inner.leave(&ticket);
            ticket.granted.store(true, Release);
            if let Some(waker) = lock(&ticket.waker).take() {
                waker.wake();
            }
        }
        if let Some(time) = time {
            if !self.paused.load(Acquire) && self.has_room(inner) {
                if let Some(at) = inner.limiter.as_mut().and_then(|l| l.next_wake(time)) {
                    self.set_timer(inner, at);
                }
            }
        }
    }

    /// Makes sure a timer lets runs through at `at` (or sooner): one timer
    /// per gate, replaced only by a sooner one. Without a runtime to wait
    /// in there is none; the next call or run's end lets them through.
    fn set_timer(&self, inner: &mut Inner, at: Instant) {
        if let Some(timer) = &inner.timer {
            if timer.at <= at && !timer.task.is_finished() {
                return;
            }
            timer.task.abort();
        }
        inner.timer = None;
        let Some(runtime) = Handle::try_current().ok().or_else(|| inner.runtime.clone()) else {
            return;
        };
        inner.next += 1;
        let id = inner.next;
        let gate = self.me.clone();
        let task = runtime.spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            if let Some(gate) = gate.upgrade() {
                gate.timer_fired(id);
            }
        });
        inner.timer = Some(Timer {
            at,
            id,
            task: task.abort_handle(),
        });
    }

    fn timer_fired(&self, id: u64) {
        let mut inner = lock(&self.inner);
        if inner.timer.as_ref().is_some_and(|timer| timer.id == id) {
            inner.timer = None;
        }
        self.grant(&mut inner);
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
        let limited = inner.limiter.as_ref().map_or(0, Limiter::waiting);
        (inner.waiting.len() + limited, inner.admitted)
    }

    /// The use of the worker's limits now; `None` for a worker without
    /// limits.
    pub(crate) fn limit_use(&self) -> Option<LimitUse> {
        let mut inner = lock(&self.inner);
        inner.limiter.as_mut().map(|limiter| limiter.usage(now()))
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(timer) = inner.timer.take() {
            timer.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::time::Duration;

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

    fn is_held(claim: &Claim) -> bool {
        matches!(claim.as_deref(), Some(Slot::Held(_)))
    }

    /// A new run of key `key`, held to the worker's limits.
    fn call(gate: &Arc<Gate>, key: Option<&str>, priority: i32) -> Claim {
        gate.admit("w", priority, Limits::Apply(key)).unwrap()
    }

    /// The permit, if the run's wait is over.
    fn granted(waiting: &mut Waiting) -> Option<Permit> {
        match waiting.poll(&mut noop()) {
            Poll::Ready(permit) => Some(permit),
            Poll::Pending => None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waiting_runs_start_by_priority_then_in_order() {
        let gate = Gate::new(&WorkerOptions::new().concurrency(1));
        let first = gate.admit("w", 0, Limits::Apply(None)).unwrap();
        assert!(is_held(&first));
        let mut low = waiting(gate.admit("w", 0, Limits::Apply(None)).unwrap());
        let mut high_a = waiting(gate.admit("w", 5, Limits::Apply(None)).unwrap());
        let mut high_b = waiting(gate.admit("w", 5, Limits::Apply(None)).unwrap());
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
        let _held = gate.admit("w", 0, Limits::Apply(None)).unwrap();
        let job = gate.job(0, None);
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
        let gate = Gate::new(&WorkerOptions::new());
        assert!(call(&gate, None, 0).is_none());
        gate.set_paused(true);
        let mut held = waiting(call(&gate, None, 0));
        assert!(held.poll(&mut noop()).is_pending());
        gate.set_paused(false);
        assert!(held.poll(&mut noop()).is_ready());
    }

    #[test]
    fn a_wait_given_up_frees_its_place_and_a_granted_permit() {
        let gate = Gate::new(&WorkerOptions::new().concurrency(1).queue_limit(1));
        let held = call(&gate, None, 0);
        let gone = call(&gate, None, 0);
        assert!(
            gate.admit("w", 0, Limits::Apply(None))
                .unwrap_err()
                .is_overloaded()
        );
        drop(gone);
        let next = waiting(call(&gate, None, 0));
        drop(held); // granted to `next`, which never takes it
        drop(next);
        assert!(is_held(&call(&gate, None, 0)));
    }

    #[test]
    fn a_key_at_its_limit_holds_back_only_its_own_runs() {
        let gate = Gate::new(&WorkerOptions::new().limit_by("account").key_concurrency(1));
        let a1 = call(&gate, Some("a"), 0);
        assert!(is_held(&a1));
        let mut a2 = waiting(call(&gate, Some("a"), 0));
        let b1 = call(&gate, Some("b"), 0);
        assert!(is_held(&b1), "b does not wait behind a's waiting run");
        drop(b1);
        assert!(granted(&mut a2).is_none());
        drop(a1);
        assert!(granted(&mut a2).is_some());
    }

    #[test]
    fn a_key_with_a_backlog_takes_its_turn_behind_a_key_with_one_run() {
        let options = WorkerOptions::new()
            .global_concurrency(1)
            .limit_by("account")
            .key_concurrency(1);
        let gate = Gate::new(&options);
        let a1 = call(&gate, Some("a"), 0);
        let mut backlog: Vec<Waiting> = (0..100)
            .map(|_| waiting(call(&gate, Some("a"), 0)))
            .collect();
        let mut b1 = waiting(call(&gate, Some("b"), 0));
        assert_eq!(gate.waiting(), (101, 101));
        drop(a1);
        let b1 = granted(&mut b1);
        assert!(b1.is_some(), "the slot freed goes to b");
        assert!(granted(&mut backlog[0]).is_none());
    }

    #[test]
    fn keys_take_turns_within_a_priority_and_priority_comes_first() {
        let options = WorkerOptions::new()
            .global_concurrency(1)
            .limit_by("account")
            .key_concurrency(10);
        let gate = Gate::new(&options);
        let first = call(&gate, Some("a"), 0);
        let mut a2 = waiting(call(&gate, Some("a"), 0));
        let mut a3 = waiting(call(&gate, Some("a"), 0));
        let mut b1 = waiting(call(&gate, Some("b"), 0));
        let mut urgent = waiting(call(&gate, Some("c"), 5));
        let mut order = Vec::new();
        drop(first);
        let mut runs = [
            ("a2", &mut a2),
            ("a3", &mut a3),
            ("b1", &mut b1),
            ("urgent", &mut urgent),
        ];
        for _ in 0..4 {
            let mut granted = None;
            for (name, run) in runs.iter_mut() {
                if !order.contains(name) {
                    if let Poll::Ready(permit) = run.poll(&mut noop()) {
                        assert!(granted.is_none(), "two runs granted for one slot");
                        granted = Some((*name, permit));
                    }
                }
            }
            let (name, permit) = granted.expect("a run granted");
            order.push(name);
            drop(permit);
        }
        assert_eq!(order, ["urgent", "a2", "b1", "a3"]);
    }

    #[test]
    fn a_backends_run_is_held_to_the_local_concurrency_only() {
        let options = WorkerOptions::new()
            .concurrency(2)
            .global_concurrency(1)
            .rate("2/1h");
        let gate = Gate::new(&options);
        assert!(is_held(&call(&gate, None, 0)));
        let limited = call(&gate, None, 0);
        assert!(is_held(&limited));
        let mut held_back = waiting(call(&gate, None, 0));
        let claimed = gate.admit("w", 0, Limits::Claimed).unwrap();
        assert!(
            is_held(&claimed),
            "not held back by global_concurrency or rate"
        );
        let mut next_claimed = waiting(gate.admit("w", 0, Limits::Claimed).unwrap());
        let usage = gate.limit_use().unwrap();
        assert_eq!((usage.running, usage.started), (1, 2));
        drop(claimed);
        let next_claimed = granted(&mut next_claimed);
        assert!(next_claimed.is_some());
        assert!(granted(&mut held_back).is_none());

        let unlimited_here = Gate::new(&WorkerOptions::new().global_concurrency(1));
        assert!(
            unlimited_here
                .admit("w", 0, Limits::Claimed)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn queue_limit_counts_runs_waiting_for_a_limit_but_never_refuses_one_that_can_start() {
        let options = WorkerOptions::new()
            .concurrency(10)
            .queue_limit(1)
            .limit_by("account")
            .key_concurrency(1);
        let gate = Gate::new(&options);
        let _a1 = call(&gate, Some("a"), 0);
        let _a2 = waiting(call(&gate, Some("a"), 0));
        let refused = gate.admit("w", 0, Limits::Apply(Some("a"))).unwrap_err();
        assert!(refused.is_overloaded(), "{refused}");
        assert!(is_held(&call(&gate, Some("b"), 0)));
        let _retry = waiting(gate.retry(0, Some("a")));
        assert_eq!(gate.waiting(), (2, 2));
    }

    #[test]
    fn a_permit_granted_but_never_taken_frees_its_key() {
        let gate = Gate::new(&WorkerOptions::new().limit_by("account").key_concurrency(1));
        let a1 = call(&gate, Some("a"), 0);
        let a2 = waiting(call(&gate, Some("a"), 0));
        drop(a1);
        drop(a2);
        let a3 = call(&gate, Some("a"), 0);
        assert!(is_held(&a3));
        assert_eq!(gate.limit_use().unwrap().running, 1);
    }

    #[test]
    fn limit_use_is_none_without_limits() {
        assert!(
            Gate::new(&WorkerOptions::new().concurrency(3))
                .limit_use()
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_held_by_the_rate_starts_the_moment_the_window_has_room() {
        let gate = Gate::new(&WorkerOptions::new().rate("2/1s"));
        let began = tokio::time::Instant::now();
        drop(call(&gate, None, 0));
        tokio::time::sleep(ms(300)).await;
        drop(call(&gate, None, 0));
        let mut third = waiting(call(&gate, None, 0));
        let mut fourth = waiting(call(&gate, None, 0));
        drop(poll_fn(|cx| third.poll(cx)).await);
        assert_eq!(began.elapsed(), ms(1000), "when the first start left");
        drop(poll_fn(|cx| fourth.poll(cx)).await);
        assert_eq!(began.elapsed(), ms(1300), "when the second start left");
        assert_eq!(gate.limit_use().unwrap().started, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_window_sets_the_timer_sooner() {
        let options = WorkerOptions::new().limit_by("account").key_rate("1/10s");
        let gate = Gate::new(&options);
        let began = tokio::time::Instant::now();
        drop(call(&gate, Some("b"), 0));
        tokio::time::sleep(ms(5000)).await;
        drop(call(&gate, Some("a"), 0));
        let mut a2 = waiting(call(&gate, Some("a"), 0)); // a's window: until 15 s
        tokio::time::sleep(ms(1000)).await;
        let mut b2 = waiting(call(&gate, Some("b"), 0)); // b's window: until 10 s
        drop(poll_fn(|cx| b2.poll(cx)).await);
        assert_eq!(began.elapsed(), ms(10_000));
        assert!(granted(&mut a2).is_none());
        drop(poll_fn(|cx| a2.poll(cx)).await);
        assert_eq!(began.elapsed(), ms(15_000));
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_gate_stops_its_timer() {
        let gate = Gate::new(&WorkerOptions::new().rate("1/1h"));
        drop(call(&gate, None, 0));
        let waits = call(&gate, None, 0);
        let timer = lock(&gate.inner).timer.as_ref().map(|t| t.task.clone());
        let timer = timer.expect("a timer for the window");
        drop(waits);
        drop(gate);
        tokio::task::yield_now().await;
        assert!(timer.is_finished());
    }
}
