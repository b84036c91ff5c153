//! The gateway: one config, one stack of layers, any inner service.
//!
//! A [`Config`] is read from YAML or JSON ([`Config::from_path`],
//! [`Config::from_yaml_str`], [`Config::from_json_str`]) and validated: every
//! unknown field and every broken rule is reported at once, each with its
//! path (`stages.prod.methods."/pets/GET".throttle.rate: must be >= 0 (got -1)`).
//! [`Gateway::new`] then resolves the settings of every method of every stage
//! once (stage `settings`, then `*/*`, then `RESOURCE/*`, then
//! `RESOURCE/METHOD`, each replacing only the fields it names), so a request does one table lookup.
//! A gateway's config is fixed once built; [`lifecycle`] serves several APIs
//! whose deployments, stages and canaries change while it serves.
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::from_yaml_str(r#"
//! routes:
//!   /pets: [GET, POST]
//!   /pets/{petId}: [GET]
//! stages:
//!   prod:
//!     settings: { throttle: { rate: 100, burst: 50 } }
//!     methods:
//!       /pets/POST: { throttle: { rate: 5 } }   # burst 50 kept from the stage
//! "#)?;
//! let gateway = Gateway::new(config)?;
//! let post = gateway.endpoint("prod", "/pets", "POST").unwrap();
//! assert_eq!(post.settings().throttle.map(|r| (r.rate(), r.burst())), Some((5.0, 50)));
//!
//! let svc = gateway.service(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::from("ok")))
//! }));
//! let res = svc.oneshot(Request::get("/prod/pets/1").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! # Ok(()) }
//! ```
//!
//! # How a request goes through
//!
//! [`GatewayService`] runs the layers' own steps in their order: usage,
//! route, SigV4, custom authorizer, API key, throttle, meter (quota), cache,
//! mapping, integration.
//!
//! - An endpoint with no authorization, cache, mapping or integration of
//!   its own, on stores that answer without waiting (the in-memory ones):
//!   every step decides inside `call` and the inner service's future is
//!   polled directly. No boxed future, no layer cloned per request, one
//!   request context.
//! - An endpoint with a cache, a mapping or an integration: the key,
//!   throttle and meter still decide inline; the cache, mapping and
//!   integration layers then answer, in one boxed future.
//! - An endpoint with SigV4 or an authorizer: every step after routing runs
//!   through the layer services, in one boxed future.
//! - A store that must wait (Redis): the layers take over from that step
//!   on; steps already decided are not repeated.
//!
//! Either way the responses, headers and usage events are the same
//! (`tests/gateway_paths.rs` runs one script both ways). The response
//! carries no [`ApiKeyIdentity`](crate::ApiKeyIdentity) or
//! [`IntegrationLatency`](crate::usage::IntegrationLatency) in its
//! extensions: the usage event gets them directly. When usage is reported,
//! a panic in any step or in the inner service is answered 500
//! `DEFAULT_5XX` with the request id, and reported.
//!
//! Errors name every problem:
//!
//! ```
//! use tollgate::Config;
//!
//! let err = Config::from_yaml_str(r#"
//! routes: { /pets: [GET] }
//! stages:
//!   prod:
//!     methods:
//!       /pets/GET: { throttle: { rate: -1, burst: 5 } }
//!       /cats/GET: { cache: { ttl: 7200 } }
//! "#).unwrap_err();
//! let text = err.to_string();
//! assert!(text.contains(r#"stages.prod.methods."/pets/GET".throttle.rate: must be >= 0"#));
//! assert!(text.contains(r#"stages.prod.methods."/cats/GET": unknown route `/cats`"#));
//! ```

mod builder;
mod config;
mod handle;
pub mod lifecycle;
mod load;
mod overlay;
mod resolve;
mod service;

pub use self::builder::GatewayBuilder;
pub use self::config::{
    ApiKeyOptions, ApiKeySource, ApiSourceConfig, Authorization, AuthorizerConfig, ByteSize,
    CacheConfig, CanaryConfig, Config, CredentialConfig, DeploymentStoreConfig, DeploymentsConfig,
    IntegrationConfig, KeyConfig, LimitsConfig, MappingLimitsConfig, MethodSettingsConfig,
    PlanConfig, PlanMethodConfig, QuotaConfig, Secret, SigV4Config, StageConfig, ThrottleConfig,
    ThrottleOptions,
};
pub use self::handle::Gateway;
pub use self::lifecycle::{
    Api, BasePathMapping, CanarySettings, Deployment, DeploymentInput, DeploymentStore,
    DirDeploymentStore, DomainName, InMemoryDeploymentStore, Lifecycle, LifecycleError,
    LifecycleErrorKind, LifecycleService, Reloaded, Stage, StageChange, Sticky,
};
pub(crate) use self::resolve::{StageMethod, stage_methods as resolve_stage_methods};
pub use self::service::{GatewayService, ResponseFuture};
pub use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue};
