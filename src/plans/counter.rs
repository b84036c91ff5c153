use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;

use crate::store::{PrehashedState, StoreError};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CounterKind {
    /// Requests in a quota period.
    Quota,
    /// Requests in a UTC day, for usage records.
    Day,
}

/// One counter: a key, in a plan, in one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CounterKey<'a> {
    /// The API key's id.
    pub key_id: &'a str,
    /// The plan.
    pub plan: &'a str,
    /// What is counted.
    pub kind: CounterKind,
    /// The window's first second (Unix time).
    pub start: i64,
}

/// The result of a conditional increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Count {
    /// Whether the count was below the limit (and was incremented).
    pub admitted: bool,
    /// The count after the call.
    pub used: i64,
}

impl Count {
    /// A result: whether it was admitted, and the count after the call.
    pub fn new(admitted: bool, used: i64) -> Self {
        Self { admitted, used }
    }
}

/// Keeps request counters: atomic check-and-increment against a limit.
#[async_trait]
pub trait CounterStore: Send + Sync + fmt::Debug + 'static {
    /// Adds one to the counter if it is below `limit`. The counter may be
    /// forgotten after `expires` (Unix seconds).
    async fn increment(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Result<Count, StoreError>;

    /// The same without waiting, for stores that never wait.
    fn increment_now(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Option<Result<Count, StoreError>> {
        let _ = (key, limit, expires);
        None
    }

    /// Adds `delta` whatever the count (negative: gives quota back); returns the new count.
    async fn add(&self, key: &CounterKey<'_>, delta: i64, expires: i64) -> Result<i64, StoreError>;

    /// The same without waiting, for stores that never wait.
    fn add_now(
        &self,
        key: &CounterKey<'_>,
        delta: i64,
        expires: i64,
    ) -> Option<Result<i64, StoreError>> {
        let _ = (key, delta, expires);
        None
    }

    /// The counter's value (0 when absent).
    async fn get(&self, key: &CounterKey<'_>) -> Result<i64, StoreError>;

    /// Sets the counter to zero.
    async fn reset(&self, key: &CounterKey<'_>) -> Result<(), StoreError> {
        let used = self.get(key).await?;
        self.add(key, -used, i64::MAX).await.map(|_| ())
    }
}

const SHARDS: usize = 32;
const MIN_SWEEP_LEN: usize = 256;

/// The in-memory counter store: sharded maps of atomic counters; a counter
/// past its expiry is dropped on the next sweep of its shard.
pub struct InMemoryCounterStore {
    shards: Box<[Shard]>,
    hasher: foldhash::quality::RandomState,
}

#[repr(align(64))]
#[derive(Default)]
struct Shard {
    map: RwLock<HashMap<u64, Vec<Entry>, PrehashedState>>,
    sweep_at: std::sync::atomic::AtomicUsize,
}

struct Entry {
    key_id: Box<str>,
    plan: Box<str>,
    kind: CounterKind,
    start: i64,
    expires: i64,
    count: AtomicI64,
}

impl Entry {
    fn is(&self, k: &CounterKey<'_>) -> bool {
        self.start == k.start
            && self.kind == k.kind
            && *self.key_id == *k.key_id
            && *self.plan == *k.plan
    }
}

impl fmt::Debug for InMemoryCounterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCounterStore")
            .field("counters", &self.len())
            .finish()
    }
}

impl Default for InMemoryCounterStore {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: Default::default(),
        }
    }
}

impl InMemoryCounterStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many counters are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| read(s).values().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// Whether no counter is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every counter that expired before `now` (Unix seconds).
    pub fn sweep(&self, now: i64) {
        for s in self.shards.iter() {
            sweep(&mut write(s), now);
        }
    }

    fn locate(&self, k: &CounterKey<'_>) -> (u64, &Shard) {
        let fp = self.hasher.hash_one(k);
        (fp, &self.shards[(fp >> 48) as usize % SHARDS])
    }

    /// Runs `f` on the counter of `k`, creating it (at 0) if needed.
    fn with<R>(&self, k: &CounterKey<'_>, expires: i64, f: impl Fn(&AtomicI64) -> R) -> R {
        let (fp, shard) = self.locate(k);
        if let Some(e) = read(shard)
            .get(&fp)
            .and_then(|v| v.iter().find(|e| e.is(k)))
        {
            return f(&e.count);
        }
        let mut map = write(shard);
        if map.len() >= shard.sweep_at.load(Ordering::Relaxed).max(MIN_SWEEP_LEN) {
            // Counters expire at window ends: sweep against the newest window seen.
            sweep(&mut map, k.start);
            shard.sweep_at.store(map.len() * 2, Ordering::Relaxed);
        }
        let list = map.entry(fp).or_default();
        if let Some(e) = list.iter().find(|e| e.is(k)) {
            return f(&e.count);
        }
        list.push(Entry {
            key_id: k.key_id.into(),
            plan: k.plan.into(),
            kind: k.kind,
            start: k.start,
            expires,
            count: AtomicI64::new(0),
        });
        let e = list.last().map(|e| &e.count);
        match e {
            Some(c) => f(c),
            None => f(&AtomicI64::new(0)),
        }
    }

    /// Conditional increment, synchronously.
    pub fn try_increment(&self, k: &CounterKey<'_>, limit: i64, expires: i64) -> Count {
        self.with(k, expires, |c| {
            match c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            }) {
                Ok(before) => Count {
                    admitted: true,
                    used: before + 1,
                },
                Err(now) => Count {
                    admitted: false,
                    used: now,
                },
            }
        })
    }

    /// Unconditional add, synchronously.
    pub fn add_to(&self, k: &CounterKey<'_>, delta: i64, expires: i64) -> i64 {
        self.with(k, expires, |c| c.fetch_add(delta, Ordering::AcqRel) + delta)
    }

    /// A counter's value, synchronously.
    pub fn value(&self, k: &CounterKey<'_>) -> i64 {
        let (fp, shard) = self.locate(k);
        read(shard)
            .get(&fp)
            .and_then(|v| v.iter().find(|e| e.is(k)))
            .map_or(0, |e| e.count.load(Ordering::Acquire))
    }
}

fn sweep(map: &mut HashMap<u64, Vec<Entry>, PrehashedState>, now: i64) {
    map.retain(|_, list| {
        list.retain(|e| e.expires > now);
        !list.is_empty()
    });
}

fn read(s: &Shard) -> RwLockReadGuard<'_, HashMap<u64, Vec<Entry>, PrehashedState>> {
    s.map.read().unwrap_or_else(|e| e.into_inner())
}

fn write(s: &Shard) -> RwLockWriteGuard<'_, HashMap<u64, Vec<Entry>, PrehashedState>> {
    s.map.write().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl CounterStore for InMemoryCounterStore {
    async fn increment(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Result<Count, StoreError> {
        Ok(self.try_increment(key, limit, expires))
    }

    fn increment_now(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Option<Result<Count, StoreError>> {
        Some(Ok(self.try_increment(key, limit, expires)))
    }

    async fn add(&self, key: &CounterKey<'_>, delta: i64, expires: i64) -> Result<i64, StoreError> {
        Ok(self.add_to(key, delta, expires))
    }

    fn add_now(
        &self,
        key: &CounterKey<'_>,
        delta: i64,
        expires: i64,
    ) -> Option<Result<i64, StoreError>> {
        Some(Ok(self.add_to(key, delta, expires)))
    }

    async fn get(&self, key: &CounterKey<'_>) -> Result<i64, StoreError> {
        Ok(self.value(key))
    }
}
