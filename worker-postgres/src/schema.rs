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
    (
        3,
        "ended runs in their own table; the hot table holds only queued and running runs",
        r#"
-- A run's row leaves `runs` in the statement that records its ending and
-- lands here. `runs` then stays as small as the work in flight, so claims
-- and renewals touch a table autovacuum keeps small, however much history
-- the retention keeps.
CREATE TABLE {s}.ended_runs (LIKE {s}.runs INCLUDING DEFAULTS);
ALTER TABLE {s}.ended_runs ADD PRIMARY KEY (id);
-- Retention, the dashboard's history and timeline.
CREATE INDEX ended_runs_at ON {s}.ended_runs (ended_at);
-- A worker's recent durations (its percentiles) and its history.
CREATE INDEX ended_runs_worker_at ON {s}.ended_runs (worker, ended_at);
-- The dashboard's failures first: without it, a history with no failure
-- in it is read whole to find none.
CREATE INDEX ended_runs_failed_at ON {s}.ended_runs (ended_at)
    WHERE state IN ('failed', 'timed_out', 'panicked', 'stalled');

-- Messages and attempts outlive their run's move (so first: the cascade
-- would delete them with the rows moved below); retention deletes them
-- with the run.
ALTER TABLE {s}.messages DROP CONSTRAINT IF EXISTS messages_run_id_fkey;
ALTER TABLE {s}.attempts DROP CONSTRAINT IF EXISTS attempts_run_id_fkey;

INSERT INTO {s}.ended_runs SELECT * FROM {s}.runs WHERE ended_at IS NOT NULL;
DELETE FROM {s}.runs WHERE ended_at IS NOT NULL;

-- The hot table's indexes: the claim (runs_queued) and the running runs,
-- keyed on a column a lease renewal never changes, so that a renewal (it
-- sets lease_until only) is a HOT update in place, with room left on each
-- page for it.
DROP INDEX {s}.runs_ended;
DROP INDEX {s}.runs_worker_ended;
DROP INDEX {s}.runs_leased;
ALTER TABLE {s}.runs SET (fillfactor = 70);

-- Every run, wherever it is, for people looking one up by hand.
CREATE VIEW {s}.all_runs AS
    SELECT * FROM {s}.runs UNION ALL SELECT * FROM {s}.ended_runs;
