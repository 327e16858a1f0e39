//! The `tracing` feature: a `worker.run` span per run, made where it was
//! called (so a child of the caller's span even though another task
//! executes it), a `worker.attempt` child per attempt, the run's fields,
//! an event per step, and the worker's own log lines inside its span.
//!
//! Runs when the feature is on (`cargo test --workspace` turns it on
//! through `examples/web`; `cargo test -p worker-core --features tracing`
//! alone).
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use worker_core::prelude::*;

#[derive(Debug, Clone, Default)]
struct SpanSeen {
    name: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct EventSeen {
    message: String,
    fields: BTreeMap<String, String>,
    /// The span it happened in, if any.
    span: Option<u64>,
}

#[derive(Default)]
struct Seen {
    spans: BTreeMap<u64, SpanSeen>,
    events: Vec<EventSeen>,
}

impl Seen {
    fn spans_named(&self, name: &str) -> Vec<(u64, SpanSeen)> {
        self.spans
            .iter()
            .filter(|(_, span)| span.name == name)
            .map(|(id, span)| (*id, span.clone()))
            .collect()
    }

    /// The names of `id` and its ancestors, innermost first.
    fn ancestry(&self, mut id: Option<u64>) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(at) = id {
            let span = &self.spans[&at];
            names.push(span.name.clone());
            id = span.parent;
        }
        names
    }

    fn run_span_of(&self, run_id: &str) -> (u64, SpanSeen) {
        let runs: Vec<_> = self
            .spans_named("worker.run")
            .into_iter()
            .filter(|(_, span)| span.fields.get("run_id").map(String::as_str) == Some(run_id))
            .collect();
        assert_eq!(runs.len(), 1, "one worker.run span for {run_id}");
        runs[0].clone()
    }

    fn events_under(&self, span: u64) -> Vec<EventSeen> {
        self.events
            .iter()
            .filter(|event| {
                let mut at = event.span;
                while let Some(id) = at {
                    if id == span {
                        return true;
                    }
                    at = self.spans[&id].parent;
                }
                false
            })
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Seen>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut span = SpanSeen {
            name: attrs.metadata().name().to_owned(),
            parent: ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64()),
            ..Default::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.lock().unwrap().spans.insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(span) = seen.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let span = ctx.event_span(event).map(|s| s.id().into_u64());
        self.0.lock().unwrap().events.push(EventSeen {
            message,
            fields,
            span,
        });
    }
}

fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    (capture, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_called_run_is_a_child_of_the_callers_span_with_its_fields_events_and_log_lines() {
    let (capture, _guard) = capture();
    let manager = WorkerManager::new();
    manager
        .register("traced", |ctx| async move {
            ctx.info("inside the worker");
            let clone = ctx.clone();
            // From another task: still in the run's span.
            tokio::spawn(async move { clone.warn("from a spawned task") })
                .await
                .unwrap();
            Ok(())
        })
        .await
        .unwrap();

    let request = tracing::info_span!("http.request", path = "/reports");
    let handle = {
        let _entered = request.enter();
        manager.call("traced", None, None).await.unwrap()
    };
    let run_id = handle.id().to_owned();
    handle.await_result().await.unwrap();

    let seen = capture.0.lock().unwrap();
    let (run_span, run) = seen.run_span_of(&run_id);
    assert_eq!(
        seen.ancestry(run.parent),
        ["http.request"],
        "the run's span is a child of the span it was called in"
    );
    assert_eq!(run.fields["worker"], "traced");
    assert_eq!(run.fields["attempt"], "1");
    assert_eq!(run.fields["outcome"], "succeeded");

    let attempts: Vec<_> = seen
        .spans_named("worker.attempt")
        .into_iter()
        .filter(|(_, span)| span.parent == Some(run_span))
        .collect();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].1.fields["attempt"], "1");

    let events = seen.events_under(run_span);
    let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
    for expected in [
        "started",
        "inside the worker",
        "from a spawned task",
        "succeeded",
    ] {
        assert!(messages.contains(&expected), "{expected:?} in {messages:?}");
    }
    let inside = events
        .iter()
        .find(|e| e.message == "inside the worker")
        .unwrap();
    assert_eq!(
        seen.ancestry(inside.span),
        ["worker.attempt", "worker.run", "http.request"],
        "a line the worker logs from its own task is in its attempt's span"
    );
    let succeeded = events.iter().find(|e| e.message == "succeeded").unwrap();
    assert!(succeeded.fields.contains_key("elapsed_ms"));
}

