//! The hot table's lanes (migration 5): clearing the oldest one.
//!
//! `runs` is three partitions. A run is inserted into the lane of the
//! current `PERIOD` (see `layout`) and stays there until it ends (its row then moves to
//! `ended_runs`). In period `p` the lane `p % 3` fills, the lane of `p - 1`
//! drains as its runs end, and the lane of `p - 2`, current again in
//! `p + 1`, is cleared here: what it still holds (runs queued for long, or
//! running for long) moves to the current lane, and it is truncated.
//!
//! Why truncate rather than vacuum: every run leaves dead row versions in
//! the hot table (its insert, its claim, its renewals, its move out), and
//! vacuum may remove a dead version only once no snapshot can see it. One
//! session idle in a transaction pins that horizon, and then the table and
//! its indexes grow by thousands of dead entries a second that every claim
//! walks. TRUNCATE drops the lane's files whatever snapshot anyone holds,
//! so each lane holds at most three periods of churn however long a
//! transaction stays open. This is how PgQ keeps its queues flat.
//!
//! The clearing takes the lane's ACCESS EXCLUSIVE lock, which waits for the
//! statements using the lane to finish and makes new ones wait behind it.
//! So it gives up after [`LOCK_WAIT`] (a transaction of the application's
//! holds the lane: next time), and it moves at most [`MOST_MOVED`] runs (a
//! lane with a large backlog still waiting in it is left alone; vacuum
//! keeps it, as before the lanes).

use sqlx::{PgPool, Postgres, Transaction};

use crate::layout::LANES;
use crate::sql::Sql;

/// How long the clearing waits for the lane's lock before it gives up.
const LOCK_WAIT: &str = "50ms";

/// The most runs a clearing moves to the current lane.
const MOST_MOVED: i64 = 5_000;

/// What a call of [`clear_oldest`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Cleared {
    /// The lane was truncated after `moved` runs moved out of it.
    Truncated { lane: usize, moved: u64 },
    /// The lane is already empty (another node cleared it this period).
    AlreadyEmpty,
    /// Its lock was held longer than [`LOCK_WAIT`], or another clearing
    /// is under way.
    Busy,
    /// It holds more than [`MOST_MOVED`] runs still queued or running.
    Full,
}

/// Clears the lane that will be current next, if it needs it.
pub(crate) async fn clear_oldest(pool: &PgPool, sql: &Sql) -> Result<Cleared, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let (lane, bytes): (i16, i64) = sqlx::query_as(sql.oldest_lane.clone())
        .bind(&sql.schema)
        .fetch_one(&mut *tx)
        .await?;
    let lane = usize::try_from(lane).unwrap_or(0) % LANES;
    if bytes == 0 {
        return Ok(Cleared::AlreadyEmpty);
    }
    clear(tx, sql, lane).await
}

/// Clears `lane` now, whichever period it is: moves what it holds to the
/// current lane and truncates it. (The moved runs keep their id, lease
/// token and `run_at`: their node, their handles and the claim cursor find
/// them as before.)
pub(crate) async fn clear(
    mut tx: Transaction<'_, Postgres>,
    sql: &Sql,
    lane: usize,
) -> Result<Cleared, sqlx::Error> {
    // One clearing at a time in the schema: two that counted the same
    // lane would each hold its share lock and wait for the other's to
    // take the exclusive one, a deadlock.
    let alone: bool = sqlx::query_scalar(sql.lanes_guard.clone())
        .fetch_one(&mut *tx)
        .await?;
    if !alone {
        return Ok(Cleared::Busy);
    }
    // Counted before the lock, which every claim and ending waits behind:
    // while a long transaction pins the horizon, the count walks the
    // lane's dead rows for a few hundred milliseconds. Nothing is inserted
    // into a lane that isn't current, so the count of the lane cleared on
    // time can only fall before the lock is taken (and [`MOST_MOVED`]
    // bounds the clearing's cost, not what is correct).
    let held: i64 = sqlx::query_scalar(sql.lane_rows[lane].clone())
        .bind(MOST_MOVED + 1)
        .fetch_one(&mut *tx)
        .await?;
    if held > MOST_MOVED {
        return Ok(Cleared::Full);
    }
    sqlx::raw_sql(sql.text(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'")))
        .execute(&mut *tx)
        .await?;
    match sqlx::raw_sql(sql.lock_lane[lane].clone())
        .execute(&mut *tx)
        .await
    {
        Ok(_) => {}
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("55P03") => {
            return Ok(Cleared::Busy);
        }
        Err(err) => return Err(err),
    }
    let moved = sqlx::query(sql.move_lane[lane].clone())
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::raw_sql(sql.truncate_lane[lane].clone())
        .execute(&mut *tx)
        .await?;
    sqlx::query(sql.lane_cleared.clone())
        .bind(i16::try_from(lane).unwrap_or(0))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Cleared::Truncated { lane, moved })
}
