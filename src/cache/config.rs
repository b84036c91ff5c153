//! A method's `cache` settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::{
    CacheKeyParam, CacheLayer, CachePolicy, CacheSettings, CacheStore, DEFAULT_CACHE_CAPACITY,
    DEFAULT_CACHE_TTL, MokaCacheStore, TieredCacheStore, UnauthorizedStrategy,
};
use crate::clock::Clock;
use crate::config::{ByteSize, Issues, PathBuf};
use crate::context::{Endpoint, PerEndpoint};
use crate::response::GatewayResponses;

/// Response cache settings of a stage or method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
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
    /// Adds the caller's identities (API key id, SigV4 and authorizer
    /// principals, those present) to the cache key.
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

impl crate::config::Overlay for CacheConfig {
    /// Each field `over` names replaces this one (API Gateway's method
    /// settings overrides).
    fn overlay(&mut self, over: &CacheConfig) {
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

/// The longest cache TTL (and stale-if-error grace), as API Gateway's: an hour.
pub(crate) const MAX_CACHE_TTL: u32 = 3600;

impl CacheConfig {
    /// Checks the fields these settings name. `route` is the resource's
    /// template and path parameters, for a method's own settings.
    pub(crate) fn check(
        &self,
        path: &PathBuf,
        route: Option<(&str, &[Box<str>])>,
        issues: &mut Issues,
    ) {
        if let Some(ttl) = self.ttl
            && ttl > MAX_CACHE_TTL
        {
            issues.push(
                &path.field("ttl"),
                format!("must be <= {MAX_CACHE_TTL} seconds (got {ttl})"),
            );
        }
        for (i, k) in self.key.iter().flatten().enumerate() {
            let kpath = path.field("key").index(i);
            match parse_cache_key(k) {
                Ok(CacheKeyParam::Path(name)) => {
                    if let Some((template, params)) = route
                        && !params.iter().any(|p| **p == name)
                    {
                        issues.push(
                            &kpath,
                            format!("`{template}` has no path parameter `{name}`"),
                        );
                    }
                }
                Ok(_) => {}
                Err(msg) => issues.push(&kpath, msg),
            }
        }
        if let Some(grace) = self.stale_if_error
            && grace > MAX_CACHE_TTL
        {
            issues.push(
                &path.field("stale_if_error"),
                format!("must be <= {MAX_CACHE_TTL} seconds (got {grace})"),
            );
        }
        for (i, s) in self.statuses.iter().flatten().enumerate() {
            if !(100..=599).contains(s) {
                issues.push(
                    &path.field("statuses").index(i),
                    format!("must be an HTTP status, 100 to 599 (got {s})"),
                );
            }
        }
    }

    /// What these settings (the overlay's result, checked) resolve to.
    /// `method_override`: the method's own `RESOURCE/METHOD` override turned
    /// caching on (what caches a method other than GET and HEAD).
    pub(crate) fn resolve(&self, method_override: bool) -> CacheSettings {
        let ttl = self
            .ttl
            .map_or(DEFAULT_CACHE_TTL, |t| Duration::from_secs(u64::from(t)));
        CacheSettings {
            enabled: self.enabled.unwrap_or(false) && !ttl.is_zero(),
            ttl,
            key: self
                .key
                .iter()
                .flatten()
                .filter_map(|k| parse_cache_key(k).ok())
                .collect(),
            per_key: self.per_key.unwrap_or(false),
            method_override,
            statuses: self
                .statuses
                .iter()
                .flatten()
                .filter_map(|s| http::StatusCode::from_u16(*s).ok())
                .collect(),
            honor_max_age: self.honor_max_age.unwrap_or(true),
            stale_if_error: Duration::from_secs(u64::from(self.stale_if_error.unwrap_or(0))),
            require_authorization: self.require_authorization.unwrap_or(true),
            unauthorized: self.unauthorized.unwrap_or_default(),
            headers: self.headers.unwrap_or(true),
        }
    }
}

fn parse_cache_key(k: &str) -> Result<CacheKeyParam, String> {
    let bad = || {
        format!(
            "`{k}` is not a cache key parameter (use querystring.NAME, header.NAME or path.NAME)"
        )
    };
    let (source, name) = k.split_once('.').ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    match source {
        "querystring" => Ok(CacheKeyParam::Query(name.to_owned())),
        "path" => Ok(CacheKeyParam::Path(name.to_owned())),
        "header" => HeaderName::from_bytes(name.as_bytes())
            .map(CacheKeyParam::Header)
            .map_err(|_| format!("`{name}` is not a valid header name")),
        _ => Err(bad()),
    }
}

/// Makes the shared second cache tier of one stage (`GatewayBuilder::cache_tier`).
pub(crate) type CacheTier = Box<dyn Fn(&str) -> Arc<dyn CacheStore> + Send + Sync>;

/// One response cache per stage, as API Gateway's (a stage's cache is shared
/// by its methods): in memory, `capacity` bytes (default 64 MiB), with
/// `tier(stage)` behind it when given.
pub(crate) fn stage_stores<'a>(
    stages: impl IntoIterator<Item = (&'a str, Option<ByteSize>)>,
    tier: Option<&CacheTier>,
) -> HashMap<Arc<str>, Arc<dyn CacheStore>> {
    stages
        .into_iter()
        .map(|(name, capacity)| {
            let capacity = capacity.map_or(DEFAULT_CACHE_CAPACITY, |c| c.0);
            let mut store: Arc<dyn CacheStore> = Arc::new(MokaCacheStore::new(capacity));
            if let Some(tier) = tier {
                store = Arc::new(TieredCacheStore::new(store, tier(name)));
            }
            (Arc::<str>::from(name), store)
        })
        .collect()
}

/// The gateway's cache layer: each caching endpoint with its stage's store
/// and the policy its settings resolve to.
pub(crate) fn layer<'a>(
    endpoints: impl IntoIterator<Item = &'a Arc<Endpoint>>,
    stores: &HashMap<Arc<str>, Arc<dyn CacheStore>>,
    clock: Arc<dyn Clock>,
    responses: GatewayResponses,
) -> CacheLayer {
    let by_endpoint = PerEndpoint::build(endpoints, |e| {
        let settings = &e.settings().cache;
        if !settings.enabled {
            return None;
        }
        let policy = CachePolicy::from_settings(settings, e.method());
        Some((stores.get(e.stage())?.clone(), Arc::new(policy)))
    });
    CacheLayer::for_gateway(by_endpoint, clock, responses)
}