"#,
    ),
    (
        4,
        "statistics appended per ending batch and folded into stats, not updated per batch",
        r#"
-- Every batch of endings appends one row per worker here instead of
-- updating that worker's row in `stats`. One row updated hundreds of
-- times a second is a version chain that every update walks; while a long
-- transaction holds vacuum back the chain only grows, and each ending
-- batch pays for all of it. Nodes fold these rows into `stats` every
-- second (one statement: a reader sees them either here or there).
-- A node of version 3 still adds to `stats` directly: both add up.
CREATE TABLE {s}.stat_deltas (
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    worker      text NOT NULL,
    runs        bigint NOT NULL DEFAULT 0,
    errors      bigint NOT NULL DEFAULT 0,
    cancelled   bigint NOT NULL DEFAULT 0,
    timeouts    bigint NOT NULL DEFAULT 0,
    panics      bigint NOT NULL DEFAULT 0,
    stalled     bigint NOT NULL DEFAULT 0,
    retries     bigint NOT NULL DEFAULT 0,
    total_ms    double precision NOT NULL DEFAULT 0,
    last_run_ms double precision
);
"#,
    ),
    (
        5,
        "the hot table in three lanes, each truncated in turn instead of vacuumed",
        r#"
-- `runs` becomes three lanes (partitions). A run is inserted into the
-- lane of the current 10-second period (the `lane` default; see
-- `lanes.rs`, which must agree on the 10 and the 3) and stays there until
-- it ends. Each period, the lane that will be current next, the one
-- filled two periods ago, is cleared: its few runs still queued or
-- running move to the current lane and it is truncated. TRUNCATE drops
-- the lane's files whatever snapshot a session holds, so a long
-- transaction that keeps vacuum from removing dead rows no longer lets
-- the hot table grow: each lane holds at most 30 seconds of churn.
--
-- A node of version 3 or 4 works beside this one: its statements name
-- `runs` and its columns, which a partitioned table answers the same.
ALTER TABLE {s}.runs RENAME TO runs_before_lanes;
CREATE TABLE {s}.runs (
    LIKE {s}.runs_before_lanes INCLUDING DEFAULTS,
    lane smallint NOT NULL
        DEFAULT ((floor(extract(epoch FROM now()) / 10))::int8 % 3)::int2
) PARTITION BY LIST (lane);
-- Room on each page for a lease renewal's HOT update (as in migration 3).
-- No autovacuum: the nodes vacuum the lanes every two seconds, and an
-- autovacuum of a lane would hold off its truncation (it gives way to a
-- lock only after a second, and the truncation waits 50 ms). No vacuum
-- truncation of a lane's empty end either: it takes the lane's exclusive
-- lock, for up to seconds, and the lanes are truncated whole anyway.
CREATE TABLE {s}.runs_lane_0 PARTITION OF {s}.runs FOR VALUES IN (0)
    WITH (fillfactor = 70, autovacuum_enabled = false, vacuum_truncate = false);
CREATE TABLE {s}.runs_lane_1 PARTITION OF {s}.runs FOR VALUES IN (1)
    WITH (fillfactor = 70, autovacuum_enabled = false, vacuum_truncate = false);
CREATE TABLE {s}.runs_lane_2 PARTITION OF {s}.runs FOR VALUES IN (2)
    WITH (fillfactor = 70, autovacuum_enabled = false, vacuum_truncate = false);
INSERT INTO {s}.runs (id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node,
    lease_token, lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
    error_kind, error, output, claimed_at)
SELECT id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node,
    lease_token, lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
    error_kind, error, output, claimed_at
FROM {s}.runs_before_lanes;
DROP VIEW {s}.all_runs;
DROP TABLE {s}.runs_before_lanes;
-- A partitioned table's unique index must hold the partition key, and a
-- run moves between lanes: ids are unique by construction (UUIDs made by
-- the caller's process), and `ended_runs` keeps its primary key, which
-- fails a second ending of one run.
CREATE INDEX runs_id ON {s}.runs (id);
CREATE INDEX runs_queued ON {s}.runs (run_at) WHERE state = 'queued';
CREATE INDEX runs_running ON {s}.runs (worker) WHERE state = 'running';

-- One row per lane: how often it was cleared, and when last.
CREATE TABLE {s}.lanes (
    lane       smallint PRIMARY KEY,
    clears     bigint NOT NULL DEFAULT 0,
    cleared_at timestamptz
);
INSERT INTO {s}.lanes (lane) VALUES (0), (1), (2);

CREATE VIEW {s}.all_runs AS
    SELECT id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node, lease_token,
           lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
           error_kind, error, output, claimed_at
    FROM {s}.runs
    UNION ALL
    SELECT id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node, lease_token,
           lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
           error_kind, error, output, claimed_at
    FROM {s}.ended_runs;
"#,
    ),
    (
        6,
        "the history in eight slots, each truncated whole after the retention",
        r#"
-- `ended_runs` becomes eight slots (partitions). Endings go to the
-- current slot; a slot stays current for a sixth of the retention, and a
-- slot whose newest run is past the retention is truncated whole (see
-- `history.rs`, which must agree on the 8). The history is then never
-- deleted from row by row: no dead rows, which a long transaction would
-- keep from vacuum, and a size bounded by the retention.
--
-- Nodes of versions 3 to 5 work beside this one: they name no slot, and
-- the default puts their endings in the current one; their purge deletes
-- rows, which only this version's truncation then frees for good.
CREATE TABLE {s}.history (
    slot        smallint PRIMARY KEY,
    current     boolean NOT NULL DEFAULT false,
    opened_at   timestamptz,
    truncations bigint NOT NULL DEFAULT 0
);
INSERT INTO {s}.history (slot, current, opened_at)
    SELECT i, i = 0, CASE WHEN i = 0 THEN now() END FROM generate_series(0, 7) i;
-- One current slot, found by index by every ending.
CREATE UNIQUE INDEX history_current ON {s}.history (current) WHERE current;
CREATE FUNCTION {s}.current_slot() RETURNS smallint LANGUAGE sql STABLE
    AS 'SELECT slot FROM {s}.history WHERE current';

-- The history so far is slot 0, as it is: no copy.
DROP VIEW {s}.all_runs;
ALTER TABLE {s}.ended_runs RENAME TO ended_runs_slot_0;
ALTER TABLE {s}.ended_runs_slot_0 DROP CONSTRAINT ended_runs_pkey;
ALTER TABLE {s}.ended_runs_slot_0 ADD COLUMN slot smallint NOT NULL DEFAULT 0;
-- Lets the attach below skip its own scan.
ALTER TABLE {s}.ended_runs_slot_0 ADD CONSTRAINT ended_runs_slot_0_slot CHECK (slot = 0);
CREATE TABLE {s}.ended_runs (LIKE {s}.ended_runs_slot_0 INCLUDING DEFAULTS)
    PARTITION BY LIST (slot);
ALTER TABLE {s}.ended_runs ALTER COLUMN slot SET DEFAULT {s}.current_slot();
ALTER TABLE {s}.ended_runs ATTACH PARTITION {s}.ended_runs_slot_0 FOR VALUES IN (0);
ALTER TABLE {s}.ended_runs_slot_0 DROP CONSTRAINT ended_runs_slot_0_slot;
CREATE TABLE {s}.ended_runs_slot_1 PARTITION OF {s}.ended_runs FOR VALUES IN (1);
CREATE TABLE {s}.ended_runs_slot_2 PARTITION OF {s}.ended_runs FOR VALUES IN (2);
CREATE TABLE {s}.ended_runs_slot_3 PARTITION OF {s}.ended_runs FOR VALUES IN (3);
CREATE TABLE {s}.ended_runs_slot_4 PARTITION OF {s}.ended_runs FOR VALUES IN (4);
CREATE TABLE {s}.ended_runs_slot_5 PARTITION OF {s}.ended_runs FOR VALUES IN (5);
CREATE TABLE {s}.ended_runs_slot_6 PARTITION OF {s}.ended_runs FOR VALUES IN (6);
CREATE TABLE {s}.ended_runs_slot_7 PARTITION OF {s}.ended_runs FOR VALUES IN (7);
-- Slot 0's indexes of migration 3 become these (the same definitions);
-- the id gets one of its own (a partitioned table's unique index must
-- hold the slot, and the lease fences endings to one per run).
CREATE INDEX ended_runs_id ON {s}.ended_runs (id);
CREATE INDEX ended_runs_by_end ON {s}.ended_runs (ended_at);
CREATE INDEX ended_runs_by_worker ON {s}.ended_runs (worker, ended_at);
CREATE INDEX ended_runs_by_failure ON {s}.ended_runs (ended_at)
    WHERE state IN ('failed', 'timed_out', 'panicked', 'stalled');

CREATE VIEW {s}.all_runs AS
    SELECT id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node, lease_token,
           lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
           error_kind, error, output, claimed_at
    FROM {s}.runs
    UNION ALL
    SELECT id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node, lease_token,
           lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
           error_kind, error, output, claimed_at
    FROM {s}.ended_runs;
"#,
    ),
    (
        7,
        "the timeline as a rollup per 5 seconds, folded with the statistics",
        r#"
-- The dashboard's timeline read every ended run of its window (millions
-- of rows under load), and four open dashboards took the cluster to a
-- third of its rate. Now each ending batch counts its endings per
-- 5-second bucket, outcome and duration class in the rows it already
-- appends to `stat_deltas`, and the fold that moves those rows into
-- `stats` moves them into `timeline` too, in the same statement: a reader
-- sees each ending in exactly one of the two. A duration class c holds
-- durations in [2^(c/4), 2^((c+1)/4)) ms, so a p95 read from the classes
-- is within 19 % of the exact one; class -32768 counts runs with no
-- duration (cancelled, stalled).
--
-- Nodes of version 6 append rows without a bucket: their endings count in
-- `stats` as before and miss the timeline until they are upgraded.
CREATE TABLE {s}.timeline (
    bucket_at      timestamptz NOT NULL,
    worker         text NOT NULL,
    state          text NOT NULL,
    duration_class smallint NOT NULL,
    runs           bigint NOT NULL,
    PRIMARY KEY (bucket_at, worker, state, duration_class)
);
-- The history kept so far, counted once, so the timeline and its
-- percentiles cover the whole retention from the first moment.
INSERT INTO {s}.timeline (bucket_at, worker, state, duration_class, runs)
    SELECT to_timestamp(floor(extract(epoch FROM ended_at) / 5) * 5), worker, state,
           CASE WHEN duration_ms IS NULL OR state IN ('cancelled', 'stalled') THEN -32768
                ELSE floor(4 * ln(greatest(duration_ms, 0.0009765625)) / ln(2)) END,
           count(*)
    FROM {s}.ended_runs
    GROUP BY 1, 2, 3, 4;
-- Last: it locks `stat_deltas`, which every ending batch appends to, until
-- the migration commits.
ALTER TABLE {s}.stat_deltas
    ADD COLUMN bucket_at      timestamptz,
    ADD COLUMN state          text,
    ADD COLUMN duration_class smallint;
"#,
    ),
    (
        8,
        "lanes current for 4 seconds instead of 10; no vacuum for inserts into the history",
        r#"
-- Under a transaction held open, nothing in a lane can be vacuumed, so
-- each claim walks the dead row versions of the last three periods: at
-- 20,000 runs a second and 10-second periods, about 700,000 of them. A
-- 4-second period keeps that to 12 seconds of churn, and the lanes clear
-- themselves 12 seconds after such a transaction ends instead of 30.
-- `layout::PERIOD` must agree (a unit test checks it).
--
-- A node of version 7 beside this one keeps clearing by 10-second
-- periods; it may then clear the lane this version fills, which moves
-- that lane's runs to another (nothing is lost, as in any clearing) until
-- it is upgraded.
ALTER TABLE {s}.runs ALTER COLUMN lane
    SET DEFAULT ((floor(extract(epoch FROM now()) / 4))::int8 % 3)::int2;

-- The history's slots are only ever inserted into and truncated whole:
-- vacuum has nothing to remove there. Yet autovacuum visited each slot
-- every minute or so for its inserts (to set visibility bits no query
-- uses), reading 1.5 GB of history at 20,000 runs a second, and right
-- after a long transaction ended it went through every slot in turn for
-- half a minute, which held the claims back. Inserts no longer trigger
-- it; analyze still runs, so the dashboard's queries keep their plans,
-- and an anti-wraparound vacuum still comes if a slot ever lives that
-- long.
ALTER TABLE {s}.ended_runs_slot_0 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_1 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_2 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_3 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_4 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_5 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_6 SET (autovacuum_vacuum_insert_threshold = -1);
ALTER TABLE {s}.ended_runs_slot_7 SET (autovacuum_vacuum_insert_threshold = -1);
"#,
    ),
    (
        9,
        "the job model: priorities, unique keys, paused workers",
        r#"
-- Higher starts first among due runs, across workers. Most runs have
-- priority 0: the claim reads them by `run_at` from its cursor as before,
-- and the few others through their own small index, from the front.
ALTER TABLE {s}.runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE {s}.runs ADD COLUMN key text;
ALTER TABLE {s}.ended_runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE {s}.ended_runs ADD COLUMN key text;
CREATE INDEX runs_queued_ranked ON {s}.runs (priority DESC, run_at)
    WHERE state = 'queued' AND priority <> 0;

-- At most one run per worker and key is queued, scheduled or running:
-- the primary key says so, whoever inserts. (`runs` is partitioned by
-- lane, and a unique index there would have to include the lane.) A
-- run's key is freed by the delete that takes the run out of `runs`,
-- whichever statement it is (an ending, a reaped stall, a cancel), and
-- not by moving a lane, which truncates.
CREATE TABLE {s}.run_keys (
    worker  text NOT NULL,
    key     text NOT NULL,
    run_id  uuid NOT NULL,
    PRIMARY KEY (worker, key)
);
CREATE FUNCTION {s}.free_key() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM {s}.run_keys k
    WHERE k.worker = OLD.worker AND k.key = OLD.key AND k.run_id = OLD.id;
    RETURN NULL;
END $$;
CREATE TRIGGER runs_free_key AFTER DELETE ON {s}.runs
    FOR EACH ROW WHEN (OLD.key IS NOT NULL) EXECUTE FUNCTION {s}.free_key();

-- Paused workers, for the whole cluster: the claim skips their runs.
CREATE TABLE {s}.paused (
    worker     text PRIMARY KEY,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
"#,
    ),
    (
        10,
        "cluster-wide limits: limit keys, rate tokens",
        r#"
-- A run of a worker with cluster-wide limits carries its limit key: the
-- value of the worker's `limit_by` field, or '' for a worker limited as a
-- whole. Such runs are claimed only by the limited claim, one claimer of
-- a worker at a time, which counts the worker's (and the key's) running
-- runs and recent starts in the same transaction. The general claim
-- leaves them, so its indexes leave them too.
ALTER TABLE {s}.runs ADD COLUMN limit_key text;
DROP INDEX {s}.runs_queued;
CREATE INDEX runs_queued ON {s}.runs (run_at) WHERE state = 'queued' AND limit_key IS NULL;
DROP INDEX {s}.runs_queued_ranked;
CREATE INDEX runs_queued_ranked ON {s}.runs (priority DESC, run_at)
    WHERE state = 'queued' AND priority <> 0 AND limit_key IS NULL;
-- Each key's waiting runs in start order, and the keys one by one.
CREATE INDEX runs_limited_queued ON {s}.runs (worker, limit_key, priority DESC, run_at)
    WHERE state = 'queued' AND limit_key IS NOT NULL;
-- What holds a slot: a limited run with a lease, until it is released.
-- Its node releases it in its next claim, once the attempt stopped
-- executing (`released_at`, kept with the run for the record), or the
-- statement that ends the run, queues it again or reaps it frees it with
-- the lease; so a node killed with -9 frees its slots when the reaper
-- takes its leases.
ALTER TABLE {s}.runs ADD COLUMN released_at timestamptz;
ALTER TABLE {s}.ended_runs ADD COLUMN released_at timestamptz;
CREATE INDEX runs_limited_running ON {s}.runs (worker, limit_key)
    WHERE lease_token IS NOT NULL AND limit_key IS NOT NULL AND released_at IS NULL;

-- A rate of N starts per period is N tokens: a start takes a free token
-- (one whose `until` has passed) and holds it for one period. A token is
-- used at most once in any window of the period, so no window holds more
-- than N starts, and a claim reads only the tokens it takes, however high
-- the rate. Scope 0: the worker's `rate` (key ''); scope 1: its
-- `key_rate`, a set per key, made by the first start of the key and
-- dropped once all of it is free again.
CREATE TABLE {s}.limit_tokens (
    worker  text NOT NULL,
    scope   smallint NOT NULL,
    key     text NOT NULL,
    n       integer NOT NULL,
    until   timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (worker, scope, key, n)
);
CREATE INDEX limit_tokens_free ON {s}.limit_tokens (worker, scope, key, until);
"#,
    ),
    (
        11,
        "workflows: steps that wait for steps",
        r#"
-- A workflow and its steps, stored whole in one transaction. Each step is
-- a run of its worker, made with the workflow: a step whose parents
-- haven't all succeeded waits in `runs` with `run_at = 'infinity'`, which
-- no claim reaches, until the ending of its last parent releases it.
CREATE TABLE {s}.workflows (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    steps       integer NOT NULL,
    steps_ended integer NOT NULL DEFAULT 0,
    -- running | succeeded | failed | cancelled
    state       text NOT NULL DEFAULT 'running',
    cancelled   boolean NOT NULL DEFAULT false,
    failed_step text,
    error_kind  text,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);
CREATE INDEX workflows_recent ON {s}.workflows (created_at);
CREATE INDEX workflows_ended ON {s}.workflows (ended_at) WHERE ended_at IS NOT NULL;
CREATE TABLE {s}.workflow_steps (
    workflow_id uuid NOT NULL REFERENCES {s}.workflows (id) ON DELETE CASCADE,
    step        text NOT NULL,
    position    integer NOT NULL,
    worker      text NOT NULL,
    run_id      uuid NOT NULL,
    parents     text[] NOT NULL,
    -- How many parents haven't succeeded yet.
    waiting     integer NOT NULL,
    -- When it starts once released: a delay, or an epoch time, in ms.
    delay_ms    float8,
    at_ms       float8,
    -- waiting | queued (released) | how its run ended
    state       text NOT NULL,
    -- The failed step that kept it from running.
    doomed_by   text,
    PRIMARY KEY (workflow_id, step)
);
CREATE INDEX workflow_steps_run ON {s}.workflow_steps (run_id);
ALTER TABLE {s}.runs ADD COLUMN workflow_id uuid;
ALTER TABLE {s}.runs ADD COLUMN step text;
-- The parents' outputs, set when the step is released:
-- {"step": {"worker": .., "output": ..}}.
ALTER TABLE {s}.runs ADD COLUMN inputs jsonb;

-- A step's run leaves `runs` (every ending deletes it: finished, failed for
-- good, cancelled, stalled): in the same transaction, its workflow takes
-- note. One ending of a workflow at a time (the workflow's row lock), so
-- the last parent's ending, and only it, sees its child's count reach 0
-- and releases the child: fan-in once, whichever nodes the parents ended
-- on. A step that failed for good dooms every step after it, which ends
-- here as cancelled, counted once; the other branches go on.
CREATE FUNCTION {s}.step_ended() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    flow     record;
    ended    record;
    child    record;
    released boolean := false;
BEGIN
    SELECT * INTO flow FROM {s}.workflows WHERE id = OLD.workflow_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT e.state, e.error_kind, e.error INTO ended
    FROM {s}.ended_runs e WHERE e.id = OLD.id;
    IF NOT FOUND THEN
        SELECT 'cancelled'::text AS state, 'cancelled'::text AS error_kind, NULL::text AS error
        INTO ended;
    END IF;
    UPDATE {s}.workflow_steps SET state = ended.state
    WHERE workflow_id = OLD.workflow_id AND step = OLD.step;

    IF ended.state = 'succeeded' THEN
        FOR child IN
            UPDATE {s}.workflow_steps s SET waiting = s.waiting - 1
            WHERE s.workflow_id = OLD.workflow_id AND OLD.step = ANY (s.parents)
            RETURNING s.step, s.run_id, s.waiting, s.delay_ms, s.at_ms, s.parents, s.state
        LOOP
            IF child.waiting = 0 AND child.state = 'waiting' AND NOT flow.cancelled THEN
                UPDATE {s}.runs r SET
                    run_at = CASE
                        WHEN child.at_ms IS NOT NULL THEN
                            greatest(now(), 'epoch'::timestamptz + child.at_ms * interval '1 millisecond')
                        ELSE now() + coalesce(child.delay_ms, 0) * interval '1 millisecond' END,
                    inputs = (
                        SELECT jsonb_object_agg(p.step, jsonb_build_object('worker', p.worker, 'output', e.output))
                        FROM {s}.workflow_steps p JOIN {s}.ended_runs e ON e.id = p.run_id
                        WHERE p.workflow_id = OLD.workflow_id AND p.step = ANY (child.parents))
                WHERE r.id = child.run_id;
                UPDATE {s}.workflow_steps SET state = 'queued'
                WHERE workflow_id = OLD.workflow_id AND step = child.step;
                released := true;
            END IF;
        END LOOP;
        IF released THEN
            -- As a new run's insert does: nodes look from now on.
            PERFORM pg_notify('{s}_worker_events',
                'q ' || floor(extract(epoch FROM now()) * 1000000)::int8);
        END IF;
    ELSIF pg_trigger_depth() = 1 AND NOT flow.cancelled AND flow.failed_step IS NULL THEN
        UPDATE {s}.workflows
        SET failed_step = OLD.step, error_kind = ended.error_kind, error = ended.error, state = 'failed'
        WHERE id = OLD.workflow_id;
        WITH RECURSIVE below (step) AS (
            SELECT s.step FROM {s}.workflow_steps s
            WHERE s.workflow_id = OLD.workflow_id AND OLD.step = ANY (s.parents)
            UNION
            SELECT s.step FROM {s}.workflow_steps s JOIN below b ON b.step = ANY (s.parents)
            WHERE s.workflow_id = OLD.workflow_id)
        UPDATE {s}.workflow_steps s SET doomed_by = OLD.step
        FROM below WHERE s.workflow_id = OLD.workflow_id AND s.step = below.step AND s.state = 'waiting';
        -- Each doomed run's delete comes back here, one level down: it
        -- counts as ended and dooms nothing.
        WITH gone AS (
            DELETE FROM {s}.runs r USING {s}.workflow_steps s
            WHERE s.workflow_id = OLD.workflow_id AND s.doomed_by = OLD.step
              AND r.id = s.run_id AND r.lease_token IS NULL
            RETURNING r.*),
        moved AS (
            INSERT INTO {s}.ended_runs (id, worker, payload, state, attempt, stalls, run_at, timeout_ms,
                node, cancel_requested, created_at, started_at, ended_at, duration_ms, error_kind, error,
                output, claimed_at, slot, priority, key, released_at)
            SELECT id, worker, payload, 'cancelled', attempt, stalls, run_at, timeout_ms, node, true,
                   created_at, started_at, now(), NULL, 'cancelled',
                   format('not run: step %L failed', OLD.step), NULL, claimed_at,
                   (SELECT h.slot FROM {s}.history h WHERE h.current), priority, key, released_at
            FROM gone
            RETURNING worker, state, NULL::double precision AS duration_ms)
        INSERT INTO {s}.stat_deltas (worker, cancelled, bucket_at, state, duration_class)
        SELECT worker, count(*), to_timestamp(floor(extract(epoch FROM now()) / 5) * 5), 'cancelled', -32768
        FROM moved GROUP BY worker;
    END IF;

    UPDATE {s}.workflows w SET
        steps_ended = w.steps_ended + 1,
        ended_at = CASE WHEN w.steps_ended + 1 >= w.steps THEN now() END,
        state = CASE
            WHEN w.steps_ended + 1 < w.steps OR w.state <> 'running' THEN w.state
            WHEN w.cancelled THEN 'cancelled'
            ELSE 'succeeded' END
    WHERE w.id = OLD.workflow_id;
    RETURN NULL;
END $$;
CREATE TRIGGER runs_step_ended AFTER DELETE ON {s}.runs
    FOR EACH ROW WHEN (OLD.workflow_id IS NOT NULL) EXECUTE FUNCTION {s}.step_ended();
"#,
    ),
    (
        12,
        "workflows take note of their steps' endings once per statement",
        r#"
-- Endings are written in batches (one statement ends up to hundreds of
-- runs). Migration 11's trigger took note of them one run at a time: a
-- dozen statements and a workflow lock per step. Here the workflows take
-- note once per statement, and each statement below covers every step that
-- ended in it. The workflows are locked in id order, so two nodes' batches
-- that share workflows wait for each other instead of deadlocking.
--
-- Also fixed: every step that fails for good dooms its own descendants.
-- Migration 11 doomed those of a workflow's first failure only, so a second
-- failed branch left its steps waiting, and its workflow running, for ever.
-- A step's row is updated as its parents end, when it is released and
-- when it ends; a workflow's as each step ends. Room on the page lets
-- those be HOT updates, which touch no index (new pages only: a table
-- upgraded in place gets there as it turns over).
ALTER TABLE {s}.workflow_steps SET (fillfactor = 50);
ALTER TABLE {s}.workflows SET (fillfactor = 50);
DROP TRIGGER runs_step_ended ON {s}.runs;
DROP FUNCTION {s}.step_ended();
-- Its statements join a batch of at most a few hundred endings to tables
-- that grow with every workflow: each row is looked up by its key. The
-- planner, guessing the batch's size, would hash whole tables instead (a
-- full pass over `workflow_steps` per batch was seen), so it may not.
CREATE FUNCTION {s}.steps_ended() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    released_n integer;
    failed_n   integer;
