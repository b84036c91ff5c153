//! The wire shapes of AWS's service model (`apigateway` 2015-07-09,
//! rest-json): tollgate's records as the JSON botocore parses, and the
//! request fields read back. Timestamps are Unix seconds, as API Gateway
//! sends them; list pages wrap their entries in `item`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::error::ApiError;
use crate::gateway::{
    Api, BasePathMapping, CanarySettings, Deployment, DomainName, MethodSettingsConfig, PlanConfig,
    Stage,
};
use crate::keys::KeyRecord;
use crate::plans::{Period, PlanMethodConfig, QuotaConfig};
use crate::throttle::ThrottleConfig;

/// Unix seconds.
pub(crate) fn epoch(t: SystemTime) -> Value {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!(secs)
}

/// A resource's id: the first 10 hex digits of its path's SHA-256, so the
/// same path keeps its id across deployments and processes.
pub(crate) fn resource_id(path: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(path.as_bytes());
    crate::hex::encode(&digest[..5])
}

/// `RestApi`.
pub(crate) fn rest_api(api: &Api) -> Value {
    let d = &api.definition;
    let mut out = json!({
        "id": api.id,
        "name": api.name,
        "createdDate": epoch(api.created_date),
        "apiKeySource": "HEADER",
        "endpointConfiguration": { "types": ["REGIONAL"] },
        "disableExecuteApiEndpoint": d.disable_execute_api_endpoint,
        "rootResourceId": resource_id("/"),
    });
    if let Some(description) = &d.description {
        out["description"] = json!(description);
    }
    if let Some(types) = d
        .settings
        .binary_media_types
        .as_ref()
        .filter(|t| !t.is_empty())
    {
        out["binaryMediaTypes"] = json!(types);
    }
    if let Some(size) = d.settings.minimum_compression_size {
        out["minimumCompressionSize"] = json!(size);
    }
    out
}

/// `Resources`' entries: `/`, every route and every path between.
pub(crate) fn resources(api: &Api) -> Vec<Value> {
    let mut paths: BTreeMap<String, Vec<String>> = BTreeMap::new();
    paths.insert("/".to_owned(), Vec::new());
    for (route, methods) in &api.definition.routes {
        let mut at = String::new();
        for part in route.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            paths.entry(at.clone()).or_default();
        }
        paths
            .entry(route.clone())
            .or_default()
            .extend(methods.clone());
    }
    paths
        .iter()
        .map(|(path, methods)| {
            let mut out = json!({ "id": resource_id(path), "path": path });
            if path != "/" {
                let (parent, part) = path.rsplit_once('/').unwrap_or(("", path));
                let parent = if parent.is_empty() { "/" } else { parent };
                out["parentId"] = json!(resource_id(parent));
                out["pathPart"] = json!(part);
            }
            if !methods.is_empty() {
                let m: Map<String, Value> = methods
                    .iter()
                    .map(|m| {
                        let m = m.to_ascii_uppercase();
                        let verb = if m == "*" { "ANY".to_owned() } else { m };
                        (verb.clone(), json!({ "httpMethod": verb }))
                    })
                    .collect();
                out["resourceMethods"] = Value::Object(m);
            }
            out
        })
        .collect()
}

/// `Deployment`.
pub(crate) fn deployment(d: &Deployment) -> Value {
    let mut out = json!({ "id": d.id, "createdDate": epoch(d.created_date) });
    if let Some(text) = &d.description {
        out["description"] = json!(text);
    }
    out
}

/// A method settings key as API Gateway writes it: `~1pets~1{id}/GET`,
/// `*/*`.
pub(crate) fn escape_method_key(key: &str) -> String {
    match key.rsplit_once('/') {
        Some((resource, method)) if resource != "*" => {
            format!(
                "{}/{method}",
                resource.replace('~', "~0").replace('/', "~1")
            )
        }
        _ => key.to_owned(),
    }
}

