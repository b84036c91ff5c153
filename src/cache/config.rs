//! A method's `cache` settings.

use serde::Deserialize;

use super::UnauthorizedStrategy;

/// Response cache settings of a stage or method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Whether responses are cached. Default false.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Seconds an entry lives, `0 ..= 3600`; 0 turns caching off. Default 300.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// Request parameters that make up the cache key besides stage, method,
    /// resource and path: `querystring.NAME`, `header.NAME`, `path.NAME`.
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// Adds the caller's identity (API key id or principal) to the cache key.
    #[serde(default)]
    pub per_key: Option<bool>,
    /// Statuses stored, each `100 ..= 599`. Default: every 2xx.
    #[serde(default)]
    pub statuses: Option<Vec<u16>>,
    /// Whether an upstream `Cache-Control: max-age` (or `s-maxage`) below the
    /// TTL shortens the entry. Default true.
    #[serde(default)]
    pub honor_max_age: Option<bool>,
    /// Seconds past expiry, `0 ..= 3600`, during which an expired entry
    /// answers instead of a failing backend (an error or a 5xx), marked
    /// `x-cache: Stale`. Default 0 (off).
    #[serde(default)]
    pub stale_if_error: Option<u32>,
    /// Whether a client's `Cache-Control: max-age=0` refreshes the entry only
    /// when the caller may invalidate (an API key or SigV4 credential with
    /// `can_invalidate_cache`). Default true, as API Gateway's.
    #[serde(default)]
    pub require_authorization: Option<bool>,
    /// What an unauthorized `Cache-Control: max-age=0` gets. Default
    /// `SUCCEED_WITH_RESPONSE_HEADER`, as API Gateway's.
    #[serde(default)]
    pub unauthorized: Option<UnauthorizedStrategy>,
    /// Whether responses carry `x-cache` and, when served from the cache,
    /// `Age`. Default true.
    #[serde(default)]
    pub headers: Option<bool>,
}

impl CacheConfig {
    /// Lays `over` on top of these settings: each field `over` names
    /// replaces this one (API Gateway's method settings overrides).
    pub(crate) fn overlay(&mut self, over: &CacheConfig) {
        if over.enabled.is_some() {
            self.enabled = over.enabled;
        }
        if over.ttl.is_some() {
            self.ttl = over.ttl;
        }
        if over.key.is_some() {
            self.key.clone_from(&over.key);
        }
        if over.per_key.is_some() {
            self.per_key = over.per_key;
        }
        if over.statuses.is_some() {
            self.statuses.clone_from(&over.statuses);
        }
        if over.honor_max_age.is_some() {
            self.honor_max_age = over.honor_max_age;
        }
        if over.stale_if_error.is_some() {
            self.stale_if_error = over.stale_if_error;
        }
        if over.require_authorization.is_some() {
            self.require_authorization = over.require_authorization;
        }
        if over.unauthorized.is_some() {
            self.unauthorized = over.unauthorized;
        }
        if over.headers.is_some() {
            self.headers = over.headers;
        }
    }
}
