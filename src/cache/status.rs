//! What the cache did, and the policy a `CacheLayer` applies.
//!
//! A [`CachePolicy`] is resolved once per method when a gateway is built
//! (from the stage's `cache` settings and the method's override) and shared
//! behind an `Arc`; the standalone layer takes one directly. Its defaults
//! are API Gateway's where API Gateway has one: a 300 s TTL, GET cached
//! (HEAD answered from the GET entry), and `Cache-Control: max-age=0`
//! honoured only from a caller allowed to invalidate.

use std::time::Duration;

use http::{HeaderName, Method, StatusCode};

use super::CacheSettings;

/// The `x-cache` response header.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// What the cache did with a request; in the response extensions (for usage
/// metrics) and, unless turned off, the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Served from a fresh entry; the backend was not called.
    Hit,
    /// No fresh entry: the backend answered (once for all concurrent misses on the key).
    Miss,
    /// An expired entry stood in for a failing backend.
    Stale,
    /// Caching is on for the method but this request is not cacheable
    /// (its method, or no identity for a `per_key` cache).
    Bypass,
}

impl CacheStatus {
    /// The `x-cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "Hit",
            Self::Miss => "Miss",
            Self::Stale => "Stale",
            Self::Bypass => "Bypass",
        }
    }
}

/// Which statuses are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusFilter {
    /// 200 to 299 (the default).
    Success,
    /// Exactly these.
    Only(Vec<StatusCode>),
}

impl StatusFilter {
    /// Whether a response of `status` may be stored.
    pub(super) fn allows(&self, status: StatusCode) -> bool {
        match self {
            Self::Success => status.is_success(),
            Self::Only(list) => list.contains(&status),
        }
    }
}

/// How the layer caches when it works alone, and the gateway's defaults for
/// what the config does not say.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachePolicy {
    /// How long an entry is fresh. Default 300 s (API Gateway's).
    pub ttl: Duration,
    /// Methods cached standalone. Default GET and HEAD (HEAD is served from
    /// the GET entry). In a gateway, GET and HEAD of methods with caching on.
    pub methods: Vec<Method>,
    /// Statuses stored. Default 2xx.
    pub statuses: StatusFilter,
    /// Whether an upstream `Cache-Control: max-age` (or `s-maxage`) below the
    /// TTL shortens the entry. Default true.
    pub honor_max_age: bool,
    /// Whether responses carry `x-cache` and, on hits, `Age`. Default true.
    pub headers: bool,
    /// How long past its expiry an entry may answer instead of a failing
    /// backend (an error, or a 5xx response), marked [`CacheStatus::Stale`].
    /// Default zero: off. The store must keep entries that long past expiry
    /// ([`MokaCacheStore`](super::MokaCacheStore) keeps them two hours).
    pub stale_if_error: Duration,
    /// Whether a client's `Cache-Control: max-age=0` refreshes the entry only
    /// when the caller may invalidate (see [`CacheInvalidator`]). Default
    /// true, as API Gateway's "require authorization".
    pub require_authorization: bool,
    /// What an unauthorized `Cache-Control: max-age=0` gets.
    pub unauthorized: UnauthorizedStrategy,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: super::DEFAULT_CACHE_TTL,
            methods: vec![Method::GET, Method::HEAD],
            statuses: StatusFilter::Success,
            honor_max_age: true,
            headers: true,
            stale_if_error: Duration::ZERO,
            require_authorization: true,
            unauthorized: UnauthorizedStrategy::default(),
        }
    }
}

impl CachePolicy {
    /// The policy of one gateway method: GET and HEAD, plus the method itself
    /// when its own override turned caching on.
    pub(crate) fn from_settings(s: &CacheSettings, method: Option<&Method>) -> Self {
        let mut methods = vec![Method::GET, Method::HEAD];
        if s.method_override
            && let Some(m) = method
            && !methods.contains(m)
        {
            methods.push(m.clone());
        }
        Self {
            ttl: s.ttl,
            methods,
            statuses: if s.statuses.is_empty() {
                StatusFilter::Success
            } else {
                StatusFilter::Only(s.statuses.clone())
            },
            honor_max_age: s.honor_max_age,
            headers: s.headers,
            stale_if_error: s.stale_if_error,
            require_authorization: s.require_authorization,
            unauthorized: s.unauthorized,
        }
    }
}

/// What a `Cache-Control: max-age=0` from a caller who may not invalidate
/// gets: API Gateway's `unauthorizedCacheControlHeaderStrategy`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize,
)]
#[non_exhaustive]
pub enum UnauthorizedStrategy {
    /// Refused: 403 `ACCESS_DENIED`.
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    /// Served as if the header were absent, with a `Warning` header saying it
    /// was ignored (the default).
    #[default]
    #[serde(rename = "SUCCEED_WITH_RESPONSE_HEADER")]
    SucceedWithResponseHeader,
    /// Served as if the header were absent.
    #[serde(rename = "SUCCEED_WITHOUT_RESPONSE_HEADER")]
    SucceedWithoutResponseHeader,
}

/// A request extension that lets its request invalidate a cache entry with
/// `Cache-Control: max-age=0`. The API key layer and the SigV4 layer grant it
/// through [`ApiKeyIdentity::can_invalidate_cache`](crate::context::ApiKeyIdentity::can_invalidate_cache) and
/// [`SigV4Identity::can_invalidate_cache`](crate::auth::sigv4::SigV4Identity::can_invalidate_cache); insert this from your own layer
/// (after an authorizer, say) to grant it otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheInvalidator;

/// The `Warning` an ignored `Cache-Control: max-age=0` gets, under
/// [`UnauthorizedStrategy::SucceedWithResponseHeader`]: code 199 is
/// RFC 7234's "miscellaneous warning", `-` the unnamed agent.
pub(super) const IGNORED_WARNING: &str =
    "199 - \"Cache-Control max-age=0 ignored: the caller may not invalidate the cache\"";

impl CachePolicy {
    /// The default policy with `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }
}
