use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{KeyDigest, KeyRecord, KeyStore};
use crate::clock::Clock;
use crate::store::StoreError;
use crate::ttl_cache::TtlCache;

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
    cache: TtlCache<KeyDigest, Arc<KeyRecord>>,
}

/// Default TTL of a cached key (and of cached credentials).
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Default TTL of a cached "no such key".
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);

impl fmt::Debug for CachingKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cached, ttl, negative_ttl, resilient) = self.cache.describe();
        f.debug_struct("CachingKeyStore")
            .field("inner", &self.inner)
            .field("cached", &cached)
            .field("ttl_ns", &ttl)
            .field("negative_ttl_ns", &negative_ttl)
            .field("resilient", &resilient)
            .finish()
    }
}

impl CachingKeyStore {
    /// A cache in front of `inner` with the default TTLs, not resilient.
    pub fn new(inner: Arc<dyn KeyStore>, clock: impl Clock) -> Self {
        Self {
            inner,
            cache: TtlCache::new(Arc::new(clock), 100_000, DEFAULT_TTL, DEFAULT_NEGATIVE_TTL),
        }
    }

    /// How long a found key is trusted.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.cache.set_ttl(ttl);
        self
    }

    /// How long a missing key is remembered as missing.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache.set_negative_ttl(ttl);
        self
    }

    /// Serve the last known answer while the backend fails.
    pub fn resilient(mut self, on: bool) -> Self {
        self.cache.set_resilient(on);
        self
    }

    /// At most `entries` digests are remembered.
    pub fn capacity(mut self, entries: u64) -> Self {
        self.cache.set_capacity(entries);
        self
    }

    fn forget_id(&self, id: &str) {
        let id: Arc<str> = Arc::from(id);
        self.cache.forget_if(move |r| r.id == id);
    }
}

#[async_trait]
impl KeyStore for CachingKeyStore {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.cache
            .get_or_fetch(*digest, self.inner.get(digest))
            .await
    }

    fn get_now(&self, digest: &KeyDigest) -> Option<Result<Option<Arc<KeyRecord>>, StoreError>> {
        self.cache.fresh(digest).map(Ok)
    }

    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        self.inner.get_by_id(id).await
    }

    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        let id = record.id.clone();
        let result = self.inner.put(digest, record).await;
        self.forget_id(&id);
        self.cache.forget(&digest);
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
