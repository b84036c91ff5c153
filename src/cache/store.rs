//! Where cached responses live: the [`CacheStore`] trait and its in-process
//! implementation on moka.
//!
//! A store keeps entries and may forget any of them; it never decides
//! freshness. That is the layer's, from [`CachedResponse::expires_at`] and
//! its own clock, so that an entry a store keeps past its TTL can still
//! stand in for a failing backend (stale-if-error), and so that every store
//! agrees on what is fresh. With the `redis` feature, `RedisCacheStore` is
//! a tier shared by every process; [`TieredCacheStore`] puts this process's
//! memory in front of it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::store::StoreError;

/// The largest body an entry holds; bigger responses pass uncached.
pub const MAX_ENTRY_BODY: usize = 1024 * 1024;

/// What identifies a cached response: the parts the layer chose, each
/// length-prefixed so no two different lists of parts give the same key.
///
/// `Debug` shows only the length: a key may hold a header value the provider
/// listed, and header values can be credentials.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<[u8]>);

impl CacheKey {
    /// A key made of `parts`, in order, each written `LEN:BYTES`.
    ///
    /// ```
    /// use tollgate::cache::CacheKey;
    ///
    /// let key = CacheKey::from_parts([&b"GET"[..], b"/pets"]);
    /// assert_eq!(key.as_bytes(), b"3:GET5:/pets");
    /// // Without the lengths, these two would be the same key.
    /// assert_ne!(
    ///     CacheKey::from_parts([&b"ab"[..], b"c"]),
    ///     CacheKey::from_parts([&b"a"[..], b"bc"]),
    /// );
    /// ```
    pub fn from_parts<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut buf = Vec::with_capacity(64);
        for part in parts {
            push_part(&mut buf, part);
        }
        Self(buf.into())
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Appends one length-prefixed part: its length in decimal, `:`, its bytes.
/// The layer builds its keys with this directly, without a list of parts.
pub(crate) fn push_part(buf: &mut Vec<u8>, part: &[u8]) {
    let mut n = itoa::Buffer::new();
    buf.extend_from_slice(n.format(part.len()).as_bytes());
    buf.push(b':');
    buf.extend_from_slice(part);
}

impl From<Vec<u8>> for CacheKey {
    fn from(encoded: Vec<u8>) -> Self {
        Self(encoded.into())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({} bytes)", self.0.len())
    }
}

/// A stored response: status, headers and the whole body, with the times
/// (nanoseconds since the Unix epoch, from the layer's clock) it was stored
/// and stops being fresh.
#[derive(Clone)]
pub struct CachedResponse {
    status: StatusCode,
    /// As the backend sent them; `x-cache` and `Age` are added per answer.
    headers: HeaderMap,
    body: Bytes,
    /// Unix nanoseconds: where `Age` counts from.
    stored_at: u64,
    /// Unix nanoseconds, `stored_at` plus the TTL, saturating.
    expires_at: u64,
}

impl CachedResponse {
    /// An entry stored at `stored_at` (Unix nanoseconds), fresh for `ttl`.
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        stored_at: u64,
        ttl: Duration,
    ) -> Self {
        let ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        Self {
            status,
            headers,
            body,
            stored_at,
            expires_at: stored_at.saturating_add(ttl),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body; clones share the buffer.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// When it was stored, Unix nanoseconds.
    pub fn stored_at(&self) -> u64 {
        self.stored_at
    }

    /// When it stops being fresh, Unix nanoseconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Whether it is fresh at `now` (Unix nanoseconds).
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.expires_at
    }

    /// Bytes it takes, roughly: body, header names and values, and a fixed overhead.
    ///
    /// 32 bytes per header and 64 for the entry stand for the map's and the
    /// struct's own memory, so a response of many tiny headers still
    /// weighs what it costs. [`MokaCacheStore`] bounds its capacity by
    /// this.
    pub fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + 64
    }
}

