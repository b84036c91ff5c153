//! Reading an OpenAPI document into a config.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::Config;

/// How an import meets an existing API (API Gateway's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportMode {
    /// The document's routes and methods replace the API's (the default).
    #[default]
    Overwrite,
    /// The document's routes and methods are added; a method both declare
    /// takes the document's settings.
    Merge,
}

/// What the document's base path becomes (api-gateway-import-api-basePath.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BasePath {
    /// Dropped: `/e` is served as `/e` (API Gateway's default).
    #[default]
    Ignore,
    /// Put in front of every path: `/a/b/c` and `/e` make `/a/b/c/e`.
    Prepend,
    /// Its first segment dropped (it names a stage, which
    /// [`ImportOptions::stage`] gives), the rest put in front of every
    /// path: `/a/b/c` and `/e` make `/b/c/e`.
    Split,
}

/// Import options. [`Default`]: overwrite, warnings allowed, base path
/// ignored, stage `prod`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Overwrite or merge (only [`import_into`] has something to merge into).
    pub mode: ImportMode,
    /// The Lambda functions registered with
    /// [`GatewayBuilder::lambda`](crate::gateway::GatewayBuilder::lambda),
    /// by name: an `aws_proxy` integration whose ARN names one becomes
    /// `integration: { type: lambda, function: NAME }`; one naming any other
    /// function becomes `integration: { type: lambda, arn: ARN }`, invoked
    /// remotely. Default none.
    pub functions: std::collections::BTreeSet<String>,
    /// Refuse the document when there is any warning.
    pub fail_on_warnings: bool,
    /// What the base path becomes.
    pub basepath: BasePath,
    /// The stage the methods are served on.
    pub stage: String,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            mode: ImportMode::Overwrite,
            functions: std::collections::BTreeSet::new(),
            fail_on_warnings: false,
            basepath: BasePath::Ignore,
            stage: "prod".to_owned(),
        }
    }
}

/// Something in the document that is not honoured: where (a JSON path,
/// `paths./pets.get.x-amazon-apigateway-integration.type`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportWarning {
    /// Where in the document.
    pub path: String,
    /// What is not honoured, and what happens instead.
    pub message: String,
}

impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A config read from a document, and what it could not honour.
#[derive(Debug)]
#[non_exhaustive]
pub struct Imported {
    /// The API as a config (routes, the stage's methods, API-wide
    /// settings).
    pub config: Config,
    /// What was not honoured.
    pub warnings: Vec<ImportWarning>,
}

/// An import that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Neither JSON nor YAML, or not an OpenAPI 3.0 or Swagger 2.0 document.
    #[error("not an OpenAPI document: {0}")]
    Document(String),
    /// `fail_on_warnings` and there were warnings.
    #[error("{} warning(s) and fail_on_warnings: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Warnings(Vec<ImportWarning>),
    /// The config the document makes is invalid (a template that does not
    /// compile, say): every problem with its config path.
    #[error("the imported API is not a valid config: {0}")]
    Config(#[from] crate::config::ConfigError),
}

/// The largest document read, in bytes.
const MAX_DOCUMENT_BYTES: usize = 16 << 20;

/// Imports `document` (OpenAPI 3.0.x or Swagger 2.0, JSON or YAML) as a
/// new API: see the [module docs](super) for what is read.
pub fn import(document: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    let (config, warnings) = convert(document, options)?;
    let config = Config::from_json_str(&config.to_string())?;
    Ok(Imported { config, warnings })
}

/// Imports `document` into `existing` (keys, plans, stage variables and
/// everything else the document does not describe stay): under
/// [`ImportMode::Overwrite`] its routes and every stage's methods are the
/// document's (a method's settings it does not describe are dropped, each
/// a warning); under [`ImportMode::Merge`] they are added, a method both
/// declare taking the document's settings. [`ImportOptions::stage`] is
/// made when the config has no such stage.
pub fn import_into(
    existing: &Config,
    document: &str,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let Imported {
        config: new,
        mut warnings,
    } = import(document, options)?;
    let mut config = existing.clone();
    let stage = new.stages.keys().next().cloned().unwrap_or_default();
    let methods = new
        .stages
        .get(&stage)
        .map(|s| s.methods.clone())
        .unwrap_or_default();
    // An API Gateway API's integrations belong to the API, not to a stage:
    // every stage of the config serves the document's methods, and the
    // options' stage is made when the config lacks it.
    config.stages.entry(stage).or_default();
    match options.mode {
        ImportMode::Overwrite => {
            config.routes = new.routes;
            for (name, s) in &mut config.stages {
                for key in s.methods.keys() {
                    if !methods.contains_key(key) {
                        warnings.push(ImportWarning {
                            path: format!("(config) stages.{name}.methods.{}", seg(key)),
                            message: "the document does not describe this method's settings; they are dropped".into(),
                        });
                    }
                }
                s.methods = methods.clone();
            }
        }
        ImportMode::Merge => {
            for (path, list) in new.routes {
                let have = config.routes.entry(path).or_default();
                for m in list {
                    if !have.contains(&m) {
                        have.push(m);
                    }
                }
            }
            for s in config.stages.values_mut() {
                s.methods.extend(methods.clone());
            }
        }
    }
    // The API-wide settings the document describes; the rest stay.
    if new.settings.binary_media_types.is_some() {
        config.settings.binary_media_types = new.settings.binary_media_types;
    }
    if new.settings.minimum_compression_size.is_some() {
        config.settings.minimum_compression_size = new.settings.minimum_compression_size;
    }
    config.authorizers.extend(new.authorizers);
    // Overwrite replaces the API's definition whole, as API Gateway's
    // `mode=overwrite` does: its name, models, validators and gateway
    // responses are the document's; merge adds them.
    if options.mode == ImportMode::Overwrite {
        config.name = new.name.clone();
        config.models = std::collections::BTreeMap::new();
        config.validators = std::collections::BTreeMap::new();
        config.responses = std::collections::BTreeMap::new();
        config.settings.request_validator = None;
    }
    config.models.extend(new.models);
    if config.sigv4.is_none() {
        config.sigv4 = new.sigv4;
    }
    config.validators.extend(new.validators);
    config.responses.extend(new.responses);
    if new.api_key_options.source.is_some() {
        config.api_key_options.source = new.api_key_options.source;
    }
    if new.settings.request_validator.is_some() {
        config.settings.request_validator = new.settings.request_validator;
    }
    if options.fail_on_warnings && !warnings.is_empty() {
        return Err(ImportError::Warnings(warnings));
    }
    Ok(Imported { config, warnings })
}

