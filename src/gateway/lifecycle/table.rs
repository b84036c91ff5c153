//! What requests read: one gateway per stage (and per canary) built from
//! the state, the domains and the execute-api form, swapped whole.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderName, Request};

use super::model::{LifecycleError, Sticky};
use super::state::State;
use crate::auth::authorizer::Authorizer;
use crate::auth::sigv4::CredentialStore;
use crate::cache::{CacheStore, CacheTier};
use crate::clock::Clock;
use crate::config::{Issues, PathBuf};
use crate::gateway::handle::Gateway;
use crate::gateway::{Config, GatewayBuilder, StageConfig};
use crate::keys::KeyStore;
use crate::plans::CounterStore;
use crate::route::domain::{BasePathMappingConfig, DomainConfig, Domains, Mapped};
use crate::route::service::request_host;
use crate::throttle::{ClientAddr, RateStore};
use crate::usage::{Reporter, UsageCounts};

/// What every gateway of a lifecycle shares: the gateway-wide settings,
/// the stores, the reporters, and the response caches by stage.
pub(in crate::gateway) struct Parts {
    /// Gateway-wide settings (`throttle`, `throttle_options`,
    /// `api_key_options`, `plans`, `credentials`, `sigv4`'s defaults).
    pub(in crate::gateway) base: Config,
    pub(in crate::gateway) clock: Arc<dyn Clock>,
    pub(in crate::gateway) rate_store: Arc<dyn RateStore>,
    pub(in crate::gateway) key_store: Arc<dyn KeyStore>,
    pub(in crate::gateway) counter_store: Arc<dyn CounterStore>,
    pub(in crate::gateway) credential_store: Option<Arc<dyn CredentialStore>>,
    pub(in crate::gateway) authorizers: HashMap<String, Arc<dyn Authorizer>>,
    pub(in crate::gateway) lambdas: HashMap<String, crate::integration::LambdaFunction>,
    pub(in crate::gateway) aws_credentials: Option<Arc<crate::integration::AwsCredentials>>,
    pub(in crate::gateway) reporters: Vec<Reporter>,
    pub(in crate::gateway) aggregate: Option<Arc<dyn UsageCounts>>,
    pub(in crate::gateway) cache_tier: Option<CacheTier>,
    /// Response caches by (API, stage, the canary's deployment when it
    /// caches apart): kept across swaps, so entries survive a redeploy.
    pub(in crate::gateway) caches: Mutex<HashMap<CacheKey, Arc<dyn CacheStore>>>,
}

type CacheKey = (String, String, Option<String>);

/// The gateways requests are sent to.
pub(super) struct Table {
    served: Vec<Served>,
    /// By API id: its stages (indexes into `served`).
    apis: HashMap<Box<str>, ApiRoutes, foldhash::fast::RandomState>,
    /// The routes of the one API with stages, when only one has any: the
    /// `/{stage}` form on a host that names no API (an API just created,
    /// with nothing deployed yet, does not take the others' traffic).
    single: Option<ApiRoutes>,
    /// Whether there are several APIs (the host is then read).
    several: bool,
    /// Custom domains; "stages" are indexes into `served`.
    domains: Domains,
    /// Answers what no API takes: 403 `UNMAPPED_REQUEST`.
    unmapped: Gateway,
    /// The response caches this table's gateways use.
    caches: Vec<CacheKey>,
}

/// Where a request goes, before a canary is picked.
enum Target {
    /// A stage (index into `served`).
    Stage(usize),
    /// A stage the API lacks: this stage's gateway answers it (404).
    Fallback(usize),
    /// 403 `UNMAPPED_REQUEST`.
    Unmapped,
}

/// One API's stages, for the execute-api form.
#[derive(Clone)]
struct ApiRoutes {
    stages: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    /// Answers a stage the API does not have (404, as a gateway does).
    fallback: Option<usize>,
}

/// One stage: its gateway, its canary's, and whether the execute-api form
/// reaches it.
pub(super) struct Served {
    pub(super) api_id: String,
    pub(super) stage: String,
    pub(super) base: Gateway,
    pub(super) canary: Option<Canary>,
    execute_api: bool,
}