impl fmt::Debug for CachedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("stored_at", &self.stored_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where cached responses live. Freshness is the layer's business (it compares
/// [`CachedResponse::expires_at`] with its clock); a store only keeps entries and
/// may drop any of them early to stay within its capacity.
#[async_trait]
pub trait CacheStore: fmt::Debug + Send + Sync + 'static {
    /// The entry under `key`, fresh or not.
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, StoreError>;

    /// Stores `entry` under `key`, replacing what was there.
    async fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) -> Result<(), StoreError>;

    /// Removes the entry under `key`.
    async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError>;

    /// Removes every entry.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Removes every entry whose key `matches` says yes to: how an
    /// invalidation made by another process, which names the entry only
    /// by its key's SHA-256, reaches this one. The default flushes (it
    /// never leaves a matching entry behind); [`MokaCacheStore`] scans its
    /// keys.
    async fn invalidate_matching(
        &self,
        matches: &(dyn for<'k> Fn(&'k CacheKey) -> bool + Send + Sync),
    ) -> Result<(), StoreError> {
        let _ = matches;
        self.flush().await
    }

    /// For a tier shared by several processes: `local` is one process's
    /// own tier in front of this one, for scope (stage) the tier was made
    /// for. [`TieredCacheStore::new`] calls it. A shared tier that hears of
    /// invalidations and flushes made by other processes applies them to
    /// `local` ([`RedisCacheStore`](crate::redis::RedisCacheStore) does,
    /// by Redis pub/sub). The default does nothing: no other process
    /// writes to this tier.
    fn follow(&self, local: Weak<dyn CacheStore>) {
        let _ = local;
    }
}

/// The in-process store: a moka cache bounded in bytes (each entry weighs its
/// key, headers and body). Entries of more than [`MAX_ENTRY_BODY`] body bytes
/// are not kept. moka's own time-to-live (`retain`, 2 hours by default) only
/// reclaims memory of entries long past their freshness.
#[derive(Clone)]
pub struct MokaCacheStore {
    /// Weighed in bytes (key and [`CachedResponse::weight`]); moka evicts
    /// by TinyLFU past the capacity.
    cache: moka::sync::Cache<CacheKey, Arc<CachedResponse>>,
    /// The byte bound given, for `Debug` and [`capacity`](Self::capacity).
    capacity: u64,
}

/// The capacity of a stage cache when the config names none.
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

impl MokaCacheStore {
    /// A store holding at most `capacity_bytes`, keeping entries 2 hours at most.
    pub fn new(capacity_bytes: u64) -> Self {
        Self::with_retention(capacity_bytes, Duration::from_secs(7200))
    }

    /// A store holding at most `capacity_bytes`, reclaiming entries `retain`
    /// after they were stored (set it above the longest TTL plus any stale grace).
    pub fn with_retention(capacity_bytes: u64, retain: Duration) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|k: &CacheKey, v: &Arc<CachedResponse>| {
                u32::try_from(k.as_bytes().len() + v.weight()).unwrap_or(u32::MAX)
            })
            .time_to_live(retain)
            .build();
        Self {
            cache,
            capacity: capacity_bytes,
        }
    }

    /// The capacity, in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes held now, after moka has applied pending evictions.
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// Entries held now, after moka has applied pending evictions.
    pub fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

impl Default for MokaCacheStore {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_CAPACITY)
    }
}

impl fmt::Debug for MokaCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaCacheStore")
            .field("capacity", &self.capacity)
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

#[async_trait]
impl CacheStore for MokaCacheStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, StoreError> {
        Ok(self.cache.get(key))
    }

    async fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) -> Result<(), StoreError> {
        if entry.body().len() <= MAX_ENTRY_BODY {
            self.cache.insert(key, entry);
        }
        Ok(())
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.cache.invalidate(key);
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.cache.invalidate_all();
        Ok(())
    }

    /// Scans every key: an invalidation from another process is rare
    /// (an authorized `Cache-Control: max-age=0`), a scan of a stage's
    /// entries cheap beside a flush of them.
    async fn invalidate_matching(
        &self,
        matches: &(dyn for<'k> Fn(&'k CacheKey) -> bool + Send + Sync),
    ) -> Result<(), StoreError> {
        for (key, _) in self.cache.iter() {
            if matches(&key) {
                self.cache.invalidate(&*key);
            }
        }
        Ok(())
    }
}

