//! Routing: `/{stage}/{resource}` to an endpoint, with API Gateway's 404 and 405.
//!
//! [`RouteLayer`] matches the first path segment against the stage names and
//! the rest against the resource templates (`/pets/{petId}`, greedy
//! `/files/{proxy+}`) with [`matchit`]. On a match it strips the stage prefix
//! from the URI the inner service sees, and inserts a
//! [`RequestContext`](crate::RequestContext) (request id, endpoint with its
//! resolved settings, decoded path parameters, the original URI) into the
//! request extensions. Every response carries the request id in
//! `x-amzn-requestid`.
//!
//! | request | answer |
//! |---|---|
//! | unknown stage or path | 404 `RESOURCE_NOT_FOUND` |
//! | known path, method not declared (and no `ANY`) | 405 `METHOD_NOT_ALLOWED` with `Allow` |
//! | path parameter not UTF-8 once decoded | 400 `BAD_REQUEST_PARAMETERS` |
//!
//! Matching rules: literal segments match the raw path, parameters match one
//! segment (an encoded `%2F` stays inside the segment) and are
//! percent-decoded; `{proxy+}` matches one or more segments; one trailing
//! slash is ignored (`/prod/pets/` is `/prod/pets`); an explicitly declared
//! method wins over `ANY`; `HEAD` and `OPTIONS` are not implied by `GET`.
//!
//! The [`Gateway`](crate::Gateway) puts this layer in its stack; it also works
//! alone:
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::route::RouteLayer;
//! use tollgate::{Body, Config};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_yaml_str(r#"
//! routes: { "/pets": [GET] }
//! stages: { prod: {} }
//! "#)?;
//! let svc = ServiceBuilder::new()
//!     .layer(RouteLayer::new(&config)?)
//!     .service(service_fn(|req: Request<Body>| async move {
//!         assert_eq!(req.uri().path(), "/pets"); // stage prefix stripped
//!         Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//!     }));
//!
//! let res = svc.clone().oneshot(Request::get("/prod/pets").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let res = svc.clone().oneshot(Request::delete("/prod/pets").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
//! assert_eq!(res.headers()["allow"], "GET");
//! let res = svc.oneshot(Request::get("/test/pets").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! # Ok(()) }
//! ```

pub(crate) mod config;
mod future;
mod layer;
mod service;
pub(crate) mod table;
mod template;

pub use self::future::{REQUEST_ID_HEADER, ResponseFuture};
pub use self::layer::RouteLayer;
pub use self::service::Route;
