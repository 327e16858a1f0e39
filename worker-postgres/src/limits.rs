//! Cluster-wide limits in the database: a limited worker's runs are
//! claimed one claimer at a time (an advisory lock per worker, held to
//! the end of the claim's transaction), by a statement that counts the
//! worker's running runs and recent starts, and each key's, in that same
//! transaction. No claimer can act on a count another has made stale, so
//! no limit is ever exceeded, by any number of nodes.
//!
//! A slot is a limited run with a lease: it is freed by its node's next
//! claim once the attempt stopped executing (recorded as the run's
//! `released_at`), or by the statement that ends the run, queues it again
//! for a retry (so a backoff holds none), or reaps it once its node
//! stopped renewing (so a node killed with -9 gives its slots back with
//! its leases). A start takes a rate token for one
//! period (see migration 10).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use worker_core::{BUSIEST_KEYS, KeyUse, LimitUse, WorkerOptions};

use crate::sql::{INDEXES_ONLY, Sql};

/// One worker's limits, as the claim statement takes them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    global_concurrency: Option<i64>,
    rate: Option<(i64, f64)>,
    keyed: bool,
    key_concurrency: Option<i64>,
    key_rate: Option<(i64, f64)>,
}

/// A rate as (count, period in ms).
fn rate_of(rate: Option<worker_core::Rate>) -> Option<(i64, f64)> {
    rate.map(|rate| (i64::from(rate.count()), rate.period().as_secs_f64() * 1e3))
}

fn count(limit: Option<usize>) -> Option<i64> {
    limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

impl Limits {
    /// Whether a claimed run holds a slot (of `global_concurrency` or
    /// `key_concurrency`) until its ending: then it must start at once.
    pub(crate) fn holds_slots(&self) -> bool {
        self.global_concurrency.is_some() || self.key_concurrency.is_some()
    }

    /// The worker's limits; `None` for a worker without any.
    pub(crate) fn of(options: &WorkerOptions) -> Option<Limits> {
        options.is_limited().then(|| Limits {
            global_concurrency: count(options.get_global_concurrency()),
            rate: rate_of(options.get_rate()),
            keyed: options.get_limit_by().is_some(),
            key_concurrency: count(options.get_key_concurrency()),
            key_rate: rate_of(options.get_key_rate()),
        })
    }
}

/// Claims at most `room` due runs of `worker` within its limits, in one
/// transaction: the worker's lock, then the claim, which first releases
/// the slots of `stopped` (runs of this node, with their lease tokens,
/// that stopped executing since its last claim).
#[expect(
    clippy::too_many_arguments,
    reason = "the claim statement's parameters, each named"
)]
pub(crate) async fn claim<R>(
    pool: &PgPool,
    sql: &Sql,
    worker: &str,
    node: &str,
    lease_ms: f64,
    room: usize,
    limits: &Limits,
    stopped: &[(Uuid, Uuid)],
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(INDEXES_ONLY).execute(&mut *tx).await?;
    sqlx::query(sql.limited_lock.clone())
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    if !stopped.is_empty() {
        let (ids, tokens): (Vec<Uuid>, Vec<Uuid>) = stopped.iter().copied().unzip();
        sqlx::query(sql.release_slots.clone())
            .bind(ids)
            .bind(tokens)
            .execute(&mut *tx)
            .await?;
    }
    let statement = if limits.keyed {
        sql.claim_limited_keyed.clone()
    } else {
        sql.claim_limited.clone()
    };
    let claimed: Vec<R> = sqlx::query_as(statement)
        .persistent(false)
        .bind(worker)
        .bind(node)
        .bind(lease_ms)
        .bind(i64::try_from(room).unwrap_or(i64::MAX))
        .bind(limits.global_concurrency)
        .bind(limits.rate.map(|(n, _)| n))
        .bind(limits.rate.map(|(_, ms)| ms))
        .bind(limits.key_concurrency)
        .bind(limits.key_rate.map(|(n, _)| n))
        .bind(limits.key_rate.map(|(_, ms)| ms))
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// Makes the worker's rate tokens, once per node start (a no-op when they
/// are there), and cuts a set made for a higher rate.
pub(crate) async fn prepare(
    pool: &PgPool,
    sql: &Sql,
    worker: &str,
    limits: &Limits,
) -> Result<(), sqlx::Error> {
    if let Some((count, _)) = limits.rate {
        sqlx::query(sql.rate_tokens.clone())
            .bind(worker)
            .bind(i32::try_from(count).unwrap_or(i32::MAX))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Drops the token sets of keys whose every token is free again, so that
/// the table holds only the keys started within their period. Under the
/// worker's lock: a claim decides from whether a key has a set.
pub(crate) async fn free_key_tokens(
    pool: &PgPool,
    sql: &Sql,
    worker: &str,
    limits: &Limits,
) -> Result<(), sqlx::Error> {
    if limits.key_rate.is_none() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query(sql.limited_lock.clone())
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql.key_tokens_free.clone())
        .bind(worker)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// When the worker's next limited run is due, in ms from now: at most 0
/// when one is due already (a claim that took none was held back by a
/// limit), `None` when none is queued.
pub(crate) async fn next_due_ms(
    pool: &PgPool,
    sql: &Sql,
    worker: &str,
) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar(sql.limited_next_due.clone())
        .persistent(false)
        .bind(worker)
        .fetch_one(pool)
        .await
}

/// The worker's limits in use now, across the cluster.
pub(crate) async fn use_of(
    conn: &mut PgConnection,
    sql: &Sql,
    worker: &str,
    options: &WorkerOptions,
) -> Result<Option<LimitUse>, sqlx::Error> {
    if !options.is_limited() {
        return Ok(None);
    }
    let (running, started): (i64, i64) = sqlx::query_as(sql.limit_use.clone())
        .persistent(false)
        .bind(worker)
        .fetch_one(&mut *conn)
        .await?;
    let keys: Vec<(String, i64, i64, i64)> = if options.get_limit_by().is_some() {
        sqlx::query_as(sql.limit_keys_use.clone())
            .persistent(false)
            .bind(worker)
            .bind(BUSIEST_KEYS as i64)
            .fetch_all(&mut *conn)
            .await?
    } else {
        Vec::new()
    };
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Some(LimitUse {
        running: unsigned(running),
        global_concurrency: options.get_global_concurrency().map(|n| n as u64),
        started: if options.get_rate().is_some() {
            unsigned(started)
        } else {
            0
        },
        rate: options.get_rate(),
        keys: keys
            .into_iter()
            .map(|(key, running, started, queued)| KeyUse {
                key,
                running: unsigned(running),
                started: if options.get_key_rate().is_some() {
                    unsigned(started)
                } else {
                    0
                },
                queued: unsigned(queued),
            })
            .collect(),
    }))
}
