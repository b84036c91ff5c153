//! The composition of the slices: one pass over a [`Config`] that has every
//! capability check its slice (collecting every problem with its path) and,
//! when there is none, resolves the tables the gateway serves from.
//!
//! The order of the checks is the order of the messages in a
//! [`ConfigError`]: the limits, the routes, each stage (its settings, its
//! overrides, then each endpoint's merged settings), the plans, and the
//! remaining root sections.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::{Config, MethodSettingsConfig};
use super::overlay::Overlay;
use crate::config::{ConfigError, ConfigErrorKind, Issues, Merged, PathBuf};
use crate::context::{Endpoint, MethodSettings, PerEndpoint};
use crate::mapping::MappingCompiler;
use crate::plans::{PlanBook, PlanChange, PlanSource, Plans};
use crate::response::GatewayResponses;
use crate::route::RouteLayer;
use crate::route::config::{self as routes, RouteDef, Routes, StageDef};
use crate::throttle::{GatewayLimits, LimitScope, Spec, ThrottleConfig};

/// The most endpoints (stages times the methods of every route) one config
/// may declare. API Gateway's own quotas (300 resources, 10 stages by
/// default) stay well below it.
const MAX_ENDPOINTS: usize = 100_000;

/// Everything the gateway serves from, computed once.
#[derive(Debug)]
pub(super) struct Resolved {
    /// The API's name (`name`, default `tollgate`).
    pub(super) name: Arc<str>,
    pub(super) responses: GatewayResponses,
    /// The gateway-wide, per-client and per-method throttle limits.
    pub(super) limits: GatewayLimits,
    /// How long a body read whole may take (`limits.body_timeout_ms`).
    pub(super) body_timeout: Duration,
    /// How a validated body is read: its size and time, and the most its
    /// parsed values may take.
    pub(super) validation_limits: (crate::body::BodyLimits, usize),
    /// `limits.max_body` and `limits.max_concurrency`.
    pub(super) edge_limits: crate::body::EdgeLimits,
    /// The usage plans.
    pub(super) plans: Plans,
    /// The routes and the endpoints of every stage.
    pub(super) routes: Routes,
}

