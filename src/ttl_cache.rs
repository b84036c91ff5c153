//! The TTL cache in front of remote stores (API keys, credentials): found
//! values for `ttl`, misses for `negative_ttl`, and in resilient mode the
//! last known answer while the backend fails. Expiry follows the gateway's
//! [`Clock`]; moka only bounds the size.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::StoreError;

pub(crate) struct TtlCache<K, V> {
    cache: moka::sync::Cache<K, Cached<V>>,
    clock: Arc<dyn Clock>,
    ttl: u64,
    negative_ttl: u64,
    resilient: bool,
}

#[derive(Clone)]
struct Cached<V> {
    value: Option<V>,
    fetched: u64,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<K, V> TtlCache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
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

    pub(crate) fn set_capacity(&mut self, entries: u64) {
        self.cache = moka::sync::Cache::builder()
            .max_capacity(entries)
            .support_invalidation_closures()
            .build();
    }

    pub(crate) fn describe(&self) -> (u64, u64, u64, bool) {
        (
            self.cache.entry_count(),
            self.ttl,
            self.negative_ttl,
            self.resilient,
        )
    }

    /// A cached answer that is still fresh (`Some(None)`: a fresh miss).
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

    pub(crate) fn forget(&self, key: &K) {
        self.cache.invalidate(key);
    }

    pub(crate) fn forget_if(&self, pred: impl Fn(&V) -> bool + Send + Sync + 'static) {
        let _ = self
            .cache
            .invalidate_entries_if(move |_, e| e.value.as_ref().is_some_and(&pred));
    }
}
