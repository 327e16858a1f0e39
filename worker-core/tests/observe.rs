//! Observers: what a dashboard relies on to show runs it did not start.
//! Every admitted run is announced once with its payload, every message is
//! seen whether or not a handle reads it, every failed attempt that is
//! retried is seen with its delay, and every run ends once, with the result
//! its handle gives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use worker_core::observe::{Observer, Outcome, RunInfo};
use worker_core::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Started(String, Option<Value>),
    Message(String, Value),
    AttemptFailed(String, u32, String),
    Ended(String, Outcome, Result<Value, String>),
}

#[derive(Default)]
struct Journal(Mutex<Vec<Seen>>);

impl Journal {
    fn of(&self, run_id: &str) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| match seen {
                Seen::Started(id, _)
                | Seen::Message(id, _)
                | Seen::AttemptFailed(id, ..)
                | Seen::Ended(id, ..) => id == run_id,
            })
            .cloned()
            .collect()
    }
}

impl Observer for Journal {
    fn started(&self, run: RunInfo<'_>) {
        let seen = Seen::Started(run.run_id().to_string(), run.payload().cloned());
        self.0.lock().unwrap().push(seen);
    }
    fn message(&self, run: RunInfo<'_>, message: &Value) {
        let seen = Seen::Message(run.run_id().to_string(), message.clone());
        self.0.lock().unwrap().push(seen);
    }
    fn attempt_failed(&self, run: RunInfo<'_>, error: &Error, delay: Duration) {
        assert!(delay > Duration::ZERO);
        let seen = Seen::AttemptFailed(run.run_id().to_string(), run.attempt(), error.to_string());
        self.0.lock().unwrap().push(seen);
    }
    fn ended(&self, run: RunInfo<'_>, outcome: Outcome, result: &Result<Value>, _: Duration) {
        let result = match result {
            Ok(output) => Ok(output.clone()),
            Err(error) => Err(error.to_string()),
        };
        let seen = Seen::Ended(run.run_id().to_string(), outcome, result);
        self.0.lock().unwrap().push(seen);
    }
}

#[tokio::test]
async fn an_observer_sees_each_run_start_emit_retry_and_end_once() {
    let manager = WorkerManager::new();
    let journal = Arc::new(Journal::default());
    manager.observe(journal.clone());
    manager
        .register_with(
            "o-flaky",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(1)),
            |ctx| async move {
                ctx.emit(json!({"attempt": ctx.attempt()}))?;
                if ctx.attempt() == 1 {
                    return Err(Error::other("not yet"));
                }
                Ok(json!({"done": ctx.payload()}))
            },
        )
        .await
        .unwrap();

    // Nobody reads this handle's messages; the observer sees them anyway.
    let handle = manager
        .call("o-flaky", None, Some(json!({"n": 1})))
        .await
        .unwrap();
    let id = handle.id().to_owned();
    let output: Value = handle.await_output().await.unwrap();
    assert_eq!(output, json!({"done": {"n": 1}}));
    assert_eq!(
        journal.of(&id),
        [
            Seen::Started(id.clone(), Some(json!({"n": 1}))),
            Seen::Message(id.clone(), json!({"attempt": 1})),
            Seen::AttemptFailed(id.clone(), 1, "not yet".into()),
            Seen::Message(id.clone(), json!({"attempt": 2})),
            Seen::Ended(
                id.clone(),
                Outcome::Succeeded,
                Ok(json!({"done": {"n": 1}}))
            ),
        ]
    );
}

#[tokio::test]
async fn every_ending_reaches_the_observer_with_the_handles_error() {
    let manager = WorkerManager::new();
    manager.set_grace_period(Duration::from_millis(10));
    let journal = Arc::new(Journal::default());
    manager.observe(journal.clone());
    manager
        .register("o-bad", |_ctx| async { Err::<(), _>(Error::other("bad")) })
        .await
        .unwrap();
    manager
        .register("o-stuck", |ctx| async move {
            ctx.sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap();

    let bad = manager.call("o-bad", None, None).await.unwrap();
    let bad_id = bad.id().to_owned();
    let error = bad.await_result().await.unwrap_err().to_string();
    let stuck = manager.call("o-stuck", None, None).await.unwrap();
    let stuck_id = stuck.id().to_owned();
    tokio::task::yield_now().await;
    manager.cancel(&stuck_id).await.unwrap();
    let cancelled = stuck.await_result().await.unwrap_err().to_string();

    assert_eq!(
        journal.of(&bad_id).last(),
        Some(&Seen::Ended(bad_id.clone(), Outcome::Failed, Err(error)))
    );
    assert_eq!(
        journal.of(&stuck_id).last(),
        Some(&Seen::Ended(
            stuck_id.clone(),
            Outcome::Cancelled,
            Err(cancelled)
        ))
    );
    // Refused runs (unknown worker) are never announced.
    manager.call("o-unknown", None, None).await.unwrap_err();
    let ended = journal
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|seen| matches!(seen, Seen::Ended(..)))
        .count();
    let started = journal
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|seen| matches!(seen, Seen::Started(..)))
        .count();
    assert_eq!((started, ended), (2, 2));
}
