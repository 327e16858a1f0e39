//! Workflows in this process: checked before anything runs, steps in
//! order and in parallel, fan-in once, failure and cancel ending every
//! step once, outputs typed, events in order, attach replaying them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use worker_core::prelude::*;
use worker_core::{Outcome, WorkflowState};

#[derive(Debug, Serialize, Deserialize, PartialEq, Clone)]
struct Profile {
    user: u32,
    name: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Page {
    html: String,
}

/// The order things happened in, as "step:started" and "step:ended".
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn position(&self, line: &str) -> usize {
        self.lines()
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line} not in {:?}", self.lines()))
    }
}

/// The onboarding diamond's four workers: profile → (avatar, page) → welcome.
async fn onboarding(manager: &WorkerManager, journal: &Journal) -> Result<()> {
    let j = journal.clone();
    manager
        .register_with("fetch-profile", WorkerOptions::new(), move |ctx| {
            let j = j.clone();
            async move {
                j.note("profile:started".into());
                let user = ctx.payload().unwrap()["user"].as_u64().unwrap() as u32;
                ctx.emit(json!({"fetched": user}))?;
                j.note("profile:ended".into());
                Ok(Profile {
                    user,
                    name: "Ada".into(),
                })
            }
        })
        .await?;
    let j = journal.clone();
    manager
        .register_with("resize-image", WorkerOptions::new(), move |ctx| {
            let j = j.clone();
            async move {
                j.note(format!("{}:started", ctx.step().unwrap()));
                let profile: Profile = ctx.parent_output("profile")?;
                ctx.sleep(Duration::from_millis(20)).await;
                j.note(format!("{}:ended", ctx.step().unwrap()));
                Ok(format!("avatar-{}.png", profile.user))
            }
        })
        .await?;
    let j = journal.clone();
    manager
        .register_with("render-page", WorkerOptions::new(), move |ctx| {
            let j = j.clone();
            async move {
                j.note("page:started".into());
                let profile: Profile = ctx.parent_output("profile")?;
                ctx.emit(json!({"rendering": profile.name}))?;
                j.note("page:ended".into());
                Ok(Page {
                    html: format!("<h1>{}</h1>", profile.name),
                })
            }
        })
        .await?;
    let j = journal.clone();
    manager
        .register_with("send-email", WorkerOptions::new(), move |ctx| {
            let j = j.clone();
            async move {
                j.note("welcome:started".into());
                let avatar: String = ctx.parent_output("avatar")?;
                let page: Page = ctx.parent_output("page")?;
                j.note("welcome:ended".into());
                Ok(format!("{avatar} {}", page.html))
            }
        })
        .await?;
    Ok(())
}

/// "quick" succeeds at once; "long" says "working", then sleeps 30 s
/// (until it is cancelled).
async fn quick_and_long(manager: &WorkerManager) -> Result<()> {
    manager.register("quick", |_ctx| async { Ok(()) }).await?;
    manager
        .register("long", |ctx| async move {
            ctx.emit(json!("working"))?;
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .await
}

fn diamond() -> Workflow {
    Workflow::new("onboard-user")
        .step(
            "profile",
            "fetch-profile",
            Call::new().payload(json!({"user": 7})),
        )
        .step(
            "avatar",
            "resize-image",
            Call::new().payload(json!({"user": 7})),
        )
        .after(["profile"])
        .step("page", "render-page", Call::new())
        .after(["profile"])
        .step("welcome", "send-email", Call::new())
        .after(["avatar", "page"])
}

async fn all_events(handle: &mut WorkflowHandle) -> Vec<WorkflowEvent> {
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), handle.recv())
        .await
        .expect("the workflow's events stopped coming")
    {
        events.push(event);
    }
    events
}