/// `MethodSetting` for one settings layer, when it sets throttling or caching.
fn method_setting(s: &MethodSettingsConfig) -> Option<Value> {
    if s.throttle.is_none() && s.cache.is_none() {
        return None;
    }
    let mut out = json!({
        "metricsEnabled": false,
        "loggingLevel": "OFF",
        "dataTraceEnabled": false,
        "cacheDataEncrypted": false,
        "requireAuthorizationForCacheControl": true,
        "unauthorizedCacheControlHeaderStrategy": "SUCCEED_WITH_RESPONSE_HEADER",
    });
    if let Some(t) = &s.throttle {
        if let Some(rate) = t.rate {
            out["throttlingRateLimit"] = json!(rate);
        }
        if let Some(burst) = t.burst {
            out["throttlingBurstLimit"] = json!(burst);
        }
    }
    if let Some(c) = &s.cache {
        out["cachingEnabled"] = json!(c.enabled.unwrap_or(true));
        out["requireAuthorizationForCacheControl"] = json!(c.require_authorization.unwrap_or(true));
        out["unauthorizedCacheControlHeaderStrategy"] =
            serde_json::to_value(c.unauthorized.unwrap_or_default()).unwrap_or(Value::Null);
        if let Some(ttl) = c.ttl {
            out["cacheTtlInSeconds"] = json!(ttl);
        }
    }
    Some(out)
}

/// `CanarySettings`.
fn canary(c: &CanarySettings) -> Value {
    json!({
        "deploymentId": c.deployment_id,
        "percentTraffic": c.percent_traffic,
        "stageVariableOverrides": c.stage_variable_overrides,
        "useStageCache": c.use_stage_cache,
    })
}

/// Whether the stage caches at all (API Gateway's `cacheClusterEnabled`):
/// its stage-wide settings or any method override enable a cache.
pub(crate) fn caches(s: &Stage) -> bool {
    let on = |m: &MethodSettingsConfig| m.cache.as_ref().is_some_and(|c| c.enabled != Some(false));
    on(&s.config.settings) || s.config.methods.values().any(on)
}

/// `Stage`.
pub(crate) fn stage(s: &Stage) -> Value {
    let mut settings = Map::new();
    if let Some(v) = method_setting(&s.config.settings) {
        settings.insert("*/*".to_owned(), v);
    }
    for (key, m) in &s.config.methods {
        if let Some(v) = method_setting(m) {
            settings.insert(escape_method_key(key), v);
        }
    }
    let cached = caches(s);
    let mut out = json!({
        "stageName": s.name,
        "deploymentId": s.deployment_id,
        "cacheClusterEnabled": cached,
        "cacheClusterStatus": if cached { "AVAILABLE" } else { "NOT_AVAILABLE" },
        "methodSettings": settings,
        "variables": s.config.variables,
        "tracingEnabled": false,
        "createdDate": epoch(s.created_date),
        "lastUpdatedDate": epoch(s.last_updated_date),
    });
    if let Some(text) = &s.description {
        out["description"] = json!(text);
    }
    if let Some(c) = &s.canary {
        out["canarySettings"] = canary(c);
    }
    out
}

/// `ApiKey`; `value` only when given (CreateApiKey's answer).
pub(crate) fn api_key(r: &KeyRecord, value: Option<&str>) -> Value {
    let created = r.created.unix_timestamp();
    let mut out = json!({
        "id": &*r.id,
        "name": r.name,
        "enabled": r.enabled,
        "createdDate": created,
        "lastUpdatedDate": created,
        "stageKeys": [],
        "tags": r.tags,
    });
    if let Some(text) = &r.description {
        out["description"] = json!(text);
    }
    if let Some(v) = value {
        out["value"] = json!(v);
    }
    out
}

/// `UsagePlanKey`.
pub(crate) fn usage_plan_key(r: &KeyRecord) -> Value {
    json!({ "id": &*r.id, "type": "API_KEY", "name": r.name })
}

fn throttle(t: &ThrottleConfig) -> Value {
    let mut out = Map::new();
    if let Some(burst) = t.burst {
        out.insert("burstLimit".to_owned(), json!(burst));
    }
    if let Some(rate) = t.rate {
        out.insert("rateLimit".to_owned(), json!(rate));
    }
    Value::Object(out)
}

