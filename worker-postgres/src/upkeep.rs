//! A node's upkeep of the tables it shares with the cluster, each chore on
//! its own loop and period: reaping lapsed leases, the heartbeat, folding
//! statistics, keeping the history (`history`), clearing the hot table's
//! lanes (`lanes`) and vacuuming it. Every node does it, also one that
//! only calls: a cluster of callers still recovers what the dead left
//! behind. (Lease renewal is the executor's, in `leases`.)

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;
use worker_core::{Error, Outcome, Result, RunState};

use crate::bus::{self, Note};
use crate::config::Config;
use crate::events;
use crate::history;
use crate::lanes::{self, Cleared};
use crate::layout;
use crate::pace::Pace;
use crate::sql::{INDEXES_ONLY, Sql};
use crate::stop::Stop;

/// How often leases lapsed elsewhere are looked for: it bounds how long a
/// dead node's run waits past its lease.
const REAP_EVERY: Duration = Duration::from_millis(250);

/// How often the history's slots are looked at (truncated past the
/// retention, moved on: see `history`), and old ticks and nodes deleted.
const PURGE_EVERY: Duration = Duration::from_secs(5);

/// How often the hot table is vacuumed, by one node of the cluster at a
/// time (its lanes are cleared on a loop of their own: see `lanes_loop`). Every run
/// leaves three dead row versions in `runs` (its insert, its claim, its
/// move to `ended_runs`); autovacuum visits a database about once a
/// minute, by which time a busy cluster has left millions. Vacuumed every
/// two seconds, each lane stays about as small as the work in flight
/// between its truncations.
const VACUUM_EVERY: Duration = Duration::from_secs(2);

/// How often statistics counted as runs end are folded into their
/// per-worker totals (see migration 4): it bounds how many rows a
/// `stats()` read adds up.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Reaping, vacuuming (while futile) and folding each take at most one
/// part in this many of the time (see `pace`).
const MAINTENANCE_SHARE: u32 = 20;

/// The kinds of upkeep that one node of the cluster does at a time.
#[derive(Debug, Clone, Copy)]
enum Chore {
    HotTable,
    History,
}

/// One node's upkeep.
pub(crate) struct Upkeep {
    config: Arc<Config>,
    /// The node's name, for its heartbeat.
    name: String,
    pool: PgPool,
    sql: Arc<Sql>,
    stop: Arc<Stop>,
}

impl Upkeep {
    /// Starts every chore; vacuum and lane clearing only on a node that
    /// executes (a node that only calls leaves the hot table to those).
    pub(crate) fn start(
        config: Arc<Config>,
        name: String,
        pool: PgPool,
        sql: Arc<Sql>,
        stop: Arc<Stop>,
    ) -> Arc<Upkeep> {
        let upkeep = Arc::new(Upkeep {
            config,
            name,
            pool,
            sql,
            stop,
        });
        tokio::spawn(upkeep.clone().reap_loop());
        tokio::spawn(upkeep.clone().beat_loop());
        tokio::spawn(upkeep.clone().fold_loop());
        tokio::spawn(upkeep.clone().purge_loop());
        if upkeep.config.execute {
            tokio::spawn(upkeep.clone().vacuum_loop());
            tokio::spawn(upkeep.clone().lanes_loop());
        }
        upkeep
    }

    /// Test hook: clears `lane` now (see `lanes::clear`).
    pub(crate) async fn clear_lane(&self, lane: usize) -> Result<Cleared> {
        let failed = |err: sqlx::Error| Error::msg(format!("can't clear lane {lane}: {err}"));
        let tx = self.pool.begin().await.map_err(failed)?;
        lanes::clear(tx, &self.sql, lane % layout::LANES)
            .await
            .map_err(failed)
    }

    /// Runs `chore` whenever `pace` says it is due, until the node stops.
    async fn every<F, Fut>(self: Arc<Self>, mut pace: Pace, mut chore: F)
    where
        F: FnMut(Arc<Self>) -> Fut,
        Fut: Future<Output = ()>,
    {
        while !self.stop.is_set() {
            if pace.is_due() {
                let started = Instant::now();
                chore(self.clone()).await;
                pace.done(started);
            }
            tokio::select! {
                () = tokio::time::sleep(pace.until_due()) => {}
                () = self.stop.wait() => return,
            }
        }
    }

    /// Reaps lapsed leases, paced (see `pace`): reaping reads the hot
    /// table, which gets slow while a long transaction holds vacuum back.
    async fn reap_loop(self: Arc<Self>) {
        let pace = Pace::new(REAP_EVERY, MAINTENANCE_SHARE, Duration::ZERO);
        self.every(pace, |upkeep| async move {
            if let Err(err) = upkeep.reap().await {
                log::debug!(target: "worker_postgres", "can't look for lapsed leases: {err}");
            }
        })
        .await;
    }

