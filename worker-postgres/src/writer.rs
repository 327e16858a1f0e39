//! This node's outbox: the messages its runs emit and the endings it
//! records, written in batches, one transaction and one notification of
//! each kind per batch, in the order they were queued.
//!
//! Everything it writes is fenced by the run's lease token, so a node that
//! lost a lease changes nothing, and everything is idempotent (a message is
//! keyed by its run and number; an ending only changes a running run), so
//! a batch that failed halfway, or whose commit went unacknowledged, is
//! simply written again until the database takes it.
//!
//! The queue is bounded: when the database is slow, the tasks that feed it
//! wait, their runs' message buffers fill, and the runs are held (the
//! foundation's back-pressure).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use worker_core::Outcome;

use crate::bus::{self, Note};
use crate::sql::{INDEXES_ONLY, Sql};

/// How many items wait at most before their writers wait.
pub(crate) const QUEUE: usize = 8192;

/// Most items in one transaction.
const BATCH: usize = 2000;

/// What a node writes.
#[derive(Debug)]
pub(crate) enum Item {
    /// A message a run emitted.
    Message {
        run: Uuid,
        token: Uuid,
        seq: i32,
        attempt: i32,
        body: Value,
    },
    /// A run's ending; `done` says whether it was recorded (`false`: the
    /// lease was lost, someone else owns the run now).
    Finish {
        run: Uuid,
        token: Uuid,
        ending: Ending,
        done: oneshot::Sender<bool>,
    },
    /// A failed attempt (its `ending`) to try again after `delay_ms`.
    Retry {
        run: Uuid,
        token: Uuid,
        delay_ms: f64,
        ending: Ending,
        done: oneshot::Sender<bool>,
    },
    /// A run given back to the queue, due again after `delay_ms`: this
    /// node is shutting down, or the worker's queue here is full, or its
    /// lease is too close to lapsing to start it. `ran_ms`: how long the
    /// attempt ran before it was cut short, if it started.
    Release {
        run: Uuid,
        token: Uuid,
        delay_ms: f64,
        ran_ms: Option<f64>,
        done: oneshot::Sender<bool>,
    },
    /// Answers once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// How a run ended, as stored.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    pub(crate) outcome: Outcome,
    pub(crate) kind: Option<&'static str>,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<Value>,
    pub(crate) duration_ms: f64,
}

/// Starts the writer of node `node`; it ends when every sender is gone.
pub(crate) fn start(pool: PgPool, sql: Arc<Sql>, node: String) -> mpsc::Sender<Item> {
    let (sender, receiver) = mpsc::channel(QUEUE);
    tokio::spawn(write(pool, sql, node, receiver));
    sender
}

