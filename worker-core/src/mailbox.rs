//! The buffer between a run's `emit` and its handle's `recv`.
//!
//! Policy: a run holds at most `capacity` unread messages. While a reader is
//! attached, an emit into a full buffer fails with
//! [`Error::MessageBufferFull`](crate::Error::MessageBufferFull) (the worker is
//! told, nothing is dropped silently) and `send(..).await` waits for room.
//! With no reader (the caller used `run()`, dropped its handle or is in
//! `await_result`), messages are discarded at once, so they cost nothing and
//! `emit` never fails for lack of a listener. Nothing is allocated until the
//! first message, and the reader takes the whole backlog per lock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use serde_json::Value;
use tokio::sync::Notify;

#[derive(Debug)]
pub(crate) struct Mailbox {
    state: Mutex<State>,
    /// Woken when room appears, the reader leaves or the run ends.
    room: Notify,
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
}

impl Mailbox {
    pub(crate) fn new(capacity: usize, has_reader: bool) -> Self {
        Mailbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                capacity: capacity.max(1),
                closed: false,
                unread: !has_reader,
                reader: None,
            }),
            room: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock can't leave the queue half-updated
        // (every critical section is a single push/swap), so poison is moot.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    pub(crate) fn capacity(&self) -> usize {
        self.lock().capacity
    }

    /// Queues a message for the reader, or discards it if there is none.
    /// A full buffer hands the message back.
    pub(crate) fn try_push(&self, message: Value) -> Result<(), Value> {
        let waker = {
            let mut state = self.lock();
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
    pub(crate) async fn push_waiting(&self, mut message: Value) {
        loop {
            let room = self.room.notified();
            let mut room = std::pin::pin!(room);
            room.as_mut().enable();
            match self.try_push(message) {
                Ok(()) => return,
                Err(back) => message = back,
            }
            room.await;
        }
    }

    /// Moves every queued message into `inbox` (which must be empty), or
    /// registers the reader's waker. `Ready(false)` means the run is over
    /// and nothing is left.
    pub(crate) fn poll_take_all(
        &self,
        inbox: &mut VecDeque<Value>,
        cx: &mut Context<'_>,
    ) -> Poll<bool> {
        let mut state = self.lock();
        if !state.queue.is_empty() {
            std::mem::swap(&mut state.queue, inbox);
            drop(state);
            self.room.notify_waiters();
            return Poll::Ready(true);
        }
        if state.closed {
            return Poll::Ready(false);
        }
        match &state.reader {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Takes what is queued without waiting.
    pub(crate) fn take_all(&self, inbox: &mut VecDeque<Value>) {
        let mut state = self.lock();
        if !state.queue.is_empty() {
            std::mem::swap(&mut state.queue, inbox);
            drop(state);
            self.room.notify_waiters();
        }
    }

    /// The reader is gone: free the backlog and discard what comes later.
    pub(crate) fn detach_reader(&self) {
        let backlog = {
            let mut state = self.lock();
            state.unread = true;
            state.reader = None;
            std::mem::take(&mut state.queue)
        };
        drop(backlog);
        self.room.notify_waiters();
    }

    /// The run is over: the reader drains what is queued, then sees the end.
    pub(crate) fn close(&self) {
        let waker = {
            let mut state = self.lock();
            state.closed = true;
            state.reader.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn drain(mailbox: &Mailbox) -> Vec<Value> {
        let mut inbox = VecDeque::new();
        mailbox.take_all(&mut inbox);
        inbox.into_iter().collect()
    }

    #[test]
    fn without_a_reader_messages_cost_nothing_and_never_fail() {
        let mailbox = Mailbox::new(2, false);
        for i in 0..10 {
            assert_eq!(mailbox.try_push(json!(i)), Ok(()));
        }
        assert!(drain(&mailbox).is_empty());
    }

    #[test]
    fn a_full_buffer_is_reported_not_dropped() {
        let mailbox = Mailbox::new(2, true);
        mailbox.try_push(json!(1)).unwrap();
        mailbox.try_push(json!(2)).unwrap();
        assert_eq!(mailbox.try_push(json!(3)), Err(json!(3)));
        assert_eq!(drain(&mailbox), vec![json!(1), json!(2)]);
        mailbox.try_push(json!(3)).unwrap();
        assert_eq!(drain(&mailbox), vec![json!(3)]);
    }

    #[test]
    fn detaching_the_reader_frees_the_backlog() {
        let mailbox = Mailbox::new(8, true);
        mailbox.try_push(json!("a")).unwrap();
        mailbox.detach_reader();
        mailbox.try_push(json!("b")).unwrap();
        assert!(drain(&mailbox).is_empty());
    }

    #[tokio::test]
    async fn a_waiting_sender_resumes_when_the_reader_takes() {
        let mailbox = std::sync::Arc::new(Mailbox::new(1, true));
        mailbox.try_push(json!(1)).unwrap();
        let sender = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { mailbox.push_waiting(json!(2)).await }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        assert_eq!(drain(&mailbox), vec![json!(1)]);
        sender.await.unwrap();
        assert_eq!(drain(&mailbox), vec![json!(2)]);
    }
}
