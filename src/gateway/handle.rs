//! `Gateway`: the built gateway, a tower `Layer`, and its run-time handles
//! (key and plan managers, usage, cache flushes, reporters).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tower::Layer;

use super::builder::GatewayBuilder;
use super::config::Config;
use super::resolve::Resolved;
use super::service::*;
use crate::auth::authorizer::AuthorizerLayer;
use crate::auth::sigv4::SigV4Layer;
use crate::cache::{CacheLayer, CacheStore};
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::context::{Endpoint, PerEndpoint};
use crate::integration::Integration;
use crate::keys::{self, ApiKeyLayer, KeyHasher, KeyManager, KeyStore};
use crate::mapping::MappingLayer;
use crate::plans::{CounterStore, MeterLayer, PlanManager, UsageRecords};
use crate::response::GatewayResponses;
use crate::route::RouteLayer;
use crate::route::table::Lookup;
use crate::store::StoreError;
use crate::throttle::ThrottleLayer;
use crate::usage::{UsageCounts, UsageLayer};

/// An API gateway built from one [`Config`]: wrap any service with it.
///
/// Cloning is a pointer copy. See the [module docs](crate::gateway).
#[derive(Clone)]
pub struct Gateway {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) config: Config,
    pub(super) resolved: Resolved,
    pub(super) route: RouteLayer,
    pub(super) sigv4: SigV4Layer,
    pub(super) authorizers: AuthorizerLayer,
    pub(super) keys: ApiKeyLayer,
    pub(super) throttle: ThrottleLayer,
    pub(super) meter: MeterLayer,
    pub(super) cache: CacheLayer,
    pub(super) mapping: MappingLayer,
    pub(super) validation: crate::validate::ValidationLayer,
    pub(super) integrations: Option<PerEndpoint<Integration>>,
    pub(super) usage: UsageLayer,
    /// How each endpoint's requests go, by endpoint index.
    pub(super) paths: Box<[Path]>,
    pub(super) aggregate: Option<Arc<dyn UsageCounts>>,
    pub(super) cache_stores: HashMap<Arc<str>, Arc<dyn CacheStore>>,
    pub(super) key_store: Arc<dyn KeyStore>,
    pub(super) counter_store: Arc<dyn CounterStore>,
    pub(super) hasher: KeyHasher,
    pub(super) plans: PlanManager,
    pub(super) clock: Arc<dyn Clock>,
    /// What the front door's steps (the resource policy) read.
    pub(super) edge: Edge,
    /// Answers every request 403 `UNMAPPED_REQUEST` (a lifecycle's
    /// gateway for what no API takes).
    pub(super) refuse_all: bool,
}

/// What the front door's steps read: trusted proxies, the API's name (in
/// the policy's message) and the gateway responses.
pub(super) struct Edge {
    pub(super) trusted: Arc<[ipnet::IpNet]>,
    pub(super) api: Arc<str>,
    pub(super) responses: crate::response::GatewayResponses,
    /// `limits.max_body`: a larger declared `Content-Length` is a 413.
    pub(super) max_body: u64,
    /// `limits.max_concurrency`, and the requests in flight now.
    pub(super) max_concurrency: Option<(usize, Arc<std::sync::atomic::AtomicUsize>)>,
}

/// One request in flight, counted in [`Edge::max_concurrency`] until it is
/// dropped (with the response future: the response head has gone out, or
/// the client went away).
pub(super) struct InFlight(Arc<std::sync::atomic::AtomicUsize>);

impl InFlight {
    /// Counts one more request, unless `max` are in flight already.
    pub(super) fn enter(max: usize, count: &Arc<std::sync::atomic::AtomicUsize>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        let before = count.fetch_add(1, Ordering::AcqRel);
        if before >= max {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.shared.resolved.name)
            .field("stages", &self.shared.resolved.routes.stages.len())
            .field("routes", &self.shared.resolved.routes.routes.len())
            .field("clock", &self.shared.clock)
            .finish_non_exhaustive()
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
            lambdas: HashMap::new(),
            aws_credentials: None,
            reporters: Vec::new(),
            aggregate: None,
            cache_tier: None,
            cache_stores: None,
            refuse_all: false,
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
        GatewayService {
            shared: self.shared.clone(),
            inner,
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
    /// before this returns (see [`Reporter::shutdown`](crate::usage::Reporter::shutdown)). Call it on the way out.
    /// Authorizers deliver what they hold back first
    /// ([`Authorizer::flush`](crate::auth::authorizer::Authorizer::flush):
    /// a `threescale` authorizer's counts of cached calls).
    pub async fn shutdown_reporters(&self) {
        self.shared.authorizers.flush().await;
        for r in self.shared.usage.reporters() {
            r.shutdown().await;
        }
    }

    /// Creates, replaces and deletes usage plans while the gateway serves.
    pub fn plans(&self) -> &PlanManager {
        &self.shared.plans
    }

    /// The authorizer layer the gateway applies (for its failure count).
    pub fn authorizers(&self) -> &AuthorizerLayer {
        &self.shared.authorizers
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
        self.shared.resolved.routes.endpoints()
    }

    /// The endpoint a request with `method` and raw `path` (`/prod/pets/1`)
    /// would reach: `None` where the gateway would answer 404, 405 or 400.
    /// This is the route layer's own lookup.
    pub fn find_endpoint(&self, method: &http::Method, path: &str) -> Option<&Arc<Endpoint>> {
        self.find_endpoint_on(method, None, path)
    }

    /// The same for a request with `Host: host`: a custom domain's base
    /// path mappings first (`domains`), then the execute-api form. `None`
    /// also where the gateway would answer 403 `UNMAPPED_REQUEST`.
    pub fn find_endpoint_on(
        &self,
        method: &http::Method,
        host: Option<&str>,
        path: &str,
    ) -> Option<&Arc<Endpoint>> {
        if self.shared.refuse_all {
            return None;
        }
        match self.shared.route.table().lookup_request(method, host, path) {
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
