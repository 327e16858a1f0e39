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

/// Run ids are random (UUIDv4): their low bits are already a good hash.
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
        self.0 = id as u64;
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
        // High bits pick the shard; the map hashes the low bits.
        let index = (id >> 64) as usize & (self.shards.len() - 1);
        lock(&self.shards[index].0)
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
