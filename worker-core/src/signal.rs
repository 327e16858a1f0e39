//! A run's one-shot signals ("cancel requested", "ended"): each fired once,
//! observed by any number of waiters, from any runtime. They share one
//! `Notify` (a run is mostly waited on for one thing at a time, and a
//! spurious wake-up only costs a re-check), which keeps a run small.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering::SeqCst};
use std::sync::{Mutex, OnceLock};
use std::task::Waker;

use tokio::sync::Notify;

use crate::sync::lock;

/// One of a run's signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Signal {
    Cancel = 1,
    Ended = 2,
}

#[derive(Debug, Default)]
pub(crate) struct Signals {
    fired: AtomicU8,
    /// How many are in `wait_until`: with none, firing skips the `Notify`
    /// (whose `notify_waiters` always takes a lock).
    waiting: AtomicU32,
    /// Made by the first waiter: most runs are never waited on.
    notify: OnceLock<Box<Notify>>,
    /// The future driving the run: woken directly by `Cancel`, so it needs
    /// no `Notified` of its own (that would make every run's task bigger).
    driver: Mutex<Option<Waker>>,
}

impl Signals {
    /// Fires `signal`; `true` if this call was the one that fired it.
    pub(crate) fn fire(&self, signal: Signal) -> bool {
        let before = self.fired.fetch_or(signal as u8, SeqCst);
        let first = before & signal as u8 == 0;
        if first {
            self.wake_all();
            if signal == Signal::Cancel {
                if let Some(driver) = lock(&self.driver).take() {
                    driver.wake();
                }
            }
        }
        first
    }

    /// Registers the driving future's waker for `Cancel`.
    pub(crate) fn set_driver(&self, waker: &Waker) {
        let mut driver = lock(&self.driver);
        match driver.as_ref() {
            Some(current) if current.will_wake(waker) => {}
            _ => *driver = Some(waker.clone()),
        }
    }

    pub(crate) fn is_fired(&self, signal: Signal) -> bool {
        self.fired.load(SeqCst) & signal as u8 != 0
    }

    /// Resolves once `signal` has fired (at once if it already has).
    pub(crate) async fn wait(&self, signal: Signal) {
        if !self.is_fired(signal) {
            self.wait_until(|| self.is_fired(signal)).await;
        }
    }

    /// Wakes every waiter so it re-checks its condition (used for "room in
    /// the message buffer", which is not a one-shot signal).
    pub(crate) fn wake_all(&self) {
        // A waiter counts itself before it checks its condition, and this
        // reads the count after the condition changed (both SeqCst): either
        // the waiter sees the change, or this sees the waiter.
        if self.waiting.load(SeqCst) > 0 {
            // A waiter counts itself before it makes the Notify, so one
            // that is not here yet will see the condition itself.
            if let Some(notify) = self.notify.get() {
                notify.notify_waiters();
            }
        }
    }

    /// Waits for the next `wake_all` or `fire`, registered before `check`
    /// runs so none is missed; returns at once if `check` says done.
    pub(crate) async fn wait_until(&self, mut check: impl FnMut() -> bool) {
        let _counted = Waiting::enter(&self.waiting);
        loop {
            let notified = self.notify.get_or_init(Box::default).notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if check() {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a waiter for as long as it waits, also if its future is dropped.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_before_and_after_firing_all_resolve() {
        let signals = Arc::new(Signals::default());
        let early = tokio::spawn({
            let signals = signals.clone();
            async move { signals.wait(Signal::Ended).await }
        });
        tokio::task::yield_now().await;
        assert!(signals.fire(Signal::Cancel));
        tokio::task::yield_now().await;
        assert!(!early.is_finished(), "another signal does not end the wait");
        assert!(signals.fire(Signal::Ended));
        assert!(!signals.fire(Signal::Ended), "a signal fires once");
        early.await.unwrap();
        signals.wait(Signal::Ended).await;
        signals.wait(Signal::Cancel).await;
    }
}
