//! The limits a worker's runs start under in this process besides its
//! local `concurrency`: `global_concurrency` and `rate` for the whole
//! worker, `key_concurrency` and `key_rate` per value of its `limit_by`
//! field. In-process the process is the whole cluster, so they all apply
//! here. The gate (see `gate`) keeps one behind its lock and asks it which
//! waiting run may start next; this module knows nothing of wakers, tasks
//! or clocks (it is handed the time), so it is tested as plain data.
//!
//! Waiting runs queue per key (runs of a worker without `limit_by` share
//! one queue). The first run of each key that the key's own limits let
//! start is listed in one ordered set, `ready`; a key at its
//! `key_concurrency` is listed nowhere until one of its runs ends, and a
//! key whose `key_rate` window is full rests in `resting` until the window
//! has room. The next run to start is the first of `ready`, when the
//! worker's own limits allow one: O(log n) per start, however many runs
//! wait behind keys at their limits.
//!
//! Order: highest priority first, then by turn. A key draws a turn when
//! it joins `ready` and again each time one of its runs starts, so that
//! among keys of one priority a key with a long backlog takes its turn
//! behind the keys already waiting: one key's thousand runs never hold
//! back another key's one. Within a key, priority, then first come.
//!
//! A rate is a sliding window of start instants (a start is when a run is
//! let through): at most `count` in any interval of `period`, so no burst
//! of twice the rate straddles the turn of a period. A window keeps at
//! most `count` instants, fewer when starts share an instant.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::limits::{BUSIEST_KEYS, KeyUse, LimitUse, Rate};
use crate::options::WorkerOptions;

/// Where a waiting run stands: highest priority first, then the lowest
/// number (drawn in order of arrival, or of turns).
pub(crate) type Place = (Reverse<i32>, u64);

/// A value of the worker's `limit_by` field, as its queue and the permits
/// of its running runs share it.
pub(crate) type Key = Arc<str>;

/// A period longer than this counts as this: an `Instant` can't reach
/// arbitrarily far, and a century is as good as forever for a window.
const LONGEST_PERIOD: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A worker's limits, as its options declare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    global_concurrency: Option<usize>,
    rate: Option<Rate>,
    key_concurrency: Option<usize>,
    key_rate: Option<Rate>,
}

impl Rules {
    /// The limits `options` declare; `None` for a worker without any.
    pub(crate) fn of(options: &WorkerOptions) -> Option<Rules> {
        options.is_limited().then(|| Rules {
            global_concurrency: options.get_global_concurrency(),
            rate: options.get_rate(),
            key_concurrency: options.get_key_concurrency(),
            key_rate: options.get_key_rate(),
        })
    }
}

/// The starts of the last period, against a [`Rate`].
#[derive(Debug)]
struct Window {
    count: u64,
    period: Duration,
    /// Start instants still in the window, oldest first; starts at one
    /// instant share an entry.
    starts: VecDeque<(Instant, u32)>,
    /// How many starts `starts` holds.
    total: u64,
}

impl Window {
    fn new(rate: Rate) -> Self {
        Window {
            count: u64::from(rate.count()),
            period: rate.period().min(LONGEST_PERIOD),
            starts: VecDeque::new(),
            total: 0,
        }
    }

    /// Forgets the starts a period or more ago.
    fn slide(&mut self, now: Instant) {
        while let Some(&(at, starts)) = self.starts.front() {
            if at + self.period > now {
                break;
            }
            self.starts.pop_front();
            self.total -= u64::from(starts);
        }
    }

    /// Starts within the last period.
    fn started(&mut self, now: Instant) -> u64 {
        self.slide(now);
        self.total
    }

    /// If the window is full now, when it has room again: when its oldest
    /// start leaves it (starts are only counted while there is room, so
    /// that one start leaving is enough).
    fn full_until(&mut self, now: Instant) -> Option<Instant> {
        self.slide(now);
        if self.total < self.count {
            return None;
        }
        self.starts.front().map(|&(at, _)| at + self.period)
    }

    fn record(&mut self, now: Instant) {
        match self.starts.back_mut() {
            Some((at, starts)) if *at == now && *starts < u32::MAX => *starts += 1,
            _ => self.starts.push_back((now, 1)),
        }
        self.total += 1;
    }

    /// When its last start leaves it; `None` if it holds none.
    fn empties_at(&self) -> Option<Instant> {
        self.starts.back().map(|&(at, _)| at + self.period)
    }
}

