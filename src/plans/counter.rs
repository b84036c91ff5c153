//! Request counters for quotas and usage records: the [`CounterStore`]
//! trait and its in-memory implementation.
//!
//! A counter is named by a [`CounterKey`]: API key id, plan, what it counts
//! and the first second of its window. A new window is a new counter, so a
//! period resets by moving on, with no timer and no write; an old counter
//! is only memory to reclaim, which is what each call's `expires` is for.
//! The key names the plan, not the API, stage or deployment, so a redeploy
//! or a canary keeps every count, and a plan's quota is shared by all the
//! stages it covers, as in API Gateway.
//!
//! The one operation that must be atomic is the conditional increment,
//! [`CounterStore::increment`]: however many requests race, at most `limit`
//! are admitted in a window. The in-memory store does it with a
//! compare-and-swap loop on an `AtomicI64`; the Redis store with a Lua
//! script.
//!
//! A store whose answers never wait (the in-memory one) also implements the
//! `*_now` methods, so the meter decides in `call` without boxing a future.

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
    /// Requests in a UTC day, for usage records: the admitted requests of
    /// a plan with a quota, whatever its period, kept 90 days after the day.
    Day,
}

/// One counter: a key, in a plan, in one window.
///
/// Borrowed, so a lookup allocates nothing; the in-memory store copies the
/// strings only when it creates the counter.
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
    /// The count after the call: on a refusal, the count that refused it
    /// (at or over the limit).
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
    ///
    /// Must be atomic: of two calls that find the counter at `limit - 1`,
    /// exactly one is admitted. A counter that does not exist counts 0.
    async fn increment(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Result<Count, StoreError>;

    /// The same without waiting, for stores that never wait. `None` (the
    /// default) means the caller must await [`increment`](Self::increment).
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
    ///
    /// Used for the daily usage counts and for UpdateUsage grants, which
    /// subtract from the period's counter. The count may go below zero: a
    /// grant larger than what was used leaves room beyond the limit.
    async fn add(&self, key: &CounterKey<'_>, delta: i64, expires: i64) -> Result<i64, StoreError>;

    /// The same without waiting, for stores that never wait; `None` (the
    /// default) sends the caller to [`add`](Self::add).
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
    ///
    /// The default reads the count and subtracts it, which can lose an
    /// increment made in between; a store that can reset in one step should
    /// (the Redis store does, keeping the key's expiry).
    async fn reset(&self, key: &CounterKey<'_>) -> Result<(), StoreError> {
        let used = self.get(key).await?;
        self.add(key, -used, i64::MAX).await.map(|_| ())
    }
}

/// Shards of the in-memory store, each behind its own lock.
const SHARDS: usize = 32;
/// A shard is swept for expired counters when a new counter arrives and it
/// holds this many fingerprints, then each time it reaches twice what the
/// last sweep left: sweeping costs O(1) per counter created, amortized.
const MIN_SWEEP_LEN: usize = 256;

/// The in-memory counter store: sharded maps of atomic counters; a counter
/// past its expiry is dropped on the next sweep of its shard.
pub struct InMemoryCounterStore {
    /// [`SHARDS`] of them.
    shards: Box<[Shard]>,
    /// Fingerprints keys; seeded at random per store.
    hasher: foldhash::quality::RandomState,
}

/// One lock's worth of counters, aligned to a cache line so that two
/// shards' locks never share one.
#[repr(align(64))]
#[derive(Default)]
struct Shard {
    /// Counters by the 64-bit fingerprint of their key. Each is a list, as
    /// two keys may share a fingerprint: an entry holds its whole key.
    map: RwLock<HashMap<u64, Vec<Entry>, PrehashedState>>,
    /// The length at which the next sweep happens (see [`MIN_SWEEP_LEN`]).
    sweep_at: std::sync::atomic::AtomicUsize,
}

/// One counter and the key it counts for.
struct Entry {
    key_id: Box<str>,
    plan: Box<str>,
    kind: CounterKind,
    start: i64,
    /// Unix seconds; a sweep at a later time drops it.
    expires: i64,
    /// Changed under the shard's read lock: increments never wait for one
    /// another, only for a counter being created in the same shard.
    count: AtomicI64,
}

impl Entry {
    /// Whether this is the counter of `k`: equal fingerprints are not enough.
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

    /// The fingerprint of `k`, and the shard its high bits pick.
    fn locate(&self, k: &CounterKey<'_>) -> (u64, &Shard) {
        let fp = self.hasher.hash_one(k);
        (fp, &self.shards[(fp >> 48) as usize % SHARDS])
    }

    /// Runs `f` on the counter of `k`, creating it (at 0) if needed.
    ///
    /// A counter that exists takes only the shard's read lock. Creating one
    /// takes the write lock (looking again, as another caller may have
    /// created it meanwhile), and is when the shard may be swept.
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

    /// Conditional increment, synchronously: admitted when the count was
    /// below `limit`, in one compare-and-swap loop.
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
        self.with(k, expires, |c| {
            c.fetch_add(delta, Ordering::AcqRel).wrapping_add(delta)
        })
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

/// Drops the counters of one shard whose expiry is `now` or earlier.
fn sweep(map: &mut HashMap<u64, Vec<Entry>, PrehashedState>, now: i64) {
    map.retain(|_, list| {
        list.retain(|e| e.expires > now);
        !list.is_empty()
    });
}

/// The shard's map, read-locked. A poisoned lock is used all the same: no
/// panic can leave a counter half-written, as each is one atomic.
fn read(s: &Shard) -> RwLockReadGuard<'_, HashMap<u64, Vec<Entry>, PrehashedState>> {
    s.map.read().unwrap_or_else(|e| e.into_inner())
}

/// The shard's map, write-locked; poisoning ignored as in [`read`].
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
