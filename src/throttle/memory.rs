//! The in-memory [`RateStore`]: sharded maps of atomic theoretical arrival times.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::gcra::{Gcra, Verdict};
use super::store::{Admission, Limit, RateKey, RateStore};
use crate::clock::Clock;
use crate::store::{PrehashedState, StoreError};

/// Default cap on tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;
const SHARDS: usize = 64;
/// A shard is swept on insert once it holds this many keys, then at twice
/// what a sweep leaves.
const MIN_SWEEP_LEN: usize = 256;
/// A shard that is touched is swept at most this often (1 s).
const SWEEP_EVERY: u64 = 1_000_000_000;

/// The in-memory rate store: one process, nothing to install.
///
/// Keys are reduced to a 64-bit fingerprint with a per-store randomly seeded
/// hash (foldhash, hashbrown's default: clients cannot aim collisions without
/// the seed), spread over 64 shards, each a
/// `RwLock<HashMap<u64, AtomicU64>>`. A check takes the shard's read lock and
/// updates the key's theoretical arrival time with a compare-and-swap loop,
/// so concurrent checks of one key never lose an update; only the first
/// request of a new key takes the write lock.
///
/// A key whose bucket is full again is the same as an absent key, so it is
/// evicted: each shard is swept when it has grown to twice what its last
/// sweep left, and at most once a second when touched; [`sweep`](Self::sweep)
/// does the whole store at once. At most `max_keys` client addresses and
/// `max_keys` other keys (API keys, methods, custom keys) are tracked
/// (default one million each, about 25 bytes a key; the cap is split over
/// 64 shards, so a shard may fill a little before the whole store does).
/// Addresses are what a client can make up; counting them apart keeps a
/// client rotating addresses from crowding out API keys. A new key that finds the store full
/// (after a sweep of its shard) is decided by the store's [`OnCapacity`]
/// policy and counted in [`untracked`](Self::untracked): by default it is
/// rejected (429 with `Retry-After: 1`), so a client rotating addresses
/// cannot switch per-client limiting off for everyone; [`OnCapacity::Admit`]
/// admits it untracked instead. Keys already tracked are never evicted
/// while their bucket is not full again: evicting one would hand its client
/// a fresh bucket.
///
/// ```
/// use tollgate::clock::ManualClock;
/// use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey};
///
/// let store = InMemoryRateStore::new(ManualClock::at_unix_secs(1_000));
/// let limit = [Limit { key: RateKey::Custom("client-1"), rate: Rate::new(1.0, 2) }];
/// assert!(store.check_limits(&limit).admitted);
/// assert!(store.check_limits(&limit).admitted);
/// assert!(!store.check_limits(&limit).admitted);
/// ```
pub struct InMemoryRateStore {
    /// The gateway-wide bucket (slot 0) and one per endpoint (slot
    /// `index + 1`), when the store belongs to one gateway.
    fixed: Box<[Slot]>,
    shards: Box<[Shard]>,
    hasher: foldhash::quality::RandomState,
    clock: Arc<dyn Clock>,
    per_shard_cap: usize,
    on_capacity: OnCapacity,
    untracked: AtomicU64,
}

/// What the in-memory rate store does with a new key when it already tracks
/// as many keys as it may (`throttle_options.on_capacity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OnCapacity {
    /// Reject the request as throttled, retry after one second (the
    /// default): a limit never switches itself off.
    #[default]
    Reject,
    /// Admit the request without tracking its key: for a deployment that
    /// prefers serving new clients to limiting them while the store is full.
    Admit,
}

/// How long a client refused for capacity is asked to wait: the time in
/// which a touched shard is swept again.
const CAPACITY_RETRY: u64 = SWEEP_EVERY;

/// A bucket on a cache line of its own, so that hot buckets used from
/// different cores do not invalidate each other.
#[repr(align(64))]
struct Slot(AtomicU64);

#[repr(align(64))]
struct Shard {
    map: RwLock<Map>,
    last_sweep: AtomicU64,
    sweep_at_len: AtomicUsize,
    /// How many of the map's keys are client addresses (changed under the
    /// write lock): they have a capacity of their own.
    clients: AtomicUsize,
}

/// The fingerprint bit that marks a client-address key.
const CLIENT_BIT: u64 = 1 << 63;

