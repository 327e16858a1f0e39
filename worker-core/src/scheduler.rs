//! A scheduled worker's timer: at each tick of its [`Schedule`] it starts a
//! run with no payload, through the caller's own path (so retries, limits
//! and statistics apply), unless the previous scheduled run is still in
//! flight: then the tick is skipped, logged and counted. Missed ticks (the
//! process was down, the runtime stalled) are not caught up.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::{SignedDuration, Timestamp};
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::{Instant, MissedTickBehavior};

use crate::definition::Definition;
use crate::error::Result;
use crate::schedule::Schedule;

/// Starts the timer of `definition` on `runtime`, if it has a schedule;
/// `start_run` starts the run of the tick due at the given wall-clock time.
/// Aborting the returned handle stops it.
///
/// `aligned` (durable mode): an `every` schedule ticks at the multiples of
/// its interval since the Unix epoch rather than one interval after the
/// timer started, so that every node's timer names the same ticks and the
/// backend can run each once.
pub(crate) fn start<F, Fut>(
    definition: Arc<Definition>,
    runtime: &Handle,
    aligned: bool,
    start_run: F,
) -> Option<AbortHandle>
where
    F: Fn(SystemTime) -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let schedule = definition.schedule.clone()?;
    let mut ticks = Ticks {
        definition,
        start_run,
        previous: None,
    };
    let timer = runtime.spawn(async move {
        match schedule {
            Schedule::Every(interval) if aligned => {
                let clock = Clock::anchored();
                let period = interval.as_millis().max(1) as i64;
                loop {
                    let now = clock.now().as_millisecond();
                    // The next multiple of the interval strictly after now:
                    // a timer that woke late skips the ticks it missed.
                    let next = (now.div_euclid(period) + 1) * period;
                    let at = Timestamp::from_millisecond(next).unwrap_or(Timestamp::MAX);
                    let unix_ms = u64::try_from(next).unwrap_or(0);
                    ticks.will_tick_at(UNIX_EPOCH + Duration::from_millis(unix_ms));
                    clock.sleep_until(at).await;
                    ticks.tick(UNIX_EPOCH + Duration::from_millis(unix_ms));
                }
            }
            Schedule::Every(interval) => {
                let first = Instant::now() + interval;
                let period = interval;
                let mut interval = tokio::time::interval_at(first, interval);
                interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                let mut next = first;
                loop {
                    ticks.will_tick_at(
                        SystemTime::now() + next.saturating_duration_since(Instant::now()),
                    );
                    interval.tick().await;
                    ticks.tick(SystemTime::now());
                    next = Instant::now() + period;
                }
            }
            cron @ Schedule::Cron { .. } => {
                let clock = Clock::anchored();
                let mut after = clock.now();
                while let Some(next) = cron.next_after(after) {
                    let unix_ms = u64::try_from(next.as_millisecond()).unwrap_or(0);
                    ticks.will_tick_at(UNIX_EPOCH + Duration::from_millis(unix_ms));
                    clock.sleep_until(next).await;
                    ticks.tick(UNIX_EPOCH + Duration::from_millis(unix_ms));
                    // A timer that woke late runs once, then waits for the
                    // next tick after now: missed ticks are not caught up.
                    after = next.max(clock.now());
                }
                ticks.definition.next_tick_ms.store(0, Relaxed);
                ticks.warn("its cron expression matches no future instant; no more runs");
            }
        }
    });
    Some(timer.abort_handle())
}

struct Ticks<F> {
    definition: Arc<Definition>,
    start_run: F,
    /// The last scheduled run, to skip a tick while it is in flight.
    previous: Option<JoinHandle<Result<()>>>,
}

impl<F, Fut> Ticks<F>
where
    F: Fn(SystemTime) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    /// Shows when the next tick is due (`WorkerManager::next_tick`).
    fn will_tick_at(&self, at: SystemTime) {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        self.definition.next_tick_ms.store(ms.max(1), Relaxed);
    }

    fn tick(&mut self, at: SystemTime) {
        // Paused in this process (a backend skips the ticks of a worker
        // paused in the cluster itself).
        if self.definition.gate.is_paused() {
            self.definition.stats.skipped();
            self.warn("tick skipped: the worker is paused");
            return;
        }
        if self.previous.as_ref().is_some_and(|run| !run.is_finished()) {
            self.definition.stats.skipped();
            self.warn("tick skipped: the previous scheduled run is still in flight");
            return;
        }
        self.previous = Some(tokio::spawn((self.start_run)(at)));
    }

    fn warn(&self, message: &str) {
        log::warn!(target: "worker", "[Worker:{}] {message}", self.definition.name);
    }
}

/// Wall-clock time read off tokio's clock: anchored once, then advanced by
/// tokio's monotonic time, so that a wall-clock jump doesn't fire or skip
/// ticks and tests can run on tokio's paused clock.
struct Clock {
    wall: Timestamp,
    monotonic: Instant,
}

impl Clock {
    fn anchored() -> Self {
        Clock {
            wall: Timestamp::now(),
            monotonic: Instant::now(),
        }
    }

    fn now(&self) -> Timestamp {
        let elapsed =
            SignedDuration::try_from(self.monotonic.elapsed()).unwrap_or(SignedDuration::MAX);
        self.wall.saturating_add(elapsed).unwrap_or(Timestamp::MAX)
    }

    async fn sleep_until(&self, at: Timestamp) {
        let wait = at.duration_since(self.now());
        let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
    }
}
