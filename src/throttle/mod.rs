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
//! `RateLimit: "method";r=REMAINING;t=SECONDS_UNTIL_FULL`. With
//! `throttle_options.headers: true`, admitted responses carry the same two
//! fields for the most restrictive limit (fewest tokens left). They are off
//! by default: API Gateway sends no rate-limit fields on an admitted
//! response, so a client moving over sees what it saw, and writing them
//! costs 90 to 150 ns a request, up to a tenth of the production stack
//! (`cargo bench --bench stack`: `full` against
//! `full_with_ratelimit_headers`). The 429 also carries a
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
//!
//! # Settings
//!
//! A limit ([`ThrottleConfig`]) is `{ rate, burst }`; the table above says
//! where each one sits. How the layer behaves is the root section
//! `throttle_options` ([`ThrottleOptions`]).
//!
//! ```yaml
//! throttle: { rate: 1000, burst: 2000 }       # gateway-wide: one bucket
//! throttle_options:
//!   per_client: { rate: 20, burst: 40 }       # one bucket per client IP
//!   trusted_proxies: [10.0.0.0/8]
//! stages:
//!   prod:
//!     settings: { throttle: { rate: 100, burst: 200 } }   # each method its own bucket
//!     methods:
//!       /pets/POST: { throttle: { rate: 5 } }              # burst 200 kept from settings
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `rate` | requests per second | required | `0` to `1e9`, fractions allowed, not NaN |
//! | `burst` | requests | required | an integer, `0` to `u32::MAX`; `rate: 0, burst: 0` blocks every request; rate 0 with a burst, or a rate with burst 0, is refused |
//! | `mode` | | `enforce` | `enforce` or `shadow` ([`LimitMode`]): a shadow limit is evaluated as if enforced, but a request over it is admitted, counted in [`ThrottleLayer::shadow_rejections`] and its usage event marked `shadowRejection: THROTTLED`; the enforced limits still decide (the request is charged to them without the shadow one) |
//! | `throttle_options.headers` | | `false` | `RateLimit-Policy` and `RateLimit` on admitted responses (429s always carry them) |
//! | `throttle_options.fail_mode` | | `open` | `open` or `closed`: what a rate store failure does |
//! | `throttle_options.max_tracked_keys` | buckets | `1000000` | at least 1; what the in-memory store keeps |
//! | `throttle_options.on_capacity` | | `reject` | `reject` or `admit`: a new key once the in-memory store is full |
//! | `throttle_options.per_client` | limit | none | both fields required |
//! | `throttle_options.trusted_proxies` | IPs or CIDR blocks | `[]` | peers whose `X-Forwarded-For` names the client |
//!
//! A stage's `throttle` merges field by field: `settings`, then `*/*`, then
//! `RESOURCE/*`, then `RESOURCE/METHOD`, each replacing only `rate` or `burst`
//! if it names it; what a method ends up with must have both, or neither (no
//! limit). Gateway-wide, per-client and plan limits stand alone and need both.
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | a bucket has no token | 429 `THROTTLED` `{"message":"Too Many Requests"}` with the headers above |
//! | the in-memory store already tracks `max_tracked_keys`, a new key comes, `on_capacity: reject` | 429 `THROTTLED` with `Retry-After: 1`, counted in [`InMemoryRateStore::untracked`] |
//! | the same with `on_capacity: admit` | admitted untracked, counted the same way |
//! | the rate store fails, `fail_mode: open` | admitted, no limit applied, counted in [`ThrottleLayer::store_errors`] |
//! | the rate store fails, `fail_mode: closed` | 503 `BACKEND_UNAVAILABLE` |
//!
//! The in-memory store does not fail. The Redis store (feature `redis`) fails
//! when Redis does not answer within its call timeout (50 ms by default) and
//! then fails fast while its circuit is open; it refills a bucket at most once
//! a microsecond, so rates above 1,000,000 per second are held to that. API
//! Gateway defines the 429 and the order of its limits in
//! [`api-gateway-request-throttling`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html).
//!
//! Config mistakes are refused when the config is read or built, each at the
//! deepest layer that wrote it:
//!
//! ```text
//! stages.prod.methods."/pets/GET".throttle.rate: must be >= 0 (got -1)
//! stages.prod.methods."/pets/POST".throttle.burst: is required
//! throttle.burst: must be > 0 when rate is > 0 (an empty bucket admits nothing)
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
pub(crate) mod service;
mod store;

use std::time::Duration;

pub use self::client::ClientAddr;
pub(crate) use self::client::client_ip;
pub(crate) use self::config::resolve_method;
pub use self::config::{LimitMode, ThrottleConfig, ThrottleOptions};
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
