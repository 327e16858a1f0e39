//! Run event feeds: what lets any number of clients follow one run.
//!
//! `WORKER::call` gives one [`WorkerHandle`], and a handle has one reader.
//! For each run started over HTTP, [`Feeds::follow`] spawns a task that
//! drains the handle into the run's [`Feed`]: an in-memory log of its
//! messages (the last `capacity` of them; older ones are dropped and
//! counted) and, once the run has ended, its [`Outcome`]. Readers
//! ([`Feed::reader`]) replay the log from the start, then follow it live,
//! woken by a [`Notify`]; they never hold the run up.
//!
//! A feed is removed `retention` after its run ended (or at once on
//! [`Feeds::close`]), and its task ends with it, so memory stays bounded by
//! the runs in flight plus those that ended within the retention period.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Number, Value, json};
use tokio::sync::{Notify, watch};
use worker_core::WorkerHandle;

/// How many messages a feed keeps by default: the last 1,000.
pub const DEFAULT_FEED_CAPACITY: usize = 1000;

/// How long a feed outlives its run by default: 60 s.
pub const DEFAULT_FEED_RETENTION: Duration = Duration::from_secs(60);

/// How a run ended, as its `outcome` event tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The worker returned `Ok(())`.
    Ok,
    /// The run failed or was cancelled.
    Failed {
        /// `timeout`, `cancelled`, `panic`, `validation` or `error`.
        kind: &'static str,
        /// The error's sentence, e.g. `Worker 'flaky-job' timed out after 1s`.
        error: String,
    },
}

impl Outcome {
    /// The outcome of a run's result.
    pub fn of(result: &worker_core::Result<()>) -> Self {
        let Err(error) = result else {
            return Outcome::Ok;
        };
        let kind = if error.is_timeout() {
            "timeout"
        } else if error.is_cancelled() {
            "cancelled"
        } else if error.is_panic() {
            "panic"
        } else if error.is_validation() {
            "validation"
        } else {
            "error"
        };
        Outcome::Failed {
            kind,
            error: error.to_string(),
        }
    }

    /// `{"ok":true}` or `{"ok":false,"error":"…","kind":"…"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Ok => json!({"ok": true}),
            Outcome::Failed { kind, error } => json!({"ok": false, "error": error, "kind": kind}),
        }
    }
}

/// The feeds of the runs started over HTTP, by run id. A cheap `Clone`
/// handle; clones share the feeds.
#[derive(Debug, Clone)]
pub struct Feeds {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    capacity: usize,
    retention: Duration,
    closed: watch::Sender<bool>,
}

