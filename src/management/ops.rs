//! The operations: a signed call's method and path to a lifecycle, key or
//! plan operation, its answer in the service model's shape.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};
use time::Date;

use super::Inner;
use super::error::ApiError;
use super::patch::{self, PatchOp};
use super::wire;
use crate::Body;
use crate::gateway::{BasePathMapping, CanarySettings, DeploymentInput, StageConfig};
use crate::keys::{KeyRecord, NewKey};
use crate::openapi::{BasePath, ExportOptions, ExportType, ImportMode, ImportOptions};
use crate::secret::Secret;

/// A call as the operations read it.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a Method,
    /// Path segments, percent-decoded.
    pub(crate) segments: Vec<String>,
    /// Query parameters, percent-decoded (the last of a repeated name).
    pub(crate) query: HashMap<String, String>,
    /// The `Accept` header.
    pub(crate) accept: Option<&'a str>,
    pub(crate) body: Bytes,
}

impl Call<'_> {
    fn json(&self) -> Result<Value, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        let v: Value = serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON in the request body: {e}")))?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(ApiError::bad_request(
                "The request body must be a JSON object",
            ))
        }
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        self.query(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn text(&self) -> Result<&str, ApiError> {
        std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::bad_request("The request body is not UTF-8"))
    }
}

fn ok(status: StatusCode, value: &Value) -> Response<Body> {
    let mut res = Response::new(Body::from(value.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

fn accepted() -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::ACCEPTED;
    res
}

/// A page of `items` as the model's list shapes have it (`item`,
/// `position`): `limit` 1 to 500 (default 25), `position` an opaque
/// offset handed back by the previous page.
fn page(call: &Call<'_>, items: Vec<Value>, field: &str) -> Result<Value, ApiError> {
    let limit = match call.query("limit") {
        None => 25,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=500).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit: 1 to 500"))?,
    };
    let start = match call.query("position") {
        None => 0,
        Some(p) => p
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("Invalid position"))?,
    };
    let total = items.len();
    let end = start.saturating_add(limit).min(total);
    let slice: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let mut out = json!({ field: slice });
    if end < total {
        out["position"] = json!(end.to_string());
    }
    Ok(out)
}