type Map = HashMap<u64, AtomicU64, PrehashedState>;

impl fmt::Debug for InMemoryRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryRateStore")
            .field("tracked", &self.len())
            .field("max_keys", &(self.per_shard_cap * SHARDS))
            .field("on_capacity", &self.on_capacity)
            .field("untracked", &self.untracked())
            .finish()
    }
}

impl InMemoryRateStore {
    /// A store reading the time from `clock`, tracking at most [`DEFAULT_MAX_KEYS`].
    pub fn new(clock: impl Clock) -> Self {
        Self::with_max_keys(clock, DEFAULT_MAX_KEYS)
    }

    /// A store tracking at most `max_keys` keys (rounded up to a multiple of 64).
    pub fn with_max_keys(clock: impl Clock, max_keys: usize) -> Self {
        let shards = (0..SHARDS)
            .map(|_| Shard {
                map: RwLock::new(Map::default()),
                last_sweep: AtomicU64::new(0),
                sweep_at_len: AtomicUsize::new(MIN_SWEEP_LEN),
                clients: AtomicUsize::new(0),
            })
            .collect();
        Self {
            fixed: Box::new([]),
            shards,
            hasher: foldhash::quality::RandomState::default(),
            clock: Arc::new(clock),
            per_shard_cap: max_keys.div_ceil(SHARDS).max(1),
            on_capacity: OnCapacity::default(),
            untracked: AtomicU64::new(0),
        }
    }

    /// What a new key gets when the store is full. Default [`OnCapacity::Reject`].
    #[must_use]
    pub fn on_capacity(mut self, policy: OnCapacity) -> Self {
        self.on_capacity = policy;
        self
    }

    /// Keeps the gateway-wide bucket and one bucket for each of `endpoints`
    /// endpoints in a fixed array: no hashing and no lock, one atomic update
    /// per check. For a store that belongs to one gateway (the
    /// [`Gateway`](crate::Gateway) builds its default store this way): two
    /// gateways sharing it would share their endpoints' buckets by index.
    pub fn with_endpoint_slots(mut self, endpoints: usize) -> Self {
        self.fixed = (0..=endpoints).map(|_| Slot(AtomicU64::new(0))).collect();
        self
    }

    /// How many keys are tracked now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many new keys were decided without being tracked because the
    /// store was full (rejected or admitted, as [`OnCapacity`] says).
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// Evicts every key whose bucket is full again, returns how many, and
    /// gives memory back to the allocator where most of a shard was freed.
    pub fn sweep(&self) -> usize {
        let now = self.clock.unix_nanos();
        self.shards
            .iter()
            .map(|s| sweep_locked(s, &mut write(s), now))
            .sum()
    }