impl Feeds {
    /// Feeds keeping the last `capacity` messages of each run (at least 1),
    /// each removed `retention` after its run ended.
    pub fn new(capacity: usize, retention: Duration) -> Self {
        Feeds {
            shared: Arc::new(Shared {
                feeds: Mutex::default(),
                capacity: capacity.max(1),
                retention,
                closed: watch::Sender::new(false),
            }),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Feed>>> {
        lock(&self.shared.feeds)
    }

    /// Takes over a run's handle: its messages and outcome go to a new feed,
    /// listed under the run's id before this returns. Spawns the task that
    /// drains the handle; it ends when the feed is removed. Must be called
    /// inside a tokio runtime.
    pub fn follow(&self, mut handle: WorkerHandle) -> Arc<Feed> {
        let feed = Arc::new(Feed {
            run_id: handle.id().to_owned(),
            worker: handle.worker_name().to_owned(),
            log: Mutex::new(Log::default()),
            changed: Notify::new(),
        });
        self.map().insert(feed.run_id.clone(), feed.clone());
        let feeds = self.clone();
        let drained = feed.clone();
        tokio::spawn(async move {
            while let Some(message) = handle.recv().await {
                drained.push(message, feeds.shared.capacity);
            }
            drained.finish(Outcome::of(&handle.await_result().await));
            let mut closed = feeds.shared.closed.subscribe();
            tokio::select! {
                () = tokio::time::sleep(feeds.shared.retention) => {}
                _ = closed.wait_for(|closed| *closed) => {}
            }
            feeds.map().remove(&drained.run_id);
        });
        feed
    }

    /// The feed of a run, while it is kept.
    pub fn get(&self, run_id: &str) -> Option<Arc<Feed>> {
        self.map().get(run_id).cloned()
    }

    /// How many feeds are kept: runs in flight plus runs within retention.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no feed is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends retention now: feeds of ended runs are removed at once, and each
    /// feed of a run still going is removed as soon as that run ends.
    pub fn close(&self) {
        self.shared.closed.send_replace(true);
    }
}

/// One run's messages and outcome, for any number of readers.
#[derive(Debug)]
pub struct Feed {
    run_id: String,
    worker: String,
    log: Mutex<Log>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct Log {
    /// The messages kept, oldest first.
    messages: VecDeque<Value>,
    /// Sequence number of `messages[0]`: also how many were dropped.
    first: u64,
    /// The last numeric `progress` field seen.
    progress: Option<Number>,
    outcome: Option<Outcome>,
}

impl Feed {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The last numeric `progress` field among the run's messages, as sent.
    pub fn progress(&self) -> Option<Number> {
        lock(&self.log).progress.clone()
    }

    /// How many messages (the oldest) were dropped to stay within capacity.
    pub fn dropped(&self) -> u64 {
        lock(&self.log).first
    }

    /// How the run ended; `None` while it is going on.
    pub fn outcome(&self) -> Option<Outcome> {
        lock(&self.log).outcome.clone()
    }

    /// A reader from the first message kept, or from the message after
    /// sequence number `after` (an SSE client's `Last-Event-ID`).
    pub fn reader(self: &Arc<Self>, after: Option<u64>) -> FeedReader {
        FeedReader {
            feed: self.clone(),
            next: after.map_or(0, |seq| seq.saturating_add(1)),
            done: false,
        }
    }

    fn push(&self, message: Value, capacity: usize) {
        {
            let mut log = lock(&self.log);
            if let Some(Value::Number(progress)) = message.get("progress") {
                log.progress = Some(progress.clone());
            }
            log.messages.push_back(message);
            while log.messages.len() > capacity {
                log.messages.pop_front();
                log.first += 1;
            }
        }
        self.changed.notify_waiters();
    }

    fn finish(&self, outcome: Outcome) {
        lock(&self.log).outcome = Some(outcome);
        self.changed.notify_waiters();
    }
}

/// What a [`FeedReader`] reads, in order: messages (after a `Dropped` if
/// the reader fell behind the log), then the outcome, then nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// This many messages were dropped before the reader got to them.
    Dropped(u64),
    /// A message, with its sequence number in the run (0, 1, …).
    Message {
        /// Sequence number, the SSE event id.
        seq: u64,
        /// What the worker emitted.
        data: Value,
    },
    /// How the run ended; the last event.
    Outcome(Outcome),
}

/// One reader's position in a [`Feed`].
#[derive(Debug)]
pub struct FeedReader {
    feed: Arc<Feed>,
    next: u64,
    done: bool,
}

impl FeedReader {
    /// The next event, waiting for it if the run is going on; `None` after
    /// the outcome.
    pub async fn next(&mut self) -> Option<FeedEvent> {
        if self.done {
            return None;
        }
        loop {
            let changed = self.feed.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Register before looking: a push between the look and the await
            // would otherwise be missed.
            changed.as_mut().enable();
            {
                let log = lock(&self.feed.log);
                if self.next < log.first {
                    let missed = log.first - self.next;
                    self.next = log.first;
                    return Some(FeedEvent::Dropped(missed));
                }
                let index = usize::try_from(self.next - log.first).unwrap_or(usize::MAX);
                if let Some(data) = log.messages.get(index) {
                    let seq = self.next;
                    self.next += 1;
                    return Some(FeedEvent::Message {
                        seq,
                        data: data.clone(),
                    });
                }
                if let Some(outcome) = &log.outcome {
                    self.done = true;
                    return Some(FeedEvent::Outcome(outcome.clone()));
                }
            }
            changed.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use worker_core::prelude::*;

    async fn counting_manager(count: u64) -> WorkerManager {
        let manager = WorkerManager::new();
        manager
            .register("count", move |ctx| async move {
                for i in 0..count {
                    ctx.send(json!({"progress": i})).await?;
                }
                Ok(())
            })
            .await
            .unwrap();
        manager
    }

    async fn read_all(mut reader: FeedReader) -> Vec<FeedEvent> {
        let mut events = Vec::new();
        while let Some(event) = reader.next().await {
            events.push(event);
        }
        events
    }

    #[tokio::test]
    async fn readers_replay_then_follow_and_end_with_the_outcome() {
        let manager = counting_manager(5).await;
        let feeds = Feeds::new(100, Duration::from_secs(60));
        let feed = feeds.follow(manager.call("count", None, None).await.unwrap());
        let early = read_all(feed.reader(None)).await;
        let late = read_all(feed.reader(None)).await;
        assert_eq!(early, late);
        assert_eq!(early.len(), 6);
        assert_eq!(
            early[4],
            FeedEvent::Message {
                seq: 4,
                data: json!({"progress": 4})
            }
        );
        assert_eq!(early[5], FeedEvent::Outcome(Outcome::Ok));
        assert_eq!(feed.progress(), Some(4.into()));
        let resumed = read_all(feed.reader(Some(3))).await;
        assert_eq!(resumed.len(), 2, "{resumed:?}");
    }

    #[tokio::test]
    async fn the_log_keeps_the_last_messages_and_counts_the_rest() {
        let manager = counting_manager(10).await;
        let feeds = Feeds::new(3, Duration::from_secs(60));
        let feed = feeds.follow(manager.call("count", None, None).await.unwrap());
        while feed.outcome().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let events = read_all(feed.reader(None)).await;
        assert_eq!(feed.dropped(), 7);
        assert_eq!(events[0], FeedEvent::Dropped(7));
        assert_eq!(
            events[1],
            FeedEvent::Message {
                seq: 7,
                data: json!({"progress": 7})
            }
        );
        assert_eq!(events.len(), 5);
    }

    #[tokio::test]
    async fn feeds_are_removed_after_retention_or_on_close() {
        let manager = counting_manager(1).await;
        let feeds = Feeds::new(10, Duration::from_millis(50));
        let feed = feeds.follow(manager.call("count", None, None).await.unwrap());
        let weak = Arc::downgrade(&feed);
        drop(feed);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(feeds.is_empty());
        assert!(weak.upgrade().is_none(), "the task let go of the feed");

        let feeds = Feeds::new(10, Duration::from_secs(3600));
        let feed = feeds.follow(manager.call("count", None, None).await.unwrap());
        while feed.outcome().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        feeds.close();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(feeds.is_empty());
    }
}
