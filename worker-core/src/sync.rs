//! Helpers for state shared between threads: a lock that tolerates poison,
//! the machine's parallelism, which sizes stripes and shards, and the clock
//! runs are timed with.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Now, by tokio's clock: the monotonic clock itself in a build without
/// tokio's `test-util`, and the paused clock's virtual time in tests that
/// use it, so that run times, waits and timeouts agree there.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this crate is a single read or write that a
    // panic can't leave half-done, so a poisoned lock is still consistent.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// The machine's parallelism, read once: `available_parallelism` reads
/// cgroup files on every call (tens of µs), and every definition and
/// manager sizes its stripes and shards by it.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
}
