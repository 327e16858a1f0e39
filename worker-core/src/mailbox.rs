//! The buffer between a run's `emit` and its handle's `recv`.
//!
//! Policy: a progress message never fails a run, and nothing is dropped
//! while a reader is attached. `emit` always queues; once `capacity`
//! messages wait unread, the run is *held*: its driver stops polling the
//! worker (see [`hold_driver`](Mailbox::hold_driver)) until the reader
//! takes the backlog, so a worker that outpaces its reader is slowed down
//! at its next yield instead of failing or growing the buffer without end.
//! `send(..).await` waits for room before it queues. With no reader (the
//! caller used `run()`, dropped its handle or is in `await_result`),
//! messages are discarded at once, so they cost nothing.
//!
//! A run allocates its mailbox on the first message or the first `recv`,
//! and the reader takes the whole backlog per lock. Wake-ups for "room
//! appeared" go to the held driver directly and to waiting senders through
//! the run's [`Signals`]; a reader that finds the buffer empty re-checks the
//! run's end, so a mailbox made after the run ended can't leave its reader
//! waiting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::signal::{Signal, Signals};
use crate::sync::lock;

#[derive(Debug)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    queue: VecDeque<Value>,
    capacity: usize,
    /// The run is over: nothing more will be queued.
    closed: bool,
    /// Nobody will read: messages are discarded.
    unread: bool,
    reader: Option<Waker>,
    /// The run's driver, held until the reader makes room.
    held_driver: Option<Waker>,
    /// Senders in `push_waiting`: only then is "room appeared" announced
    /// through the signals.
    waiting_senders: usize,
}

impl State {
    fn is_full(&self) -> bool {
        !self.unread && !self.closed && self.queue.len() >= self.capacity
    }
}

/// Wake-ups owed once the lock is released.
#[must_use]
struct Room {
    driver: Option<Waker>,
    senders: bool,
}

