//! Durable workflows against a real PostgreSQL: stored whole in one
//! transaction, each step a durable run, a child released in the
//! transaction that records its last parent's ending, and a failed step's
//! descendants ended there too; handles from any process.

mod support;

use serde_json::{Value, json};
use support::{database, manager, pool, schema};
use worker_core::Outcome;
use worker_core::prelude::*;

/// The diamond of `join` steps (see `support::workers::diamond`).
fn diamond(ms: u64) -> Workflow {
    support::workers::diamond("onboard", ms)
}

/// How step `name` ended, among `ended` (from [`endings`]).
fn ending_of(ended: &[(String, Outcome, Option<String>)], name: &str) -> (Outcome, Option<String>) {
    ended
        .iter()
        .find(|(step, ..)| step == name)
        .map(|(_, outcome, error)| (*outcome, error.clone()))
        .unwrap_or_else(|| panic!("no ending for {name}: {ended:?}"))
}

async fn all_events(handle: &mut WorkflowHandle) -> Vec<WorkflowEvent> {
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(std::time::Duration::from_secs(30), handle.recv())
        .await
        .expect("the workflow's events stopped coming")
    {
        events.push(event);
    }
    events
}

fn endings(events: &[WorkflowEvent]) -> Vec<(String, Outcome, Option<String>)> {
    events
        .iter()
        .filter_map(|event| match event {
            WorkflowEvent::Ended {
                step,
                outcome,
                error,
            } => Some((step.clone(), *outcome, error.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_diamond_runs_through_the_database_with_its_parents_outputs() {
    let Some(db) = database() else { return };
    let schema = schema("flows_diamond");
    let manager = manager(support::backend(db, &schema)).await;
    let mut handle = manager.start_workflow(diamond(0)).await.unwrap();
    let events = all_events(&mut handle).await;
    handle.await_result().await.unwrap();

    let ended = endings(&events);
    assert_eq!(ended.len(), 4, "{events:?}");
    assert!(
        ended
            .iter()
            .all(|(_, outcome, _)| *outcome == Outcome::Succeeded),
        "{events:?}"
    );
    let started = events
        .iter()
        .filter(|event| matches!(event, WorkflowEvent::Started { .. }))
        .count();
    assert_eq!(started, 4);
    let welcome: Value = handle.output("welcome").await.unwrap();
    assert_eq!(welcome["step"], "welcome");
    assert_eq!(welcome["workflow"], handle.id());
    assert_eq!(welcome["got"][0]["step"], "avatar");
    assert_eq!(welcome["got"][1]["step"], "page");
    assert_eq!(welcome["got"][0]["got"][0]["step"], "profile");

    // From any handle, from the first event.
    let mut again = manager.attach_workflow(handle.id()).await.unwrap();
    assert_eq!(endings(&all_events(&mut again).await).len(), 4);
    again.await_result().await.unwrap();

    // Stored once: four runs, each started once, and the workflow's row.
    let pool = pool(db).await;
    let (runs, most_attempts, state): (i64, i32, String) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM {schema}.ended_runs),
                (SELECT max(attempt) FROM {schema}.ended_runs),
                (SELECT state FROM {schema}.workflows)"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((runs, most_attempts, state.as_str()), (4, 1, "succeeded"));
    assert_eq!(manager.stats("join").await.unwrap().runs, 4);

    // What dashboards read, from the database.
    let status = manager
        .workflow(handle.id())
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(status.state, worker_core::WorkflowState::Succeeded);
    assert_eq!(status.steps_done(), 4);
    assert_eq!(status.steps[3].parents, ["avatar", "page"]);
    assert_eq!(manager.workflows(10).await.unwrap().len(), 1);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_step_cancels_what_waits_for_it_in_the_same_transaction() {
    let Some(db) = database() else { return };
    let schema = schema("flows_failed");
    let manager = manager(support::backend(db, &schema)).await;
    let flow = Workflow::new("doomed")
        .step("first", "noop", Call::new())
        .step(
            "broken",
            "fails",
            Call::new().payload(json!({"how": "permanent"})),
        )
        .after(["first"])
        .step(
            "side",
            "echo",
            Call::new().payload(json!({"n": 2, "ms": 50})),
        )
        .after(["first"])
        .step("after", "noop", Call::new())
        .after(["broken", "side"])
        .step("last", "noop", Call::new())
        .after(["after"]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    let events = all_events(&mut handle).await;
    let error = handle.await_result().await.unwrap_err();
    assert_eq!(error.failed_step(), Some("broken"), "{error}");
    assert!(error.is_permanent(), "{error}");
    assert!(error.to_string().contains("account closed"), "{error}");

    let ended = endings(&events);
    let of = |name: &str| ending_of(&ended, name);
    assert_eq!(
        of("side").0,
        Outcome::Succeeded,
        "the other branch finished"
    );
    for doomed in ["after", "last"] {
        let (outcome, error) = of(doomed);
        assert_eq!(outcome, Outcome::Cancelled);
        assert_eq!(error.as_deref(), Some("not run: step 'broken' failed"));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, WorkflowEvent::Started { step, .. } if step == doomed))
        );
    }
    // Counted once each, as cancelled.
    let noop = manager.stats("noop").await.unwrap();
    assert_eq!((noop.runs, noop.cancelled), (1, 2));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_failed_branch_dooms_its_own_steps_and_a_timeout_ends_as_timed_out() {
    let Some(db) = database() else { return };
    let schema = schema("flows_two_failures");
    let manager = manager(support::backend(db, &schema)).await;
    // Two branches fail, one at once and one on its 300 ms timeout: each
    // dooms its own step, and the workflow ends, failed by the first.
    let flow = Workflow::new("two-failures")
        .step("first", "noop", Call::new())
        .step(
            "broken",
            "fails",
            Call::new().payload(json!({"how": "permanent"})),
        )
        .after(["first"])
        .step(
            "stuck",
            "fails",
            Call::new().payload(json!({"how": "timeout"})),
        )
        .after(["first"])
        .step("after-broken", "noop", Call::new())
        .after(["broken"])
        .step("after-stuck", "noop", Call::new())
        .after(["stuck"]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    let ended = endings(&all_events(&mut handle).await);
    let of = |name: &str| ending_of(&ended, name);
    assert_eq!(of("broken").0, Outcome::Failed);
    assert_eq!(
        of("stuck").0,
        Outcome::TimedOut,
        "a timeout is its own outcome"
    );
    for (doomed, by) in [("after-broken", "broken"), ("after-stuck", "stuck")] {
        let (outcome, error) = of(doomed);
        assert_eq!(outcome, Outcome::Cancelled, "{doomed}");
        assert_eq!(error, Some(format!("not run: step '{by}' failed")));
    }
    let error = handle.await_result().await.unwrap_err();
    assert_eq!(error.failed_step(), Some("broken"), "{error}");
    let noop = manager.stats("noop").await.unwrap();
    assert_eq!((noop.runs, noop.cancelled), (1, 2), "counted once each");
    let status = manager.workflow(handle.id()).await.unwrap().unwrap();
    assert_eq!(status.state, worker_core::WorkflowState::Failed);
    assert_eq!(status.steps_done(), 5);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancel_ends_every_waiting_and_running_step_once() {
    let Some(db) = database() else { return };
    let schema = schema("flows_cancel");
    let manager = manager(support::backend(db, &schema)).await;
    let flow = Workflow::new("long")
        .step("first", "noop", Call::new())
        .step("slow", "slow", Call::new().payload(json!({"ms": 30000})))
        .after(["first"])
        .step("after", "noop", Call::new())
        .after(["slow"]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    while !matches!(handle.recv().await, Some(WorkflowEvent::Message { .. })) {}
    handle.cancel().await.unwrap();
    let error = handle.await_result().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    let ended =
        endings(&all_events(&mut manager.attach_workflow(handle.id()).await.unwrap()).await);
    let outcomes: Vec<(&str, Outcome)> = ended.iter().map(|(s, o, _)| (s.as_str(), *o)).collect();
    assert_eq!(
        outcomes,
        [
            ("first", Outcome::Succeeded),
            ("slow", Outcome::Cancelled),
            ("after", Outcome::Cancelled)
        ]
    );
    let slow = manager.stats("slow").await.unwrap();
    assert_eq!(slow.cancelled, 1);
    assert_eq!(manager.stats("noop").await.unwrap().cancelled, 1);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mistake_is_refused_before_anything_is_stored() {
    let Some(db) = database() else { return };
    let schema = schema("flows_refused");
    let manager = manager(support::backend(db, &schema)).await;
    let refused = [
        (
            Workflow::new("f")
                .step("a", "noop", Call::new())
                .after(["b"])
                .step("b", "noop", Call::new())
                .after(["a"]),
            "has a cycle: a → b → a",
        ),
        (
            Workflow::new("f")
                .step("a", "noop", Call::new())
                .after(["ghost"]),
            "step 'a' waits for 'ghost'",
        ),
        (
            Workflow::new("f")
                .step("a", "noop", Call::new())
                .step("a", "noop", Call::new()),
            "step 'a' is declared twice",
        ),
        (
            Workflow::new("f").step("a", "no-such-worker", Call::new()),
            "runs worker 'no-such-worker', which is not registered",
        ),
        (Workflow::new("f"), "has no steps"),
    ];
    for (flow, expected) in refused {
        let error = manager.start_workflow(flow).await.unwrap_err();
        assert!(error.is_validation(), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {schema}.runs) + (SELECT count(*) FROM {schema}.workflows)"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn independent_steps_overlap_and_messages_arrive_in_order_tagged_with_their_step() {
    let Some(db) = database() else { return };
    let schema = schema("flows_parallel");
    let manager = manager(support::backend(db, &schema)).await;
    let flow = Workflow::new("parallel")
        .step(
            "left",
            "echo",
            Call::new().payload(json!({"n": 3, "ms": 150})),
        )
        .step(
            "right",
            "echo",
            Call::new().payload(json!({"n": 3, "ms": 150})),
        )
        .step(
            "asks",
            "join",
            Call::new().payload(json!({"parents": ["stranger"]})),
        )
        .after(["left", "right"]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    let events = all_events(&mut handle).await;
    for step in ["left", "right"] {
        let mine: Vec<&WorkflowEvent> = events.iter().filter(|e| e.step() == step).collect();
        assert!(matches!(mine[0], WorkflowEvent::Started { .. }), "{mine:?}");
        let said: Vec<Value> = mine
            .iter()
            .filter_map(|e| match e {
                WorkflowEvent::Message { message, .. } => Some(message["i"].clone()),
                _ => None,
            })
            .collect();
        assert_eq!(said, [json!(0), json!(1), json!(2)], "{step}");
        assert!(matches!(mine.last(), Some(WorkflowEvent::Ended { .. })));
    }
    // The two roots ran at the same time: each started before the other
    // ended, on the database's clock.
    let overlap: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT l.started_at < r.ended_at AND r.started_at < l.ended_at
         FROM {schema}.workflow_steps ls JOIN {schema}.ended_runs l ON l.id = ls.run_id,
              {schema}.workflow_steps rs JOIN {schema}.ended_runs r ON r.id = rs.run_id
         WHERE ls.step = 'left' AND rs.step = 'right'"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert!(overlap);
    // A step that asks for a step that isn't its parent fails, naming both.
    let error = handle.await_result().await.unwrap_err();
    assert_eq!(error.failed_step(), Some("asks"));
    assert!(
        error
            .to_string()
            .contains("asked for the output of step 'stranger', which is not one of its parents (its parents: left, right)"),
        "{error}"
    );
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_parent_output_read_as_a_type_that_does_not_fit_fails_the_step_once_naming_the_parent() {
    let Some(db) = database() else { return };
    let schema = schema("flows_mismatch");
    let manager = support::manager_with(support::backend(db, &schema), async |manager| {
        manager
            .register_with(
                "wants-a-number",
                WorkerOptions::new().retries(3),
                |ctx| async move { ctx.parent_output::<u64>("profile").map(|n| n + 1) },
            )
            .await
            .unwrap();
    })
    .await;
    let flow = Workflow::new("mismatch")
        .step("profile", "join", Call::new())
        .step("count", "wants-a-number", Call::new())
        .after(["profile"]);
    let error = manager
        .start_workflow(flow)
        .await
        .unwrap()
        .await_result()
        .await
        .unwrap_err();
    assert_eq!(error.failed_step(), Some("count"));
    assert!(
        error
            .to_string()
            .contains("the output of step 'profile' (worker 'join') is not the requested type"),
        "{error}"
    );
    // A mistake in the code: not retried.
    let stats = manager.stats("wants-a-number").await.unwrap();
    assert_eq!((stats.retries, stats.errors), (0, 1));
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_steps_call_options_apply_to_it_its_delay_counted_from_its_release() {
    let Some(db) = database() else { return };
    let schema = schema("flows_options");
    let manager = manager(support::backend(db, &schema)).await;
    let flow = Workflow::new("options")
        .step("first", "slow", Call::new().payload(json!({"ms": 300})))
        .step(
            "later",
            "noop",
            Call::new()
                .delay(std::time::Duration::from_millis(400))
                .priority(7),
        )
        .after(["first"])
        .step(
            "stuck",
            "slow",
            Call::new()
                .payload(json!({"ms": 60_000}))
                .timeout(std::time::Duration::from_millis(200)),
        )
        .after(["first"]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    let ended = endings(&all_events(&mut handle).await);
    let outcome = |name: &str| ending_of(&ended, name).0;
    assert_eq!(outcome("first"), Outcome::Succeeded);
    assert_eq!(outcome("later"), Outcome::Succeeded);
    assert_eq!(outcome("stuck"), Outcome::TimedOut, "its own timeout");
    assert_eq!(
        handle.await_result().await.unwrap_err().failed_step(),
        Some("stuck")
    );

    // On the database's clock: `later` waited its 400 ms after `first`
    // ended, not after the workflow was stored; it kept its priority.
    let (waited_ms, priority): (f64, i32) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT extract(epoch FROM l.started_at - f.ended_at)::float8 * 1000, l.priority
         FROM {schema}.workflow_steps fs JOIN {schema}.ended_runs f ON f.id = fs.run_id,
              {schema}.workflow_steps ls JOIN {schema}.ended_runs l ON l.id = ls.run_id
         WHERE fs.step = 'first' AND ls.step = 'later'"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert!(
        waited_ms >= 400.0,
        "started {waited_ms} ms after its parent ended"
    );
    assert_eq!(priority, 7);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_step_keeps_its_workers_limits_and_retries() {
    let Some(db) = database() else { return };
    let schema = schema("flows_limits");
    let manager = support::manager_with(support::backend(db, &schema), async |manager| {
        manager
            .register_with(
                "one-in-the-cluster",
                WorkerOptions::new().global_concurrency(1),
                |ctx| async move {
                    ctx.sleep(std::time::Duration::from_millis(50)).await;
                    Ok(())
                },
            )
            .await
            .unwrap();
    })
    .await;
    // Four independent steps of a worker limited to one at a time, then
    // one that fails its first attempt.
    let mut flow = Workflow::new("limited");
    for n in 0..4 {
        flow = flow.step(format!("limited-{n}"), "one-in-the-cluster", Call::new());
    }
    let flow = flow.step("retried", "fails-once", Call::new()).after([
        "limited-0",
        "limited-1",
        "limited-2",
        "limited-3",
    ]);
    let mut handle = manager.start_workflow(flow).await.unwrap();
    let events = all_events(&mut handle).await;
    handle.await_result().await.unwrap();
    let retried: Value = handle.output("retried").await.unwrap();
    assert_eq!(retried["attempt"], 2, "its worker's retry");
    // Started once, as a step; each attempt's messages tagged with it.
    let started = events
        .iter()
        .filter(|e| matches!(e, WorkflowEvent::Started { step, .. } if step == "retried"))
        .count();
    assert_eq!(started, 1, "{events:?}");
    let attempts: Vec<Value> = events
        .iter()
        .filter_map(|e| match e {
            WorkflowEvent::Message { step, message } if step == "retried" => {
                Some(message["attempt"].clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [json!(1), json!(2)]);

    // On the database's clock, the limited steps' slots never overlapped:
    // a slot is held from the claim to its release (see tests/limits.rs;
    // the recorded ending may come after the next claim).
    let overlaps: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.ended_runs a JOIN {schema}.ended_runs b
             ON a.worker = b.worker AND a.id < b.id
         WHERE a.worker = 'one-in-the-cluster'
           AND a.claimed_at < coalesce(b.released_at, b.ended_at)
           AND b.claimed_at < coalesce(a.released_at, a.ended_at)"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert_eq!(overlaps, 0);
    assert_eq!(manager.stats("one-in-the-cluster").await.unwrap().runs, 4);
    manager.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_mixed_workflow_is_refused_and_a_local_one_runs_in_the_process() {
    let Some(db) = database() else { return };
    let schema = schema("flows_mixed");
    let manager = manager(support::backend(db, &schema)).await;
    let mixed = Workflow::new("mixed")
        .step("here", "in-process", Call::new())
        .step("there", "noop", Call::new())
        .after(["here"]);
    let error = manager.start_workflow(mixed).await.unwrap_err();
    assert!(error.is_validation(), "{error}");
    assert!(
        error
            .to_string()
            .contains("step 'here' runs a `local` worker and step 'there' a durable one"),
        "{error}"
    );
    let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT count(*) FROM {schema}.runs) + (SELECT count(*) FROM {schema}.workflows)"
    )))
    .fetch_one(&pool(db).await)
    .await
    .unwrap();
    assert_eq!(stored, 0);
    let local = Workflow::new("local")
        .step("one", "in-process", Call::new())
        .step("two", "in-process", Call::new())
        .after(["one"]);
    manager
        .start_workflow(local)
        .await
        .unwrap()
        .await_result()
        .await
        .unwrap();
    manager.shutdown().await.unwrap();
}

mod processes {
    //! With real node processes: fan-in once whichever nodes the parents
    //! end on, a step's node killed with -9 or stopped (SIGSTOP) until its
    //! step ran elsewhere, a caller that exits, the server restarted under
    //! running workflows.

    use std::collections::HashMap;

    use serde_json::{Value, json};
    use worker_core::prelude::*;

    use super::support::{self, Database, NodeProcess, NodeSettings, database, pool, schema};
    use super::{all_events, diamond, endings};

    async fn caller(db: &Database, schema: &str) -> WorkerManager {
        support::manager(support::backend(db, schema).execute(false)).await
    }

    /// Waits for `handle`'s workflow to succeed: a hang fails the test
    /// instead of holding up the whole run.
    async fn ends(handle: &WorkflowHandle) {
        tokio::time::timeout(support::PATIENCE, handle.await_result())
            .await
            .expect("the workflow ends")
            .unwrap();
    }

    /// The diamond with a slow `avatar` step (1.5 s, the `slow` worker),
    /// the others `join` steps.
    fn slow_avatar(name: &str) -> Workflow {
        let join = |parents: &[&str]| Call::new().payload(json!({"parents": parents}));
        Workflow::new(name)
            .step("profile", "join", join(&[]))
            .step("avatar", "slow", Call::new().payload(json!({"ms": 1500})))
            .after(["profile"])
            .step("page", "join", join(&["profile"]))
            .after(["profile"])
            .step("welcome", "join", join(&["avatar", "page"]))
            .after(["avatar", "page"])
    }

    /// Which of `nodes` executes the `avatar` step, once it has said so
    /// (its first message).
    async fn running_avatar(
        handle: &mut WorkflowHandle,
        pool: &sqlx::PgPool,
        schema: &str,
        nodes: &[NodeProcess],
    ) -> usize {
        while !matches!(handle.recv().await, Some(WorkflowEvent::Message { .. })) {}
        let node: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT node FROM {schema}.runs WHERE step = 'avatar' AND state = 'running'"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        let pid: u32 = node.split(':').nth(1).unwrap().parse().unwrap();
        nodes.iter().position(|n| n.pid() == pid).unwrap()
    }

    fn starts(file: &std::path::Path) -> Vec<(String, u32, u32)> {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.split(' ');
                let run = parts.next().unwrap().to_owned();
                let attempt = parts.next().unwrap().parse().unwrap();
                let pid = parts.next().unwrap().parse().unwrap();
                (run, attempt, pid)
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fan_in_starts_each_child_once_across_three_nodes_many_times() {
        let Some(db) = database() else { return };
        let schema = schema("flows_fan_in");
        let caller = caller(db, &schema).await;
        let dir = tempfile_dir("flows_fan_in");
        let file = dir.join("starts");
        let settings = NodeSettings {
            lease_ms: 1000,
            concurrency: 8,
            starts_file: Some(file.clone()),
            ..NodeSettings::new(db, &schema)
        };
        let _nodes: Vec<NodeProcess> = (0..3).map(|_| NodeProcess::start(&settings)).collect();

        const FLOWS: usize = 150;
        let mut handles = Vec::new();
        for _ in 0..FLOWS {
            handles.push(caller.start_workflow(diamond(0)).await.unwrap());
        }
        for handle in &handles {
            ends(handle).await;
            let welcome: Value = handle.output("welcome").await.unwrap();
            assert_eq!(
                welcome["got"].as_array().map(Vec::len),
                Some(2),
                "{welcome}"
            );
        }
        let starts = starts(&file);
        assert_eq!(starts.len(), FLOWS * 4, "every step started once");
        let mut per_run: HashMap<&str, usize> = HashMap::new();
        for (run, attempt, _) in &starts {
            assert_eq!(*attempt, 1, "no step ran twice");
            *per_run.entry(run.as_str()).or_default() += 1;
        }
        assert!(per_run.values().all(|&n| n == 1));
        let pids: std::collections::HashSet<u32> = starts.iter().map(|s| s.2).collect();
        assert!(pids.len() >= 2, "the steps ran on several nodes: {pids:?}");
        // The database agrees: every workflow succeeded, every step ended once.
        let (succeeded, ended): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT (SELECT count(*) FROM {schema}.workflows WHERE state = 'succeeded' AND steps_ended = 4),
                    (SELECT count(*) FROM {schema}.ended_runs)"
        )))
        .fetch_one(&pool(db).await)
        .await
        .unwrap();
        assert_eq!((succeeded, ended), (FLOWS as i64, (FLOWS * 4) as i64));
        caller.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_whose_node_is_killed_runs_again_elsewhere_and_the_workflow_goes_on() {
        let Some(db) = database() else { return };
        let schema = schema("flows_kill9");
        let caller = caller(db, &schema).await;
        let settings = NodeSettings {
            lease_ms: 1000,
            ..NodeSettings::new(db, &schema)
        };
        let nodes = [NodeProcess::start(&settings), NodeProcess::start(&settings)];
        let mut handle = caller
            .start_workflow(slow_avatar("survives"))
            .await
            .unwrap();
        let pool = pool(db).await;
        let victim = running_avatar(&mut handle, &pool, &schema, &nodes).await;
        nodes[victim].signal("KILL");
        ends(&handle).await;
        let welcome: Value = handle.output("welcome").await.unwrap();
        assert_eq!(welcome["got"][0]["attempt"], 2, "{welcome}");
        let ended =
            endings(&all_events(&mut caller.attach_workflow(handle.id()).await.unwrap()).await);
        assert_eq!(ended.len(), 4);
        caller.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_workflow_outlives_its_caller_and_is_followed_from_another_process() {
        let Some(db) = database() else { return };
        let schema = schema("flows_outlives");
        let caller = caller(db, &schema).await;
        let starter = NodeSettings {
            concurrency: 1,
            env: vec![("START_WORKFLOW".to_owned(), "1".to_owned())],
            ..NodeSettings::new(db, &schema)
        };
        let mut first = NodeProcess::start(&starter);
        let line = first.wait_for_line("workflow ");
        let id = line.trim().trim_start_matches("workflow ").to_owned();
        assert!(first.wait().success());
        let _node = NodeProcess::start(&NodeSettings::new(db, &schema));
        let mut handle = caller.attach_workflow(&id).await.unwrap();
        let events = all_events(&mut handle).await;
        handle.await_result().await.unwrap();
        assert_eq!(endings(&events).len(), 4, "{events:?}");
        assert_eq!(handle.name(), "outlives");
        caller.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_node_that_wakes_after_its_step_ran_elsewhere_records_nothing_twice() {
        let Some(db) = database() else { return };
        let schema = schema("flows_sigstop");
        let caller = caller(db, &schema).await;
        let dir = tempfile_dir("flows_sigstop");
        let file = dir.join("starts");
        let settings = NodeSettings {
            lease_ms: 1000,
            starts_file: Some(file.clone()),
            ..NodeSettings::new(db, &schema)
        };
        let nodes = [NodeProcess::start(&settings), NodeProcess::start(&settings)];
        let mut handle = caller.start_workflow(slow_avatar("frozen")).await.unwrap();
        let pool = pool(db).await;
        let frozen = running_avatar(&mut handle, &pool, &schema, &nodes).await;
        nodes[frozen].signal("STOP");
        // Its lease lapses; the other node runs the step again and the
        // workflow finishes without the frozen node.
        ends(&handle).await;
        let welcome: Value = handle.output("welcome").await.unwrap();
        assert_eq!(welcome["got"][0]["attempt"], 2, "{welcome}");
        // It wakes, finishes its stale attempt and tries to record it:
        // fenced, it changes nothing.
        nodes[frozen].signal("CONT");
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let (ended, steps_ended, state): (i64, i32, String) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM {schema}.ended_runs), steps_ended, state
                 FROM {schema}.workflows"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((ended, steps_ended, state.as_str()), (4, 4, "succeeded"));
        // The join started once (fan-in once). Had the node been stopped
        // in the middle of writing another step's ending, that write was
        // rolled back when PostgreSQL ended its idle transaction, and the
        // step ran again elsewhere; it still ended once (above).
        let welcome_run: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT run_id::text FROM {schema}.workflow_steps WHERE step = 'welcome'"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        let starts = starts(&file);
        let joins = starts
            .iter()
            .filter(|(run, ..)| *run == welcome_run)
            .count();
        assert_eq!(joins, 1, "{starts:?}");
        let ended =
            endings(&all_events(&mut caller.attach_workflow(handle.id()).await.unwrap()).await);
        assert_eq!(ended.len(), 4, "one ending per step: {ended:?}");
        assert_eq!(caller.stats("slow").await.unwrap().runs, 1, "counted once");
        caller.shutdown().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_restarting_under_running_workflows_loses_and_doubles_no_step() {
        let Some(cluster) = support::private_cluster() else {
            return;
        };
        let db = Database {
            url: cluster.url(),
            cluster: None,
        };
        let schema = schema("flows_pgrestart");
        let caller = caller(&db, &schema).await;
        let dir = tempfile_dir("flows_pgrestart");
        let file = dir.join("starts");
        let settings = NodeSettings {
            lease_ms: 2000,
            concurrency: 8,
            starts_file: Some(file.clone()),
            ..NodeSettings::new(&db, &schema)
        };
        let _node = NodeProcess::start(&settings);

        const FLOWS: usize = 20;
        let mut handles = Vec::new();
        for _ in 0..FLOWS {
            handles.push(caller.start_workflow(diamond(150)).await.unwrap());
        }
        // Steps are running and waiting when the server goes away.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        cluster.stop_server().unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        cluster.start_server().unwrap();

        for handle in &handles {
            tokio::time::timeout(support::PATIENCE, handle.await_result())
                .await
                .expect("every workflow ends once the database is back")
                .unwrap();
            let welcome: Value = handle.output("welcome").await.unwrap();
            assert_eq!(welcome["got"].as_array().map(Vec::len), Some(2));
        }
        // Each step ended once, and each child started only after its
        // parents: one start per step, unless its lease lapsed while the
        // server was down (then its attempt 2 is the one that counted).
        let (succeeded, ended, distinct): (i64, i64, i64) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT (SELECT count(*) FROM {schema}.workflows
                         WHERE state = 'succeeded' AND steps_ended = 4),
                        (SELECT count(*) FROM {schema}.ended_runs),
                        (SELECT count(DISTINCT id) FROM {schema}.ended_runs)"
            )))
            .fetch_one(&pool(&db).await)
            .await
            .unwrap();
        let steps = (FLOWS * 4) as i64;
        assert_eq!((succeeded, ended, distinct), (FLOWS as i64, steps, steps));
        let starts = starts(&file);
        let runs: std::collections::HashSet<&str> =
            starts.iter().map(|(run, ..)| run.as_str()).collect();
        assert_eq!(runs.len(), FLOWS * 4, "every step started");
        assert_eq!(caller.stats("join").await.unwrap().runs, FLOWS as u64 * 4);
        caller.shutdown().await.unwrap();
    }

    fn tempfile_dir(test: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