/// Runs the call. `Err` answers are API Gateway's error shapes.
pub(crate) async fn dispatch(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    let m = call.method;
    check_identifiers(inner, &segs)?;
    match (segs.as_slice(), m) {
        (["restapis"], &Method::GET) => {
            let items = inner.lifecycle.apis().iter().map(wire::rest_api).collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["restapis"], &Method::POST) if call.query("mode") == Some("import") => {
            import_rest_api(inner, call).await
        }
        (["restapis"], &Method::POST) => create_rest_api(inner, call).await,
        (["restapis", id], &Method::GET) => Ok(ok(
            StatusCode::OK,
            &wire::rest_api(&inner.lifecycle.api(id)?),
        )),
        (["restapis", id], &Method::PUT) => put_rest_api(inner, call, id).await,
        (["restapis", id], &Method::DELETE) => {
            inner.lifecycle.delete_api(id).await?;
            Ok(accepted())
        }
        (["restapis", id], &Method::PATCH) => update_rest_api(inner, call, id).await,
        (["restapis", id, "resources"], &Method::GET) => {
            let items = wire::resources(&inner.lifecycle.api(id)?);
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["restapis", id, "resources", r], &Method::GET) => {
            let resource = find_resource(inner, id, r)?;
            Ok(ok(StatusCode::OK, &resource))
        }
        (["restapis", id, "resources", r, "methods", verb], &Method::GET) => {
            let (path, settings, integration) = find_method(inner, id, r, verb)?;
            let out = wire::method(
                &path,
                &verb.to_ascii_uppercase(),
                &settings,
                integration.as_ref(),
            );
            Ok(ok(StatusCode::OK, &out))
        }
        (
            [
                "restapis",
                id,
                "resources",
                r,
                "methods",
                verb,
                "integration",
            ],
            &Method::GET,
        ) => {
            let (path, _, integration) = find_method(inner, id, r, verb)?;
            let integration = integration.ok_or_else(|| {
                ApiError::not_found(
                    "Invalid Integration identifier specified (the wrapped service answers this method)",
                )
            })?;
            Ok(ok(StatusCode::OK, &wire::integration(&path, &integration)))
        }
        (["restapis", id, "gatewayresponses"], &Method::GET) => {
            let api = inner.lifecycle.api(id)?;
            let d = &api.definition;
            let items = crate::GatewayResponseKind::ALL
                .iter()
                .map(|k| {
                    wire::gateway_response(*k, d.responses.get(k.as_str()), d.responses_profile)
                })
                .collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["restapis", id, "gatewayresponses", t], &Method::GET) => {
            let api = inner.lifecycle.api(id)?;
            let kind = response_kind(t)?;
            let d = &api.definition;
            let out =
                wire::gateway_response(kind, d.responses.get(kind.as_str()), d.responses_profile);
            Ok(ok(StatusCode::OK, &out))
        }
        (["restapis", id, "gatewayresponses", t], &Method::PUT) => {
            let kind = response_kind(t)?;
            let r = wire::read_gateway_response(&call.json()?)?;
            let mut definition = crate::Config::clone(&inner.lifecycle.api(id)?.definition);
            definition.responses.insert(kind.as_str().to_owned(), r);
            let api = inner.lifecycle.put_api(id, definition).await?;
            let d = &api.definition;
            let out =
                wire::gateway_response(kind, d.responses.get(kind.as_str()), d.responses_profile);
            Ok(ok(StatusCode::CREATED, &out))
        }
        (["restapis", id, "gatewayresponses", t], &Method::DELETE) => {
            let kind = response_kind(t)?;
            let mut definition = crate::Config::clone(&inner.lifecycle.api(id)?.definition);
            if definition.responses.remove(kind.as_str()).is_some() {
                inner.lifecycle.put_api(id, definition).await?;
            }
            Ok(accepted())
        }
        (["restapis", id, "deployments"], &Method::GET) => {
            let items = inner
                .lifecycle
                .deployments(id)?
                .iter()
                .map(wire::deployment)
                .collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["restapis", id, "deployments"], &Method::POST) => {
            create_deployment(inner, call, id).await
        }
        (["restapis", id, "deployments", d], &Method::GET) => Ok(ok(
            StatusCode::OK,
            &wire::deployment(&inner.lifecycle.deployment(id, d)?),
        )),
        (["restapis", id, "deployments", d], &Method::DELETE) => {
            inner.lifecycle.delete_deployment(id, d).await?;
            Ok(accepted())
        }
        (["restapis", id, "stages"], &Method::GET) => {
            let items: Vec<Value> = inner
                .lifecycle
                .stages(id)?
                .iter()
                .filter(|s| {
                    call.query("deploymentId")
                        .is_none_or(|d| s.deployment_id == d)
                })
                .map(wire::stage)
                .collect();
            Ok(ok(StatusCode::OK, &json!({ "item": items })))
        }
        (["restapis", id, "stages"], &Method::POST) => create_stage(inner, call, id).await,
        (["restapis", id, "stages", s], &Method::GET) => Ok(ok(
            StatusCode::OK,
            &wire::stage(&inner.lifecycle.stage(id, s)?),
        )),
        (["restapis", id, "stages", s], &Method::PATCH) => {
            let stage = inner.lifecycle.stage(id, s)?;
            let ops = patch::read_ops(&call.json()?)?;
            let changes = patch::stage_changes(&stage, &ops)?;
            let stage = inner.lifecycle.update_stage(id, s, changes).await?;
            Ok(ok(StatusCode::OK, &wire::stage(&stage)))
        }
        (["restapis", id, "stages", s], &Method::DELETE) => {
            inner.lifecycle.delete_stage(id, s).await?;
            Ok(accepted())
        }
        (["restapis", id, "stages", s, "cache", "data"], &Method::DELETE) => {
            inner.lifecycle.stage(id, s)?;
            if let Some(gateway) = inner.lifecycle.gateway(id, s) {
                gateway.flush_cache(s).await?;
            }
            Ok(accepted())
        }
        (["restapis", id, "stages", s, "cache", "authorizers"], &Method::DELETE) => {
            // Authorizer verdicts are cached per gateway and expire by
            // their TTL; a stage's gateway is rebuilt (its verdicts
            // dropped) by any change to it.
            inner.lifecycle.stage(id, s)?;
            Ok(accepted())
        }
        (["restapis", id, "stages", s, "exports", kind], &Method::GET) => {
            export(inner, call, id, s, kind)
        }
        (["apikeys"], &Method::GET) => get_api_keys(inner, call).await,
        (["apikeys"], &Method::POST) if call.query("mode") == Some("import") => {
            import_api_keys(inner, call).await
        }
        (["apikeys"], &Method::POST) => create_api_key(inner, call).await,
        (["apikeys", k], &Method::GET) => {
            let record = find_key(inner, k).await?;
            Ok(ok(StatusCode::OK, &wire::api_key(&record, None)))
        }
        (["apikeys", k], &Method::PATCH) => update_api_key(inner, call, k).await,
        (["apikeys", k], &Method::DELETE) => {
            if !inner.lifecycle.key_manager().delete(k).await? {
                return Err(ApiError::not_found("Invalid API Key identifier specified"));
            }
            Ok(accepted())
        }
        (["usageplans"], &Method::GET) => {
            let only = inner.only_api();
            // `keyId`: the plans that key is in.
            let of_key = match call.query("keyId") {
                Some(k) => Some(find_key(inner, k).await?.plans),
                None => None,
            };
            let items = inner
                .lifecycle
                .plans()
                .iter()
                .filter(|(name, _)| {
                    of_key
                        .as_ref()
                        .is_none_or(|plans| plans.iter().any(|p| &**p == name.as_str()))
                })
                .map(|(name, p)| wire::usage_plan(name, p, only.as_deref()))
                .collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["usageplans"], &Method::POST) => {
            let (name, plan) = wire::read_plan(&call.json()?)?;
            if inner.lifecycle.plans().contains_key(&name) {
                return Err(ApiError::conflict(format!(
                    "A usage plan named `{name}` exists (a plan's id is its name here)"
                )));
            }
            inner.lifecycle.put_plan(&name, plan.clone()).await?;
            let only = inner.only_api();
            Ok(ok(
                StatusCode::CREATED,
                &wire::usage_plan(&name, &plan, only.as_deref()),
            ))
        }
        (["usageplans", p], &Method::GET) => {
            let plan = find_plan(inner, p)?;
            let only = inner.only_api();
            Ok(ok(
                StatusCode::OK,
                &wire::usage_plan(p, &plan, only.as_deref()),
            ))
        }
        (["usageplans", p], &Method::PATCH) => {
            let mut plan = find_plan(inner, p)?;
            patch::update_plan(&mut plan, &patch::read_ops(&call.json()?)?)?;
            inner.lifecycle.put_plan(p, plan.clone()).await?;
            let only = inner.only_api();
            Ok(ok(
                StatusCode::OK,
                &wire::usage_plan(p, &plan, only.as_deref()),
            ))
        }
        (["usageplans", p], &Method::DELETE) => {
            find_plan(inner, p)?;
            inner.lifecycle.delete_plan(p).await?;
            Ok(accepted())
        }
        (["usageplans", p, "keys"], &Method::GET) => {
            find_plan(inner, p)?;
            let name = call.query("name");
            let items = inner
                .lifecycle
                .key_manager()
                .list()
                .await?
                .iter()
                .filter(|r| r.plans.iter().any(|q| &**q == *p))
                .filter(|r| name.is_none_or(|n| r.name.starts_with(n)))
                .map(|r| wire::usage_plan_key(r))
                .collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["usageplans", p, "keys"], &Method::POST) => {
            find_plan(inner, p)?;
            let body = call.json()?;
            let key_id = body.get("keyId").and_then(Value::as_str).unwrap_or("");
            if body.get("keyType").and_then(Value::as_str) != Some("API_KEY") {
                return Err(ApiError::bad_request("keyType: API_KEY"));
            }
            let record = find_key(inner, key_id).await?;
            if record.plans.iter().any(|q| &**q == *p) {
                return Err(ApiError::conflict(format!(
                    "Usage plan {p} already contains API key {key_id}"
                )));
            }
            let record = inner.lifecycle.key_manager().attach(key_id, p).await?;
            Ok(ok(StatusCode::CREATED, &wire::usage_plan_key(&record)))
        }
        (["usageplans", p, "keys", k], &Method::GET) => {
            find_plan(inner, p)?;
            let record = plan_key(inner, p, k).await?;
            Ok(ok(StatusCode::OK, &wire::usage_plan_key(&record)))
        }
        (["usageplans", p, "keys", k], &Method::DELETE) => {
            find_plan(inner, p)?;
            plan_key(inner, p, k).await?;
            inner.lifecycle.key_manager().detach(k, p).await?;
            Ok(accepted())
        }
        (["usageplans", p, "usage"], &Method::GET) => get_usage(inner, call, p).await,
        (["usageplans", p, "keys", k, "usage"], &Method::PATCH) => {
            update_usage(inner, call, p, k).await
        }
        (["domainnames"], &Method::GET) => {
            let items = inner.lifecycle.domains().iter().map(wire::domain).collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["domainnames"], &Method::POST) => {
            let body = call.json()?;
            let name = body
                .get("domainName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("domainName: required"))?;
            let domain = inner.lifecycle.create_domain(name).await?;
            Ok(ok(StatusCode::CREATED, &wire::domain(&domain)))
        }
        (["domainnames", d], &Method::GET) => {
            Ok(ok(StatusCode::OK, &wire::domain(&find_domain(inner, d)?)))
        }
        (["domainnames", d], &Method::DELETE) => {
            find_domain(inner, d)?;
            inner.lifecycle.delete_domain(d).await?;
            Ok(accepted())
        }
        (["domainnames", d, "basepathmappings"], &Method::GET) => {
            let items = find_domain(inner, d)?
                .base_path_mappings
                .iter()
                .map(|(b, m)| wire::base_path_mapping(b, m))
                .collect();
            Ok(ok(StatusCode::OK, &page(call, items, "item")?))
        }
        (["domainnames", d, "basepathmappings"], &Method::POST) => {
            let body = call.json()?;
            let api = body
                .get("restApiId")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("restApiId: required"))?;
            let base = base_path(body.get("basePath").and_then(Value::as_str).unwrap_or(""));
            let stage = match body.get("stage").and_then(Value::as_str) {
                Some(s) => s.to_owned(),
                None => {
                    // API Gateway's mapping without a stage follows the
                    // API's only stage; tollgate needs one named.
                    let stages = inner.lifecycle.stages(api)?;
                    match stages.as_slice() {
                        [only] => only.name.clone(),
                        _ => return Err(ApiError::bad_request("stage: name the stage to map")),
                    }
                }
            };
            let target = BasePathMapping::new(api, stage);
            inner
                .lifecycle
                .create_base_path_mapping(d, &base, target.clone())
                .await?;
            Ok(ok(
                StatusCode::CREATED,
                &wire::base_path_mapping(&base, &target),
            ))
        }
        (["domainnames", d, "basepathmappings", b], &Method::GET) => {
            let base = base_path(b);
            let domain = find_domain(inner, d)?;
            let m = domain.base_path_mappings.get(&base).ok_or_else(|| {
                ApiError::not_found("Invalid base path mapping identifier specified")
            })?;
            Ok(ok(StatusCode::OK, &wire::base_path_mapping(&base, m)))
        }
        (["domainnames", d, "basepathmappings", b], &Method::DELETE) => {
            let base = base_path(b);
            let domain = find_domain(inner, d)?;
            if !domain.base_path_mappings.contains_key(&base) {
                return Err(ApiError::not_found(
                    "Invalid base path mapping identifier specified",
                ));
            }
            inner.lifecycle.delete_base_path_mapping(d, &base).await?;
            Ok(accepted())
        }
        _ if known_path(&segs) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadRequestException",
            format!("{m} is not an operation on this resource"),
        )),
        _ => Err(ApiError::not_found("Invalid request path")),
    }
}

