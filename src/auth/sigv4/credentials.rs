//! Where SigV4 secrets come from: the [`CredentialStore`] trait, an
//! in-memory store, and a cache in front of a remote store.
//!
//! A credential is looked up by the access key id of the request's
//! credential scope, after every check that needs no secret has passed.
//! `Ok(None)` (an unknown id) is answered 403 `UNRECOGNIZED_CLIENT`, a store
//! error 503 `BACKEND_UNAVAILABLE`: a failing store never lets a request
//! through. Secrets and session tokens are [`Secret`]s, never shown by
//! `Debug`, and a session token is compared in constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::secret::Secret;
use crate::store::StoreError;

/// SigV4 credentials: who signs, with which secret.
#[derive(Clone)]
#[non_exhaustive]
pub struct Credential {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Secret,
    /// Who the caller is, for the inner service, logs and usage.
    pub principal: String,
    /// For temporary credentials: the session token requests must carry.
    pub session_token: Option<Secret>,
    /// Whether requests signed with these credentials may invalidate a cache
    /// entry with `Cache-Control: max-age=0` (API Gateway's `execute-api:InvalidateCache`).
    pub can_invalidate_cache: bool,
}

impl Credential {
    /// Long-term credentials.
    pub fn new(
        access_key_id: impl Into<String>,
        secret: Secret,
        principal: impl Into<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret,
            principal: principal.into(),
            session_token: None,
            can_invalidate_cache: false,
        }
    }

    /// The same credentials, allowed (or not) to invalidate cache entries.
    pub fn allow_cache_invalidation(mut self, allowed: bool) -> Self {
        self.can_invalidate_cache = allowed;
        self
    }

    /// Temporary credentials: requests must carry `token` (`X-Amz-Security-Token`).
    pub fn with_session_token(mut self, token: Secret) -> Self {
        self.session_token = Some(token);
        self
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("principal", &self.principal)
            .field("temporary", &self.session_token.is_some())
            .field("can_invalidate_cache", &self.can_invalidate_cache)
            .finish_non_exhaustive()
    }
}

/// Where SigV4 credentials live, by access key id.
#[async_trait]
pub trait CredentialStore: Send + Sync + fmt::Debug + 'static {
    /// The credentials of `access_key_id`; `Ok(None)` when there are none.
    ///
    /// Called once for every signed request that passes the checks before
    /// it; put a [`CachingCredentialStore`] in front of a store that makes a
    /// network call.
    async fn get(&self, access_key_id: &str) -> Result<Option<Arc<Credential>>, StoreError>;
}

/// The in-memory credential store.
#[derive(Default)]
pub struct InMemoryCredentialStore {
    /// By access key id. A poisoned lock is used as it is: every write is
    /// a single insert or remove, which cannot leave the map half-changed.
    map: RwLock<HashMap<String, Arc<Credential>>>,
}

impl fmt::Debug for InMemoryCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.map.read().map_or(0, |m| m.len());
        f.debug_struct("InMemoryCredentialStore")
            .field("credentials", &n)
            .finish()
    }
}

impl InMemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces credentials.
    pub fn insert(&self, credential: Credential) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.insert(credential.access_key_id.clone(), Arc::new(credential));
    }

    /// Removes credentials; whether they were there.
    pub fn remove(&self, access_key_id: &str) -> bool {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(access_key_id)
            .is_some()
    }
}

#[async_trait]
impl CredentialStore for InMemoryCredentialStore {
    async fn get(&self, access_key_id: &str) -> Result<Option<Arc<Credential>>, StoreError> {
        Ok(self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(access_key_id)
            .cloned())
    }
}

/// A cache in front of a remote [`CredentialStore`]: the same policy as
/// [`CachingKeyStore`](crate::keys::CachingKeyStore) (found credentials for
/// 300 s, unknown ones for 10 s, resilient mode, bounded).
pub struct CachingCredentialStore {
    /// The store asked on a miss.
    inner: Arc<dyn CredentialStore>,
    /// Found and unknown ids with their expiry, at most 100,000 of them.
    cache: crate::ttl_cache::TtlCache<String, Arc<Credential>>,
}

impl fmt::Debug for CachingCredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (cached, ttl, negative_ttl, resilient) = self.cache.describe();
        f.debug_struct("CachingCredentialStore")
            .field("inner", &self.inner)
            .field("cached", &cached)
            .field("ttl_ns", &ttl)
            .field("negative_ttl_ns", &negative_ttl)
            .field("resilient", &resilient)
            .finish()
    }
}

impl CachingCredentialStore {
    /// A cache in front of `inner` with the default TTLs, not resilient.
    pub fn new(inner: Arc<dyn CredentialStore>, clock: impl crate::clock::Clock) -> Self {
        use crate::keys::{DEFAULT_NEGATIVE_TTL, DEFAULT_TTL};
        Self {
            inner,
            cache: crate::ttl_cache::TtlCache::new(
                Arc::new(clock),
                100_000,
                DEFAULT_TTL,
                DEFAULT_NEGATIVE_TTL,
            ),
        }
    }

    /// How long found credentials are trusted.
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache.set_ttl(ttl);
        self
    }

    /// How long an unknown access key id is remembered as unknown.
    pub fn negative_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.cache.set_negative_ttl(ttl);
        self
    }

    /// Serve the last known answer, however old, while the backend fails;
    /// off, a backend failure is this store's error too (SigV4 answers
    /// 503). Default off.
    pub fn resilient(mut self, on: bool) -> Self {
        self.cache.set_resilient(on);
        self
    }

    /// Forgets what is cached for `access_key_id` (after a change at the backend).
    pub fn invalidate(&self, access_key_id: &str) {
        self.cache.forget(&access_key_id.to_owned());
    }
}

#[async_trait]
impl CredentialStore for CachingCredentialStore {
    async fn get(&self, access_key_id: &str) -> Result<Option<Arc<Credential>>, StoreError> {
        self.cache
            .get_or_fetch(access_key_id.to_owned(), self.inner.get(access_key_id))
            .await
    }
}