BEGIN
    IF NOT EXISTS (SELECT FROM gone WHERE workflow_id IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    -- One ending of a workflow at a time: the last parent's ending, and
    -- only it, sees its child's count reach 0 (fan-in once).
    PERFORM FROM {s}.workflows w
    WHERE w.id IN (SELECT g.workflow_id FROM gone g WHERE g.workflow_id IS NOT NULL)
    ORDER BY w.id FOR UPDATE;

    -- Each ended step's state; the children of those that succeeded count
    -- them off, and a child whose count reaches 0 is released with its
    -- parents' outputs. (A run deleted with no ending recorded was
    -- cancelled.)
    WITH ended AS (
        SELECT g.workflow_id, g.step, coalesce(e.state, 'cancelled') AS state
        FROM gone g LEFT JOIN {s}.ended_runs e ON e.id = g.id
        WHERE g.workflow_id IS NOT NULL),
    noted AS (
        UPDATE {s}.workflow_steps s SET state = ended.state
        FROM ended WHERE s.workflow_id = ended.workflow_id AND s.step = ended.step),
    counted AS (
        SELECT c.workflow_id, c.step, count(*)::int AS n
        FROM ended JOIN {s}.workflow_steps c
            ON c.workflow_id = ended.workflow_id AND ended.step = ANY (c.parents)
        -- (Only a waiting step counts its parents off: it can't have
        -- ended in this statement too, so no row is updated twice here.)
        WHERE ended.state = 'succeeded' AND c.state = 'waiting'
        GROUP BY c.workflow_id, c.step),
    decremented AS (
        UPDATE {s}.workflow_steps c SET
            waiting = c.waiting - counted.n,
            state = CASE WHEN c.waiting = counted.n AND c.state = 'waiting' AND NOT w.cancelled
                         THEN 'queued' ELSE c.state END
        FROM counted, {s}.workflows w
        WHERE c.workflow_id = counted.workflow_id AND c.step = counted.step AND w.id = c.workflow_id
        -- Released: its count reached 0 here, as it does only once.
        RETURNING c.workflow_id, c.run_id, c.parents, c.delay_ms, c.at_ms,
                  c.waiting = 0 AND c.state = 'queued' AS released),
    released AS (
        UPDATE {s}.runs r SET
            run_at = CASE
                WHEN d.at_ms IS NOT NULL THEN
                    greatest(now(), 'epoch'::timestamptz + d.at_ms * interval '1 millisecond')
                ELSE now() + coalesce(d.delay_ms, 0) * interval '1 millisecond' END,
            inputs = (
                SELECT jsonb_object_agg(p.step, jsonb_build_object('worker', p.worker, 'output', e.output))
                FROM {s}.workflow_steps p JOIN {s}.ended_runs e ON e.id = p.run_id
                WHERE p.workflow_id = d.workflow_id AND p.step = ANY (d.parents))
        FROM decremented d
        WHERE d.released AND r.id = d.run_id
        RETURNING r.id)
    SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM ended WHERE state <> 'succeeded')
    INTO released_n, failed_n;
    IF released_n > 0 THEN
        -- As a new run's insert does: nodes look from now on.
        PERFORM pg_notify('{s}_worker_events',
            'q ' || floor(extract(epoch FROM now()) * 1000000)::int8);
    END IF;

    -- A step that failed for good (not one of the steps doomed below,
    -- whose deletes come back here one level down) fails its workflow,
    -- unless an earlier step did, and dooms each step after it, which ends
    -- here as cancelled, counted once; the other branches go on.
    IF failed_n > 0 AND pg_trigger_depth() = 1 THEN
        WITH RECURSIVE failed AS (
            SELECT g.workflow_id, g.step, s.position,
                   coalesce(e.error_kind, 'cancelled') AS kind, e.error
            FROM gone g
            JOIN {s}.workflows w ON w.id = g.workflow_id
            JOIN {s}.workflow_steps s ON s.workflow_id = g.workflow_id AND s.step = g.step
            LEFT JOIN {s}.ended_runs e ON e.id = g.id
            WHERE NOT w.cancelled AND coalesce(e.state, 'cancelled') <> 'succeeded'),
        first AS (
            SELECT DISTINCT ON (workflow_id) workflow_id, step, kind, error
            FROM failed ORDER BY workflow_id, position),
        marked AS (
            UPDATE {s}.workflows w
            SET failed_step = first.step, error_kind = first.kind, error = first.error, state = 'failed'
            FROM first WHERE w.id = first.workflow_id AND w.failed_step IS NULL),
        below (workflow_id, step, failed_step, failed_position) AS (
            SELECT c.workflow_id, c.step, f.step, f.position
            FROM failed f JOIN {s}.workflow_steps c
                ON c.workflow_id = f.workflow_id AND f.step = ANY (c.parents)
            UNION
            SELECT c.workflow_id, c.step, b.failed_step, b.failed_position
            FROM below b JOIN {s}.workflow_steps c
                ON c.workflow_id = b.workflow_id AND b.step = ANY (c.parents)),
        doomed AS (
            UPDATE {s}.workflow_steps s SET doomed_by = b.failed_step
            FROM (SELECT DISTINCT ON (workflow_id, step) workflow_id, step, failed_step
                  FROM below ORDER BY workflow_id, step, failed_position) b
            WHERE s.workflow_id = b.workflow_id AND s.step = b.step
              AND s.state = 'waiting' AND s.doomed_by IS NULL
            RETURNING s.run_id, s.doomed_by),
        doomed_runs AS (
            DELETE FROM {s}.runs r USING doomed d
            WHERE r.id = d.run_id AND r.lease_token IS NULL
            RETURNING r.*, d.doomed_by),
        moved AS (
            INSERT INTO {s}.ended_runs (id, worker, payload, state, attempt, stalls, run_at, timeout_ms,
                node, cancel_requested, created_at, started_at, ended_at, duration_ms, error_kind, error,
                output, claimed_at, slot, priority, key, released_at)
            SELECT id, worker, payload, 'cancelled', attempt, stalls, run_at, timeout_ms, node, true,
                   created_at, started_at, now(), NULL, 'cancelled',
                   format('not run: step %L failed', doomed_by), NULL, claimed_at,
                   (SELECT h.slot FROM {s}.history h WHERE h.current), priority, key, released_at
            FROM doomed_runs
            RETURNING worker)
        INSERT INTO {s}.stat_deltas (worker, cancelled, bucket_at, state, duration_class)
        SELECT worker, count(*), to_timestamp(floor(extract(epoch FROM now()) / 5) * 5), 'cancelled', -32768
        FROM moved GROUP BY worker;
    END IF;

    UPDATE {s}.workflows w SET
        steps_ended = w.steps_ended + n.n,
        ended_at = CASE WHEN w.steps_ended + n.n >= w.steps THEN now() END,
        state = CASE
            WHEN w.steps_ended + n.n < w.steps OR w.state <> 'running' THEN w.state
            WHEN w.cancelled THEN 'cancelled'
            ELSE 'succeeded' END
    FROM (SELECT g.workflow_id, count(*)::int AS n FROM gone g
          WHERE g.workflow_id IS NOT NULL GROUP BY g.workflow_id) n
    WHERE w.id = n.workflow_id;
    RETURN NULL;
