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

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use worker_core::{Error, Result};

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
    pub(crate) stored: oneshot::Sender<Result<()>>,
}

/// Starts the task that stores calls; it ends with the last sender.
pub(crate) fn start(pool: PgPool, sql: Arc<Sql>) -> mpsc::Sender<Call> {
    let (sender, receiver) = mpsc::channel(BATCH * 4);
    tokio::spawn(store(pool, sql, receiver));
    sender
}

async fn store(pool: PgPool, sql: Arc<Sql>, mut receiver: mpsc::Receiver<Call>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let result = insert(&pool, &sql, &batch).await.map_err(|err| {
            Error::msg(format!(
                "can't store the run in PostgreSQL, so it was not started: {err}; check that the database is reachable and try again"
            ))
        });
        for call in batch.drain(..) {
            let answer = match &result {
                Ok(()) => Ok(()),
                Err(error) => Err(Error::msg(error)),
            };
            let _ = call.stored.send(answer);
        }
    }
}

async fn insert(pool: &PgPool, sql: &Sql, batch: &[Call]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = batch.iter().map(|call| call.id).collect();
    let workers: Vec<&str> = batch.iter().map(|call| call.worker.as_str()).collect();
    let payloads: Vec<Option<&Value>> = batch.iter().map(|call| call.payload.as_ref()).collect();
    let timeouts: Vec<Option<i64>> = batch.iter().map(|call| call.timeout_ms).collect();
    let mut tx = pool.begin().await?;
    sqlx::query(sql.insert_runs.clone())
        .bind(&ids)
        .bind(&workers)
        .bind(&payloads)
        .bind(&timeouts)
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql.notify.clone())
        .bind(&sql.channel)
        .bind("q")
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