/// One key's runs (or the runs of a worker without `limit_by`).
#[derive(Debug)]
struct Lane<T> {
    queue: BTreeMap<Place, T>,
    /// Its runs let through and not yet finished.
    running: usize,
    /// Its starts against `key_rate`.
    window: Option<Window>,
    /// Where its first waiting run is listed.
    listed: Listed,
}

/// Where a lane's first waiting run is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listed {
    /// Nowhere: no run waits, or the key is at its `key_concurrency` (the
    /// end of one of its runs lists it again).
    Nowhere,
    /// In `ready`, at this place.
    Ready(Place),
    /// In `resting`, until its `key_rate` window has room.
    Resting(Instant),
}

impl<T> Lane<T> {
    fn new(rate: Option<Rate>) -> Self {
        Lane {
            queue: BTreeMap::new(),
            running: 0,
            window: rate.map(Window::new),
            listed: Listed::Nowhere,
        }
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running == 0
    }

    /// Where its first waiting run belongs now, with `key_concurrency`
    /// (`None` for runs without a key).
    fn listing(&mut self, key_concurrency: Option<usize>, now: Instant, turns: &mut u64) -> Listed {
        let Some((&(priority, _), _)) = self.queue.first_key_value() else {
            return Listed::Nowhere;
        };
        if key_concurrency.is_some_and(|limit| self.running >= limit) {
            return Listed::Nowhere;
        }
        if let Some(until) = self.window.as_mut().and_then(|w| w.full_until(now)) {
            return Listed::Resting(until);
        }
        match self.listed {
            // Still in line: it keeps its turn, at its first run's priority
            // (a new run may have gone ahead of the old first one).
            Listed::Ready((_, turn)) => Listed::Ready((priority, turn)),
            // Joining the line, or its run just started: behind the keys
            // already in line.
            _ => {
                *turns += 1;
                Listed::Ready((priority, *turns))
            }
        }
    }
}

/// A worker's limits and their use: its waiting runs (items `T`) by key,
/// its running runs and its recent starts. Every method that may list a
/// key in `ready` takes `turns`, the counter places are drawn from (the
/// gate's, so that its own waiting runs and these compare).
#[derive(Debug)]
pub(crate) struct Limiter<T> {
    rules: Rules,
    /// Runs let through and not yet finished.
    running: usize,
    /// The worker's starts, against `rate`.
    window: Option<Window>,
    /// The runs of a worker without `limit_by`.
    unkeyed: Lane<T>,
    /// Keys with runs waiting or running, or starts in their window.
    keys: HashMap<Key, Lane<T>>,
    /// The first run of each lane whose own limits let it start now.
    ready: BTreeSet<(Place, Option<Key>)>,
    /// Keys with waiting runs whose `key_rate` window is full, by when it
    /// has room again.
    resting: BTreeSet<(Instant, Key)>,
    /// Keys with nothing running or waiting, by when their window is
    /// empty: forgotten then, if still idle (an entry may be stale).
    idle: BinaryHeap<Reverse<(Instant, Key)>>,
    waiting: usize,
}

impl<T> Limiter<T> {
    pub(crate) fn new(rules: Rules) -> Self {
        Limiter {
            rules,
            running: 0,
            window: rules.rate.map(Window::new),
            unkeyed: Lane::new(None),
            keys: HashMap::new(),
            ready: BTreeSet::new(),
            resting: BTreeSet::new(),
            idle: BinaryHeap::new(),
            waiting: 0,
        }
    }

    /// How many runs wait.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// `text` as a key: the one already stored if the key is known, so
    /// that its runs share one allocation.
    pub(crate) fn key(&self, text: &str) -> Key {
        self.keys
            .get_key_value(text)
            .map_or_else(|| Key::from(text), |(key, _)| key.clone())
    }

    /// Lets a new run of `key` through at once if every limit allows it
    /// and no run it must yield to waits, counting its start; `false`: it
    /// must wait.
    pub(crate) fn try_start(&mut self, key: Option<&Key>, now: Instant) -> bool {
        if !self.ready.is_empty() || !self.worker_has_room(now) {
            return false;
        }
        let key_concurrency = self.rules.key_concurrency;
        let lane = match key {
            None => Some(&mut self.unkeyed),
            Some(key) => self.keys.get_mut(key),
        };
        if let Some(lane) = lane {
            let busy = key.is_some() && key_concurrency.is_some_and(|c| lane.running >= c);
            let full = lane
                .window
                .as_mut()
                .is_some_and(|window| window.full_until(now).is_some());
            if !lane.queue.is_empty() || busy || full {
                return false;
            }
        }
        // A key seen for the first time is within its limits (both are at
        // least 1).
        self.count_start(key, now);
        true
    }