    /// Beats the node's heart every third of the lease, the first at once:
    /// the node shows up in `nodes()` as soon as it has started.
    async fn beat_loop(self: Arc<Self>) {
        let pace = Pace::new(self.config.lease / 3, 1, Duration::ZERO);
        self.every(pace, |upkeep| async move {
            if let Err(err) = upkeep.beat().await {
                log::warn!(target: "worker_postgres", "can't record this node's heartbeat: {err}");
            }
        })
        .await;
    }

    /// Folds the statistics counted as runs end into their totals.
    async fn fold_loop(self: Arc<Self>) {
        let pace = Pace::new(FOLD_EVERY, MAINTENANCE_SHARE, FOLD_EVERY);
        self.every(pace, |upkeep| async move {
            if let Err(err) = sqlx::query(upkeep.sql.fold_stats.clone())
                .execute(&upkeep.pool)
                .await
            {
                log::debug!(target: "worker_postgres", "can't fold statistics: {err}");
            }
        })
        .await;
    }

    /// Keeps the history within its retention, and old ticks and nodes.
    async fn purge_loop(self: Arc<Self>) {
        let pace = Pace::new(PURGE_EVERY, MAINTENANCE_SHARE, Duration::from_secs(1));
        self.every(pace, |upkeep| async move {
            if let Err(err) = upkeep.purge().await {
                log::warn!(target: "worker_postgres", "can't purge old runs: {err}");
            }
        })
        .await;
    }

    /// Clears the lane the next period fills, looking four times a period
    /// so that no period goes by without it (a look at a lane already
    /// cleared reads one size). Truncation frees a lane also while a
    /// transaction holds vacuum back, which is why the lanes exist.
    async fn lanes_loop(self: Arc<Self>) {
        let look = layout::PERIOD / 4;
        let pace = Pace::new(look, 1, look);
        self.every(pace, |upkeep| async move {
            upkeep.clear_oldest_lane().await;
        })
        .await;
    }

    /// Vacuums the hot table every [`VACUUM_EVERY`], on its own loop (a
    /// vacuum of a bloated table takes seconds, which the reaper must not
    /// wait). While a long transaction holds vacuum back, most of what it
    /// reads it can't remove: then it waits until the oldest snapshot
    /// moves (that transaction ended), or is paced (see `pace`) where it
    /// can't see the snapshots.
    async fn vacuum_loop(self: Arc<Self>) {
        let mut vacuuming = Pace::new(VACUUM_EVERY, MAINTENANCE_SHARE, VACUUM_EVERY);
        // Set while futile: the horizon the last vacuum met.
        let mut held_at: Option<Option<i64>> = None;
        while !self.stop.is_set() {
            tokio::select! {
                () = tokio::time::sleep(VACUUM_EVERY) => {}
                () = self.stop.wait() => return,
            }
            if let Some(held) = held_at {
                let moved = match (held, self.horizon().await) {
                    (Some(before), Some(now)) => now != before,
                    _ => false,
                };
                if !moved && !vacuuming.is_due() {
                    continue;
                }
            }
            let started = Instant::now();
            match self.vacuum().await {
                Ok(()) => {
                    vacuuming.done(started);
                    held_at = if self.vacuum_was_futile().await {
                        Some(self.horizon().await)
                    } else {
                        None
                    };
                }
                Err(err) => {
                    log::debug!(target: "worker_postgres", "can't vacuum the runs table: {err}");
                }
            }
        }
    }

    /// Clears the lane the next period fills (see `lanes`), unless
    /// another node is vacuuming or clearing.
    async fn clear_oldest_lane(&self) {
        let cleared = async {
            let mut conn = self.pool.acquire().await?;
            if !self.chore_lock(&mut conn, Chore::HotTable).await? {
                return Ok(None);
            }
            let cleared = lanes::clear_oldest(&self.pool, &self.sql).await;
            self.chore_unlock(&mut conn, Chore::HotTable).await?;
            cleared.map(Some)
        };
        match cleared.await {
            Ok(Some(Cleared::Truncated { lane, moved })) => {
                log::debug!(target: "worker_postgres", "truncated lane {lane} of the runs table after moving {moved} run(s) out of it");
            }
            Ok(Some(Cleared::Busy)) => {
                log::debug!(target: "worker_postgres", "a lane of the runs table is in use by a long transaction: not truncated this time");
            }
            Ok(Some(Cleared::Full)) => {
                log::debug!(target: "worker_postgres", "a lane of the runs table still holds a large backlog: not truncated this time");
            }
            Ok(Some(Cleared::AlreadyEmpty) | None) => {}
            Err(err) => {
                log::debug!(target: "worker_postgres", "can't clear a lane of the runs table: {err}");
            }
        }
    }

