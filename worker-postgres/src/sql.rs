//! Every statement the backend sends, in one place, with the schema's
//! name filled in once at start (a validated identifier, never user input
//! at run time). Kept as `SqlStr`, which clones by reference count, so that
//! sqlx's statement cache sees the same text every time.

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};
use worker_core::{Error, Result};

use crate::cursor::QUEUED_AT;
use crate::layout::{LANES, PERIOD, SLOTS};

/// Sent first in the transactions of the hot path (claim, endings, reap),
/// and set on renewal's own connection: look runs up through their
/// indexes, never by reading a lane whole. The planner costs a few hundred
/// lookups by id above one read of a lane it takes for small (a lane was
/// empty moments ago), but the lane fills within its period, and while a
/// transaction holds vacuum back it holds every dead row version of it.
///
/// And no JIT compilation: a plan that must still read a table whole is
/// costed past JIT's threshold, and compiling it takes 100+ ms, for a
/// statement that runs in one.
pub(crate) const INDEXES_ONLY: &str = "SET LOCAL enable_seqscan = off; SET LOCAL jit = off";

/// The statements of one schema.
///
/// Every statement that changes runs it knows by id finds them with `r.id =
/// ANY(...)` and no join (see `HELD`): the planner's estimates of a table
/// that churns thousands of rows a second are often "one row", and with a
/// join it then either reads a whole index (and every dead entry in it)
/// instead of looking the ids up, or looks every id up once per row.
///
/// Statements that read `runs` or `ended_runs` are sent unnamed
/// (`persistent(false)` where they are run), so that each is planned with
/// its parameters and the current sizes of the lanes and slots. A plan
/// kept for the session was made while some lane or slot was empty or just
/// truncated, and read it whole ever after, as it filled up.
///
/// In `runs` (queued and running runs only), a run is running exactly when
/// it has a lease token: the claim sets both, and every statement that
/// queues a run again clears the token. Statements that find a run by its
/// id test the token, never `state`: a test of `state` lets the planner
/// read a partial index on it instead of the primary key, and while a long
/// transaction holds vacuum back those indexes hold millions of dead
/// entries (a renewal read all of them, for seconds).
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) schema: String,
    /// The `LISTEN`/`pg_notify` channel.
    pub(crate) channel: String,
    pub(crate) insert_runs: SqlStr,
    pub(crate) insert_run: SqlStr,
    pub(crate) notify: SqlStr,
    pub(crate) notify_queued: SqlStr,
    pub(crate) claim: SqlStr,
    pub(crate) next_due: SqlStr,
    pub(crate) limited_lock: SqlStr,
    pub(crate) release_slots: SqlStr,
    pub(crate) claim_limited: SqlStr,
    pub(crate) claim_limited_keyed: SqlStr,
    pub(crate) limited_next_due: SqlStr,
    pub(crate) limit_use: SqlStr,
    pub(crate) limit_keys_use: SqlStr,
    pub(crate) rate_tokens: SqlStr,
    pub(crate) key_tokens_free: SqlStr,
    pub(crate) insert_jobs: SqlStr,
    pub(crate) insert_workflow: SqlStr,
    pub(crate) insert_workflow_steps: SqlStr,
    pub(crate) insert_step_runs: SqlStr,
    pub(crate) workflow_plan: SqlStr,
    pub(crate) workflow_steps_now: SqlStr,
    pub(crate) workflow_now: SqlStr,
    pub(crate) cancel_workflow: SqlStr,
    pub(crate) workflows_recent: SqlStr,
    pub(crate) workflow_steps_of: SqlStr,
    pub(crate) copy_jobs: SqlStr,
    pub(crate) take_keys: SqlStr,
    pub(crate) key_holders: SqlStr,
    pub(crate) free_stale_key: SqlStr,
    pub(crate) replace_run: SqlStr,
    pub(crate) scheduled: SqlStr,
    pub(crate) pause: SqlStr,
    pub(crate) resume: SqlStr,
    pub(crate) is_paused: SqlStr,
    pub(crate) renew: SqlStr,
    pub(crate) reap: SqlStr,
    pub(crate) insert_messages: SqlStr,
    pub(crate) finish: SqlStr,
    pub(crate) retry: SqlStr,
    pub(crate) release: SqlStr,
    pub(crate) cancel: SqlStr,
    pub(crate) run_state: SqlStr,
    pub(crate) cancel_asked: SqlStr,
    pub(crate) messages_after: SqlStr,
    pub(crate) outcome: SqlStr,
    pub(crate) running_all: SqlStr,
    pub(crate) running_of: SqlStr,
    pub(crate) stats: SqlStr,
    pub(crate) percentiles: SqlStr,
    pub(crate) tick: SqlStr,
    pub(crate) node_beat: SqlStr,
    pub(crate) history: SqlStr,
    pub(crate) history_failures: SqlStr,
    pub(crate) stored_run: SqlStr,
    pub(crate) attempts_of: SqlStr,
    pub(crate) recent_stalls: SqlStr,
    pub(crate) nodes: SqlStr,
    pub(crate) timeline: SqlStr,
    pub(crate) node_gone: SqlStr,
    pub(crate) purge_rest: SqlStr,
    pub(crate) fold_stats: SqlStr,
    pub(crate) vacuum_runs: SqlStr,
    pub(crate) runs_dead: SqlStr,
    pub(crate) horizon: SqlStr,
    pub(crate) oldest_lane: SqlStr,
    pub(crate) lane_cleared: SqlStr,
    pub(crate) lanes_guard: SqlStr,
    pub(crate) lock_lane: [SqlStr; LANES],
    pub(crate) lane_rows: [SqlStr; LANES],
    pub(crate) move_lane: [SqlStr; LANES],
    pub(crate) truncate_lane: [SqlStr; LANES],
    pub(crate) slots: SqlStr,
    pub(crate) slot_messages_gone: [SqlStr; SLOTS],
    pub(crate) truncate_slot: [SqlStr; SLOTS],
    pub(crate) slot_truncated: SqlStr,
    pub(crate) close_slot: SqlStr,
    pub(crate) open_slot: SqlStr,
}

/// What a dashboard reads of a run (see `rows::RunRow`).
const RUN_COLUMNS: &str = "id, worker, state, attempt, error_kind, error, payload, output,
    extract(epoch FROM created_at)::float8 * 1000 AS created_ms,
    extract(epoch FROM started_at)::float8 * 1000 AS started_ms,
    extract(epoch FROM ended_at)::float8 * 1000 AS ended_ms, duration_ms, node, key, priority,
    extract(epoch FROM run_at)::float8 * 1000 AS due_ms";

/// The columns an ended run keeps, in `{s}.ended_runs` as in `{s}.runs`.
const ENDED_COLUMNS: &str = "id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node,
    cancel_requested, created_at, started_at, ended_at, duration_ms, error_kind, error, output,
    claimed_at, slot, priority, key, released_at";

/// The slot of `{s}.ended_runs` that endings go to now (see `history`):
/// evaluated once per statement.
const CURRENT_SLOT: &str = "(SELECT h.slot FROM {s}.history h WHERE h.current)";

/// The columns of a run in `{s}.runs`, but its lane.
const RUN_ROW: &str = "id, worker, payload, state, attempt, stalls, run_at, timeout_ms, node,
    lease_token, lease_until, cancel_requested, created_at, started_at, ended_at, duration_ms,
    error_kind, error, output, claimed_at, priority, key, limit_key, released_at, workflow_id,
    step, inputs";

/// The runs of a batch that this node still holds: ids in `$1`, their
/// lease tokens in `$2`. No join: the ids drive one index lookup each (or
/// one hashed filter), where a join lets the planner look every id of the
/// batch up again for each row (with the lanes, the square of the batch).
/// Testing the token against the set is as strict as against its own
/// run's: a token is a random UUID made by one claim of one run.
const HELD: &str = "r.id = ANY($1) AND r.lease_token = ANY($2)";