    /// Checks and charges `limits` now, synchronously. See [`RateStore::check`].
    pub fn check_limits(&self, limits: &[Limit<'_>]) -> Admission {
        self.check_at(limits, self.clock.unix_nanos())
    }

    /// The fixed bucket of a key, if it has one.
    fn fixed(&self, key: &RateKey<'_>) -> Option<&AtomicU64> {
        let slot = match key {
            RateKey::Gateway => self.fixed.first(),
            RateKey::Method(e) => self.fixed.get(e.index() + 1),
            _ => None,
        };
        slot.map(|s| &s.0)
    }

    /// Charges the bucket of `key`: its fixed slot, or its map entry.
    fn charge_key(&self, key: &RateKey<'_>, gcra: &Gcra, now: u64) -> (Verdict, Charged<'_>) {
        match self.fixed(key) {
            Some(slot) => (update(slot, gcra, now), Charged::Fixed(slot)),
            None => {
                let fp = self.fingerprint(key);
                (self.charge(fp, gcra, now), Charged::Map(fp))
            }
        }
    }

    fn fingerprint(&self, key: &RateKey<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        match key {
            RateKey::Gateway => 0u8.hash(&mut h),
            // By name, not index: a store may serve several gateways (each
            // numbers its endpoints from 0), as a Redis store's keys do.
            RateKey::Method(e) => {
                (1u8, e.api(), e.stage(), e.method_name(), e.resource()).hash(&mut h)
            }
            RateKey::ApiKey(id) => (2u8, id).hash(&mut h),
            RateKey::ApiKeyMethod(id, e) => {
                (3u8, id, e.api(), e.stage(), e.method_name(), e.resource()).hash(&mut h)
            }
            RateKey::Client(ip) => (4u8, ip).hash(&mut h),
            RateKey::Custom(v) => (5u8, v).hash(&mut h),
        }
        // Client addresses and every other key are tracked apart (the top
        // bit), each up to the cap: addresses are what a client can make up.
        let class = if matches!(key, RateKey::Client(_)) {
            CLIENT_BIT
        } else {
            0
        };
        (h.finish() & !CLIENT_BIT) | class
    }

    fn shard(&self, fp: u64) -> &Shard {
        // Bits 40.. pick the shard; the map uses the low bits for buckets and
        // the top seven for tags, so neither loses entropy.
        &self.shards[(fp >> 40) as usize % SHARDS]
    }

    fn check_at(&self, limits: &[Limit<'_>], now: u64) -> Admission {
        if let [limit] = limits {
            // One limit: nothing to refund, nothing to compare.
            let gcra = Gcra::new(limit.rate);
            return match self.charge_key(&limit.key, &gcra, now).0 {
                Verdict::Admit {
                    remaining, reset, ..
                } => Admission::new(true, 0, remaining, Duration::from_nanos(reset), None),
                Verdict::Reject { retry, reset } => Admission::new(
                    false,
                    0,
                    0,
                    Duration::from_nanos(reset),
                    Some(Duration::from_nanos(retry)),
                ),
            };
        }
        // Buckets charged so far, to refund if a later limit rejects: inline
        // for the usual handful, spilling to the heap past eight.
        let mut inline = [(Charged::Map(0), 0u64); 8];
        let mut spill: Vec<(Charged<'_>, u64)> = Vec::new();
        let mut best = Admission::unlimited();
        for (i, limit) in limits.iter().enumerate() {
            let gcra = Gcra::new(limit.rate);
            let (verdict, charged) = self.charge_key(&limit.key, &gcra, now);
            match verdict {
                Verdict::Admit {
                    remaining, reset, ..
                } => {
                    let reset = Duration::from_nanos(reset);
                    if remaining < best.remaining
                        || (remaining == best.remaining && reset > best.reset)
                    {
                        best = Admission::new(true, i, remaining, reset, None);
                    }
                    match inline.get_mut(i) {
                        Some(entry) => *entry = (charged, gcra.interval()),
                        None => spill.push((charged, gcra.interval())),
                    }
                }
                Verdict::Reject { retry, reset } => {
                    for &(charged, interval) in inline.iter().take(i).chain(&spill) {
                        self.refund(charged, interval);
                    }
                    return Admission::new(
                        false,
                        i,
                        0,
                        Duration::from_nanos(reset),
                        Some(Duration::from_nanos(retry)),
                    );
                }
            }
        }
        best
    }

    fn charge(&self, fp: u64, gcra: &Gcra, now: u64) -> Verdict {
        let shard = self.shard(fp);
        if now.saturating_sub(shard.last_sweep.load(Ordering::Relaxed)) > SWEEP_EVERY
            && let Ok(mut map) = shard.map.try_write()
        {
            sweep_locked(shard, &mut map, now);
        }
        if let Some(slot) = read(shard).get(&fp) {
            return update(slot, gcra, now);
        }
        let mut map = write(shard);
        if !map.contains_key(&fp) {
            let is_client = fp & CLIENT_BIT != 0;
            // Keys of this one's class: client addresses, or everything else.
            let of_class = |map: &Map| {
                let clients = shard.clients.load(Ordering::Relaxed);
                if is_client {
                    clients
                } else {
                    map.len().saturating_sub(clients)
                }
            };
            if map.len() >= shard.sweep_at_len.load(Ordering::Relaxed)
                || of_class(&map) >= self.per_shard_cap
            {
                sweep_locked(shard, &mut map, now);
            }
            if of_class(&map) >= self.per_shard_cap {
                self.untracked.fetch_add(1, Ordering::Relaxed);
                return match self.on_capacity {
                    OnCapacity::Admit => gcra.decide(0, now),
                    OnCapacity::Reject => Verdict::Reject {
                        retry: CAPACITY_RETRY,
                        reset: CAPACITY_RETRY,
                    },
                };
            }
        }
        let slot = map.entry(fp).or_insert_with(|| {
            if fp & CLIENT_BIT != 0 {
                shard.clients.fetch_add(1, Ordering::Relaxed);
            }
            AtomicU64::new(0)
        });
        update(slot, gcra, now)
    }

    /// Gives back one token taken by a request that another limit rejected.
    fn refund(&self, charged: Charged<'_>, interval: u64) {
        let give_back = |slot: &AtomicU64| {
            let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_sub(interval))
            });
        };
        match charged {
            Charged::Fixed(slot) => give_back(slot),
            Charged::Map(fp) => {
                if let Some(slot) = read(self.shard(fp)).get(&fp) {
                    give_back(slot);
                }
            }
        }
    }
}

