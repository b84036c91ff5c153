//! Patch operations (API Gateway's `patchOperations`, RFC 6902 in AWS's
//! dialect): the paths each resource accepts, turned into tollgate's
//! changes. An operation on a path a resource does not take is refused
//! whole (400 `BadRequestException`), as API Gateway refuses it.

use serde_json::Value;

use super::error::ApiError;
use crate::cache::CacheConfig;
use crate::gateway::{MethodSettingsConfig, PlanConfig, Stage, StageChange};
use crate::throttle::ThrottleConfig;

/// A throttle a patch makes where none was: API Gateway's account-level
/// defaults (10,000 requests per second, a burst of 5,000), the field the
/// patch names then set.
fn account_default() -> ThrottleConfig {
    ThrottleConfig::new(10_000.0, 5_000)
}

/// One patch operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct PatchOp {
    pub(crate) op: String,
    pub(crate) path: String,
    pub(crate) value: Option<String>,
    pub(crate) from: Option<String>,
}

/// `patchOperations` of a request body (absent: none).
pub(crate) fn read_ops(body: &Value) -> Result<Vec<PatchOp>, ApiError> {
    let Some(list) = body.get("patchOperations") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| ApiError::bad_request("patchOperations: a list"))?;
    list.iter()
        .map(|o| {
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
            Ok(PatchOp {
                op: text("op").ok_or_else(|| ApiError::bad_request("patch operation: no op"))?,
                path: text("path")
                    .ok_or_else(|| ApiError::bad_request("patch operation: no path"))?,
                value: text("value"),
                from: text("from"),
            })
        })
        .collect()
}

/// JSON Pointer unescaping (`~1` is `/`, `~0` is `~`).
pub(crate) fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn unsupported(op: &PatchOp) -> ApiError {
    ApiError::bad_request(format!(
        "Invalid patch path '{}' for operation '{}'",
        op.path, op.op
    ))
}

fn value_of(op: &PatchOp) -> Result<&str, ApiError> {
    op.value
        .as_deref()
        .ok_or_else(|| ApiError::bad_request(format!("Invalid null value for '{}'", op.path)))
}

fn parse_bool(op: &PatchOp) -> Result<bool, ApiError> {
    match value_of(op)? {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        v => Err(ApiError::bad_request(format!(
            "Invalid Boolean value '{v}' for '{}'",
            op.path
        ))),
    }
}

fn parse_f64(op: &PatchOp) -> Result<f64, ApiError> {
    value_of(op)?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid number for '{}'", op.path)))
}

fn parse_u32(op: &PatchOp) -> Result<u32, ApiError> {
    value_of(op)?
        .parse::<u32>()
        .map_err(|_| ApiError::bad_request(format!("Invalid integer for '{}'", op.path)))
}

