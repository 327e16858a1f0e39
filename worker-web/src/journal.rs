//! The dashboard's memory of runs: every run of the manager, in flight and
//! the last `capacity` that ended, with its payload, its messages (the last
//! `messages_per_run`), its attempts and its outcome.
//!
//! The [`Journal`] is a worker-core [`Observer`]: the manager tells it
//! about every run, including runs started by other code, so the dashboard
//! shows them all without holding their handles. It keeps to two bounds: an
//! ended run is forgotten once `capacity` newer ones have ended, and a run's
//! oldest messages are dropped (and counted) past `messages_per_run`.
//!
//! Readers of a run's messages ([`RunRecord::reader`]) replay what is kept,
//! then follow the run live; they never hold the run up.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::{Number, Value};
use tokio::sync::Notify;
use worker_core::backend::{
    BoxFuture, History, HistoryQuery, NodeInfo, Stall, StoredAttempt, StoredRun, TimelineBucket,
};
use worker_core::observe::{Observer, Outcome, RunInfo};
use worker_core::{Error, Result, RunId, RunState};

use crate::clock::millis;
use crate::timeline::Timeline;
use crate::views::OutcomeView;

/// How many ended runs the journal keeps by default: the last 1,000.
pub const DEFAULT_RECENT_RUNS: usize = 1000;

/// How many messages of one run are kept by default: the last 1,000.
pub const DEFAULT_MESSAGES_PER_RUN: usize = 1000;

/// Runs in flight and recently ended, by id.
#[derive(Debug)]
pub struct Journal {
    runs: Mutex<Runs>,
    capacity: usize,
    messages_per_run: usize,
    node: Arc<str>,
    /// When it was made: when this process's node started, as far as the
    /// dashboard knows.
    created: SystemTime,
    timeline: Timeline,
}

#[derive(Debug, Default)]
struct Runs {
    by_id: HashMap<RunId, Arc<RunRecord>>,
    /// Ended runs, oldest first; at most `capacity`.
    ended: VecDeque<Arc<RunRecord>>,
}

impl Journal {
    /// A journal keeping the last `capacity` ended runs (at least 1) and
    /// the last `messages_per_run` messages of each (at least 1), naming
    /// this process `node`.
    pub fn new(capacity: usize, messages_per_run: usize, node: impl Into<Arc<str>>) -> Self {
        Journal {
            runs: Mutex::default(),
            capacity: capacity.max(1),
            messages_per_run: messages_per_run.max(1),
            node: node.into(),
            created: SystemTime::now(),
            timeline: Timeline::default(),
        }
    }

    fn runs(&self) -> MutexGuard<'_, Runs> {
        lock(&self.runs)
    }

    /// The run with this id, in flight or among the ended ones kept.
    pub fn get(&self, run_id: RunId) -> Option<Arc<RunRecord>> {
        self.runs().by_id.get(&run_id).cloned()
    }

    /// The ended runs kept, newest first.
    pub fn recent(&self) -> Vec<Arc<RunRecord>> {
        self.runs().ended.iter().rev().cloned().collect()
    }

    /// The runs in flight the journal saw start, oldest first.
    pub fn in_flight(&self) -> Vec<Arc<RunRecord>> {
        let mut runs: Vec<_> = self
            .runs()
            .by_id
            .values()
            .filter(|run| !run.has_ended())
            .cloned()
            .collect();
        runs.sort_by_key(|run| run.started_at);
        runs
    }

    /// How many runs are kept, in flight and ended.
    pub fn len(&self) -> usize {
        self.runs().by_id.len()
    }

    /// Whether no run is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many ended runs are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// This process's name in the dashboard: `host:pid`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Runs per outcome and p95 duration over the last 15 minutes.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Records that the ended run `run_id` was retried as `retry_id`.
    pub fn retried(&self, run_id: RunId, retry_id: &str) {
        if let Some(run) = self.get(run_id) {
            run.state().retried_as = Some(retry_id.to_owned());
        }
    }

    /// The run the dashboard started to retry `run_id`, if it knows one.
    pub fn retried_as(&self, run_id: RunId) -> Option<String> {
        self.get(run_id)?.state().retried_as.clone()
    }
}