/// A stage's canary as requests see it.
pub(super) struct Canary {
    pub(super) gateway: Gateway,
    /// Out of 2^32: a roll below it goes to the canary.
    threshold: u64,
    sticky: Option<StickyBy>,
}

enum StickyBy {
    Header(HeaderName),
    ClientIp(Arc<[ipnet::IpNet]>),
}

impl Table {
    /// The gateway for a request, and whether it is a canary's: a custom
    /// domain's mapping first, then the execute-api form.
    pub(super) fn pick<B>(&self, req: &Request<B>) -> (&Gateway, bool) {
        // One API and no domain: the host decides nothing, so it is not read.
        let host = if self.domains.is_empty() && !self.several {
            None
        } else {
            request_host(req.headers(), req.uri())
        };
        match self.target(host, req.uri().path()) {
            Target::Stage(i) => self.side(i, req),
            Target::Fallback(i) => (&self.served[i].base, false),
            Target::Unmapped => (&self.unmapped, false),
        }
    }

    /// The base side's gateway for `host` and `path` (no canary picked).
    pub(super) fn base_for(&self, host: Option<&str>, path: &str) -> &Gateway {
        match self.target(host, path) {
            Target::Stage(i) | Target::Fallback(i) => &self.served[i].base,
            Target::Unmapped => &self.unmapped,
        }
    }

    fn target(&self, host: Option<&str>, path: &str) -> Target {
        if !self.domains.is_empty()
            && let Some(h) = host
        {
            match self.domains.find(h, path) {
                Some(Mapped::To { stage, .. }) => return Target::Stage(stage),
                Some(Mapped::Unmapped) => return Target::Unmapped,
                None => {}
            }
        }
        // An `{api_id}.execute-api` host picks its API first; any other
        // host reaches the one API with stages, when only one has any.
        let named = if self.several {
            // Ids are lower case; a host is matched in any case.
            let mut buf = [0u8; 64];
            let id = host.and_then(execute_api_id).and_then(|id| {
                let lower = buf.get_mut(..id.len())?;
                lower.copy_from_slice(id.as_bytes());
                lower.make_ascii_lowercase();
                std::str::from_utf8(lower).ok()
            });
            id.and_then(|id| self.apis.get(id))
        } else {
            None
        };
        let routes = match (named, &self.single) {
            (Some(r), _) => r,
            (None, Some(one)) => one,
            (None, None) => return Target::Unmapped,
        };
        let first = path
            .strip_prefix('/')
            .map(|p| p.split_once('/').map_or(p, |(s, _)| s))
            .unwrap_or("");
        match routes.stages.get(first) {
            Some(&i) if self.served[i].execute_api => Target::Stage(i),
            Some(_) => Target::Unmapped,
            None => routes.fallback.map_or(Target::Unmapped, Target::Fallback),
        }
    }

    /// The base or the canary of stage `i`.
    fn side<B>(&self, i: usize, req: &Request<B>) -> (&Gateway, bool) {
        let served = &self.served[i];
        let Some(c) = &served.canary else {
            return (&served.base, false);
        };
        if c.threshold == 0 {
            return (&served.base, false);
        }
        let roll = match &c.sticky {
            Some(by) => by.roll(req).unwrap_or_else(random_u32),
            None => random_u32(),
        };
        if u64::from(roll) < c.threshold {
            (&c.gateway, true)
        } else {
            (&served.base, false)
        }
    }

    /// The first stage's gateway, if any stage is served.
    /// Every gateway serving now, base and canary sides.
    pub(super) fn gateways(&self) -> impl Iterator<Item = &Gateway> {
        self.served
            .iter()
            .flat_map(|s| std::iter::once(&s.base).chain(s.canary.as_ref().map(|c| &c.gateway)))
    }

    pub(super) fn first(&self) -> Option<Gateway> {
        self.served.first().map(|s| s.base.clone())
    }

    /// The gateway serving `stage` of `api_id` (the base side).
    pub(super) fn served(&self, api_id: &str, stage: &str) -> Option<&Served> {
        self.served
            .iter()
            .find(|s| s.api_id == api_id && s.stage == stage)
    }
}

