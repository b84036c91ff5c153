//! Validation and resolution of a [`Config`]: one pass that checks every rule,
//! collects every problem with its path, and, when there is none, produces the
//! tables the gateway serves from.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};

use super::config::{Config, MethodSettingsConfig, ThrottleConfig};
use super::routes::*;
use super::settings::{Merged, Rate};
use crate::config::{ConfigError, ConfigErrorKind, Issues, PathBuf};
use crate::context::Endpoint;
use crate::mapping::{Mapping, MappingLimits};
use crate::plans::{PlanDef, Plans, Quota};
use crate::response::GatewayResponses;
use crate::throttle::{GatewayLimits, LimitScope, Spec};

/// A route, resolved.
#[derive(Debug)]
pub(crate) struct RouteDef {
    pub(crate) template: Arc<str>,
    pub(crate) matchit: String,
    pub(crate) params: Arc<[Box<str>]>,
    /// Declared methods; `None` is ANY.
    pub(crate) methods: Vec<Option<Method>>,
    /// The `Allow` header for a 405 on this route.
    pub(crate) allow: HeaderValue,
}

/// A stage, resolved.
#[derive(Debug)]
pub(crate) struct StageDef {
    pub(crate) name: Arc<str>,
    /// For each route (same order as `routes`), its endpoints: explicit
    /// methods first, then ANY.
    pub(crate) endpoints: Vec<Vec<Arc<Endpoint>>>,
}

/// Everything the gateway serves from, computed once.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) name: Arc<str>,
    pub(crate) responses: GatewayResponses,
    /// The gateway-wide, per-client and per-method throttle limits.
    pub(crate) limits: GatewayLimits,
    /// How long a body read whole may take (`limits.body_timeout_ms`).
    pub(crate) body_timeout: Duration,
    /// The usage plans.
    pub(crate) plans: Plans,
    pub(crate) routes: Vec<RouteDef>,
    pub(crate) stages: Vec<StageDef>,
}

impl Resolved {
    /// Every endpoint of every stage.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.stages
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
    }
}