/// Checks `config` and resolves it; every problem found is in the error.
pub(super) fn resolve(config: &Config) -> Result<Resolved, ConfigError> {
    let mut issues = Issues::default();
    let root = PathBuf::root();
    let mut mapping_limits = config
        .mapping_limits
        .resolve(&root.field("mapping_limits"), &mut issues);
    let body_timeout = config.limits.resolve(&root.field("limits"), &mut issues);
    let edge_limits = config
        .limits
        .resolve_edge(&root.field("limits"), &mut issues);
    mapping_limits.body_timeout = Some(body_timeout);
    // A validated body is read within the mapping limits.
    let validation_limits = (
        crate::body::BodyLimits {
            max: mapping_limits.max_body,
            timeout: Some(body_timeout),
        },
        mapping_limits.max_output.saturating_mul(4),
    );
    let mut mappings = MappingCompiler::new(mapping_limits, config.template_language);
    let models =
        crate::validate::compile_models(&config.models, &root.field("models"), &mut issues);
    crate::validate::check_validators(&config.validators, &root.field("validators"), &mut issues);

    if let Some(t) = &config.throttle {
        t.check_complete(&root.field("throttle"), &mut issues);
    }
    let route_defs = routes::resolve_routes(&config.routes, &root.field("routes"), &mut issues);
    let route_index = routes::index(&route_defs);

    let mut stages = Vec::new();
    let mut next_endpoint = 0usize;
    if config.stages.is_empty() {
        issues.push(&root.field("stages"), "at least one stage is required");
    }
    let methods: usize = route_defs.iter().map(|r| r.methods.len()).sum();
    let endpoints = methods.saturating_mul(config.stages.len());
    if endpoints > MAX_ENDPOINTS {
        // Resolving them would take the memory a small file can ask for.
        issues.push(
            &root.field("stages"),
            format!(
                "{} stages of {methods} methods are {endpoints} endpoints; at most {MAX_ENDPOINTS}",
                config.stages.len()
            ),
        );
        return Err(ConfigError::new(ConfigErrorKind::Invalid, issues.0));
    }
    // The API-level layer is checked once, not with each stage.
    check_layer(&config.settings, &root.field("settings"), None, &mut issues);
    super::overlay::check_api_methods(
        &config.methods,
        &route_defs,
        &route_index,
        &mut issues,
        check_layer,
    );
    let api: Arc<str> = Arc::from(config.name.as_deref().unwrap_or("tollgate"));
    for (name, stage) in &config.stages {
        let path = root.field("stages").field(name);
        routes::check_stage(name, &stage.variables, &path, &mut issues);
        if let Some(c) = &stage.canary {
            super::lifecycle::file::check(c, &path.field("canary"), &mut issues);
        }
        let variables = Arc::new(stage.variables.clone());
        let overlay = Overlay::new(
            (&config.settings, &config.methods),
            stage,
            &path,
            &route_defs,
            &route_index,
            &mut issues,
            check_layer,
        );
        if overlay.all.is_some() && stage.settings != MethodSettingsConfig::default() {
            issues.push(
                &path.field("methods").field("*/*"),
                "give stage-wide settings either in `settings` or in `methods.\"*/*\"`, not both",
            );
        }
        let mut endpoints = Vec::with_capacity(route_defs.len());
        for (ri, route) in route_defs.iter().enumerate() {
            let mut list = Vec::with_capacity(route.methods.len());
            for method in &route.methods {
                let (layers, exact) = overlay.layers(ri, method);
                let settings = method_settings(
                    config,
                    &layers,
                    exact,
                    route,
                    (&mut mappings, &models),
                    &mut issues,
                );
                list.push(Arc::new(Endpoint {
                    index: next_endpoint,
                    api: api.clone(),
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

    crate::plans::check_plans(
        &config.plans,
        |s| config.stages.contains_key(s),
        &route_defs,
        &route_index,
        &mut issues,
    );
    let trusted_proxies = config
        .throttle_options
        .check(&root.field("throttle_options"), &mut issues);
    crate::keys::check_keys(&config.keys, &config.plans, &mut issues);
    crate::auth::sigv4::check_credentials(&config.credentials, &mut issues);
    config
        .api_key_options
        .check(&root.field("api_key_options"), &mut issues);
    crate::auth::check_authorizers(&config.authorizers, &mut issues);
    if let Some(s) = &config.sigv4 {
        s.check(&root.field("sigv4"), &mut issues);
    }
    if let Some(at) = &config.usage_endpoint {
        crate::plans::check_usage_endpoint(at, &root.field("usage_endpoint"), &mut issues);
    }
    if let Some(m) = &config.management {
        m.check(&root.field("management"), &mut issues);
    }
    let responses =
        GatewayResponses::from_config(&config.responses, config.responses_profile, &mut issues);
    let stage_names: Vec<&str> = stages.iter().map(|s| &*s.name).collect();
    let domains = crate::route::domain::Domains::resolve(
        &config.domains,
        config.name.as_deref().unwrap_or("tollgate"),
        &stage_names,
        &root.field("domains"),
        &mut issues,
    );

    if config.disable_execute_api_endpoint && config.domains.is_empty() {
        issues.push(
            &root.field("disable_execute_api_endpoint"),
            "with no `domains`, every request would be refused: map a domain first",
        );
    }

    if !issues.0.is_empty() {
        // The same problem reached through several endpoints is said once.
        let mut seen = BTreeSet::new();
        let mut issues = issues.0;
        issues.retain(|i| seen.insert((i.path().to_owned(), i.message().to_owned())));
        return Err(ConfigError::new(ConfigErrorKind::Invalid, issues));
    }
    let routes = Routes {
        routes: route_defs,
        stages,
        domains: Arc::new(domains),
        execute_api: !config.disable_execute_api_endpoint,
    };
    let spec = |scope, t: Option<ThrottleConfig>| {
        t.and_then(ThrottleConfig::complete)
            .map(|r| Spec::new(scope, r))
    };
    let limits = GatewayLimits {
        gateway: spec(LimitScope::Gateway, config.throttle),
        per_client: spec(LimitScope::Client, config.throttle_options.per_client),
        trusted_proxies,
        methods: PerEndpoint::build(routes.endpoints(), |e| {
            e.settings
                .throttle
                .map(|r| Spec::new(LimitScope::Method, r))
        }),
    };
    let plans = crate::plans::resolve_plans(&config.plans, &routes, &routes::index(&routes.routes));
    Ok(Resolved {
        name: Arc::from(config.name.as_deref().unwrap_or("tollgate")),
        limits,
        body_timeout,
        validation_limits,
        edge_limits,
        plans,
        responses,
        routes,
    })
}

/// Checks the fields of one settings layer where they are written; `route`
/// is the route the layer belongs to (`None` for stage-wide layers).
fn check_layer(
    s: &MethodSettingsConfig,
    path: &PathBuf,
    route: Option<&RouteDef>,
    issues: &mut Issues,
) {
    let route = route.map(|r| (&*r.template, &*r.params));
    if let Some(t) = &s.throttle {
        t.check_fields(&path.field("throttle"), issues);
    }
    if let Some(c) = &s.cache {
        c.check(&path.field("cache"), route, issues);
    }
    if let Some(i) = &s.integration {
        i.check(&path.field("integration"), route, issues);
    }
    if let Some(p) = &s.policy {
        p.check(&path.field("policy"), issues);
    }
    if let Some(c) = &s.cors {
        c.check(&path.field("cors"), issues);
    }
    crate::edge::check_compression(s.minimum_compression_size, path, issues);
    if let Some(Err(e)) = s
        .binary_media_types
        .as_ref()
        .map(crate::mapping::BinaryMediaTypes::new)
    {
        issues.push(&path.field("binary_media_types"), e);
    }
}

/// Resolves one endpoint's settings: each slice merged across `layers`
/// (`exact` is the method's own `RESOURCE/METHOD` layer), checked as merged,
/// and resolved into what its layer reads.
fn method_settings(
    config: &Config,
    layers: &[(&MethodSettingsConfig, &PathBuf)],
    exact: Option<&MethodSettingsConfig>,
    route: &RouteDef,
    (mappings, models): (&mut MappingCompiler, &crate::validate::Models),
    issues: &mut Issues,
) -> MethodSettings {
    let throttle =
        crate::throttle::resolve_method(&Merged::of(layers, |s| s.throttle.as_ref()), issues);
    let (authorization, authorizer) = crate::auth::resolve_method(
        &Merged::of(layers, |s| s.authorization.as_ref()),
        &Merged::of(layers, |s| s.authorizer.as_ref()),
        &config.authorizers,
        config.sigv4.is_some(),
        issues,
    );
    let mapping = mappings.compile(&Merged::of(layers, |s| s.mapping.as_ref()), issues);
    let integration = Merged::of(layers, |s| s.integration.as_ref());
    // A Lambda proxy integration takes the request and answers whole, as
    // API Gateway's AWS_PROXY does: no mapping around it.
    if let Some(crate::integration::IntegrationConfig::Lambda { proxy: true, .. }) =
        &integration.value
        && Merged::of(layers, |s| s.mapping.as_ref())
            .value
            .is_some_and(|m| m != crate::mapping::MappingConfig::default())
    {
        issues.push(
            &integration.path.field("integration"),
            "a Lambda proxy integration takes no `mapping` (the function sees the request whole)",
        );
    }
    if let Some(i) = &integration.value {
        // Stage-wide settings know their route only here.
        let p = integration.path.as_str();
        if p == "settings" || p.ends_with(".settings") || p.ends_with("\"*/*\"") {
            i.check_route(
                &integration.path.field("integration"),
                &route.template,
                &route.params,
                issues,
            );
        }
    }
    let validation = crate::validate::resolve_method(
        &crate::validate::MethodSources {
            validator: &Merged::of(layers, |s| s.request_validator.as_ref()),
            parameters: &Merged::of(layers, |s| s.request_parameters.as_ref()),
            models: &Merged::of(layers, |s| s.request_models.as_ref()),
        },
        &config.validators,
        models,
        &route.params,
        issues,
    );
    let cache_by_method = exact.and_then(|s| s.cache.as_ref()).and_then(|c| c.enabled);
    MethodSettings {
        throttle,
        cache: Merged::of(layers, |s| s.cache.as_ref())
            .value
            .unwrap_or_default()
            .resolve(cache_by_method == Some(true)),
        api_key_required: Merged::of(layers, |s| s.api_key_required.as_ref())
            .value
            .unwrap_or(false),
        authorization,
        authorizer,
        integration: integration.value.unwrap_or_default(),
        mapping,
        policy: Merged::of(layers, |s| s.policy.as_ref())
            .value
            .map(|p| Arc::new(p.resolve())),
        cors: Merged::of(layers, |s| s.cors.as_ref())
            .value
            .and_then(|c| c.resolve(&route.methods))
            .map(Arc::new),
        compression: crate::edge::resolve_compression(
            Merged::of(layers, |s| s.minimum_compression_size.as_ref()).value,
            Merged::of(layers, |s| s.compression_br.as_ref()).value,
        )
        .map(Arc::new),
        binary_media_types: Merged::of(layers, |s| s.binary_media_types.as_ref())
            .value
            .and_then(|t| crate::mapping::BinaryMediaTypes::new(t).ok())
            .filter(|t| !t.is_empty())
            .map(Arc::new),
        validation,
    }
}

impl RouteLayer {
    /// A route layer for the routes and stages of `config`, validated first
    /// (the whole config: an error names every problem in it).
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let resolved = resolve(config)?;
        Ok(Self::resolved(&resolved.routes, resolved.responses))
    }
}

/// Plans are changed on a copy of the gateway's config, checked whole.
impl PlanSource for Mutex<Config> {
    fn change(&self, change: PlanChange<'_>, book: &PlanBook) -> Result<(), ConfigError> {
        let mut current = self.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = current.clone();
        change(&mut next.plans, &mut next.keys);
        let resolved = resolve(&next)?;
        // Still under the lock: the plans served are the last committed.
        book.replace(resolved.plans);
        *current = next;
        Ok(())
    }

    fn plans(&self) -> std::collections::BTreeMap<String, crate::plans::PlanConfig> {
        self.lock().unwrap_or_else(|e| e.into_inner()).plans.clone()
    }
}

/// One method of one stage with its settings merged across the layers
/// (what an OpenAPI export describes).
pub(crate) struct StageMethod {
    /// The resource path template (`/pets/{petId}`).
    pub(crate) resource: Arc<str>,
    /// Its path parameters, in order.
    pub(crate) params: Arc<[Box<str>]>,
    /// The method; `None` is `ANY`.
    pub(crate) method: Option<http::Method>,
    /// The fields an export reads, merged as a request sees them.
    pub(crate) settings: MethodSettingsConfig,
}

/// Every method of `stage` in `config` (checked whole first), in route
/// order.
pub(crate) fn stage_methods(config: &Config, stage: &str) -> Result<Vec<StageMethod>, ConfigError> {
    resolve(config)?;
    let mut issues = Issues::default();
    let root = PathBuf::root();
    let Some(stage_config) = config.stages.get(stage) else {
        issues.push(
            &root.field("stages"),
            format!("no stage is named `{}`", stage.escape_debug()),
        );
        return Err(ConfigError::new(ConfigErrorKind::Invalid, issues.0));
    };
    let route_defs = routes::resolve_routes(&config.routes, &root.field("routes"), &mut issues);
    let route_index = routes::index(&route_defs);
    let overlay = Overlay::new(
        (&config.settings, &config.methods),
        stage_config,
        &root.field("stages").field(stage),
        &route_defs,
        &route_index,
        &mut issues,
        |_, _, _, _| {},
    );
    let mut out = Vec::new();
    for (ri, route) in route_defs.iter().enumerate() {
        for method in &route.methods {
            let (layers, _) = overlay.layers(ri, method);
            let s = MethodSettingsConfig {
                api_key_required: Merged::of(&layers, |l| l.api_key_required.as_ref()).value,
                authorization: Merged::of(&layers, |l| l.authorization.as_ref()).value,
                authorizer: Merged::of(&layers, |l| l.authorizer.as_ref()).value,
                integration: Merged::of(&layers, |l| l.integration.as_ref()).value,
                mapping: Merged::of(&layers, |l| l.mapping.as_ref()).value,
                request_validator: Merged::of(&layers, |l| l.request_validator.as_ref()).value,
                request_parameters: Merged::of(&layers, |l| l.request_parameters.as_ref()).value,
                request_models: Merged::of(&layers, |l| l.request_models.as_ref()).value,
                ..MethodSettingsConfig::default()
            };
            out.push(StageMethod {
                resource: route.template.clone(),
                params: route.params.clone(),
                method: method.clone(),
                settings: s,
            });
        }
    }
    Ok(out)
}