/// The methods OpenAPI names, and the config's spelling.
const METHODS: &[(&str, &str)] = &[
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("options", "OPTIONS"),
    ("head", "HEAD"),
    ("patch", "PATCH"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

/// Collects warnings with their paths.
struct Warnings(Vec<ImportWarning>);

impl Warnings {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ImportWarning {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

fn parse(document: &str) -> Result<Value, ImportError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(ImportError::Document(format!(
            "{} bytes, more than {MAX_DOCUMENT_BYTES}",
            document.len()
        )));
    }
    let trimmed = document.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(document)
            .map_err(|e| ImportError::Document(format!("JSON: {e}")));
    }
    // No snippet of the document in the message: it may quote a template's
    // literal (a backend credential).
    let options = serde_saphyr::options! {
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options::<Value>(document, options)
        .map_err(|e| ImportError::Document(format!("YAML: {e}")))
}

/// The document's base path: Swagger's `basePath`; OpenAPI 3's `basePath`
/// server variable, else the path of `servers[0].url`.
fn base_path(doc: &Value) -> String {
    let servers: &[Value] = doc
        .get("servers")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let path = if let Some(b) = doc.get("basePath").and_then(Value::as_str) {
        b.to_owned()
    } else if let Some(v) = servers.iter().find_map(|s| {
        s.pointer("/variables/basePath/default")
            .and_then(Value::as_str)
    }) {
        // The first `basePath` server variable, whichever server has it.
        v.to_owned()
    } else {
        let server = servers.first();
        let url = server
            .and_then(|s| s.get("url"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let url = url.split(['?', '#']).next().unwrap_or("");
        // `https://host/a/b` or `/a/b`: the path part, each `{variable}`
        // replaced by its default (none: dropped).
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let path = if url.contains("://") {
            rest.find('/').map_or("", |i| &rest[i..])
        } else {
            rest
        };
        let mut out = String::new();
        let mut pieces = path.split('{');
        out.push_str(pieces.next().unwrap_or(""));
        for piece in pieces {
            let (name, after) = piece.split_once('}').unwrap_or((piece, ""));
            let default = server
                .and_then(|s| s.get("variables"))
                .and_then(|v| v.get(name))
                .and_then(|v| v.get("default"))
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push_str(default);
            out.push_str(after);
        }
        out
    };
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// Escapes a name for a warning path (`paths."/pets/{petId}".get`).
fn seg(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

fn convert(
    document: &str,
    options: &ImportOptions,
) -> Result<(Value, Vec<ImportWarning>), ImportError> {
    let doc = parse(document)?;
    let Some(root) = doc.as_object() else {
        return Err(ImportError::Document(
            "the document is not an object".into(),
        ));
    };
    let v3 = root
        .get("openapi")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with("3.0"));
    let v2 = root.get("swagger").and_then(Value::as_str) == Some("2.0");
    if !v3 && !v2 {
        return Err(ImportError::Document(
            "neither `openapi: 3.0.x` nor `swagger: \"2.0\"`".into(),
        ));
    }
    let mut w = Warnings(Vec::new());
    let base = base_path(&doc);
    let (stage, prefix) = match options.basepath {
        BasePath::Ignore => (options.stage.clone(), String::new()),
        BasePath::Prepend => (options.stage.clone(), base.clone()),
        // The first segment is dropped (it names a stage, which the
        // options give), the rest prepended.
        BasePath::Split => {
            let mut parts = base.trim_start_matches('/').splitn(2, '/');
            parts.next();
            (
                options.stage.clone(),
                parts.next().map_or(String::new(), |r| format!("/{r}")),
            )
        }
    };

    // Security schemes by name.
    let schemes = root
        .get("securityDefinitions")
        .or_else(|| doc.pointer("/components/securitySchemes"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let schemes_path = if v2 {
        "securityDefinitions"
    } else {
        "components.securitySchemes"
    };
    let mut authorizers = Map::new();
    for (name, scheme) in &schemes {
        if let Some(a) = scheme.get("x-amazon-apigateway-authorizer") {
            let apath = format!(
                "{schemes_path}.{}.x-amazon-apigateway-authorizer",
                seg(name)
            );
            let kind = a
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("token")
                .to_ascii_lowercase();
            if kind != "token" && kind != "request" {
                w.push(
                    &format!("{apath}.type"),
                    format!("`{kind}` authorizers are not supported; the scheme is read as a custom authorizer of that name"),
                );
            }
            if a.get("identityValidationExpression").is_some() {
                w.push(
                    &format!("{apath}.identityValidationExpression"),
                    "not supported; the authorizer sees every token",
                );
            }
            let sources = match a.get("identitySource") {
                None => "method.request.header.Authorization",
                Some(v) => v.as_str().unwrap_or_else(|| {
                    w.push(
                        &format!("{apath}.identitySource"),
                        "not a string; the Authorization header is used",
                    );
                    "method.request.header.Authorization"
                }),
            };
            let identity: Vec<String> = sources
                .split(',')
                .filter_map(|s| {
                    let s = s.trim();
                    s.strip_prefix("method.request.")
                        .map(str::to_owned)
                        .or_else(|| s.starts_with("stageVariables.").then(|| s.to_owned()))
                        .or_else(|| {
                            w.push(
                                &format!("{schemes_path}.{}.x-amazon-apigateway-authorizer.identitySource", seg(name)),
                                format!("`{s}` is not a method request parameter; left out"),
                            );
                            None
                        })
                })
                .collect();
            let mut auth = json!({ "identity_sources": identity });
            match a.get("authorizerResultTtlInSeconds").map(Value::as_u64) {
                Some(Some(ttl)) => auth["ttl"] = json!(ttl),
                Some(None) => w.push(
                    &format!("{apath}.authorizerResultTtlInSeconds"),
                    "not a number of seconds; the default (300) is used",
                ),
                None => {}
            }
            authorizers.insert(name.clone(), auth);
        }
    }
    let default_security = root.get("security").cloned();
    // A security requirement that is not a list of objects of lists would
    // leave a method open: refused, not warned about.
    let bad_security = |v: &Value| {
        !v.as_array().is_some_and(|reqs| {
            reqs.iter().all(|r| {
                r.as_object()
                    .is_some_and(|m| m.values().all(Value::is_array))
            })
        })
    };
    if let Some(v) = &default_security
        && bad_security(v)
    {
        return Err(ImportError::Document(
            "security: not a list of security requirements".into(),
        ));
    }
    for (path, item) in root
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for (key, op) in item.as_object().into_iter().flatten() {
            if let Some(v) = op.get("security")
                && bad_security(v)
            {
                return Err(ImportError::Document(format!(
                    "paths.{}.{}.security: not a list of security requirements",
                    seg(path),
                    seg(key)
                )));
            }
        }
    }

    let mut models = document_models(&doc, v2, &mut w);
    let validators = match root.get("x-amazon-apigateway-request-validators") {
        Some(v) => request_validators(v, "x-amazon-apigateway-request-validators", &mut w),
        None => Map::new(),
    };
    let mut routes = Map::new();
    let mut methods = Map::new();
    let paths = root
        .get("paths")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (path, item) in &paths {
        let ppath = format!("paths.{}", seg(path));
        let Some(item) = item.as_object() else {
            w.push(&ppath, "not a path item; left out");
            continue;
        };
        if !path.starts_with('/') {
            w.push(&ppath, "a path must start with `/`; left out");
            continue;
        }
        let route = format!(
            "{prefix}{}",
            if path == "/" && !prefix.is_empty() {
                ""
            } else {
                path
            }
        );
        let route = if route.is_empty() {
            "/".to_owned()
        } else {
            route
        };
        let mut declared = Vec::new();
        for (key, op) in item {
            let Some((_, method)) = METHODS.iter().find(|(k, _)| k == key) else {
                if key.starts_with("x-amazon-apigateway") {
                    w.push(
                        &format!("{ppath}.{}", seg(key)),
                        "not supported on a path item; ignored",
                    );
                }
                continue;
            };
            let opath = format!("{ppath}.{}", seg(key));
            if !op.is_object() {
                w.push(&opath, "not an operation object; left out");
                continue;
            }
            declared.push(json!(method));
            let params = uri_params(&route);
            let mut settings = operation(
                op,
                method,
                &params,
                &opath,
                &Known {
                    schemes: &schemes,
                    functions: &options.functions,
                },
                default_security.as_ref(),
                &mut w,
            );
            let shape = RequestShape {
                doc: &doc,
                v2,
                validators: &validators,
                path_params: item.get("parameters"),
                route_params: &params,
            };
            request_shape(
                op,
                &shape,
                &format!("{method}{route}"),
                &opath,
                &mut settings,
                &mut models,
                &mut w,
            );
            if settings.as_object().is_some_and(|m| !m.is_empty()) {
                methods.insert(format!("{route}/{method}"), settings);
            }
        }
        if !declared.is_empty() {
            routes.insert(route, Value::Array(declared));
        }
    }

    shared_cache_namespaces(&paths, &mut w);
    let mut settings = Map::new();
    let mut responses = Map::new();
    let mut key_source = None;
    for (key, value) in root {
        let kpath = seg(key);
        match key.as_str() {
            "x-amazon-apigateway-binary-media-types" => match value.as_array() {
                Some(list) => {
                    let types: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                    settings.insert("binary_media_types".into(), json!(types));
                }
                None => w.push(&kpath, "not a list of media types; ignored"),
            },
            "x-amazon-apigateway-minimum-compression-size" => match value.as_u64() {
                Some(n) => {
                    settings.insert("minimum_compression_size".into(), json!(n));
                }
                None => w.push(&kpath, "not a number of bytes; ignored"),
            },
            "x-amazon-apigateway-api-key-source" => match value.as_str() {
                Some("HEADER") => {}
                // The key a custom authorizer returns (`usageIdentifierKey`).
                Some("AUTHORIZER") => key_source = Some("authorizer"),
                _ => w.push(
                    &kpath,
                    "neither HEADER nor AUTHORIZER; keys are read from the x-api-key header",
                ),
            },
            "x-amazon-apigateway-request-validators" => {}
            "x-amazon-apigateway-policy" => match resource_policy(value, &kpath, &mut w) {
                Ok(Some(policy)) => {
                    settings.insert("policy".into(), policy);
                }
                Ok(None) => {}
                Err(e) => return Err(e),
            },
            "x-amazon-apigateway-gateway-responses" => {
                gateway_responses(value, &kpath, &mut responses, &mut w);
            }
            "x-amazon-apigateway-request-validator" => match value.as_str() {
                Some(name) if validators.contains_key(name) => {
                    settings.insert("request_validator".into(), json!(name));
                }
                Some(_) => w.push(
                    &kpath,
                    "names no validator of x-amazon-apigateway-request-validators; ignored",
                ),
                None => w.push(&kpath, "not a validator name; ignored"),
            },
            "x-amazon-apigateway-cors" => w.push(
                &kpath,
                "belongs to HTTP APIs; a REST API import ignores it, as API Gateway does (configure `cors` instead)",
            ),
            k if k.starts_with("x-amazon-apigateway") => {
                w.push(&kpath, "not supported yet; ignored");
            }
            _ => {}
        }
    }

    let name = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("imported");
    let mut config = json!({
        "name": name,
        "routes": routes,
        "stages": { stage: { "methods": methods } },
    });
    if let Some(d) = doc.pointer("/info/description").and_then(Value::as_str) {
        config["description"] = json!(d);
    }
    if !settings.is_empty() {
        config["settings"] = Value::Object(settings);
    }
    if !authorizers.is_empty() {
        config["authorizers"] = Value::Object(authorizers);
    }
    // SigV4 needs a credential scope: the region of the document's
    // execute-api host, else us-east-1 (a warning).
    let sigv4 = methods
        .values()
        .any(|m| m.get("authorization").and_then(Value::as_str) == Some("sigv4"));
    if sigv4 {
        let region = document_region(&doc).unwrap_or_else(|| {
            w.push(
                "(sigv4)",
                "the document names no execute-api host to take the region from; `sigv4.region` is us-east-1 (set it in the config)",
            );
            "us-east-1".to_owned()
        });
        config["sigv4"] = json!({ "region": region });
    }
    keep_compiling_models(&mut models, &mut w);
    drop_missing_models(&mut config, &models, &mut w);
    if !models.is_empty() {
        config["models"] = Value::Object(models);
    }
    if !validators.is_empty() {
        config["validators"] = Value::Object(validators);
    }
    if !responses.is_empty() {
        config["responses"] = Value::Object(responses);
    }
    if let Some(source) = key_source {
        config["api_key_options"] = json!({ "source": source });
    }
    if options.fail_on_warnings && !w.0.is_empty() {
        return Err(ImportError::Warnings(w.0));
    }
    Ok((config, w.0))
}

/// One operation's method settings.
fn operation(
    op: &Value,
    method: &str,
    route_params: &[&str],
    opath: &str,
    known: &Known<'_>,
    default_security: Option<&Value>,
    w: &mut Warnings,
) -> Value {
    let schemes = known.schemes;
    let mut s = Map::new();
    let Some(op) = op.as_object() else {
        w.push(opath, "not an operation object; left out");
        return Value::Object(s);
    };
    // Security: the operation's, else the document's.
    let security = op.get("security").or(default_security);
    if let Some(reqs) = security.and_then(Value::as_array) {
        for req in reqs {
            for name in req
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let Some(scheme) = schemes.get(&name) else {
                    w.push(
                        &format!("{opath}.security"),
                        format!("`{name}` is no security scheme; ignored"),
                    );
                    continue;
                };
                if scheme.get("x-amazon-apigateway-authorizer").is_some() {
                    s.insert("authorization".into(), json!("authorizer"));
                    s.insert("authorizer".into(), json!(name));
                } else if scheme
                    .get("x-amazon-apigateway-authtype")
                    .and_then(Value::as_str)
                    == Some("awsSigv4")
                {
                    s.insert("authorization".into(), json!("sigv4"));
                } else if scheme.get("type").and_then(Value::as_str) == Some("apiKey") {
                    s.insert("api_key_required".into(), json!(true));
                } else {
                    w.push(
                        &format!("{opath}.security"),
                        format!("`{name}` is a scheme tollgate does not enforce; ignored"),
                    );
                }
            }
        }
    }
    // What the document says, said whole: a stage's own settings in the
    // config do not add a key or an authorization the method lacks.
    s.entry("api_key_required").or_insert(json!(false));
    s.entry("authorization").or_insert(json!("none"));
    for key in op.keys() {
        match key.as_str() {
            "x-amazon-apigateway-integration" | "x-amazon-apigateway-auth" => {}
            "x-amazon-apigateway-request-validator" => match op[key].as_str() {
                Some(name) => {
                    s.insert("request_validator".into(), json!(name));
                }
                None => w.push(
                    &format!("{opath}.{}", seg(key)),
                    "not a validator name; ignored",
                ),
            },
            k if k.starts_with("x-amazon-apigateway") => w.push(
                &format!("{opath}.{}", seg(key)),
                "not supported yet; ignored",
            ),
            _ => {}
        }
    }
    if let Some(auth) = op.get("x-amazon-apigateway-auth") {
        match auth
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("AWS_IAM") => {
                s.insert("authorization".into(), json!("sigv4"));
            }
            Some("NONE") | None => {}
            Some(other) => w.push(
                &format!("{opath}.x-amazon-apigateway-auth.type"),
                format!("`{other}` is not supported; ignored"),
            ),
        }
    }
    let ipath = format!("{opath}.x-amazon-apigateway-integration");
    // A method without an integration is served by the wrapped service.
    if let Some(i) = op.get("x-amazon-apigateway-integration") {
        integration(i, &ipath, method, route_params, known.functions, &mut s, w);
    }
    // tollgate's own export carries a mapping API Gateway's extension
    // cannot say whole (one on the wrapped service, minijinja templates):
    // it replaces what the integration gave.
    if let Some(m) = op.get("x-tollgate-mapping") {
        if serde_json::from_value::<crate::mapping::MappingConfig>(m.clone()).is_ok() {
            s.insert("mapping".into(), m.clone());
        } else {
            w.push(
                &format!("{opath}.x-tollgate-mapping"),
                "not a tollgate mapping; ignored",
            );
        }
    }
    Value::Object(s)
}

/// `${stageVariables.x}` as the config writes it (`{stageVariables.x}`).
fn uri_template(uri: &str) -> String {
    uri.replace("${stageVariables.", "{stageVariables.")
}

fn integration(
    i: &Value,
    ipath: &str,
    method: &str,
    route_params: &[&str],
    functions: &std::collections::BTreeSet<String>,
    s: &mut Map<String, Value>,
    w: &mut Warnings,
) {
    let Some(i) = i.as_object() else {
        w.push(
            ipath,
            "not an object; the method is served by the wrapped service",
        );
        return;
    };
    if i.contains_key("$ref") {
        w.push(
            ipath,
            "`$ref` integrations belong to HTTP APIs; the method is served by the wrapped service",
        );
        return;
    }
    let kind = i
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    for key in ["connectionType", "connectionId", "credentials", "tlsConfig"] {
        if let Some(v) = i.get(key) {
            if key == "connectionType" && v.as_str() == Some("INTERNET") {
                continue;
            }
            w.push(&format!("{ipath}.{key}"), "not supported; ignored");
        }
    }
    // Cache key parameters become the method's `cache.key` (caching itself
    // is the stage's to enable, as in API Gateway).
    if let Some(v) = i.get("cacheKeyParameters") {
        let kpath = format!("{ipath}.cacheKeyParameters");
        let mut keys = Vec::new();
        for (n, p) in v.as_array().into_iter().flatten().enumerate() {
            let key = p
                .as_str()
                .and_then(|p| p.strip_prefix("method.request."))
                .and_then(|rest| {
                    let (loc, name) = rest.split_once('.')?;
                    let ok = match loc {
                        "path" => route_params.contains(&name),
                        "querystring" => !name.is_empty(),
                        "header" => http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                        _ => false,
                    };
                    ok.then(|| format!("{loc}.{name}"))
                });
            match key {
                Some(k) => keys.push(k),
                None => w.push(
                    &format!("{kpath}[{n}]"),
                    "not a path parameter of the route, a query parameter or a header of the method request; ignored",
                ),
            }
        }
        if !v.is_array() {
            w.push(&kpath, "not a list of parameters; ignored");
        }
        if !keys.is_empty() {
            s.insert("cache".into(), json!({ "key": keys }));
        }
    }
    let mut mapping = Map::new();
    mapping.insert("language".into(), json!("vtl"));
    let mut request = Map::new();
    match i.get("requestParameters") {
        None => {}
        Some(Value::Object(params)) => {
            let mut set = Map::new();
            for (k, v) in params {
                let ppath = format!("{ipath}.requestParameters.{}", seg(k));
                match v.as_str() {
                    Some(source) if supported_source(source) => {
                        set.insert(k.clone(), json!(source));
                    }
                    Some(source) => w.push(
                        &ppath,
                        format!(
                            "the source `{source}` is not supported; this parameter is not mapped"
                        ),
                    ),
                    None => w.push(&ppath, "not a string; this parameter is not mapped"),
                }
            }
            if !set.is_empty() {
                request.insert("set".into(), Value::Object(set));
            }
        }
        Some(_) => w.push(
            &format!("{ipath}.requestParameters"),
            "not an object; ignored",
        ),
    }
    let templates = match i.get("requestTemplates") {
        None => None,
        Some(Value::Object(t)) => {
            let strings = t.values().all(Value::is_string);
            if !strings {
                w.push(
                    &format!("{ipath}.requestTemplates"),
                    "a template that is not a string; ignored",
                );
            }
            strings.then_some(t)
        }
        Some(_) => {
            w.push(
                &format!("{ipath}.requestTemplates"),
                "not an object; ignored",
            );
            None
        }
    };
    match kind.as_str() {
        "http" | "http_proxy" => {
            let Some(uri) = i.get("uri").and_then(Value::as_str) else {
                w.push(
                    &format!("{ipath}.uri"),
                    "missing; the method is served by the wrapped service",
                );
                return;
            };
            // A `{name}` the request parameters fill from a path parameter
            // of the route (`integration.request.path.id:
            // method.request.path.petId`, as API Gateway's own pet store
            // sample writes it) is that parameter.
            let renamed;
            let mut uri = uri;
            if let Some(params) = i.get("requestParameters").and_then(Value::as_object) {
                let mut u = uri.to_owned();
                for (target, source) in params {
                    let (Some(x), Some(y)) = (
                        target.strip_prefix("integration.request.path."),
                        source
                            .as_str()
                            .and_then(|s| s.strip_prefix("method.request.path.")),
                    ) else {
                        continue;
                    };
                    if x != y && route_params.contains(&y) && !route_params.contains(&x) {
                        u = u.replace(&format!("{{{x}}}"), &format!("{{{y}}}"));
                    }
                }
                renamed = u;
                uri = &renamed;
            }
            // A `{name}` in the uri must be a path parameter of the route:
            // tollgate fills the URL from the route's parameters (mapped or
            // not); one fed from elsewhere cannot be.
            let missing: Vec<&str> = uri_params(uri)
                .into_iter()
                .filter(|p| !route_params.contains(p))
                .collect();
            if !missing.is_empty() {
                w.push(
                    &format!("{ipath}.uri"),
                    format!(
                        "`{{{}}}` is not a path parameter of this route (tollgate fills the URL from the route's); the method is served by the wrapped service",
                        missing.join("}`, `{")
                    ),
                );
                return;
            }
            let mut integ = json!({ "type": "http", "url": uri_template(uri) });
            match i.get("timeoutInMillis").map(Value::as_u64) {
                Some(Some(t)) => integ["timeout_ms"] = json!(t),
                Some(None) => w.push(
                    &format!("{ipath}.timeoutInMillis"),
                    "not a whole number of milliseconds; the default (29000) is used",
                ),
                None => {}
            }
            s.insert("integration".into(), integ);
            // The upstream's method, when it is not the request's.
            if let Some(m) = i.get("httpMethod").and_then(Value::as_str)
                && !m.eq_ignore_ascii_case("ANY")
                && !m.eq_ignore_ascii_case(method)
            {
                if http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()).is_ok() {
                    if let Some(integ) = s.get_mut("integration") {
                        integ["method"] = json!(m.to_ascii_uppercase());
                    }
                } else {
                    w.push(
                        &format!("{ipath}.httpMethod"),
                        "not a method; the request's is used",
                    );
                }
            }
            if kind == "http" {
                if let Some(t) = templates {
                    request.insert("templates".into(), Value::Object(t.clone()));
                }
            } else if templates.is_some() || proxy_responses_map(i.get("responses")) {
                // API Gateway's proxy integrations take no mapping (its
                // exports still write a bare `default` status: no warning).
                w.push(
                    ipath,
                    "http_proxy takes no templates or integration responses; ignored",
                );
            }
        }
        "mock" => {
            // API Gateway's mock answers with the status its request
            // template names; the integration responses make the rest. A
            // literal `{"statusCode": N}` is the mock's status; a template
            // that computes it is run and the mock reads the status from
            // what it wrote.
            let template = templates
                .and_then(|t| t.get("application/json").or_else(|| t.values().next()))
                .and_then(Value::as_str);
            let literal = template.and_then(|t| mock_status(t).filter(|_| !t.contains(['#', '$'])));
            match (template, literal) {
                (None, _) => {
                    s.insert(
                        "integration".into(),
                        json!({ "type": "mock", "status": 200 }),
                    );
                }
                (Some(_), Some(status)) => {
                    s.insert(
                        "integration".into(),
                        json!({ "type": "mock", "status": status }),
                    );
                }
                (Some(_), None) => {
                    s.insert(
                        "integration".into(),
                        json!({ "type": "mock", "status": 200, "status_from_template": true }),
                    );
                    if let Some(t) = templates {
                        request.insert("templates".into(), Value::Object(t.clone()));
                    }
                }
            }
        }
        // A Lambda proxy to a function registered with the builder (named
        // in `ImportOptions::functions`): called in process.
        "aws_proxy" if lambda_function(i.get("uri")).is_some_and(|f| functions.contains(f)) => {
            let f = lambda_function(i.get("uri")).unwrap_or_default();
            s.insert(
                "integration".into(),
                json!({ "type": "lambda", "function": f }),
            );
            return;
        }
        // A Lambda proxy to any other function: invoked remotely.
        "aws_proxy" if lambda_arn(i.get("uri")).is_some() => {
            let arn = lambda_arn(i.get("uri")).unwrap_or_default();
            let mut l = json!({ "type": "lambda", "arn": arn });
            if let Some(t) = i.get("timeoutInMillis").and_then(Value::as_u64) {
                l["timeout_ms"] = json!(t);
            }
            s.insert("integration".into(), l);
            return;
        }
        // A non-proxy Lambda integration: the request template makes the
        // payload, the integration responses map the answer (selected by
        // the error message when the function throws).
        "aws"
            if lambda_function(i.get("uri")).is_some_and(|f| functions.contains(f))
                || lambda_arn(i.get("uri")).is_some() =>
        {
            let l = match lambda_function(i.get("uri")).filter(|f| functions.contains(*f)) {
                Some(f) => json!({ "type": "lambda", "function": f, "proxy": false }),
                None => {
                    let mut l = json!({
                        "type": "lambda",
                        "arn": lambda_arn(i.get("uri")).unwrap_or_default(),
                        "proxy": false,
                    });
                    if let Some(t) = i.get("timeoutInMillis").and_then(Value::as_u64) {
                        l["timeout_ms"] = json!(t);
                    }
                    l
                }
            };
            s.insert("integration".into(), l);
            if let Some(t) = templates {
                request.insert("templates".into(), Value::Object(t.clone()));
            }
        }
        "aws" | "aws_proxy" => {
            let why = match lambda_function(i.get("uri")) {
                Some(f) if kind == "aws_proxy" => format!(
                    "the Lambda function `{f}` is neither registered (ImportOptions::functions, GatewayBuilder::lambda) nor named by a full function ARN; the method is served by the wrapped service"
                ),
                Some(f) => format!(
                    "the Lambda function `{f}` is neither registered (ImportOptions::functions, GatewayBuilder::lambda_json) nor named by a full function ARN; the method is served by the wrapped service"
                ),
                None => format!(
                    "`{kind}` integrations to AWS services other than Lambda are not supported; the method is served by the wrapped service"
                ),
            };
            w.push(&format!("{ipath}.type"), why);
            return;
        }
        other => {
            w.push(
                &format!("{ipath}.type"),
                format!("unknown type `{other}`; the method is served by the wrapped service"),
            );
            return;
        }
    }
    for (key, field) in [
        ("passthroughBehavior", "passthrough"),
        ("contentHandling", "content_handling"),
    ] {
        match i.get(key) {
            None => {}
            Some(Value::String(v)) if key == "passthroughBehavior" => {
                request.insert(field.into(), json!(v.to_ascii_lowercase()));
            }
            Some(Value::String(v)) => {
                request.insert(field.into(), json!(v));
            }
            Some(_) => w.push(&format!("{ipath}.{key}"), "not a string; ignored"),
        }
    }
    let mut responses = Vec::new();
    if kind != "http_proxy"
        && let Some(rs) = i.get("responses")
        && let Some(rs) = rs.as_object().or_else(|| {
            w.push(&format!("{ipath}.responses"), "not an object; ignored");
            None
        })
    {
        // API Gateway tries the patterns, the default last.
        let mut entries: Vec<(&String, &Value)> = rs.iter().collect();
        entries.sort_by_key(|(k, _)| *k == "default");
        for (pattern, r) in entries {
            let rpath = format!("{ipath}.responses.{}", seg(pattern));
            if !r.is_object() {
                w.push(&rpath, "not an object; ignored");
                continue;
            }
            let mut out = Map::new();
            if pattern != "default" {
                out.insert("selection_pattern".into(), json!(pattern));
            }
            if let Some(code) = r.get("statusCode") {
                let code = code
                    .as_u64()
                    .or_else(|| code.as_str().and_then(|c| c.parse().ok()));
                match code {
                    Some(c) => {
                        out.insert("status".into(), json!(c));
                    }
                    None => w.push(
                        &format!("{rpath}.statusCode"),
                        "not a status; the backend's is kept",
                    ),
                }
            }
            if let Some(params) = r.get("responseParameters").and_then(Value::as_object) {
                let mut headers = Map::new();
                for (k, v) in params {
                    let ppath = format!("{rpath}.responseParameters.{}", seg(k));
                    match (k.strip_prefix("method.response.header."), v.as_str()) {
                        (Some(name), Some(source))
                            if source.starts_with('\'')
                                || source.starts_with("integration.response.header.") =>
                        {
                            headers.insert(name.to_owned(), json!(source));
                        }
                        (Some(_), Some(source)) => w.push(
                            &ppath,
                            format!("the source `{source}` is not supported (integration.response.header.NAME or a 'literal'); ignored"),
                        ),
                        (Some(_), None) => w.push(&ppath, "not a string; ignored"),
                        (None, _) => w.push(
                            &ppath,
                            "only method.response.header.NAME targets are supported; ignored",
                        ),
                    }
                }
                if !headers.is_empty() {
                    out.insert("headers".into(), Value::Object(headers));
                }
            }
            if let Some(t) = r.get("responseTemplates").and_then(Value::as_object) {
                out.insert("templates".into(), Value::Object(t.clone()));
            }
            if let Some(c) = r.get("contentHandling").and_then(Value::as_str) {
                out.insert("content_handling".into(), json!(c));
            }
            responses.push(Value::Object(out));
        }
    }
    if !request.is_empty() {
        mapping.insert("request".into(), Value::Object(request));
    }
    if !responses.is_empty() {
        mapping.insert("responses".into(), Value::Array(responses));
    }
    if mapping.len() > 1 {
        s.insert("mapping".into(), Value::Object(mapping));
    }
}

/// The `{name}` parameters of a path or URI (`{name+}` as `name`),
/// stage variables left out.
fn uri_params(uri: &str) -> Vec<&str> {
    uri.split('{')
        .skip(1)
        .filter_map(|piece| piece.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.starts_with("stageVariables."))
        .map(|name| name.trim_end_matches('+'))
        .collect()
}

/// Whether an `http_proxy`'s `responses` say more than API Gateway's
/// exports write for one (a `default` with a `statusCode`).
fn proxy_responses_map(responses: Option<&Value>) -> bool {
    let Some(responses) = responses else {
        return false;
    };
    let Some(map) = responses.as_object() else {
        return true;
    };
    map.iter().any(|(k, r)| {
        k != "default"
            || r.as_object()
                .is_none_or(|o| o.keys().any(|f| f != "statusCode"))
    })
}

/// Whether tollgate's parameter mapping takes `source` (the rest is a
/// warning, not a config error that would refuse the whole document).
fn supported_source(source: &str) -> bool {
    source.starts_with('\'')
        || [
            "method.request.path.",
            "method.request.querystring.",
            "method.request.header.",
            "stageVariables.",
        ]
        .iter()
        .any(|p| source.strip_prefix(p).is_some_and(|n| !n.is_empty()))
        || matches!(
            source,
            "context.requestId"
                | "context.stage"
                | "context.resourcePath"
                | "context.httpMethod"
                | "context.identity.sourceIp"
                | "context.identity.apiKeyId"
                | "context.authorizer.principalId"
        )
}

/// The status a mock's request template names (`{"statusCode": 200}`).
fn mock_status(template: &str) -> Option<u16> {
    let at = template.find("statusCode")?;
    let rest = &template[at + "statusCode".len()..];
    let rest = rest.trim_start_matches(|c: char| c == '"' || c == ':' || c.is_whitespace());
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|s| (100..=599).contains(s))
}

/// The document's models: Swagger 2.0's `definitions` or OpenAPI 3's
/// `components.schemas`, each a JSON Schema (API Gateway reads them as
/// draft 4). A name that is not letters and digits is left out, with a
/// warning (API Gateway's rule).
fn document_models(doc: &Value, v2: bool, w: &mut Warnings) -> Map<String, Value> {
    let (pointer, path) = if v2 {
        ("/definitions", "definitions")
    } else {
        ("/components/schemas", "components.schemas")
    };
    let mut out = Map::new();
    for (name, schema) in doc
        .pointer(pointer)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            w.push(
                &format!("{path}.{}", seg(name)),
                "a model name is letters and digits only (API Gateway's rule); left out",
            );
            continue;
        }
        out.insert(name.clone(), schema.clone());
    }
    out
}