/// Where a charged token was taken from, to refund it.
#[derive(Clone, Copy)]
enum Charged<'a> {
    Fixed(&'a AtomicU64),
    Map(u64),
}

/// The compare-and-swap loop: decide on the value seen, store the new TAT
/// only if nobody changed it meanwhile, else decide again.
fn update(slot: &AtomicU64, gcra: &Gcra, now: u64) -> Verdict {
    let mut seen = slot.load(Ordering::Acquire);
    loop {
        let verdict = gcra.decide(seen, now);
        let Verdict::Admit { tat, .. } = verdict else {
            return verdict;
        };
        match slot.compare_exchange_weak(seen, tat, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return verdict,
            Err(actual) => seen = actual,
        }
    }
}

fn sweep_locked(shard: &Shard, map: &mut Map, now: u64) -> usize {
    let before = map.len();
    let mut clients_gone = 0;
    map.retain(|fp, tat| {
        let keep = *tat.get_mut() > now;
        if !keep && fp & CLIENT_BIT != 0 {
            clients_gone += 1;
        }
        keep
    });
    shard.clients.fetch_sub(clients_gone, Ordering::Relaxed);
    let after = map.len();
    if after * 4 < map.capacity() {
        map.shrink_to(after * 2);
    }
    shard
        .sweep_at_len
        .store((after * 2).max(MIN_SWEEP_LEN), Ordering::Relaxed);
    shard.last_sweep.store(now, Ordering::Relaxed);
    before - after
}

// A panic while a lock is held cannot leave a map inconsistent (every update
// is one atomic store or one map operation), so a poisoned lock is used as is.
fn read(shard: &Shard) -> RwLockReadGuard<'_, Map> {
    shard.map.read().unwrap_or_else(|e| e.into_inner())
}

