//! The route slice of a config: `routes:` (resource templates and their
//! methods), the stage names and variables that address them, and the
//! `RESOURCE/METHOD` keys other slices use to name one method.
//!
//! Everything here is checked once, with every problem reported at its path
//! (`routes."/pets"[1]: `FETCH` is not a method ...`), and resolved into a
//! [`Routes`]: the table the [`RouteTable`](super::table::RouteTable) is built
//! from and that every per-endpoint table is indexed by.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::{HeaderValue, Method};

use super::template;
use crate::config::{Issues, PathBuf};
use crate::context::Endpoint;

/// The methods a route may declare, as written in config. `ANY` matches any
/// method the route does not declare explicitly (API Gateway's `ANY` method).
pub(crate) const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

/// A route, resolved: one `routes:` entry whose template parsed and whose
/// methods are all valid.
#[derive(Debug)]
pub(crate) struct RouteDef {
    /// The template as written (`/pets/{petId}`), also the resource path of
    /// its endpoints.
    pub(crate) template: Arc<str>,
    /// The same template in matchit's syntax (`{proxy+}` becomes `{*proxy}`).
    pub(crate) matchit: String,
    /// Path parameter names in path order.
    pub(crate) params: Arc<[Box<str>]>,
    /// Declared methods, explicit ones first and `ANY` (`None`) last, so a
    /// lookup that tries them in order lets an explicit method win.
    pub(crate) methods: Vec<Option<Method>>,
    /// The `Allow` header for a 405 on this route (`GET, POST`).
    pub(crate) allow: HeaderValue,
}

/// A stage, resolved: its name and, for each route (same order as
/// [`Routes::routes`]), its endpoints in the route's method order.
#[derive(Debug)]
pub(crate) struct StageDef {
    /// The stage name, the first path segment of its requests.
    pub(crate) name: Arc<str>,
    /// `endpoints[route][method]`, methods in [`RouteDef::methods`] order.
    pub(crate) endpoints: Vec<Vec<Arc<Endpoint>>>,
}

/// The routes and stages of a config, resolved: what the route layer serves
/// and what every per-endpoint table is sized from.
#[derive(Debug)]
pub(crate) struct Routes {
    /// Every valid route, in the config's (sorted) order.
    pub(crate) routes: Vec<RouteDef>,
    /// Every stage, in the config's (sorted) order.
    pub(crate) stages: Vec<StageDef>,
    /// Custom domains and their base path mappings.
    pub(crate) domains: Arc<super::domain::Domains>,
    /// Whether the execute-api form is served.
    pub(crate) execute_api: bool,
}

impl Routes {
    /// Every endpoint of every stage, in index order.
    pub(crate) fn endpoints(&self) -> impl Iterator<Item = &Arc<Endpoint>> {
        self.stages
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
    }

    /// How many endpoints there are: one more than the highest
    /// [`Endpoint::index`].
    pub(crate) fn endpoint_count(&self) -> usize {
        self.endpoints().count()
    }
}

/// The index of each route by its template, to resolve `RESOURCE/METHOD` keys.
pub(crate) type RouteIndex<'a> = HashMap<&'a str, usize>;

/// Indexes `routes` by template.
pub(crate) fn index(routes: &[RouteDef]) -> RouteIndex<'_> {
    routes
        .iter()
        .enumerate()
        .map(|(i, r)| (&*r.template, i))
        .collect()
}

/// Whether `s` is a valid stage name: 1 to 128 letters, digits, `-` or `_`
/// (API Gateway's `stageName` rule).
pub(crate) fn is_stage_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a stage's name (at `path`) and its `variables`: names are letters,
/// digits and `_`; values at most 512 characters without control characters
/// (API Gateway's stage variable rules).
pub(crate) fn check_stage(
    name: &str,
    variables: &BTreeMap<String, String>,
    path: &PathBuf,
    issues: &mut Issues,
) {
    if !is_stage_name(name) {
        issues.push(path, "a stage name is 1 to 128 letters, digits, `-` or `_`");
    }
    let vpath = path.field("variables");
    for (k, val) in variables {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            issues.push(
                &vpath.field(k),
                "a variable name is letters, digits and `_`",
            );
        }
        if val.len() > 512 || val.chars().any(char::is_control) {
            issues.push(
                &vpath.field(k),
                "a variable value is at most 512 characters, none of them control characters",
            );
        }
    }
}

/// Checks `routes:` (at `path`) and resolves every valid route. An invalid
/// route is reported and left out, so later checks do not repeat its error.
pub(crate) fn resolve_routes(
    config: &BTreeMap<String, Vec<String>>,
    path: &PathBuf,
    issues: &mut Issues,
) -> Vec<RouteDef> {
    if config.is_empty() {
        issues.push(path, "at least one route is required");
    }
    let mut out = Vec::new();
    let mut probe = matchit::Router::new();
    // Each inserted route's template by its matchit form, to name the route
    // a conflict is with (a scan per conflict would be quadratic).
    let mut inserted: HashMap<String, &str> = HashMap::new();
    for (template, methods) in config {
        let rpath = path.field(template);
        let parsed = match template::parse(template) {
            Ok(t) => t,
            Err(errs) => {
                for e in errs {
                    issues.push(&rpath, e);
                }
                continue;
            }
        };
        if let Err(e) = probe.insert(parsed.matchit.clone(), template.clone()) {
            let msg = match e {
                matchit::InsertError::Conflict { with } => {
                    let other = inserted.get(&with).copied().unwrap_or(with.as_str());
                    format!("conflicts with the route `{other}` (the same paths would match both)")
                }
                other => format!("cannot be routed: {other}"),
            };
            issues.push(&rpath, msg);
            continue;
        }
        inserted.insert(parsed.matchit.clone(), template);
        if methods.is_empty() {
            issues.push(&rpath, "a route needs at least one method");
        }
        let mut declared: Vec<Option<Method>> = Vec::new();
        for (i, m) in methods.iter().enumerate() {
            let mpath = rpath.index(i);
            if !METHODS.contains(&m.as_str()) {
                issues.push(
                    &mpath,
                    format!("`{m}` is not a method (use one of {})", METHODS.join(", ")),
                );
                continue;
            }
            let method = (m != "ANY")
                .then(|| Method::from_bytes(m.as_bytes()).ok())
                .flatten();
            if declared.contains(&method) {
                issues.push(&mpath, format!("`{m}` is listed twice"));
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

/// A parsed method key: which methods a settings block or plan entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MethodKey {
    /// `*/*`: every method of every route.
    All,
    /// `RESOURCE/*`: every method of the route with this index.
    Resource(usize),
    /// `RESOURCE/METHOD`: one method (`None` is `ANY`) of one route.
    Exact(usize, Option<Method>),
}

/// Parses `RESOURCE/METHOD`, `RESOURCE/*` or `*/*` against the routes. The
/// wildcard forms are refused unless `wildcards` (plans name single methods).
/// The error is the message to report at the key's path.
pub(crate) fn parse_method_key(
    key: &str,
    routes: &[RouteDef],
    route_index: &RouteIndex<'_>,
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