async fn write(pool: PgPool, sql: Arc<Sql>, node: String, mut receiver: mpsc::Receiver<Item>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let mut delay = Duration::from_millis(50);
        let recorded = loop {
            match write_batch(&pool, &sql, &node, &batch).await {
                Ok(recorded) => break recorded,
                Err(err) => {
                    log::warn!(
                        target: "worker_postgres",
                        "can't write {} messages and endings yet ({err}); trying again in {delay:?}",
                        batch.len()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        for item in batch.drain(..) {
            match item {
                Item::Finish { run, done, .. }
                | Item::Retry { run, done, .. }
                | Item::Release { run, done, .. } => {
                    let _ = done.send(recorded.contains(&run));
                }
                Item::Flush(done) => {
                    let _ = done.send(());
                }
                Item::Message { .. } => {}
            }
        }
    }
}

/// Writes one batch in one transaction; returns the runs whose ending,
/// retry or release was taken (the others had lost their lease).
async fn write_batch(
    pool: &PgPool,
    sql: &Sql,
    node: &str,
    batch: &[Item],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut messages = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut finishes = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::<Option<&str>>::new(),
        Vec::<Option<String>>::new(),
        Vec::<Option<Value>>::new(),
        Vec::new(),
    );
    let mut retries = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::<&str>::new(),
        Vec::<Option<&str>>::new(),
        Vec::<Option<String>>::new(),
        Vec::new(),
    );
    let mut releases = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for item in batch {
        match item {
            Item::Message {
                run,
                token,
                seq,
                attempt,
                body,
            } => {
                messages.0.push(*run);
                messages.1.push(*token);
                messages.2.push(*seq);
                messages.3.push(*attempt);
                messages.4.push(body.clone());
            }
            Item::Finish {
                run, token, ending, ..
            } => {
                finishes.0.push(*run);
                finishes.1.push(*token);
                finishes.2.push(ending.outcome.as_str());
                finishes.3.push(ending.kind);
                finishes.4.push(ending.error.clone());
                finishes.5.push(ending.output.clone());
                finishes.6.push(ending.duration_ms);
            }
            Item::Retry {
                run,
                token,
                delay_ms,
                ending,
                ..
            } => {
                retries.0.push(*run);
                retries.1.push(*token);
                retries.2.push(*delay_ms);
                retries.3.push(ending.outcome.as_str());
                retries.4.push(ending.kind);
                retries.5.push(ending.error.clone());
                retries.6.push(ending.duration_ms);
            }
            Item::Release {
                run,
                token,
                delay_ms,
                ran_ms,
                ..
            } => {
                releases.0.push(*run);
                releases.1.push(*token);
                releases.2.push(*delay_ms);
                releases.3.push(*ran_ms);
            }
            Item::Flush(_) => {}
        }
    }
    if messages.0.is_empty()
        && finishes.0.is_empty()
        && retries.0.is_empty()
        && releases.0.is_empty()
    {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(INDEXES_ONLY).execute(&mut *tx).await?;
    let mut messaged = Vec::new();
    let mut ended = Vec::new();
    // Runs queued again (retried, handed back): claimers are told where.
    let mut queued = false;
    if !messages.0.is_empty() {
        sqlx::query(sql.insert_messages.clone())
            .persistent(false)
            .bind(&messages.0)
            .bind(&messages.1)
            .bind(&messages.2)
            .bind(&messages.3)
            .bind(&messages.4)
            .execute(&mut *tx)
            .await?;
        messaged = messages.0.clone();
        messaged.dedup();
    }
    let mut recorded = Vec::new();
    if !retries.0.is_empty() {
        let retried: Vec<Uuid> = sqlx::query_scalar(sql.retry.clone())
            .persistent(false)
            .bind(&retries.0)
            .bind(&retries.1)
            .bind(&retries.2)
            .bind(&retries.3)
            .bind(&retries.4)
            .bind(&retries.5)
            .bind(&retries.6)
            .bind(node)
            .fetch_all(&mut *tx)
            .await?;
        if !retried.is_empty() {
            queued = true;
        }
        recorded.extend(retried);
    }
    if !finishes.0.is_empty() {
        ended = sqlx::query_scalar(sql.finish.clone())
            .persistent(false)
            .bind(&finishes.0)
            .bind(&finishes.1)
            .bind(&finishes.2)
            .bind(&finishes.3)
            .bind(&finishes.4)
            .bind(&finishes.5)
            .bind(&finishes.6)
            .fetch_all(&mut *tx)
            .await?;
        recorded.extend(ended.iter().copied());
    }
    if !releases.0.is_empty() {
        let released: Vec<Uuid> = sqlx::query_scalar(sql.release.clone())
            .persistent(false)
            .bind(&releases.0)
            .bind(&releases.1)
            .bind(&releases.2)
            .bind(&releases.3)
            .bind(node)
            .fetch_all(&mut *tx)
            .await?;
        if !released.is_empty() {
            queued = true;
        }
        recorded.extend(released);
    }
    bus::notify(&mut tx, sql, Note::Messages, &messaged).await?;
    bus::notify(&mut tx, sql, Note::Ended, &ended).await?;
    if queued {
        bus::notify(&mut tx, sql, Note::Queued, &[]).await?;
    }
    tx.commit().await?;
    Ok(recorded)
}
