//! A handle's view of a stored run: its messages read from the database in
//! order, woken by notifications (see `bus`), then its outcome.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;
use tokio::sync::watch;
use uuid::Uuid;
use worker_core::backend::{BoxFuture, RemoteRun};
use worker_core::{Error, Outcome, Result, RunId, RunState};

use crate::bus::{self, Note};
use crate::db::Db;
use crate::rows::OutcomeRow;

/// A handle on one stored run.
pub(crate) struct PgRun {
    id: Uuid,
    id_text: String,
    worker: String,
    db: Arc<Db>,
    finished: Arc<AtomicBool>,
    /// Where reading is, while no read is under way.
    cursor: Option<Cursor>,
    /// A read under way: gives the cursor back with the message.
    reading: Option<Exclusive<Reading>>,
}

/// A read under way.
type Reading = BoxFuture<'static, (Cursor, Option<Value>)>;

/// Makes a `Send` value `Sync` by allowing only `&mut` access to it: a
/// shared reference can't reach it, so sharing one across threads is
/// harmless (what the unstable `std::sync::Exclusive` does). Needed because
/// a handle is `Sync` while the read it has under way, a boxed future,
/// isn't.
struct Exclusive<T>(T);

// SAFETY: `Exclusive` exposes its value only through `&mut self`
// (`get_mut`), never through `&self`, so no two threads can touch it at
// once through shared references.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<T> Exclusive<T> {
    fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl PgRun {
    pub(crate) fn new(db: Arc<Db>, id: Uuid, worker: String) -> Self {
        let finished = Arc::new(AtomicBool::new(false));
        PgRun {
            id,
            id_text: id.hyphenated().to_string(),
            worker,
            cursor: Some(Cursor::new(db.clone(), id, finished.clone())),
            db,
            finished,
            reading: None,
        }
    }
}

impl RemoteRun for PgRun {
    fn id(&self) -> &str {
        &self.id_text
    }

    fn worker_name(&self) -> &str {
        &self.worker
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        loop {
            if let Some(reading) = &mut self.reading {
                let (cursor, message) = std::task::ready!(reading.get_mut().as_mut().poll(cx));
                self.reading = None;
                self.cursor = Some(cursor);
                return Poll::Ready(message);
            }
            let Some(mut cursor) = self.cursor.take() else {
                return Poll::Ready(None);
            };
            if let Some(message) = cursor.buffer.pop_front() {
                self.cursor = Some(cursor);
                return Poll::Ready(Some(message));
            }
            self.reading = Some(Exclusive(Box::pin(cursor.next())));
        }
    }

    fn try_recv(&mut self) -> Option<Value> {
        self.cursor.as_mut()?.buffer.pop_front()
    }

    fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    fn cancel(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(cancel(&self.db, RunId::from(self.id)))
    }

    fn outcome(self: Box<Self>) -> BoxFuture<'static, Result<Value>> {
        let PgRun { id, worker, db, .. } = *self;
        Box::pin(async move { outcome(&db, id, &worker).await })
    }
}

/// How far a handle has read: the next message's number, what was fetched
/// and not yet given out, and whether the run has ended.
struct Cursor {
    db: Arc<Db>,
    run: Uuid,
    watch: Option<watch::Receiver<u64>>,
    next_seq: i32,
    buffer: VecDeque<Value>,
    /// The run has ended and every message was fetched.
    done: bool,
    finished: Arc<AtomicBool>,
}

impl Cursor {
    fn new(db: Arc<Db>, run: Uuid, finished: Arc<AtomicBool>) -> Self {
        let watch = Some(db.bus.watch(run));
        Cursor {
            db,
            run,
            watch,
            next_seq: 0,
            buffer: VecDeque::new(),
            done: false,
            finished,
        }
    }

    /// The next message, waiting for it; `None` once the run has ended and
    /// everything was read.
    async fn next(mut self) -> (Self, Option<Value>) {
        loop {
            if let Some(message) = self.buffer.pop_front() {
                return (self, Some(message));
            }
            if self.done {
                return (self, None);
            }
            if let Some(watch) = &mut self.watch {
                watch.borrow_and_update();
            }
            match self.fetch().await {
                Ok(()) => {
                    if !self.buffer.is_empty() || self.done {
                        continue;
                    }
                }
                // The database is away: the listener wakes us when it is
                // back (and every few seconds anyway).
                Err(err) => {
                    log::debug!(target: "worker_postgres", "run {}: can't read messages yet: {err}", self.run)
                }
            }
            if let Some(watch) = &mut self.watch
                && watch.changed().await.is_err()
            {
                tokio::time::sleep(crate::bus::BACKSTOP).await;
            }
        }
    }

    /// Reads the run's state, then the messages after the last one read:
    /// in that order, so that a run seen ended has all its messages
    /// written.
    async fn fetch(&mut self) -> std::result::Result<(), sqlx::Error> {
        let sql = &self.db.sql;
        let state: Option<(String, String)> = sqlx::query_as(sql.run_state.clone())
            .persistent(false)
            .bind(self.run)
            .fetch_optional(&self.db.pool)
            .await?;
        // Gone: deleted after its retention period; nothing more to read.
        let ended = state.is_none_or(|(_, state)| stored_state(&state).is_ended());
        let rows: Vec<(i32, Value)> = sqlx::query_as(sql.messages_after.clone())
            .bind(self.run)
            .bind(self.next_seq)
            .fetch_all(&self.db.pool)
            .await?;
        let full = rows.len() == 1000;
        for (seq, body) in rows {
            self.next_seq = seq + 1;
            self.buffer.push_back(body);
        }
        if ended {
            self.finished.store(true, Ordering::Release);
            if !full && self.buffer.is_empty() {
                self.done = true;
            }
        }
        Ok(())
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            self.db.bus.unwatch(self.run, watch);
        }
    }
}

