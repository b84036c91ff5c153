//! Validation and resolution of a [`Config`]: one pass that checks every rule,
//! collects every problem with its path, and, when there is none, produces the
//! tables the gateway serves from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use super::config::{
    Authorization, Config, IntegrationConfig, MethodSettingsConfig, ThrottleConfig,
};
use super::settings::{Merged, MethodSettings, Rate};
use super::template;
use crate::config::{ConfigError, ConfigErrorKind, Issues, PathBuf};
use crate::context::Endpoint;
use crate::mapping::{Mapping, MappingLimits};
use crate::plans::{PlanDef, Plans, Quota};
use crate::response::GatewayResponses;
use crate::throttle::{GatewayLimits, LimitScope, Spec};

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

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
fn complete(t: ThrottleConfig) -> Option<Rate> {
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

fn is_stage_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A settings layer and where it was written.
type Layer<'a> = (&'a MethodSettingsConfig, PathBuf);

#[derive(Default)]
struct Overrides<'a> {
    all: Option<Layer<'a>>,
    resource: HashMap<usize, Layer<'a>>,
    exact: HashMap<(usize, Option<Method>), Layer<'a>>,
}

#[derive(Default)]
struct Validator {
    issues: Issues,
    /// Mappings compiled so far, by the path of the settings that hold them
    /// (a stage-wide mapping is compiled, and reported, once).
    mappings: HashMap<String, Option<Arc<Mapping>>>,
    mapping_limits: MappingLimits,
    body_timeout: Duration,
}

/// Where the settings that gave an endpoint its integration and mapping are.
struct Origins {
    integration: PathBuf,
    mapping: PathBuf,
}