/// UpdateStage's operations as lifecycle changes, in order. `stage` is
/// the stage as it stands (for the whole-value changes that one
/// operation on a map entry becomes).
pub(crate) fn stage_changes(stage: &Stage, ops: &[PatchOp]) -> Result<Vec<StageChange>, ApiError> {
    let mut config = stage.config.clone();
    // The file's canary marker is not the API's to keep in a changed config.
    config.canary = None;
    let mut overrides = stage
        .canary
        .as_ref()
        .map(|c| c.stage_variable_overrides.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for op in ops {
        let parts: Vec<&str> = op.path.split('/').skip(1).collect();
        match (op.op.as_str(), parts.as_slice()) {
            ("replace", ["deploymentId"]) => {
                out.push(StageChange::Deployment(value_of(op)?.to_owned()));
            }
            ("replace", ["description"]) => {
                out.push(StageChange::Description(op.value.clone()));
            }
            ("replace" | "add", ["variables", name]) => {
                config
                    .variables
                    .insert(unescape(name), value_of(op)?.to_owned());
                out.push(StageChange::Variables(config.variables.clone()));
            }
            ("remove", ["variables", name]) => {
                config.variables.remove(&unescape(name));
                out.push(StageChange::Variables(config.variables.clone()));
            }
            ("copy", ["deploymentId"])
                if op.from.as_deref() == Some("/canarySettings/deploymentId") =>
            {
                out.push(StageChange::DeploymentFromCanary);
            }
            ("copy", ["variables"])
                if op.from.as_deref() == Some("/canarySettings/stageVariableOverrides") =>
            {
                config.variables.extend(overrides.clone());
                out.push(StageChange::VariablesFromCanary);
            }
            ("replace", ["canarySettings", "percentTraffic"]) => {
                let p = parse_f64(op)?;
                if stage.canary.is_none()
                    && !out.iter().any(|c| matches!(c, StageChange::Canary(_)))
                {
                    out.push(StageChange::Canary(crate::gateway::CanarySettings::new(
                        stage.deployment_id.clone(),
                        p,
                    )));
                } else {
                    out.push(StageChange::CanaryPercent(p));
                }
            }
            ("replace", ["canarySettings", "deploymentId"]) => {
                let mut c = stage
                    .canary
                    .clone()
                    .unwrap_or_else(|| crate::gateway::CanarySettings::new(String::new(), 0.0));
                c.deployment_id = value_of(op)?.to_owned();
                c.stage_variable_overrides = overrides.clone();
                out.push(StageChange::Canary(c));
            }
            ("replace", ["canarySettings", "useStageCache"]) => {
                out.push(StageChange::CanaryUseStageCache(parse_bool(op)?));
            }
            ("replace" | "add", ["canarySettings", "stageVariableOverrides", name]) => {
                overrides.insert(unescape(name), value_of(op)?.to_owned());
                out.push(StageChange::CanaryOverrides(overrides.clone()));
            }
            ("remove", ["canarySettings", "stageVariableOverrides", name]) => {
                overrides.remove(&unescape(name));
                out.push(StageChange::CanaryOverrides(overrides.clone()));
            }
            ("remove", ["canarySettings"]) => out.push(StageChange::RemoveCanary),
            ("replace", ["cacheClusterEnabled"]) => {
                // The cache is in process: there is no cluster to start.
                // `false` turns the stage's caching off; `true` changes
                // nothing until a method enables caching.
                if !parse_bool(op)? {
                    config.settings.cache = Some(CacheConfig {
                        enabled: Some(false),
                        ..CacheConfig::default()
                    });
                    config.methods.values_mut().for_each(|m| {
                        if let Some(c) = &mut m.cache {
                            c.enabled = Some(false);
                        }
                    });
                    out.push(StageChange::Config(Box::new(config.clone())));
                }
            }
            ("replace" | "remove", [resource, method, group, field]) => {
                let layer = method_layer(&mut config, resource, method);
                match (*group, *field, op.op.as_str()) {
                    ("throttling", "rateLimit", "replace") => {
                        layer.throttle.get_or_insert_with(account_default).rate =
                            Some(parse_f64(op)?);
                    }
                    ("throttling", "burstLimit", "replace") => {
                        layer.throttle.get_or_insert_with(account_default).burst =
                            Some(parse_u32(op)?);
                    }
                    ("caching", "enabled", "replace") => {
                        layer.cache.get_or_insert_with(CacheConfig::default).enabled =
                            Some(parse_bool(op)?);
                    }
                    ("caching", "ttlInSeconds", "replace") => {
                        layer.cache.get_or_insert_with(CacheConfig::default).ttl =
                            Some(parse_u32(op)?);
                    }
                    ("throttling", "rateLimit" | "burstLimit", "remove") => layer.throttle = None,
                    ("caching", _, "remove") => layer.cache = None,
                    _ => return Err(unsupported(op)),
                }
                out.push(StageChange::Config(Box::new(config.clone())));
            }
            _ => return Err(unsupported(op)),
        }
    }
    Ok(out)
}

/// The settings layer a method settings path names: `*/*` is the stage's
/// `settings`, `~1pets/GET` the override `/pets/GET` (made when missing).
fn method_layer<'a>(
    config: &'a mut crate::gateway::StageConfig,
    resource: &str,
    method: &str,
) -> &'a mut MethodSettingsConfig {
    if resource == "*" && method == "*" {
        return &mut config.settings;
    }
    let resource = if resource == "*" {
        "*".to_owned()
    } else {
        unescape(resource)
    };
    config
        .methods
        .entry(format!("{resource}/{method}"))
        .or_default()
}

