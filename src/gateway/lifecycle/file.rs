//! A stage's `canary` section in a config file: checked with the config,
//! applied by the lifecycle (its definition read and deployed).

use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderName;

use super::model::{CanarySettings, Deployment, LifecycleError, Sticky};
use super::state::{State, check_definition, definition_of, new_id};
use crate::config::{Issues, PathBuf};
use crate::gateway::{CanaryConfig, Config};

/// `api_key`, `client_ip` or `header.NAME`.
pub(crate) fn parse_sticky(s: &str) -> Option<Sticky> {
    match s {
        "api_key" => Some(Sticky::ApiKey),
        "client_ip" => Some(Sticky::ClientIp),
        _ => {
            let name = s.strip_prefix("header.")?;
            HeaderName::from_bytes(name.as_bytes())
                .ok()
                .map(Sticky::Header)
        }
    }
}

/// Checks a stage's `canary` section at `path`.
pub(crate) fn check(c: &CanaryConfig, path: &PathBuf, issues: &mut Issues) {
    if !(c.percent_traffic.is_finite() && (0.0..=100.0).contains(&c.percent_traffic)) {
        issues.push(
            &path.field("percent_traffic"),
            format!("must be between 0 and 100 (got {})", c.percent_traffic),
        );
    }
    if let Some(s) = &c.sticky
        && parse_sticky(s).is_none()
    {
        issues.push(
            &path.field("sticky"),
            format!("`{s}` is not `api_key`, `client_ip` or `header.NAME`"),
        );
    }
    if c.config.as_deref() == Some("") {
        issues.push(&path.field("config"), "must name a file");
    }
}

/// Checks a multi-API config (`apis`): what can be checked before its
/// files are read.
pub(crate) fn check_many(config: &Config) -> Result<(), crate::config::ConfigError> {
    let mut issues = Issues(Vec::new());
    let root = PathBuf::root();
    if !config.routes.is_empty() {
        issues.push(
            &root.field("routes"),
            "a config with `apis` has its routes in each API's file",
        );
    }
    if !config.stages.is_empty() {
        issues.push(
            &root.field("stages"),
            "a config with `apis` has its stages in each API's file",
        );
    }
    for (id, api) in &config.apis {
        let at = root.field("apis").field(id);
        if !super::state::is_api_id(id) {
            issues.push(
                &at,
                format!("not an API id ({})", super::state::API_ID_RULE),
            );
        }
        match (&api.config, &api.openapi) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => issues.push(&at, "give exactly one of `config` and `openapi`"),
        }
    }
    for (host, domain) in &config.domains {
        for (base, mapping) in &domain.base_paths {
            let at = root
                .field("domains")
                .field(host)
                .field("base_paths")
                .field(base)
                .field("api");
            match &mapping.api {
                None => issues.push(&at, "name the API (the config has several)"),
                Some(a) if !config.apis.contains_key(a) => {
                    issues.push(&at, format!("unknown API `{a}`"));
                }
                Some(_) => {}
            }
        }
    }
    for (name, plan) in &config.plans {
        for (i, stage) in plan.stages.iter().enumerate() {
            let known = stage
                .split_once('/')
                .is_some_and(|(a, s)| config.apis.contains_key(a) && !s.is_empty());
            if !known {
                issues.push(
                    &root.field("plans").field(name).field("stages").index(i),
                    format!("`{stage}` is not `api/stage` of one of `apis`"),
                );
            }
        }
    }
    if let Some(t) = &config.throttle {
        t.check_complete(&root.field("throttle"), &mut issues);
    }
    config
        .api_key_options
        .check(&root.field("api_key_options"), &mut issues);
    if issues.0.is_empty() {
        Ok(())
    } else {
        Err(crate::config::ConfigError::new(
            crate::config::ConfigErrorKind::Invalid,
            issues.0,
        ))
    }
}

impl State {
    /// Sets stage `stage` of `api_id`'s canary from its file section: the
    /// named file's definition deployed (a deployment that has it already
    /// is reused), or the stage's own deployment.
    pub(super) fn file_canary(
        &mut self,
        api_id: &str,
        stage: &str,
        c: Option<&CanaryConfig>,
        now: SystemTime,
    ) -> Result<(), LifecycleError> {
        let at = format!("stages.{stage}.canary");
        let api = self
            .apis
            .get_mut(api_id)
            .ok_or_else(|| LifecycleError::not_found(format!("no API `{api_id}`")))?;
        let Some(c) = c else {
            if let Some(s) = api.stages.get_mut(stage) {
                s.canary = None;
            }
            return Ok(());
        };
        let deployment_id = match &c.config {
            None => api
                .stages
                .get(stage)
                .map(|s| s.deployment_id.clone())
                .unwrap_or_default(),
            Some(path) => {
                let config = Config::from_path(path)
                    .map_err(|e| LifecycleError::invalid(&format!("{at}.config ({path})"), &e))?;
                let mut definition = definition_of(config);
                definition.name = Some(api.api.name.clone());
                check_definition(&definition)?;
                match api
                    .deployments
                    .iter()
                    .rev()
                    .find(|d| *d.definition == definition)
                {
                    Some(d) => d.id.clone(),
                    None => {
                        let d = Deployment {
                            id: new_id(),
                            api_id: api_id.to_owned(),
                            description: Some(format!("canary from {path}")),
                            created_date: now,
                            definition: Arc::new(definition),
                        };
                        let id = d.id.clone();
                        api.deployments.push(d);
                        id
                    }
                }
            }
        };
        let settings = CanarySettings {
            deployment_id,
            percent_traffic: c.percent_traffic,
            stage_variable_overrides: c.stage_variable_overrides.clone(),
            use_stage_cache: c.use_stage_cache,
            sticky: c.sticky.as_deref().and_then(parse_sticky),
        };
        let s = api.stages.get_mut(stage).ok_or_else(|| {
            LifecycleError::not_found(format!("API `{api_id}` has no stage `{stage}`"))
        })?;
        if s.canary.as_ref() != Some(&settings) {
            s.canary = Some(settings);
            s.last_updated_date = now;
        }
        Ok(())
    }
}