/// An unknown API, stage or deployment in the path answers API Gateway's
/// `NotFoundException` message for it, whatever the operation.
fn check_identifiers(inner: &Inner, segs: &[&str]) -> Result<(), ApiError> {
    let ["restapis", id, rest @ ..] = segs else {
        return Ok(());
    };
    if inner.lifecycle.api(id).is_err() {
        return Err(ApiError::not_found("Invalid API identifier specified"));
    }
    match rest {
        ["stages", s, ..] if inner.lifecycle.stage(id, s).is_err() => {
            Err(ApiError::not_found("Invalid stage identifier specified"))
        }
        ["deployments", d, ..] if inner.lifecycle.deployment(id, d).is_err() => Err(
            ApiError::not_found("Invalid Deployment identifier specified"),
        ),
        _ => Ok(()),
    }
}

/// A response type tollgate answers; API Gateway's others (`WAF_FILTERED`,
/// `AUTHORIZER_FAILURE`, ...) are `NotFoundException`.
fn response_kind(t: &str) -> Result<crate::GatewayResponseKind, ApiError> {
    t.parse().map_err(|_| {
        ApiError::not_found(format!(
            "Invalid gateway response type `{t}`: tollgate answers {}",
            crate::GatewayResponseKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// `Resource` by its id.
fn find_resource(inner: &Inner, api: &str, id: &str) -> Result<Value, ApiError> {
    wire::resources(&inner.lifecycle.api(api)?)
        .into_iter()
        .find(|r| r["id"] == id)
        .ok_or_else(|| ApiError::not_found("Invalid Resource identifier specified"))
}

/// A method of a resource: its path, merged settings and integration.
fn find_method(
    inner: &Inner,
    api: &str,
    resource: &str,
    verb: &str,
) -> Result<(String, crate::gateway::MethodSettingsConfig, Option<Value>), ApiError> {
    let definition = inner.lifecycle.api(api)?.definition;
    let r = find_resource(inner, api, resource)?;
    let path = r["path"].as_str().unwrap_or("/").to_owned();
    let verb = verb.to_ascii_uppercase();
    let listed = r
        .get("resourceMethods")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(&verb));
    let found = listed
        .then(|| crate::openapi::definition_method(&definition, &path, &verb))
        .flatten()
        .ok_or_else(|| ApiError::not_found("Invalid Method identifier specified"))?;
    Ok((path, found.0, found.1))
}

async fn update_rest_api(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let api = inner.lifecycle.api(id)?;
    let ops = patch::read_ops(&call.json()?)?;
    let mut name = None;
    let mut description = api.definition.description.clone();
    // Every operation is read before anything changes.
    for op in &ops {
        match (op.op.as_str(), op.path.as_str()) {
            ("replace", "/name") => name = Some(op.value.clone().unwrap_or_default()),
            ("replace", "/description") => description = op.value.clone(),
            ("remove", "/description") => description = None,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid patch path '{}' for operation '{}'",
                    op.path, op.op
                )));
            }
        }
    }
    let mut api = api;
    if let Some(name) = name {
        api = inner.lifecycle.rename_api(id, &name).await?;
    }
    if description != api.definition.description {
        let mut definition = crate::Config::clone(&api.definition);
        definition.description = description;
        api = inner.lifecycle.put_api(id, definition).await?;
    }
    Ok(ok(StatusCode::OK, &wire::rest_api(&api)))
}