/// UpdateUsagePlan's operations applied to `plan` (its name cannot
/// change: the id is the name).
pub(crate) fn update_plan(plan: &mut PlanConfig, ops: &[PatchOp]) -> Result<(), ApiError> {
    for op in ops {
        let parts: Vec<&str> = op.path.split('/').skip(1).collect();
        match (op.op.as_str(), parts.as_slice()) {
            ("replace", ["description"]) => plan.description = op.value.clone(),
            ("replace", ["name"]) => {
                return Err(ApiError::bad_request(
                    "a usage plan's name is its id here and cannot change: create a new plan",
                ));
            }
            ("replace", ["throttle", "rateLimit"]) => {
                plan.throttle.get_or_insert_with(account_default).rate = Some(parse_f64(op)?);
            }
            ("replace", ["throttle", "burstLimit"]) => {
                plan.throttle.get_or_insert_with(account_default).burst = Some(parse_u32(op)?);
            }
            ("remove", ["throttle"]) => plan.throttle = None,
            ("replace", ["quota", "limit"]) => {
                let limit = u64::from(parse_u32(op)?);
                match &mut plan.quota {
                    Some(q) => q.limit = limit,
                    None => {
                        plan.quota = Some(crate::plans::QuotaConfig::new(
                            limit,
                            crate::plans::Period::Day,
                        ));
                    }
                }
            }
            ("replace", ["quota", "period"]) => {
                let period = super::wire::parse_period(value_of(op)?)?;
                plan.quota
                    .as_mut()
                    .ok_or_else(|| {
                        ApiError::bad_request("the plan has no quota: set /quota/limit first")
                    })?
                    .period = period;
            }
            ("replace", ["quota", "offset"]) => {
                let offset = u64::from(parse_u32(op)?);
                plan.quota
                    .as_mut()
                    .ok_or_else(|| {
                        ApiError::bad_request("the plan has no quota: set /quota/limit first")
                    })?
                    .offset = offset;
            }
            ("remove", ["quota"]) => plan.quota = None,
            ("add", ["apiStages"]) => {
                let entry = api_stage(value_of(op)?)?;
                if !plan.stages.contains(&entry) {
                    plan.stages.push(entry);
                }
            }
            ("remove", ["apiStages"]) => {
                let entry = api_stage(value_of(op)?)?;
                let stage = entry.split_once('/').map_or("", |(_, s)| s);
                plan.stages.retain(|s| s != &entry && s != stage);
            }
            ("replace", ["apiStages", _, "throttle", rest @ ..]) if rest.len() >= 3 => {
                // `/apiStages/API:STAGE/throttle/RESOURCE/METHOD/FIELD`,
                // RESOURCE escaped (`~1pets`).
                let field = rest[rest.len() - 1];
                let method = rest[rest.len() - 2];
                let resource = unescape(&rest[..rest.len() - 2].join("/"));
                let key = format!("{resource}/{method}");
                let m = plan.methods.entry(key).or_default();
                let t = m.throttle.get_or_insert_with(account_default);
                match field {
                    "rateLimit" => t.rate = Some(parse_f64(op)?),
                    "burstLimit" => t.burst = Some(parse_u32(op)?),
                    _ => return Err(unsupported(op)),
                }
            }
            ("remove", ["apiStages", _, "throttle", rest @ ..]) => {
                if rest.is_empty() {
                    plan.methods.clear();
                } else if rest.len() >= 2 {
                    let method = rest[rest.len() - 1];
                    let resource = unescape(&rest[..rest.len() - 1].join("/"));
                    plan.methods.remove(&format!("{resource}/{method}"));
                } else {
                    return Err(unsupported(op));
                }
            }
            _ => return Err(unsupported(op)),
        }
    }
    Ok(())
}

/// `apiId:stage` as a plan's `api/stage` entry.
fn api_stage(value: &str) -> Result<String, ApiError> {
    match value.split_once(':') {
        Some((api, stage)) if !api.is_empty() && !stage.is_empty() => Ok(format!("{api}/{stage}")),
        _ => Err(ApiError::bad_request(format!(
            "Invalid API stage `{value}`: give `apiId:stage`"
        ))),
    }
}