END $$;
CREATE TRIGGER runs_steps_ended AFTER DELETE ON {s}.runs
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.steps_ended();
"#,
    ),
];

/// How recent a node's heartbeat must be for migration 3 to take it for a
/// node of an older version still running (heartbeats come every third of
/// the lease, so this covers leases up to 3 minutes).
const LIVE_NODE: &str = "1 minute";

/// Creates the schema and applies the migrations it lacks, up to
/// `up_to` (`i32::MAX`: all of them).
pub(crate) async fn migrate(pool: &PgPool, sql: &Sql, up_to: i32) -> Result<()> {
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
    let known = MIGRATIONS.last().map_or(0, |(version, ..)| *version);
    if let Some(newer) = applied.iter().find(|&&version| version > known) {
        return Err(Error::msg(format!(
            "the schema {:?} in PostgreSQL has migration {newer}, which this version of worker-postgres (up to {known}) does not know: a newer version migrated it. Run this process with that version or newer",
            sql.schema
        )));
    }
    for (version, name, statements) in MIGRATIONS {
        if applied.contains(version) || *version > up_to {
            continue;
        }
        if *version == 3 && applied.contains(&1) {
            refuse_beside_live_nodes(&mut tx, sql).await?;
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

/// Migration 3 moves ended runs out of `runs`. A node of an older version
/// would still look for them there (its handles would take a run a newer
/// node ended for one past its retention), so the migration refuses to run
/// while such a node is alive, and says which.
async fn refuse_beside_live_nodes(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    sql: &Sql,
) -> Result<()> {
    let live: Vec<String> = sqlx::query_scalar(sql.text(&format!(
        "SELECT node FROM {{s}}.nodes WHERE heartbeat_at > now() - interval '{LIVE_NODE}' ORDER BY node"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(|err| Error::msg(format!("can't list the running nodes: {err}")))?;
    if live.is_empty() {
        return Ok(());
    }
    Err(Error::msg(format!(
        "can't upgrade the schema {:?} to version 3 (ended runs in their own table) while nodes of the older version run: {} (heartbeat within the last {LIVE_NODE}). Stop them, then start this version; a node stopped by kill -9 counts until its heartbeat is a minute old",
        sql.schema,
        live.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;
    use crate::layout::{LANES, PERIOD};

    #[test]
    fn the_latest_lane_default_agrees_with_the_layout() {
        let latest = MIGRATIONS
            .iter()
            .rev()
            .find(|(_, _, sql)| sql.contains("ALTER COLUMN lane") || sql.contains("lane smallint"))
            .expect("a migration sets the lane default");
        let default = format!(
            "extract(epoch FROM now()) / {}))::int8 % {LANES})::int2",
            PERIOD.as_secs()
        );
        assert!(
            latest.2.contains(&default),
            "migration {} must insert into lanes by layout::PERIOD ({default})",
            latest.0
        );
    }
}
