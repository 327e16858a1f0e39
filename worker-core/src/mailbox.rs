//! The buffer between a run's `emit` and its handle's `recv`.
//!
//! Policy: a run holds at most `capacity` unread messages. While a reader is
//! attached, an emit into a full buffer fails with
//! [`Error::MessageBufferFull`](crate::Error::MessageBufferFull) (the worker is
//! told, nothing is dropped silently) and `send(..).await` waits for room.
//! With no reader (the caller used `run()`, dropped its handle or is in
//! `await_result`), messages are discarded at once, so they cost nothing and
//! `emit` never fails for lack of a listener. A run allocates its mailbox on
//! the first message or the first `recv`, and the reader takes the whole
//! backlog per lock.
//!
//! Wake-ups for "room appeared" go through the run's [`Signals`], and a
//! reader that finds the buffer empty re-checks the run's end, so a mailbox
//! made after the run ended can't leave its reader waiting.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::run::lock;
use crate::signal::{Signal, Signals};

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
    /// Senders in `push_waiting`: only then is "room appeared" announced.
    waiting_senders: usize,
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
                waiting_senders: 0,
            }),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        lock(&self.state).capacity
    }

    /// Queues a message for the reader, or discards it if there is none.
    /// A full buffer hands the message back.
    pub(crate) fn try_push(&self, message: Value) -> Result<(), Value> {
        let waker = {
            let mut state = lock(&self.state);
            if state.unread || state.closed {
                return Ok(());
            }
            if state.queue.len() >= state.capacity {
                return Err(message);
            }
            state.queue.push_back(message);
            state.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Like [`try_push`](Self::try_push), but waits for room instead.
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
            return Poll::Ready(self.hand_over(state, inbox, signals));
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
        let state = lock(&self.state);
        if !state.queue.is_empty() {
            self.hand_over(state, inbox, signals);
        }
    }

    fn hand_over(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        inbox: &mut VecDeque<Value>,
        signals: &Signals,
    ) -> bool {
        std::mem::swap(&mut state.queue, inbox);
        let senders_wait = state.waiting_senders > 0;
        drop(state);
        if senders_wait {
            signals.wake_all();
        }
        true
    }

    /// The reader is gone: free the backlog and discard what comes later.
    pub(crate) fn detach_reader(&self, signals: &Signals) {
        let (backlog, senders_wait) = {
            let mut state = lock(&self.state);
            state.unread = true;
            state.reader = None;
            (std::mem::take(&mut state.queue), state.waiting_senders > 0)
        };
        drop(backlog);
        if senders_wait {
            signals.wake_all();
        }
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

    fn drain(mailbox: &Mailbox) -> Vec<Value> {
        let mut inbox = VecDeque::new();
        mailbox.take_all(&mut inbox, &Signals::default());
        inbox.into_iter().collect()
    }

    #[test]
    fn a_full_buffer_is_reported_not_dropped() {
        let mailbox = Mailbox::new(2, false);
        mailbox.try_push(json!(1)).unwrap();
        mailbox.try_push(json!(2)).unwrap();
        assert_eq!(mailbox.try_push(json!(3)), Err(json!(3)));
        assert_eq!(drain(&mailbox), vec![json!(1), json!(2)]);
        mailbox.try_push(json!(3)).unwrap();
        assert_eq!(drain(&mailbox), vec![json!(3)]);
    }

    #[test]
    fn detaching_the_reader_frees_the_backlog() {
        let mailbox = Mailbox::new(8, false);
        mailbox.try_push(json!("a")).unwrap();
        mailbox.detach_reader(&Signals::default());
        mailbox.try_push(json!("b")).unwrap();
        assert!(drain(&mailbox).is_empty());
    }

    #[tokio::test]
    async fn a_waiting_sender_resumes_when_the_reader_takes() {
        let mailbox = std::sync::Arc::new(Mailbox::new(1, false));
        let signals = std::sync::Arc::new(Signals::default());
        mailbox.try_push(json!(1)).unwrap();
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
