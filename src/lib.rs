//! tollgate puts a managed API gateway inside the service it protects.
//!
//! Wrap an axum `Router`, a hyper service or any tower `Service` in a
//! [`Gateway`] built from one YAML or JSON config, and requests get what
//! Amazon API Gateway gives them, in process: stages and routes, API keys and
//! usage plans, SigV4 and custom authorizers, throttling, response caching,
//! request/response mapping, HTTP integrations and usage reporting. Each
//! capability is a tower layer that also works alone; with the `redis`
//! feature, many processes share one set of limits, quotas and keys. A
//! [`Lifecycle`] serves several APIs, their deployments, stages and canaries,
//! changed while it serves.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::{Body, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let gateway = Gateway::new(tollgate::Config::from_yaml_str(r#"
//! routes:
//!   /pets: [GET, POST]
//!   /pets/{petId}: [GET, PUT, DELETE]
//! stages:
//!   prod: { variables: { tier: gold } }
//! "#)?)?;
//!
//! let app = service_fn(|req: Request<Body>| async move {
//!     // The stage prefix is gone; the route layer's facts are in the extensions.
//!     let ctx = req.extensions().get::<tollgate::RequestContext>().unwrap();
//!     let body = format!("{} {}", ctx.endpoint().resource(), req.uri().path());
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(body)))
//! });
//! let svc = gateway.service(app);
//!
//! let ok = svc.clone().oneshot(Request::get("/prod/pets/42").body(Body::empty())?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! let missing = svc.clone().oneshot(Request::get("/prod/cats").body(Body::empty())?).await?;
//! assert_eq!(missing.status(), StatusCode::NOT_FOUND);
//! assert_eq!(missing.headers()["x-tollgate-error-type"], "RESOURCE_NOT_FOUND");
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! | module | layer | status |
//! |---|---|---|
//! | [`route`] | [`RouteLayer`](route::RouteLayer): stages, resources, 404/405, request id | available |
//! | [`gateway`] | [`Gateway`]: config, validation, settings resolution | available |
//! | [`gateway`], [`deployments`] | [`Lifecycle`]: APIs, deployments, stages, canaries, domains and plans changed while serving; stores | available |
//! | [`throttle`] | [`ThrottleLayer`](throttle::ThrottleLayer): token buckets per gateway, method, client, key | available |
//! | [`keys`] | [`ApiKeyLayer`](keys::ApiKeyLayer): hashed API keys, stores, cache, management | available |
//! | [`plans`] | [`MeterLayer`](plans::MeterLayer): quotas, usage records, plans at run time | available |
//! | [`auth`] | [`SigV4Layer`](auth::sigv4::SigV4Layer), [`AuthorizerLayer`](auth::authorizer::AuthorizerLayer): SigV4, custom authorizers | available |
//! | [`cache`] | [`CacheLayer`](cache::CacheLayer): stage cache, coalesced misses, stale-if-error | available |
//! | [`mapping`], [`integration`] | [`MappingLayer`](mapping::MappingLayer): parameters, templates; HTTP proxy, mock | available |
//! | [`usage`] | [`UsageLayer`](usage::UsageLayer): usage events, reporter, sinks | available |
//!
//! Behind a [`Gateway`] the order is usage (when reporting), route, SigV4, custom authorizer, API
//! key, throttle, meter, cache, mapping, then each method's integration (the
//! inner service by default).
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `redis` | no | the `redis` module (`tollgate::redis`): every store on Redis, shared by many gateway processes |

pub mod auth;
pub mod body;
pub mod cache;
pub mod clock;
pub mod config;
pub mod context;
pub mod deployments;
pub mod edge;
mod gate;
pub mod gateway;
mod hex;
pub mod integration;
pub mod keys;
pub mod management;
pub mod mapping;
pub mod openapi;
pub mod plans;
mod redacted;
#[cfg(feature = "redis")]
pub mod redis;
pub mod response;
pub mod route;
pub mod secret;
mod slab;
pub mod store;
pub mod threescale;
pub mod throttle;
mod ttl_cache;
pub mod usage;
pub mod validate;
pub mod vtl;

pub use self::body::Body;
pub use self::context::{
    ApiKeyIdentity, Caller, Endpoint, MethodSettings, RequestContext, RequestHead, RequestId,
    UsageIdentifierKey,
};
pub use self::gateway::{
    Config, ConfigError, Gateway, GatewayBuilder, GatewayService, Lifecycle, LifecycleService,
};
pub use self::response::{GatewayResponseKind, GatewayResponses};
