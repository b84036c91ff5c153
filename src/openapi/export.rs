//! OpenAPI export: one stage of a config as OpenAPI 3.0 or Swagger 2.0.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::Config;
use crate::auth::Authorization;
use crate::gateway::{StageMethod, resolve_stage_methods};
use crate::integration::IntegrationConfig;
use crate::mapping::{MappingConfig, Passthrough, TemplateLanguage};

/// Which OpenAPI version an export writes (API Gateway's `exportType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExportType {
    /// OpenAPI 3.0.1 (`oas30`), the default.
    #[default]
    Oas30,
    /// Swagger 2.0 (`swagger`).
    Swagger,
}

/// How [`export`] writes a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// The OpenAPI version. Default [`ExportType::Oas30`].
    pub export_type: ExportType,
    /// Whether `x-amazon-apigateway-*` extensions are written (API
    /// Gateway's `extensions=integrations` / `apigateway`). Default true.
    pub extensions: bool,
    /// `info.version`. API Gateway fills it with a timestamp
    /// (`2017-04-20T04:08:08Z` in its exports);
    /// [`Lifecycle::export`](crate::Lifecycle::export) writes the stage's
    /// deployment's creation time when this is `None`. Default `None`
    /// (`"1"` for a config exported alone).
    pub version: Option<String>,
    /// The host in `servers` / `host`. Default `localhost:8080` (the
    /// petstore's address).
    pub host: String,
    /// The scheme in `servers` / `schemes`. Default `http`.
    pub scheme: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            export_type: ExportType::Oas30,
            extensions: true,
            version: None,
            host: "localhost:8080".to_owned(),
            scheme: "http".to_owned(),
        }
    }
}

/// What an export could not say, with the config path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportWarning {
    /// The method (`/pets/GET`) or section it is about.
    pub path: String,
    /// What is left out, and why.
    pub message: String,
}

impl fmt::Display for ExportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// An export: the document and what it leaves out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Exported {
    /// The OpenAPI document, as JSON.
    pub document: Value,
    /// What the document could not say.
    pub warnings: Vec<ExportWarning>,
}

impl Exported {
    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.document).unwrap_or_default()
    }

    /// The document as YAML.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.document).unwrap_or_default()
    }
}

