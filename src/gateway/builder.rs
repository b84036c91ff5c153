use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::config::{ApiKeySource, Config, IntegrationConfig};
use super::validate::{self, Resolved};
use crate::auth::authorizer::{Authorize, Authorizer, AuthorizerLayer, Configured};
use crate::auth::sigv4::{
    self, Credential, CredentialStore, DEFAULT_MAX_BODY, InMemoryCredentialStore, SigV4,
    SigV4Layer, Verifier, VerifierSettings,
};
use crate::body::{Body, BoxError};
use crate::cache::{
    Cache, CacheLayer, CachePolicy, CacheStore, DEFAULT_CACHE_CAPACITY, MokaCacheStore,
    TieredCacheStore,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue, PathBuf};
use crate::context::Endpoint;
use crate::integration::{HttpIntegration, Integration, Integrations, MockIntegration};
use crate::keys::{
    self, ApiKey, ApiKeyLayer, InMemoryKeyStore, KeyHasher, KeyManager, KeySource, KeyStore,
};
use crate::mapping::{MappingLayer, MappingService};
use crate::plans::{
    CounterStore, InMemoryCounterStore, Meter, MeterLayer, PlanBook, PlanManager, UsageRecords,
};
use crate::response::GatewayResponses;
use crate::route::table::Lookup;
use crate::route::{self, Route, RouteLayer};
use crate::store::{FailMode, StoreError};
use crate::throttle::{DEFAULT_MAX_KEYS, InMemoryRateStore, RateStore, Throttle, ThrottleLayer};
use crate::usage::{Reporter, Usage, UsageCounts, UsageLayer};

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
    sigv4: SigV4Layer,
    authorizers: AuthorizerLayer,
    keys: ApiKeyLayer,
    throttle: ThrottleLayer,
    meter: MeterLayer,
    cache: CacheLayer,
    mapping: MappingLayer,
    integrations: Option<Arc<[Option<Integration>]>>,
    usage: UsageLayer,
    aggregate: Option<Arc<dyn UsageCounts>>,
    cache_stores: HashMap<Arc<str>, Arc<dyn CacheStore>>,
    key_store: Arc<dyn KeyStore>,
    counter_store: Arc<dyn CounterStore>,
    hasher: KeyHasher,
    plans: PlanManager,
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
    key_store: Option<Arc<dyn KeyStore>>,
    counter_store: Option<Arc<dyn CounterStore>>,
    credential_store: Option<Arc<dyn CredentialStore>>,
    authorizers: HashMap<String, Arc<dyn Authorizer>>,
    reporters: Vec<Reporter>,
    aggregate: Option<Arc<dyn UsageCounts>>,
    cache_tier: Option<CacheTier>,
}

