//! A job's road to its start, in this process: a workflow's step waits
//! for its parents, any job waits for its time, then at its worker's gate (priority, concurrency, limits, pause), then
//! starts as an ordinary run. Until it starts its payload, priority and
//! time may be replaced (`Duplicate::Replace`), and a cancel ends it at
//! once, as cancelled and counted once.
//!
//! A job in this process lives only as long as the process: one still
//! waiting when the process exits is lost (`shutdown` cancels and counts
//! it first).

use std::future::poll_fn;
use std::pin::pin;
use std::sync::Arc;

use serde_json::Value;

use crate::error::Result;
use crate::gate::{Claim, Slot};
use crate::launch::Launcher;
use crate::run::Run;
use crate::signal::Signal;

/// Waits for `run`'s time and gate, then executes it with `launcher`; the
/// outcome is the run's. `run` must be a job, listed as pending.
pub(crate) async fn start_when_ready(run: Arc<Run>, launcher: Launcher) -> Result<Value> {
    let mut unstarted = Unstarted(Some(run.clone()));
    let Some(claim) = wait_to_start(&run).await else {
        // Dropping `unstarted` ends the run as cancelled.
        drop(unstarted);
        return Err(run.cancelled_error());
    };
    unstarted.0 = None;
    let Some(job) = run.job() else {
        unreachable!("start_when_ready is only given jobs");
    };
    job.start();
    if let Some(step) = &job.step {
        step.started();
    }
    // The time it waited to start is not part of its duration.
    run.waited_for_slot(run.elapsed());
    run.list_started();
    run.admitted();
    launcher.inline(run, claim).await
}

/// Its permit (or `None` for a gate that needs none), once its time has
/// come and the gate let it through; `None` if it was cancelled first.
async fn wait_to_start(run: &Run) -> Option<Claim> {
    let job = run.job()?;
    let gate = &run.definition().gate;
    loop {
        if run.signals.is_fired(Signal::Cancel) {
            return None;
        }
        // Registered before the state is read, so that a `Replace` in
        // between still wakes this wait.
        let mut changed = pin!(job.changed.notified());
        changed.as_mut().enable();
        if job.is_held() {
            tokio::select! {
                _ = &mut changed => {}
                _ = run.signals.wait(Signal::Cancel) => return None,
            }
            continue;
        }
        if let Some(due) = job.due().filter(|due| due.is_ahead()) {
            tokio::select! {
                _ = tokio::time::sleep_until(due.deadline) => {}
                _ = &mut changed => {}
                _ = run.signals.wait(Signal::Cancel) => return None,
            }
            continue;
        }
        let (priority, limit_key) = job.place();
        let mut claim = gate.job(priority, limit_key.as_deref());
        let Some(Slot::Waiting(waiting)) = claim.as_deref_mut() else {
            return Some(claim);
        };
        tokio::select! {
            permit = poll_fn(|cx| waiting.poll(cx)) => {
                return Some(Some(Box::new(Slot::Held(permit))));
            }
            // A new priority, time or payload (whose `limit_by` key may
            // differ): wait again with it (the place in line goes with the
            // old claim).
            _ = &mut changed => {}
            _ = run.signals.wait(Signal::Cancel) => return None,
        }
    }
}

/// A job that hasn't started: ended as cancelled if dropped so, whether it
/// was cancelled or its task was dropped (its runtime shut down).
struct Unstarted(Option<Arc<Run>>);

impl Drop for Unstarted {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            if !run.signals.is_fired(Signal::Ended) {
                // Counted as started and cancelled: every run that ends is
                // counted once, and `running` never goes below zero.
                run.admitted();
                let (outcome, ending) = run.cancelled::<Value>();
                run.finish(&outcome, ending);
            }
        }
    }
}