/// Whether some operation serves this path (for 405 against 404).
fn known_path(segs: &[&str]) -> bool {
    matches!(
        segs,
        ["restapis", ..] | ["apikeys", ..] | ["usageplans", ..] | ["domainnames", ..]
    )
}

/// A base path as stored: `(none)` and empty are the empty mapping.
fn base_path(b: &str) -> String {
    if b == "(none)" {
        String::new()
    } else {
        b.to_owned()
    }
}

fn find_domain(inner: &Inner, name: &str) -> Result<crate::gateway::DomainName, ApiError> {
    inner
        .lifecycle
        .domains()
        .into_iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| ApiError::not_found("Invalid domain name identifier specified"))
}

fn find_plan(inner: &Inner, id: &str) -> Result<crate::gateway::PlanConfig, ApiError> {
    inner
        .lifecycle
        .plans()
        .remove(id)
        .ok_or_else(|| ApiError::not_found("Invalid Usage Plan ID specified"))
}

async fn find_key(inner: &Inner, id: &str) -> Result<KeyRecord, ApiError> {
    inner
        .lifecycle
        .key_manager()
        .list()
        .await?
        .into_iter()
        .find(|r| &*r.id == id)
        .map(|r| (*r).clone())
        .ok_or_else(|| ApiError::not_found("Invalid API Key identifier specified"))
}

