//! The TTL cache in front of a remote key store.

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
///
/// **Consistency.** Each process has its own cache. A key disabled,
/// rotated or deleted through another process (or straight in Redis) keeps
/// working here until its entry is older than `ttl`; a key created
/// elsewhere may be refused here for up to `negative_ttl` after someone
/// tried it. Lower the TTLs where revocation must be quick; every lookup
/// then reaches the backend more often.
///
/// A fresh entry is answered from [`get_now`](KeyStore::get_now), without
/// waiting; only misses and stale entries go to the backend.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use time::OffsetDateTime;
/// use tollgate::clock::ManualClock;
/// use tollgate::keys::{CachingKeyStore, InMemoryKeyStore, KeyHasher, KeyRecord, KeyStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = ManualClock::new();
/// let backend = Arc::new(InMemoryKeyStore::new());
/// let cached = CachingKeyStore::new(backend.clone(), clock.clone());
/// let digest = KeyHasher::sha256().digest("a-key-made-elsewhere-0123456789");
///
/// assert!(cached.get(&digest).await?.is_none());
/// // Another process adds the key, behind this cache's back.
/// backend.insert(digest, KeyRecord::new("bob", OffsetDateTime::UNIX_EPOCH))?;
/// assert!(cached.get(&digest).await?.is_none()); // the miss is remembered
/// clock.advance(Duration::from_secs(10)); // the default negative TTL
/// assert!(cached.get(&digest).await?.is_some());
/// # Ok(()) }
/// ```
pub struct CachingKeyStore {
    /// The backend; every management call goes straight to it.
    inner: Arc<dyn KeyStore>,
    /// Records (and misses) by digest.
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

    /// How long a found key is trusted: the longest a revoked key may still
    /// be admitted by this process. `Duration::ZERO` turns caching of found
    /// keys off (resilient mode still has the last answer to fall back on).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.cache.set_ttl(ttl);
        self
    }

    /// How long a missing key is remembered as missing: shields the backend
    /// from guessing, and delays a key created elsewhere by as much.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache.set_negative_ttl(ttl);
        self
    }

    /// Serve the last known answer while the backend fails (default off).
    /// The answer may be a "no such key" as well as a record; a key revoked
    /// during the outage keeps working until the backend answers again.
    pub fn resilient(mut self, on: bool) -> Self {
        self.cache.set_resilient(on);
        self
    }

    /// At most `entries` digests are remembered (default 100,000); the
    /// rarely used go first. Call it while building: it empties the cache.
    pub fn capacity(mut self, entries: u64) -> Self {
        self.cache.set_capacity(entries);
        self
    }

    /// Drops every cached record of key `id`, whatever its digest: after a
    /// rotation the old digest must not be served from here.
    fn forget_id(&self, id: &str) {
        let id: Arc<str> = Arc::from(id);
        self.cache.forget_if(move |r| r.id == id);
    }
}

/// Reads go through the cache; writes go to the backend and then drop what
/// they change, even when the backend failed (the write may have landed).
/// `get_by_id` and `list` are not cached: management wants the truth.
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
