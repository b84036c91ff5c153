//! Effective per-method settings, resolved once when the gateway is built.

use std::time::Duration;

use http::HeaderName;

use super::config::{
    Authorization, CacheConfig, IntegrationConfig, MethodSettingsConfig, ThrottleConfig,
};
pub use crate::throttle::Rate;

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

/// Effective settings of one method of one stage: the stage's `settings`,
/// then `RESOURCE/*`, then `RESOURCE/METHOD`, each replacing the fields it names.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MethodSettings {
    /// This method's own bucket, if limited.
    pub throttle: Option<Rate>,
    /// Response caching.
    pub cache: CacheSettings,
    /// Whether an API key is required.
    pub api_key_required: bool,
    /// How callers are authorized.
    pub authorization: Authorization,
    /// The custom authorizer, with [`Authorization::Authorizer`].
    pub authorizer: Option<std::sync::Arc<str>>,
    /// Where requests go.
    pub integration: IntegrationConfig,
    /// The compiled mapping, if any.
    pub mapping: Option<std::sync::Arc<crate::mapping::Mapping>>,
}

/// The un-finished merge of settings layers: each field is the last value any
/// layer named.
#[derive(Debug, Clone, Default)]
pub(crate) struct Merged {
    pub(crate) throttle_rate: Option<f64>,
    pub(crate) throttle_burst: Option<u32>,
    pub(crate) cache: CacheConfig,
    /// `enabled` as the method's own `RESOURCE/METHOD` override gives it.
    pub(crate) cache_enabled_by_method: Option<bool>,
    pub(crate) api_key_required: Option<bool>,
    pub(crate) authorization: Option<Authorization>,
    pub(crate) authorizer: Option<String>,
    pub(crate) integration: Option<IntegrationConfig>,
    pub(crate) mapping: Option<crate::mapping::MappingConfig>,
}

impl Merged {
    /// Lays `over` on top of what is merged so far, field by field.
    pub(crate) fn apply(&mut self, over: &MethodSettingsConfig) {
        if let Some(ThrottleConfig { rate, burst }) = over.throttle {
            self.throttle_rate = rate.or(self.throttle_rate);
            self.throttle_burst = burst.or(self.throttle_burst);
        }
        if let Some(c) = &over.cache {
            if c.enabled.is_some() {
                self.cache.enabled = c.enabled;
            }
            if c.ttl.is_some() {
                self.cache.ttl = c.ttl;
            }
            if c.key.is_some() {
                self.cache.key.clone_from(&c.key);
            }
            if c.per_key.is_some() {
                self.cache.per_key = c.per_key;
            }
            if c.statuses.is_some() {
                self.cache.statuses.clone_from(&c.statuses);
            }
            if c.honor_max_age.is_some() {
                self.cache.honor_max_age = c.honor_max_age;
            }
            if c.stale_if_error.is_some() {
                self.cache.stale_if_error = c.stale_if_error;
            }
            if c.require_authorization.is_some() {
                self.cache.require_authorization = c.require_authorization;
            }
            if c.unauthorized.is_some() {
                self.cache.unauthorized = c.unauthorized;
            }
            if c.headers.is_some() {
                self.cache.headers = c.headers;
            }
        }
        if over.api_key_required.is_some() {
            self.api_key_required = over.api_key_required;
        }
        if over.authorization.is_some() {
            self.authorization = over.authorization;
        }
        if over.authorizer.is_some() {
            self.authorizer.clone_from(&over.authorizer);
        }
        if over.integration.is_some() {
            self.integration.clone_from(&over.integration);
        }
        if over.mapping.is_some() {
            self.mapping.clone_from(&over.mapping);
        }
    }
}
