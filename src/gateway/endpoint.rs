//! One endpoint's settings: the overlay of a stage's settings and its
//! overrides, checked where they are written and resolved once.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::config::{Authorization, Config, IntegrationConfig, MethodSettingsConfig};
use super::settings::{Merged, MethodSettings, Rate};
use super::validate::*;
use crate::config::PathBuf;
use crate::mapping::Mapping;

impl Validator {
    /// Checks the fields of one settings layer where they are written.
    pub(super) fn method_settings(
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
    pub(super) fn integration(
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

    pub(super) fn url_params(&mut self, params: &[String], ipath: &PathBuf, route: &RouteDef) {
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
    pub(super) fn integration_and_mapping(
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
    pub(super) fn finish(
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
}