/// Where a run of the batch is in the batch's arrays: a linear search,
/// for the statements whose batches are small (retries, hand-backs).
const AT: &str = "array_position($1::uuid[], r.id)";

/// A claim's lower bound of `run_at`, from the `cursor::From` in the
/// statement's last parameter (`NULL`: the front).
const FROM: &str = "coalesce('epoch'::timestamptz + $5 * interval '1 microsecond', '-infinity')";

/// Of the workers in `$3`, those not paused: evaluated once per claim.
const UNPAUSED: &str = "ARRAY(SELECT unnest($3::text[]) EXCEPT SELECT worker FROM {s}.paused)";

/// The claim of runs of one limited worker ($1) for node $2 (lease $3
/// ms), at most $4, within its limits: `global_concurrency` $5, `rate` $6
/// starts per $7 ms, `key_concurrency` $8, `key_rate` $9 starts per $10
/// ms (each `NULL` when not declared). Sent after `limited_lock`, so it
/// counts what no other claimer of the worker can change until commit.
///
/// Its clock is `clock_timestamp()` read once the lock is held, not
/// `now()`: a start recorded here is later than the commit of every
/// ending it counted as freed, so recorded intervals never overlap more
/// than the limit allows.
///
/// A rate's room is its free tokens (see migration 10), read no further
/// than the room wanted; each run claimed takes the token of its scope
/// free the longest. A key without tokens yet has all of them free, and
/// gets its set here. Tokens taken are updated by `ctid`, found under the
/// worker's lock (so no other statement moves them): a TID scan, whatever
/// the planner believes of a table that was just filled.
///
/// Slots released by `release_slots` just before, in the same
/// transaction, are not counted: this statement's snapshot is later.
///
/// `{CANDIDATES}` picks the runs (`id, priority, run_at`) from `room`.
const LIMITED_CLAIM: &str = "
WITH RECURSIVE t AS (SELECT clock_timestamp() AS at),
room AS (
    SELECT greatest(0, least($4,
        coalesce($5 - (SELECT count(*) FROM {s}.runs r
                       WHERE r.worker = $1 AND r.lease_token IS NOT NULL
                         AND r.limit_key IS NOT NULL AND r.released_at IS NULL), $4),
        CASE WHEN $6::int8 IS NULL THEN $4 ELSE
            (SELECT count(*) FROM (
                SELECT 1 FROM {s}.limit_tokens k, t
                WHERE k.worker = $1 AND k.scope = 0 AND k.key = '' AND k.until <= t.at
                  AND k.n < $6
                LIMIT $4) free) END
    )) AS n
    WHERE NOT EXISTS (SELECT 1 FROM {s}.paused p WHERE p.worker = $1)),
{CANDIDATES},
chosen AS (
    SELECT id FROM candidates ORDER BY priority DESC, run_at
    LIMIT coalesce((SELECT n FROM room), 0)),
claimed AS (
    UPDATE {s}.runs r
    SET state = 'running', node = $2, lease_token = gen_random_uuid(),
        lease_until = t.at + $3 * interval '1 millisecond',
        started_at = coalesce(r.started_at, t.at), claimed_at = t.at, released_at = NULL
    FROM t
    WHERE r.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING r.id, r.worker, r.payload, r.attempt, r.timeout_ms, r.lease_token,
        (SELECT coalesce(max(m.seq) + 1, 0) FROM {s}.messages m WHERE m.run_id = r.id) AS next_seq,
        r.cancel_requested, NULL::int8 AS cursor_at, r.priority,
        floor(extract(epoch FROM r.run_at) * 1000000)::int8 AS run_at_us, r.limit_key,
        r.workflow_id, r.step, r.inputs),
rate_taken AS (
    UPDATE {s}.limit_tokens k SET until = t.at + $7 * interval '1 millisecond'
    FROM t
    WHERE $6::int8 IS NOT NULL AND k.ctid = ANY(ARRAY(
        SELECT f.ctid FROM {s}.limit_tokens f, t
        WHERE f.worker = $1 AND f.scope = 0 AND f.key = '' AND f.until <= t.at AND f.n < $6
        ORDER BY f.until LIMIT (SELECT count(*) FROM claimed)))),
per_key AS (
    SELECT limit_key AS k, count(*) AS c,
           EXISTS (SELECT 1 FROM {s}.limit_tokens x
                   WHERE x.worker = $1 AND x.scope = 1 AND x.key = limit_key) AS has_tokens
    FROM claimed WHERE $9::int8 IS NOT NULL GROUP BY limit_key),
key_rate_taken AS (
    UPDATE {s}.limit_tokens k SET until = t.at + $10 * interval '1 millisecond'
    FROM t
    WHERE k.ctid = ANY(ARRAY(
        SELECT f.ctid FROM per_key, LATERAL (
            SELECT x.ctid FROM {s}.limit_tokens x, t
            WHERE x.worker = $1 AND x.scope = 1 AND x.key = per_key.k AND x.until <= t.at
              AND x.n < $9
            ORDER BY x.until LIMIT per_key.c) f
        WHERE per_key.has_tokens))),
key_tokens_made AS (
    INSERT INTO {s}.limit_tokens (worker, scope, key, n, until)
    SELECT $1, 1, per_key.k, g.n,
           CASE WHEN g.n < per_key.c THEN t.at + $10 * interval '1 millisecond'
                ELSE '-infinity' END
    FROM per_key, t, generate_series(0, $9::int4 - 1) g(n)
    WHERE NOT per_key.has_tokens
    ON CONFLICT DO NOTHING)
SELECT id, worker, payload, attempt, timeout_ms, lease_token, next_seq, cancel_requested,
       cursor_at, priority, run_at_us, workflow_id, step, inputs
FROM claimed";

/// Candidates of a worker limited as a whole: its first due runs.
const LIMITED_AS_A_WHOLE: &str = "
candidates AS (
    SELECT id, priority, run_at FROM {s}.runs
    WHERE worker = $1 AND limit_key = '' AND state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at
    LIMIT coalesce((SELECT n FROM room), 0)
    FOR UPDATE SKIP LOCKED)";

/// Candidates of a worker limited per key: the keys with due runs, one
/// index probe each (a skip scan), and of each key with room, its first
/// runs up to that room. So a key with a thousand waiting runs offers no
/// more than its room, and every other key with room is offered too.
const LIMITED_PER_KEY: &str = "
keys(k) AS (
    (SELECT limit_key FROM {s}.runs
     WHERE worker = $1 AND state = 'queued' AND limit_key IS NOT NULL AND run_at <= now()
     ORDER BY limit_key LIMIT 1)
    UNION ALL
    SELECT (SELECT r.limit_key FROM {s}.runs r
            WHERE r.worker = $1 AND r.state = 'queued' AND r.limit_key > keys.k
              AND r.run_at <= now()
            ORDER BY r.limit_key LIMIT 1)
    FROM keys WHERE keys.k IS NOT NULL),
key_room AS (
    SELECT keys.k, least(coalesce((SELECT n FROM room), 0),
        coalesce($8 - (SELECT count(*) FROM {s}.runs r
                       WHERE r.worker = $1 AND r.limit_key = keys.k
                         AND r.lease_token IS NOT NULL AND r.released_at IS NULL), $4),
        CASE WHEN $9::int8 IS NULL THEN $4
             WHEN NOT EXISTS (SELECT 1 FROM {s}.limit_tokens x
                              WHERE x.worker = $1 AND x.scope = 1 AND x.key = keys.k) THEN $9
             ELSE (SELECT count(*) FROM (
                       SELECT 1 FROM {s}.limit_tokens x, t
                       WHERE x.worker = $1 AND x.scope = 1 AND x.key = keys.k
                         AND x.until <= t.at AND x.n < $9
                       LIMIT $4) free) END) AS n
    FROM keys WHERE keys.k IS NOT NULL),