async fn plan_key(inner: &Inner, plan: &str, id: &str) -> Result<KeyRecord, ApiError> {
    let record = find_key(inner, id).await?;
    if record.plans.iter().any(|q| &**q == plan) {
        Ok(record)
    } else {
        Err(ApiError::not_found("Invalid Usage Plan Key ID specified"))
    }
}

/// The import options a call's query gives (`failonwarnings`, `mode`,
/// `basepath`).
fn import_options(inner: &Inner, call: &Call<'_>) -> Result<ImportOptions, ApiError> {
    let mode = match call.query("mode") {
        None | Some("merge") => ImportMode::Merge,
        Some("overwrite" | "import") => ImportMode::Overwrite,
        Some(other) => return Err(ApiError::bad_request(format!("Invalid mode `{other}`"))),
    };
    let basepath = match call.query("basepath").or_else(|| call.query("basePath")) {
        None | Some("ignore") => BasePath::Ignore,
        Some("prepend") => BasePath::Prepend,
        Some("split") => BasePath::Split,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid basepath `{other}`: ignore, prepend or split"
            )));
        }
    };
    let options = ImportOptions {
        mode,
        basepath,
        fail_on_warnings: call.flag("failonwarnings"),
        functions: inner.lifecycle.lambda_names(),
        ..ImportOptions::default()
    };
    Ok(options)
}