/// Drops, with a warning each, the models that do not compile, until the
/// rest do (a model may fail only because one it refers to was dropped).
fn keep_compiling_models(models: &mut Map<String, Value>, w: &mut Warnings) {
    // Past the most an API may have, the rest are left out (one warning),
    // rather than all of them.
    let max = crate::validate::MAX_MODELS;
    if models.len() > max {
        let extra: Vec<String> = models.keys().skip(max).cloned().collect();
        w.push(
            "models",
            format!(
                "{} models; at most {max}: the {} from `{}` on are left out",
                models.len(),
                extra.len(),
                extra.first().map(String::as_str).unwrap_or("")
            ),
        );
        for k in extra {
            models.remove(&k);
        }
    }
    for _ in 0..=models.len() {
        let source: std::collections::BTreeMap<String, Value> =
            models.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let Err(errors) = crate::validate::Models::compile(&source) else {
            return;
        };
        let mut dropped = false;
        for e in errors {
            if e.model.is_empty() {
                w.push("models", format!("{}; every model is left out", e.message));
                models.clear();
                return;
            }
            if models.remove(&e.model).is_some() {
                dropped = true;
                w.push(
                    &format!("models.{}", seg(&e.model)),
                    format!(
                        "{}; left out, and no body is validated against it",
                        e.message
                    ),
                );
            }
        }
        if !dropped {
            return;
        }
    }
}

