use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{KeyDigest, KeyRecord, KeyStore};
use crate::clock::Clock;
use crate::store::StoreError;

/// A cache in front of a remote [`KeyStore`].
///
/// - A key found is remembered for `ttl` (default 300 s), a key not found for
///   `negative_ttl` (default 10 s), so guessing does not reach the backend
///   on every request.
/// - In resilient mode (3scale APIcast's "resilient" caching), a lookup
///   that fails at the backend serves the last known answer, however old,
///   until the backend answers again.
/// - At most `capacity` digests are remembered (default 100,000).
///
/// Expiry is decided with the gateway's [`Clock`]; management calls through
/// the cache drop the entries they change.
pub struct CachingKeyStore {
    inner: Arc<dyn KeyStore>,
    cache: moka::sync::Cache<KeyDigest, Entry>,
    clock: Arc<dyn Clock>,
    ttl: u64,
    negative_ttl: u64,
    resilient: bool,
}

#[derive(Clone)]
struct Entry {
    record: Option<Arc<KeyRecord>>,
    fetched: u64,
}

impl fmt::Debug for CachingKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingKeyStore")
            .field("inner", &self.inner)
            .field("cached", &self.cache.entry_count())
            .field("ttl_ns", &self.ttl)
            .field("negative_ttl_ns", &self.negative_ttl)
            .field("resilient", &self.resilient)
            .finish()
    }
}

/// Default TTL of a cached key.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default TTL of a cached "no such key".
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);

fn new_cache(entries: u64) -> moka::sync::Cache<KeyDigest, Entry> {
    moka::sync::Cache::builder()
        .max_capacity(entries)
        .support_invalidation_closures()
        .build()
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl CachingKeyStore {
    /// A cache in front of `inner` with the default TTLs, not resilient.
    pub fn new(inner: Arc<dyn KeyStore>, clock: impl Clock) -> Self {
        Self {
            inner,
            cache: new_cache(100_000),
            clock: Arc::new(clock),
            ttl: nanos(DEFAULT_TTL),
            negative_ttl: nanos(DEFAULT_NEGATIVE_TTL),
            resilient: false,
        }
    }

    /// How long a found key is trusted.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = nanos(ttl);
        self
    }

    /// How long a missing key is remembered as missing.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = nanos(ttl);
        self
    }

    /// Serve the last known answer while the backend fails.
    pub fn resilient(mut self, on: bool) -> Self {
        self.resilient = on;
        self
    }

    /// At most `entries` digests are remembered.
    pub fn capacity(mut self, entries: u64) -> Self {
        self.cache = new_cache(entries);
        self
    }

    fn fresh(&self, digest: &KeyDigest) -> Option<Option<Arc<KeyRecord>>> {
        let e = self.cache.get(digest)?;
        let ttl = if e.record.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        (self.clock.unix_nanos().saturating_sub(e.fetched) < ttl).then_some(e.record)
    }

    fn forget_id(&self, id: &str) {
        // Entries are few per id; a scan keeps the cache free of a second index.
        let _ = self.cache.invalidate_entries_if({
            let id: Arc<str> = Arc::from(id);
            move |_, e| e.record.as_ref().is_some_and(|r| r.id == id)
        });
    }
}

#[async_trait]
impl KeyStore for CachingKeyStore {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        if let Some(hit) = self.fresh(digest) {
            return Ok(hit);
        }
        match self.inner.get(digest).await {
            Ok(record) => {
                let fetched = self.clock.unix_nanos();
                self.cache.insert(
                    *digest,
                    Entry {
                        record: record.clone(),
                        fetched,
                    },
                );
                Ok(record)
            }
            Err(e) => match self.cache.get(digest) {
                Some(stale) if self.resilient => {
                    tracing::warn!(error = %e, "key store failed; serving the last known answer");
                    Ok(stale.record)
                }
                _ => Err(e),
            },
        }
    }

    fn get_now(&self, digest: &KeyDigest) -> Option<Result<Option<Arc<KeyRecord>>, StoreError>> {
        self.fresh(digest).map(Ok)
    }

    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        self.inner.get_by_id(id).await
    }

    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        let id = record.id.clone();
        let result = self.inner.put(digest, record).await;
        self.forget_id(&id);
        self.cache.invalidate(&digest);
        result
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let result = self.inner.delete(id).await;
        self.forget_id(id);
        result
    }

    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list().await
    }
}