    /// Puts `item` in line at `place`, behind the other runs of `key`.
    pub(crate) fn push(
        &mut self,
        place: Place,
        key: Option<&Key>,
        item: T,
        now: Instant,
        turns: &mut u64,
    ) {
        self.lane(key).queue.insert(place, item);
        self.waiting += 1;
        self.relist(key, now, turns);
    }

    /// Takes a waiting run out of line (its wait was given up).
    pub(crate) fn remove(
        &mut self,
        place: &Place,
        key: Option<&Key>,
        now: Instant,
        turns: &mut u64,
    ) -> Option<T> {
        let item = self.lane_mut(key)?.queue.remove(place)?;
        self.waiting -= 1;
        self.relist(key, now, turns);
        Some(item)
    }

    /// Where the run that may start next stands, if the limits let one
    /// start now.
    pub(crate) fn first(&mut self, now: Instant, turns: &mut u64) -> Option<Place> {
        self.catch_up(now, turns);
        if !self.worker_has_room(now) {
            return None;
        }
        self.ready.first().map(|(place, _)| *place)
    }

    /// Lets through the run [`first`](Self::first) named, counting its
    /// start; returns it with its key.
    pub(crate) fn start_first(
        &mut self,
        now: Instant,
        turns: &mut u64,
    ) -> Option<(T, Option<Key>)> {
        let (_, key) = self.ready.pop_first()?;
        let lane = self.lane_mut(key.as_ref())?;
        lane.listed = Listed::Nowhere;
        let (_, item) = lane.queue.pop_first()?;
        self.waiting -= 1;
        self.count_start(key.as_ref(), now);
        // Its next run draws a new turn: behind the keys already waiting.
        self.relist(key.as_ref(), now, turns);
        Some((item, key))
    }

    /// A run let through (by `try_start` or `start_first`) has finished.
    pub(crate) fn finished(&mut self, key: Option<&Key>, now: Instant, turns: &mut u64) {
        self.running -= 1;
        if let Some(lane) = self.lane_mut(key) {
            lane.running -= 1;
        }
        self.relist(key, now, turns);
    }

