//! The key store trait and its in-memory implementation.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use super::{KeyDigest, KeyRecord};
use crate::store::{StoreError, StoreErrorKind};

/// Where API key records live, indexed by key digest.
///
/// Implement it over your own storage to authorize keys from a backend of
/// your own (a database, a 3scale-like service); put a
/// [`CachingKeyStore`](super::CachingKeyStore) in front of a remote one. See
/// `examples/custom_key_store.rs`.
///
/// The request path calls only [`get_now`](Self::get_now) and
/// [`get`](Self::get); the other methods serve the
/// [`KeyManager`](super::KeyManager) and the management API. `Ok(None)`
/// means "no such key" and is answered 403; `Err` means the backend could
/// not say, and the layer follows its [`FailMode`](crate::store::FailMode)
/// (closed by default: 503). Implementations should bound their own calls
/// with a timeout: the layer waits as long as `get` does.
///
/// Other implementations: [`CachingKeyStore`](super::CachingKeyStore) and,
/// with feature `redis`, `tollgate::redis::RedisKeyStore`.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    /// The record of the key whose digest is `digest`. Enabled or not,
    /// expired or not: the layer decides that with its own clock.
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError>;

    /// The same lookup without waiting, for stores that never wait (in
    /// memory, a fresh cache entry). `None` (the default) sends the layer to
    /// [`get`](Self::get). It must not block (no I/O, no lock held across
    /// anything slow): it runs inside `Service::call`, and answering from it
    /// spares the request a boxed future.
    fn get_now(&self, digest: &KeyDigest) -> Option<Result<Option<Arc<KeyRecord>>, StoreError>> {
        let _ = digest;
        None
    }

    /// The digest and record of the key with id `id`. For management only
    /// (rotation needs the record, an update needs its digest).
    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError>;

    /// Stores `record` under `digest`. A record with the same id under
    /// another digest is replaced (rotation); a digest that belongs to
    /// another id is a [`StoreErrorKind::Conflict`].
    ///
    /// A put should be atomic for readers: a concurrent `get` sees the old
    /// record or the new one, and once a rotation returns, the old digest
    /// finds nothing (in this store; caches elsewhere may remember it for
    /// their TTL).
    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError>;

    /// Deletes the key with id `id`; whether there was one.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;

    /// Every record, in no promised order. For management: it may read the
    /// whole store.
    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError>;
}

/// The in-memory key store: a map from digest to record behind a read-write lock.
///
/// A lookup takes the read lock for one hash probe and an `Arc` clone, and
/// never waits on I/O, so the layer answers from
/// [`get_now`](KeyStore::get_now) without a boxed future. Writes
/// (management calls) are rare and take the write lock briefly; both
/// indexes change under it together, so no reader sees a rotation half
/// done. A lock poisoned by a panic elsewhere is used anyway: one panicking
/// thread must not take every key lookup down with it.
///
/// Nothing persists: a restart starts empty, and config-file keys are
/// loaded again from the config.
#[derive(Default)]
pub struct InMemoryKeyStore {
    inner: RwLock<Maps>,
}

/// The two indexes, kept in step: `by_id[r.id] == d` exactly when
/// `by_digest[d]` is `r`, so each id has one digest and each digest one id.
/// Seeded hashers: the digests derive from what callers present.
#[derive(Default)]
struct Maps {
    by_digest: HashMap<KeyDigest, Arc<KeyRecord>, foldhash::quality::RandomState>,
    by_id: HashMap<Arc<str>, KeyDigest, foldhash::quality::RandomState>,
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryKeyStore")
            .field("keys", &self.read().by_id.len())
            .finish()
    }
}

impl InMemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The record for a digest, without waiting (what
    /// [`get`](KeyStore::get) and [`get_now`](KeyStore::get_now) answer).
    pub fn lookup(&self, digest: &KeyDigest) -> Option<Arc<KeyRecord>> {
        self.read().by_digest.get(digest).cloned()
    }

    /// Stores a record; see [`KeyStore::put`]. Synchronous, for setup code
    /// and tests. Two keys with the same value are a
    /// [`StoreErrorKind::Conflict`]: the first one keeps the digest.
    pub fn insert(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        let mut maps = self.write();
        if let Some(owner) = maps.by_digest.get(&digest)
            && owner.id != record.id
        {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "another key has the same value",
            ));
        }
        if let Some(old) = maps.by_id.get(&record.id).copied() {
            maps.by_digest.remove(&old);
        }
        let record = Arc::new(record);
        maps.by_id.insert(record.id.clone(), digest);
        maps.by_digest.insert(digest, record);
        Ok(())
    }

    /// Number of keys (ids).
    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl KeyStore for InMemoryKeyStore {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        Ok(self.lookup(digest))
    }

    fn get_now(&self, digest: &KeyDigest) -> Option<Result<Option<Arc<KeyRecord>>, StoreError>> {
        Some(Ok(self.lookup(digest)))
    }

    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        let maps = self.read();
        Ok(maps
            .by_id
            .get(id)
            .and_then(|d| maps.by_digest.get(d).map(|r| (*d, r.clone()))))
    }

    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        self.insert(digest, record)
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let mut maps = self.write();
        match maps.by_id.remove(id) {
            Some(d) => {
                maps.by_digest.remove(&d);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        Ok(self.read().by_digest.values().cloned().collect())
    }
}