impl StickyBy {
    fn roll<B>(&self, req: &Request<B>) -> Option<u32> {
        match self {
            Self::Header(name) => req.headers().get(name).map(|v| sticky_hash(v.as_bytes())),
            Self::ClientIp(trusted) => {
                let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
                let ip = crate::throttle::client_ip(peer, req.headers(), trusted)?;
                Some(match ip {
                    std::net::IpAddr::V4(v4) => sticky_hash(&v4.octets()),
                    std::net::IpAddr::V6(v6) => sticky_hash(&v6.octets()),
                })
            }
        }
    }
}

/// `{api_id}` of a host `{api_id}.execute-api.{anything}` (any case of
/// `execute-api`, any port).
fn execute_api_id(host: &str) -> Option<&str> {
    let (id, rest) = host.split_once('.')?;
    let (label, _) = rest.split_once('.')?;
    label.eq_ignore_ascii_case("execute-api").then_some(id)
}

/// A fixed hash of a sticky value, the same in every process and build
/// (FNV-1a, then SplitMix64's finalizer so the high bits mix), its top 32
/// bits.
fn sticky_hash(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (mix(h) >> 32) as u32
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

thread_local! {
    /// A SplitMix64 state per thread, seeded once (from foldhash's
    /// per-process random state and the thread's own address).
    static RNG: Cell<u64> = Cell::new({
        let mut h = foldhash::fast::RandomState::default().build_hasher();
        h.write_usize(&h as *const _ as usize);
        h.finish()
    });
}

/// A uniform random `u32`, no system call (the canary's split).
fn random_u32() -> u32 {
    RNG.with(|s| {
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        (mix(next) >> 32) as u32
    })
}

/// Out of 2^32, the rolls below which go to the canary.
fn threshold(percent: f64) -> u64 {
    ((percent.clamp(0.0, 100.0) / 100.0) * 4_294_967_296.0).round() as u64
}

impl Parts {
    /// The stage caches of one gateway: none for a canary without the stage
    /// cache; the stage's own, or the canary's apart when it serves another
    /// deployment.
    fn caches(
        &self,
        api: &str,
        stage: &str,
        apart: Option<&str>,
        capacity: Option<crate::config::ByteSize>,
        used: &mut Vec<CacheKey>,
    ) -> HashMap<Arc<str>, Arc<dyn CacheStore>> {
        let key = (api.to_owned(), stage.to_owned(), apart.map(str::to_owned));
        used.push(key.clone());
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        let store = caches
            .entry(key)
            .or_insert_with(|| {
                let tier_name = match apart {
                    Some(d) => format!("{api}/{stage}/canary-{d}"),
                    None => format!("{api}/{stage}"),
                };
                crate::cache::stage_stores(
                    [(tier_name.as_str(), capacity)],
                    self.cache_tier.as_ref(),
                )
                .into_values()
                .next()
                .unwrap_or_else(|| Arc::new(crate::cache::MokaCacheStore::new(64 << 20)))
            })
            .clone();
        HashMap::from([(Arc::<str>::from(stage), store)])
    }

    /// A gateway for one stage of one API on `definition`: the stage's
    /// config, the plans that name the stage, the domains that map to it,
    /// every store shared.
    fn gateway(
        &self,
        state: &State,
        api_id: &str,
        definition: &Config,
        stage: &str,
        stage_config: StageConfig,
        caches: HashMap<Arc<str>, Arc<dyn CacheStore>>,
    ) -> Result<Gateway, crate::config::ConfigError> {
        let base = &self.base;
        let single = state.apis.len() == 1;
        let mut config = definition.clone();
        let mut stage_config = stage_config;
        // The table serves the canary; the stage's gateway is one side.
        stage_config.canary = None;
        config.stages = BTreeMap::from([(stage.to_owned(), stage_config)]);
        // The table keeps the execute-api form from a stage whose
        // deployment turns it off; the stage's own gateway routes it.
        config.disable_execute_api_endpoint = false;
        config.throttle = base.throttle;
        config.throttle_options = base.throttle_options.clone();
        config.api_key_options = base.api_key_options.clone();
        config.usage_endpoint = base.usage_endpoint.clone();
        config.credentials = base.credentials.clone();
        config.keys = Vec::new();
        config.plans = state
            .plans
            .iter()
            .map(|(name, plan)| {
                let mut plan = plan.clone();
                let names_it = plan
                    .stages
                    .iter()
                    .any(|s| names_stage(s, api_id, stage, single));
                if names_it {
                    plan.stages = vec![stage.to_owned()];
                } else {
                    plan.stages.clear();
                    plan.methods.clear();
                }
                (name.clone(), plan)
            })
            .collect();
        config.domains = state
            .domains
            .iter()
            .filter_map(|(host, d)| {
                let base_paths: BTreeMap<String, BasePathMappingConfig> = d
                    .base_path_mappings
                    .iter()
                    .filter(|(_, m)| m.api_id == api_id && m.stage == stage)
                    .map(|(b, _)| {
                        let m = BasePathMappingConfig {
                            api: None,
                            stage: stage.to_owned(),
                        };
                        (b.clone(), m)
                    })
                    .collect();
                (!base_paths.is_empty()).then(|| (host.clone(), DomainConfig { base_paths }))
            })
            .collect();
        self.builder(config).cache_stores(caches).build()
    }

    fn builder(&self, config: Config) -> GatewayBuilder {
        let mut b = Gateway::builder(config);
        b.clock = self.clock.clone();
        b.rate_store = Some(self.rate_store.clone());
        b.key_store = Some(self.key_store.clone());
        b.counter_store = Some(self.counter_store.clone());
        b.credential_store = self.credential_store.clone();
        b.authorizers = self.authorizers.clone();
        b.lambdas = self.lambdas.clone();
        b.aws_credentials = self.aws_credentials.clone();
        b.reporters = self.reporters.clone();
        b.aggregate = self.aggregate.clone();
        b
    }
}

/// Whether a plan's stage entry names `stage` of `api_id`: `api/stage`,
/// or a bare `stage` while the lifecycle holds one API.
pub(super) fn names_stage(entry: &str, api_id: &str, stage: &str, single: bool) -> bool {
    match entry.split_once('/') {
        Some((a, s)) => a == api_id && s == stage,
        None => single && entry == stage,
    }
}

/// Builds the table for `state`: every stage's gateway and its canary's.
/// A definition that does not build refuses the whole change.
pub(super) fn build(state: &State, parts: &Parts) -> Result<Table, LifecycleError> {
    let mut served = Vec::new();
    let mut apis = HashMap::default();
    let mut used_caches = Vec::new();
    for (api_id, api) in &state.apis {
        let mut routes = ApiRoutes {
            stages: HashMap::default(),
            fallback: None,
        };
        for (name, stage) in &api.stages {
            let at = format!("apis.{api_id}.stages.{name}");
            let deployment = api.deployment(&stage.deployment_id).ok_or_else(|| {
                LifecycleError::bad_request(format!(
                    "{at}.deployment_id: no deployment `{}`",
                    stage.deployment_id
                ))
            })?;
            let caches = parts.caches(
                api_id,
                name,
                None,
                stage.config.cache_capacity,
                &mut used_caches,
            );
            let base = parts
                .gateway(
                    state,
                    api_id,
                    &deployment.definition,
                    name,
                    stage.config.clone(),
                    caches.clone(),
                )
                .map_err(|e| LifecycleError::invalid(&format!("apis.{api_id}"), &e))?;
            let canary = match &stage.canary {
                None => None,
                Some(c) => {
                    let at = format!("{at}.canary");
                    let d = api.deployment(&c.deployment_id).ok_or_else(|| {
                        LifecycleError::bad_request(format!(
                            "{at}.deployment_id: no deployment `{}`",
                            c.deployment_id
                        ))
                    })?;
                    let mut config = stage.config.clone();
                    config.variables.extend(c.stage_variable_overrides.clone());
                    let caches = if !c.use_stage_cache {
                        HashMap::new()
                    } else if c.deployment_id == stage.deployment_id {
                        caches
                    } else {
                        parts.caches(
                            api_id,
                            name,
                            Some(&c.deployment_id),
                            stage.config.cache_capacity,
                            &mut used_caches,
                        )
                    };
                    let gateway = parts
                        .gateway(state, api_id, &d.definition, name, config, caches)
                        .map_err(|e| LifecycleError::invalid(&at, &e))?;
                    let sticky = c.sticky.as_ref().map(|s| match s {
                        Sticky::Header(h) => StickyBy::Header(h.clone()),
                        Sticky::ApiKey => StickyBy::Header(
                            HeaderName::from_bytes(
                                parts
                                    .base
                                    .api_key_options
                                    .header
                                    .as_deref()
                                    .unwrap_or("x-api-key")
                                    .as_bytes(),
                            )
                            .unwrap_or(HeaderName::from_static("x-api-key")),
                        ),
                        Sticky::ClientIp => StickyBy::ClientIp(base.shared.edge.trusted.clone()),
                    });
                    Some(Canary {
                        gateway,
                        threshold: threshold(c.percent_traffic),
                        sticky,
                    })
                }
            };
            let i = served.len();
            routes.stages.insert(Box::from(name.as_str()), i);
            routes.fallback.get_or_insert(i);
            served.push(Served {
                api_id: api_id.clone(),
                stage: name.clone(),
                execute_api: !deployment.definition.disable_execute_api_endpoint,
                base,
                canary,
            });
        }
        apis.insert(Box::from(api_id.as_str()), routes);
    }
    // Domains, with "stages" named `index` so the route's own lookup
    // gives the index of the stage served.
    let names: Vec<String> = (0..served.len()).map(|i| i.to_string()).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let domain_config: BTreeMap<String, DomainConfig> = state
        .domains
        .iter()
        .map(|(host, d)| {
            let base_paths = d
                .base_path_mappings
                .iter()
                .filter_map(|(b, m)| {
                    let i = served
                        .iter()
                        .position(|s| s.api_id == m.api_id && s.stage == m.stage)?;
                    let mapping = BasePathMappingConfig {
                        api: None,
                        stage: i.to_string(),
                    };
                    Some((b.clone(), mapping))
                })
                .collect();
            (host.clone(), DomainConfig { base_paths })
        })
        .collect();
    let mut issues = Issues(Vec::new());
    let domains = Domains::resolve(
        &domain_config,
        "",
        &name_refs,
        &PathBuf::root().field("domains"),
        &mut issues,
    );
    // The gateway for what no API takes, with the first API's gateway
    // responses and name; it routes nothing.
    let mut unmapped = match state.apis.values().next() {
        Some(a) => Config::clone(&a.api.definition),
        None => Config::default(),
    };
    if unmapped.routes.is_empty() {
        // An API not yet given a method (or none at all).
        unmapped
            .routes
            .insert("/".to_owned(), vec!["GET".to_owned()]);
    }
    let mut unmapped = parts.builder(unmapped);
    unmapped.config.disable_execute_api_endpoint = false;
    unmapped.config.stages = BTreeMap::from([("unmapped".to_owned(), StageConfig::default())]);
    unmapped.config.throttle = None;
    unmapped.refuse_all = true;
    let unmapped = unmapped
        .build()
        .map_err(|e| LifecycleError::invalid("unmapped", &e))?;
    let mut staged = apis.values().filter(|r| !r.stages.is_empty());
    let single = match (staged.next(), staged.next()) {
        (Some(one), None) => Some(one.clone()),
        _ => None,
    };
    let single = single.or_else(|| {
        (state.apis.len() == 1)
            .then(|| apis.values().next().cloned())
            .flatten()
    });
    Ok(Table {
        served,
        apis,
        single,
        several: state.apis.len() > 1,
        domains,
        unmapped,
        caches: used_caches,
    })
}

impl Parts {
    /// Drops the response caches `table` no longer uses (a stage deleted,
    /// a canary's own cache once it is gone): called once `table` serves.
    pub(super) fn prune_caches(&self, table: &Table) {
        let mut caches = self.caches.lock().unwrap_or_else(PoisonError::into_inner);
        caches.retain(|key, _| table.caches.contains(key));
    }
}