/// Exports `stage` of `config`; see the [module docs](super).
///
/// # Errors
/// The config's own problems, or a stage it does not have, as a
/// [`ConfigError`](crate::ConfigError).
pub fn export(
    config: &Config,
    stage: &str,
    options: &ExportOptions,
) -> Result<Exported, crate::ConfigError> {
    let methods = resolve_stage_methods(config, stage)?;
    let v3 = options.export_type == ExportType::Oas30;
    let ext = options.extensions;
    let mut warnings = Vec::new();
    let mut warn = |path: &str, message: &str| {
        warnings.push(ExportWarning {
            path: path.to_owned(),
            message: message.to_owned(),
        });
    };
    let model_ref = |name: &str| {
        if v3 {
            format!("#/components/schemas/{name}")
        } else {
            format!("#/definitions/{name}")
        }
    };

    let mut schemes = Map::new();
    let mut paths = Map::new();
    for m in &methods {
        let s = &m.settings;
        let method_name = m.method.as_ref().map_or("ANY", http::Method::as_str);
        let key = format!("{}/{method_name}", m.resource);
        let mut op = Map::new();
        op.insert(
            "operationId".into(),
            json!(operation_id(&m.resource, method_name)),
        );

        // Parameters: the route's, then the method's.
        let mut params = Vec::new();
        for p in m.params.iter() {
            params.push(parameter(p, "path", true, v3));
        }
        for (k, required) in s.request_parameters.iter().flatten() {
            let Some(rest) = k.strip_prefix("method.request.") else {
                continue;
            };
            let Some((loc, name)) = rest.split_once('.') else {
                continue;
            };
            let loc = match loc {
                "querystring" => "query",
                "header" => "header",
                _ => continue, // path parameters came from the route
            };
            params.push(parameter(name, loc, *required, v3));
        }
        // The body's models.
        let models: Vec<(&String, &String)> = s.request_models.iter().flatten().collect();
        if v3 {
            if !models.is_empty() {
                let content: Map<String, Value> = models
                    .iter()
                    .map(|(t, n)| {
                        let t = if *t == "$default" { "*/*" } else { t.as_str() };
                        (t.to_owned(), json!({ "schema": { "$ref": model_ref(n) } }))
                    })
                    .collect();
                op.insert(
                    "requestBody".into(),
                    json!({ "content": content, "required": true }),
                );
            }
        } else if let Some((_, name)) = models
            .iter()
            .find(|(t, _)| *t == "application/json")
            .or(models.first())
        {
            params.push(json!({ "in": "body", "name": name, "required": true, "schema": { "$ref": model_ref(name) } }));
            let types: Vec<&str> = models
                .iter()
                .map(|(t, _)| {
                    if *t == "$default" {
                        "application/json"
                    } else {
                        t.as_str()
                    }
                })
                .collect();
            op.insert("consumes".into(), json!(types));
            if models.len() > 1 {
                warn(
                    &key,
                    "Swagger 2.0 has one body schema: the others' models are left out",
                );
            }
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        op.insert(
            "responses".into(),
            json!({ "200": { "description": "200 response" } }),
        );

        // Security.
        // One requirement naming every scheme: all of them apply (AND).
        let mut security = Map::new();
        if s.api_key_required == Some(true) {
            security.insert("api_key".into(), json!([]));
            schemes.insert(
                "api_key".into(),
                json!({ "type": "apiKey", "name": "x-api-key", "in": "header" }),
            );
        }
        match s.authorization {
            Some(Authorization::Sigv4) => {
                security.insert("sigv4".into(), json!([]));
                let mut scheme =
                    json!({ "type": "apiKey", "name": "Authorization", "in": "header" });
                if ext {
                    scheme["x-amazon-apigateway-authtype"] = json!("awsSigv4");
                }
                schemes.insert("sigv4".into(), scheme);
            }
            Some(Authorization::Authorizer) => {
                if let Some(name) = &s.authorizer {
                    security.insert(name.clone(), json!([]));
                    let a = config.authorizers.get(name);
                    let header = a
                        .and_then(|a| {
                            a.identity_sources
                                .iter()
                                .find_map(|s| s.strip_prefix("header."))
                        })
                        .unwrap_or("Authorization");
                    let mut scheme = json!({ "type": "apiKey", "name": header, "in": "header" });
                    if ext {
                        let sources: Vec<String> = a
                            .map(|a| {
                                a.identity_sources
                                    .iter()
                                    .map(|s| {
                                        if s.starts_with("stageVariables.") {
                                            s.clone()
                                        } else {
                                            format!("method.request.{s}")
                                        }
                                    })
                                    .collect()
                            })
                            .unwrap_or_default();
                        scheme["x-amazon-apigateway-authtype"] = json!("custom");
                        scheme["x-amazon-apigateway-authorizer"] = json!({
                            "type": "request",
                            "identitySource": sources.join(", "),
                            "authorizerResultTtlInSeconds": a.and_then(|a| a.ttl).unwrap_or(300),
                        });
                    }
                    schemes.insert(name.clone(), scheme);
                }
            }
            _ => {}
        }
        if !security.is_empty() {
            op.insert("security".into(), json!([security]));
        }
        if ext {
            if let Some(v) = &s.request_validator {
                op.insert("x-amazon-apigateway-request-validator".into(), json!(v));
            }
            let mut lossy = false;
            if let Some(i) = integration(m, method_name, &mut lossy) {
                op.insert("x-amazon-apigateway-integration".into(), i);
            }
            // What API Gateway's extension cannot say (a mapping on the
            // wrapped service, minijinja templates, `remove`, `rename`, a
            // mock body VTL would misread) travels whole in tollgate's own.
            if lossy && let Some(mapping) = &s.mapping {
                op.insert(
                    "x-tollgate-mapping".into(),
                    serde_json::to_value(mapping).unwrap_or(Value::Null),
                );
            } else if lossy {
                warn(
                    &key,
                    "the mock's body holds `$` or `#`, which a VTL template would read as code; left out",
                );
            }
        }
        let op_key = match m.method.as_ref() {
            Some(m) => m.as_str().to_ascii_lowercase(),
            None => "x-amazon-apigateway-any-method".to_owned(),
        };
        if op_key.starts_with("x-") && !ext {
            warn(
                &key,
                "ANY has no OpenAPI method without the extensions; left out",
            );
            continue;
        }
        let item = paths
            .entry(m.resource.to_string())
            .or_insert_with(|| json!({}));
        item[op_key] = Value::Object(op);
    }

    // Models, their references in this version's form.
    let mut models = Map::new();
    for (name, schema) in &config.models {
        let mut schema = schema.clone();
        rewrite_refs(&mut schema, &|name| {
            config.models.contains_key(name).then(|| model_ref(name))
        });
        models.insert(name.clone(), schema);
    }

    let base_path = format!("/{stage}");
    let mut info = json!({
        "title": config.name.as_deref().unwrap_or("tollgate"),
        "version": options.version.as_deref().unwrap_or("1"),
    });
    if let Some(d) = &config.description {
        info["description"] = json!(d);
    }
    let mut doc = if v3 {
        let mut components = Map::new();
        if !models.is_empty() {
            components.insert("schemas".into(), Value::Object(models));
        }
        if !schemes.is_empty() {
            components.insert("securitySchemes".into(), Value::Object(schemes));
        }
        json!({
            "openapi": "3.0.1",
            "info": info,
            "servers": [{
                "url": format!("{}://{}/{{basePath}}", options.scheme, options.host),
                "variables": { "basePath": { "default": base_path } },
            }],
            "paths": paths,
            "components": components,
        })
    } else {
        let mut doc = json!({
            "swagger": "2.0",
            "info": info,
            "host": options.host,
            "basePath": base_path,
            "schemes": [options.scheme],
            "paths": paths,
        });
        if !schemes.is_empty() {
            doc["securityDefinitions"] = Value::Object(schemes);
        }
        if !models.is_empty() {
            doc["definitions"] = Value::Object(models);
        }
        doc
    };
    if ext {
        if !config.validators.is_empty() {
            let v: Map<String, Value> = config
                .validators
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "validateRequestBody": v.validate_request_body,
                            "validateRequestParameters": v.validate_request_parameters,
                        }),
                    )
                })
                .collect();
            doc["x-amazon-apigateway-request-validators"] = Value::Object(v);
        }
        let api = &config.settings;
        if let Some(v) = &api.request_validator {
            doc["x-amazon-apigateway-request-validator"] = json!(v);
        }
        if let Some(t) = &api.binary_media_types {
            doc["x-amazon-apigateway-binary-media-types"] = json!(t);
        }
        if let Some(n) = api.minimum_compression_size {
            doc["x-amazon-apigateway-minimum-compression-size"] = json!(n);
        }
        doc["x-amazon-apigateway-api-key-source"] = json!(if config.api_key_options.source
            == Some(crate::keys::ApiKeySource::Authorizer)
        {
            "AUTHORIZER"
        } else {
            "HEADER"
        });
        if let Some(p) = &api.policy {
            let statement = |effect: &str, ips: Option<&Vec<String>>| {
                let mut st = json!({
                    "Effect": effect,
                    "Principal": "*",
                    "Action": "execute-api:Invoke",
                    "Resource": ["execute-api:/*"],
                });
                if let Some(ips) = ips {
                    st["Condition"] = json!({ "IpAddress": { "aws:SourceIp": ips } });
                }
                st
            };
            let mut statements = vec![statement(
                "Allow",
                (!p.allow.is_empty()).then_some(&p.allow),
            )];
            if !p.deny.is_empty() {
                statements.push(statement("Deny", Some(&p.deny)));
            }
            doc["x-amazon-apigateway-policy"] =
                json!({ "Version": "2012-10-17", "Statement": statements });
        }
        if !config.responses.is_empty() {
            let all: Map<String, Value> = config
                .responses
                .iter()
                .map(|(kind, r)| {
                    let mut o = Map::new();
                    if let Some(n) = r.status {
                        o.insert("statusCode".into(), json!(n.to_string()));
                    }
                    if !r.headers.is_empty() {
                        let p: Map<String, Value> = r
                            .headers
                            .iter()
                            .map(|(k, v)| (format!("gatewayresponse.header.{k}"), json!(v)))
                            .collect();
                        o.insert("responseParameters".into(), Value::Object(p));
                    }
                    let templates = r.aws_templates();
                    if !templates.is_empty() {
                        o.insert("responseTemplates".into(), json!(templates));
                    }
                    (kind.clone(), Value::Object(o))
                })
                .collect();
            doc["x-amazon-apigateway-gateway-responses"] = Value::Object(all);
        }
    }
    Ok(Exported {
        document: doc,
        warnings,
    })
}