/// `x-amazon-apigateway-request-validators`: each validator's two flags.
fn request_validators(value: &Value, path: &str, w: &mut Warnings) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(all) = value.as_object() else {
        w.push(path, "not a map of validators; ignored");
        return out;
    };
    for (name, v) in all {
        let vpath = format!("{path}.{}", seg(name));
        let flag = |key: &str, w: &mut Warnings| match v.get(key) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                w.push(
                    &format!("{vpath}.{key}"),
                    "not true or false; read as false",
                );
                false
            }
        };
        let body = flag("validateRequestBody", w);
        let params = flag("validateRequestParameters", w);
        out.insert(
            name.clone(),
            json!({ "validate_request_body": body, "validate_request_parameters": params }),
        );
    }
    out
}

/// A method's `request_models` entry whose model is not among the
/// document's (left out, or never declared) is dropped with a warning:
/// bodies of that type are then not validated.
fn drop_missing_models(config: &mut Value, models: &Map<String, Value>, w: &mut Warnings) {
    let Some(stages) = config.get_mut("stages").and_then(Value::as_object_mut) else {
        return;
    };
    for stage in stages.values_mut() {
        let Some(methods) = stage.get_mut("methods").and_then(Value::as_object_mut) else {
            continue;
        };
        for (key, m) in methods.iter_mut() {
            let Some(by_type) = m.get_mut("request_models").and_then(Value::as_object_mut) else {
                continue;
            };
            by_type.retain(|media, model| {
                let keep = model.as_str().is_some_and(|n| models.contains_key(n));
                if !keep {
                    w.push(
                        &format!("(method {}) request model for {}", seg(key), seg(media)),
                        "names no model the document declares (or one left out); its bodies are not validated",
                    );
                }
                keep
            });
        }
    }
}