/// A period as API Gateway names it (`DAY`, `WEEK`, `MONTH`; tollgate's
/// others in the same style).
pub(crate) fn period_name(p: Period) -> String {
    p.as_str().to_ascii_uppercase()
}

/// Parses API Gateway's period names (and tollgate's others), any case.
pub(crate) fn parse_period(s: &str) -> Result<Period, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "minute" => Ok(Period::Minute),
        "hour" => Ok(Period::Hour),
        "day" => Ok(Period::Day),
        "week" => Ok(Period::Week),
        "month" => Ok(Period::Month),
        "year" => Ok(Period::Year),
        _ => Err(ApiError::bad_request(format!(
            "Invalid quota period `{s}`: DAY, WEEK or MONTH"
        ))),
    }
}

/// A plan's `stages` entry as `(apiId, stage)`; a bare stage belongs to
/// `only`, the one API.
pub(crate) fn split_stage<'a>(entry: &'a str, only: Option<&'a str>) -> (&'a str, &'a str) {
    entry
        .split_once('/')
        .unwrap_or((only.unwrap_or_default(), entry))
}

/// `UsagePlan`: the id is the plan's name.
pub(crate) fn usage_plan(name: &str, plan: &PlanConfig, only: Option<&str>) -> Value {
    let stages: Vec<Value> = plan
        .stages
        .iter()
        .map(|entry| {
            let (api, stage) = split_stage(entry, only);
            let mut out = json!({ "apiId": api, "stage": stage });
            let methods: Map<String, Value> = plan
                .methods
                .iter()
                .filter_map(|(k, m)| m.throttle.as_ref().map(|t| (k.clone(), throttle(t))))
                .collect();
            if !methods.is_empty() {
                out["throttle"] = Value::Object(methods);
            }
            out
        })
        .collect();
    let mut out = json!({ "id": name, "name": name, "apiStages": stages });
    if let Some(text) = &plan.description {
        out["description"] = json!(text);
    }
    if let Some(t) = &plan.throttle {
        out["throttle"] = throttle(t);
    }
    if let Some(q) = &plan.quota {
        out["quota"] = json!({
            "limit": q.limit,
            "offset": q.offset,
            "period": period_name(q.period),
        });
    }
    out
}

/// A `ThrottleSettings` object read into a throttle config.
fn read_throttle(v: &Value, at: &str) -> Result<ThrottleConfig, ApiError> {
    let mut t = ThrottleConfig::default();
    if let Some(b) = v.get("burstLimit") {
        let b = b
            .as_u64()
            .and_then(|b| u32::try_from(b).ok())
            .ok_or_else(|| ApiError::bad_request(format!("{at}.burstLimit: an integer")))?;
        t.burst = Some(b);
    }
    if let Some(r) = v.get("rateLimit") {
        let r = r
            .as_f64()
            .filter(|r| r.is_finite() && *r >= 0.0)
            .ok_or_else(|| ApiError::bad_request(format!("{at}.rateLimit: a number")))?;
        t.rate = Some(r);
    }
    Ok(t)
}

/// CreateUsagePlan's body as a plan (its name returned apart).
pub(crate) fn read_plan(body: &Value) -> Result<(String, PlanConfig), ApiError> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("name: a usage plan needs a name"))?
        .to_owned();
    // The name is the plan's id, a path segment of its operations.
    if name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().count() > 1024
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "name: up to 1024 characters, no `/` or control character, not `.` or `..`              (it is the plan's id)",
        ));
    }
    let mut plan = PlanConfig {
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..PlanConfig::default()
    };
    if let Some(t) = body.get("throttle") {
        plan.throttle = Some(read_throttle(t, "throttle")?);
    }
    if let Some(q) = body.get("quota") {
        plan.quota = Some(read_quota(q)?);
    }
    for (i, s) in body
        .get("apiStages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let (Some(api), Some(stage)) = (
            s.get("apiId").and_then(Value::as_str),
            s.get("stage").and_then(Value::as_str),
        ) else {
            return Err(ApiError::bad_request(format!(
                "apiStages[{i}]: give apiId and stage"
            )));
        };
        plan.stages.push(format!("{api}/{stage}"));
        if let Some(Value::Object(methods)) = s.get("throttle") {
            for (key, t) in methods {
                let m = PlanMethodConfig {
                    throttle: Some(read_throttle(t, &format!("apiStages[{i}].throttle.{key}"))?),
                };
                plan.methods.insert(key.clone(), m);
            }
        }
    }
    Ok((name, plan))
}