/// Two stores in tiers: lookups try `first` (this process's memory), then
/// `second` (shared, Redis say), copying what the second has into the
/// first; writes, invalidations and flushes go to both. A failing second
/// tier is logged and treated as a miss; the first tier decides the result.
///
/// An invalidation (or flush) reaches this process's memory and the shared
/// tier, and through the shared tier (when it follows, as
/// [`RedisCacheStore`](crate::redis::RedisCacheStore) does by pub/sub) the
/// memory of every other process on it: see [`CacheStore::follow`]. A copy
/// taken from the second tier while such an invalidation arrives is taken
/// out of the first again, so a lookup racing an invalidation cannot
/// leave the old entry behind. Each invalidation from elsewhere costs the
/// first tier a scan of its keys (a SHA-256 each: the message names the
/// key only by its digest).
#[derive(Clone)]
pub struct TieredCacheStore {
    /// Fast and private: its failures are the store's failures.
    first: Arc<Followed>,
    /// Shared: a failed lookup is logged and read as a miss, a failed write
    /// logged; a failed invalidation or flush is reported, after the first
    /// tier has done its part.
    second: Arc<dyn CacheStore>,
}

/// The first tier as the second tier's followers reach it: each
/// invalidation or flush they bring counts in `changed` first, so that a
/// copy from the second tier read before it and put after it is taken out
/// again (see [`TieredCacheStore`]'s `get`).
struct Followed {
    inner: Arc<dyn CacheStore>,
    changed: AtomicU64,
}

impl fmt::Debug for Followed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl CacheStore for Followed {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) -> Result<(), StoreError> {
        self.inner.put(key, entry).await
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        self.changed.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate(key).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.changed.fetch_add(1, Ordering::SeqCst);
        self.inner.flush().await
    }

    async fn invalidate_matching(
        &self,
        matches: &(dyn for<'k> Fn(&'k CacheKey) -> bool + Send + Sync),
    ) -> Result<(), StoreError> {
        self.changed.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate_matching(matches).await
    }
}

impl fmt::Debug for TieredCacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCacheStore").finish_non_exhaustive()
    }
}

impl TieredCacheStore {
    /// `first` in front of `second`; `second` is asked to
    /// [`follow`](CacheStore::follow) `first`.
    pub fn new(first: Arc<dyn CacheStore>, second: Arc<dyn CacheStore>) -> Self {
        let first = Arc::new(Followed {
            inner: first,
            changed: AtomicU64::new(0),
        });
        let followed: Arc<dyn CacheStore> = first.clone();
        second.follow(Arc::downgrade(&followed));
        Self { first, second }
    }
}

#[async_trait]
impl CacheStore for TieredCacheStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<CachedResponse>>, StoreError> {
        if let Some(hit) = self.first.get(key).await? {
            return Ok(Some(hit));
        }
        let seen = self.first.changed.load(Ordering::SeqCst);
        match self.second.get(key).await {
            Ok(Some(entry)) => {
                self.first.put(key.clone(), entry.clone()).await?;
                // An invalidation that came in meanwhile may concern what
                // was read: the copy comes out again. (Put, then check:
                // either this check sees the count, or the invalidation
                // runs after the put and takes the copy itself.)
                if self.first.changed.load(Ordering::SeqCst) != seen {
                    self.first.inner.invalidate(key).await?;
                }
                Ok(Some(entry))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "second cache tier failed; a miss");
                Ok(None)
            }
        }
    }

    async fn put(&self, key: CacheKey, entry: Arc<CachedResponse>) -> Result<(), StoreError> {
        if let Err(e) = self.second.put(key.clone(), entry.clone()).await {
            tracing::warn!(error = %e, "second cache tier failed to keep an entry");
        }
        self.first.put(key, entry).await
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<(), StoreError> {
        let second = self.second.invalidate(key).await;
        self.first.inner.invalidate(key).await?;
        second
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let second = self.second.flush().await;
        self.first.inner.flush().await?;
        second
    }
}