candidates AS (
    SELECT c.id, c.priority, c.run_at
    FROM key_room, LATERAL (
        SELECT r.id, r.priority, r.run_at FROM {s}.runs r
        WHERE r.worker = $1 AND r.limit_key = key_room.k AND r.state = 'queued'
          AND r.run_at <= now()
        ORDER BY r.priority DESC, r.run_at
        LIMIT greatest(key_room.n, 0)
        FOR UPDATE SKIP LOCKED) c
    WHERE key_room.n > 0)";

/// When a job's run may start, from its delay (ms, `d`) or its time
/// (epoch ms, `a`) on the database's clock: never before `now()`, which
/// the claim cursor takes for the earliest `run_at` a transaction writes.
const DUE: &str = "CASE WHEN a IS NOT NULL
        THEN greatest(now(), 'epoch'::timestamptz + a * interval '1 millisecond')
        ELSE now() + coalesce(d, 0) * interval '1 millisecond' END";

/// The head of the statement that keeps one row per attempt.
const ATTEMPTED: &str = "INSERT INTO {s}.attempts
    (run_id, attempt, node, started_at, ended_at, outcome, error_kind, error, duration_ms)";

/// Counts an ending into `{s}.stat_deltas`, from a CTE `ended(worker,
/// state, duration_ms)`: the rows the statement actually changed, so a
/// repeated statement (a retried batch) counts nothing twice. One row per
/// worker, outcome and duration class (see `rollup.rs`), in the 5-second
/// bucket of the ending, which the fold also adds to the timeline; each
/// row carries its worker's longest duration of the batch.
const COUNT_ENDINGS: &str = "
INSERT INTO {s}.stat_deltas (worker, runs, errors, cancelled, timeouts, panics, stalled, total_ms, last_run_ms,
                             bucket_at, state, duration_class)
SELECT worker,
       count(*) FILTER (WHERE state NOT IN ('cancelled')),
       count(*) FILTER (WHERE state IN ('failed', 'timed_out', 'panicked', 'stalled')),
       count(*) FILTER (WHERE state = 'cancelled'),
       count(*) FILTER (WHERE state = 'timed_out'),
       count(*) FILTER (WHERE state = 'panicked'),
       count(*) FILTER (WHERE state = 'stalled'),
       coalesce(sum(duration_ms) FILTER (WHERE state NOT IN ('cancelled', 'stalled')), 0),
       max(max(duration_ms) FILTER (WHERE state NOT IN ('cancelled', 'stalled'))) OVER (PARTITION BY worker),
       to_timestamp(floor(extract(epoch FROM now()) / 5) * 5), state, class
FROM (SELECT worker, state, duration_ms,
             CASE WHEN duration_ms IS NULL OR state IN ('cancelled', 'stalled') THEN -32768
                  ELSE floor(4 * ln(greatest(duration_ms, 0.0009765625)) / ln(2)) END::int2 AS class
      FROM ended) classed
GROUP BY worker, state, class";

/// The per-worker sums of `{s}.stat_deltas` rows in a relation `d`: the
/// counters, then the latest `last_run_ms`.
const DELTA_SUMS: &str = "sum(d.runs)::int8 AS runs, sum(d.errors)::int8 AS errors,
    sum(d.cancelled)::int8 AS cancelled, sum(d.timeouts)::int8 AS timeouts,
    sum(d.panics)::int8 AS panics, sum(d.stalled)::int8 AS stalled,
    sum(d.retries)::int8 AS retries, sum(d.total_ms) AS total_ms,
    (array_agg(d.last_run_ms ORDER BY d.seq DESC) FILTER (WHERE d.last_run_ms IS NOT NULL))[1]
        AS last_run_ms";