/// Makes the shared cache tier of one stage.
type CacheTier = Box<dyn Fn(&str) -> Arc<dyn CacheStore> + Send + Sync>;

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Reports every request to `reporter` (call again for more): a
    /// [`UsageLayer`] goes outermost. See [`usage`](crate::usage).
    pub fn reporter(mut self, reporter: Reporter) -> Self {
        self.reporters.push(reporter);
        self
    }

    /// Lets [`Gateway::usage`] answer `get_usage` for plans without a quota
    /// from `aggregate` (feed it with a [`Reporter`] too): an
    /// [`AggregatingSink`](crate::usage::AggregatingSink), or a
    /// `RedisUsageSink` that every gateway adds to.
    pub fn usage_records_from(mut self, aggregate: Arc<dyn UsageCounts>) -> Self {
        self.aggregate = Some(aggregate);
        self
    }

    /// Puts a shared second tier behind each stage's in-memory response
    /// cache: `tier(stage)` makes it (a `RedisCacheStore` for the stage, say).
    /// See [`TieredCacheStore`](crate::cache::TieredCacheStore).
    pub fn cache_tier(
        mut self,
        tier: impl Fn(&str) -> Arc<dyn CacheStore> + Send + Sync + 'static,
    ) -> Self {
        self.cache_tier = Some(Box::new(tier));
        self
    }

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

    /// Keeps API keys in `store` instead of in memory. The config's `keys`
    /// are not loaded into it (that would wait on the store): call
    /// [`Gateway::load_config_keys`] once built.
    pub fn key_store(mut self, store: Arc<dyn KeyStore>) -> Self {
        self.key_store = Some(store);
        self
    }

    /// Looks SigV4 credentials up in `store` instead of the config's `credentials`.
    pub fn credential_store(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.credential_store = Some(store);
        self
    }

    /// Registers the implementation of the config's authorizer `name`.
    pub fn authorizer(mut self, name: impl Into<String>, authorizer: impl Authorizer) -> Self {
        self.authorizers.insert(name.into(), Arc::new(authorizer));
        self
    }

    /// Keeps quota counters in `store` instead of in memory.
    pub fn counter_store(mut self, store: Arc<dyn CounterStore>) -> Self {
        self.counter_store = Some(store);
        self
    }

    /// Validates the config and resolves every method's settings.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        let mut resolved = validate::resolve(&self.config)?;
        SystemClock::warm_up();
        let reporting = !self.reporters.is_empty();
        let route = RouteLayer::reporting(&resolved, reporting);
        let options = &self.config.throttle_options;
        let rate_store = self.rate_store.unwrap_or_else(|| {
            let max = options.max_tracked_keys.unwrap_or(DEFAULT_MAX_KEYS);
            let endpoints = resolved.endpoints().count();
            Arc::new(
                InMemoryRateStore::with_max_keys(self.clock.clone(), max)
                    .on_capacity(options.on_capacity.unwrap_or_default())
                    .with_endpoint_slots(endpoints),
            )
        });
        let plans = PlanBook::new(std::mem::take(&mut resolved.plans));
        let throttle = ThrottleLayer::for_gateway(
            std::mem::take(&mut resolved.limits),
            plans.clone(),
            rate_store,
        )
        .responses(resolved.responses.clone())
        .headers(options.headers.unwrap_or(true))
        .fail_mode(options.fail_mode.unwrap_or_default());

        let key_options = &self.config.api_key_options;
        let hasher = key_options
            .pepper
            .clone()
            .map_or_else(KeyHasher::sha256, KeyHasher::peppered);
        let key_store = match self.key_store {
            Some(store) => store,
            None => {
                let store = InMemoryKeyStore::new();
                let now = self.clock.utc();
                let mut issues = Vec::new();
                for (i, k) in self.config.keys.iter().enumerate() {
                    let loaded =
                        keys::prepare(k.into(), &hasher, now).and_then(|(d, r)| store.insert(d, r));
                    if let Err(e) = loaded {
                        issues.push(ConfigIssue::new(
                            PathBuf::root().field("keys").index(i).as_str(),
                            e.to_string(),
                        ));
                    }
                }
                if !issues.is_empty() {
                    return Err(ConfigError::new(ConfigErrorKind::Invalid, issues));
                }
                Arc::new(store)
            }
        };
        let source = match (
            key_options.source.unwrap_or_default(),
            &key_options.query,
            &key_options.header,
        ) {
            (ApiKeySource::Authorizer, ..) => KeySource::authorizer(),
            (_, Some(q), _) => KeySource::query(q.as_str()),
            (_, None, Some(h)) => match HeaderName::from_bytes(h.as_bytes()) {
                Ok(name) => KeySource::header(name),
                Err(_) => KeySource::default(),
            },
            _ => KeySource::default(),
        };
        let keys = ApiKeyLayer::for_gateway(key_store.clone(), plans.clone())
            .source(source)
            .hasher(hasher.clone())
            .clock(self.clock.clone())
            .responses(resolved.responses.clone())
            .fail_mode(key_options.fail_mode.unwrap_or(FailMode::Closed));

        let counter_store = self
            .counter_store
            .unwrap_or_else(|| Arc::new(InMemoryCounterStore::new()));
        let meter = MeterLayer::for_gateway(plans.clone(), counter_store.clone())
            .clock(self.clock.clone())
            .responses(resolved.responses.clone());

        let sigv4 = {
            let verifier = self.config.sigv4.as_ref().map(|c| {
                let store = self.credential_store.clone().unwrap_or_else(|| {
                    let store = InMemoryCredentialStore::new();
                    for cred in &self.config.credentials {
                        let principal = cred
                            .principal
                            .clone()
                            .unwrap_or_else(|| cred.access_key_id.clone());
                        store.insert(
                            Credential::new(
                                cred.access_key_id.clone(),
                                cred.secret_access_key.clone(),
                                principal,
                            )
                            .allow_cache_invalidation(cred.can_invalidate_cache),
                        );
                    }
                    Arc::new(store)
                });
                let mut settings = VerifierSettings::new(c.region.clone(), c.service.clone());
                settings.max_skew = c.max_skew;
                settings.unsigned_payload = c.unsigned_payload;
                settings.explain_mismatch = c.explain_signature_errors;
                Verifier::new(settings, store, self.clock.clone())
            });
            let max_body = self
                .config
                .sigv4
                .as_ref()
                .and_then(|c| c.max_body)
                .map_or(DEFAULT_MAX_BODY, |b| {
                    usize::try_from(b.0).unwrap_or(usize::MAX)
                });
            SigV4Layer::for_gateway(
                verifier,
                resolved.responses.clone(),
                max_body,
                Some(resolved.body_timeout),
            )
        };
        let mut configured = HashMap::new();
        let mut missing = Vec::new();
        for (name, a) in &self.config.authorizers {
            match self.authorizers.get(name) {
                Some(imp) => {
                    let ttl = Duration::from_secs(u64::from(a.ttl.unwrap_or(300)));
                    let fail_mode = a.fail_mode.unwrap_or(FailMode::Closed);
                    let c = Configured::new(
                        imp.clone(),
                        a.identity_sources.clone(),
                        ttl,
                        fail_mode,
                        self.clock.clone(),
                    );
                    configured.insert(Arc::<str>::from(name.as_str()), c);
                }
                None => missing.push(ConfigIssue::new(
                    PathBuf::root().field("authorizers").field(name).as_str(),
                    "no implementation is registered for it (GatewayBuilder::authorizer)",
                )),
            }
        }
        if !missing.is_empty() {
            return Err(ConfigError::new(ConfigErrorKind::Invalid, missing));
        }
        let authorizers = AuthorizerLayer::new(configured, resolved.responses.clone());
        let cache_stores: HashMap<Arc<str>, Arc<dyn CacheStore>> = self
            .config
            .stages
            .iter()
            .map(|(name, stage)| {
                let capacity = stage.cache_capacity.map_or(DEFAULT_CACHE_CAPACITY, |c| c.0);
                let mut store: Arc<dyn CacheStore> = Arc::new(MokaCacheStore::new(capacity));
                if let Some(tier) = &self.cache_tier {
                    store = Arc::new(TieredCacheStore::new(store, tier(name)));
                }
                (Arc::<str>::from(name.as_str()), store)
            })
            .collect();
        let mut by_endpoint = Vec::new();
        for e in resolved.endpoints() {
            if by_endpoint.len() <= e.index() {
                by_endpoint.resize(e.index() + 1, None);
            }
            let settings = &e.settings().cache;
            if settings.enabled {
                by_endpoint[e.index()] = cache_stores.get(e.stage()).map(|store| {
                    let policy = CachePolicy::from_settings(settings, e.method());
                    (store.clone(), Arc::new(policy))
                });
            }
        }
        let cache =
            CacheLayer::for_gateway(by_endpoint, self.clock.clone(), resolved.responses.clone());
        let endpoint_count = resolved
            .endpoints()
            .map(|e| e.index() + 1)
            .max()
            .unwrap_or(0);
        let mut mappings = vec![None; endpoint_count];
        let mut integrations: Vec<Option<Integration>> = vec![None; endpoint_count];
        // One pooled client for every HTTP integration of the gateway.
        let client = crate::integration::new_client();
        for e in resolved.endpoints() {
            let settings = e.settings();
            mappings[e.index()].clone_from(&settings.mapping);
            integrations[e.index()] = match &settings.integration {
                IntegrationConfig::Service => None,
                IntegrationConfig::Http {
                    url,
                    base,
                    timeout_ms,
                } => {
                    // Validation has checked the URL.
                    HttpIntegration::from_config(client.clone(), url.as_deref(), base.as_deref())
                        .ok()
                        .map(|h| {
                            let timeout = timeout_ms
                                .map_or(crate::integration::DEFAULT_TIMEOUT, Duration::from_millis);
                            Integration::Http(Box::new(
                                h.timeout(timeout).responses(resolved.responses.clone()),
                            ))
                        })
                }
                IntegrationConfig::Mock {
                    status,
                    headers,
                    body,
                } => {
                    let status = status
                        .and_then(|s| http::StatusCode::from_u16(s).ok())
                        .unwrap_or(http::StatusCode::OK);
                    let mut mock = MockIntegration::new(status).body(body.clone());
                    for (n, v) in headers {
                        if let (Ok(n), Ok(v)) = (
                            http::HeaderName::from_bytes(n.as_bytes()),
                            http::HeaderValue::from_str(v),
                        ) {
                            mock = mock.header(n, v);
                        }
                    }
                    Some(Integration::Mock(mock))
                }
            };
        }
        let mapping = MappingLayer::for_gateway(
            mappings,
            resolved.responses.clone(),
            Arc::from(resolved.limits.trusted_proxies.clone()),
        );
        let integrations = integrations
            .iter()
            .any(Option::is_some)
            .then(|| Arc::from(integrations));
        let usage = UsageLayer::build(
            self.reporters,
            self.clock.clone(),
            resolved.name.clone(),
            Arc::from(resolved.limits.trusted_proxies.clone()),
            resolved.responses.clone(),
        );
        let plan_config = self.config.clone();
        Ok(Gateway {
            shared: Arc::new(Shared {
                config: self.config,
                resolved,
                route,
                sigv4,
                authorizers,
                keys,
                throttle,
                meter,
                cache,
                mapping,
                integrations,
                usage,
                aggregate: self.aggregate,
                cache_stores,
                key_store,
                counter_store,
                hasher,
                plans: PlanManager {
                    book: plans,
                    config: Arc::new(Mutex::new(plan_config)),
                },
                clock: self.clock,
            }),
        })
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
            key_store: None,
            counter_store: None,
            credential_store: None,
            authorizers: HashMap::new(),
            reporters: Vec::new(),
            aggregate: None,
            cache_tier: None,
        }
    }

    /// Reads a YAML or JSON config file and builds a gateway from it.
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Self, ConfigError> {
        Self::new(Config::from_path(path)?)
    }

    /// Wraps `inner` in the gateway's stack: route, SigV4, custom
    /// authorizer, API key, throttle, meter (quota), cache, mapping, then
    /// each method's integration (`inner` for methods without one).
    pub fn service<S>(&self, inner: S) -> GatewayService<S> {
        let s = &self.shared;
        let timing = s.usage.is_on().then(|| s.clock.clone());
        let integrated = Integrations::new(inner, s.integrations.clone(), timing);
        let mapped = s.mapping.layer(integrated);
        let metered = s.meter.layer(s.cache.layer(mapped));
        let keyed = s.keys.layer(s.throttle.layer(metered));
        let stack = s.route.layer(s.sigv4.layer(s.authorizers.layer(keyed)));
        GatewayService {
            inner: s.usage.layer(stack),
        }
    }

    /// Removes every cached response of `stage` (API Gateway's "flush stage
    /// cache"). `false` when the gateway has no such stage.
    pub async fn flush_cache(&self, stage: &str) -> Result<bool, StoreError> {
        match self.shared.cache_stores.get(stage) {
            Some(store) => store.flush().await.map(|()| true),
            None => Ok(false),
        }
    }

    /// Manages the gateway's API keys (create, import, rotate, disable, ...).
    pub fn key_manager(&self) -> KeyManager {
        KeyManager::new(
            self.shared.key_store.clone(),
            self.shared.hasher.clone(),
            self.shared.clock.clone(),
        )
        .with_plans(self.shared.plans.book.clone())
    }

    /// Loads the config's `keys` into the key store; needed only with a
    /// store given to [`GatewayBuilder::key_store`] (the default store has them).
    ///
    /// A key already in the store (same digest) is left as it is: processes
    /// sharing a store (Redis) agree on its id, so on its counters.
    pub async fn load_config_keys(&self) -> Result<(), StoreError> {
        let manager = self.key_manager();
        let now = self.shared.clock.utc();
        for k in &self.shared.config.keys {
            let (digest, _) = keys::prepare(k.into(), &self.shared.hasher, now)?;
            if self.shared.key_store.get(&digest).await?.is_some() {
                continue;
            }
            manager.import(k.into()).await?;
        }
        Ok(())
    }

    /// Usage records of the gateway's plans (GetUsage, UpdateUsage).
    pub fn usage(&self) -> UsageRecords {
        let records = UsageRecords::new(
            self.shared.counter_store.clone(),
            self.shared.key_store.clone(),
            self.shared.plans.book.clone(),
            self.shared.clock.clone(),
        );
        match &self.shared.aggregate {
            Some(a) => records.with_aggregate(a.clone()),
            None => records,
        }
    }

    /// Shuts every usage reporter down: each delivers what it has queued
    /// before this returns (see [`Reporter::shutdown`]). Call it on the way out.
    pub async fn shutdown_reporters(&self) {
        for r in self.shared.usage.reporters() {
            r.shutdown().await;
        }
    }

    /// Creates, replaces and deletes usage plans while the gateway serves.
    pub fn plans(&self) -> &PlanManager {
        &self.shared.plans
    }

    /// The API key layer the gateway applies (for its store error count).
    pub fn api_keys(&self) -> &ApiKeyLayer {
        &self.shared.keys
    }

    /// The meter (quota) layer the gateway applies.
    pub fn meter(&self) -> &MeterLayer {
        &self.shared.meter
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

/// The layers below routing and SigV4, innermost last.
type Stack<S> = Authorize<ApiKey<Throttle<Meter<Cache<MappingService<Integrations<S>>>>>>>;

/// A service wrapped by a [`Gateway`]. Clone it freely: clones share every limit and cache.
#[derive(Debug, Clone)]
pub struct GatewayService<S> {
    inner: Usage<Route<SigV4<Stack<S>>>>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GatewayService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ResB>;

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
    pub struct ResponseFuture<S, ResB>
    where
        S: Service<Request<Body>, Response = Response<ResB>>,
        S: Clone,
        S: Send,
        S: 'static,
        S::Future: Send,
        S::Future: 'static,
        S::Error: Send,
        S::Error: 'static,
        ResB: http_body::Body<Data = Bytes>,
        ResB: Send,
        ResB: 'static,
        ResB::Error: Into<BoxError>,
    {
        #[pin]
        inner: crate::usage::ResponseFuture<route::ResponseFuture<sigv4::ResponseFuture<Stack<S>, Body>>>,
    }
}

impl<S, ResB> Future for ResponseFuture<S, ResB>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