/// What a method's request looks like, for its validator.
struct RequestShape<'a> {
    doc: &'a Value,
    v2: bool,
    /// The document's validators.
    validators: &'a Map<String, Value>,
    /// The path item's own `parameters` (shared by its operations).
    path_params: Option<&'a Value>,
    route_params: &'a [&'a str],
}

/// A `$ref` within the document, followed (at most 8 deep).
fn follow<'a>(doc: &'a Value, mut v: &'a Value) -> Option<&'a Value> {
    for _ in 0..8 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = doc.pointer(r.strip_prefix('#')?)?,
            None => return Some(v),
        }
    }
    None
}

/// The model name a schema refers to (`#/definitions/Pet`,
/// `#/components/schemas/Pet`), or a new model for an inline schema.
fn model_for(schema: &Value, inline_name: &str, models: &mut Map<String, Value>) -> String {
    let named = schema.get("$ref").and_then(Value::as_str).and_then(|r| {
        r.strip_prefix("#/definitions/")
            .or_else(|| r.strip_prefix("#/components/schemas/"))
    });
    if let Some(name) = named
        && schema.as_object().is_some_and(|m| m.len() == 1)
    {
        return name.to_owned();
    }
    let mut name: String = inline_name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    name.push_str("Body");
    while models.contains_key(&name) {
        name.push('X');
    }
    models.insert(name.clone(), schema.clone());
    name
}