/// A `QuotaSettings` object.
pub(crate) fn read_quota(q: &Value) -> Result<QuotaConfig, ApiError> {
    let limit = q
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|l| *l >= 1)
        .ok_or_else(|| ApiError::bad_request("quota.limit: a positive integer"))?;
    let period = parse_period(q.get("period").and_then(Value::as_str).unwrap_or(""))?;
    let mut quota = QuotaConfig::new(limit, period);
    if let Some(o) = q.get("offset") {
        quota.offset = o
            .as_u64()
            .ok_or_else(|| ApiError::bad_request("quota.offset: a non-negative integer"))?;
    }
    Ok(quota)
}

/// `DomainName`.
pub(crate) fn domain(d: &DomainName) -> Value {
    json!({
        "domainName": d.name,
        "regionalDomainName": d.name,
        "endpointConfiguration": { "types": ["REGIONAL"] },
        "domainNameStatus": "AVAILABLE",
        "securityPolicy": "TLS_1_2",
    })
}

/// A base path as API Gateway shows it: `(none)` for the empty one.
pub(crate) fn base_path_name(base: &str) -> &str {
    if base.is_empty() { "(none)" } else { base }
}

/// `BasePathMapping`.
pub(crate) fn base_path_mapping(base: &str, m: &BasePathMapping) -> Value {
    json!({ "basePath": base_path_name(base), "restApiId": m.api_id, "stage": m.stage })
}

