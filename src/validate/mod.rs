//! Request validation: API Gateway's request validators, models and
//! required parameters
//! ([api-gateway-method-request-validation](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-request-validation.html)).
//!
//! A config declares its **models** (JSON Schema draft 4, by name;
//! [`Models`]) and its **validators** (what each checks;
//! [`RequestValidatorConfig`]); a method names its validator
//! (`request_validator`; set in the API-level `settings` it is the API's
//! default, as `x-amazon-apigateway-request-validator` at an OpenAPI
//! document's root), its required parameters (`request_parameters`, API
//! Gateway's `method.request.{path|querystring|header}.NAME: true`) and the
//! model of each media type (`request_models`, `$default` for any other).
//! [`MethodValidation`] says what is checked and how it is answered:
//!
//! - a required parameter missing or blank: 400 `BAD_REQUEST_PARAMETERS`
//!   `Missing required request parameters: [a, b]`;
//! - a body that fails its model, or is not JSON: 400 `BAD_REQUEST_BODY`
//!   `Invalid request body`. What failed is in
//!   `$context.error.validationErrorString` for a gateway response
//!   template, and in the debug log: `[/path: keyword (schema path)]`,
//!   the first problem, quoting no value of the body and escaping the
//!   property names of its path (API Gateway's own string is worded
//!   differently). Only the first problem is built, whatever the body.
//!
//! Where it sits: after the resource policy, the authorizer and the API
//! key, as in API Gateway. The usage plan's throttle and quota come before
//! it too: API Gateway's execution log shows "Usage Plan check succeeded"
//! before the method request is validated, so a request refused here has
//! counted against its key's quota. Then the cache, the mapping and the
//! integration.
//!
//! The body is read whole only for a method with a model for the request's
//! media type, within the mapping limits (`mapping_limits.max_body`,
//! `limits.body_timeout_ms`; 413 and 408 past them); it reaches the
//! integration byte for byte.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::BodyExt;
//! use tollgate::{Body, Config, Gateway};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let config = Config::from_yaml_str(r#"
//! routes: { /pets: [GET, POST] }
//! models:
//!   Pet: { type: object, required: [name], properties: { name: { type: string } } }
//! validators:
//!   basic: { validate_request_body: true, validate_request_parameters: true }
//! settings: { request_validator: basic }
//! stages:
//!   prod:
//!     methods:
//!       /pets/GET: { request_parameters: { method.request.querystring.type: true } }
//!       /pets/POST: { request_models: { application/json: Pet } }
//! "#).unwrap();
//! let gateway = Gateway::new(config).unwrap();
//! let svc = gateway.service(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, Infallible>(Response::new(Body::from("ok")))
//! }));
//! let call = |req| { let svc = svc.clone(); async move { svc.oneshot(req).await.unwrap() } };
//!
//! let res = call(Request::get("/prod/pets").body(Body::empty()).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"message":"Missing required request parameters: [type]"}"#);
//!
//! let res = call(Request::post("/prod/pets").body(Body::from(r#"{"age": 3}"#)).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//!
//! let res = call(Request::post("/prod/pets").body(Body::from(r#"{"name": "Rex"}"#)).unwrap()).await;
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```

mod layer;
mod method;
mod model;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use self::layer::{ResponseFuture, Validation, ValidationLayer};
pub use self::method::{
    MethodValidation, ParameterLocation, RequestValidatorConfig, RequiredParameter,
};
pub use self::model::{
    MAX_BRANCHING, MAX_MODEL_DEPTH, MAX_MODELS, Model, ModelError, ModelErrors, Models,
    PATTERN_BACKTRACK_LIMIT, UNENFORCED_KEYWORDS,
};

use crate::config::{Issues, Merged, PathBuf};

/// Compiles a config's `models`, reporting each problem at its path.
pub(crate) fn compile_models(
    source: &BTreeMap<String, serde_json::Value>,
    path: &PathBuf,
    issues: &mut Issues,
) -> Models {
    match Models::compile(source) {
        Ok(m) => m,
        Err(errors) => {
            for e in errors {
                let at = if e.model.is_empty() {
                    path.clone()
                } else {
                    path.field(&e.model)
                };
                issues.push(&at, e.message);
            }
            Models::default()
        }
    }
}

/// Checks a config's `validators` names.
pub(crate) fn check_validators(
    validators: &BTreeMap<String, RequestValidatorConfig>,
    path: &PathBuf,
    issues: &mut Issues,
) {
    for name in validators.keys() {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            issues.push(
                &path.field(name),
                "a validator name is 1 to 128 characters, none a control character",
            );
        }
    }
}

/// The sources of one endpoint's validation, merged across its layers.
pub(crate) struct MethodSources<'a> {
    pub(crate) validator: &'a Merged<String>,
    pub(crate) parameters: &'a Merged<BTreeMap<String, bool>>,
    pub(crate) models: &'a Merged<BTreeMap<String, String>>,
}

/// Resolves one endpoint's validation: `None` when its validator checks
/// nothing it could (no validator, or none of its parameters required and
/// no model). `route_params` are the route's `{params}`, which a required
/// path parameter must name.
pub(crate) fn resolve_method(
    sources: &MethodSources<'_>,
    validators: &BTreeMap<String, RequestValidatorConfig>,
    models: &Models,
    route_params: &[Box<str>],
    issues: &mut Issues,
) -> Option<Arc<MethodValidation>> {
    let empty_params = BTreeMap::new();
    let empty_models = BTreeMap::new();
    let params = sources.parameters.value.as_ref().unwrap_or(&empty_params);
    let pmodels = sources.models.value.as_ref().unwrap_or(&empty_models);
    for key in params.keys() {
        if let Ok(p) = RequiredParameter::parse(key)
            && p.location == ParameterLocation::Path
            && !route_params.iter().any(|r| **r == *p.name)
        {
            issues.push(
                &sources
                    .parameters
                    .path
                    .field("request_parameters")
                    .field(key),
                format!("the route has no `{{{}}}`", p.name.escape_debug()),
            );
        }
    }
    let (name, validator) = match &sources.validator.value {
        Some(name) => match validators.get(name) {
            Some(v) => (name.as_str(), *v),
            None => {
                issues.push(
                    &sources.validator.path.field("request_validator"),
                    format!(
                        "no validator is named `{}` (see `validators`)",
                        name.escape_debug()
                    ),
                );
                return None;
            }
        },
        // Without a validator the parameters and models are still checked.
        None => ("", RequestValidatorConfig::default()),
    };
    match MethodValidation::new(name, validator, params, pmodels, models) {
        Ok(v) => v.is_active().then(|| Arc::new(v)),
        Err(errors) => {
            for (key, message) in errors {
                let field = if params.contains_key(&key) {
                    sources.parameters.path.field("request_parameters")
                } else {
                    sources.models.path.field("request_models")
                };
                issues.push(&field.field(&key), message);
            }
            None
        }
    }
}