    /// Takes the cluster-wide lock of one kind of upkeep on `conn`, if it
    /// is free: [`Chore::HotTable`] (vacuum and lane clearing) or
    /// [`Chore::History`], one node at a time each.
    async fn chore_lock(
        &self,
        conn: &mut sqlx::PgConnection,
        chore: Chore,
    ) -> std::result::Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(self.chore_key(chore))
            .fetch_one(conn)
            .await
    }

    async fn chore_unlock(
        &self,
        conn: &mut sqlx::PgConnection,
        chore: Chore,
    ) -> std::result::Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(self.chore_key(chore))
            .execute(conn)
            .await
            .map(drop)
    }

    fn chore_key(&self, chore: Chore) -> String {
        let what = match chore {
            Chore::HotTable => "vacuum",
            Chore::History => "history",
        };
        format!("worker-postgres {what} {}", self.sql.schema)
    }

    /// The oldest snapshot of the sessions this role can see.
    async fn horizon(&self) -> Option<i64> {
        sqlx::query_scalar(self.sql.horizon.clone())
            .fetch_one(&self.pool)
            .await
            .ok()
            .flatten()
    }

    /// Whether the hot table holds far more dead row versions than live
    /// ones right after a vacuum: something holds the horizon back.
    async fn vacuum_was_futile(&self) -> bool {
        let counts: std::result::Result<Option<(i64, i64)>, _> =
            sqlx::query_as(self.sql.runs_dead.clone())
                .fetch_optional(&self.pool)
                .await;
        matches!(counts, Ok(Some((dead, live))) if dead > 10_000.max(10 * live))
    }

    /// Requeues (or fails as stalled) the runs whose lease lapsed.
    async fn reap(&self) -> std::result::Result<(), sqlx::Error> {
        let max_stalls = i32::try_from(self.config.max_stalls).unwrap_or(i32::MAX);
        let mut tx = self.pool.begin().await?;
        sqlx::raw_sql(INDEXES_ONLY).execute(&mut *tx).await?;
        let changed: Vec<(Uuid, String, String, Option<String>, f64)> =
            sqlx::query_as(self.sql.reap.clone())
                .persistent(false)
                .bind(max_stalls)
                .fetch_all(&mut *tx)
                .await?;
        if changed.is_empty() {
            return tx.commit().await;
        }
        // Requeued, or ended for good as stalled.
        let is_stalled = |state: &str| state.parse() == Ok(RunState::Ended(Outcome::Stalled));
        let stalled: Vec<Uuid> = changed
            .iter()
            .filter(|(_, _, state, _, _)| is_stalled(state))
            .map(|(id, ..)| *id)
            .collect();
        bus::notify(&mut tx, &self.sql, Note::Ended, &stalled).await?;
        if stalled.len() < changed.len() {
            bus::notify(&mut tx, &self.sql, Note::Queued, &[]).await?;
        }
        tx.commit().await?;
        for (id, worker, state, node, late_ms) in &changed {
            events::stalled(worker, *id, node.as_deref(), *late_ms, is_stalled(state));
        }
        Ok(())
    }

    /// Vacuums `runs` unless another node is doing it (a session advisory
    /// lock, held on this connection only while it vacuums).
    async fn vacuum(&self) -> std::result::Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if !self.chore_lock(&mut conn, Chore::HotTable).await? {
            return Ok(());
        }
        // Simple protocol: VACUUM can't run in the implicit transaction of
        // a prepared statement.
        let vacuumed = sqlx::raw_sql(self.sql.vacuum_runs.clone())
            .execute(&mut *conn)
            .await;
        self.chore_unlock(&mut conn, Chore::HotTable).await?;
        vacuumed.map(drop)
    }

    /// Records the node's heartbeat, for `nodes()`.
    async fn beat(&self) -> std::result::Result<(), sqlx::Error> {
        sqlx::query(self.sql.node_beat.clone())
            .bind(&self.name)
            .bind(self.config.execute)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Keeps the history's slots (one node at a time: a session advisory
    /// lock), then deletes old ticks and silent nodes.
    async fn purge(&self) -> std::result::Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        if !self.chore_lock(&mut conn, Chore::History).await? {
            return Ok(());
        }
        let kept = history::keep(&self.pool, &self.sql, self.config.retention).await;
        self.chore_unlock(&mut conn, Chore::History).await?;
        let kept = kept?;
        if !kept.truncated.is_empty() || kept.opened.is_some() {
            log::info!(target: "worker_postgres", "history past its retention: truncated slot(s) {:?}; endings now go to slot {:?}", kept.truncated, kept.opened);
        }
        let retention_ms = self.config.retention.as_secs_f64() * 1e3;
        sqlx::query(self.sql.purge_rest.clone())
            .bind(retention_ms)
            .execute(&self.pool)
            .await
            .map(drop)
    }
}
