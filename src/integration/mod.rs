//! Integrations: where a request goes once every layer has let it through.
//!
//! - **Function**: any tower service. It is what [`Gateway::service`](crate::Gateway::service)
//!   wraps, and what methods without an `integration` setting (or with
//!   `integration: { type: service }`) call.
//! - **HTTP** ([`HttpIntegration`]): a reverse proxy to an upstream URL
//!   template (`http://{stageVariables.host}/pets/{petId}`, `{proxy}` for a
//!   greedy parameter) or a base URL the request path is appended to; pooled
//!   connections (hyper-util), hop-by-hop headers stripped both ways,
//!   `X-Forwarded-For`/`-Proto`/`-Host` added, bodies streamed, a timeout
//!   (29 s by default) giving 504 `INTEGRATION_TIMEOUT`, a failed connection
//!   502 `INTEGRATION_FAILURE`. Plain `http://` only: no TLS connector is built in.
//! - **Mock** ([`MockIntegration`]): a fixed status, headers and body.
//!
//! In a config, a stage's `settings` or a method override says which:
//!
//! ```yaml
//! settings:
//!   integration: { type: http, base: "http://{stageVariables.backend}", timeout_ms: 5000 }
//! methods:
//!   /pets/{petId}/GET: { integration: { type: http, url: "http://10.0.0.5/pets/{petId}" } }
//!   /health/GET: { integration: { type: mock, status: 200, body: "ok" } }
//! ```
//!
//! ```
//! use http::{Request, StatusCode};
//! use tollgate::integration::MockIntegration;
//! use tollgate::Body;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mock = MockIntegration::new(StatusCode::ACCEPTED).body("queued");
//! let res = mock.oneshot(Request::post("/jobs").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(res.status(), StatusCode::ACCEPTED);
//! # }
//! ```

mod config;
mod dispatch;
mod http;
mod mock;

pub use self::config::IntegrationConfig;
pub(crate) use self::config::per_endpoint;
pub(crate) use self::dispatch::Integration;
pub use self::dispatch::{Integrations, ResponseFuture};
pub(crate) use self::http::new_client;
pub use self::http::{DEFAULT_TIMEOUT, HttpIntegration, UrlTemplateError};
pub use self::mock::MockIntegration;
