use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::config::{Authorization, Config};
use super::error::{ConfigError, ConfigErrorKind, ConfigIssue, PathBuf};
use super::validate::{self, Resolved};
use crate::body::{Body, BoxError};
use crate::clock::{Clock, SystemClock};
use crate::context::Endpoint;
use crate::response::GatewayResponses;
use crate::route::table::Lookup;
use crate::route::{self, Route, RouteLayer};
use crate::throttle::{
    self, DEFAULT_MAX_KEYS, InMemoryRateStore, RateStore, Throttle, ThrottleLayer,
};

/// An API gateway built from one [`Config`]: wrap any service with it.
///
/// Cloning is a pointer copy. See the [module docs](crate::gateway).
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    resolved: Resolved,
    route: RouteLayer,
    throttle: ThrottleLayer,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.shared.resolved.name)
            .field("stages", &self.shared.resolved.stages.len())
            .field("routes", &self.shared.resolved.routes.len())
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Gateway`]: a config plus the pluggable parts.
#[must_use]
pub struct GatewayBuilder {
    config: Config,
    clock: Arc<dyn Clock>,
    rate_store: Option<Arc<dyn RateStore>>,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Reads the time from `clock` instead of the system clock (tests use a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keeps throttle buckets in `store` instead of in memory (for example
    /// in Redis, shared by every process).
    pub fn rate_store(mut self, store: Arc<dyn RateStore>) -> Self {
        self.rate_store = Some(store);
        self
    }

    /// Validates the config and resolves every method's settings.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let mut resolved = validate::resolve(&self.config)?;
        refuse_unenforced(&resolved)?;
        warn_unenforced(&self.config, &resolved);
        let route = RouteLayer::from_resolved(&resolved);
        let options = &self.config.throttle_options;
        let rate_store = self.rate_store.unwrap_or_else(|| {
            let max = options.max_tracked_keys.unwrap_or(DEFAULT_MAX_KEYS);
            let endpoints = resolved.endpoints().count();
            Arc::new(
                InMemoryRateStore::with_max_keys(self.clock.clone(), max)
                    .with_endpoint_slots(endpoints),
            )
        });
        let throttle = ThrottleLayer::for_gateway(std::mem::take(&mut resolved.limits), rate_store)
            .responses(resolved.responses.clone())
            .headers(options.headers.unwrap_or(true))
            .fail_mode(options.fail_mode.unwrap_or_default());
        Ok(Gateway {
            shared: Arc::new(Shared {
                config: self.config,
                resolved,
                route,
                throttle,
                clock: self.clock,
            }),
        })
    }
}

/// Security settings this version cannot enforce yet fail the build: serving
/// such a method unprotected would be worse than not serving it.
fn refuse_unenforced(resolved: &Resolved) -> Result<(), ConfigError> {
    let mut issues = Vec::new();
    for e in resolved.endpoints() {
        let path = PathBuf::root()
            .field("stages")
            .field(e.stage())
            .field("methods")
            .field(&format!("{}/{}", e.resource(), e.method_name()));
        if e.settings().api_key_required {
            issues.push(ConfigIssue::new(
                path.field("api_key_required").as_str(),
                "API keys are not enforced by this version of tollgate yet; refusing to serve the method without them",
            ));
        }
        if e.settings().authorization != Authorization::None {
            issues.push(ConfigIssue::new(
                path.field("authorization").as_str(),
                "authorization is not enforced by this version of tollgate yet; refusing to serve the method without it",
            ));
        }
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::new(ConfigErrorKind::Unsupported, issues))
    }
}

fn warn_unenforced(config: &Config, resolved: &Resolved) {
    let throttled = config.throttle.is_some()
        || resolved
            .endpoints()
            .any(|e| e.settings().throttle.is_some());
    let cached = resolved.endpoints().any(|e| e.settings().cache.enabled);
    let plans = config
        .plans
        .values()
        .any(|p| p.throttle.is_some() || p.quota.is_some());
    if throttled || cached || plans {
        tracing::warn!(
            throttle = throttled,
            cache = cached,
            plans = plans,
            "the config sets limits or caching that this version of tollgate parses but does not apply yet"
        );
    }
}

impl Gateway {
    /// A gateway for `config` with the system clock.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        Self::builder(config).build()
    }

    /// A builder, to set a clock or stores before building.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            clock: Arc::new(SystemClock),
            rate_store: None,
        }
    }

    /// Reads a YAML or JSON config file and builds a gateway from it.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        Self::new(Config::from_path(path)?)
    }

    /// Wraps `inner` in the gateway's stack: route, then throttle, then `inner`.
    pub fn service<S>(&self, inner: S) -> GatewayService<S> {
        let throttled = self.shared.throttle.layer(inner);
        GatewayService {
            inner: self.shared.route.layer(throttled),
        }
    }

    /// The throttle layer the gateway applies (for its store error count).
    pub fn throttle(&self) -> &ThrottleLayer {
        &self.shared.throttle
    }

    /// The config the gateway was built from.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The gateway responses it answers with.
    pub fn responses(&self) -> &GatewayResponses {
        &self.shared.resolved.responses
    }

    /// The clock every layer reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.shared.clock
    }

    /// Every endpoint (stage, resource, method) with its resolved settings.
    pub fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.shared.resolved.endpoints()
    }

    /// The endpoint a request with `method` and raw `path` (`/prod/pets/1`)
    /// would reach: `None` where the gateway would answer 404, 405 or 400.
    /// This is the route layer's own lookup.
    pub fn find_endpoint(&self, method: &http::Method, path: &str) -> Option<&Arc<Endpoint>> {
        match self.shared.route.table().lookup(method, path) {
            Lookup::Found { endpoint, .. } => Some(endpoint),
            _ => None,
        }
    }

    /// The endpoint for `stage`, `resource` and `method` (`GET`, `ANY`), if declared.
    pub fn endpoint(&self, stage: &str, resource: &str, method: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints()
            .find(|e| e.stage() == stage && e.resource() == resource && e.method_name() == method)
    }
}

impl<S> Layer<S> for Gateway {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> GatewayService<S> {
        self.service(inner)
    }
}

/// A service wrapped by a [`Gateway`]. Clone it freely: clones share every limit and cache.
#[derive(Debug, Clone)]
pub struct GatewayService<S> {
    inner: Route<Throttle<S>>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GatewayService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Service::<Request<ReqB>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Response future of [`GatewayService`].
    pub struct ResponseFuture<S>
    where
        S: Service<Request<Body>>,
    {
        #[pin]
        inner: route::ResponseFuture<throttle::ResponseFuture<S, Body>>,
    }
}

impl<S, B> Future for ResponseFuture<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
