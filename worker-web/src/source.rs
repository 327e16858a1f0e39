//! Where the dashboard reads runs: one [`History`] over this process's
//! journal and, in durable mode, the backend's history, so no handler asks
//! which mode it is in.
//!
//! In-process, the journal knows every run. In durable mode the backend
//! knows every run of every node, but runs of `local` workers never reach
//! it: those are read from the journal, and the recent-runs list merges the
//! two. The timeline, nodes and stalls are the backend's alone (the
//! journal's timeline also counts the durable runs this node executed, so
//! adding it would count them twice).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;
use worker_core::backend::{
    BoxFuture, History, HistoryQuery, NodeInfo, ScheduledRun, Stall, StoredRun, TimelineBucket,
};
use worker_core::{Error, Outcome, Result, RunId, RunState, WorkerHandle, WorkerManager};

use crate::journal::{Journal, RunEvent, RunRecord};
use crate::views::OutcomeView;

/// The journal and, in durable mode, the backend, read as one.
#[derive(Debug, Clone)]
pub(crate) struct RunSource {
    manager: WorkerManager,
    journal: Arc<Journal>,
}

impl RunSource {
    pub(crate) fn new(manager: WorkerManager, journal: Arc<Journal>) -> Self {
        RunSource { manager, journal }
    }

    /// Whether `worker`'s runs live in the backend, so the backend, not the
    /// journal, has all of them (with every attempt and message).
    fn in_backend(&self, worker: &str) -> bool {
        self.manager.history().is_some()
            && self
                .manager
                .options(worker)
                .is_some_and(|options| !options.is_local())
    }

    /// The journal's record of `run_id`, if the journal is where it lives.
    fn journaled(&self, run_id: RunId) -> Option<Arc<RunRecord>> {
        self.journal
            .get(run_id)
            .filter(|run| !self.in_backend(run.worker()))
    }

    /// The run's messages from the first one kept (or after sequence
    /// number `after`), then its outcome; `Ok(None)` for a run no source
    /// knows.
    pub(crate) async fn events(
        &self,
        run_id: RunId,
        after: Option<u64>,
    ) -> Result<Option<BoxStream<'static, RunEvent>>> {
        if let Some(run) = self.journaled(run_id) {
            return Ok(Some(Box::pin(futures::stream::unfold(
                run.reader(after),
                |mut reader| async move { Some((reader.next().await?, reader)) },
            ))));
        }
        let Some(backend) = self.manager.history() else {
            return Ok(None);
        };
        if backend.run(run_id).await?.is_none() {
            return Ok(None);
        }
        // The backend replays the run from its first message, wherever it
        // runs.
        let handle = self.manager.attach(&run_id.to_string()).await?;
        Ok(Some(Box::pin(stored_events(handle, after))))
    }
}

impl History for RunSource {
    fn recent(&self, query: HistoryQuery) -> BoxFuture<'_, Result<Vec<StoredRun>>> {
        Box::pin(async move {
            let Some(backend) = self.manager.history() else {
                return History::recent(&*self.journal, query).await;
            };
            let (failed_first, limit) = (query.failed_first, query.limit);
            let mut runs = backend.recent(query.clone()).await?;
            let local = History::recent(&*self.journal, query).await?;
            runs.extend(
                local
                    .into_iter()
                    .filter(|run| !self.in_backend(&run.worker)),
            );
            // Newest first (failures first on request), as each list was.
            runs.sort_by_key(|run| {
                (
                    failed_first && !run.outcome().is_some_and(Outcome::is_failure),
                    std::cmp::Reverse(run.ended_at),
                )
            });
            runs.truncate(limit);
            Ok(runs)
        })
    }

    fn run(&self, run_id: RunId) -> BoxFuture<'_, Result<Option<StoredRun>>> {
        Box::pin(async move {
            if let Some(run) = self.journaled(run_id) {
                return Ok(Some(run.stored_run()));
            }
            if let Some(backend) = self.manager.history() {
                if let Some(run) = backend.run(run_id).await? {
                    return Ok(Some(run));
                }
            }
            // In this process a run waiting for its time isn't journaled
            // until it starts.
            let waiting = self.manager.scheduled_runs(None).await?;
            Ok(waiting
                .into_iter()
                .find(|run| run.run_id == run_id)
                .map(|run| scheduled(&run)))
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<NodeInfo>>> {
        self.one().nodes()
    }

    fn stalls(&self, limit: usize) -> BoxFuture<'_, Result<Vec<Stall>>> {
        self.one().stalls(limit)
    }

    fn timeline(
        &self,
        window: Duration,
        bucket: Duration,
    ) -> BoxFuture<'_, Result<Vec<TimelineBucket>>> {
        self.one().timeline(window, bucket)
    }
}

/// A run waiting for its time, as a stored run: queued, nothing yet.
fn scheduled(run: &ScheduledRun) -> StoredRun {
    StoredRun {
        run_id: run.run_id,
        worker: run.worker.clone(),
        state: RunState::Queued,
        attempt: 1,
        error: None,
        payload: None,
        output: None,
        created_at: SystemTime::now(),
        started_at: None,
        ended_at: None,
        duration_ms: None,
        node: None,
        attempts: Vec::new(),
        messages: Some(0),
        messages_dropped: 0,
        progress: None,
        key: run.key.clone(),
        priority: run.priority,
        due_at: Some(run.due_at),
    }
}

impl RunSource {
    /// The source of what only one of them can say for the whole: the
    /// backend's if there is one.
    fn one(&self) -> &dyn History {
        self.manager.history().unwrap_or(&*self.journal)
    }
}

/// The events of a run read through a handle attached to the backend: its
/// messages from the first (skipping those up to `after`, a
/// `Last-Event-ID`), then its outcome.
fn stored_events(
    handle: WorkerHandle,
    after: Option<u64>,
) -> impl futures::Stream<Item = RunEvent> {
    let skip = after.map_or(0, |seq| seq + 1);
    futures::stream::unfold(Some((handle, 0u64)), move |state| async move {
        let (mut handle, mut seq) = state?;
        loop {
            match handle.recv().await {
                Some(data) => {
                    let this = seq;
                    seq += 1;
                    if this < skip {
                        continue;
                    }
                    return Some((RunEvent::Message { seq: this, data }, Some((handle, seq))));
                }
                None => {
                    let result: Result<Value, Error> = handle.await_output::<Value>().await;
                    let outcome = OutcomeView::of(&result).to_json();
                    return Some((RunEvent::Outcome(outcome), None));
                }
            }
        }
    })
    .boxed()
}