/// `getPets`-style operation ids: the method, then each static segment.
fn operation_id(resource: &str, method: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for seg in resource.split('/').filter(|s| !s.is_empty()) {
        let seg = seg.trim_matches(['{', '}', '+']);
        let mut chars = seg.chars().filter(char::is_ascii_alphanumeric);
        if let Some(c) = chars.next() {
            id.push(c.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

fn parameter(name: &str, location: &str, required: bool, v3: bool) -> Value {
    let name = name.trim_end_matches('+');
    if v3 {
        json!({ "name": name, "in": location, "required": required, "schema": { "type": "string" } })
    } else {
        json!({ "name": name, "in": location, "required": required, "type": "string" })
    }
}

/// Rewrites each `$ref` that names a model (in any form a model may use)
/// to `to(name)`.
fn rewrite_refs(v: &mut Value, to: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                let name = r
                    .strip_prefix("#/definitions/")
                    .or_else(|| r.strip_prefix("#/components/schemas/"))
                    .or_else(|| {
                        r.split_once("/models/")
                            .map(|(_, n)| n)
                            .filter(|_| r.starts_with("https://apigateway.amazonaws.com/restapis/"))
                    });
                if let Some(new) = name.and_then(to) {
                    *r = new;
                }
            }
            for (_, x) in m.iter_mut() {
                rewrite_refs(x, to);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, to)),
        _ => {}
    }
}

/// `{stageVariables.x}` as API Gateway writes it (`${stageVariables.x}`).
fn aws_uri(url: &str) -> String {
    url.replace("{stageVariables.", "${stageVariables.")
}

/// The method's `x-amazon-apigateway-integration`, if it has one.
/// `lossy` is set when the method's mapping (or mock body) says more than
/// the extension can.
fn integration(m: &StageMethod, method: &str, lossy: &mut bool) -> Option<Value> {
    let s = &m.settings;
    let mapping = s.mapping.as_ref();
    let service = IntegrationConfig::Service;
    let mut out = match s.integration.as_ref().unwrap_or(&service) {
        IntegrationConfig::Service => {
            *lossy |= mapping.is_some();
            return None;
        }
        // API Gateway's Lambda proxy: an aws_proxy to the function's ARN
        // (its region and account are not known here: placeholders the
        // import reads the name back from).
        IntegrationConfig::Lambda {
            function,
            arn,
            timeout_ms,
            proxy,
            ..
        } => {
            let (region, arn) = match (function, arn) {
                (Some(f), _) => (
                    "us-east-1".to_owned(),
                    format!("arn:aws:lambda:us-east-1:000000000000:function:{f}"),
                ),
                (None, Some(a)) => (
                    crate::integration::function_region(a).unwrap_or_else(|| "us-east-1".into()),
                    a.clone(),
                ),
                (None, None) => return None,
            };
            let mut i = json!({
                "type": if *proxy { "aws_proxy" } else { "aws" },
                "httpMethod": "POST",
                "uri": format!("arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"),
                "passthroughBehavior": "when_no_match",
            });
            if let Some(t) = timeout_ms {
                i["timeoutInMillis"] = json!(t);
            }
            if *proxy {
                return Some(i);
            }
            // A custom integration: its mapping follows, as an http one's.
            if mapping.is_none() {
                i["responses"] = json!({ "default": { "statusCode": "200" } });
            }
            i
        }
        IntegrationConfig::Http {
            url,
            base,
            timeout_ms,
            method: upstream_method,
            ..
        } => {
            let uri = match (url, base) {
                (Some(u), _) => aws_uri(u),
                (None, Some(b)) => {
                    // A base URL takes the request's path: the resource's
                    // template appended, its parameters passed.
                    format!("{}{}", aws_uri(b.trim_end_matches('/')), m.resource)
                }
                (None, None) => return None,
            };
            // `http` when something rewrites the body or the answer (a
            // template, an integration response); parameters alone ride
            // on an `http_proxy`, as API Gateway's proxy resources do.
            let rewrites =
                mapping.is_some_and(|m| !m.request.templates.is_empty() || !m.responses.is_empty());
            let mut i = json!({
                "type": if rewrites { "http" } else { "http_proxy" },
                "httpMethod": upstream_method.as_deref().unwrap_or(method),
                "uri": uri,
                "passthroughBehavior": "when_no_match",
            });
            if let Some(t) = timeout_ms {
                i["timeoutInMillis"] = json!(t);
            }
            let params: Map<String, Value> = m
                .params
                .iter()
                .filter(|p| uri.contains(&format!("{{{p}}}")) || uri.contains(&format!("{{{p}+}}")))
                .map(|p| {
                    let p = p.trim_end_matches('+');
                    (
                        format!("integration.request.path.{p}"),
                        json!(format!("method.request.path.{p}")),
                    )
                })
                .collect();
            if !params.is_empty() {
                i["requestParameters"] = Value::Object(params);
            }
            if mapping.is_none() {
                i["responses"] = json!({ "default": { "statusCode": "200" } });
            }
            i
        }
        IntegrationConfig::Mock {
            status,
            headers,
            body,
            ..
        } => {
            let status = status.unwrap_or(200);
            let mut response = json!({ "statusCode": status.to_string() });
            if !headers.is_empty() {
                let p: Map<String, Value> = headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            format!("method.response.header.{k}"),
                            json!(format!("'{}'", v.replace('\'', ""))),
                        )
                    })
                    .collect();
                response["responseParameters"] = Value::Object(p);
            }
            if !body.is_empty() {
                if body.contains(['$', '#']) {
                    *lossy = true;
                } else {
                    response["responseTemplates"] = json!({ "application/json": body });
                }
            }
            json!({
                "type": "mock",
                "requestTemplates": { "application/json": format!("{{\"statusCode\": {status}}}") },
                "passthroughBehavior": "when_no_match",
                "responses": { "default": response },
            })
        }
    };
    if let Some(mapping) = mapping {
        add_mapping(&mut out, mapping, lossy);
    }
    Some(out)
}