fn import_error(e: crate::openapi::ImportError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

async fn create_rest_api(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let body = call.json()?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("name: required"))?;
    let api = match body.get("cloneFrom").and_then(Value::as_str) {
        Some(from) => inner.lifecycle.clone_api(from, None, name).await?,
        None => {
            inner
                .lifecycle
                .create_api(None, name, crate::Config::default())
                .await?
        }
    };
    Ok(ok(StatusCode::CREATED, &wire::rest_api(&api)))
}

async fn import_rest_api(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let mut options = import_options(inner, call)?;
    options.mode = ImportMode::Overwrite;
    let imported = crate::openapi::import(call.text()?, &options).map_err(import_error)?;
    let name = imported
        .config
        .name
        .clone()
        .unwrap_or_else(|| "imported".to_owned());
    let mut definition = imported.config;
    definition.methods = imported_methods(&definition);
    let api = inner.lifecycle.create_api(None, &name, definition).await?;
    let mut out = wire::rest_api(&api);
    if !imported.warnings.is_empty() {
        out["warnings"] = json!(
            imported
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    Ok(ok(StatusCode::CREATED, &out))
}

/// The per-method settings of an imported config (its one stage's).
fn imported_methods(
    config: &crate::Config,
) -> BTreeMap<String, crate::gateway::MethodSettingsConfig> {
    config
        .stages
        .values()
        .next()
        .map(|s| s.methods.clone())
        .unwrap_or_default()
}

async fn put_rest_api(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let api = inner.lifecycle.api(id)?;
    let options = import_options(inner, call)?;
    let imported = crate::openapi::import_into(&api.definition, call.text()?, &options)
        .map_err(import_error)?;
    // The document's methods are the definition's (the API level), so
    // a deployment snapshots them with the routes.
    let mut definition = imported.config;
    let methods = imported_methods(&definition);
    match options.mode {
        ImportMode::Overwrite => definition.methods = methods,
        ImportMode::Merge => definition.methods.extend(methods),
    }
    let api = inner.lifecycle.put_api(id, definition).await?;
    let mut out = wire::rest_api(&api);
    if !imported.warnings.is_empty() {
        out["warnings"] = json!(
            imported
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    Ok(ok(StatusCode::OK, &out))
}

fn canary_settings(v: &Value) -> Result<CanarySettings, ApiError> {
    let percent = match v.get("percentTraffic") {
        None => 0.0,
        Some(p) => p
            .as_f64()
            .ok_or_else(|| ApiError::bad_request("canarySettings.percentTraffic: a number"))?,
    };
    let mut c = CanarySettings::new(
        v.get("deploymentId").and_then(Value::as_str).unwrap_or(""),
        percent,
    );
    c.stage_variable_overrides = wire::string_map(
        v.get("stageVariableOverrides"),
        "canarySettings.stageVariableOverrides",
    )?;
    c.use_stage_cache = v
        .get("useStageCache")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(c)
}

async fn create_deployment(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let body = call.json()?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut input = DeploymentInput {
        description: text("description"),
        stage: text("stageName"),
        ..DeploymentInput::default()
    };
    if let Some(c) = body.get("canarySettings") {
        if input.stage.is_none() {
            return Err(ApiError::bad_request(
                "stageName: a canary deployment names its stage",
            ));
        }
        input.canary = Some(canary_settings(c)?);
    } else if let Some(stage) = &input.stage {
        // The stage's settings as they are, with the call's variables.
        let mut config = inner
            .lifecycle
            .stage(id, stage)
            .map(|s| s.config)
            .unwrap_or_default();
        config.canary = None;
        let variables = wire::string_map(body.get("variables"), "variables")?;
        config.variables.extend(variables);
        input.stage_config = Some(config);
    }
    let stage_description = text("stageDescription");
    let deployment = inner.lifecycle.create_deployment(id, input).await?;
    if let (Some(d), Some(stage)) = (stage_description, text("stageName"))
        && inner.lifecycle.stage(id, &stage)?.description.is_none()
    {
        inner
            .lifecycle
            .update_stage(
                id,
                &stage,
                vec![crate::gateway::StageChange::Description(Some(d))],
            )
            .await?;
    }
    Ok(ok(StatusCode::CREATED, &wire::deployment(&deployment)))
}

async fn create_stage(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let body = call.json()?;
    let name = body
        .get("stageName")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("stageName: required"))?;
    let deployment = body
        .get("deploymentId")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("deploymentId: required"))?;
    let config = StageConfig {
        variables: wire::string_map(body.get("variables"), "variables")?,
        ..StageConfig::default()
    };
    let mut stage = inner
        .lifecycle
        .create_stage(id, name, deployment, config)
        .await?;
    let mut changes = Vec::new();
    if let Some(d) = body.get("description").and_then(Value::as_str) {
        changes.push(crate::gateway::StageChange::Description(Some(d.to_owned())));
    }
    if let Some(c) = body.get("canarySettings") {
        let mut c = canary_settings(c)?;
        if c.deployment_id.is_empty() {
            c.deployment_id = deployment.to_owned();
        }
        changes.push(crate::gateway::StageChange::Canary(c));
    }
    if !changes.is_empty() {
        stage = inner.lifecycle.update_stage(id, name, changes).await?;
    }
    Ok(ok(StatusCode::CREATED, &wire::stage(&stage)))
}

fn export(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
    stage: &str,
    kind: &str,
) -> Result<Response<Body>, ApiError> {
    let export_type = match kind {
        "oas30" => ExportType::Oas30,
        "swagger" => ExportType::Swagger,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid export type `{other}`: oas30 or swagger"
            )));
        }
    };
    let extensions = call.query("extensions").is_some_and(|e| {
        e.split(',')
            .any(|x| matches!(x, "integrations" | "apigateway" | "authorizers"))
    });
    let options = ExportOptions {
        export_type,
        extensions,
        ..ExportOptions::default()
    };
    let exported = inner.lifecycle.export(id, stage, &options)?;
    let yaml = call.accept.is_some_and(|a| a.contains("yaml"));
    let (body, content_type) = if yaml {
        (exported.to_yaml(), "application/yaml")
    } else {
        (exported.to_json(), "application/json")
    };
    let mut res = Response::new(Body::from(body));
    let headers = res.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    let ext = if yaml { "yaml" } else { "json" };
    if let Ok(v) =
        http::HeaderValue::from_str(&format!("attachment; filename=\"{kind}_{stage}.{ext}\"",))
    {
        headers.insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

async fn get_api_keys(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let name = call.query("name");
    let mut keys = inner.lifecycle.key_manager().list().await?;
    keys.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.id.cmp(&b.id)));
    let items = keys
        .iter()
        .filter(|r| name.is_none_or(|n| r.name.starts_with(n)))
        .map(|r| wire::api_key(r, None))
        .collect();
    Ok(ok(StatusCode::OK, &page(call, items, "item")?))
}

