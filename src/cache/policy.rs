//! What a method's cache settings resolve to: the one thing the cache layer
//! reads per endpoint.

use std::time::Duration;

use http::HeaderName;

/// Which request parameter goes into a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheKeyParam {
    /// `querystring.NAME`
    Query(String),
    /// `header.NAME` (names compare case-insensitively)
    Header(HeaderName),
    /// `path.NAME`
    Path(String),
}

/// Effective cache settings of one method.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Whether responses are cached (false when `ttl` is 0).
    pub enabled: bool,
    /// How long an entry lives.
    pub ttl: Duration,
    /// Parameters in the cache key besides stage, method, resource and path.
    pub key: Vec<CacheKeyParam>,
    /// Whether the caller's identity is part of the key.
    pub per_key: bool,
    /// Whether this method's own `RESOURCE/METHOD` override turned caching
    /// on: what caches a method other than GET and HEAD.
    pub method_override: bool,
    /// Statuses stored; empty for every 2xx.
    pub statuses: Vec<http::StatusCode>,
    /// Whether an upstream `max-age` below the TTL shortens the entry.
    pub honor_max_age: bool,
    /// How long past expiry an entry may stand in for a failing backend.
    pub stale_if_error: Duration,
    /// Whether `Cache-Control: max-age=0` needs a caller allowed to invalidate.
    pub require_authorization: bool,
    /// What an unauthorized `Cache-Control: max-age=0` gets.
    pub unauthorized: crate::cache::UnauthorizedStrategy,
    /// Whether responses carry `x-cache` and `Age`.
    pub headers: bool,
}

/// The default cache TTL, as API Gateway's.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            ttl: DEFAULT_CACHE_TTL,
            key: Vec::new(),
            per_key: false,
            method_override: false,
            statuses: Vec::new(),
            honor_max_age: true,
            stale_if_error: Duration::ZERO,
            require_authorization: true,
            unauthorized: crate::cache::UnauthorizedStrategy::default(),
            headers: true,
        }
    }
}