#[tokio::test]
async fn each_retry_is_an_attempt_span_and_every_ending_has_its_event() {
    let (capture, _guard) = capture();
    let manager = WorkerManager::new();
    manager
        .register_with(
            "t-flaky",
            WorkerOptions::new()
                .retries(1)
                .backoff(Duration::from_millis(5)),
            |ctx| async move {
                if ctx.attempt() == 1 {
                    return Err(Error::other("first try fails"));
                }
                Ok(())
            },
        )
        .await
        .unwrap();
    manager
        .register("t-failing", |_ctx| async move {
            Err::<(), _>(Error::other("no luck"))
        })
        .await
        .unwrap();
    manager
        .register_with(
            "t-slow",
            WorkerOptions::new().timeout(Duration::from_millis(10)),
            |ctx| async move {
                ctx.sleep(Duration::from_secs(5)).await;
                Ok(())
            },
        )
        .await
        .unwrap();
    manager
        .register("t-panicking", |_ctx| async move {
            if true {
                panic!("boom");
            }
            Ok(())
        })
        .await
        .unwrap();
    manager
        .register("t-waiting", |ctx| async move {
            ctx.sleep(Duration::from_secs(60)).await;
            Ok(())
        })
        .await
        .unwrap();

    let flaky = manager.call("t-flaky", None, None).await.unwrap();
    let flaky_id = flaky.id().to_owned();
    flaky.await_result().await.unwrap();
    let mut endings = Vec::new();
    for worker in ["t-failing", "t-slow", "t-panicking"] {
        let handle = manager.call(worker, None, None).await.unwrap();
        endings.push((handle.id().to_owned(), worker));
        handle.await_result().await.unwrap_err();
    }
    let waiting = manager.call("t-waiting", None, None).await.unwrap();
    let waiting_id = waiting.id().to_owned();
    tokio::task::yield_now().await;
    manager.cancel(&waiting_id).await.unwrap();

    let seen = capture.0.lock().unwrap();
    let (flaky_span, flaky_run) = seen.run_span_of(&flaky_id);
    assert_eq!(flaky_run.parent, None, "called outside any span: a root");
    assert_eq!(flaky_run.fields["attempt"], "2");
    assert_eq!(flaky_run.fields["outcome"], "succeeded");
    let attempts: Vec<String> = seen
        .spans_named("worker.attempt")
        .into_iter()
        .filter(|(_, span)| span.parent == Some(flaky_span))
        .map(|(_, span)| span.fields["attempt"].clone())
        .collect();
    assert_eq!(attempts, ["1", "2"]);
    let retrying: Vec<_> = seen
        .events_under(flaky_span)
        .into_iter()
        .filter(|e| e.message == "retrying")
        .collect();
    assert_eq!(retrying.len(), 1);
    assert_eq!(retrying[0].fields["error"], "first try fails");
    let delay: f64 = retrying[0].fields["delay_ms"].parse().unwrap();
    assert!(delay > 0.0, "the backoff delay is in the event: {delay}");

    for ((run_id, worker), (outcome, event)) in endings.iter().zip([
        ("failed", "failed"),
        ("timed_out", "timed out"),
        ("panicked", "panicked"),
    ]) {
        let (span, run) = seen.run_span_of(run_id);
        assert_eq!(run.fields["outcome"], outcome, "{worker}");
        let ending = seen
            .events_under(span)
            .into_iter()
            .find(|e| e.message == event)
            .unwrap_or_else(|| panic!("{worker}: no {event:?} event"));
        assert!(ending.fields.contains_key("error"), "{worker}: {ending:?}");
        assert!(
            ending.fields.contains_key("elapsed_ms"),
            "{worker}: {ending:?}"
        );
    }
    let (span, run) = seen.run_span_of(&waiting_id);
    assert_eq!(run.fields["outcome"], "cancelled");
    assert!(
        seen.events_under(span)
            .iter()
            .any(|e| e.message == "cancelled")
    );
}