/// What this process saw: its runs as a [`History`], the same shapes a
/// durable backend gives, so the dashboard reads either the same way.
impl History for Journal {
    fn recent(&self, query: HistoryQuery) -> BoxFuture<'_, Result<Vec<StoredRun>>> {
        let mut kept: Vec<Arc<RunRecord>> = self
            .recent()
            .into_iter()
            .filter(|run| query.worker.as_deref().is_none_or(|w| run.worker() == w))
            .filter(|run| query.outcome.is_none_or(|o| run.outcome() == Some(o)))
            .collect();
        if query.failed_first {
            // Stable: newest first within each group.
            kept.sort_by_key(|run| !run.outcome().is_some_and(Outcome::is_failure));
        }
        kept.truncate(query.limit);
        // Only the runs answered are copied out.
        let runs: Vec<StoredRun> = kept.iter().map(|run| run.stored_run()).collect();
        Box::pin(async move { Ok(runs) })
    }

    fn run(&self, run_id: RunId) -> BoxFuture<'_, Result<Option<StoredRun>>> {
        let run = self.get(run_id).map(|run| run.stored_run());
        Box::pin(async move { Ok(run) })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>>> {
        // Alive as it answers.
        let node = NodeInfo {
            node: self.node.to_string(),
            started_at: self.created,
            last_heartbeat: SystemTime::now(),
            executes: true,
            running: self.in_flight().iter().map(|run| run.id).collect(),
        };
        Box::pin(async move { Ok(vec![node]) })
    }

    fn stalls(&self, _limit: usize) -> BoxFuture<'_, Result<Vec<Stall>>> {
        // In one process there is no lease to stall.
        Box::pin(async { Ok(Vec::new()) })
    }

    fn timeline(
        &self,
        window: Duration,
        _bucket: Duration,
    ) -> BoxFuture<'_, Result<Vec<TimelineBucket>>> {
        // Its buckets are always `timeline::BUCKET` wide.
        let buckets = self.timeline.buckets(SystemTime::now(), window);
        Box::pin(async move { Ok(buckets) })
    }
}

impl Observer for Journal {
    fn started(&self, run: RunInfo<'_>) {
        let record = Arc::new(RunRecord {
            id: run.run_id(),
            worker: run.worker().into(),
            payload: run.payload().cloned(),
            key: run.key().map(str::to_owned),
            priority: run.priority(),
            started_at: SystemTime::now(),
            node: self.node.clone(),
            state: Mutex::new(Kept {
                attempts: vec![Attempt::starting(SystemTime::now())],
                ..Kept::default()
            }),
            changed: Notify::new(),
        });
        self.runs().by_id.insert(record.id, record);
    }

    fn message(&self, run: RunInfo<'_>, message: &Value) {
        if let Some(record) = self.get(run.run_id()) {
            record.push(message.clone(), self.messages_per_run);
        }
    }

    fn attempt_failed(&self, run: RunInfo<'_>, error: &Error, delay: Duration) {
        if let Some(record) = self.get(run.run_id()) {
            let now = SystemTime::now();
            let mut state = record.state();
            if let Some(attempt) = state.attempts.last_mut() {
                attempt.outcome = Some(Outcome::of(error));
                attempt.error = Some(error.to_string());
                attempt.retry_in = Some(delay);
                attempt.ended_at = Some(now);
            }
            // The next attempt starts once the delay is over.
            state.attempts.push(Attempt::starting(now + delay));
        }
    }

    fn ended(
        &self,
        run: RunInfo<'_>,
        outcome: Outcome,
        result: &Result<Value, Error>,
        took: Duration,
    ) {
        self.timeline.record(outcome, took);
        let Some(record) = self.get(run.run_id()) else {
            return;
        };
        {
            let ended_at = SystemTime::now();
            let mut state = record.state();
            let mut view = OutcomeView::of(result);
            // The manager's word: a cancelled run may carry another error.
            view.outcome = outcome;
            if let Some(attempt) = state.attempts.last_mut() {
                attempt.outcome = Some(outcome);
                attempt.error = view.error.clone();
                attempt.ended_at = Some(ended_at);
                attempt.duration = Some(took);
            }
            state.ended = Some(Ended {
                view,
                duration: took,
                ended_at,
            });
        }
        record.changed.notify_waiters();
        let mut runs = self.runs();
        runs.ended.push_back(record);
        while runs.ended.len() > self.capacity {
            if let Some(oldest) = runs.ended.pop_front() {
                runs.by_id.remove(&oldest.id);
            }
        }
    }
}