/// An operation's `parameters` (with its path item's) and its body's
/// models, as `request_parameters` and `request_models`.
fn request_shape(
    op: &Value,
    shape: &RequestShape<'_>,
    inline_name: &str,
    opath: &str,
    settings: &mut Value,
    models: &mut Map<String, Value>,
    w: &mut Warnings,
) {
    // A validator the document does not declare: API Gateway refuses such
    // an import; here the reference is dropped with a warning.
    if let Some(s) = settings.as_object_mut()
        && let Some(name) = s.get("request_validator").and_then(Value::as_str)
        && !shape.validators.contains_key(name)
    {
        s.remove("request_validator");
        w.push(
            &format!("{opath}.x-amazon-apigateway-request-validator"),
            "names no validator of x-amazon-apigateway-request-validators; ignored",
        );
    }
    let mut params = Map::new();
    let mut body_models = Map::new();
    let lists = [
        (
            shape.path_params,
            opath.rsplit_once('.').map_or(opath, |p| p.0).to_owned(),
        ),
        (op.get("parameters"), opath.to_owned()),
    ];
    for (list, base) in lists {
        let Some(list) = list else { continue };
        let Some(list) = list.as_array() else {
            w.push(
                &format!("{base}.parameters"),
                "not a list of parameters; ignored",
            );
            continue;
        };
        for (i, p) in list.iter().enumerate() {
            let ppath = format!("{base}.parameters[{i}]");
            let Some(p) = follow(shape.doc, p) else {
                w.push(
                    &ppath,
                    "a `$ref` that does not resolve in the document; ignored",
                );
                continue;
            };
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let location = match p.get("in").and_then(Value::as_str) {
                Some("path") => "path",
                Some("query") => "querystring",
                Some("header") => "header",
                Some("body") if shape.v2 => {
                    if let Some(schema) = p.get("schema") {
                        let model = model_for(schema, inline_name, models);
                        let types = op
                            .get("consumes")
                            .or_else(|| shape.doc.get("consumes"))
                            .and_then(Value::as_array)
                            .map(|l| {
                                l.iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_owned)
                                    .collect()
                            })
                            .unwrap_or_else(|| vec!["application/json".to_owned()]);
                        for t in types {
                            body_models.insert(t, json!(model));
                        }
                    }
                    continue;
                }
                Some("formData") if shape.v2 => {
                    w.push(&ppath, "form parameters are not validated; ignored");
                    continue;
                }
                Some("cookie") => {
                    w.push(&ppath, "cookie parameters are not validated; ignored");
                    continue;
                }
                _ => {
                    w.push(&ppath, "no `in` of path, query or header; ignored");
                    continue;
                }
            };
            if name.is_empty() {
                w.push(&ppath, "a parameter without a name; ignored");
                continue;
            }
            if location == "path" && !shape.route_params.contains(&name) {
                w.push(&ppath, format!("the path has no `{{{name}}}`; ignored"));
                continue;
            }
            if location == "header" && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                w.push(&ppath, "not a valid header name; ignored");
                continue;
            }
            params.insert(format!("method.request.{location}.{name}"), json!(required));
        }
    }
    if !shape.v2
        && let Some(body) = op.get("requestBody")
    {
        let bpath = format!("{opath}.requestBody");
        match follow(shape.doc, body)
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
        {
            Some(content) => {
                for (media, m) in content {
                    if let Some(schema) = m.get("schema") {
                        body_models
                            .insert(media.clone(), json!(model_for(schema, inline_name, models)));
                    }
                }
            }
            None => w.push(&bpath, "no `content` to read models from; ignored"),
        }
    }
    if let Some(s) = settings.as_object_mut() {
        if !params.is_empty() {
            s.insert("request_parameters".into(), Value::Object(params));
        }
        if !body_models.is_empty() {
            s.insert("request_models".into(), Value::Object(body_models));
        }
    }
}