impl Sql {
    /// The statements for `schema`, which must be a plain lower-case
    /// identifier (so that it needs no quoting anywhere).
    pub(crate) fn new(schema: &str) -> Result<Self> {
        let valid = !schema.is_empty()
            && schema.len() <= 48
            && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::validation(format!(
                "Postgres::schema: {schema:?} is not a usable schema name; use lower-case letters, digits and '_', starting with a letter (at most 48)"
            )));
        }
        let text = |template: &str| -> SqlStr {
            AssertSqlSafe(
                template
                    .replace("{ATTEMPTED}", ATTEMPTED)
                    .replace("{QUEUED_AT}", QUEUED_AT)
                    .replace("{FROM}", FROM)
                    .replace("{UNPAUSED}", UNPAUSED)
                    .replace("{DUE}", DUE)
                    .replace("{HELD}", HELD)
                    .replace("{CURRENT_SLOT}", CURRENT_SLOT)
                    .replace("{AT}", AT)
                    .replace("{DELTA_SUMS}", DELTA_SUMS)
                    .replace("{s}", schema),
            )
            .into_sql_str()
        };
        let count = COUNT_ENDINGS;
        let lanes = |statement: fn(usize) -> String| -> [SqlStr; LANES] {
            std::array::from_fn(|lane| text(&statement(lane)))
        };
        let slots = |statement: fn(usize) -> String| -> [SqlStr; SLOTS] {
            std::array::from_fn(|slot| text(&statement(slot)))
        };
        Ok(Sql {
            schema: schema.to_owned(),
            channel: format!("{schema}_worker_events"),
            insert_runs: text(
                "INSERT INTO {s}.runs (id, worker, payload, timeout_ms)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int8[])",
            ),
            // One statement: stored and announced together, also outside
            // a transaction.
            insert_run: text(
                "WITH stored AS (
                     INSERT INTO {s}.runs (id, worker, payload, timeout_ms) VALUES ($1, $2, $3, $4)
                     RETURNING id)
                 SELECT pg_notify($5, {QUEUED_AT}) FROM stored",
            ),
            notify: text("SELECT pg_notify($1, $2)"),
            // Says where the runs it queued are (see `cursor`).
            notify_queued: text("SELECT pg_notify($1, {QUEUED_AT})"),
            // The oldest due runs of the workers this node has, from its
            // cursor on ($5, see `cursor`), locked so that concurrent
            // claimers skip them. The lease runs on the database's clock.
            // Priority first, then `run_at`. Runs of priority 0 (most)
            // are read from the cursor on; the others, few, from the
            // front of their own index (highest first, so a negative
            // priority only comes up when no positive one fills the
            // batch, and the final order puts it after priority 0). Each
            // part locks at most `$4` (a union can't lock, so each is a
            // statement of its own); what the final cut leaves is unlocked
            // at commit, a moment later. Paused workers' runs are not read.
            claim: text(
                "WITH ranked AS (
                     SELECT id, priority, run_at FROM {s}.runs
                     WHERE state = 'queued' AND priority <> 0 AND run_at <= now()
                       AND worker = ANY({UNPAUSED}) AND limit_key IS NULL
                     ORDER BY priority DESC, run_at LIMIT $4 FOR UPDATE SKIP LOCKED),
                 plain AS (
                     SELECT id, priority, run_at FROM {s}.runs
                     WHERE state = 'queued' AND run_at <= now() AND worker = ANY({UNPAUSED})
                       AND run_at >= {FROM} AND priority = 0 AND limit_key IS NULL
                     ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED),
                 chosen AS (
                     SELECT id FROM (SELECT * FROM ranked UNION ALL SELECT * FROM plain) due
                     ORDER BY priority DESC, run_at
                     LIMIT $4)
                 UPDATE {s}.runs r
                 SET state = 'running', node = $1, lease_token = gen_random_uuid(),
                     lease_until = now() + $2 * interval '1 millisecond',
                     started_at = coalesce(r.started_at, now()), claimed_at = now()
                 WHERE r.id = ANY(ARRAY(SELECT id FROM chosen))
                 RETURNING r.id, r.worker, r.payload, r.attempt, r.timeout_ms, r.lease_token,
                     (SELECT coalesce(max(m.seq) + 1, 0) FROM {s}.messages m WHERE m.run_id = r.id),
                     r.cancel_requested,
                     CASE WHEN r.priority = 0
                          THEN floor(extract(epoch FROM r.run_at) * 1000000)::int8 END,
                     r.priority, floor(extract(epoch FROM r.run_at) * 1000000)::int8,
                     r.workflow_id, r.step, r.inputs",
            ),
            // As the claim reads: ranked runs from the front, the others
            // from the cursor on. A workflow's step waiting for its
            // parents ('infinity') is never due.
            next_due: text(
                "WITH workers AS (SELECT unnest($1::text[]) AS worker EXCEPT SELECT worker FROM {s}.paused)
                 SELECT extract(epoch FROM (least(
                     (SELECT min(run_at) FROM {s}.runs
                      WHERE state = 'queued' AND priority <> 0 AND limit_key IS NULL
                        AND run_at < 'infinity'
                        AND worker = ANY(ARRAY(SELECT worker FROM workers))),
                     (SELECT min(run_at) FROM {s}.runs
                      WHERE state = 'queued' AND priority = 0 AND limit_key IS NULL
                        AND worker = ANY(ARRAY(SELECT worker FROM workers))
                        AND run_at >= coalesce('epoch'::timestamptz + $2 * interval '1 microsecond', '-infinity')
                        AND run_at < 'infinity')
                 ) - now())) * 1000",
            ),
            // The slots of runs $1 (lease tokens $2) that stopped executing
            // on this node since its last claim, released at the start of
            // its next, under the worker's lock: a statement of its own,
            // so that the claim's snapshot, later, counts them as free, and
            // every start the claim records is later than these ends. So a
            // slot turns over once a claim, not a claim and the commit of
            // an ending.
            // A row locked meanwhile (by the outbox recording its ending,
            // or a renewal) is skipped, not waited for: waiting could
            // deadlock with an outbox batch locking the same rows in
            // another order, and the ending frees the slot anyway.
            release_slots: text(
                "UPDATE {s}.runs r SET released_at = clock_timestamp()
                 WHERE r.id = ANY(ARRAY(
                     SELECT x.id FROM {s}.runs x
                     WHERE x.id = ANY($1) AND x.lease_token = ANY($2) AND x.released_at IS NULL
                     FOR UPDATE SKIP LOCKED))",
            ),
            // One claimer of the limited worker $1 at a time, cluster-wide,
            // until its transaction ends: what the limited claim counts
            // can't change under it. A statement of its own, so that the
            // claim's snapshot is taken once the lock is held.
            limited_lock: text("SELECT pg_advisory_xact_lock(hashtext('{s}.limits'), hashtext($1))"),
            claim_limited: text(&LIMITED_CLAIM.replace("{CANDIDATES}", LIMITED_AS_A_WHOLE)),
            claim_limited_keyed: text(&LIMITED_CLAIM.replace("{CANDIDATES}", LIMITED_PER_KEY)),
            // In how many ms the limited worker $1 has a run due: 0 when
            // one is due now (then a claim that took none was held back
            // by a limit), NULL when none is queued.
            limited_next_due: text(
                "SELECT CASE
                     WHEN EXISTS (SELECT 1 FROM {s}.runs
                                  WHERE worker = $1 AND state = 'queued' AND limit_key IS NOT NULL
                                    AND run_at <= now()) THEN 0::float8
                     ELSE (SELECT extract(epoch FROM min(run_at) - now())::float8 * 1000
                           FROM {s}.runs
                           WHERE worker = $1 AND state = 'queued' AND limit_key IS NOT NULL
                             AND run_at < 'infinity') END",
            ),
            // A limited worker's use now: running, and its rate tokens
            // taken (the starts within the last period).
            limit_use: text(
                "SELECT (SELECT count(*) FROM {s}.runs
                         WHERE worker = $1 AND lease_token IS NOT NULL AND limit_key IS NOT NULL
                           AND released_at IS NULL),
                        (SELECT count(*) FROM {s}.limit_tokens
                         WHERE worker = $1 AND scope = 0 AND key = '' AND until > clock_timestamp())",
            ),
            // Its busiest keys ($2 at most): running, starts within the
            // key rate's period, due and waiting.
            limit_keys_use: text(
                "WITH running AS (
                     SELECT limit_key AS key, count(*) AS n FROM {s}.runs
                     WHERE worker = $1 AND lease_token IS NOT NULL AND limit_key IS NOT NULL
                       AND released_at IS NULL
                     GROUP BY limit_key),
                 started AS (
                     SELECT key, count(*) AS n FROM {s}.limit_tokens
                     WHERE worker = $1 AND scope = 1 AND until > clock_timestamp()
                     GROUP BY key),
                 busiest AS (
                     SELECT coalesce(r.key, s.key) AS key, coalesce(r.n, 0) AS running,
                            coalesce(s.n, 0) AS started
                     FROM running r FULL JOIN started s ON s.key = r.key
                     ORDER BY 2 DESC, 3 DESC, 1 LIMIT $2)
                 SELECT b.key, b.running, b.started,
                        (SELECT count(*) FROM {s}.runs q
                         WHERE q.worker = $1 AND q.limit_key = b.key AND q.state = 'queued'
                           AND q.run_at <= now())
                 FROM busiest b ORDER BY 2 DESC, 3 DESC, 1",
            ),
            // The tokens of the limited worker $1's rate of $2 starts:
            // made once, and the set cut when the rate is lowered.
            rate_tokens: text(
                "WITH made AS (
                     INSERT INTO {s}.limit_tokens (worker, scope, key, n)
                     SELECT $1, 0, '', n FROM generate_series(0, $2::int4 - 1) n
                     ON CONFLICT DO NOTHING)
                 DELETE FROM {s}.limit_tokens WHERE worker = $1 AND scope = 0 AND n >= $2",
            ),
            // The token sets of $1's keys that are all free again: as if
            // never made (a key's next start makes its set anew).
            key_tokens_free: text(
                "DELETE FROM {s}.limit_tokens k
                 WHERE k.worker = $1 AND k.scope = 1 AND k.key IN (
                     SELECT key FROM {s}.limit_tokens
                     WHERE worker = $1 AND scope = 1
                     GROUP BY key HAVING max(until) <= clock_timestamp())",
            ),
            // A batch of jobs of worker $1, in one statement.
            insert_jobs: text(
                "INSERT INTO {s}.runs (id, worker, payload, timeout_ms, run_at, priority, key, limit_key)
                 SELECT id, $1, payload, timeout_ms, {DUE}, priority, key, limit_key
                 FROM unnest($2::uuid[], $3::jsonb[], $4::int8[], $5::float8[], $6::float8[],
                             $7::int4[], $8::text[], $9::text[])
                     AS j(id, payload, timeout_ms, d, a, priority, key, limit_key)",
            ),
            // A workflow and its steps (migration 11).
            insert_workflow: text("INSERT INTO {s}.workflows (id, name, steps) VALUES ($1, $2, $3)"),
            insert_workflow_steps: text(
                "INSERT INTO {s}.workflow_steps
                     (workflow_id, step, position, worker, run_id, parents, waiting, delay_ms, at_ms, state)
                 SELECT $1, step, position - 1, worker, run_id,
                        ARRAY(SELECT jsonb_array_elements_text(parents)), waiting, d, a,
                        CASE WHEN waiting = 0 THEN 'queued' ELSE 'waiting' END
                 FROM unnest($2::text[], $3::text[], $4::uuid[], $5::jsonb[], $6::int4[],
                             $7::float8[], $8::float8[])
                     WITH ORDINALITY AS s(step, worker, run_id, parents, waiting, d, a, position)",
            ),
            // A step that waits for its parents is due at 'infinity', which
            // no claim reaches, until its last parent's ending releases it.
            insert_step_runs: text(
                "INSERT INTO {s}.runs
                     (id, worker, payload, timeout_ms, run_at, priority, limit_key, workflow_id, step)
                 SELECT id, worker, payload, timeout_ms,
                        CASE WHEN waiting = 0 THEN {DUE} ELSE 'infinity' END,
                        priority, limit_key, $1, step
                 FROM unnest($2::uuid[], $3::text[], $4::jsonb[], $5::int8[], $6::float8[],
                             $7::float8[], $8::int4[], $9::text[], $10::text[], $11::int4[])
                     AS j(id, worker, payload, timeout_ms, d, a, priority, limit_key, step, waiting)",
            ),
            // A stored workflow's steps, for a handle from any process.
            workflow_plan: text(
                "SELECT w.name, s.step, s.worker, s.run_id, s.parents
                 FROM {s}.workflows w JOIN {s}.workflow_steps s ON s.workflow_id = w.id
                 WHERE w.id = $1 ORDER BY s.position",
            ),
            // Each step now: where it stands, whether its run started, and
            // how it ended. A run is in one of the two tables, and one
            // statement sees it in exactly one.
            workflow_steps_now: text(
                "SELECT s.position, s.state,
                        coalesce(r.started_at, e.started_at) IS NOT NULL,
                        e.state, e.error_kind, e.error, e.output
                 FROM {s}.workflow_steps s
                 LEFT JOIN {s}.runs r ON r.id = s.run_id
                 LEFT JOIN {s}.ended_runs e ON e.id = s.run_id
                 WHERE s.workflow_id = $1 ORDER BY s.position",
            ),
            workflow_now: text(
                "SELECT state, failed_step, error_kind, error FROM {s}.workflows WHERE id = $1",
            ),
            // Its steps' endings from now on release nothing and doom
            // nothing (the trigger reads this under the workflow's lock).
            cancel_workflow: text(
                "UPDATE {s}.workflows SET cancelled = true WHERE id = $1 AND state = 'running'",
            ),
            // For dashboards: running workflows first, newest first, then
            // the latest ended; or the one $2.
            workflows_recent: text(
                "SELECT id, name, state, extract(epoch FROM created_at)::float8 * 1000,
                        extract(epoch FROM ended_at)::float8 * 1000, failed_step, error
                 FROM {s}.workflows
                 WHERE $2::uuid IS NULL OR id = $2
                 ORDER BY state <> 'running', created_at DESC LIMIT $1",
            ),
            workflow_steps_of: text(
                "SELECT s.workflow_id, s.step, s.worker, s.run_id, s.parents, s.state,
                        coalesce(r.state = 'running', false)
                 FROM {s}.workflow_steps s LEFT JOIN {s}.runs r ON r.id = s.run_id
                 WHERE s.workflow_id = ANY($1) ORDER BY s.workflow_id, s.position",
            ),
            // A large batch that starts at once: streamed, which PostgreSQL
            // writes for about a quarter less than the same insert. Text
            // format: see `jobs::Copied`.
            copy_jobs: text(
                "COPY {s}.runs (id, worker, payload, timeout_ms, priority, key, limit_key) FROM STDIN",
            ),
            // The keys of worker $1 in $2 that were free, now held by the
            // runs $3; a key held by a transaction not yet committed is
            // waited for (the primary key decides).
            take_keys: text(
                "INSERT INTO {s}.run_keys (worker, key, run_id)
                 SELECT $1, k, id FROM unnest($2::text[], $3::uuid[]) AS t(k, id)
                 ON CONFLICT DO NOTHING
                 RETURNING key",
            ),
            // Who holds these keys, whether that run is still in `runs`,
            // and whether it has never started.
            key_holders: text(
                "SELECT k.key, k.run_id, r.id IS NOT NULL,
                        coalesce(r.lease_token IS NULL AND r.started_at IS NULL, false)
                 FROM {s}.run_keys k LEFT JOIN {s}.runs r ON r.id = k.run_id
                 WHERE k.worker = $1 AND k.key = ANY($2)",
            ),
            // A key whose run left `runs` without freeing it (moved by a
            // node of version 8, which drops the key column).
            free_stale_key: text(
                "DELETE FROM {s}.run_keys k
                 WHERE k.worker = $1 AND k.key = $2 AND k.run_id = $3
                   AND NOT EXISTS (SELECT 1 FROM {s}.runs r WHERE r.id = $3)",
            ),
            // `Duplicate::Replace` of a run that has never started.
            replace_run: text(
                "UPDATE {s}.runs r
                 SET payload = $2, priority = $3,
                     run_at = (SELECT {DUE} FROM (SELECT $4::float8 AS d, $5::float8 AS a) x)
                 WHERE r.id = $1 AND r.lease_token IS NULL AND r.started_at IS NULL
                 RETURNING r.id",
            ),
            scheduled: text(
                "SELECT id, worker, extract(epoch FROM run_at)::float8 * 1000, key, priority
                 FROM {s}.runs
                 WHERE state = 'queued' AND run_at > now() AND run_at < 'infinity'
                   AND ($1::text IS NULL OR worker = $1)
                 ORDER BY run_at, id LIMIT 10000",
            ),
            pause: text("INSERT INTO {s}.paused (worker) VALUES ($1) ON CONFLICT DO NOTHING"),
            resume: text("DELETE FROM {s}.paused WHERE worker = $1"),
            is_paused: text("SELECT EXISTS (SELECT 1 FROM {s}.paused WHERE worker = $1)"),
            // Renews the leases this node still holds, skipping rows
            // another transaction has locked (the outbox writing their
            // ending) rather than waiting behind it. Per run: renewed,
            // asked to stop (in case the notification was lost), and
            // whether the lease is still this node's (not renewed but
            // ours: locked, renewed on the next pass).
            renew: text(
                "WITH held AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS l(id, token)),
                 mine AS (
                     SELECT r.id FROM {s}.runs r WHERE {HELD}
                     FOR UPDATE SKIP LOCKED),
                 renewed AS (
                     UPDATE {s}.runs r SET lease_until = now() + $3 * interval '1 millisecond'
                     WHERE r.id = ANY(ARRAY(SELECT id FROM mine))
                     RETURNING r.id, r.cancel_requested)
                 SELECT held.id, renewed.id IS NOT NULL, coalesce(renewed.cancel_requested, false),
                        renewed.id IS NOT NULL OR EXISTS (
                            SELECT 1 FROM {s}.runs r
                            WHERE r.id = held.id AND r.lease_token = held.token)
                 FROM held LEFT JOIN renewed ON renewed.id = held.id",
            ),
            // Runs whose lease ran out: their node died, stopped or lost
            // the database. Queued again with one attempt more, or failed
            // as stalled once they used up the stall budget ($1).
            reap: text(&format!(
                "WITH lapsed AS (
                     SELECT id, node, lease_until, attempt, claimed_at, stalls, released_at FROM {{s}}.runs
                     WHERE state = 'running' AND lease_until < now()
                     FOR UPDATE SKIP LOCKED),
                 requeued AS (
                     UPDATE {{s}}.runs r SET
                         state = 'queued', attempt = r.attempt + 1, stalls = r.stalls + 1,
                         run_at = now(), node = NULL, lease_token = NULL, lease_until = NULL
                     FROM lapsed WHERE r.id = lapsed.id AND lapsed.stalls < $1
                         AND r.id = ANY(ARRAY(SELECT id FROM lapsed))
                     RETURNING r.id, r.worker, r.state, NULL::double precision AS duration_ms,
                         lapsed.node AS held_by, lapsed.attempt AS lapsed_attempt, lapsed.claimed_at,
                         extract(epoch FROM now() - lapsed.lease_until)::float8 * 1000 AS late_ms,
                         lapsed.released_at),
                 gone AS (
                     DELETE FROM {{s}}.runs r USING lapsed
                     WHERE r.id = lapsed.id AND lapsed.stalls >= $1
                         AND r.id = ANY(ARRAY(SELECT id FROM lapsed))
                     RETURNING r.*),
                 moved AS (
                     INSERT INTO {{s}}.ended_runs ({ENDED_COLUMNS})
                     SELECT id, worker, payload, 'stalled', attempt, stalls + 1, now(), timeout_ms, NULL,
                            cancel_requested, created_at, started_at, now(), NULL, 'stalled',
                            (stalls + 1)::text, NULL, claimed_at, {{CURRENT_SLOT}}, priority, key,
                            released_at
                     FROM gone
                     RETURNING id),
                 changed AS (
                     SELECT * FROM requeued
                     UNION ALL
                     SELECT gone.id, gone.worker, 'stalled', NULL::double precision, gone.node,
                            gone.attempt, gone.claimed_at,
                            extract(epoch FROM now() - gone.lease_until)::float8 * 1000,
                            gone.released_at
                     FROM gone JOIN moved ON moved.id = gone.id),
                 ended AS (SELECT worker, state, duration_ms FROM changed WHERE state = 'stalled'),
                 counted AS ({count}),
                 attempted AS ({ATTEMPTED}
                     SELECT id, lapsed_attempt, held_by, coalesce(claimed_at, now()),
                            coalesce(released_at, now()), 'stalled', NULL,
                            'its node (' || coalesce(held_by, '?') || ') stopped renewing its lease; lapsed '
                                || round(late_ms::numeric) || ' ms before it was reaped',
                            NULL
                     FROM changed)
                 SELECT id, worker, state, held_by, late_ms FROM changed"
            )),
            insert_messages: text(
                "INSERT INTO {s}.messages (run_id, seq, attempt, body)
                 SELECT m.run_id, m.seq, m.attempt, m.body
                 FROM unnest($1::uuid[], $2::uuid[], $3::int4[], $4::int4[], $5::jsonb[])
                     AS m(run_id, token, seq, attempt, body)
                 WHERE (m.run_id, m.token) IN (
                     SELECT r.id, r.lease_token FROM {s}.runs r WHERE r.id = ANY($1))
                 ON CONFLICT DO NOTHING",
            ),
            // Records endings, fenced: only where the lease is still this
            // node's.
            // The ended run leaves the hot table for `ended_runs`, in
            // the same statement: the hot table holds only what is queued
            // or running, so claims never wade through history.
            finish: text(&format!(
                "WITH gone AS (DELETE FROM {{s}}.runs r WHERE {{HELD}} RETURNING r.*),
                 moved AS (
                     INSERT INTO {{s}}.ended_runs ({ENDED_COLUMNS})
                     SELECT g.id, g.worker, g.payload, e.state, g.attempt, g.stalls, g.run_at,
                            g.timeout_ms, g.node, g.cancel_requested, g.created_at, g.started_at,
                            now(), e.duration_ms, e.kind, e.error, e.output, g.claimed_at,
                            {{CURRENT_SLOT}}, g.priority, g.key, g.released_at
                     FROM gone g
                     JOIN unnest($1::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::float8[])
                         AS e(id, state, kind, error, output, duration_ms) ON e.id = g.id
                     RETURNING id, worker, state, duration_ms),
                 ended AS (SELECT worker, state, duration_ms FROM moved),
                 counted AS ({count})
                 SELECT id FROM moved"
            )),
            // A failed attempt to try again at `now() + delay`: one attempt
            // more, a retry counted.
            retry: text(
                "WITH updated AS (
                     UPDATE {s}.runs r SET
                         state = 'queued', attempt = r.attempt + 1,
                         run_at = now() + ($3::float8[])[{AT}] * interval '1 millisecond',
                         node = NULL, lease_token = NULL, lease_until = NULL
                     WHERE {HELD}
                     RETURNING r.id, r.worker, r.attempt - 1 AS attempt, {AT} AS at,
                         coalesce(r.released_at, now()) AS stopped_at),
                 changed AS (
                     SELECT id, worker, attempt, ($4::text[])[at] AS state, ($5::text[])[at] AS kind,
                            ($6::text[])[at] AS error, ($7::float8[])[at] AS duration_ms, stopped_at
                     FROM updated),
                 counted AS (
                     INSERT INTO {s}.stat_deltas (worker, retries)
                     SELECT worker, count(*) FROM changed GROUP BY worker),
                 attempted AS ({ATTEMPTED}
                     SELECT id, attempt, $8, stopped_at - duration_ms * interval '1 millisecond',
                            stopped_at, state, kind, error, duration_ms
                     FROM changed)
                 SELECT id FROM changed",
            ),
            // A run this node gives back (it is shutting down): queued
            // again at once, same attempt, nothing counted.
            // An attempt cut short by the shutdown (`ran_ms` set) is kept
            // as `released`; a run never started leaves no attempt.
            release: text(
                "WITH changed AS (
                     UPDATE {s}.runs r SET state = 'queued',
                         run_at = now() + ($3::float8[])[{AT}] * interval '1 millisecond',
                         node = NULL, lease_token = NULL, lease_until = NULL
                     WHERE {HELD}
                     RETURNING r.id, r.attempt, ($4::float8[])[{AT}] AS ran_ms,
                         coalesce(r.released_at, now()) AS stopped_at),
                 attempted AS ({ATTEMPTED}
                     SELECT id, attempt, $5, stopped_at - ran_ms * interval '1 millisecond', stopped_at,
                            'released', NULL, NULL, ran_ms
                     FROM changed WHERE ran_ms IS NOT NULL)
                 SELECT id FROM changed",
            ),
            // Asks a run to stop: a queued one ends here and now; a running
            // one is stopped by its node.
            // (A run claimed between this statement's snapshot and its
            // row lock matches neither part: the caller asks again.)
            cancel: text(&format!(
                "WITH asked AS (
                     UPDATE {{s}}.runs SET cancel_requested = true
                     WHERE id = $1 AND lease_token IS NOT NULL
                     RETURNING state),
                 gone AS (DELETE FROM {{s}}.runs WHERE id = $1 AND lease_token IS NULL RETURNING *),
                 moved AS (
                     INSERT INTO {{s}}.ended_runs ({ENDED_COLUMNS})
                     SELECT id, worker, payload, 'cancelled', attempt, stalls, run_at, timeout_ms, node,
                            true, created_at, started_at, now(), NULL, 'cancelled', NULL, NULL, claimed_at,
                            {{CURRENT_SLOT}}, priority, key, released_at
                     FROM gone
                     RETURNING worker, state, NULL::double precision AS duration_ms),
                 ended AS (SELECT worker, state, duration_ms FROM moved),
                 counted AS ({count})
                 SELECT state FROM asked UNION ALL SELECT state FROM moved"
            )),
            // A run is in one of the two tables; one statement sees both
            // in one snapshot, so a run being moved is seen in exactly one.
            run_state: text(
                "SELECT worker, state FROM {s}.runs WHERE id = $1
                 UNION ALL SELECT worker, state FROM {s}.ended_runs WHERE id = $1",
            ),
            cancel_asked: text("SELECT cancel_requested FROM {s}.runs WHERE id = $1"),
            messages_after: text(
                "SELECT seq, body FROM {s}.messages WHERE run_id = $1 AND seq >= $2 ORDER BY seq LIMIT 1000",
            ),
            outcome: text(
                "SELECT worker, state, error_kind, error, output FROM {s}.ended_runs WHERE id = $1
                 UNION ALL
                 SELECT worker, state, error_kind, error, output FROM {s}.runs WHERE id = $1",
            ),
            running_all: text(
                "SELECT id FROM {s}.runs WHERE state = 'running' ORDER BY started_at, id",
            ),
            running_of: text(
                "SELECT id FROM {s}.runs WHERE state = 'running' AND worker = $1 ORDER BY started_at, id",
            ),
            stats: text(
                "SELECT coalesce(s.runs, 0) + coalesce(d.runs, 0), coalesce(s.errors, 0) + coalesce(d.errors, 0),
                        coalesce(s.cancelled, 0) + coalesce(d.cancelled, 0),
                        coalesce(s.timeouts, 0) + coalesce(d.timeouts, 0),
                        coalesce(s.panics, 0) + coalesce(d.panics, 0),
                        coalesce(s.retries, 0) + coalesce(d.retries, 0), s.skipped,
                        coalesce(s.total_ms, 0) + coalesce(d.total_ms, 0),
                        coalesce(d.last_run_ms, s.last_run_ms),
                        (SELECT count(*) FROM {s}.runs r WHERE r.state = 'running' AND r.worker = $1),
                        (SELECT count(*) FROM {s}.runs r
                         WHERE r.state = 'queued' AND r.worker = $1 AND r.run_at <= now()),
                        (SELECT count(*) FROM {s}.runs r
                         WHERE r.state = 'queued' AND r.worker = $1 AND r.run_at > now()
                           AND r.run_at < 'infinity'),
                        EXISTS (SELECT 1 FROM {s}.paused p WHERE p.worker = $1)
                 FROM (SELECT $1::text AS worker) w
                 LEFT JOIN {s}.stats s ON s.worker = w.worker
                 LEFT JOIN LATERAL (SELECT {DELTA_SUMS} FROM {s}.stat_deltas d WHERE d.worker = w.worker) d ON true",
            ),
            // Of the worker's last 1,000 finished runs.
            percentiles: text(
                "SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY duration_ms)
                 FROM (SELECT duration_ms FROM {s}.ended_runs
                       WHERE worker = $1 AND duration_ms IS NOT NULL
                       ORDER BY ended_at DESC LIMIT 1000) recent",
            ),
            // Taken once in the cluster; a paused worker's tick is taken
            // too, and counted as skipped instead of starting a run.
            tick: text(
                "WITH taken AS (
                     INSERT INTO {s}.ticks (worker, tick_at, run_id) VALUES ($1, to_timestamp($2::float8 / 1000.0), $3)
                     ON CONFLICT DO NOTHING RETURNING run_id),
                 paused AS (SELECT EXISTS (SELECT 1 FROM {s}.paused WHERE worker = $1) AS yes),
                 skipped AS (
                     INSERT INTO {s}.stats AS s (worker, skipped)
                     SELECT $1, 1 FROM taken, paused WHERE paused.yes
                     ON CONFLICT (worker) DO UPDATE SET skipped = s.skipped + 1)
                 INSERT INTO {s}.runs (id, worker, limit_key)
                 SELECT run_id, $1, $4 FROM taken, paused WHERE NOT paused.yes RETURNING id",
            ),
            // Ended runs, newest first: the ended_at index, backwards.
            history: text(&format!(
                "SELECT {RUN_COLUMNS} FROM {{s}}.ended_runs
                 WHERE ($1::text IS NULL OR worker = $1)
                   AND ($2::text IS NULL OR state = $2)
                 ORDER BY ended_at DESC LIMIT $3"
            )),
            history_failures: text(&format!(
                "SELECT {RUN_COLUMNS} FROM {{s}}.ended_runs
                 WHERE ($1::text IS NULL OR worker = $1)
                   AND state IN ('failed', 'timed_out', 'panicked', 'stalled')
                 ORDER BY ended_at DESC LIMIT $2"
            )),
            stored_run: text(&format!(
                "SELECT {RUN_COLUMNS} FROM {{s}}.runs WHERE id = $1
                 UNION ALL SELECT {RUN_COLUMNS} FROM {{s}}.ended_runs WHERE id = $1"
            )),
            // The attempts kept in their own rows (retried, stalled,
            // handed back), then the last one, which is the run's row
            // itself: ended by its node (so `node` is kept), not stalled
            // (a stall has its own row). So the common case, one attempt
            // that ends, writes no second row.
            recent_stalls: text(
                "SELECT * FROM (
                     SELECT a.run_id,
                            coalesce((SELECT worker FROM {s}.runs WHERE id = a.run_id),
                                     (SELECT worker FROM {s}.ended_runs WHERE id = a.run_id)) AS worker,
                            a.attempt, a.node, extract(epoch FROM a.ended_at)::float8 * 1000 AS at_ms, a.error
                     FROM {s}.attempts a
                     WHERE a.outcome = 'stalled'
                     ORDER BY a.ended_at DESC LIMIT $1) stalls
                 WHERE worker IS NOT NULL",
            ),
            attempts_of: text(
                "SELECT attempt, node, started_ms, ended_ms, outcome, error_kind, error, duration_ms FROM (
                     SELECT attempt, node, extract(epoch FROM started_at)::float8 * 1000 AS started_ms,
                            extract(epoch FROM ended_at)::float8 * 1000 AS ended_ms, outcome, error_kind,
                            error, duration_ms, ended_at
                     FROM {s}.attempts WHERE run_id = $1
                     UNION ALL
                     SELECT attempt, node, extract(epoch FROM coalesce(claimed_at, started_at))::float8 * 1000,
                            extract(epoch FROM ended_at)::float8 * 1000, state, error_kind, error,
                            duration_ms, ended_at
                     FROM {s}.ended_runs
                     WHERE id = $1 AND node IS NOT NULL AND state <> 'stalled'
                 ) a ORDER BY ended_at, attempt",
            ),
            nodes: text(
                "SELECT n.node, extract(epoch FROM n.started_at)::float8 * 1000 AS started_ms,
                        extract(epoch FROM n.heartbeat_at)::float8 * 1000 AS heartbeat_ms, n.executes,
                        array(SELECT r.id FROM {s}.runs r
                              WHERE r.state = 'running' AND r.node = n.node ORDER BY r.started_at)
                            AS running
                 FROM {s}.nodes n
                 WHERE n.heartbeat_at > now() - interval '1 hour'
                 ORDER BY n.node",
            ),
            // Ended runs per bucket of `$1` seconds, outcome and
            // duration class, over the last `$2` ms: the folded rollup and
            // the deltas not folded yet, in one snapshot.
            timeline: text(
                "SELECT (floor(extract(epoch FROM bucket_at) / $1) * $1)::float8, state, duration_class,
                        sum(runs)::int8
                 FROM (SELECT bucket_at, state, duration_class, runs FROM {s}.timeline
                       WHERE bucket_at > now() - $2 * interval '1 millisecond' - interval '5 seconds'
                       UNION ALL
                       SELECT bucket_at, state, duration_class, runs + cancelled FROM {s}.stat_deltas
                       WHERE bucket_at > now() - $2 * interval '1 millisecond' - interval '5 seconds') rows
                 GROUP BY 1, 2, 3",
            ),
            node_beat: text(
                "INSERT INTO {s}.nodes (node, executes) VALUES ($1, $2)
                 ON CONFLICT (node) DO UPDATE SET heartbeat_at = now()",
            ),
            node_gone: text("DELETE FROM {s}.nodes WHERE node = $1"),
            // Old ticks, nodes silent for a day, the timeline's buckets
            // past the retention (ended runs go with their slot of the
            // history: see `history`; no ended run is left in `runs`:
            // migration 3 moved them out, and a node older than it refuses
            // to start on a schema that has it).
            purge_rest: text(
                "WITH ticks AS (DELETE FROM {s}.ticks WHERE tick_at < now() - $1 * interval '1 millisecond'),
                 nodes AS (DELETE FROM {s}.nodes WHERE heartbeat_at < now() - interval '1 day'),
                 timeline AS (DELETE FROM {s}.timeline WHERE bucket_at < now() - $1 * interval '1 millisecond'),
                 workflows AS (DELETE FROM {s}.workflows WHERE ended_at < now() - $1 * interval '1 millisecond')
                 SELECT 0::int8",
            ),
            // The deltas counted so far, into `stats`, in one statement:
            // a reader sees each delta in one place. Two nodes folding at
            // once can't count one twice: the second's delete finds the
            // rows gone.
            // The timeline's rows of the folded deltas go with them.
            fold_stats: text(
                "WITH d AS (DELETE FROM {s}.stat_deltas RETURNING *),
                 t AS (
                     INSERT INTO {s}.timeline AS t (bucket_at, worker, state, duration_class, runs)
                     SELECT d.bucket_at, d.worker, d.state, d.duration_class, sum(d.runs + d.cancelled)
                     FROM d WHERE d.bucket_at IS NOT NULL
                     GROUP BY 1, 2, 3, 4
                     ON CONFLICT (bucket_at, worker, state, duration_class)
                         DO UPDATE SET runs = t.runs + excluded.runs)
                 INSERT INTO {s}.stats AS s
                     (worker, runs, errors, cancelled, timeouts, panics, stalled, retries, total_ms, last_run_ms)
                 SELECT d.worker, {DELTA_SUMS} FROM d GROUP BY d.worker
                 ON CONFLICT (worker) DO UPDATE SET
                     runs = s.runs + excluded.runs,
                     errors = s.errors + excluded.errors,
                     cancelled = s.cancelled + excluded.cancelled,
                     timeouts = s.timeouts + excluded.timeouts,
                     panics = s.panics + excluded.panics,
                     stalled = s.stalled + excluded.stalled,
                     retries = s.retries + excluded.retries,
                     total_ms = s.total_ms + excluded.total_ms,
                     last_run_ms = coalesce(excluded.last_run_ms, s.last_run_ms)",
            ),
            // SKIP_LOCKED: never wait behind a lock (an ALTER, a manual
            // VACUUM FULL); the next pass comes in two seconds.
            // TRUNCATE false: giving the empty end of a lane back takes
            // its exclusive lock, which stalls claims and endings for up
            // to seconds (and the lanes are truncated whole anyway).
            vacuum_runs: text("VACUUM (SKIP_LOCKED, TRUNCATE false) {s}.runs"),
            // The oldest snapshot any session holds (as far as this role
            // may see): while it stays put, vacuum can't remove more.
            horizon: text(
                "SELECT min(backend_xmin::text::int8) FROM pg_stat_activity
                 WHERE backend_xmin IS NOT NULL",
            ),
            // What the last vacuum could not remove: dead row versions a
            // transaction may still see (in all lanes; a schema of an
            // older version has one table).
            runs_dead: text(
                "SELECT coalesce(sum(n_dead_tup), 0)::int8, coalesce(sum(n_live_tup), 0)::int8
                 FROM pg_stat_user_tables
                 WHERE schemaname = '{s}' AND (relname = 'runs' OR relname LIKE 'runs\\_lane\\_%')",
            ),
            // The lane the next period fills (see `lanes`), and whether
            // anything was written to it since it was last truncated.
            oldest_lane: text(&format!(
                "SELECT l, pg_relation_size(format('%I.%I', $1::text, 'runs_lane_' || l)::regclass)
                 FROM (SELECT (((floor(extract(epoch FROM now()) / {period}))::int8 + 1) % {LANES})::int2 AS l) x",
                period = PERIOD.as_secs()
            )),
            lane_cleared: text(
                "UPDATE {s}.lanes SET clears = clears + 1, cleared_at = now() WHERE lane = $1",
            ),
            // Held by the clearing's transaction: one at a time per schema.
            lanes_guard: text("SELECT pg_try_advisory_xact_lock(hashtext('{s}.lanes'))"),
            lock_lane: lanes(|lane| format!("LOCK TABLE {{s}}.runs_lane_{lane} IN ACCESS EXCLUSIVE MODE")),
            lane_rows: lanes(|lane| {
                format!("SELECT count(*) FROM (SELECT 1 FROM {{s}}.runs_lane_{lane} LIMIT $1) held")
            }),
            // Into the lane before it, which is the current one when the
            // clearing runs on time, and never the lane itself.
            move_lane: lanes(|lane| {
                format!(
                    "INSERT INTO {{s}}.runs ({RUN_ROW}, lane)
                     SELECT {RUN_ROW}, {into} FROM {{s}}.runs_lane_{lane}",
                    into = (lane + LANES - 1) % LANES
                )
            }),
            truncate_lane: lanes(|lane| format!("TRUNCATE {{s}}.runs_lane_{lane}")),
            // Per slot of the history: current, how long since it was
            // opened, whether anything was written to it since it was last
            // truncated, and how long ago its newest run ended.
            slots: text(&format!(
                "SELECT h.slot, h.current, extract(epoch FROM now() - h.opened_at)::float8 * 1000,
                        s.bytes, extract(epoch FROM now() - s.newest)::float8 * 1000
                 FROM {{s}}.history h JOIN ({}) s ON s.slot = h.slot
                 ORDER BY h.slot",
                (0..SLOTS)
                    .map(|slot| format!(
                        "SELECT {slot}::int2 AS slot,
                                pg_relation_size('{{s}}.ended_runs_slot_{slot}') AS bytes,
                                (SELECT max(ended_at) FROM {{s}}.ended_runs_slot_{slot}) AS newest"
                    ))
                    .collect::<Vec<_>>()
                    .join(" UNION ALL ")
            )),
            // The messages and attempts of a slot's runs go before the
            // slot does (nothing adds to them: its runs have ended).
            slot_messages_gone: slots(|slot| {
                format!(
                    "WITH messages AS (
                         DELETE FROM {{s}}.messages m USING {{s}}.ended_runs_slot_{slot} r
                         WHERE m.run_id = r.id),
                     attempts AS (
                         DELETE FROM {{s}}.attempts a USING {{s}}.ended_runs_slot_{slot} r
                         WHERE a.run_id = r.id)
                     SELECT 1"
                )
            }),
            truncate_slot: slots(|slot| format!("TRUNCATE {{s}}.ended_runs_slot_{slot}")),
            slot_truncated: text(
                "UPDATE {s}.history SET truncations = truncations + 1 WHERE slot = $1",
            ),
            // Endings go to slot $1 from now on, if slot $2 was current
            // (so two nodes can't both move it on). Two statements: the
            // index keeping one slot current is checked row by row.
            close_slot: text(
                "UPDATE {s}.history SET current = false WHERE slot = $1 AND current",
            ),
            open_slot: text(
                "UPDATE {s}.history SET current = true, opened_at = now() WHERE slot = $1",
            ),
        })
    }

    /// A statement of this schema, for the ones used once (migrations).
    pub(crate) fn text(&self, template: &str) -> SqlStr {
        AssertSqlSafe(template.replace("{s}", &self.schema)).into_sql_str()
    }
}
