//! One method's validation: its required parameters and its body models.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::Request;
use http::header::CONTENT_TYPE;
use serde::{Deserialize, Serialize};

use super::model::{Model, Models};
use crate::context::RequestContext;

/// A request validator: what it checks (API Gateway's `RequestValidator`,
/// `x-amazon-apigateway-request-validators.requestValidator`). Both default
/// to false.
///
/// ```yaml
/// validators:
///   basic: { validate_request_body: true, validate_request_parameters: true }
///   params-only: { validate_request_parameters: true }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestValidatorConfig {
    /// Check the body against the method's model for its content type.
    #[serde(default)]
    pub validate_request_body: bool,
    /// Check that the method's required parameters are present and not blank.
    #[serde(default)]
    pub validate_request_parameters: bool,
}

/// Where a required parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParameterLocation {
    /// `method.request.path.NAME`: the route's `{NAME}`.
    Path,
    /// `method.request.querystring.NAME`: the first `NAME=` of the query.
    QueryString,
    /// `method.request.header.NAME`, case-insensitive.
    Header,
}

impl ParameterLocation {
    /// The location's word in API Gateway's parameter names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::QueryString => "querystring",
            Self::Header => "header",
        }
    }
}

/// One required request parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredParameter {
    /// Where it is read from.
    pub location: ParameterLocation,
    /// Its name (a header's lower-cased).
    pub name: Box<str>,
    /// A header's name, parsed once.
    header: Option<http::HeaderName>,
}

impl RequiredParameter {
    /// Parses API Gateway's `method.request.{path|querystring|header}.NAME`.
    ///
    /// # Errors
    /// Any other shape, or an empty name, with a message saying which.
    pub fn parse(key: &str) -> Result<Self, String> {
        let rest = key.strip_prefix("method.request.").ok_or_else(|| {
            "a request parameter is `method.request.path|querystring|header.NAME`".to_owned()
        })?;
        let (location, name) = rest.split_once('.').ok_or_else(|| {
            "a request parameter is `method.request.path|querystring|header.NAME`".to_owned()
        })?;
        let location = match location {
            "path" => ParameterLocation::Path,
            "querystring" => ParameterLocation::QueryString,
            "header" => ParameterLocation::Header,
            other => {
                return Err(format!(
                    "`{}` is no parameter location (path, querystring, header)",
                    other.escape_debug()
                ));
            }
        };
        if name.is_empty() {
            return Err("the parameter has no name".to_owned());
        }
        let header = if location == ParameterLocation::Header {
            Some(
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| "not a valid header name".to_owned())?,
            )
        } else {
            None
        };
        let name = match &header {
            Some(h) => h.as_str().to_owned(),
            None => name.to_owned(),
        };
        Ok(Self {
            location,
            name: name.into(),
            header,
        })
    }
}

/// What one method validates: compiled once from its validator, its
/// `request_parameters` and its `request_models`.
///
/// - **Parameters** (when the validator says `validate_request_parameters`):
///   every parameter marked `true` must be present and not blank (a value
///   of only spaces is blank). The missing ones are listed in API Gateway's
///   order (by `method.request.…` name) in 400 `BAD_REQUEST_PARAMETERS`
///   `Missing required request parameters: [a, b]`.
/// - **Body** (`validate_request_body`): the model for the request's media
///   type (no `Content-Type` counts as `application/json`), else the
///   `$default` one. A method with no model for the type validates nothing
///   (the passthrough behaviour decides what reaches the integration, as
///   in API Gateway). An empty body is validated as `{}`; a body that is
///   not JSON, or fails the model, is 400 `BAD_REQUEST_BODY` `Invalid
///   request body`, the detail in `$context.error.validationErrorString`.
///
/// Parameters are checked first: a request with both faults gets the
/// parameters' answer.
pub struct MethodValidation {
    validator: Box<str>,
    parameters: Vec<RequiredParameter>,
    /// `None`: the body is not validated.
    body: Option<BodyModels>,
    /// The source, for equality.
    source: Source,
}

/// What a [`MethodValidation`] was compiled from: the validator, the
/// parameters and the models by media type.
type Source = (
    RequestValidatorConfig,
    Vec<(String, bool)>,
    Vec<(String, String)>,
);

struct BodyModels {
    /// Lower-cased media type → model.
    by_type: Vec<(Box<str>, Arc<Model>)>,
    default: Option<Arc<Model>>,
}

impl fmt::Debug for MethodValidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MethodValidation")
            .field("validator", &self.validator)
            .field("parameters", &self.parameters)
            .field(
                "models",
                &self.body.as_ref().map(|b| {
                    b.by_type
                        .iter()
                        .map(|(t, m)| (&**t, m.name()))
                        .chain(b.default.as_ref().map(|m| ("$default", m.name())))
                        .collect::<Vec<_>>()
                }),
            )
            .finish()
    }
}