fn write(shard: &Shard) -> RwLockWriteGuard<'_, Map> {
    shard.map.write().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl RateStore for InMemoryRateStore {
    async fn check(&self, limits: &[Limit<'_>]) -> Result<Admission, StoreError> {
        Ok(self.check_limits(limits))
    }

    fn check_now(&self, limits: &[Limit<'_>]) -> Option<Result<Admission, StoreError>> {
        Some(Ok(self.check_limits(limits)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::throttle::Rate;

    fn custom(v: &str, rate: f64, burst: u32) -> Limit<'_> {
        Limit {
            key: RateKey::Custom(v),
            rate: Rate::new(rate, burst),
        }
    }

    #[test]
    fn a_rejection_refunds_the_limits_before_it() {
        let clock = ManualClock::at_unix_secs(100);
        let store = InMemoryRateStore::new(clock.clone());
        let roomy = custom("roomy", 1.0, 10);
        let tight = custom("tight", 1.0, 1);
        assert!(store.check_limits(&[roomy, tight]).admitted);
        let out = store.check_limits(&[roomy, tight]);
        assert!(!out.admitted);
        assert_eq!(out.binding, 1);
        // roomy was charged once, not twice: 9 left before this check.
        let alone = store.check_limits(&[roomy]);
        assert_eq!(alone.remaining, 8);
    }

    fn endpoint(index: usize) -> crate::context::Endpoint {
        crate::context::Endpoint {
            index,
            api: "tollgate".into(),
            stage: "prod".into(),
            resource: "/r".into(),
            method: None,
            params: Arc::from(Vec::<Box<str>>::new()),
            variables: Arc::default(),
            settings: Default::default(),
        }
    }

    #[test]
    fn fixed_slots_are_charged_refunded_and_kept_apart() {
        let store = InMemoryRateStore::new(ManualClock::at_unix_secs(100)).with_endpoint_slots(2);
        let (e0, e1) = (endpoint(0), endpoint(1));
        let method = |e| Limit {
            key: RateKey::Method(e),
            rate: Rate::new(1.0, 2),
        };
        let gateway = Limit {
            key: RateKey::Gateway,
            rate: Rate::new(1.0, 3),
        };
        assert!(store.check_limits(&[method(&e0), gateway]).admitted);
        assert!(store.check_limits(&[method(&e0), gateway]).admitted);
        // e0 is empty now; e1 has its own bucket.
        assert!(!store.check_limits(&[method(&e0), gateway]).admitted);
        // e1 is admitted by its bucket, then the gateway (1 token left) takes it.
        assert!(store.check_limits(&[method(&e1), gateway]).admitted);
        let out = store.check_limits(&[method(&e1), gateway]);
        assert!(!out.admitted);
        assert_eq!(out.binding, 1);
        // The gateway's rejection refunded e1's token: one is still there.
        assert_eq!(store.check_limits(&[method(&e1)]).remaining, 0);
        assert!(!store.check_limits(&[method(&e1)]).admitted);
        // No map entry was made for fixed buckets.
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn the_binding_limit_has_the_fewest_tokens() {
        let store = InMemoryRateStore::new(ManualClock::at_unix_secs(100));
        let out = store.check_limits(&[
            custom("a", 10.0, 100),
            custom("b", 1.0, 5),
            custom("c", 1.0, 50),
        ]);
        assert_eq!(
            (out.binding, out.remaining, out.reset),
            (1, 4, Duration::from_secs(1))
        );
    }

    #[test]
    fn a_full_store_admits_new_keys_untracked_when_told_to() {
        let clock = ManualClock::at_unix_secs(100);
        let store = InMemoryRateStore::with_max_keys(clock, 64).on_capacity(OnCapacity::Admit);
        let names: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
        for n in &names {
            assert!(store.check_limits(&[custom(n, 1.0, 1)]).admitted);
        }
        assert!(store.len() <= 64, "{}", store.len());
        assert!(store.untracked() > 0);
    }

    #[test]
    fn client_addresses_cannot_crowd_out_other_keys() {
        let clock = ManualClock::at_unix_secs(100);
        let store = InMemoryRateStore::with_max_keys(clock, 64);
        for i in 0..5000u32 {
            let ip = std::net::IpAddr::from(i.to_be_bytes());
            store.check_limits(&[Limit {
                key: RateKey::Client(ip),
                rate: Rate::new(0.001, 5),
            }]);
        }
        assert!(
            store.untracked() > 0,
            "the client addresses filled their share"
        );
        // An API key's bucket is still tracked, and limits as it should.
        let key = |_: usize| Limit {
            key: RateKey::Custom("api-key-7"),
            rate: Rate::new(0.001, 3),
        };
        let admitted = (0..5)
            .filter(|&i| store.check_limits(&[key(i)]).admitted)
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn a_full_store_rejects_new_keys_by_default() {
        let clock = ManualClock::at_unix_secs(100);
        let store = InMemoryRateStore::with_max_keys(clock, 64);
        let names: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
        let admitted = names
            .iter()
            .filter(|n| store.check_limits(&[custom(n, 0.001, 5)]).admitted)
            .count();
        // At most one key per shard was tracked (64 / 64 shards); every
        // other new key was refused, with a retry of a second.
        assert!(admitted <= 64, "{admitted}");
        assert_eq!(store.untracked(), (5000 - admitted) as u64);
        let out = store.check_limits(&[custom("one-more", 0.001, 5)]);
        assert!(!out.admitted);
        assert_eq!(out.retry_after, Some(Duration::from_secs(1)));
        // A rejection for capacity refunds the limits charged before it.
        let tracked = names.iter().find(|n| {
            let o = store.check_limits(&[custom(n, 0.001, 5)]);
            o.admitted
        });
        if let Some(t) = tracked {
            let before = store.check_limits(&[custom(t, 0.001, 5)]).remaining;
            assert!(
                !store
                    .check_limits(&[custom(t, 0.001, 5), custom("fresh", 0.001, 5)])
                    .admitted
            );
            assert_eq!(
                store.check_limits(&[custom(t, 0.001, 5)]).remaining,
                before - 1
            );
        }
    }
}