impl Validator {
    fn routes(&mut self, config: &Config, path: &PathBuf) -> Vec<RouteDef> {
        if config.routes.is_empty() {
            self.issues.push(path, "at least one route is required");
        }
        let mut out = Vec::new();
        let mut probe = matchit::Router::new();
        for (template, methods) in &config.routes {
            let rpath = path.field(template);
            let parsed = match template::parse(template) {
                Ok(t) => t,
                Err(errs) => {
                    for e in errs {
                        self.issues.push(&rpath, e);
                    }
                    continue;
                }
            };
            if let Err(e) = probe.insert(parsed.matchit.clone(), template.clone()) {
                let msg = match e {
                    matchit::InsertError::Conflict { with } => {
                        let other = config
                            .routes
                            .keys()
                            .find(|k| template::parse(k).is_ok_and(|t| t.matchit == with))
                            .map_or(with.as_str(), String::as_str);
                        format!(
                            "conflicts with the route `{other}` (the same paths would match both)"
                        )
                    }
                    other => format!("cannot be routed: {other}"),
                };
                self.issues.push(&rpath, msg);
                continue;
            }
            if methods.is_empty() {
                self.issues
                    .push(&rpath, "a route needs at least one method");
            }
            let mut declared: Vec<Option<Method>> = Vec::new();
            for (i, m) in methods.iter().enumerate() {
                let mpath = rpath.index(i);
                if !METHODS.contains(&m.as_str()) {
                    self.issues.push(
                        &mpath,
                        format!("`{m}` is not a method (use one of {})", METHODS.join(", ")),
                    );
                    continue;
                }
                let method = (m != "ANY")
                    .then(|| Method::from_bytes(m.as_bytes()).ok())
                    .flatten();
                if declared.contains(&method) {
                    self.issues.push(&mpath, format!("`{m}` is listed twice"));
                    continue;
                }
                declared.push(method);
            }
            // Explicit methods first, ANY last: lookup tries them in order.
            declared.sort_by_key(Option::is_none);
            let allow = declared
                .iter()
                .map(|m| m.as_ref().map_or("ANY", Method::as_str))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(RouteDef {
                template: Arc::from(template.as_str()),
                matchit: parsed.matchit,
                params: parsed
                    .params
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                methods: declared,
                allow: HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static("")),
            });
        }
        out
    }

    fn overrides<'a>(
        &mut self,
        methods: &'a BTreeMap<String, MethodSettingsConfig>,
        path: &PathBuf,
        routes: &[RouteDef],
        route_index: &HashMap<&str, usize>,
    ) -> Overrides<'a> {
        let mut out = Overrides::default();
        for (key, settings) in methods {
            let opath = path.field(key);
            match parse_method_key(key, routes, route_index, true) {
                Ok(MethodKey::All) => {
                    self.method_settings(settings, &opath, None);
                    out.all = Some((settings, opath));
                }
                Ok(MethodKey::Resource(ri)) => {
                    self.method_settings(settings, &opath, Some(&routes[ri]));
                    out.resource.insert(ri, (settings, opath));
                }
                Ok(MethodKey::Exact(ri, m)) => {
                    self.method_settings(settings, &opath, Some(&routes[ri]));
                    out.exact.insert((ri, m), (settings, opath));
                }
                Err(msg) => self.issues.push(&opath, msg),
            }
        }
        out
    }

    /// Checks the fields of one settings layer where they are written.
    fn method_settings(
        &mut self,
        s: &MethodSettingsConfig,
        path: &PathBuf,
        route: Option<&RouteDef>,
    ) {
        if let Some(t) = &s.throttle {
            t.check_fields(&path.field("throttle"), &mut self.issues);
        }
        if let Some(c) = &s.cache {
            let params = route.map(|r| (&*r.template, &*r.params));
            c.check(&path.field("cache"), params, &mut self.issues);
        }
        if let Some(i) = &s.integration {
            self.integration(i, &path.field("integration"), route);
        }
    }

    /// Checks an integration; its URL's path parameters against `route` when
    /// the settings belong to one (stage-wide ones are checked per endpoint).
    fn integration(
        &mut self,
        integration: &IntegrationConfig,
        ipath: &PathBuf,
        route: Option<&RouteDef>,
    ) {
        match integration {
            IntegrationConfig::Service => {}
            IntegrationConfig::Http {
                url,
                base,
                timeout_ms,
            } => {
                match crate::integration::HttpIntegration::from_config(
                    crate::integration::new_client(),
                    url.as_deref(),
                    base.as_deref(),
                ) {
                    Ok(h) => {
                        if let Some(route) = route {
                            self.url_params(&h.params(), ipath, route);
                        }
                    }
                    Err(e) => self.issues.push(ipath, e.to_string()),
                }
                if let Some(t) = timeout_ms
                    && !(50..=300_000).contains(t)
                {
                    self.issues.push(
                        &ipath.field("timeout_ms"),
                        format!("must be 50 to 300000 (got {t})"),
                    );
                }
            }
            IntegrationConfig::Mock {
                status, headers, ..
            } => {
                if let Some(s) = status
                    && !(100..=599).contains(s)
                {
                    self.issues.push(
                        &ipath.field("status"),
                        format!("must be an HTTP status, 100 to 599 (got {s})"),
                    );
                }
                for (n, val) in headers {
                    if HeaderName::from_bytes(n.as_bytes()).is_err()
                        || HeaderValue::from_str(val).is_err()
                    {
                        self.issues.push(
                            &ipath.field("headers").field(n),
                            "is not a valid header name and value",
                        );
                    }
                }
            }
        }
    }

    fn url_params(&mut self, params: &[String], ipath: &PathBuf, route: &RouteDef) {
        for p in params {
            if !route.params.iter().any(|r| **r == **p) {
                self.issues.push(
                    &ipath.field("url"),
                    format!("`{}` has no path parameter `{p}`", route.template),
                );
            }
        }
    }

    /// Compiles the mapping (once per settings block) and checks the
    /// integration of one endpoint.
    fn integration_and_mapping(
        &mut self,
        settings: &mut MethodSettings,
        m: Merged,
        origins: &Origins,
        route: &RouteDef,
    ) {
        if let Some(config) = &m.mapping {
            let key = origins.mapping.as_str().to_owned();
            let limits = self.mapping_limits;
            let compiled = match self.mappings.get(&key) {
                Some(done) => done.clone(),
                None => {
                    let base = origins.mapping.field("mapping");
                    let mut broken = false;
                    let mapping = Mapping::compile(config, limits, &mut |p, msg| {
                        broken = true;
                        self.issues.push(&base.join(&p), msg);
                    });
                    let done = (!broken).then(|| Arc::new(mapping));
                    self.mappings.insert(key, done.clone());
                    done
                }
            };
            settings.mapping = compiled;
        }
        if let Some(integration) = m.integration {
            // Stage-wide settings know their route only here.
            let stage_wide = origins.integration.as_str().ends_with(".settings")
                || origins.integration.as_str().ends_with("\"*/*\"");
            if stage_wide
                && let IntegrationConfig::Http { url, base, .. } = &integration
                && let Ok(h) = crate::integration::HttpIntegration::from_config(
                    crate::integration::new_client(),
                    url.as_deref(),
                    base.as_deref(),
                )
            {
                self.url_params(
                    &h.params(),
                    &origins.integration.field("integration"),
                    route,
                );
            }
            settings.integration = integration;
        }
    }

    /// Completes a merged layer stack into effective settings.
    fn finish(
        &mut self,
        m: Merged,
        throttle_path: &PathBuf,
        auth_path: &PathBuf,
        config: &Config,
    ) -> MethodSettings {
        crate::throttle::check_combination(
            m.throttle_rate,
            m.throttle_burst,
            &throttle_path.field("throttle"),
            &mut self.issues,
        );
        let throttle = match (m.throttle_rate, m.throttle_burst) {
            (Some(r), Some(b)) => Some(Rate::new(r, b)),
            _ => None,
        };
        let authorization = m.authorization.unwrap_or_default();
        let authorizer = m.authorizer.as_deref().map(std::sync::Arc::<str>::from);
        if authorization == Authorization::Authorizer {
            match &authorizer {
                None => self.issues.push(
                    &auth_path.field("authorizer"),
                    "`authorization: authorizer` needs `authorizer: NAME`",
                ),
                Some(name) if !config.authorizers.contains_key(&**name) => self.issues.push(
                    &auth_path.field("authorizer"),
                    format!("unknown authorizer `{name}`"),
                ),
                Some(_) => {}
            }
        }
        if authorization == Authorization::Sigv4 && config.sigv4.is_none() {
            self.issues.push(
                &PathBuf::root().field("sigv4"),
                "is required because a method uses `authorization: sigv4`",
            );
        }
        MethodSettings {
            throttle,
            cache: m.cache.resolve(m.cache_enabled_by_method == Some(true)),
            api_key_required: m.api_key_required.unwrap_or(false),
            authorization,
            authorizer,
            integration: IntegrationConfig::Service,
            mapping: None,
        }
    }

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