impl PartialEq for MethodValidation {
    fn eq(&self, other: &Self) -> bool {
        self.validator == other.validator && self.source == other.source
    }
}

impl MethodValidation {
    /// Compiles one method's validation: `validator` (named `name`, for
    /// logs) applied with the method's `request_parameters`
    /// (`method.request.querystring.q: true`) and `request_models` (media
    /// type or `$default` → model name in `models`).
    ///
    /// # Errors
    /// A parameter name that does not parse ([`RequiredParameter::parse`])
    /// or a model that is not in `models`, each as `(key, message)`.
    pub fn new(
        name: &str,
        validator: RequestValidatorConfig,
        request_parameters: &BTreeMap<String, bool>,
        request_models: &BTreeMap<String, String>,
        models: &Models,
    ) -> Result<Self, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut parameters = Vec::new();
        // BTreeMap order: API Gateway lists missing parameters by key.
        for (key, required) in request_parameters {
            match RequiredParameter::parse(key) {
                Ok(p) if *required => parameters.push(p),
                Ok(_) => {}
                Err(m) => errors.push((key.clone(), m)),
            }
        }
        let mut by_type = Vec::new();
        let mut default = None;
        for (media, model) in request_models {
            let Some(m) = models.get(model) else {
                errors.push((
                    media.clone(),
                    format!("no model is named `{}`", model.escape_debug()),
                ));
                continue;
            };
            if media == "$default" {
                default = Some(m.clone());
            } else {
                by_type.push((crate::mapping::media_type_of(media).into(), m.clone()));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if !validator.validate_request_parameters {
            parameters.clear();
        }
        let body = (validator.validate_request_body && (default.is_some() || !by_type.is_empty()))
            .then_some(BodyModels { by_type, default });
        Ok(Self {
            validator: name.into(),
            parameters,
            body,
            source: (
                validator,
                request_parameters
                    .iter()
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                request_models
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
        })
    }

    /// Whether this validation checks anything at all.
    pub fn is_active(&self) -> bool {
        !self.parameters.is_empty() || self.body.is_some()
    }

    /// The validator's name.
    pub fn validator(&self) -> &str {
        &self.validator
    }

    /// The required parameters checked, in the order they are listed.
    pub fn required_parameters(&self) -> &[RequiredParameter] {
        &self.parameters
    }

    /// The names of the required parameters `req` lacks or has blank, in
    /// API Gateway's order. Path parameters are read from the request's
    /// [`RequestContext`] (a [`RouteLayer`](crate::route::RouteLayer) in
    /// front); without one, a required path parameter counts as missing.
    pub fn missing_parameters<B>(&self, req: &Request<B>) -> Vec<&str> {
        let blank = |v: Option<&str>| v.is_none_or(|v| v.trim().is_empty());
        let ctx = req.extensions().get::<RequestContext>();
        self.parameters
            .iter()
            .filter(|p| match p.location {
                ParameterLocation::Path => blank(ctx.and_then(|c| c.path_param(&p.name))),
                ParameterLocation::QueryString => query_blank(req.uri().query(), &p.name),
                ParameterLocation::Header => {
                    let Some(name) = &p.header else { return true };
                    let mut values = req.headers().get_all(name).iter();
                    // Present when any value is non-blank.
                    !values.any(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
                }
            })
            .map(|p| &*p.name)
            .collect()
    }

    /// The model the body of `req` is validated against, if any.
    pub fn body_model<B>(&self, req: &Request<B>) -> Option<&Arc<Model>> {
        let body = self.body.as_ref()?;
        let media = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or_else(
                || "application/json".to_owned(),
                crate::mapping::media_type_of,
            );
        body.by_type
            .iter()
            .find(|(t, _)| **t == *media)
            .map(|(_, m)| m)
            .or(body.default.as_ref())
    }
}

/// Whether the first `name` parameter of query `q` is missing or blank,
/// names and values read as a form's (`+` a space, then percent escapes),
/// decoding only what holds an escape.
fn query_blank(q: Option<&str>, name: &str) -> bool {
    // The mapping's decoding, skipped for a piece with nothing to decode.
    fn decoded(s: &str) -> std::borrow::Cow<'_, str> {
        if s.contains(['%', '+']) {
            std::borrow::Cow::Owned(crate::mapping::decode_query_piece(s))
        } else {
            std::borrow::Cow::Borrowed(s)
        }
    }
    for piece in q.unwrap_or("").split('&') {
        let (n, v) = piece.split_once('=').unwrap_or((piece, ""));
        if n.is_empty() {
            continue;
        }
        if decoded(n) == name {
            return decoded(v).trim().is_empty();
        }
    }
    true
}
