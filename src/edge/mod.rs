//! The front door: what CloudFront and API Gateway's edge did before a
//! request reached the API. Method settings like any other, given at API
//! level (the config's top-level `settings`), per stage and per method
//! through the usual overlay.
//!
//! - `policy` ([`PolicyConfig`], [`ResourcePolicy`]): allow and deny lists
//!   of source addresses, API Gateway's resource policies on
//!   `aws:SourceIp`; a refusal is 403 `RESOURCE_POLICY_DENIED` with API
//!   Gateway's message.
//! - `cors` ([`CorsConfig`], [`Cors`]): preflights answered by the gateway
//!   before any credential is looked at, and the CORS headers on every
//!   response of the method, gateway errors included (tower-http's
//!   `CorsLayer` decides them).
//! - `minimum_compression_size` and `compression_br` ([`Compression`]):
//!   gzip and deflate responses by `Accept-Encoding`, as API Gateway
//!   compresses, and compressed request bodies decoded (tower-http's
//!   codings).
//!
//! The API-wide `limits` (`max_body`, `max_concurrency`) are checked first
//! of all; see [`LimitsConfig`](crate::body::LimitsConfig).
//!
//! ```
//! use http::{Request, StatusCode};
//! use std::net::SocketAddr;
//! use tollgate::throttle::ClientAddr;
//! use tollgate::{Body, Config, Gateway};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = Config::from_yaml_str(r#"
//! name: petstore
//! routes: { /pets: [GET] }
//! settings:                       # API level: every stage, every method
//!   policy: { allow: ["203.0.113.0/24"], deny: ["203.0.113.7"] }
//! stages: { prod: {} }
//! "#).unwrap();
//! let gateway = Gateway::new(config).unwrap();
//! let ok = tower::service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("pets")))
//! });
//! let from = |ip: [u8; 4]| {
//!     let mut req = Request::get("/prod/pets").body(Body::empty()).unwrap();
//!     req.extensions_mut().insert(ClientAddr(SocketAddr::from((ip, 40000))));
//!     req
//! };
//! let res = gateway.service(ok.clone()).oneshot(from([203, 0, 113, 9])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! let res = gateway.service(ok).oneshot(from([203, 0, 113, 7])).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # }
//! ```

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use crate::body::Body;

mod compression;
mod config;
mod cors;
mod policy;

pub use self::compression::Compression;
pub use self::config::{CorsConfig, PolicyConfig};
pub(crate) use self::config::{check_compression, resolve_compression};
pub use self::cors::Cors;
pub use self::policy::ResourcePolicy;

/// The inner service tower-http's CORS, compression and decompression
/// wrap here: it hands back the response the gateway already has (an empty
/// one when it has none) and keeps the request it was called with.
pub(crate) struct Give(Option<Response<Body>>, Arc<Mutex<Option<Request<Body>>>>);

impl<B> Service<Request<B>> for Give
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if let Ok(mut slot) = self.1.lock() {
            *slot = Some(req.map(Body::new));
        }
        std::future::ready(Ok(self.0.take().unwrap_or_default()))
    }
}
