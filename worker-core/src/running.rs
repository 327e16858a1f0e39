//! The runs in flight, sharded by run id so that unrelated runs starting and
//! ending on different cores rarely meet on one lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Instant;

use crate::sync::{cores, lock};

/// What the set needs of an entry: a unique id and a start time to order
/// by. The run layer implements it for its runs.
pub(crate) trait Listed {
    fn id(&self) -> u128;
    fn started(&self) -> Instant;
}

/// Run ids are UUIDs of two kinds: random ones (v4) made in this process,
/// and a durable backend's v7, whose high half is the millisecond and a
/// counter that a batch made in one millisecond shares, and whose low half
/// starts with more of that counter. So no half, nor any few bits of one,
/// spread ids on their own: both halves are folded and mixed
/// (multiplicative hashing), once per lookup.
fn spread(id: u128) -> u64 {
    let folded = (id as u64) ^ ((id >> 64) as u64);
    folded.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hashes a run id with [`spread`].
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, id: u128) {
        self.0 = spread(id);
    }
}

type Shard<T> = HashMap<u128, Arc<T>, BuildHasherDefault<IdHasher>>;

#[derive(Debug)]
pub(crate) struct RunningSet<T> {
    shards: Box<[Padded<T>]>,
}

/// A shard on cache lines of its own, so neighbours don't falsely share.
#[derive(Debug)]
#[repr(align(128))]
struct Padded<T>(Mutex<Shard<T>>);

impl<T> Default for Padded<T> {
    fn default() -> Self {
        Padded(Mutex::default())
    }
}

impl<T: Listed> RunningSet<T> {
    pub(crate) fn new() -> Self {
        let cores = cores();
        let count = (cores * 4).next_power_of_two().max(8);
        RunningSet {
            shards: (0..count).map(|_| Padded::default()).collect(),
        }
    }

    fn shard(&self, id: u128) -> MutexGuard<'_, Shard<T>> {
        // Middle bits of the mix pick the shard: the map takes its
        // buckets from the low bits and its tags from the top 7, which
        // must still differ between the runs of one shard.
        lock(&self.shards[Self::shard_of(id, self.shards.len())].0)
    }

    fn shard_of(id: u128, shards: usize) -> usize {
        (spread(id) >> 32) as usize & (shards - 1)
    }

    pub(crate) fn insert(&self, run: Arc<T>) {
        self.shard(run.id()).insert(run.id(), run);
    }

    pub(crate) fn remove(&self, id: u128) {
        let removed = {
            let mut shard = self.shard(id);
            let removed = shard.remove(&id);
            // A burst of runs must not leave its peak capacity behind: give
            // memory back once a shard is mostly empty (amortized: it only
            // happens after the map has shrunk to a quarter).
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                let keep = shard.len() * 2;
                shard.shrink_to(keep);
            }
            removed
        };
        // The run is dropped after the shard's lock is released.
        drop(removed);
    }

    pub(crate) fn get(&self, id: u128) -> Option<Arc<T>> {
        self.shard(id).get(&id).cloned()
    }

    /// Every run in flight, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<Arc<T>> {
        let mut runs: Vec<Arc<T>> = self
            .shards
            .iter()
            .flat_map(|shard| lock(&shard.0).values().cloned().collect::<Vec<_>>())
            .collect();
        runs.sort_by_key(|run| run.started());
        runs
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(&shard.0).len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids as a durable backend makes a batch of them in one millisecond
    /// (UUIDv7: the same time and counter seed, the counter counting up
    /// from bit 32, random low bits).
    fn batch_of_v7(n: u64) -> Vec<u128> {
        let high: u128 = 0x01a2_5127_a64f_77dc;
        (0..n)
            .map(|i| {
                let counter = (0xae4a_1ff1_u64 + i) << 32;
                let random = (i.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
                (high << 64) | u128::from(counter | u64::from(random))
            })
            .collect()
    }

    #[test]
    fn a_batch_of_v7_ids_from_one_millisecond_spreads_over_every_shard() {
        let shards = 16;
        let mut per_shard = vec![0usize; shards];
        for id in batch_of_v7(4096) {
            per_shard[RunningSet::<Entry>::shard_of(id, shards)] += 1;
        }
        // 256 each on average; taking the high half alone, all 4,096
        // landed in one shard.
        assert!(
            per_shard.iter().all(|&n| (128..=384).contains(&n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn their_tags_differ_within_a_shard() {
        // hashbrown's tag is the hash's top 7 bits: with one tag for every
        // entry, each lookup compares the keys of whole groups.
        let tags: std::collections::HashSet<u64> = batch_of_v7(4096)
            .into_iter()
            .filter(|&id| RunningSet::<Entry>::shard_of(id, 16) == 0)
            .map(|id| spread(id) >> 57)
            .collect();
        assert!(tags.len() > 64, "{} tags of 128", tags.len());
    }

    struct Entry;

    impl Listed for Entry {
        fn id(&self) -> u128 {
            0
        }
        fn started(&self) -> Instant {
            Instant::now()
        }
    }
}