/// A mapping's parameters, templates and integration responses.
fn add_mapping(out: &mut Value, mapping: &MappingConfig, lossy: &mut bool) {
    let vtl = mapping.language == Some(TemplateLanguage::Vtl);
    let r = &mapping.request;
    let mut params = out
        .get("requestParameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (target, source) in r.set.iter().chain(&r.add) {
        params.insert(target.clone(), json!(source));
    }
    if !r.remove.is_empty() || !r.rename.is_empty() {
        *lossy = true;
    }
    if !params.is_empty() {
        out["requestParameters"] = Value::Object(params);
    }
    if !r.templates.is_empty() {
        if vtl {
            out["requestTemplates"] = json!(r.templates);
        } else {
            *lossy = true;
        }
    }
    out["passthroughBehavior"] = json!(match r.passthrough {
        Passthrough::WhenNoTemplates => "when_no_templates",
        Passthrough::Never => "never",
        _ => "when_no_match",
    });
    if mapping.responses.is_empty() {
        return;
    }
    let mut responses = Map::new();
    for resp in &mapping.responses {
        let mut o = Map::new();
        o.insert(
            "statusCode".into(),
            json!(resp.status.unwrap_or(200).to_string()),
        );
        if !resp.headers.is_empty() {
            let p: Map<String, Value> = resp
                .headers
                .iter()
                .map(|(k, v)| (format!("method.response.header.{k}"), json!(v)))
                .collect();
            o.insert("responseParameters".into(), Value::Object(p));
        }
        if !resp.templates.is_empty() {
            if vtl {
                o.insert("responseTemplates".into(), json!(resp.templates));
            } else {
                *lossy = true;
            }
        }
        let k = resp
            .selection_pattern
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        responses.insert(k, Value::Object(o));
    }
    out["responses"] = Value::Object(responses);
}

/// One method of an API definition, for the management API's GetMethod and
/// GetIntegration: its settings merged as a request sees them, and its
/// `x-amazon-apigateway-integration` (`None` for a method the wrapped
/// service answers). `verb` is upper case, `ANY` for every method. `None`
/// when the definition has no such method.
pub(crate) fn definition_method(
    definition: &Config,
    resource: &str,
    verb: &str,
) -> Option<(crate::gateway::MethodSettingsConfig, Option<Value>)> {
    let mut config = definition.clone();
    config.stages.insert(
        "definition".to_owned(),
        crate::gateway::StageConfig::default(),
    );
    let methods = resolve_stage_methods(&config, "definition").ok()?;
    let m = methods.into_iter().find(|m| {
        &*m.resource == resource && m.method.as_ref().map_or("ANY", http::Method::as_str) == verb
    })?;
    let mut lossy = false;
    let integration = integration(&m, verb, &mut lossy);
    Some((m.settings, integration))
}