impl Room {
    fn announce(self, signals: &Signals) {
        if let Some(driver) = self.driver {
            driver.wake();
        }
        if self.senders {
            signals.wake_all();
        }
    }
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, closed: bool) -> Self {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                closed,
                unread: false,
                reader: None,
                held_driver: None,
                waiting_senders: 0,
            }),
        }
    }

    /// Queues a message for the reader, or discards it if there is none.
    /// Never refuses: a full buffer holds the run's driver instead.
    pub(crate) fn push(&self, message: Value) {
        let waker = {
            let mut state = lock(&self.state);
            if state.unread || state.closed {
                return;
            }
            state.queue.push_back(message);
            state.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Queues a message if there is room (or discards it if nobody will
    /// read); a full buffer hands it back.
    pub(crate) fn try_push(&self, message: Value) -> Result<(), Value> {
        if lock(&self.state).is_full() {
            return Err(message);
        }
        self.push(message);
        Ok(())
    }

    /// Queues a message once there is room for it (or discards it if the
    /// reader goes away).
    pub(crate) async fn push_waiting(&self, message: Value, signals: &Signals) {
        let mut message = match self.try_push(message) {
            Ok(()) => return,
            Err(back) => Some(back),
        };
        let _waiting = WaitingSender::enter(self);
        signals
            .wait_until(|| match message.take().map(|m| self.try_push(m)) {
                Some(Err(back)) => {
                    message = Some(back);
                    false
                }
                _ => true,
            })
            .await;
    }

    /// `true` if the buffer is full with a reader attached: the driver must
    /// not poll the worker now, and `waker` is woken once the reader has
    /// taken the backlog (or gone away).
    pub(crate) fn hold_driver(&self, waker: &Waker) -> bool {
        let mut state = lock(&self.state);
        if !state.is_full() {
            return false;
        }
        match &state.held_driver {
            Some(held) if held.will_wake(waker) => {}
            _ => state.held_driver = Some(waker.clone()),
        }
        true
    }

    /// Moves every queued message into `inbox` (which must be empty), or
    /// registers the reader's waker. `Ready(false)` means the run is over
    /// and nothing is left.
    pub(crate) fn poll_take_all(
        &self,
        inbox: &mut VecDeque<Value>,
        cx: &mut Context<'_>,
        signals: &Signals,
    ) -> Poll<bool> {
        let mut state = lock(&self.state);
        if !state.queue.is_empty() {
            let room = Self::hand_over(&mut state, inbox);
            drop(state);
            room.announce(signals);
            return Poll::Ready(true);
        }
        if state.closed || signals.is_fired(Signal::Ended) {
            return Poll::Ready(false);
        }
        match &state.reader {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes what is queued without waiting.
    pub(crate) fn take_all(&self, inbox: &mut VecDeque<Value>, signals: &Signals) {
        let mut state = lock(&self.state);
        if !state.queue.is_empty() {
            let room = Self::hand_over(&mut state, inbox);
            drop(state);
            room.announce(signals);
        }
    }

    fn hand_over(state: &mut State, inbox: &mut VecDeque<Value>) -> Room {
        std::mem::swap(&mut state.queue, inbox);
        // A burst above the capacity must not leave its peak allocation
        // behind in the buffer the worker writes into next.
        if state.queue.capacity() > state.capacity * 2 {
            state.queue = VecDeque::new();
        }
        Room {
            driver: state.held_driver.take(),
            senders: state.waiting_senders > 0,
        }
    }

    /// The reader is gone: free the backlog and discard what comes later.
    pub(crate) fn detach_reader(&self, signals: &Signals) {
        let (backlog, room) = {
            let mut state = lock(&self.state);
            state.unread = true;
            state.reader = None;
            let room = Room {
                driver: state.held_driver.take(),
                senders: state.waiting_senders > 0,
            };
            (std::mem::take(&mut state.queue), room)
        };
        drop(backlog);
        room.announce(signals);
    }

    /// The run is over: the reader drains what is queued, then sees the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut state = lock(&self.state);
            state.closed = true;
            state.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// Counts a sender in `push_waiting`, also if its future is dropped.
struct WaitingSender<'a>(&'a Mailbox);

impl<'a> WaitingSender<'a> {
    fn enter(mailbox: &'a Mailbox) -> Self {
        lock(&mailbox.state).waiting_senders += 1;
        WaitingSender(mailbox)
    }
}

impl Drop for WaitingSender<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).waiting_senders -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;

    fn drain(mailbox: &Mailbox) -> Vec<Value> {
        let mut inbox = VecDeque::new();
        mailbox.take_all(&mut inbox, &Signals::default());
        inbox.into_iter().collect()
    }

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn a_full_buffer_holds_the_driver_and_loses_nothing() {
        let mailbox = Mailbox::new(2, false);
        let wakes = Arc::new(CountingWaker::default());
        let driver = Waker::from(wakes.clone());
        mailbox.push(json!(1));
        assert!(!mailbox.hold_driver(&driver), "room left: keep polling");
        mailbox.push(json!(2));
        mailbox.push(json!(3));
        assert!(mailbox.hold_driver(&driver), "full: hold the worker");
        assert_eq!(wakes.0.load(SeqCst), 0);
        assert_eq!(drain(&mailbox), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(wakes.0.load(SeqCst), 1, "taking the backlog releases it");
        assert!(!mailbox.hold_driver(&driver));
    }

    #[test]
    fn detaching_the_reader_frees_the_backlog_and_releases_the_driver() {
        let mailbox = Mailbox::new(1, false);
        let wakes = Arc::new(CountingWaker::default());
        mailbox.push(json!("a"));
        assert!(mailbox.hold_driver(&Waker::from(wakes.clone())));
        mailbox.detach_reader(&Signals::default());
        assert_eq!(wakes.0.load(SeqCst), 1);
        mailbox.push(json!("b"));
        assert!(drain(&mailbox).is_empty());
        assert!(!mailbox.hold_driver(&Waker::from(wakes)));
    }

    #[tokio::test]
    async fn a_waiting_sender_resumes_when_the_reader_takes() {
        let mailbox = Arc::new(Mailbox::new(1, false));
        let signals = Arc::new(Signals::default());
        mailbox.push(json!(1));
        let sender = tokio::spawn({
            let (mailbox, signals) = (mailbox.clone(), signals.clone());
            async move { mailbox.push_waiting(json!(2), &signals).await }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        let mut inbox = VecDeque::new();
        mailbox.take_all(&mut inbox, &signals);
        assert_eq!(inbox, [json!(1)]);
        sender.await.unwrap();
        assert_eq!(drain(&mailbox), vec![json!(2)]);
    }
}