/// One run as the dashboard knows it.
#[derive(Debug)]
pub struct RunRecord {
    id: RunId,
    worker: String,
    payload: Option<Value>,
    key: Option<String>,
    priority: i32,
    started_at: SystemTime,
    node: Arc<str>,
    state: Mutex<Kept>,
    changed: Notify,
}

/// What is kept of a run as it goes.
#[derive(Debug, Default)]
struct Kept {
    /// The messages kept, oldest first.
    messages: VecDeque<Value>,
    /// Sequence number of `messages[0]`: also how many were dropped.
    first: u64,
    /// The last numeric `progress` field seen.
    progress: Option<Number>,
    attempts: Vec<Attempt>,
    ended: Option<Ended>,
    retried_as: Option<String>,
}

#[derive(Debug, Clone)]
struct Attempt {
    started_at: SystemTime,
    ended_at: Option<SystemTime>,
    duration: Option<Duration>,
    outcome: Option<Outcome>,
    error: Option<String>,
    retry_in: Option<Duration>,
}

impl Attempt {
    fn starting(at: SystemTime) -> Self {
        Attempt {
            started_at: at,
            ended_at: None,
            duration: None,
            outcome: None,
            error: None,
            retry_in: None,
        }
    }
}

#[derive(Debug)]
struct Ended {
    view: OutcomeView,
    duration: Duration,
    ended_at: SystemTime,
}

impl RunRecord {
    fn state(&self) -> MutexGuard<'_, Kept> {
        lock(&self.state)
    }

    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The payload it was called with.
    pub fn payload(&self) -> Option<&Value> {
        self.payload.as_ref()
    }

    /// Whether it has ended.
    pub fn has_ended(&self) -> bool {
        self.state().ended.is_some()
    }

    /// How it ended; `None` while it runs.
    pub fn outcome(&self) -> Option<Outcome> {
        self.state().ended.as_ref().map(|ended| ended.view.outcome)
    }

    /// The last numeric `progress` field among its messages, as sent.
    pub fn progress(&self) -> Option<Number> {
        self.state().progress.clone()
    }

    /// How many of its messages (the oldest) were dropped.
    pub fn dropped(&self) -> u64 {
        self.state().first
    }

    /// The run as a [`History`] gives it: what the dashboard shows.
    pub fn stored_run(&self) -> StoredRun {
        let state = self.state();
        let ended = state.ended.as_ref();
        let attempts = state
            .attempts
            .iter()
            .zip(1..)
            .filter_map(|(attempt, number)| {
                Some(StoredAttempt {
                    attempt: number,
                    node: Some(self.node.to_string()),
                    started_at: Some(attempt.started_at),
                    ended_at: attempt.ended_at?,
                    outcome: attempt.outcome,
                    error: attempt.error.clone(),
                    duration_ms: attempt
                        .duration
                        .or_else(|| attempt.ended_at?.duration_since(attempt.started_at).ok())
                        .map(millis),
                    retry_in: attempt.retry_in,
                })
            })
            .collect();
        StoredRun {
            run_id: self.id,
            worker: self.worker.clone(),
            state: ended.map_or(RunState::Running, |e| RunState::Ended(e.view.outcome)),
            attempt: u32::try_from(state.attempts.len()).unwrap_or(u32::MAX),
            error: ended.and_then(|e| e.view.error.clone()),
            payload: self.payload.clone(),
            output: ended.and_then(|e| e.view.output.clone()),
            created_at: self.started_at,
            started_at: Some(self.started_at),
            ended_at: ended.map(|e| e.ended_at),
            duration_ms: ended.map(|e| millis(e.duration)),
            node: Some(self.node.to_string()),
            attempts,
            messages: Some(state.first + state.messages.len() as u64),
            messages_dropped: state.first,
            progress: state.progress.clone(),
            key: self.key.clone(),
            priority: self.priority,
            // In this process a run is journaled once it starts: it
            // was due then.
            due_at: Some(self.started_at),
        }
    }

    /// A reader from the first message kept, or from the message after
    /// sequence number `after` (an SSE client's `Last-Event-ID`).
    pub fn reader(self: &Arc<Self>, after: Option<u64>) -> RunReader {
        RunReader {
            run: self.clone(),
            next: after.map_or(0, |seq| seq.saturating_add(1)),
            done: false,
        }
    }

    fn push(&self, message: Value, capacity: usize) {
        {
            let mut state = self.state();
            if let Some(Value::Number(progress)) = message.get("progress") {
                state.progress = Some(progress.clone());
            }
            state.messages.push_back(message);
            while state.messages.len() > capacity {
                state.messages.pop_front();
                state.first += 1;
            }
        }
        self.changed.notify_waiters();
    }
}