/// `cacheNamespace` groups methods that share cache entries in API
/// Gateway. Each tollgate method keeps a cache of its own, which is what a
/// namespace no other method names means; a namespace several methods
/// share is a warning at each of them.
fn shared_cache_namespaces(paths: &Map<String, Value>, w: &mut Warnings) {
    let mut by_namespace: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (path, item) in paths {
        for (key, op) in item.as_object().into_iter().flatten() {
            if let Some(ns) = op
                .pointer("/x-amazon-apigateway-integration/cacheNamespace")
                .and_then(Value::as_str)
            {
                by_namespace.entry(ns).or_default().push(format!(
                    "paths.{}.{}.x-amazon-apigateway-integration.cacheNamespace",
                    seg(path),
                    seg(key)
                ));
            }
        }
    }
    for paths in by_namespace.into_values().filter(|p| p.len() > 1) {
        for p in paths {
            w.push(
                &p,
                "shared with other methods; each method's cache is its own here",
            );
        }
    }
}

/// The region of the document's `https://ID.execute-api.REGION.amazonaws.com`
/// host (`servers` or `host`), if it names one.
fn document_region(doc: &Value) -> Option<String> {
    let hosts = doc
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("url").and_then(Value::as_str))
        .chain(doc.get("host").and_then(Value::as_str));
    for h in hosts {
        let host = h.split_once("://").map_or(h, |(_, r)| r);
        let host = host.split(['/', ':']).next().unwrap_or("");
        if let Some(rest) = host.split_once(".execute-api.").map(|(_, r)| r)
            && let Some(region) = rest.strip_suffix(".amazonaws.com")
            && !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Some(region.to_owned());
        }
    }
    None
}