/// Checks `config` and resolves it; every problem found is in the error.
pub(crate) fn resolve(config: &Config) -> Result<Resolved, ConfigError> {
    let mut v = Validator::default();
    let root = PathBuf::root();
    v.mapping_limits = config
        .mapping_limits
        .resolve(&root.field("mapping_limits"), &mut v.issues);
    v.body_timeout = config.limits.resolve(&root.field("limits"), &mut v.issues);
    v.mapping_limits.body_timeout = Some(v.body_timeout);

    if let Some(t) = &config.throttle {
        t.check_complete(&root.field("throttle"), &mut v.issues);
    }
    let routes = v.routes(config, &root.field("routes"));
    let route_index: HashMap<&str, usize> = routes
        .iter()
        .enumerate()
        .map(|(i, r)| (&*r.template, i))
        .collect();

    let mut stages = Vec::new();
    let mut next_endpoint = 0usize;
    if config.stages.is_empty() {
        v.issues
            .push(&root.field("stages"), "at least one stage is required");
    }
    for (name, stage) in &config.stages {
        let path = root.field("stages").field(name);
        if !is_stage_name(name) {
            v.issues.push(
                &path,
                "a stage name is 1 to 128 letters, digits, `-` or `_`",
            );
        }
        let vpath = path.field("variables");
        for (k, val) in &stage.variables {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                v.issues.push(
                    &vpath.field(k),
                    "a variable name is letters, digits and `_`",
                );
            }
            if val.len() > 512 || val.chars().any(char::is_control) {
                v.issues.push(
                    &vpath.field(k),
                    "a variable value is at most 512 characters, none of them control characters",
                );
            }
        }
        let variables = Arc::new(stage.variables.clone());
        v.method_settings(&stage.settings, &path.field("settings"), None);
        let overrides = v.overrides(
            &stage.methods,
            &path.field("methods"),
            &routes,
            &route_index,
        );
        if overrides.all.is_some() && stage.settings != MethodSettingsConfig::default() {
            v.issues.push(
                &path.field("methods").field("*/*"),
                "give stage-wide settings either in `settings` or in `methods.\"*/*\"`, not both",
            );
        }

        let mut endpoints = Vec::with_capacity(routes.len());
        for (ri, route) in routes.iter().enumerate() {
            let mut list = Vec::with_capacity(route.methods.len());
            for method in &route.methods {
                let mut merged = Merged::default();
                let mut deepest = path.field("settings");
                let mut auth_path = path.field("settings");
                let mut origins = Origins {
                    integration: path.field("settings"),
                    mapping: path.field("settings"),
                };
                let mut layers: Vec<(&MethodSettingsConfig, PathBuf)> =
                    vec![(&stage.settings, path.field("settings"))];
                if let Some(l) = &overrides.all {
                    layers.push(l.clone());
                }
                if let Some(l) = overrides.resource.get(&ri) {
                    layers.push(l.clone());
                }
                if let Some(l) = overrides.exact.get(&(ri, method.clone())) {
                    merged.cache_enabled_by_method = l.0.cache.as_ref().and_then(|c| c.enabled);
                    layers.push(l.clone());
                }
                for (layer, lpath) in layers {
                    merged.apply(layer);
                    if layer.throttle.is_some() {
                        deepest = lpath.clone();
                    }
                    if layer.authorization.is_some() || layer.authorizer.is_some() {
                        auth_path = lpath.clone();
                    }
                    if layer.integration.is_some() {
                        origins.integration = lpath.clone();
                    }
                    if layer.mapping.is_some() {
                        origins.mapping = lpath.clone();
                    }
                }
                let mut settings = v.finish(merged.clone(), &deepest, &auth_path, config);
                v.integration_and_mapping(&mut settings, merged, &origins, route);
                list.push(Arc::new(Endpoint {
                    index: next_endpoint,
                    stage: Arc::from(name.as_str()),
                    resource: route.template.clone(),
                    method: method.clone(),
                    params: route.params.clone(),
                    variables: variables.clone(),
                    settings,
                }));
                next_endpoint += 1;
            }
            endpoints.push(list);
        }
        stages.push(StageDef {
            name: Arc::from(name.as_str()),
            endpoints,
        });
    }

    v.plans(config, &routes, &route_index);
    let trusted_proxies = config
        .throttle_options
        .check(&root.field("throttle_options"), &mut v.issues);
    crate::keys::check_keys(&config.keys, &config.plans, &mut v.issues);
    crate::auth::sigv4::check_credentials(&config.credentials, &mut v.issues);
    config
        .api_key_options
        .check(&root.field("api_key_options"), &mut v.issues);
    crate::auth::check_authorizers(&config.authorizers, &mut v.issues);
    if let Some(s) = &config.sigv4 {
        s.check(&root.field("sigv4"), &mut v.issues);
    }
    let responses = GatewayResponses::from_config(&config.responses, &mut v.issues);

    if v.issues.0.is_empty() {
        let spec =
            |scope, t: Option<ThrottleConfig>| t.and_then(complete).map(|r| Spec::new(scope, r));
        let limits = GatewayLimits {
            gateway: spec(LimitScope::Gateway, config.throttle),
            per_client: spec(LimitScope::Client, config.throttle_options.per_client),
            trusted_proxies,
            methods: stages
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .map(|e| {
                    e.settings
                        .throttle
                        .map(|r| Spec::new(LimitScope::Method, r))
                })
                .collect(),
        };
        let plans = plan_defs(config, &routes, &route_index, &stages);
        Ok(Resolved {
            name: Arc::from(config.name.as_deref().unwrap_or("tollgate")),
            limits,
            body_timeout: v.body_timeout,
            plans,
            responses,
            routes,
            stages,
        })
    } else {
        // The same problem reached through several endpoints is said once.
        let mut seen = BTreeSet::new();
        let mut issues = v.issues.0;
        issues.retain(|i| seen.insert((i.path().to_owned(), i.message().to_owned())));
        Err(ConfigError::new(ConfigErrorKind::Invalid, issues))
    }
}