/// A stored outcome as the handle gives it: the output, or the error with
/// its kind's predicates and the text it had where it happened; `None`
/// while the run is queued or running.
pub(crate) fn outcome_of(
    run_id: RunId,
    worker: &str,
    state: RunState,
    kind: Option<&str>,
    detail: Option<&str>,
    output: Option<Value>,
) -> Option<Result<Value>> {
    let outcome = state.outcome()?;
    Some(match outcome {
        Outcome::Succeeded => Ok(output.unwrap_or(Value::Null)),
        Outcome::Cancelled => Err(Error::Cancelled {
            worker: worker.to_owned(),
            run_id: run_id.to_string(),
        }),
        Outcome::Failed | Outcome::TimedOut | Outcome::Panicked | Outcome::Stalled => {
            Err(Error::from_kind(
                kind.unwrap_or("error"),
                detail.unwrap_or(outcome.as_str()),
                worker,
                &run_id.to_string(),
            ))
        }
    })
}

/// A state as stored. One this version doesn't know (written by a newer
/// node during a rolling upgrade) reads as failed, so that nothing waits
/// on it for ever.
pub(crate) fn stored_state(text: &str) -> RunState {
    text.parse().unwrap_or(RunState::Ended(Outcome::Failed))
}

/// Waits for a run's outcome.
pub(crate) async fn outcome(db: &Db, run: Uuid, worker: &str) -> Result<Value> {
    let mut watch = db.bus.watch(run);
    let result = loop {
        watch.borrow_and_update();
        let row: std::result::Result<Option<OutcomeRow>, _> =
            sqlx::query_as(db.sql.outcome.clone())
                .persistent(false)
                .bind(run)
                .fetch_optional(&db.pool)
                .await;
        match row {
            Ok(Some(OutcomeRow {
                state,
                error_kind: kind,
                error: detail,
                output,
            })) => {
                if let Some(outcome) = outcome_of(
                    RunId::from(run),
                    worker,
                    stored_state(&state),
                    kind.as_deref(),
                    detail.as_deref(),
                    output,
                ) {
                    break outcome;
                }
            }
            Ok(None) => {
                break Err(Error::msg(format!(
                    "Run '{run}' of worker '{worker}' is gone: it ended more than the retention period ago"
                )));
            }
            Err(err) => {
                log::debug!(target: "worker_postgres", "run {run}: can't read its outcome yet: {err}")
            }
        }
        if watch.changed().await.is_err() {
            tokio::time::sleep(bus::BACKSTOP).await;
        }
    };
    db.bus.unwatch(run, watch);
    result
}

/// Asks a run to stop, wherever it is, and waits until it has ended
/// (a queued run ends at once; a running one within its node's grace
/// period, or once its lease lapses if its node is gone).
pub(crate) async fn cancel(db: &Db, run_id: RunId) -> Result<()> {
    let id = run_id.as_uuid();
    let mut conn = db.reach.connection("cancel a run").await?;
    let mut tx = conn
        .begin()
        .await
        .map_err(|err| db.reach.error("cancel a run", err))?;
    let mut state: Option<String> = None;
    // Twice: a run claimed between the statement's snapshot and its
    // row lock is neither queued nor running to it.
    for _ in 0..2 {
        state = sqlx::query_scalar(db.sql.cancel.clone())
            .persistent(false)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|err| db.reach.error("cancel a run", err))?;
        if state.is_some() {
            break;
        }
    }
    let Some(state) = state else {
        return Err(Error::RunNotFound(run_id.to_string()));
    };
    // Queued: ended at once. Running: its node is told to stop it.
    let ended_at_once = stored_state(&state).is_ended();
    let note = if ended_at_once {
        Note::Ended
    } else {
        Note::Cancel
    };
    bus::notify(&mut tx, &db.sql, note, &[id])
        .await
        .map_err(|err| db.reach.error("cancel a run", err))?;
    tx.commit()
        .await
        .map_err(|err| db.reach.error("cancel a run", err))?;
    if ended_at_once {
        return Ok(());
    }
    // Running somewhere: wait for its node to stop it.
    let patience = db.config.lease + Duration::from_secs(30);
    let mut watch = db.bus.watch(id);
    let waited = tokio::time::timeout(patience, async {
        loop {
            watch.borrow_and_update();
            let state: Option<(String, String)> = sqlx::query_as(db.sql.run_state.clone())
                .persistent(false)
                .bind(id)
                .fetch_optional(&db.pool)
                .await
                .ok()
                .flatten();
            if state.is_none_or(|(_, state)| stored_state(&state).is_ended()) {
                return;
            }
            if watch.changed().await.is_err() {
                tokio::time::sleep(bus::BACKSTOP).await;
            }
        }
    })
    .await;
    db.bus.unwatch(id, watch);
    if waited.is_err() {
        log::warn!(target: "worker_postgres", "run {run_id}: asked to stop, still running after {patience:?}");
    }
    Ok(())
}
