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
//! `cache.per_key: true` adds the caller (API key id, SigV4 principal or
//! authorizer principal) to the key. Turn it on whenever the response depends
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