async fn create_api_key(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let body = call.json()?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut key = NewKey::named(text("name").unwrap_or_default());
    key.description = text("description");
    // API Gateway's default: a new key is disabled unless `enabled`.
    key.enabled = Some(
        body.get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    key.tags = wire::string_map(body.get("tags"), "tags")?;
    if let Some(v) = text("value") {
        key.value = Some(Secret::new(v));
    }
    check_key_name(&key.name)?;
    let (record, value) = inner.lifecycle.key_manager().create(key).await?;
    Ok(ok(
        StatusCode::CREATED,
        &wire::api_key(&record, Some(value.expose())),
    ))
}

async fn import_api_keys(inner: &Inner, call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    if call.query("format") != Some("csv") {
        return Err(ApiError::bad_request("format: csv"));
    }
    let text = call.text()?;
    // Rows end at line breaks; any other control character (in a name, a
    // description) is refused before a key is made.
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r'))
    {
        return Err(ApiError::bad_request(
            "the CSV holds a control character: names and descriptions may not",
        ));
    }
    let records = inner.lifecycle.key_manager().import_csv(text).await?;
    let ids: Vec<&str> = records.iter().map(|r| &*r.id).collect();
    Ok(ok(
        StatusCode::CREATED,
        &json!({ "ids": ids, "warnings": [] }),
    ))
}

async fn update_api_key(
    inner: &Inner,
    call: &Call<'_>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    find_key(inner, id).await?;
    let ops: Vec<PatchOp> = patch::read_ops(&call.json()?)?;
    // Every operation is read (and a name checked) before any applies.
    let mut name = None;
    let mut description = None;
    let mut enabled = None;
    for op in &ops {
        match (op.op.as_str(), op.path.as_str()) {
            ("replace", "/name") => {
                let n = op.value.clone().unwrap_or_default();
                check_key_name(&n)?;
                name = Some(n);
            }
            ("replace", "/description") => description = Some(op.value.clone()),
            ("replace", "/enabled") => match op.value.as_deref() {
                Some("true") => enabled = Some(true),
                Some("false") => enabled = Some(false),
                _ => return Err(ApiError::bad_request("/enabled: true or false")),
            },
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid patch path '{}' for operation '{}'",
                    op.path, op.op
                )));
            }
        }
    }
    let keys = inner.lifecycle.key_manager();
    if let Some(n) = name {
        keys.rename(id, &n).await?;
    }
    if let Some(d) = description {
        keys.describe(id, d).await?;
    }
    match enabled {
        Some(true) => {
            keys.enable(id).await?;
        }
        Some(false) => {
            keys.disable(id).await?;
        }
        None => {}
    }
    let record = find_key(inner, id).await?;
    Ok(ok(StatusCode::OK, &wire::api_key(&record, None)))
}