/// What a [`RunReader`] reads, in order: messages (after a `Dropped` if
/// the reader fell behind), then the outcome, then nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// This many messages were dropped before the reader got to them.
    Dropped(u64),
    /// A message, with its sequence number in the run (0, 1, …).
    Message {
        /// Sequence number, the SSE event id.
        seq: u64,
        /// What the worker emitted.
        data: Value,
    },
    /// How the run ended, as the `outcome` SSE event's JSON:
    /// `{"ok", "outcome", "kind", "error", "output"}`. The last event.
    Outcome(Value),
}

/// One reader's position in a run's messages.
#[derive(Debug)]
pub struct RunReader {
    run: Arc<RunRecord>,
    next: u64,
    done: bool,
}

impl RunReader {
    /// The next event, waiting for it while the run goes on; `None` after
    /// the outcome.
    pub async fn next(&mut self) -> Option<RunEvent> {
        if self.done {
            return None;
        }
        loop {
            let changed = self.run.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Register before looking: a push between the look and the
            // await would otherwise be missed.
            changed.as_mut().enable();
            {
                let state = self.run.state();
                if self.next < state.first {
                    let missed = state.first - self.next;
                    self.next = state.first;
                    return Some(RunEvent::Dropped(missed));
                }
                let index = usize::try_from(self.next - state.first).unwrap_or(usize::MAX);
                if let Some(data) = state.messages.get(index) {
                    let seq = self.next;
                    self.next += 1;
                    return Some(RunEvent::Message {
                        seq,
                        data: data.clone(),
                    });
                }
                if let Some(ended) = &state.ended {
                    self.done = true;
                    return Some(RunEvent::Outcome(ended.view.to_json()));
                }
            }
            changed.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use worker_core::prelude::*;

    async fn counting_manager(count: u64) -> (WorkerManager, Arc<Journal>) {
        let manager = WorkerManager::new();
        let journal = Arc::new(Journal::new(3, 4, "test:1"));
        manager.observe(journal.clone());
        manager
            .register("count", move |ctx| async move {
                for i in 0..count {
                    ctx.send(json!({"progress": i})).await?;
                }
                Ok(())
            })
            .await
            .unwrap();
        (manager, journal)
    }

    async fn read_all(mut reader: RunReader) -> Vec<RunEvent> {
        let mut events = Vec::new();
        while let Some(event) = reader.next().await {
            events.push(event);
        }
        events
    }

    #[tokio::test]
    async fn readers_replay_then_follow_and_end_with_the_outcome() {
        let (manager, journal) = counting_manager(3).await;
        let handle = manager.call("count", None, None).await.unwrap();
        let run = journal
            .get(handle.id().parse().unwrap())
            .expect("listed before call returns");
        let early = read_all(run.reader(None)).await;
        let late = read_all(run.reader(None)).await;
        assert_eq!(early, late);
        assert_eq!(early.len(), 4);
        assert_eq!(
            early[2],
            RunEvent::Message {
                seq: 2,
                data: json!({"progress": 2})
            }
        );
        let RunEvent::Outcome(outcome) = &early[3] else {
            panic!("{early:?}")
        };
        assert_eq!(outcome["outcome"], "succeeded");
        assert_eq!(run.progress(), Some(2.into()));
        assert_eq!(read_all(run.reader(Some(1))).await.len(), 2);
    }

    #[tokio::test]
    async fn a_run_keeps_its_last_messages_and_the_journal_its_last_runs() {
        let (manager, journal) = counting_manager(10).await;
        manager.run("count", None).await.unwrap();
        let run = journal.recent()[0].clone();
        let events = read_all(run.reader(None)).await;
        assert_eq!(run.dropped(), 6);
        assert_eq!(events[0], RunEvent::Dropped(6));
        assert_eq!(events.len(), 1 + 4 + 1);

        for _ in 0..5 {
            manager.run("count", None).await.unwrap();
        }
        assert_eq!(journal.recent().len(), 3, "the last 3 ended runs");
        assert_eq!(journal.len(), 3, "older ones are forgotten");
        assert!(journal.get(run.id()).is_none());
        drop(events);
        assert_eq!(Arc::strong_count(&run), 1, "nothing else holds it");
    }
}
