//! The history's slots (migration 6): retention by truncating whole slots.
//!
//! `ended_runs` is `SLOTS` partitions. Endings go to the current slot; a
//! slot stays current for a sixth of the retention (`retention / (SLOTS -
//! 2)`), then the next one, empty, opens. A slot that is not current and
//! whose newest run ended longer ago than the retention is truncated,
//! after its runs' messages and attempts are deleted. So a run is kept for
//! at least the retention and at most a sixth of it longer, and the
//! history is never deleted from row by row: no dead rows for vacuum to
//! find (a delete leaves one per row, and while a transaction holds the
//! horizon back, none of them can go), and no table that grows while the
//! horizon is held, beyond what the retention keeps.
//!
//! If the next slot still holds runs within the retention (the retention
//! was made longer), the current slot stays open until it can move on.
//! Every node runs this, one at a time, with the retention it was given:
//! nodes sharing a schema should be given the same.

use std::time::Duration;

use sqlx::{PgPool, Row};

use crate::layout::SLOTS;
use crate::sql::Sql;

/// How long a truncation waits for its slot's lock (held by a dashboard
/// read, say) before it gives up until the next pass.
const LOCK_WAIT: &str = "200ms";

/// One slot, as `Sql::slots` reads it.
#[derive(Debug)]
struct Slot {
    slot: usize,
    current: bool,
    /// Since it was opened (when current).
    open_ms: Option<f64>,
    /// Bytes in its table: 0 once truncated, until something is written.
    bytes: i64,
    /// Since its newest run ended (none: no run in it).
    newest_ms: Option<f64>,
}

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Kept {
    /// Slots truncated.
    pub(crate) truncated: Vec<usize>,
    /// The slot opened, if the current one moved on.
    pub(crate) opened: Option<usize>,
}

/// Truncates the slots past the retention and moves the current slot on
/// when its time is up.
pub(crate) async fn keep(
    pool: &PgPool,
    sql: &Sql,
    retention: Duration,
) -> Result<Kept, sqlx::Error> {
    let retention_ms = retention.as_secs_f64() * 1e3;
    let slots = read(pool, sql).await?;
    let mut kept = Kept::default();
    for slot in &slots {
        let past = slot.newest_ms.is_none_or(|ms| ms > retention_ms);
        if !slot.current && slot.bytes > 0 && past && truncate(pool, sql, slot.slot).await? {
            kept.truncated.push(slot.slot);
        }
    }
    let Some(current) = slots.iter().find(|slot| slot.current) else {
        return Ok(kept);
    };
    let slot_ms = retention_ms / (SLOTS - 2) as f64;
    let next = (current.slot + 1) % SLOTS;
    let next_empty = slots[next].bytes == 0 || kept.truncated.contains(&next);
    if current.open_ms.is_none_or(|ms| ms >= slot_ms) && next_empty {
        let mut tx = pool.begin().await?;
        let closed = sqlx::query(sql.close_slot.clone())
            .bind(current.slot as i16)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if closed == 1 {
            sqlx::query(sql.open_slot.clone())
                .bind(next as i16)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            kept.opened = Some(next);
        }
    }
    Ok(kept)
}

async fn read(pool: &PgPool, sql: &Sql) -> Result<Vec<Slot>, sqlx::Error> {
    let rows = sqlx::query(sql.slots.clone())
        .persistent(false)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Slot {
                slot: usize::try_from(row.try_get::<i16, _>(0)?).unwrap_or(0) % SLOTS,
                current: row.try_get(1)?,
                open_ms: row.try_get(2)?,
                bytes: row.try_get(3)?,
                newest_ms: row.try_get(4)?,
            })
        })
        .collect()
}

/// Deletes a slot's messages and attempts, then truncates it; `false` if
/// its lock was held past [`LOCK_WAIT`].
async fn truncate(pool: &PgPool, sql: &Sql, slot: usize) -> Result<bool, sqlx::Error> {
    sqlx::query(sql.slot_messages_gone[slot].clone())
        .persistent(false)
        .execute(pool)
        .await?;
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(sql.text(&format!("SET LOCAL lock_timeout = '{LOCK_WAIT}'")))
        .execute(&mut *tx)
        .await?;
    match sqlx::raw_sql(sql.truncate_slot[slot].clone())
        .execute(&mut *tx)
        .await
    {
        Ok(_) => {}
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("55P03") => {
            return Ok(false);
        }
        Err(err) => return Err(err),
    }
    sqlx::query(sql.slot_truncated.clone())
        .bind(slot as i16)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}
