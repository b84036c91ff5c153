//! The overlay of one stage's method settings: the API's top-level
//! `settings`, then the API's `methods."RESOURCE/*"` and
//! `methods."RESOURCE/METHOD"` (part of the definition, so a deployment
//! snapshots them: an imported document's integrations), then the stage's
//! `settings`, then
//! `methods."*/*"`, then `methods."RESOURCE/*"`, then
//! `methods."RESOURCE/METHOD"`, each replacing only the fields it names (API
//! Gateway's stage settings and method overrides). Each slice merges its own
//! part of the layers with [`Merged::of`](crate::config::Merged::of).

use std::collections::{BTreeMap, HashMap};

use http::Method;

use super::config::{MethodSettingsConfig, StageConfig};
use crate::config::{Issues, PathBuf};
use crate::route::config::{MethodKey, RouteDef, RouteIndex, parse_method_key};

/// A settings layer and where it was written.
pub(super) type Layer<'a> = (&'a MethodSettingsConfig, PathBuf);

/// The settings layers of one stage, keyed for lookup per endpoint.
pub(super) struct Overlay<'a> {
    /// The API's top-level `settings`, under everything.
    api: Layer<'a>,
    /// The API's `methods."RESOURCE/*"` by route index.
    api_resource: HashMap<usize, Layer<'a>>,
    /// The API's `methods."RESOURCE/METHOD"` by route index and method.
    api_exact: HashMap<(usize, Option<Method>), Layer<'a>>,
    /// The stage's `settings` (every method's default).
    stage: Layer<'a>,
    /// `methods."*/*"`.
    pub(super) all: Option<Layer<'a>>,
    /// `methods."RESOURCE/*"` by route index.
    resource: HashMap<usize, Layer<'a>>,
    /// `methods."RESOURCE/METHOD"` by route index and method (`None`: ANY).
    exact: HashMap<(usize, Option<Method>), Layer<'a>>,
}

impl<'a> Overlay<'a> {
    /// Parses the keys of the API's `methods` and a stage's `methods` (the
    /// stage is at `path`) against the routes,
    /// reporting the ones that name no route or method, and calls `check`
    /// on every layer with the route it belongs to (`None` for stage-wide
    /// layers).
    pub(super) fn new(
        (api, api_methods): (
            &'a MethodSettingsConfig,
            &'a BTreeMap<String, MethodSettingsConfig>,
        ),
        stage: &'a StageConfig,
        path: &PathBuf,
        routes: &[RouteDef],
        route_index: &RouteIndex<'_>,
        issues: &mut Issues,
        mut check: impl FnMut(&MethodSettingsConfig, &PathBuf, Option<&RouteDef>, &mut Issues),
    ) -> Self {
        let (settings, settings_path) = (&stage.settings, path.field("settings"));
        let (methods, path) = (&stage.methods, &path.field("methods"));
        check(settings, &settings_path, None, issues);
        let mut api_resource = HashMap::new();
        let mut api_exact = HashMap::new();
        // Checked once for the API by `check_api_methods`, not per stage.
        for (key, s) in api_methods {
            let opath = PathBuf::default().field("methods").field(key);
            match parse_method_key(key, routes, route_index, true) {
                Ok(MethodKey::Resource(ri)) => {
                    api_resource.insert(ri, (s, opath));
                }
                Ok(MethodKey::Exact(ri, m)) => {
                    api_exact.insert((ri, m), (s, opath));
                }
                Ok(MethodKey::All) | Err(_) => {}
            }
        }
        let mut out = Overlay {
            api: (api, PathBuf::default().field("settings")),
            api_resource,
            api_exact,
            stage: (settings, settings_path),
            all: None,
            resource: HashMap::new(),
            exact: HashMap::new(),
        };
        for (key, s) in methods {
            let opath = path.field(key);
            match parse_method_key(key, routes, route_index, true) {
                Ok(MethodKey::All) => {
                    check(s, &opath, None, issues);
                    out.all = Some((s, opath));
                }
                Ok(MethodKey::Resource(ri)) => {
                    check(s, &opath, Some(&routes[ri]), issues);
                    out.resource.insert(ri, (s, opath));
                }
                Ok(MethodKey::Exact(ri, m)) => {
                    check(s, &opath, Some(&routes[ri]), issues);
                    out.exact.insert((ri, m), (s, opath));
                }
                Err(msg) => issues.push(&opath, msg),
            }
        }
        out
    }

    /// The layers of the method `method` of route `route`, outermost first,
    /// and the method's own `RESOURCE/METHOD` layer when it has one.
    pub(super) fn layers(
        &self,
        route: usize,
        method: &Option<Method>,
    ) -> (
        Vec<(&'a MethodSettingsConfig, &PathBuf)>,
        Option<&'a MethodSettingsConfig>,
    ) {
        let exact = self.exact.get(&(route, method.clone()));
        let layers = std::iter::once(&self.api)
            .chain(self.api_resource.get(&route))
            .chain(self.api_exact.get(&(route, method.clone())))
            .chain(std::iter::once(&self.stage))
            .chain(self.all.as_ref())
            .chain(self.resource.get(&route))
            .chain(exact)
            .map(|(s, p)| (*s, p))
            .collect();
        (layers, exact.map(|l| l.0))
    }
}

/// Checks the API's `methods` once: each key names a route and method
/// (`RESOURCE/METHOD` or `RESOURCE/*`; API-wide settings go in
/// `settings`), each layer's fields checked with `check`.
pub(super) fn check_api_methods(
    methods: &BTreeMap<String, MethodSettingsConfig>,
    routes: &[RouteDef],
    route_index: &RouteIndex<'_>,
    issues: &mut Issues,
    mut check: impl FnMut(&MethodSettingsConfig, &PathBuf, Option<&RouteDef>, &mut Issues),
) {
    let path = PathBuf::root().field("methods");
    for (key, s) in methods {
        let opath = path.field(key);
        match parse_method_key(key, routes, route_index, true) {
            Ok(MethodKey::All) => issues.push(
                &opath,
                "API-wide settings go in `settings`; `methods` names a resource",
            ),
            Ok(MethodKey::Resource(ri) | MethodKey::Exact(ri, _)) => {
                check(s, &opath, Some(&routes[ri]), issues);
            }
            Err(msg) => issues.push(&opath, msg),
        }
    }
}