/// A limit whose fields are both given (validation has made sure of it).
pub(super) fn complete(t: ThrottleConfig) -> Option<Rate> {
    Some(Rate::new(t.rate?, t.burst?))
}

/// Each plan: its stages, per-key limit, per-key-and-method limits indexed
/// by endpoint (one bucket per key and method of each stage), and quota.
fn plan_defs(
    config: &Config,
    routes: &[RouteDef],
    route_index: &HashMap<&str, usize>,
    stages: &[StageDef],
) -> Plans {
    let endpoints: usize = stages
        .iter()
        .map(|s| s.endpoints.iter().map(Vec::len).sum::<usize>())
        .sum();
    config
        .plans
        .iter()
        .map(|(name, plan)| {
            let mut methods = vec![None; endpoints];
            for (key, m) in &plan.methods {
                let (Ok(MethodKey::Exact(ri, method)), Some(rate)) = (
                    parse_method_key(key, routes, route_index, false),
                    m.throttle.and_then(complete),
                ) else {
                    continue;
                };
                let spec = Spec::new(LimitScope::ApiKeyMethod, rate);
                for stage in stages {
                    for e in stage.endpoints.get(ri).into_iter().flatten() {
                        if e.method == method {
                            methods[e.index] = Some(spec.clone());
                        }
                    }
                }
            }
            let throttle = plan
                .throttle
                .and_then(complete)
                .map(|r| Spec::new(LimitScope::ApiKey, r));
            let def = PlanDef {
                stages: plan.stages.iter().map(|s| Arc::from(s.as_str())).collect(),
                throttle,
                methods,
                quota: plan.quota.map(Quota::from),
            };
            (Arc::from(name.as_str()), def)
        })
        .collect()
}

/// A settings layer and where it was written.
type Layer<'a> = (&'a MethodSettingsConfig, PathBuf);

#[derive(Default)]
pub(super) struct Overrides<'a> {
    pub(super) all: Option<Layer<'a>>,
    pub(super) resource: HashMap<usize, Layer<'a>>,
    pub(super) exact: HashMap<(usize, Option<Method>), Layer<'a>>,
}

#[derive(Default)]
pub(super) struct Validator {
    pub(super) issues: Issues,
    /// Mappings compiled so far, by the path of the settings that hold them
    /// (a stage-wide mapping is compiled, and reported, once).
    pub(super) mappings: HashMap<String, Option<Arc<Mapping>>>,
    pub(super) mapping_limits: MappingLimits,
    pub(super) body_timeout: Duration,
}

/// Where the settings that gave an endpoint its integration and mapping are.
pub(super) struct Origins {
    pub(super) integration: PathBuf,
    pub(super) mapping: PathBuf,
}

impl Validator {
    fn plans(&mut self, config: &Config, routes: &[RouteDef], route_index: &HashMap<&str, usize>) {
        let root = PathBuf::root().field("plans");
        for (name, plan) in &config.plans {
            let path = root.field(name);
            for (i, s) in plan.stages.iter().enumerate() {
                if !config.stages.contains_key(s) {
                    self.issues.push(
                        &path.field("stages").index(i),
                        format!("unknown stage `{s}`"),
                    );
                }
            }
            if let Some(t) = &plan.throttle {
                t.check_complete(&path.field("throttle"), &mut self.issues);
            }
            if let Some(q) = &plan.quota {
                let qpath = path.field("quota");
                if q.limit == 0 {
                    self.issues.push(&qpath.field("limit"), "must be > 0");
                }
                if q.offset >= q.limit && q.limit > 0 {
                    self.issues.push(
                        &qpath.field("offset"),
                        format!("must be < limit ({})", q.limit),
                    );
                }
            }
            for (key, m) in &plan.methods {
                let mpath = path.field("methods").field(key);
                match parse_method_key(key, routes, route_index, false) {
                    Ok(_) => {}
                    Err(msg) => self.issues.push(&mpath, msg),
                }
                if let Some(t) = &m.throttle {
                    t.check_complete(&mpath.field("throttle"), &mut self.issues);
                }
            }
        }
    }
}