/// `x-amazon-apigateway-gateway-responses`: each response type's status,
/// `gatewayresponse.header.*` parameters and templates, as the config's
/// `responses`. A type tollgate does not answer is a warning.
fn gateway_responses(value: &Value, path: &str, out: &mut Map<String, Value>, w: &mut Warnings) {
    let Some(all) = value.as_object() else {
        w.push(path, "not a map of gateway responses; ignored");
        return;
    };
    for (kind, r) in all {
        let rpath = format!("{path}.{}", seg(kind));
        if kind.parse::<crate::GatewayResponseKind>().is_err() {
            w.push(&rpath, "a response type tollgate does not answer; ignored");
            continue;
        }
        let Some(r) = r.as_object() else {
            w.push(&rpath, "not a gateway response; ignored");
            continue;
        };
        let mut o = Map::new();
        match r.get("statusCode") {
            None => {}
            Some(v) => match crate::response::aws_status(v) {
                Some(n) => {
                    o.insert("status".into(), json!(n));
                }
                None => w.push(
                    &format!("{rpath}.statusCode"),
                    "not a status (100 to 599); the default is kept",
                ),
            },
        }
        let mut headers = Map::new();
        for (k, v) in r
            .get("responseParameters")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            match crate::response::aws_header_parameter(k, v) {
                Some((name, v)) => {
                    headers.insert(name.to_owned(), json!(v));
                }
                None => w.push(
                    &format!("{rpath}.responseParameters.{}", seg(k)),
                    "not a `gatewayresponse.header.NAME` with a string source; ignored",
                ),
            }
        }
        if !headers.is_empty() {
            o.insert("headers".into(), Value::Object(headers));
        }
        if let Some(t) = r.get("responseTemplates") {
            match t.as_object().filter(|m| m.values().all(Value::is_string)) {
                Some(m) => {
                    o.insert("templates".into(), Value::Object(m.clone()));
                }
                None => w.push(
                    &format!("{rpath}.responseTemplates"),
                    "not a map of templates; ignored",
                ),
            }
        }
        out.insert(kind.clone(), Value::Object(o));
    }
}

/// `x-amazon-apigateway-policy`, a resource policy, as the API-wide
/// `policy` on source addresses (openapi-extensions-policy.md,
/// apigateway-resource-policies-examples.md). Read: statements for every
/// principal (`*`) on `execute-api:Invoke` over the whole API
/// (`execute-api:/*`, or an ARN ending `/*`), unconditional or with an
/// `IpAddress` / `NotIpAddress` condition on `aws:SourceIp`. As in IAM, an
/// explicit deny wins and, without any allow, everything is denied. An
/// allow statement that cannot be read is left out with a warning (that
/// only narrows who may call); a deny that cannot be read refuses the
/// document, since leaving it out would open the API.
fn resource_policy(
    value: &Value,
    path: &str,
    w: &mut Warnings,
) -> Result<Option<Value>, ImportError> {
    let refuse = |m: String| Err(ImportError::Document(format!("{path}: {m}")));
    let statements = match value.get("Statement") {
        Some(Value::Array(l)) => l.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return refuse("no `Statement` to read".into()),
    };
    let strings = |v: Option<&Value>| -> Option<Vec<String>> {
        match v? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(l) => l.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => None,
        }
    };
    let (mut allow_all, mut allow_ips, mut deny_ips, mut only_ips) =
        (false, Vec::new(), Vec::new(), Vec::new());
    for (i, st) in statements.iter().enumerate() {
        let spath = format!("{path}.Statement[{i}]");
        let effect = st.get("Effect").and_then(Value::as_str).unwrap_or("");
        let everyone = match st.get("Principal") {
            Some(Value::String(p)) => p == "*",
            Some(Value::Object(m)) => m.get("AWS").and_then(Value::as_str) == Some("*"),
            _ => false,
        };
        let invoke = strings(st.get("Action")).is_some_and(|a| {
            a.iter()
                .any(|a| a == "execute-api:Invoke" || a == "execute-api:*" || a == "*")
        });
        let whole = strings(st.get("Resource")).is_some_and(|r| {
            r.iter().any(|r| {
                r == "*"
                    || r == "execute-api:/*"
                    || (r.starts_with("arn:") && r.ends_with("/*") && r.matches('/').count() == 1)
            })
        });
        // The condition: none, or one IpAddress / NotIpAddress on aws:SourceIp.
        let condition = match st.get("Condition") {
            None => Some(None),
            Some(Value::Object(c)) if c.len() == 1 => c.iter().next().and_then(|(op, v)| {
                let m = v.as_object().filter(|m| m.len() == 1)?;
                let (key, ips) = m.iter().next()?;
                if !key.eq_ignore_ascii_case("aws:SourceIp") {
                    return None;
                }
                let ips = strings(Some(ips))?;
                let ok = ips.iter().all(|ip| {
                    ip.parse::<ipnet::IpNet>().is_ok() || ip.parse::<std::net::IpAddr>().is_ok()
                });
                match op.as_str() {
                    "IpAddress" if ok => Some(Some((true, ips))),
                    "NotIpAddress" if ok => Some(Some((false, ips))),
                    _ => None,
                }
            }),
            Some(_) => None,
        };
        let readable = everyone && invoke && whole && condition.is_some();
        match (effect, readable, condition.flatten()) {
            ("Allow", true, None) => allow_all = true,
            ("Allow", true, Some((true, ips))) => allow_ips.extend(ips),
            ("Deny", true, None) => deny_ips.extend(["0.0.0.0/0".to_owned(), "::/0".to_owned()]),
            ("Deny", true, Some((true, ips))) => deny_ips.extend(ips),
            ("Deny", true, Some((false, ips))) => only_ips.push(ips),
            ("Allow", _, _) => w.push(
                &spath,
                "an allow tollgate cannot read (only every principal, execute-api:Invoke on the whole API, an aws:SourceIp IpAddress condition); left out, so fewer callers are allowed",
            ),
            _ => {
                return refuse(format!(
                    "Statement[{i}] is a deny tollgate cannot read (only every principal, execute-api:Invoke on the whole API, an aws:SourceIp condition); leaving it out would open the API"
                ));
            }
        }
    }
    // A NotIpAddress deny allows only its addresses.
    if only_ips.len() > 1 {
        return refuse("several NotIpAddress denies: their intersection is not read".into());
    }
    let allow = if !allow_all && allow_ips.is_empty() {
        // No allow at all: IAM's implicit deny.
        deny_ips.extend(["0.0.0.0/0".to_owned(), "::/0".to_owned()]);
        w.push(
            path,
            "no statement allows anyone: every request is refused, as API Gateway's implicit deny",
        );
        Vec::new()
    } else if let Some(only) = only_ips.pop() {
        if !allow_all {
            return refuse(
                "an IpAddress allow together with a NotIpAddress deny is not read".into(),
            );
        }
        only
    } else if allow_all {
        Vec::new()
    } else {
        allow_ips
    };
    Ok(Some(json!({ "allow": allow, "deny": deny_ips })))
}

/// What every operation's import reads besides the operation.
struct Known<'a> {
    schemes: &'a Map<String, Value>,
    functions: &'a std::collections::BTreeSet<String>,
}

/// The function a Lambda ARN in an integration `uri` names:
/// `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/arn:aws:lambda:REGION:ACCOUNT:function:NAME[:ALIAS]/invocations`.
/// The function ARN of a Lambda integration's `uri`
/// (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`),
/// when it is a whole ARN tollgate can invoke (no stage variable in it).
fn lambda_arn(uri: Option<&Value>) -> Option<&str> {
    let uri = uri?.as_str()?;
    let arn = uri
        .split_once(":lambda:path/2015-03-31/functions/")?
        .1
        .strip_suffix("/invocations")?;
    crate::integration::function_region(arn).map(|_| arn)
}

fn lambda_function(uri: Option<&Value>) -> Option<&str> {
    let uri = uri?.as_str()?;
    let rest = uri.split_once(":function:")?.1;
    let name = rest.split([':', '/']).next()?;
    (!name.is_empty()).then_some(name)
}
