//! `GatewayBuilder`: a config plus the pluggable parts, composed into a
//! `Gateway`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use super::config::Config;
use super::handle::*;
use super::resolve::resolve;
use super::service::Path;
use crate::auth::authorizer::Authorizer;
use crate::auth::sigv4::{self, CredentialStore};
use crate::auth::{self};
use crate::cache::{self, CacheStore, CacheTier};
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::context::PerEndpoint;
use crate::integration;
use crate::keys::{self, KeyStore};
use crate::mapping::MappingLayer;
use crate::plans::{CounterStore, InMemoryCounterStore, MeterLayer, PlanBook, PlanManager};
use crate::route::RouteLayer;
use crate::throttle::RateStore;
use crate::usage::{Reporter, UsageCounts, UsageLayer};

/// Builds a [`Gateway`]: a config plus the pluggable parts.
#[must_use]
pub struct GatewayBuilder {
    pub(super) config: Config,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) rate_store: Option<Arc<dyn RateStore>>,
    pub(super) key_store: Option<Arc<dyn KeyStore>>,
    pub(super) counter_store: Option<Arc<dyn CounterStore>>,
    pub(super) credential_store: Option<Arc<dyn CredentialStore>>,
    pub(super) authorizers: HashMap<String, Arc<dyn Authorizer>>,
    /// Lambda functions by name (`integration: { type: lambda }`).
    pub(super) lambdas: HashMap<String, crate::integration::LambdaFunction>,
    pub(super) aws_credentials: Option<Arc<crate::integration::AwsCredentials>>,
    pub(super) reporters: Vec<Reporter>,
    pub(super) aggregate: Option<Arc<dyn UsageCounts>>,
    pub(super) cache_tier: Option<CacheTier>,
    /// The stages' response caches, when a lifecycle keeps them across
    /// rebuilds (`None`: made here, one per stage).
    pub(super) cache_stores: Option<HashMap<Arc<str>, Arc<dyn CacheStore>>>,
    /// Builds a gateway that answers every request 403 `UNMAPPED_REQUEST`.
    pub(super) refuse_all: bool,
}

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

    /// Registers the Lambda function `name` that methods with
    /// `integration: { type: lambda, function: NAME }` call in process:
    /// any `Fn(ApiGatewayProxyRequest) -> impl Future<Output =
    /// Result<ApiGatewayProxyResponse, E>>` (the `aws_lambda_events` types a
    /// handler written for API Gateway already takes). See
    /// [`integration`](crate::integration#lambda-proxy-integrations).
    pub fn lambda<F, Fut, E>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(aws_lambda_events::apigw::ApiGatewayProxyRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<
                Output = Result<aws_lambda_events::apigw::ApiGatewayProxyResponse, E>,
            > + Send
            + 'static,
        E: Into<crate::body::BoxError>,
    {
        self.lambdas.insert(
            name.into(),
            crate::integration::LambdaFunction::new(handler),
        );
        self
    }

    /// Registers a Lambda function of any JSON under `name`, as a function
    /// behind a non-proxy integration (`integration: { type: lambda,
    /// function: NAME, proxy: false }`) is: it gets the payload the
    /// method's request mapping made and answers the result; an error is
    /// the function throwing, its `Display` the `errorMessage` that
    /// integration responses select on. See
    /// [`LambdaFunction::json`](crate::integration::LambdaFunction::json).
    pub fn lambda_json<F, Fut, E>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, E>> + Send + 'static,
        E: Into<crate::body::BoxError>,
    {
        self.lambdas.insert(
            name.into(),
            crate::integration::LambdaFunction::json(handler),
        );
        self
    }

    /// The AWS credentials remote Lambda integrations (`integration: {
    /// type: lambda, arn }`) sign their `Invoke` calls with. Default: read
    /// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` each time a gateway is built; without either, a
    /// remote function's calls are 500 `Internal server error`, the reason
    /// logged.
    pub fn aws_credentials(mut self, credentials: crate::integration::AwsCredentials) -> Self {
        self.aws_credentials = Some(Arc::new(credentials));
        self
    }

    /// Keeps quota counters in `store` instead of in memory.
    pub fn counter_store(mut self, store: Arc<dyn CounterStore>) -> Self {
        self.counter_store = Some(store);
        self
    }

    /// Serves each stage from the response cache given here, by stage
    /// name (a lifecycle keeps its caches across rebuilds).
    pub(super) fn cache_stores(mut self, stores: HashMap<Arc<str>, Arc<dyn CacheStore>>) -> Self {
        self.cache_stores = Some(stores);
        self
    }

    /// Builds a [`Lifecycle`](super::Lifecycle) instead: the config's one API
    /// (id and name: `name`, default `tollgate`) with one deployment of its
    /// definition and its stages and domains, each stage served by a
    /// gateway of its own, all of them on the stores, reporters and
    /// authorizers set here. The config's `plans`, `keys`, `credentials`,
    /// `throttle` and `*_options` are the lifecycle's, for every API.
    ///
    /// Errors as [`build`](Self::build) would report them for the config.
    pub fn build_lifecycle(self) -> Result<super::Lifecycle, ConfigError> {
        self.config.validate()?;
        let clock = self.clock;
        let config = self.config;
        let rate_store = self
            .rate_store
            .unwrap_or_else(|| config.throttle_options.memory_store(clock.clone(), 0));
        let key_store = match self.key_store {
            Some(store) => store,
            None => {
                let hasher = config.api_key_options.hasher();
                Arc::new(keys::load_keys(&config.keys, &hasher, clock.utc())?)
            }
        };
        let parts = super::lifecycle::Parts {
            base: config.clone(),
            clock,
            rate_store,
            key_store,
            counter_store: self
                .counter_store
                .unwrap_or_else(|| Arc::new(InMemoryCounterStore::new())),
            credential_store: self.credential_store,
            authorizers: self.authorizers,
            lambdas: self.lambdas,
            aws_credentials: self.aws_credentials,
            reporters: self.reporters,
            aggregate: self.aggregate,
            cache_tier: self.cache_tier,
            caches: Mutex::default(),
        };
        super::Lifecycle::from_parts(config, parts).map_err(|e| {
            // Each line of a lifecycle error is `path: message`.
            let issues = e
                .message()
                .lines()
                .map(|line| match line.split_once(": ") {
                    Some((path, message)) if !path.contains(' ') => {
                        crate::config::ConfigIssue::new(path, message)
                    }
                    _ => crate::config::ConfigIssue::new("", line),
                })
                .collect();
            ConfigError::new(crate::config::ConfigErrorKind::Invalid, issues)
        })
    }

    /// Validates the config and resolves every method's settings, then has
    /// each capability build its layer from its slice.
    pub fn build(self) -> Result<Gateway, ConfigError> {
        if !self.config.apis.is_empty() {
            return Err(ConfigError::new(
                crate::config::ConfigErrorKind::Unsupported,
                vec![crate::config::ConfigIssue::new(
                    "apis",
                    "a config of several APIs is served by a lifecycle \
                     (`GatewayBuilder::build_lifecycle`)",
                )],
            ));
        }
        let mut resolved = resolve(&self.config)?;
        let canaries: Vec<crate::config::ConfigIssue> = self
            .config
            .stages
            .iter()
            .filter(|(_, s)| s.canary.is_some())
            .map(|(name, _)| {
                let mut path = String::from("stages");
                crate::config::push_field(&mut path, name);
                path.push_str(".canary");
                crate::config::ConfigIssue::new(
                    path,
                    "a canary is served by a lifecycle (`GatewayBuilder::build_lifecycle`; \
                     the petstore serves one when its config has a canary, or with `--watch`)",
                )
            })
            .collect();
        if !canaries.is_empty() {
            return Err(ConfigError::new(
                crate::config::ConfigErrorKind::Unsupported,
                canaries,
            ));
        }
        SystemClock::warm_up();
        let config = &self.config;
        let clock = &self.clock;
        let responses = &resolved.responses;
        let endpoints = &resolved.routes;
        let route = RouteLayer::with_max_body(
            endpoints,
            responses.clone(),
            usize::try_from(resolved.edge_limits.max_body).unwrap_or(usize::MAX),
        );
        let plans = PlanBook::new(std::mem::take(&mut resolved.plans));
        let trusted: Arc<[IpNet]> = Arc::from(resolved.limits.trusted_proxies.clone());
        let throttle = config.throttle_options.layer(
            std::mem::take(&mut resolved.limits),
            plans.clone(),
            self.rate_store,
            clock.clone(),
            endpoints.endpoint_count(),
            responses.clone(),
        );
        let hasher = config.api_key_options.hasher();
        let key_store = match self.key_store {
            Some(store) => store,
            None => Arc::new(keys::load_keys(&config.keys, &hasher, clock.utc())?),
        };
        let keys = config.api_key_options.layer(
            key_store.clone(),
            plans.clone(),
            clock.clone(),
            responses.clone(),
        );
        let counter_store = self
            .counter_store
            .unwrap_or_else(|| Arc::new(InMemoryCounterStore::new()));
        let meter = MeterLayer::for_gateway(plans.clone(), counter_store.clone())
            .clock(clock.clone())
            .responses(responses.clone())
            .alerts_to(self.reporters.clone());
        let sigv4 = sigv4::layer(
            config.sigv4.as_ref(),
            &config.credentials,
            self.credential_store,
            clock.clone(),
            responses.clone(),
            resolved.body_timeout,
        );
        let authorizers = auth::layer(
            &config.authorizers,
            &self.authorizers,
            clock,
            responses.clone(),
        )?;
        let stages = config
            .stages
            .iter()
            .map(|(n, s)| (n.as_str(), s.cache_capacity));
        let cache_stores = match self.cache_stores {
            Some(stores) => stores,
            None => cache::stage_stores(stages, self.cache_tier.as_ref()),
        };
        let cache = cache::layer(
            endpoints.endpoints(),
            &cache_stores,
            clock.clone(),
            responses.clone(),
        );
        let mappings = PerEndpoint::build(endpoints.endpoints(), |e| {
            let s = e.settings();
            s.mapping
                .clone()
                .map(|mapping| crate::mapping::MethodMapping {
                    mapping,
                    binary: s.binary_media_types.clone(),
                })
        });
        let mapping = MappingLayer::for_gateway(mappings, responses.clone(), trusted.clone());
        let validation = crate::validate::ValidationLayer::for_gateway(
            PerEndpoint::build(endpoints.endpoints(), |e| e.settings().validation.clone()),
            responses.clone(),
            resolved.validation_limits.0,
            resolved.validation_limits.1,
        );
        // Every function a method names must be registered.
        let missing: Vec<crate::config::ConfigIssue> = endpoints
            .endpoints()
            .filter_map(|e| match &e.settings().integration {
                integration::IntegrationConfig::Lambda {
                    function: Some(function),
                    ..
                } if !self.lambdas.contains_key(function) => Some(crate::config::ConfigIssue::new(
                    format!(
                        "stages.{}.methods.\"{}/{}\".integration.function",
                        e.stage(),
                        e.resource(),
                        e.method().map_or("ANY", |m| m.as_str())
                    ),
                    format!(
                        "no Lambda function `{}` is registered (GatewayBuilder::lambda, or lambda_json for a function of any JSON)",
                        function.escape_debug()
                    ),
                )),
                _ => None,
            })
            .collect();
        if !missing.is_empty() {
            return Err(crate::config::ConfigError::new(
                crate::config::ConfigErrorKind::Invalid,
                missing,
            ));
        }
        let integrations = integration::per_endpoint(
            endpoints.endpoints(),
            responses,
            &integration::Lambdas {
                functions: &self.lambdas,
                trusted: trusted.clone(),
                limits: crate::body::BodyLimits {
                    max: usize::try_from(resolved.edge_limits.max_body).unwrap_or(usize::MAX),
                    timeout: Some(resolved.body_timeout),
                },
                api: resolved.name.clone(),
                credentials: self
                    .aws_credentials
                    .clone()
                    .or_else(|| integration::AwsCredentials::from_env().map(Arc::new)),
            },
        );
        let edge = Edge {
            trusted: trusted.clone(),
            api: resolved.name.clone(),
            responses: responses.clone(),
            max_body: resolved.edge_limits.max_body,
            max_concurrency: resolved
                .edge_limits
                .max_concurrency
                .map(|max| (max, Arc::default())),
        };
        let usage = UsageLayer::build(
            self.reporters,
            clock.clone(),
            resolved.name.clone(),
            trusted,
            responses.clone(),
        );
        // How each endpoint's requests go (see `GatewayService`), by index.
        let mut paths = vec![Path::Layered; endpoints.endpoint_count()];
        for e in endpoints.endpoints() {
            let i = e.index();
            let path = if e.settings().authorization != auth::Authorization::None {
                Path::Layered
            } else if cache.covers(i)
                || validation.covers(i)
                || mapping.covers(i)
                || integrations.as_ref().is_some_and(|all| all.at(i).is_some())
            {
                Path::Tail
            } else {
                Path::Inline
            };
            if let Some(slot) = paths.get_mut(i) {
                *slot = path;
            }
        }
        let source = Arc::new(Mutex::new(self.config.clone()));
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
                validation,
                integrations,
                usage,
                paths: paths.into(),
                aggregate: self.aggregate,
                cache_stores,
                key_store,
                counter_store,
                hasher,
                plans: PlanManager {
                    book: plans,
                    source,
                },
                clock: self.clock,
                edge,
                refuse_all: self.refuse_all,
            }),
        })
    }
}
