//! What a run made by `call_with` with a key or a start time carries
//! beyond a plain run: its key, what may still change before it starts
//! (payload, priority, time: a `Duplicate::Replace`), and the handles that
//! joined it, each of which gets every message from the moment it joined
//! and the run's outcome.
//!
//! Plain runs carry none of this (a `None` in the run), so it costs them
//! nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use serde_json::Value;

use crate::call::Start;
use crate::error::{Error, Result};
use crate::step::StepOf;
use crate::sync::lock;

/// A job's extras.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) key: Option<Box<str>>,
    state: Mutex<State>,
    /// Woken when a `Replace` changed the time or priority of the waiting
    /// run, so that it waits anew.
    pub(crate) changed: tokio::sync::Notify,
    /// The payload the run starts with, fixed when it starts.
    payload: OnceLock<Option<Value>>,
    /// For a workflow's step: which one, and its parents' outputs.
    pub(crate) step: Option<StepOf>,
}

#[derive(Debug)]
struct State {
    /// Until the run starts: what it will start with.
    payload: Option<Value>,
    priority: i32,
    /// The value of the worker's `limit_by` field in `payload`.
    limit_key: Option<String>,
    due: Option<Due>,
    /// A workflow's step whose parents haven't all succeeded: it waits
    /// for `release`, whatever its time.
    held: bool,
    started: bool,
    followers: Vec<Arc<Follow>>,
    /// Once the run has ended: its outcome, for a handle that joins late.
    ended: Option<Stored>,
}

/// What a job waits to start with, which a `Duplicate::Replace` may
/// change: its payload, its priority, the value of its `limit_by` field
/// (read from the payload) and its time.
#[derive(Debug)]
pub(crate) struct Waits {
    pub(crate) payload: Option<Value>,
    pub(crate) priority: i32,
    pub(crate) limit_key: Option<String>,
    pub(crate) due: Option<Due>,
}

/// When a job may start: on the wall clock (what listings show) and on
/// tokio's clock (what it sleeps until, so that tests on a paused clock
/// see it start on time).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Due {
    pub(crate) at: SystemTime,
    pub(crate) deadline: tokio::time::Instant,
}

impl Due {
    pub(crate) fn of(start: Start) -> Self {
        let now = SystemTime::now();
        let at = start.at(now);
        let wait = at.duration_since(now).unwrap_or_default();
        Due {
            at,
            deadline: tokio::time::Instant::now() + wait,
        }
    }

    /// Whether the time is still to come.
    pub(crate) fn is_ahead(&self) -> bool {
        self.deadline > tokio::time::Instant::now()
    }
}

/// An outcome every handle can have a copy of: the output, or the error's
/// kind and text (rebuilt with the same predicates).
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    Output(Value),
    Error { kind: &'static str, detail: String },
}

impl Stored {
    /// An error as a backend stored it: its kind (see `Error::kind`) and
    /// text.
    pub(crate) fn error(kind: &str, detail: String) -> Self {
        let kind = match kind {
            "validation" => "validation",
            "timeout" => "timeout",
            "cancelled" => "cancelled",
            "panic" => "panic",
            "permanent" => "permanent",
            "stalled" => "stalled",
            _ => "error",
        };
        Stored::Error { kind, detail }
    }

    pub(crate) fn of(outcome: &Result<Value>) -> Self {
        match outcome {
            Ok(value) => Stored::Output(value.clone()),
            Err(error) => Stored::Error {
                kind: error.kind(),
                detail: error.detail(),
            },
        }
    }

    pub(crate) fn rebuild(self, worker: &str, run_id: &str) -> Result<Value> {
        match self {
            Stored::Output(value) => Ok(value),
            Stored::Error { kind, detail } => Err(Error::from_kind(kind, &detail, worker, run_id)),
        }
    }
}

/// One joined handle's side: its messages and, at the end, the outcome.
#[derive(Debug, Default)]
pub(crate) struct Follow {
    inner: Mutex<FollowInner>,
}

#[derive(Debug, Default)]
struct FollowInner {
    messages: VecDeque<Value>,
    ended: Option<Stored>,
    waker: Option<Waker>,
}

impl Follow {
    fn push(&self, message: &Value) {
        let mut inner = lock(&self.inner);
        inner.messages.push_back(message.clone());
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }

    fn end(&self, outcome: Stored) {
        let mut inner = lock(&self.inner);
        inner.ended = Some(outcome);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }

    /// The next message; `Ready(None)` once the run ended and all were
    /// read.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        let mut inner = lock(&self.inner);
        if let Some(message) = inner.messages.pop_front() {
            return Poll::Ready(Some(message));
        }
        if inner.ended.is_some() {
            return Poll::Ready(None);
        }
        inner.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    pub(crate) fn try_recv(&self) -> Option<Value> {
        lock(&self.inner).messages.pop_front()
    }

