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