enum MethodKey {
    All,
    Resource(usize),
    Exact(usize, Option<Method>),
}

/// Parses `RESOURCE/METHOD`, `RESOURCE/*` or `*/*` against the routes.
fn parse_method_key(
    key: &str,
    routes: &[RouteDef],
    route_index: &HashMap<&str, usize>,
    wildcards: bool,
) -> Result<MethodKey, String> {
    if key == "*/*" {
        return if wildcards {
            Ok(MethodKey::All)
        } else {
            Err("`*/*` is not allowed here; name a `RESOURCE/METHOD`".to_owned())
        };
    }
    let Some((resource, method)) = key.rsplit_once('/') else {
        return Err("must be `RESOURCE/METHOD` (such as `/pets/GET`)".to_owned());
    };
    let resource = if resource.is_empty() { "/" } else { resource };
    let Some(&ri) = route_index.get(resource) else {
        return Err(format!("unknown route `{resource}`"));
    };
    if method == "*" {
        return if wildcards {
            Ok(MethodKey::Resource(ri))
        } else {
            Err("`RESOURCE/*` is not allowed here; name a method".to_owned())
        };
    }
    let m = if method == "ANY" {
        None
    } else {
        match Method::from_bytes(method.as_bytes()) {
            Ok(m) if METHODS.contains(&method) => Some(m),
            _ => return Err(format!("`{method}` is not a method")),
        }
    };
    if !routes[ri].methods.contains(&m) {
        return Err(format!("the route `{resource}` has no method `{method}`"));
    }
    Ok(MethodKey::Exact(ri, m))
}