    /// When a run that waits only for a rate window to have room could
    /// start: what the gate's timer is set for. `None` if none waits for
    /// that (the end of a running run lets the others through).
    pub(crate) fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let key_has_room = self.resting.first().map(|&(at, _)| at);
        let worker_has_room = match &mut self.window {
            Some(window) if !self.ready.is_empty() => window.full_until(now),
            _ => None,
        };
        key_has_room.into_iter().chain(worker_has_room).min()
    }

    /// The limits' use now, for `WorkerStats::limits`. It looks at every
    /// key held (those with runs running or waiting, or recent starts),
    /// and names the busiest.
    pub(crate) fn usage(&mut self, now: Instant) -> LimitUse {
        self.forget_idle(now);
        let mut keys: Vec<(usize, u64, usize, &Key)> = self
            .keys
            .iter_mut()
            .map(|(key, lane)| {
                let started = lane.window.as_mut().map_or(0, |w| w.started(now));
                (lane.running, started, lane.queue.len(), key)
            })
            .collect();
        let busiest = |a: &(usize, u64, usize, &Key), b: &(usize, u64, usize, &Key)| {
            (b.0, b.1, b.2)
                .cmp(&(a.0, a.1, a.2))
                .then_with(|| a.3.cmp(b.3))
        };
        if keys.len() > BUSIEST_KEYS {
            keys.select_nth_unstable_by(BUSIEST_KEYS - 1, busiest);
            keys.truncate(BUSIEST_KEYS);
        }
        keys.sort_unstable_by(busiest);
        LimitUse {
            running: self.running as u64,
            global_concurrency: self.rules.global_concurrency.map(|c| c as u64),
            started: self.window.as_mut().map_or(0, |w| w.started(now)),
            rate: self.rules.rate,
            keys: keys
                .into_iter()
                .map(|(running, started, queued, key)| KeyUse {
                    key: key.to_string(),
                    running: running as u64,
                    started,
                    queued: queued as u64,
                })
                .collect(),
        }
    }

    fn lane_mut(&mut self, key: Option<&Key>) -> Option<&mut Lane<T>> {
        match key {
            None => Some(&mut self.unkeyed),
            Some(key) => self.keys.get_mut(key),
        }
    }

    /// Whether `global_concurrency` and `rate` let one more run start.
    fn worker_has_room(&mut self, now: Instant) -> bool {
        self.rules
            .global_concurrency
            .is_none_or(|limit| self.running < limit)
            && self
                .window
                .as_mut()
                .is_none_or(|window| window.full_until(now).is_none())
    }

    /// The line of `key` (made on first use), or of the unkeyed runs.
    fn lane(&mut self, key: Option<&Key>) -> &mut Lane<T> {
        let key_rate = self.rules.key_rate;
        match key {
            None => &mut self.unkeyed,
            Some(key) => self
                .keys
                .entry(key.clone())
                .or_insert_with(|| Lane::new(key_rate)),
        }
    }

    fn count_start(&mut self, key: Option<&Key>, now: Instant) {
        self.running += 1;
        if let Some(window) = &mut self.window {
            window.record(now);
        }
        let lane = self.lane(key);
        lane.running += 1;
        if let Some(window) = &mut lane.window {
            window.record(now);
        }
    }

    /// Lists the first waiting run of `key`'s lane where it belongs now,
    /// after anything changed in the lane; forgets an idle key.
    fn relist(&mut self, key: Option<&Key>, now: Instant, turns: &mut u64) {
        let key_concurrency = self.rules.key_concurrency.filter(|_| key.is_some());
        let lane = match key {
            None => &mut self.unkeyed,
            Some(key) => match self.keys.get_mut(key) {
                Some(lane) => lane,
                None => return,
            },
        };
        let listed = lane.listing(key_concurrency, now, turns);
        let was = std::mem::replace(&mut lane.listed, listed);
        let idle_until = match key {
            Some(_) if lane.is_idle() => Some(lane.window.as_ref().and_then(Window::empties_at)),
            _ => None,
        };
        if was != listed {
            self.list(key, was, false);
            self.list(key, listed, true);
        }
        if let (Some(key), Some(empties_at)) = (key, idle_until) {
            match empties_at.filter(|&at| at > now) {
                None => {
                    self.keys.remove(key);
                }
                Some(at) => self.idle.push(Reverse((at, key.clone()))),
            }
        }
    }

    /// Puts `key`'s listing in `ready` or `resting`, or takes it out.
    fn list(&mut self, key: Option<&Key>, listed: Listed, put: bool) {
        match (listed, key) {
            (Listed::Nowhere, _) => {}
            (Listed::Ready(place), key) => {
                let entry = (place, key.cloned());
                if put {
                    self.ready.insert(entry);
                } else {
                    self.ready.remove(&entry);
                }
            }
            (Listed::Resting(until), Some(key)) => {
                let entry = (until, key.clone());
                if put {
                    self.resting.insert(entry);
                } else {
                    self.resting.remove(&entry);
                }
            }
            // Runs without a key have no `key_rate` to rest for.
            (Listed::Resting(_), None) => {}
        }
    }

    /// Lists again the keys whose rest is over, and forgets the idle keys
    /// whose window emptied.
    fn catch_up(&mut self, now: Instant, turns: &mut u64) {
        while let Some(&(until, _)) = self.resting.first() {
            if until > now {
                break;
            }
            let Some((_, key)) = self.resting.pop_first() else {
                break;
            };
            if let Some(lane) = self.keys.get_mut(&key) {
                lane.listed = Listed::Nowhere;
            }
            self.relist(Some(&key), now, turns);
        }
        self.forget_idle(now);
    }

    fn forget_idle(&mut self, now: Instant) {
        while self.idle.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((_, key))) = self.idle.pop() else {
                break;
            };
            let forget = self.keys.get_mut(&key).is_some_and(|lane| {
                lane.is_idle() && lane.window.as_mut().is_none_or(|w| w.started(now) == 0)
            });
            if forget {
                self.keys.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(options: WorkerOptions) -> Rules {
        Rules::of(&options).expect("limits")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rate(text: &str) -> Rate {
        text.parse().unwrap()
    }

    #[test]
    fn a_window_never_lets_more_than_the_rate_start_and_never_fewer() {
        let mut window = Window::new(rate("3/1s"));
        let t0 = Instant::now();
        let mut starts = Vec::new();
        for step in 0..300 {
            let now = t0 + ms(step * 37);
            if window.full_until(now).is_none() {
                window.record(now);
                starts.push(now);
            } else {
                let recent = starts.iter().filter(|&&at| at + ms(1000) > now).count();
                assert_eq!(recent, 3, "refused with room at {step}");
            }
        }
        for (i, &from) in starts.iter().enumerate() {
            let within = starts[i..].iter().take_while(|&&at| at < from + ms(1000));
            assert!(within.count() <= 3, "more than 3 within 1s of start {i}");
        }
    }

    #[test]
    fn a_full_window_has_room_when_its_oldest_start_leaves() {
        let mut window = Window::new(rate("2/1s"));
        let t0 = Instant::now();
        window.record(t0);
        window.record(t0 + ms(100));
        assert_eq!(window.full_until(t0 + ms(200)), Some(t0 + ms(1000)));
        assert_eq!(window.full_until(t0 + ms(1000)), None);
        assert_eq!(window.started(t0 + ms(1000)), 1);
    }

    #[test]
    fn starts_at_one_instant_share_an_entry() {
        let mut window = Window::new(rate("1000/1s"));
        let now = Instant::now();
        for _ in 0..1000 {
            window.record(now);
        }
        assert_eq!((window.starts.len(), window.started(now)), (1, 1000));
        assert!(window.full_until(now).is_some());
    }

    #[test]
    fn a_key_is_forgotten_once_nothing_runs_waits_or_counts_in_its_window() {
        let now = Instant::now();
        let mut turns = 0;
        let by_count = rules(WorkerOptions::new().limit_by("k").key_concurrency(1));
        let mut limiter: Limiter<u32> = Limiter::new(by_count);
        let a = limiter.key("a");
        assert!(limiter.try_start(Some(&a), now));
        assert_eq!(limiter.keys.len(), 1);
        limiter.finished(Some(&a), now, &mut turns);
        assert!(limiter.keys.is_empty());

        let by_rate = rules(WorkerOptions::new().limit_by("k").key_rate("1/1s"));
        let mut limiter: Limiter<u32> = Limiter::new(by_rate);
        assert!(limiter.try_start(Some(&a), now));
        limiter.finished(Some(&a), now, &mut turns);
        assert_eq!(limiter.keys.len(), 1, "its start still counts");
        assert_eq!(limiter.first(now + ms(999), &mut turns), None);
        assert_eq!(limiter.keys.len(), 1);
        limiter.first(now + ms(1000), &mut turns);
        assert!(limiter.keys.is_empty());
    }

    #[test]
    fn keys_at_their_limit_are_out_of_the_way() {
        let now = Instant::now();
        let mut turns = 0;
        let mut limiter =
            Limiter::new(rules(WorkerOptions::new().limit_by("k").key_concurrency(1)));
        for n in 0..10_000u64 {
            let key = limiter.key(&n.to_string());
            assert!(limiter.try_start(Some(&key), now));
            turns += 1;
            limiter.push((Reverse(0), turns), Some(&key), n, now, &mut turns);
        }
        assert_eq!(limiter.waiting(), 10_000);
        assert!(limiter.ready.is_empty(), "no key listed while at its limit");
        assert_eq!(limiter.first(now, &mut turns), None);
        let fresh = limiter.key("fresh");
        assert!(limiter.try_start(Some(&fresh), now));
        let busy = limiter.key("7");
        limiter.finished(Some(&busy), now, &mut turns);
        assert!(limiter.first(now, &mut turns).is_some());
        let (item, key) = limiter.start_first(now, &mut turns).unwrap();
        assert_eq!((item, key.as_deref()), (7, Some("7")));
    }

    #[test]
    fn usage_names_the_ten_busiest_keys_by_running_then_started() {
        let now = Instant::now();
        let mut turns = 0;
        let options = WorkerOptions::new()
            .global_concurrency(100)
            .rate("1000/1m")
            .limit_by("k")
            .key_concurrency(20)
            .key_rate("100/1m");
        let mut limiter: Limiter<u32> = Limiter::new(rules(options));
        for n in 0..15 {
            let key = limiter.key(&format!("k{n:02}"));
            for _ in 0..(n % 5) {
                assert!(limiter.try_start(Some(&key), now));
            }
        }
        // k14 and k09 run 4 each; k09 has also started 2 that ended.
        let k09 = limiter.key("k09");
        for _ in 0..2 {
            assert!(limiter.try_start(Some(&k09), now));
            limiter.finished(Some(&k09), now, &mut turns);
        }
        let usage = limiter.usage(now);
        assert_eq!(usage.running, 30);
        assert_eq!(usage.started, 32);
        assert_eq!(usage.global_concurrency, Some(100));
        assert_eq!(usage.keys.len(), BUSIEST_KEYS);
        let names: Vec<&str> = usage.keys.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            names,
            [
                "k09", "k04", "k14", "k03", "k08", "k13", "k02", "k07", "k12", "k01"
            ]
        );
        assert_eq!((usage.keys[0].running, usage.keys[0].started), (4, 6));
    }
}
