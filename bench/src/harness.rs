//! Alternating rounds, per-round ratios and medians.
//!
//! Why this shape: on a shared 2-core machine the noise (other builds, CPU
//! frequency, the allocator's state) drifts over seconds. Measuring the
//! project and the raw-tokio leg back to back in many short rounds, and
//! taking the ratio *within* each round, cancels most of that drift; the
//! median of the per-round ratios then discards the rounds a burst of noise
//! hit, and min..max shows how much there was.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;

/// Where the measured loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `rt.block_on(..)` from `main`: the caller is not one of the
    /// runtime's worker threads (like the body of `#[tokio::main]`).
    Outside,
    /// `rt.block_on(rt.spawn(..))`: the caller is a task on a worker thread.
    InTask,
}

impl Context {
    /// Runs `future` to completion in this context and returns its output.
    pub fn block_on<F>(self, rt: &Runtime, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Context::Outside => rt.block_on(future),
            Context::InTask => rt
                .block_on(rt.spawn(future))
                .expect("benchmark task panicked"),
        }
    }
}

/// How many operations one measurement of a leg performs.
#[derive(Debug, Clone, Copy)]
pub enum Ops {
    /// Exactly this many (the case defines its size, e.g. a 100,000 burst).
    Fixed(u64),
    /// As many as take about this long; found during warm-up, so that a
    /// cheap leg and a slow one both get a measurement well above timer
    /// resolution and well below the time scale of the noise.
    Budget(Duration),
}

/// One side of a comparison: a closure that performs `n` operations and
/// returns how long they took (timed inside, so setup is excluded).
pub struct Leg<'a> {
    pub label: &'static str,
    ops: Ops,
    resolved: u64,
    run: Box<dyn FnMut(u64) -> Duration + 'a>,
}

impl<'a> Leg<'a> {
    pub fn new(label: &'static str, ops: Ops, run: impl FnMut(u64) -> Duration + 'a) -> Self {
        Leg {
            label,
            ops,
            resolved: 0,
            run: Box::new(run),
        }
    }

    /// Operations per measurement, once warmed up.
    pub fn ops(&self) -> u64 {
        self.resolved
    }

    /// Runs the leg before anything is recorded, so lazily built state
    /// (thread-locals, allocator arenas, the timer wheel, hash maps grown to
    /// size) is in place for both legs; and sizes a budgeted leg.
    fn warm_up(&mut self) {
        self.resolved = match self.ops {
            Ops::Fixed(n) => n,
            Ops::Budget(budget) => {
                let mut n = 1u64;
                loop {
                    let took = (self.run)(n);
                    if took >= budget / 8 || n >= 1 << 28 {
                        let scale = budget.as_secs_f64() / took.as_secs_f64().max(1e-9);
                        break ((n as f64 * scale) as u64).max(1);
                    }
                    n *= 4;
                }
            }
        };
        (self.run)(self.resolved);
    }

    /// Seconds per operation for one measurement.
    fn measure(&mut self) -> f64 {
        (self.run)(self.resolved).as_secs_f64() / self.resolved as f64
    }
}

/// Warms every leg up, then runs `rounds` rounds of one measurement per
/// leg, rotating which leg goes first each round (with two legs: they
/// alternate), so neither always inherits the other's leftovers.
/// Returns seconds per operation, indexed `[leg][round]`.
pub fn alternate(rounds: usize, legs: &mut [Leg<'_>]) -> Vec<Vec<f64>> {
    for leg in legs.iter_mut() {
        leg.warm_up();
    }
    let mut per_op = vec![Vec::with_capacity(rounds); legs.len()];
    for round in 0..rounds {
        for k in 0..legs.len() {
            let i = (round + k) % legs.len();
            per_op[i].push(legs[i].measure());
        }
    }
    per_op
}

/// Element-wise `f(a[i], b[i])`: per-round ratios of two legs.
pub fn per_round(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    a.iter().zip(b).map(|(&a, &b)| f(a, b)).collect()
}

/// Median and range of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The median (mean of the middle two for an even count) and extremes.
    pub fn of(values: &[f64]) -> Spread {
        assert!(!values.is_empty(), "no measurements");
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid]
        } else {
            (sorted[mid - 1] + sorted[mid]) / 2.0
        };
        Spread {
            median,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }

    /// A single value (no range).
    pub fn single(value: f64) -> Spread {
        Spread {
            median: value,
            min: value,
            max: value,
        }
    }
}

/// Median of a set of measurements.
pub fn median(values: &[f64]) -> f64 {
    Spread::of(values).median
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]).median, 2.0);
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        let s = Spread::of(&[5.0, 1.0, 9.0]);
        assert_eq!((s.min, s.max), (1.0, 9.0));
    }

    #[test]
    fn legs_alternate() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut legs = [
            Leg::new("a", Ops::Fixed(1), |_| {
                order.borrow_mut().push('a');
                Duration::from_nanos(1)
            }),
            Leg::new("b", Ops::Fixed(1), |_| {
                order.borrow_mut().push('b');
                Duration::from_nanos(1)
            }),
        ];
        let per_op = alternate(3, &mut legs);
        assert_eq!(per_op[0].len(), 3);
        // Warm-up a, b; then rounds ab, ba, ab.
        assert_eq!(order.borrow().iter().collect::<String>(), "ababbaab");
    }
}
