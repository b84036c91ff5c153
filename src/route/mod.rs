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
//! A request whose `Host` (or HTTP/2 `:authority`; port ignored, any case)
//! is one of the config's custom `domains` is routed by that domain's base
//! path mappings instead: the longest base path its path starts with (whole
//! segments; `""` is API Gateway's `(none)` mapping) names the stage, and
//! the base path is what is stripped. See [`DomainConfig`] (API Gateway's
//! "Set up custom domain names" and "API mappings"; multi-level base paths
//! are allowed everywhere).
//!
//! | request | answer |
//! |---|---|
//! | a custom domain none of whose base paths takes the path; the `/{stage}` form with `disable_execute_api_endpoint: true` | 403 `UNMAPPED_REQUEST` `{"message":"Forbidden"}` |
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
//!
//! # Settings
//!
//! Routing reads two root sections of the [`Config`](crate::Config): `routes`
//! (the resource templates and the methods each accepts) and `stages` (their
//! names, which are the first path segment, and their `variables`). The keys of
//! a stage's `methods` name endpoints in the same terms, for the settings of
//! every other capability.
//!
//! ```yaml
//! routes:
//!   /pets: [GET, POST]
//!   /pets/{petId}: [GET, PUT, DELETE]
//!   /files/{proxy+}: [ANY]
//! stages:
//!   prod:
//!     variables: { backend: "10.0.0.5:8080" }
//!     settings: {}              # every method of the stage (API Gateway's */*)
//!     methods:
//!       /pets/{petId}/*: {}     # every method of one resource
//!       /pets/GET: {}           # one method; the root resource is /GET
//! ```
//!
//! | field | default | bounds |
//! |---|---|---|
//! | `routes` | required | at least one; a path starts with `/` and has no trailing `/` or `//`; a segment is a literal (letters, digits, `-._~!$&'()*+,;=:@`), `{name}`, or `{name+}` as the last segment; parameter names are letters, digits, `_` and `-`, each once per path; two templates that match the same paths (`/a/{x}`, `/a/{y}`) conflict |
//! | `routes.PATH` | required | at least one of `GET POST PUT DELETE PATCH HEAD OPTIONS ANY`, each once |
//! | `stages` | required | at least one; a name is 1 to 128 letters, digits, `-` or `_`; stages times route methods (the endpoints) at most 100,000 |
//! | `stages.S.variables` | `{}` | names are letters, digits and `_`; values at most 512 characters, none a control character |
//! | `stages.S.methods` | `{}` | keys `RESOURCE/METHOD`, `RESOURCE/*` or `*/*`, naming a declared route and method; `*/*` only when `settings` is empty |
//!
//! Each endpoint's settings are laid over once, at build: the stage's
//! `settings`, then `*/*`, then `RESOURCE/*`, then `RESOURCE/METHOD`, each
//! replacing only the fields it names (`throttle` and `cache` field by field),
//! as API Gateway's method settings override its stage settings ([`stages`](https://docs.aws.amazon.com/apigateway/latest/developerguide/stages.html)).
//!
//! # Failure modes
//!
//! What a request gets is in the table above. API Gateway answers an unknown
//! path, and a method the resource does not have, with 403
//! `MISSING_AUTHENTICATION_TOKEN` ([`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)); to
//! answer as it does, override both kinds under `responses`, for example
//! `RESOURCE_NOT_FOUND: { status: 403, message: Missing Authentication Token
//! }`.
//!
//! Routing mistakes are refused when the config is read
//! ([`Config::from_yaml_str`](crate::Config::from_yaml_str) and
//! [`from_path`](crate::Config::from_path) validate it) and when one made in
//! code is built ([`RouteLayer::new`],
//! [`GatewayBuilder::build`](crate::GatewayBuilder::build)), every problem at
//! its path:
//!
//! ```text
//! routes."/a"[1]: `FETCH` is not a method (use one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, ANY)
//! routes."/c//d": a resource path must not contain an empty segment (`//`)
//! stages.prod.methods."/b/GET": unknown route `/b`
//! stages.prod.methods."/a/POST": the route `/a` has no method `POST`
//! ```

pub(crate) mod config;
pub(crate) mod domain;
pub(crate) mod future;
mod layer;
pub(crate) mod service;
pub(crate) mod table;
mod template;

pub use self::domain::{BasePathMappingConfig, DomainConfig};
pub use self::future::{REQUEST_ID_HEADER, ResponseFuture};
pub use self::layer::RouteLayer;
pub use self::service::Route;
