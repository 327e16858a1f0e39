//! A one-shot, many-waiter flag: fired once, observed by any number of
//! waiters, from any runtime. A run has two: "cancel requested" and "ended".

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct Signal {
    fired: AtomicBool,
    notify: Notify,
}

impl Signal {
    /// Fires the signal; `true` if this call was the one that fired it.
    pub(crate) fn fire(&self) -> bool {
        let first = !self.fired.swap(true, SeqCst);
        if first {
            self.notify.notify_waiters();
        }
        first
    }

    pub(crate) fn is_fired(&self) -> bool {
        self.fired.load(SeqCst)
    }

    /// Resolves once the signal has fired (at once if it already has).
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        let mut notified = std::pin::pin!(notified);
        // Register before checking the flag: a `fire` between the check and
        // the await would otherwise be missed.
        notified.as_mut().enable();
        if self.is_fired() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn waiters_before_and_after_firing_all_resolve() {
        let signal = Arc::new(Signal::default());
        let early = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(signal.fire());
        assert!(!signal.fire(), "a signal fires once");
        early.await.unwrap();
        signal.wait().await;
    }
}
