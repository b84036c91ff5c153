//! Response caching: API Gateway's stage cache, with concurrent misses
//! coalesced into one backend call and stale entries standing in for a
//! failing backend.
//!
//! [`CacheLayer`] keeps whole responses in a [`CacheStore`] ([`MokaCacheStore`],
//! bounded in bytes, by default). Alone, it caches `GET` (and answers `HEAD`
//! from the `GET` entry) keyed by method, path and query, for its policy's TTL.
//! In a [`Gateway`](crate::Gateway), each method's `cache` settings decide: the
//! key is the stage, resource, path parameters and exactly the parameters
//! listed in `cache.key` (`querystring.NAME`, `header.NAME`, `path.NAME`), so
//! two requests that differ only in an unlisted parameter share an entry, as
//! in API Gateway. Methods other than GET and HEAD are cached only when their
//! own `RESOURCE/METHOD` override enables caching (the body is not in the key).
//!
//! - Stored: statuses 2xx by default ([`StatusFilter`]), bodies up to
//!   [`MAX_ENTRY_BODY`] (1 MiB). Never stored: a response with
//!   `Cache-Control: no-store` or `private`, or with `Set-Cookie` (API Gateway
//!   caches them; a shared cache should not). An upstream `max-age` or
//!   `s-maxage` below the TTL shortens the entry ([`CachePolicy::honor_max_age`]).
//! - Concurrent misses on one key make one backend call; the others wait for
//!   it and get its response. A failed call is stored nowhere: each waiter then
//!   calls the backend itself, and the next request tries again.
//! - Stale-if-error ([`CachePolicy::stale_if_error`], off by default): when the
//!   backend fails (an error, or a 5xx), an entry that expired less than the
//!   grace ago answers instead, as [`CacheStatus::Stale`].
//! - A request with `Cache-Control: max-age=0` refreshes its entry if its
//!   caller may invalidate ([`CacheInvalidator`]); otherwise the
//!   [`UnauthorizedStrategy`] decides (serve with a `Warning`, serve, or 403).
//! - `x-cache: Hit | Miss | Stale | Bypass` (and `Age` when served from the
//!   cache) unless [`CachePolicy::headers`] is off; the [`CacheStatus`] is in
//!   the response extensions either way.
//! - A hit copies no body bytes: the entry's body is [`Bytes`](bytes::Bytes),
//!   shared.
//! - Freshness is decided with the layer's [`Clock`](crate::clock::Clock);
//!   moka's own time-to-live only reclaims memory.
//!
//! `cache.per_key: true` adds the caller (every identity it carries: API key
//! id, SigV4 principal, authorizer principal) to the key. Turn it on whenever the response depends
//! on who asks and the key does not already say so (an `Authorization` header
//! is not part of the key unless listed): without it, one tenant's response
//! serves the next. A `per_key` method whose caller is unknown bypasses the cache.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use http::{Request, Response};
//! use tollgate::cache::{CacheLayer, CachePolicy, CacheStatus, MokaCacheStore};
//! use tollgate::Body;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counted = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(CacheLayer::new(Arc::new(MokaCacheStore::default()), CachePolicy::default()))
//!     .service_fn(move |_req: Request<Body>| {
//!         counted.fetch_add(1, Ordering::SeqCst);
//!         async { Ok::<_, Infallible>(Response::new(Body::from("pets"))) }
//!     });
//!
//! for expected in [CacheStatus::Miss, CacheStatus::Hit] {
//!     let req = Request::get("/pets?type=dog").body(Body::empty()).unwrap();
//!     let res = svc.clone().oneshot(req).await.unwrap();
//!     assert_eq!(res.extensions().get::<CacheStatus>(), Some(&expected));
//! }
//! assert_eq!(calls.load(Ordering::SeqCst), 1);
//! # }
//! ```
//!
//! # Settings
//!
//! `cache` is a method setting: in a stage's `settings` (every method) or a
//! method override. The stage's store size is the stage's `cache_capacity`.
//!
//! ```yaml
//! stages:
//!   prod:
//!     cache_capacity: 64MiB                     # the default
//!     settings:
//!       cache: { enabled: true, ttl: 300, key: [querystring.type] }
//!     methods:
//!       /pets/{petId}/GET: { cache: { ttl: 60, key: [path.petId], per_key: true } }
//!       /search/POST: { cache: { enabled: true, key: [header.x-query] } }
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `enabled` | | `false` | for methods other than GET and HEAD, only their own `RESOURCE/METHOD` override's `enabled: true` counts |
//! | `ttl` | seconds | `300` | 0 to 3600; 0 turns caching off |
//! | `key` | | `[]` | `querystring.NAME`, `header.NAME` (a valid header name), `path.NAME` (a parameter of the resource) |
//! | `per_key` | | `false` | the caller's identity joins the key |
//! | `statuses` | | every 2xx | each 100 to 599 |
//! | `honor_max_age` | | `true` | an upstream `max-age` or `s-maxage` below `ttl` shortens the entry |
//! | `stale_if_error` | seconds | `0` (off) | 0 to 3600 |
//! | `require_authorization` | | `true` | `Cache-Control: max-age=0` refreshes only for callers allowed to invalidate |
//! | `unauthorized` | | `SUCCEED_WITH_RESPONSE_HEADER` | or `SUCCEED_WITHOUT_RESPONSE_HEADER`, `FAIL_WITH_403` |
//! | `headers` | | `true` | `x-cache` and `Age` on responses |
//! | `cache_capacity` (stage) | bytes (`64MiB` style) | `64MiB` | an integer or `N B/KB/MB/GB/KiB/MiB/GiB` |
//!
//! `cache` merges field by field: the stage's `settings`, then `*/*`, then
//! `RESOURCE/*`, then `RESOURCE/METHOD`, each replacing only the fields it
//! names, as API Gateway's method overrides replace its stage cache settings
//! ([`api-gateway-caching`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-caching.html), which also gives the 300 s default and 3600 s
//! maximum).
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | the store fails on a lookup | a miss: the backend answers, and the failure is logged |
//! | the store fails to keep an entry | the response is served; the failure is logged |
//! | the backend fails (an error or a 5xx) with an entry expired less than `stale_if_error` ago | the entry, `x-cache: Stale` |
//! | the same without such an entry | the backend's answer; an error is stored nowhere |
//! | `Cache-Control: max-age=0` from a caller who may not invalidate, `unauthorized: FAIL_WITH_403` | 403 `ACCESS_DENIED` |
//!
//! The cache has no fail mode and never answers 503 for its store. With a
//! shared Redis tier ([`TieredCacheStore`], feature `redis`), a tier that fails
//! is a miss in it, and this process's memory still serves. Config mistakes are
//! refused when the config is read or built:
//!
//! ```text
//! stages.prod.settings.cache.ttl: must be <= 3600 seconds (got 4000)
//! stages.prod.settings.cache.key[0]: `bogus.x` is not a cache key parameter (use querystring.NAME, header.NAME or path.NAME)
//! stages.prod.methods."/pets/{petId}/GET".cache.key[1]: `/pets/{petId}` has no path parameter `id`
//! ```

mod coalesce;
mod config;
mod entry;
mod future;
mod key;
mod layer;
mod policy;
mod service;
mod status;
mod store;

pub use self::future::ResponseFuture;
pub use self::layer::CacheLayer;
pub use self::service::Cache;
pub use status::{
    CacheInvalidator, CachePolicy, CacheStatus, StatusFilter, UnauthorizedStrategy, X_CACHE,
};
pub use store::{
    CacheKey, CacheStore, CachedResponse, DEFAULT_CACHE_CAPACITY, MAX_ENTRY_BODY, MokaCacheStore,
    TieredCacheStore,
};

pub use self::config::CacheConfig;
pub(crate) use self::config::{CacheTier, layer, stage_stores};
pub use self::policy::{CacheKeyParam, CacheSettings, DEFAULT_CACHE_TTL};