/// Checks what every workflow's events must be: per step at most one
/// Started, messages only between it and the step's one Ended.
fn check_event_grammar(events: &[WorkflowEvent]) -> HashMap<String, Outcome> {
    let mut started = HashMap::new();
    let mut ended = HashMap::new();
    for event in events {
        let step = event.step().to_owned();
        assert!(
            !ended.contains_key(&step),
            "{step} has an event after it ended: {events:?}"
        );
        match event {
            WorkflowEvent::Started { .. } => {
                assert!(
                    started.insert(step.clone(), ()).is_none(),
                    "{step} started twice"
                );
            }
            WorkflowEvent::Message { .. } => {
                assert!(
                    started.contains_key(&step),
                    "{step} spoke before it started"
                );
            }
            WorkflowEvent::Ended { outcome, .. } => {
                ended.insert(step, *outcome);
            }
        }
    }
    ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_in_order_with_typed_outputs_and_ordered_events() -> Result<()> {
    let manager = WorkerManager::new();
    let journal = Journal::default();
    onboarding(&manager, &journal).await?;

    let mut flow = manager.start_workflow(diamond()).await?;
    let events = all_events(&mut flow).await;
    flow.await_result().await?;

    let ended = check_event_grammar(&events);
    assert_eq!(ended.len(), 4);
    assert!(ended.values().all(|outcome| *outcome == Outcome::Succeeded));
    // Each step starts after all its parents ended.
    for (child, parent) in [
        ("avatar", "profile"),
        ("page", "profile"),
        ("welcome", "avatar"),
        ("welcome", "page"),
    ] {
        assert!(
            journal.position(&format!("{parent}:ended"))
                < journal.position(&format!("{child}:started")),
            "{child} started before {parent} ended: {:?}",
            journal.lines()
        );
    }
    // Messages are tagged with their step, and come in order.
    assert!(events.contains(&WorkflowEvent::Message {
        step: "profile".into(),
        message: json!({"fetched": 7}),
    }));
    let started_ids: Vec<String> = events
        .iter()
        .filter_map(|event| match event {
            WorkflowEvent::Started { run_id, .. } => Some(run_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(started_ids.len(), 4);

    assert_eq!(flow.output::<Page>("page").await?.html, "<h1>Ada</h1>");
    assert_eq!(
        flow.output::<String>("welcome").await?,
        "avatar-7.png <h1>Ada</h1>"
    );
    let wrong = flow.output::<u32>("page").await.unwrap_err();
    assert!(
        wrong.to_string().starts_with(
            "the output of step 'page' (worker 'render-page') is not the requested type"
        ),
        "{wrong}"
    );
    let unknown = flow.output::<Value>("nope").await.unwrap_err();
    assert!(
        unknown.to_string().contains("has no step 'nope'"),
        "{unknown}"
    );

    // Every step is an ordinary run, counted once in its worker.
    for worker in ["fetch-profile", "resize-image", "render-page", "send-email"] {
        let stats = manager.stats(worker).await.unwrap();
        assert_eq!(
            (stats.runs, stats.errors, stats.running),
            (1, 0, 0),
            "{worker}"
        );
    }
    assert_eq!(manager.workflows_running(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_run_at_the_same_time() -> Result<()> {
    let manager = WorkerManager::new();
    // Each of the two waits for the other to have started: only steps that
    // run in parallel get past it.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    manager
        .register("meet", move |ctx| {
            let barrier = barrier.clone();
            async move {
                tokio::select! {
                    _ = barrier.wait() => Ok(()),
                    () = ctx.sleep(Duration::from_secs(10)) => Err(Error::msg("ran alone")),
                }
            }
        })
        .await?;
    manager.register("root", |_ctx| async { Ok(()) }).await?;
    let flow = Workflow::new("parallel")
        .step("root", "root", Call::new())
        .step("left", "meet", Call::new())
        .after(["root"])
        .step("right", "meet", Call::new())
        .after(["root"]);
    manager.start_workflow(flow).await?.await_result().await?;

    let roots = Workflow::new("two-roots")
        .step("left", "meet", Call::new())
        .step("right", "meet", Call::new());
    manager.start_workflow(roots).await?.await_result().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistake_is_refused_before_anything_is_stored_or_run() -> Result<()> {
    let manager = WorkerManager::new();
    manager.register("step", |_ctx| async { Ok(()) }).await?;
    let refused = [
        (
            Workflow::new("f")
                .step("a", "step", Call::new())
                .after(["c"])
                .step("b", "step", Call::new())
                .after(["a"])
                .step("c", "step", Call::new())
                .after(["b"]),
            "has a cycle: a → c → b → a",
        ),
        (
            Workflow::new("f")
                .step("a", "step", Call::new())
                .after(["ghost"]),
            "step 'a' waits for 'ghost'",
        ),
        (
            Workflow::new("f")
                .step("a", "step", Call::new())
                .step("a", "step", Call::new()),
            "step 'a' is declared twice",
        ),
        (
            Workflow::new("f").step("a", "step", Call::new()).step(
                "b",
                "no-such-worker",
                Call::new(),
            ),
            "step 'b' runs worker 'no-such-worker', which is not registered",
        ),
        (Workflow::new("f"), "has no steps"),
    ];
    for (flow, expected) in refused {
        let error = manager.start_workflow(flow).await.unwrap_err();
        assert!(error.is_validation(), "{error}");
        assert!(error.to_string().contains(expected), "{error}");
    }
    let stats = manager.stats("step").await.unwrap();
    assert_eq!((stats.runs, stats.cancelled, stats.queued), (0, 0, 0));
    assert!(manager.running().await?.is_empty());
    assert!(manager.scheduled(None).await?.is_empty());
    assert_eq!(manager.workflows_running(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_cancels_what_waits_for_it_and_the_other_branch_finishes() -> Result<()> {
    let manager = WorkerManager::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let counted = attempts.clone();
    manager
        .register_with(
            "flaky",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(1)),
            move |_ctx| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(Error::msg("image service down"))
                }
            },
        )
        .await?;
    let slow_ran = Arc::new(AtomicU32::new(0));
    let ran = slow_ran.clone();
    manager
        .register("slow", move |ctx| {
            let ran = ran.clone();
            async move {
                ctx.sleep(Duration::from_millis(50)).await;
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await?;
    manager.register("ok", |_ctx| async { Ok(()) }).await?;
    let never = Arc::new(AtomicU32::new(0));
    let never_ran = never.clone();
    manager
        .register("after", move |_ctx| {
            let never_ran = never_ran.clone();
            async move {
                never_ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await?;

    let flow = Workflow::new("onboard")
        .step("profile", "ok", Call::new())
        .step("avatar", "flaky", Call::new())
        .after(["profile"])
        .step("page", "slow", Call::new())
        .after(["profile"])
        .step("welcome", "after", Call::new())
        .after(["avatar", "page"])
        .step("audit", "after", Call::new())
        .after(["welcome"]);
    let mut handle = manager.start_workflow(flow).await?;
    let events = all_events(&mut handle).await;
    let ended = check_event_grammar(&events);

    let error = handle.await_result().await.unwrap_err();
    assert_eq!(error.failed_step(), Some("avatar"));
    assert!(error.to_string().contains("step 'avatar'"), "{error}");
    assert!(error.to_string().contains("image service down"), "{error}");
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "its own retries first");

    assert_eq!(ended["avatar"], Outcome::Failed);
    assert_eq!(
        ended["page"],
        Outcome::Succeeded,
        "the independent branch finished"
    );
    assert_eq!(slow_ran.load(Ordering::SeqCst), 1);
    for doomed in ["welcome", "audit"] {
        assert_eq!(ended[doomed], Outcome::Cancelled);
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, WorkflowEvent::Started { step, .. } if step == doomed))
        );
        let error = events.iter().find_map(|e| match e {
            WorkflowEvent::Ended { step, error, .. } if step == doomed => error.clone(),
            _ => None,
        });
        assert_eq!(error.as_deref(), Some("not run: step 'avatar' failed"));
    }
    assert_eq!(never.load(Ordering::SeqCst), 0);
    let after = manager.stats("after").await.unwrap();
    assert_eq!((after.runs, after.cancelled, after.running), (0, 2, 0));
    let output = handle.output::<Value>("welcome").await.unwrap_err();
    assert!(
        output
            .to_string()
            .contains("has no output: it ended cancelled"),
        "{output}"
    );
    Ok(())
}

/// `stuck`, which outlives its 20 ms timeout, and `after`, a no-op.
async fn stuck_and_after(manager: &WorkerManager) -> Result<()> {
    manager
        .register_with_timeout("stuck", Some(Duration::from_millis(20)), |ctx| async move {
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .await?;
    manager.register("after", |_ctx| async { Ok(()) }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_times_out_ends_as_timed_out() -> Result<()> {
    let manager = WorkerManager::new();
    stuck_and_after(&manager).await?;
    let flow = Workflow::new("late")
        .step("stuck", "stuck", Call::new())
        .step("after", "after", Call::new())
        .after(["stuck"]);
    let mut handle = manager.start_workflow(flow).await?;
    let ended = check_event_grammar(&all_events(&mut handle).await);
    assert_eq!(ended["stuck"], Outcome::TimedOut);
    assert_eq!(ended["after"], Outcome::Cancelled);
    let error = handle.await_result().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    assert_eq!(error.failed_step(), Some("stuck"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_keeps_its_workers_limits_and_retries() -> Result<()> {
    let manager = WorkerManager::new();
    let in_flight = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    manager
        .register_with(
            "one-at-a-time",
            WorkerOptions::new().concurrency(1),
            move |ctx| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(running, Ordering::SeqCst);
                    ctx.sleep(Duration::from_millis(5)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        )
        .await?;
    manager
        .register_with(
            "fails-once",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(1)),
            |ctx| async move {
                if ctx.attempt() == 1 {
                    return Err(Error::msg("the first attempt fails"));
                }
                Ok(ctx.attempt())
            },
        )
        .await?;
    let mut flow = Workflow::new("limited");
    for n in 0..6 {
        flow = flow.step(format!("limited-{n}"), "one-at-a-time", Call::new());
    }
    let parents: Vec<String> = (0..6).map(|n| format!("limited-{n}")).collect();
    let flow = flow
        .step("retried", "fails-once", Call::new())
        .after(parents);
    let handle = manager.start_workflow(flow).await?;
    handle.await_result().await?;
    assert_eq!(
        handle.output::<u32>("retried").await?,
        2,
        "its worker's retry"
    );
    assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
    assert_eq!(manager.stats("one-at-a-time").await.unwrap().runs, 6);
    Ok(())
}

#[tokio::test]
async fn every_failed_branch_dooms_its_own_steps() -> Result<()> {
    let manager = WorkerManager::new();
    manager
        .register("broken", |_ctx| async {
            Err::<(), _>(Error::permanent("account closed"))
        })
        .await?;
    stuck_and_after(&manager).await?;
    let flow = Workflow::new("two-failures")
        .step("broken", "broken", Call::new())
        .step("stuck", "stuck", Call::new())
        .step("after-broken", "after", Call::new())
        .after(["broken"])
        .step("after-stuck", "after", Call::new())
        .after(["stuck"]);
    let mut handle = manager.start_workflow(flow).await?;
    let events = all_events(&mut handle).await;
    let ended = check_event_grammar(&events);
    assert_eq!(ended["broken"], Outcome::Failed);
    assert_eq!(ended["stuck"], Outcome::TimedOut);
    for (doomed, by) in [("after-broken", "broken"), ("after-stuck", "stuck")] {
        assert_eq!(ended[doomed], Outcome::Cancelled);
        assert!(events.iter().any(|event| matches!(event,
            WorkflowEvent::Ended { step, error: Some(error), .. }
                if step == doomed && error == &format!("not run: step '{by}' failed"))));
    }
    let error = handle.await_result().await.unwrap_err();
    assert_eq!(error.failed_step(), Some("broken"), "{error}");
    assert_eq!(manager.stats("after").await.unwrap().cancelled, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_every_waiting_and_running_step_once() -> Result<()> {
    let manager = WorkerManager::new();
    quick_and_long(&manager).await?;
    let flow = Workflow::new("long-haul")
        .step("first", "quick", Call::new())
        .step("long", "long", Call::new())
        .after(["first"])
        .step("other", "long", Call::new())
        .after(["first"])
        .step("last", "quick", Call::new())
        .after(["long", "other"]);
    let mut handle = manager.start_workflow(flow).await?;
    // Wait until both long steps are executing.
    let mut started = 0;
    while started < 2 {
        if let Some(WorkflowEvent::Message { .. }) = handle.recv().await {
            started += 1;
        }
    }
    handle.cancel().await?;
    assert!(handle.is_finished());
    let error = handle.await_result().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert!(
        error.to_string().contains("workflow 'long-haul'"),
        "{error}"
    );

    let mut again = manager.attach_workflow(handle.id()).await?;
    let ended = check_event_grammar(&all_events(&mut again).await);
    assert_eq!(ended.len(), 4);
    assert_eq!(ended["first"], Outcome::Succeeded);
    for step in ["long", "other", "last"] {
        assert_eq!(ended[step], Outcome::Cancelled, "{step}");
    }
    let long = manager.stats("long").await.unwrap();
    assert_eq!((long.runs, long.cancelled, long.running), (0, 2, 0));
    let quick = manager.stats("quick").await.unwrap();
    assert_eq!((quick.runs, quick.cancelled), (1, 1));
    assert!(manager.running().await?.is_empty());
    // Cancelling what has ended changes nothing.
    handle.cancel().await?;
    assert_eq!(manager.stats("long").await.unwrap().cancelled, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_output_refuses_a_step_that_is_not_a_parent_and_a_type_that_does_not_fit()
-> Result<()> {
    let manager = WorkerManager::new();
    manager
        .register_with("profile", WorkerOptions::new(), |_ctx| async {
            Ok(Profile {
                user: 1,
                name: "Ada".into(),
            })
        })
        .await?;
    manager.register("other", |_ctx| async { Ok(()) }).await?;
    manager
        .register_with(
            "reader",
            WorkerOptions::new().retries(3),
            |ctx| async move {
                let ask = ctx.payload().unwrap()["ask"].as_str().unwrap().to_owned();
                match ask.as_str() {
                    "stranger" => ctx.parent_output::<Value>("other").map(drop),
                    _ => ctx.parent_output::<Vec<u8>>("profile").map(drop),
                }
            },
        )
        .await?;
    for (ask, expected) in [
        (
            "stranger",
            "asked for the output of step 'other', which is not one of its parents (its parents: profile)",
        ),
        (
            "wrong-type",
            "the output of step 'profile' (worker 'profile') is not the requested type",
        ),
    ] {
        let flow = Workflow::new("reading")
            .step("profile", "profile", Call::new())
            .step("other", "other", Call::new())
            .step("reader", "reader", Call::new().payload(json!({"ask": ask})))
            .after(["profile"]);
        let error = manager
            .start_workflow(flow)
            .await?
            .await_result()
            .await
            .unwrap_err();
        assert_eq!(error.failed_step(), Some("reader"));
        assert!(error.to_string().contains(expected), "{error}");
    }
    // Neither mistake is retried.
    assert_eq!(manager.stats("reader").await.unwrap().retries, 0);

    // Outside a workflow there are no parents.
    manager
        .register("alone", |ctx| async move {
            ctx.parent_output::<Value>("x").map(drop)
        })
        .await?;
    let alone = manager.run("alone", None).await.unwrap_err();
    assert!(
        alone.to_string().contains("is not a workflow's step"),
        "{alone}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_knows_its_workflow_and_step() -> Result<()> {
    let manager = WorkerManager::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    manager
        .register("who", move |ctx| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push((
                    ctx.workflow_id().map(str::to_owned),
                    ctx.step().map(str::to_owned),
                ));
                Ok(())
            }
        })
        .await?;
    let handle = manager
        .start_workflow(Workflow::new("w").step("only", "who", Call::new()))
        .await?;
    handle.await_result().await?;
    manager.run("who", None).await?;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (Some(handle.id().to_owned()), Some("only".to_owned())),
            (None, None)
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_starts_the_common_child_exactly_once_every_time() -> Result<()> {
    let manager = WorkerManager::new();
    let children = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    manager.register("parent", |_ctx| async { Ok(()) }).await?;
    let counted = children.clone();
    manager
        .register("child", move |ctx| {
            let counted = counted.clone();
            async move {
                let flow = ctx.workflow_id().unwrap().to_owned();
                *counted.lock().unwrap().entry(flow).or_default() += 1;
                Ok(())
            }
        })
        .await?;
    let mut handles = Vec::new();
    for _ in 0..300 {
        let flow = Workflow::new("fan-in")
            .step("left", "parent", Call::new())
            .step("right", "parent", Call::new())
            .step("join", "child", Call::new())
            .after(["left", "right"]);
        handles.push(manager.start_workflow(flow).await?);
    }
    for handle in &handles {
        handle.await_result().await?;
    }
    let children = children.lock().unwrap();
    assert_eq!(children.len(), 300);
    assert!(children.values().all(|&runs| runs == 1), "{children:?}");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_steps_delay_counts_from_when_its_parents_are_done() -> Result<()> {
    let manager = WorkerManager::new();
    let began = tokio::time::Instant::now();
    let at = Arc::new(Mutex::new(Vec::new()));
    let record = at.clone();
    manager
        .register("mark", move |ctx| {
            let record = record.clone();
            async move {
                ctx.sleep(Duration::from_secs(10)).await;
                record
                    .lock()
                    .unwrap()
                    .push((ctx.step().unwrap().to_owned(), began.elapsed().as_secs()));
                Ok(())
            }
        })
        .await?;
    let flow = Workflow::new("later")
        .step("first", "mark", Call::new())
        .step("second", "mark", Call::new().delay(Duration::from_secs(60)))
        .after(["first"]);
    manager.start_workflow(flow).await?.await_result().await?;
    // first ends at 10 s; second waits 60 s from then and runs 10 s.
    assert_eq!(
        *at.lock().unwrap(),
        [("first".to_owned(), 10), ("second".to_owned(), 80)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_replays_from_the_first_event_and_an_unknown_id_is_refused() -> Result<()> {
    let manager = WorkerManager::new();
    let journal = Journal::default();
    onboarding(&manager, &journal).await?;
    let mut first = manager.start_workflow(diamond()).await?;
    let mut attached = manager.attach_workflow(first.id()).await?;
    let one = all_events(&mut first).await;
    let two = all_events(&mut attached).await;
    assert_eq!(one, two);
    let late = all_events(&mut manager.attach_workflow(first.id()).await?).await;
    assert_eq!(late, one);

    let bad = manager.attach_workflow("nope").await.unwrap_err();
    assert!(
        bad.to_string().contains("'nope' is not a workflow id"),
        "{bad}"
    );
    let unknown = manager
        .attach_workflow("0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e")
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("no workflow"), "{unknown}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_waiting_step_once() -> Result<()> {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(50));
    manager
        .register("long", |ctx| async move {
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .await?;
    manager.register("after", |_ctx| async { Ok(()) }).await?;
    let flow = Workflow::new("cut-short")
        .step("long", "long", Call::new())
        .step("after", "after", Call::new())
        .after(["long"]);
    let mut handle = manager.start_workflow(flow).await?;
    while !matches!(handle.recv().await, Some(WorkflowEvent::Started { .. })) {}
    manager.shutdown().await?;
    let error = handle.await_result().await.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    let after = manager.stats("after").await.unwrap();
    assert_eq!((after.runs, after.cancelled), (0, 1));
    let long = manager.stats("long").await.unwrap();
    assert_eq!((long.runs, long.cancelled), (0, 1));
    let refused = manager
        .start_workflow(Workflow::new("late").step("a", "after", Call::new()))
        .await
        .unwrap_err();
    assert!(refused.is_shutdown());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_s_status_shows_each_step_s_state_for_dashboards() -> Result<()> {
    let manager = WorkerManager::new();
    quick_and_long(&manager).await?;
    let flow = Workflow::new("status")
        .step("first", "quick", Call::new())
        .step("long", "long", Call::new())
        .after(["first"])
        .step("last", "quick", Call::new())
        .after(["long"]);
    let mut handle = manager.start_workflow(flow).await?;
    while !matches!(handle.recv().await, Some(WorkflowEvent::Message { .. })) {}

    let status = manager.workflow(handle.id()).await?.expect("known");
    assert_eq!(status.state, WorkflowState::Running);
    let states: Vec<(&str, &str, Vec<String>)> = status
        .steps
        .iter()
        .map(|step| {
            (
                step.name.as_str(),
                step.state.as_str(),
                step.parents.clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("first", "succeeded", vec![]),
            ("long", "running", vec!["first".to_owned()]),
            ("last", "waiting", vec!["long".to_owned()]),
        ]
    );
    assert_eq!(status.steps_done(), 1);
    assert_eq!(manager.workflows(10).await?.len(), 1);

    manager.cancel_workflow(handle.id()).await?;
    let status = manager
        .workflow(handle.id())
        .await?
        .expect("kept after it ended");
    assert_eq!(status.state, WorkflowState::Cancelled);
    assert_eq!(status.steps_done(), 3);
    assert!(status.ended_at.is_some());
    assert!(manager.workflow("not-an-id").await?.is_none());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_steps_timeout_counts_from_its_start_not_from_the_wait_for_its_parents() -> Result<()> {
    let manager = WorkerManager::new();
    manager
        .register("slow", |ctx| async move {
            ctx.sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await?;
    manager
        .register_with_timeout(
            "quick",
            Some(Duration::from_millis(100)),
            |ctx| async move {
                ctx.sleep(Duration::from_millis(10)).await;
                Ok(())
            },
        )
        .await?;
    let flow = Workflow::new("patient")
        .step("slow", "slow", Call::new())
        .step("quick", "quick", Call::new())
        .after(["slow"])
        .step(
            "strict",
            "quick",
            Call::new().timeout(Duration::from_millis(5)),
        )
        .after(["slow"]);
    let error = manager
        .start_workflow(flow)
        .await?
        .await_result()
        .await
        .unwrap_err();
    // "quick" waited 60 s for its parent and still had its 100 ms; the
    // call's own 5 ms timeout applies to "strict".
    assert_eq!(error.failed_step(), Some("strict"), "{error}");
    assert!(error.is_timeout(), "{error}");
    let quick = manager.stats("quick").await.unwrap();
    assert_eq!((quick.runs, quick.timeouts), (2, 1));
    Ok(())
}
