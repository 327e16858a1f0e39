//! The tables, as versioned migrations: each applied once, in order,
//! recorded in `{schema}.migrations`, under an advisory lock so that nodes
//! starting at once don't race (the second waits, then finds nothing to
//! do).

use sqlx::PgPool;
use worker_core::{Error, Result};

use crate::sql::Sql;

/// `(version, what it does, statements)`, oldest first. Never edit one
/// that has shipped: add the next.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "runs, their messages, statistics, nodes and schedule ticks",
        r#"
CREATE TABLE {s}.runs (
    id               uuid PRIMARY KEY,
    worker           text NOT NULL,
    payload          jsonb,
    -- queued | running | succeeded | failed | timed_out | panicked | cancelled | stalled
    state            text NOT NULL DEFAULT 'queued',
    attempt          integer NOT NULL DEFAULT 1,
    stalls           integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    timeout_ms       bigint,
    node             text,
    lease_token      uuid,
    lease_until      timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    ended_at         timestamptz,
    duration_ms      double precision,
    error_kind       text,
    error            text,
    output           jsonb
);
-- The claim: the oldest due queued runs.
CREATE INDEX runs_queued ON {s}.runs (run_at) WHERE state = 'queued';
-- The reaper: leases that ran out.
CREATE INDEX runs_leased ON {s}.runs (lease_until) WHERE state = 'running';
-- running() and running_for().
CREATE INDEX runs_running ON {s}.runs (worker) WHERE state = 'running';
-- Retention, and a worker's recent durations for its percentiles.
CREATE INDEX runs_ended ON {s}.runs (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX runs_worker_ended ON {s}.runs (worker, ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE {s}.messages (
    run_id  uuid NOT NULL REFERENCES {s}.runs (id) ON DELETE CASCADE,
    seq     integer NOT NULL,
    attempt integer NOT NULL,
    body    jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Counted as runs end, in the transaction that records the ending: not
-- lost when ended runs are deleted after the retention period.
CREATE TABLE {s}.stats (
    worker      text PRIMARY KEY,
    runs        bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    cancelled   bigint NOT NULL DEFAULT 0,
    timeouts    bigint NOT NULL DEFAULT 0,
    panics      bigint NOT NULL DEFAULT 0,
    stalled     bigint NOT NULL DEFAULT 0,
    retries     bigint NOT NULL DEFAULT 0,
    skipped     bigint NOT NULL DEFAULT 0,
    total_ms    double precision NOT NULL DEFAULT 0,
    last_run_ms double precision
);

CREATE TABLE {s}.nodes (
    node         text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    executes     boolean NOT NULL
);

-- One row per scheduled tick taken: the primary key makes a tick run once
-- in the whole cluster.
CREATE TABLE {s}.ticks (
    worker  text NOT NULL,
    tick_at timestamptz NOT NULL,
    run_id  uuid NOT NULL,
    PRIMARY KEY (worker, tick_at)
);
"#,
    ),
    (
        2,
        "one row per attempt, and when the current attempt was claimed",
        r#"
-- Set by each claim: when the attempt in flight began (for its stall row).
ALTER TABLE {s}.runs ADD COLUMN claimed_at timestamptz;

-- Every attempt that executed and did not end the run, written in the
-- transaction that records its retry, stall or hand-back; deleted with its
-- run. The attempt that ends the run is the run's own row (its node,
-- claimed_at, ended_at, state, error and duration), so a run that succeeds
-- at once writes no row here.
CREATE TABLE {s}.attempts (
    run_id      uuid NOT NULL REFERENCES {s}.runs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    node        text,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    -- succeeded | failed | timed_out | panicked | cancelled | stalled |
    -- released (handed back unfinished by a node shutting down)
    outcome     text NOT NULL,
    error_kind  text,
    error       text,
    duration_ms double precision
);
CREATE INDEX attempts_run ON {s}.attempts (run_id, ended_at);
-- The dashboard's recent stalls.
CREATE INDEX attempts_stalled ON {s}.attempts (ended_at) WHERE outcome = 'stalled';
"#,
    ),
];

/// Creates the schema and applies the migrations it lacks.
pub(crate) async fn migrate(pool: &PgPool, sql: &Sql) -> Result<()> {
    let failed = |what: &str, err: sqlx::Error| {
        Error::msg(format!(
            "can't prepare the schema {:?} in PostgreSQL ({what}): {err}",
            sql.schema
        ))
    };
    let mut tx = pool.begin().await.map_err(|e| failed("connect", e))?;
    // Held until commit: one node migrates, the others wait their turn.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("worker-postgres migrations {}", sql.schema))
        .execute(&mut *tx)
        .await
        .map_err(|e| failed("lock", e))?;
    sqlx::query(sql.text("CREATE SCHEMA IF NOT EXISTS {s}"))
        .execute(&mut *tx)
        .await
        .map_err(|e| failed("create schema", e))?;
    sqlx::query(sql.text(
        "CREATE TABLE IF NOT EXISTS {s}.migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    ))
    .execute(&mut *tx)
    .await
    .map_err(|e| failed("create migrations table", e))?;
    let applied: Vec<i32> = sqlx::query_scalar(sql.text("SELECT version FROM {s}.migrations"))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| failed("read migrations", e))?;
    for (version, name, statements) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        sqlx::raw_sql(sql.text(statements))
            .execute(&mut *tx)
            .await
            .map_err(|e| failed(&format!("migration {version}"), e))?;
        sqlx::query(sql.text("INSERT INTO {s}.migrations (version, name) VALUES ($1, $2)"))
            .bind(version)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed("record migration", e))?;
        log::info!(target: "worker_postgres", "schema {}: applied migration {version} ({name})", sql.schema);
    }
    tx.commit().await.map_err(|e| failed("commit", e))
}