    /// The outcome, once the run ended; unread messages are dropped.
    pub(crate) fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<Stored> {
        let mut inner = lock(&self.inner);
        inner.messages.clear();
        match &inner.ended {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => {
                inner.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        lock(&self.inner).ended.is_some()
    }
}

impl Job {
    pub(crate) fn new(key: Option<String>, waits: Waits) -> Box<Self> {
        Job::made(key, waits, None, false)
    }

    /// A workflow's step, held until its parents have succeeded
    /// ([`release`](Self::release)); `waits.due` is ignored: its delay
    /// counts from the release.
    pub(crate) fn step(waits: Waits, step: StepOf) -> Box<Self> {
        Job::made(None, waits, Some(step), true)
    }

    fn made(key: Option<String>, waits: Waits, step: Option<StepOf>, held: bool) -> Box<Self> {
        let Waits {
            payload,
            priority,
            limit_key,
            due,
        } = waits;
        Box::new(Job {
            key: key.map(String::into_boxed_str),
            state: Mutex::new(State {
                payload,
                priority,
                limit_key,
                due: if held { None } else { due },
                held,
                started: false,
                followers: Vec::new(),
                ended: None,
            }),
            changed: tokio::sync::Notify::new(),
            payload: OnceLock::new(),
            step,
        })
    }

    /// A claimed run of a stored workflow's step: started already (its
    /// backend released and claimed it); it carries the step for its
    /// context.
    pub(crate) fn claimed_step(payload: Option<Value>, priority: i32, step: StepOf) -> Box<Self> {
        let waits = Waits {
            payload,
            priority,
            limit_key: None,
            due: None,
        };
        let job = Job::made(None, waits, Some(step), false);
        job.start();
        job
    }

    /// Whether it still waits for a workflow's release.
    pub(crate) fn is_held(&self) -> bool {
        lock(&self.state).held
    }

    /// A workflow's step whose parents all succeeded: it may start, at
    /// `start` if given (its delay counts from now).
    pub(crate) fn release(&self, start: Option<Start>) {
        let mut state = lock(&self.state);
        state.held = false;
        state.due = start.map(Due::of);
        drop(state);
        self.changed.notify_one();
    }

    /// When it may start; `None`: now.
    pub(crate) fn due(&self) -> Option<Due> {
        lock(&self.state).due
    }

    /// When it starts, while that is still to come.
    pub(crate) fn waits_until(&self) -> Option<SystemTime> {
        self.due().filter(Due::is_ahead).map(|due| due.at)
    }

    pub(crate) fn priority(&self) -> i32 {
        lock(&self.state).priority
    }

    /// Its priority and the value of its `limit_by` field, as it waits at
    /// its worker's gate.
    pub(crate) fn place(&self) -> (i32, Option<String>) {
        let state = lock(&self.state);
        (state.priority, state.limit_key.clone())
    }

    /// The run starts: its payload is fixed, and a `Replace` joins it from
    /// now on.
    pub(crate) fn start(&self) {
        let mut state = lock(&self.state);
        state.started = true;
        let payload = state.payload.take();
        let _ = self.payload.set(payload);
    }

    /// The payload it started with; `None` before it started.
    pub(crate) fn started_payload(&self) -> Option<&Value> {
        self.payload.get().and_then(Option::as_ref)
    }

    /// A `Duplicate::Replace` of the run while it waits; nothing once it
    /// has started (the call then joins it).
    pub(crate) fn replace(&self, waits: Waits) {
        let mut state = lock(&self.state);
        if state.started {
            return;
        }
        state.payload = waits.payload;
        state.priority = waits.priority;
        state.limit_key = waits.limit_key;
        state.due = waits.due;
        drop(state);
        self.changed.notify_one();
    }

    /// A new handle on the run: messages from now on, then the outcome.
    pub(crate) fn follow(&self) -> Arc<Follow> {
        let follow = Arc::new(Follow::default());
        let mut state = lock(&self.state);
        match &state.ended {
            Some(outcome) => follow.end(outcome.clone()),
            None => state.followers.push(follow.clone()),
        }
        follow
    }

    /// Gives a message to every joined handle, and to the workflow of a
    /// step.
    pub(crate) fn fan_out(&self, message: &Value) {
        if let Some(step) = &self.step {
            step.message(message);
        }
        let state = lock(&self.state);
        for follow in &state.followers {
            follow.push(message);
        }
    }

    /// The run ended: every joined handle gets the outcome, and lets go.
    pub(crate) fn ended(&self, outcome: &Result<Value>) {
        let stored = Stored::of(outcome);
        let followers = {
            let mut state = lock(&self.state);
            state.ended = Some(stored.clone());
            state.payload = None;
            std::mem::take(&mut state.followers)
        };
        for follow in followers {
            follow.end(stored.clone());
        }
    }
}
