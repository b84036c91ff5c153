//! The route table of a config: its routes, checked, and the keys of
//! method overrides (`RESOURCE/METHOD`) resolved against it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use http::{HeaderValue, Method};

use super::config::{Config, MethodSettingsConfig};
use super::template;
use super::validate::*;
use crate::config::PathBuf;

pub(super) const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "ANY",
];

pub(super) fn is_stage_name(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Validator {
    pub(super) fn routes(&mut self, config: &Config, path: &PathBuf) -> Vec<RouteDef> {
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

    pub(super) fn overrides<'a>(
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
}

pub(super) enum MethodKey {
    All,
    Resource(usize),
    Exact(usize, Option<Method>),
}

/// Parses `RESOURCE/METHOD`, `RESOURCE/*` or `*/*` against the routes.
pub(super) fn parse_method_key(
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
