//! Storing runs that `call` and `run` start: concurrent calls share one
//! insert, one notification and one commit.
//!
//! Why: each commit waits for the disk, and PostgreSQL commits the
//! transactions that notified one at a time (under a server-wide lock held
//! until the commit is on disk), so a notification per call would make
//! concurrent calls queue up behind each other. One task takes every call
//! waiting, writes them together, and answers each once the batch is
//! committed; a lone call goes out at once.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use worker_core::{Error, Result};

use crate::bus::{self, Note};
use crate::reach::Reach;
use crate::sql::Sql;

/// Most calls in one insert.
const BATCH: usize = 1000;

/// A call waiting to be stored.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) id: Uuid,
    pub(crate) worker: String,
    pub(crate) payload: Option<Value>,
    pub(crate) timeout_ms: Option<i64>,
    /// When it was called: its wait for a connection counts from then.
    pub(crate) asked: Instant,
    pub(crate) stored: oneshot::Sender<Result<()>>,
}

/// Starts the task that stores calls; it ends with the last sender.
pub(crate) fn start(reach: Reach, sql: Arc<Sql>) -> mpsc::Sender<Call> {
    let (sender, receiver) = mpsc::channel(BATCH * 4);
    tokio::spawn(store(reach, sql, receiver));
    sender
}

async fn store(reach: Reach, sql: Arc<Sql>, mut receiver: mpsc::Receiver<Call>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let result = insert(&reach, &sql, &batch).await;
        for call in batch.drain(..) {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(same(error)),
            };
            let _ = call.stored.send(answer);
        }
    }
}

/// One batch's error for each of its calls (the error is not `Clone`).
fn same(error: &Error) -> Error {
    if error.is_unavailable() {
        Error::unavailable(error.to_string())
    } else {
        Error::msg(error)
    }
}

/// Stores a batch. An error before the commit leaves nothing stored; one
/// during the commit can't tell whether it was, and says so.
async fn insert(reach: &Reach, sql: &Sql, batch: &[Call]) -> Result<()> {
    const WHAT: &str = "store the run, so it was not started";
    let ids: Vec<Uuid> = batch.iter().map(|call| call.id).collect();
    let workers: Vec<&str> = batch.iter().map(|call| call.worker.as_str()).collect();
    let payloads: Vec<Option<&Value>> = batch.iter().map(|call| call.payload.as_ref()).collect();
    let timeouts: Vec<Option<i64>> = batch.iter().map(|call| call.timeout_ms).collect();
    let asked = batch
        .iter()
        .map(|call| call.asked)
        .min()
        .unwrap_or_else(Instant::now);
    let mut conn = reach.connection_for(WHAT, asked).await?;
    let mut tx = conn.begin().await.map_err(|err| reach.error(WHAT, err))?;
    sqlx::query(sql.insert_runs.clone())
        .bind(&ids)
        .bind(&workers)
        .bind(&payloads)
        .bind(&timeouts)
        .execute(&mut *tx)
        .await
        .map_err(|err| reach.error(WHAT, err))?;
    bus::notify(&mut tx, sql, Note::Queued, &[])
        .await
        .map_err(|err| reach.error(WHAT, err))?;
    tx.commit().await.map_err(|err| {
        reach.error(
            "confirm that the run was stored (the connection failed during the commit, so the run may have been stored and may start)",
            err,
        )
    })
}
