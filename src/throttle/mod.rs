//! Throttling: token buckets at every level API Gateway has, exact under concurrency.
//!
//! A [`Rate`] is a steady rate in requests per second and a burst. The
//! algorithm is GCRA ([`gcra`](self) keeps one 64-bit theoretical arrival time
//! per bucket, in nanoseconds, read from the [`Clock`](crate::clock::Clock)),
//! which admits exactly what a token bucket of `burst` tokens refilled at
//! `rate` admits.
//!
//! Behind a [`Gateway`](crate::Gateway), a request meets every limit that
//! covers it, and passes only if all admit it; a rejection by one charges
//! none of the others:
//!
//! | config | bucket | header name |
//! |---|---|---|
//! | plan `methods."RESOURCE/METHOD".throttle` | one per API key and method | `plan-method` |
//! | plan `throttle` | one per API key, across the plan's stages | `plan` |
//! | `throttle_options.per_client` | one per client IP | `client` |
//! | stage `settings.throttle`, method overrides | one per method of the stage | `method` |
//! | top-level `throttle` | one for every request | `gateway` |
//!
//! A rejection is 429 `THROTTLED` with `Retry-After` (whole seconds, rounded
//! up, never 0) and the IETF draft fields for the limit that rejected:
//! `RateLimit-Policy: "method";q=BURST;w=SECONDS_TO_REFILL` and
//! `RateLimit: "method";r=REMAINING;t=SECONDS_UNTIL_FULL`. Admitted responses
//! carry the same two fields for the most restrictive limit (fewest tokens
//! left), unless `throttle_options.headers: false`. The 429 also carries a
//! [`ThrottleRejection`] response extension naming the limit.
//!
//! Store failures follow [`FailMode`](crate::store::FailMode): open by
//! default (admit, count in [`ThrottleLayer::store_errors`]), or closed (503).
//!
//! Alone, with a [`KeyExtractor`] (global, a header, the client IP, or a closure):
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::Body;
//! use tollgate::throttle::{KeyExtractor, Rate, ThrottleLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut svc = ServiceBuilder::new()
//!     .layer(ThrottleLayer::new(Rate::new(1.0, 2)).key(KeyExtractor::header(http::HeaderName::from_static("x-client"))))
//!     .service(service_fn(|_req: Request<Body>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//!     }));
//! let req = || Request::get("/").header("x-client", "a").body(Body::empty()).unwrap();
//! assert_eq!(svc.ready().await?.call(req()).await?.status(), StatusCode::OK);
//! assert_eq!(svc.ready().await?.call(req()).await?.status(), StatusCode::OK);
//! let third = svc.ready().await?.call(req()).await?;
//! assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(third.headers()["retry-after"], "1");
//! assert_eq!(third.headers()["ratelimit"], "\"default\";r=0;t=2");
//! # Ok(()) }
//! ```

mod client;
mod config;
mod future;
pub(crate) mod gcra;
pub mod headers;
mod key;
mod layer;
mod memory;
mod rate;
mod service;
mod store;

use std::time::Duration;

pub use self::client::ClientAddr;
pub(crate) use self::client::client_ip;
pub(crate) use self::config::resolve_method;
pub use self::config::{ThrottleConfig, ThrottleOptions};
pub use self::future::ResponseFuture;
pub(crate) use self::headers::Spec;
pub use self::key::KeyExtractor;
pub(crate) use self::layer::GatewayLimits;
pub use self::layer::ThrottleLayer;
pub use self::memory::{DEFAULT_MAX_KEYS, InMemoryRateStore, OnCapacity};
pub use self::rate::Rate;
pub use self::service::Throttle;
pub use self::store::{Admission, Limit, LimitScope, RateKey, RateStore};
pub use crate::context::RequestHead;

/// Response extension of a 429 from the throttle layer: which limit rejected
/// the request, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRejection {
    /// The limit that rejected.
    pub scope: LimitScope,
    /// Time until that bucket has a token again.
    pub retry_after: Duration,
}
