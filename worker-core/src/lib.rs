//! On-demand background workers for tokio, declared once and run from
//! anywhere.
//!
//! ```
//! use std::time::Duration;
//! use worker_core::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Email {
//!     to: String,
//! }
//!
//! #[worker("send-email", timeout = "5s")]
//! async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> {
//!     ctx.info(&format!("sending to {}", email.to));
//!     ctx.emit(json!({"status": "sent", "to": email.to}))?;
//!     Ok(())
//! }
//!
//! #[worker] // named after the fn: "generate-report"
//! async fn generate_report(ctx: WorkerContext) -> Result<()> {
//!     for progress in [25, 50, 75, 100] {
//!         ctx.emit(json!({"progress": progress}))?;
//!         ctx.sleep(Duration::from_millis(1)).await;
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<()> {
//!     let manager = Workers::new().start().await?; // #[worker] fns are already registered
//!
//!     WORKER::run("send-email", Some(json!({"to": "a@b.c"}))).await?;
//!
//!     let mut handle = WORKER::call("generate-report", None, None).await?;
//!     while let Some(progress) = handle.recv().await {
//!         println!("{progress}");
//!     }
//!     handle.await_result().await?;
//!
//!     let err = WORKER::run("send-email", Some(json!({"subject": "hi"}))).await.unwrap_err();
//!     assert_eq!(err.to_string(), "invalid payload for worker 'send-email': missing field `to`");
//!
//!     manager.shutdown().await
//! }
//! ```
//!
//! In an application, `#[auto_discover]` on `main` also declares every file
//! of `src/workers/`, and `Workers::new().auto_load()` runs their
//! `install()` fns (see the README).
//!
//! - [`#[worker]`](macro@worker) declares a worker; it is registered at link
//!   time and present in the global manager before anything can ask for it.
//!   A typed payload is deserialized before the body runs.
//! - [`WORKER`] is the global API: `register`, `call`, `run`, `cancel`,
//!   `definitions`, `running`, `running_for`, `stats`, `shutdown`.
//! - [`WorkerContext`] is what a worker gets: payload, config, logging,
//!   per-run state, messages to the caller, cancellation.
//! - [`WorkerHandle`] is what `call` gives: messages, result, typed output
//!   ([`WorkerHandle::await_output`]), cancel.
//! - [`TypedCall`] is what a `#[worker]` fn's typed entry point
//!   `send_email::call(email)` gives: the payload's type checked at compile
//!   time, awaited into a [`TypedHandle`] that knows the output's type.
//! - [`WorkerOptions`] is a worker's run policy: timeout, retries with
//!   backoff, concurrency and queue limits, a schedule (`every`, or `cron`
//!   in a time zone), cluster-wide limits (`global_concurrency`, a
//!   [`Rate`], and per value of a payload field with `limit_by`).
//!   `#[worker(retries = 3, concurrency = 4, rate = "100/1m", …)]` declares
//!   the same keys, checked at compile time.
//! - [`Workflow`] is a DAG of steps, each a run of a worker that starts
//!   once the steps it waits for have succeeded and reads their outputs
//!   ([`WorkerContext::parent_output`]); `WORKER::start_workflow` gives a
//!   [`WorkflowHandle`] of its [`WorkflowEvent`]s, result and outputs.
//! - [`Workers`] starts it all; [`auto_workers!`] and
//!   [`#[auto_discover]`](macro@auto_discover) find `src/workers/`.
//!
//! # Guarantees
//! Every run ends exactly once (succeeded, failed, timed out, panicked or
//! cancelled), is counted once in [`WorkerStats`], and leaves
//! [`WORKER::running`] the moment it ends. A panicking worker fails its run
//! and nothing else. Messages arrive in order, once; `emit` never fails for
//! lack of a listener, and unread messages are bounded (see
//! [`WorkerContext::emit`]).
//!
//! # Inside
//! The modules form layers; each imports only from the layers below it, and
//! the test `tests/layers.rs` fails on any import that goes up or round in
//! a circle. A call's data path reads top to bottom: the manager finds the
//! name's definition and launcher, the launcher makes the run's context and
//! spawns its driver, the driver ends the run, which counts it in the stats
//! and closes its handle's messages.
//!
//! ```text
//!  facade      global (WORKER)   builder (Workers)   private (for the macros)
//!              typed (TypedCall, TypedHandle: #[worker]'s typed call sites)
//!                 │                  │                  │
//!  manager     manager: registry of definitions + launchers, per-thread views,
//!                 │     admission, cancel, shutdown, the backend's Executor
//!              flows (start_workflow, attach_workflow, what dashboards read)
//!  lifecycle   registration ─ launch ─ drive       handle   scheduler   backend
//!                 (link-time)  (typed)   (deadline, cancel, hold, ending)  (the durable contract)
//!              pending (a job's wait for its parents, time and gate)
//!              local_flow (a workflow of this process; the registry)
//!              workflow_handle (WorkflowHandle)
//!                                 │
//!  context     context (WorkerContext)
//!                 │
//!  run         run: the record a context, handle and driver share; its scope
//!                 │
//!  worker      definition (name, default timeout, stats, origin)
//!                 │
//!  foundation  signal  mailbox  stats  histogram  config  options  schedule
//!              call (Call: one call's options)  gate (priority, pause, slots)
//!              job (a keyed or timed run's extras, joined handles)
//!              limits (Rate, LimitUse: cluster-wide and per-key limits)
//!              limiter (the gate's part in them: per-key lines, rate windows)
//!              error  duration  running  sync  run_state  run_id  host  name_rule
//!              observe (Observer)  telemetry (spans, metrics)  remote (RemoteRun)
//!              history (History: what dashboards read)
//!              workflow (Workflow, its check into a Plan)  workflow_log
//!              (WorkflowEvent, a workflow's record)  step (a step's parents)
//!              workflow_status (WorkflowStatus: what dashboards show)
//!              build (for build scripts)
//! ```

#![warn(missing_docs)]

// Foundation: no imports from any other layer.
mod call;
mod config;
mod duration;
mod error;
mod gate;
mod histogram;
mod history;
mod host;
mod job;
mod limiter;
mod limits;
mod mailbox;
mod name_rule;
pub mod observe;
mod options;
mod remote;
mod run_id;
mod run_state;
mod running;
mod schedule;
mod signal;
mod stats;
mod step;
mod sync;
mod telemetry;
mod workflow;
mod workflow_log;
mod workflow_status;
// A worker as runs see it.
mod definition;
// One run's record and its ending.
mod run;
// What a worker is handed.
mod context;
// Executing runs, and the caller's side of them.
pub mod backend;
mod drive;
mod handle;
mod launch;
mod local_flow;
mod pending;
mod registration;
mod scheduler;
mod workflow_handle;
// The manager and its faces.
mod builder;
mod flows;
mod global;
mod manager;
mod typed;

pub mod build;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use builder::Workers;
pub use call::{Call, Duplicate};
pub use config::{AppConfig, DEFAULT_GRACE_PERIOD, DEFAULT_MESSAGE_BUFFER, Environment};
pub use context::WorkerContext;
pub use duration::format_duration;
pub use error::{Error, InstallFailure, Result};
pub use global::WORKER;
pub use handle::WorkerHandle;
pub use history::ScheduledRun;
pub use host::process_name;
pub use limits::{BUSIEST_KEYS, KeyUse, LimitUse, Rate};
pub use manager::{WorkerManager, shutdown_signal};
pub use observe::Outcome;
pub use options::{DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX, MAX_RETRIES, WorkerOptions};
pub use run_id::RunId;
pub use run_state::RunState;
pub use stats::WorkerStats;
pub use typed::{TypedCall, TypedHandle};
pub use worker_derive::{auto_discover, auto_workers, worker};
pub use workflow::{Workflow, WorkflowId};
pub use workflow_handle::WorkflowHandle;
pub use workflow_log::WorkflowEvent;
pub use workflow_status::{StepState, StepStatus, WorkflowState, WorkflowStatus};

/// Everything a worker file or an application needs:
/// `use worker_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AppConfig, Call, Duplicate, Environment, Error, Rate, Result, TypedCall, TypedHandle,
        WORKER, WorkerContext, WorkerHandle, WorkerManager, WorkerOptions, WorkerStats, Workers,
        Workflow, WorkflowEvent, WorkflowHandle,
    };
    pub use serde_json::{Value, json};
    pub use worker_derive::{auto_discover, auto_workers, worker};
}
