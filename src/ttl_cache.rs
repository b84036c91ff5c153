//! The TTL cache in front of remote stores (API keys, credentials): found
//! values for `ttl`, misses for `negative_ttl`, and in resilient mode the
//! last known answer while the backend fails. Expiry follows the gateway's
//! [`Clock`]; moka only bounds the size.
//!
//! Used by [`CachingKeyStore`](crate::keys::CachingKeyStore), the SigV4
//! credential cache and the authorizer's verdict cache. Why not moka's own
//! `time_to_live`: moka expires on its internal clock, which a test cannot
//! move, and it has one TTL per cache where a miss needs a shorter one than
//! a hit. So each entry records when it was fetched, and a read compares
//! that with the gateway's clock; moka's capacity bound (TinyLFU) evicts
//! what is rarely used, so an attacker presenting random keys cannot grow
//! the cache past its capacity.
//!
//! Consistency: a value may be up to `ttl` old. Nothing tells one process
//! that another changed the backend; only the entries a local management
//! call changed are dropped at once ([`TtlCache::forget`]). Concurrent
//! misses of one key each call the backend (no coalescing): the backends
//! here are key lookups, cheap next to a response cache miss.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::StoreError;

/// Answers of a backend by key, fresh for a time; see the module docs.
pub(crate) struct TtlCache<K, V> {
    /// Bounded by entry count. Entries are never expired by moka itself:
    /// a stale entry stays until evicted or replaced, which is what lets
    /// resilient mode serve it when the backend fails.
    cache: moka::sync::Cache<K, Cached<V>>,
    clock: Arc<dyn Clock>,
    /// How long a found value is fresh, in nanoseconds.
    ttl: u64,
    /// How long a "not found" is fresh, in nanoseconds (0: misses are
    /// remembered only for resilient mode).
    negative_ttl: u64,
    /// Serve the last known answer, however old, when the backend fails.
    resilient: bool,
}

/// One remembered answer.
#[derive(Clone)]
struct Cached<V> {
    /// `None`: the backend said there is no such key.
    value: Option<V>,
    /// When the backend answered, the clock's Unix nanoseconds.
    fetched: u64,
}

/// A duration in nanoseconds, saturating: `Duration::MAX` means "forever".
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<K, V> TtlCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty cache of at most `capacity` entries, not resilient.
    pub(crate) fn new(
        clock: Arc<dyn Clock>,
        capacity: u64,
        ttl: Duration,
        negative_ttl: Duration,
    ) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .support_invalidation_closures()
                .build(),
            clock,
            ttl: nanos(ttl),
            negative_ttl: nanos(negative_ttl),
            resilient: false,
        }
    }

    pub(crate) fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = nanos(ttl);
    }

    pub(crate) fn set_negative_ttl(&mut self, ttl: Duration) {
        self.negative_ttl = nanos(ttl);
    }

    pub(crate) fn set_resilient(&mut self, on: bool) {
        self.resilient = on;
    }

    /// Replaces the cache with an empty one of the new size: meant for
    /// building, before the first lookup (entries already held are lost).
    pub(crate) fn set_capacity(&mut self, entries: u64) {
        self.cache = moka::sync::Cache::builder()
            .max_capacity(entries)
            .support_invalidation_closures()
            .build();
    }

    /// `(entries, ttl ns, negative ttl ns, resilient)`, for `Debug` output.
    /// The entry count is moka's estimate: pending evictions may not show.
    pub(crate) fn describe(&self) -> (u64, u64, u64, bool) {
        (
            self.cache.entry_count(),
            self.ttl,
            self.negative_ttl,
            self.resilient,
        )
    }

    /// A cached answer that is still fresh (`Some(None)`: a fresh miss).
    /// Never waits and never calls the backend: this is what lets a
    /// caching store answer [`KeyStore::get_now`](crate::keys::KeyStore::get_now)
    /// without boxing a future on the request path.
    pub(crate) fn fresh(&self, key: &K) -> Option<Option<V>> {
        let e = self.cache.get(key)?;
        let ttl = if e.value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        (self.clock.unix_nanos().saturating_sub(e.fetched) < ttl).then_some(e.value)
    }

    /// The fresh answer, else `fetch`'s (remembered), else, in resilient
    /// mode when `fetch` fails, the last known answer however old.
    ///
    /// `fetch` is only polled on a miss or a stale entry. A failure is not
    /// remembered: the next request tries the backend again (its own
    /// timeout, or the Redis circuit breaker, bounds what that costs).
    pub(crate) async fn get_or_fetch(
        &self,
        key: K,
        fetch: impl Future<Output = Result<Option<V>, StoreError>>,
    ) -> Result<Option<V>, StoreError> {
        if let Some(hit) = self.fresh(&key) {
            return Ok(hit);
        }
        match fetch.await {
            Ok(value) => {
                let fetched = self.clock.unix_nanos();
                self.cache.insert(
                    key,
                    Cached {
                        value: value.clone(),
                        fetched,
                    },
                );
                Ok(value)
            }
            Err(e) => match self.cache.get(&key) {
                Some(stale) if self.resilient => {
                    tracing::warn!(error = %e, "store failed; serving the last known answer");
                    Ok(stale.value)
                }
                _ => Err(e),
            },
        }
    }

    /// Drops `key`'s entry, so the next lookup goes to the backend.
    pub(crate) fn forget(&self, key: &K) {
        self.cache.invalidate(key);
    }

    /// Drops every found value that `pred` matches (cached misses are kept).
    /// moka applies the predicate lazily, but an entry it matches is never
    /// returned again. Used to drop a key by its id when its digest is not
    /// known (rotation, deletion).
    pub(crate) fn forget_if(&self, pred: impl Fn(&V) -> bool + Send + Sync + 'static) {
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| e.value.as_ref().is_some_and(&pred));
    }
}
