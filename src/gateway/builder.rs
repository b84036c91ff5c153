//! `GatewayBuilder`: a config plus the pluggable parts, composed into a
//! `Gateway`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderName;

use super::config::{ApiKeySource, Config, IntegrationConfig};
use super::handle::*;
use super::validate::{self};
use crate::auth::authorizer::{Authorizer, AuthorizerLayer, Configured};
use crate::auth::sigv4::{
    Credential, CredentialStore, DEFAULT_MAX_BODY, InMemoryCredentialStore, SigV4Layer, Verifier,
    VerifierSettings,
};
use crate::cache::{
    CacheLayer, CachePolicy, CacheStore, DEFAULT_CACHE_CAPACITY, MokaCacheStore, TieredCacheStore,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, ConfigErrorKind, ConfigIssue, PathBuf};
use crate::integration::{HttpIntegration, Integration, MockIntegration};
use crate::keys::{self, ApiKeyLayer, InMemoryKeyStore, KeyHasher, KeySource, KeyStore};
use crate::mapping::MappingLayer;
use crate::plans::{CounterStore, InMemoryCounterStore, MeterLayer, PlanBook, PlanManager};
use crate::route::RouteLayer;
use crate::store::FailMode;
use crate::throttle::{DEFAULT_MAX_KEYS, InMemoryRateStore, RateStore, ThrottleLayer};
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
    pub(super) reporters: Vec<Reporter>,
    pub(super) aggregate: Option<Arc<dyn UsageCounts>>,
    pub(super) cache_tier: Option<CacheTier>,
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