/// An API key's name: 1 to 1024 characters, none a control character
/// (it is shown on the usage page and in logs).
fn check_key_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 1024 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "name: 1 to 1024 characters, none a control character",
        ));
    }
    Ok(())
}

fn parse_date(v: Option<&str>, at: &str) -> Result<Date, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    v.and_then(|s| Date::parse(s, &format).ok())
        .ok_or_else(|| ApiError::bad_request(format!("{at}: a date, YYYY-MM-DD")))
}

fn usage_value(u: &crate::plans::PlanUsage, plan: &str) -> Value {
    json!({
        "usagePlanId": plan,
        "startDate": u.start.to_string(),
        "endDate": u.end.to_string(),
        "values": u.items,
    })
}

async fn get_usage(inner: &Inner, call: &Call<'_>, plan: &str) -> Result<Response<Body>, ApiError> {
    find_plan(inner, plan)?;
    let start = parse_date(call.query("startDate"), "startDate")?;
    let end = parse_date(call.query("endDate"), "endDate")?;
    let records = inner
        .lifecycle
        .usage()
        .ok_or_else(|| ApiError::bad_request("no stage is served yet: there is no usage"))?;
    let usage = records
        .get_usage(plan, start, end, call.query("keyId"))
        .await?;
    Ok(ok(StatusCode::OK, &usage_value(&usage, plan)))
}

async fn update_usage(
    inner: &Inner,
    call: &Call<'_>,
    plan: &str,
    key: &str,
) -> Result<Response<Body>, ApiError> {
    find_plan(inner, plan)?;
    plan_key(inner, plan, key).await?;
    let records = inner
        .lifecycle
        .usage()
        .ok_or_else(|| ApiError::bad_request("no stage is served yet: there is no usage"))?;
    // Every operation is read before any applies; the last `/remaining`
    // is what remains.
    let mut want = None;
    for op in patch::read_ops(&call.json()?)? {
        match (op.op.as_str(), op.path.as_str()) {
            // `replace /remaining N`: N requests left in the current period.
            ("replace", "/remaining") => {
                want = Some(
                    op.value
                        .as_deref()
                        .and_then(|v| v.parse::<i64>().ok())
                        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
                        .ok_or_else(|| {
                            ApiError::bad_request("/remaining: an integer from 0 to 2147483647")
                        })?,
                );
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid patch path '{}' for operation '{}'",
                    op.path, op.op
                )));
            }
        }
    }
    if let Some(want) = want {
        let now = records.remaining(key, plan).await?;
        records.grant(key, plan, want.saturating_sub(now)).await?;
    }
    let today = inner.lifecycle.clock().utc().date();
    let usage = records.get_usage(plan, today, today, Some(key)).await?;
    Ok(ok(StatusCode::OK, &usage_value(&usage, plan)))
}