/// `Integration`, from a method's `x-amazon-apigateway-integration` (the
/// extension's fields are the shape's; `type` and `passthroughBehavior` in
/// upper case; `responses`, keyed by selection pattern, become
/// `integrationResponses`, keyed by status).
pub(crate) fn integration(resource_path: &str, ext: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in ext.as_object().into_iter().flatten() {
        match k.as_str() {
            "type" | "passthroughBehavior" => {
                out.insert(
                    k.clone(),
                    json!(v.as_str().unwrap_or_default().to_ascii_uppercase()),
                );
            }
            "responses" => {
                let mut responses = Map::new();
                for (pattern, r) in v.as_object().into_iter().flatten() {
                    let mut r = r.as_object().cloned().unwrap_or_default();
                    let status = r
                        .get("statusCode")
                        .and_then(Value::as_str)
                        .unwrap_or("200")
                        .to_owned();
                    if pattern != "default" {
                        r.insert("selectionPattern".into(), json!(pattern));
                    }
                    responses.insert(status, Value::Object(r));
                }
                out.insert("integrationResponses".into(), Value::Object(responses));
            }
            "httpMethod" | "uri" | "requestParameters" | "requestTemplates" | "timeoutInMillis"
            | "contentHandling" | "credentials" => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    out.insert("cacheNamespace".into(), json!(resource_id(resource_path)));
    out.insert("cacheKeyParameters".into(), json!([]));
    Value::Object(out)
}

/// `Method`: how a request reaches `verb` on `resource_path` (its
/// authorization, key requirement, parameters, validator, integration).
pub(crate) fn method(
    resource_path: &str,
    verb: &str,
    settings: &MethodSettingsConfig,
    integration: Option<&Value>,
) -> Value {
    use crate::auth::Authorization;
    let authorization = match settings.authorization {
        Some(Authorization::Sigv4) => "AWS_IAM",
        Some(Authorization::Authorizer) => "CUSTOM",
        _ => "NONE",
    };
    let mut out = json!({
        "httpMethod": verb,
        "authorizationType": authorization,
        "apiKeyRequired": settings.api_key_required.unwrap_or(false),
    });
    if let (Some(Authorization::Authorizer), Some(a)) =
        (settings.authorization, &settings.authorizer)
    {
        out["authorizerId"] = json!(a);
    }
    if let Some(v) = &settings.request_validator {
        out["requestValidatorId"] = json!(v);
    }
    if let Some(p) = settings
        .request_parameters
        .as_ref()
        .filter(|p| !p.is_empty())
    {
        out["requestParameters"] = json!(p);
    }
    if let Some(m) = settings.request_models.as_ref().filter(|m| !m.is_empty()) {
        out["requestModels"] = json!(m);
    }
    if let Some(i) = integration {
        out["methodIntegration"] = self::integration(resource_path, i);
    }
    out
}

/// `GatewayResponse` for `kind`: its override in `responses` (keyed by
/// the kind's name), else its default (`defaultResponse: true`). Header
/// overrides are `gatewayresponse.header.NAME` parameters; a message
/// override without templates shows as the JSON template it answers with.
pub(crate) fn gateway_response(
    kind: crate::GatewayResponseKind,
    r: Option<&crate::response::ResponseOverride>,
    profile: crate::response::ResponsesProfile,
) -> Value {
    let status = r
        .and_then(|r| r.status)
        .unwrap_or_else(|| profile.default_status(kind).as_u16());
    let mut out = json!({
        "responseType": kind.as_str(),
        "statusCode": status.to_string(),
        "defaultResponse": r.is_none(),
    });
    let Some(r) = r else {
        out["responseParameters"] = json!({});
        out["responseTemplates"] =
            json!({ "application/json": "{\"message\":$context.error.messageString}" });
        return out;
    };
    let params: Map<String, Value> = r
        .headers
        .iter()
        .map(|(k, v)| (format!("gatewayresponse.header.{k}"), json!(parameter(v))))
        .collect();
    out["responseParameters"] = Value::Object(params);
    out["responseTemplates"] = json!(r.aws_templates());
    out
}

/// A header value of a config override as API Gateway writes a
/// `responseParameters` source: plain text (the config's own shorthand for
/// a literal) in single quotes; a quoted literal, a source
/// (`method.request.header.Origin`, `context.requestId`,
/// `stageVariables.NAME`) or text with `$` references as written.
fn parameter(v: &str) -> String {
    let quoted = v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'');
    let source = ["method.request.", "context.", "stageVariables."]
        .iter()
        .any(|p| v.starts_with(p));
    if quoted || source || v.contains('$') {
        v.to_owned()
    } else {
        format!("'{v}'")
    }
}

/// PutGatewayResponse's body as an override: `statusCode` (a string or a
/// number, 100 to 599), `responseParameters` (`gatewayresponse.header.NAME`
/// to a source), `responseTemplates` (content type to template).
pub(crate) fn read_gateway_response(
    body: &Value,
) -> Result<crate::response::ResponseOverride, ApiError> {
    let mut r = crate::response::ResponseOverride::default();
    match body.get("statusCode") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = crate::response::aws_status(v)
                .ok_or_else(|| ApiError::bad_request("statusCode: a status from 100 to 599"))?;
            r.status = Some(n);
        }
    }
    for (k, v) in body
        .get("responseParameters")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let (name, v) = crate::response::aws_header_parameter(k, v).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid mapping expression specified: {k}: a \
                 `gatewayresponse.header.NAME` with a string source"
            ))
        })?;
        r.headers.insert(name.to_owned(), v.to_owned());
    }
    r.templates = string_map(body.get("responseTemplates"), "responseTemplates")?;
    Ok(r)
}

/// A JSON map of strings (`at` names it in the error).
pub(crate) fn string_map(
    v: Option<&Value>,
    at: &str,
) -> Result<BTreeMap<String, String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => Ok((k.clone(), s.to_owned())),
                None => Err(ApiError::bad_request(format!("{at}.{k}: a string"))),
            })
            .collect(),
        Some(_) => Err(ApiError::bad_request(format!("{at}: a map of strings"))),
    }
}
