//! Applying a mapping to one request and its response.
//!
//! The order is API Gateway's integration request and integration response
//! (`how-to-integration-settings.md`, `integration-passthrough-behaviors.md`):
//! what templates see is read from the method request first; then the
//! parameter mapping, then the body template (or passthrough), then the
//! call; then the integration response selected by the backend's status,
//! its headers and its body template. A body is read whole only when a
//! template will render it; any other body streams through.
//!
//! A body with a JSON content type that a template renders must parse (400
//! `BAD_REQUEST_BODY` with serde_json's line and column otherwise). For a
//! template that never selects from it, the check counts the values as they
//! are read and builds nothing ([`count_values`]). For one that selects
//! (`input.json`, `input.path`), the body is parsed into a document, but
//! only if its values, parsed, fit in four times `max_output`
//! ([`parse_bounded`]): 10 MiB of `[[],[],...]` is small as text and not as
//! values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use ipnet::IpNet;
use tower::Service;

use super::compile::{CompiledMapping, HeaderSource, MappingLimits, media_type};
use super::config::Passthrough;
use super::layer::Shared;
use super::params::{ContextValue, context_value, parse_query};
use super::template::{self, Input, Params, TemplateContext};
use crate::auth::authorizer::AuthorizerContext;
use crate::body::{Body, BodyLimits, BoxError, ReadError, read_bounded};
use crate::context::RequestContext;
use crate::response::GatewayResponseKind;

/// Everything a template needs from the method request.
pub(super) struct RequestFacts {
    /// The template's `context`.
    context: TemplateContext,
    /// The stage's variables, for `stage_variables`.
    stage_variables: BTreeMap<String, String>,
    /// `input.params()`, shared by the request and the response template.
    params: Arc<Params>,
    /// The client's `Accept`, which picks the response template.
    accept: Option<String>,
}

/// Reads what templates see from the method request, before the parameter
/// mapping changes it: as in API Gateway, `input.params()` and `context`
/// describe the request the client sent. Each parameter keeps its first
/// value; a header value that is not visible ASCII is left out. Made only
/// when the mapping has a template or an integration response.
pub(super) fn facts<B>(req: &Request<B>, trusted: &[IpNet]) -> RequestFacts {
    let ctx = req.extensions().get::<RequestContext>();
    let value = |c| {
        context_value(c, req, trusted)
            .map(|v| v.into_owned())
            .unwrap_or_default()
    };
    let context = TemplateContext {
        request_id: value(ContextValue::RequestId),
        stage: value(ContextValue::Stage),
        resource_path: value(ContextValue::ResourcePath),
        http_method: value(ContextValue::HttpMethod),
        source_ip: value(ContextValue::SourceIp),
        api_key_id: value(ContextValue::ApiKeyId),
        principal_id: value(ContextValue::PrincipalId),
        authorizer: req
            .extensions()
            .get::<AuthorizerContext>()
            .map(|a| a.context.clone())
            .unwrap_or_default(),
    };
    let mut params = Params::default();
    if let Some(ctx) = ctx {
        for (n, v) in ctx.path_params() {
            params.path.insert(n.to_owned(), v.to_owned());
        }
    }
    for (k, v) in parse_query(req.uri().query()) {
        params.querystring.entry(k).or_insert(v);
    }
    for (k, v) in req.headers() {
        if let Ok(v) = v.to_str() {
            params
                .header
                .entry(k.as_str().to_owned())
                .or_insert_with(|| v.to_owned());
        }
    }
    RequestFacts {
        context,
        stage_variables: ctx
            .map(|c| c.endpoint().stage_variables().clone())
            .unwrap_or_default(),
        params: Arc::new(params),
        accept: req
            .headers()
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// A request id for logs, formatted only when logged.
struct LogId(Option<crate::context::RequestId>);

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => fmt::Display::fmt(id, f),
            None => Ok(()),
        }
    }
}

/// Reads a whole body within the mapping's size and time limits.
async fn read_body<B>(body: B, limits: &MappingLimits) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
{
    let limits = BodyLimits {
        max: limits.max_body,
        timeout: limits.body_timeout,
    };
    read_bounded(body, limits).await
}

/// Whether a media type is JSON: `application/json` or any `+json` type
/// (`application/problem+json`).
fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The body parsed for a template that selects from it: an empty body is
/// `null` (a GET's template still renders); a JSON content type that does
/// not parse is an error; anything else is JSON only if it parses.
fn parse_json_body(
    media: &str,
    body: &Bytes,
    limit: usize,
) -> Result<Option<serde_json::Value>, BodyJsonError> {
    if body.is_empty() {
        return Ok(Some(serde_json::Value::Null));
    }
    if !is_json(media) {
        return Ok(parse_bounded(body, limit).ok());
    }
    parse_bounded(body, limit).map(Some)
}

/// Why a JSON body cannot be mapped.
#[derive(Debug)]
pub(super) enum BodyJsonError {
    /// It does not parse.
    Syntax(serde_json::Error),
    /// It holds more values than a render may hold parsed.
    TooManyValues,
}

impl fmt::Display for BodyJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax(e) => write!(f, "Invalid JSON in request body: {e}"),
            Self::TooManyValues => f.write_str(
                "The JSON in the request body has more values than a mapping template may hold",
            ),
        }
    }
}

/// Parses a JSON body whose values, parsed, fit in 4 times `limit`
/// (`max_output`): each takes about 48 bytes, so the values are counted
/// first, without building them.
pub(super) fn parse_bounded(body: &[u8], limit: usize) -> Result<serde_json::Value, BodyJsonError> {
    // Every value takes at least a byte of text: a body this short cannot
    // hold too many, and is parsed once.
    if body.len().saturating_mul(48) > limit.saturating_mul(4) {
        let count = count_values(body).map_err(BodyJsonError::Syntax)?;
        if count.saturating_mul(48) > limit.saturating_mul(4) {
            return Err(BodyJsonError::TooManyValues);
        }
    }
    serde_json::from_slice(body).map_err(BodyJsonError::Syntax)
}

/// How many values a JSON document holds, counted as they are read and
/// dropped (no document is built). It goes through `deserialize_any`, so
/// serde_json's nesting limit (128) applies as it does to a parse.
fn count_values(body: &[u8]) -> Result<usize, serde_json::Error> {
    let count = std::cell::Cell::new(0usize);
    let mut de = serde_json::Deserializer::from_slice(body);
    serde::de::DeserializeSeed::deserialize(Counting(&count), &mut de)?;
    de.end()?;
    Ok(count.get())
}

/// Counts the values of a JSON document as they are read and dropped.
struct Counting<'a>(&'a std::cell::Cell<usize>);

impl Counting<'_> {
    /// Counts one scalar.
    fn one<E>(&self) -> Result<(), E> {
        self.0.set(self.0.get() + 1);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Counting<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Counting<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.one()
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.one()
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.one()
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.one()
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        self.one()
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.one()
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.set(self.0.get() + 1);
        while seq.next_element_seed(Counting(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.set(self.0.get() + 1);
        while map.next_key_seed(Counting(self.0))?.is_some() {
            map.next_value_seed(Counting(self.0))?;
        }
        Ok(())
    }
}

/// Checks that a body whose content type is JSON parses, before a template
/// renders (400 otherwise), without building it: it is parsed for real
/// only when a template selects from it.
fn check_json_body(media: &str, body: &Bytes) -> Result<(), serde_json::Error> {
    if body.is_empty() || !is_json(media) {
        return Ok(());
    }
    count_values(body).map(|_| ())
}

/// Maps one request, calls `inner` with it, and maps the response.
///
/// 1. The facts templates see are read, then the parameter operations
///    applied.
/// 2. When the mapping needs the body: a content type (none counts as
///    `application/json`) without a template passes or gets 415
///    `UNSUPPORTED_MEDIA_TYPE`, as the passthrough rule says. With one, the
///    body is read within `max_body` and `body_timeout` (413, 408; a body
///    that fails to arrive is 400), a JSON body checked or parsed (400), the
///    template rendered (500 on any failure, the detail logged under the
///    request id), and the body and its `Content-Length` replaced.
/// 3. The backend's status selects an integration response; with none, the
///    response passes unchanged. Its status and headers are set (header
///    sources read from the backend's headers as they came), and when it
///    has templates, the body is read and rendered as the request's was
///    (500 on any failure), `Content-Type` set to the template's.
///
/// Every refusal is an `Ok` response; `Err` is only ever `inner`'s error.
pub(super) async fn run<S, ReqB, ResB>(
    mapping: Arc<CompiledMapping>,
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<ReqB>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Send + 'static,
    S::Future: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let responses = &shared.responses;
    let mut req = req;
    let facts = (!mapping.request_templates.is_empty() || !mapping.responses.is_empty())
        .then(|| facts(&req, &shared.trusted));
    if !mapping.params.is_empty() {
        mapping.params.apply(&mut req, &shared.trusted);
    }
    // Formatted only when something is logged.
    let id_of = req
        .extensions()
        .get::<RequestContext>()
        .map(RequestContext::request_id);
    let id = LogId(id_of);

    let req = if mapping.needs_request_body() {
        let media = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "application/json".to_owned(), media_type);
        let chosen = mapping
            .request_templates
            .iter()
            .find(|(t, _)| *t == media)
            .map(|(_, name)| name.clone());
        match chosen {
            None => {
                let pass = match mapping.passthrough {
                    Passthrough::WhenNoMatch => true,
                    Passthrough::WhenNoTemplates => mapping.request_templates.is_empty(),
                    Passthrough::Never => false,
                };
                if !pass {
                    return Ok(responses.respond(GatewayResponseKind::UnsupportedMediaType));
                }
                req.map(Body::new)
            }
            Some(name) => {
                let (mut parts, body) = req.into_parts();
                let body = match read_body(body, &mapping.limits).await {
                    Ok(b) => b,
                    Err(ReadError::Failed) => {
                        return Ok(responses.respond_with_message(
                            GatewayResponseKind::BadRequestBody,
                            "The request body could not be read",
                        ));
                    }
                    Err(e) => return Ok(responses.respond(e.kind())),
                };
                // A template that selects from the body gets it parsed once,
                // here; any other only has a JSON body checked, not built.
                let parsed = std::sync::OnceLock::new();
                let checked = if mapping.selecting.contains(&name) {
                    parse_json_body(&media, &body, mapping.limits.max_output).map(|json| {
                        let _ = parsed.set(json);
                    })
                } else {
                    check_json_body(&media, &body).map_err(BodyJsonError::Syntax)
                };
                match checked {
                    Ok(()) => {}
                    Err(e) => {
                        return Ok(responses.respond_with_message(
                            GatewayResponseKind::BadRequestBody,
                            &e.to_string(),
                        ));
                    }
                };
                let facts = facts.as_ref().expect("made when there are templates");
                let input = Input {
                    body: minijinja::Value::from(String::from_utf8_lossy(&body).into_owned()),
                    raw: body,
                    json: parsed,
                    params: facts.params.clone(),
                    limit: mapping.limits.max_output,
                };
                match template::render(
                    &mapping.env,
                    &name,
                    input,
                    &facts.context,
                    &facts.stage_variables,
                    &mapping.limits,
                ) {
                    Ok(out) => {
                        parts.headers.remove(CONTENT_LENGTH);
                        parts
                            .headers
                            .insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
                        Request::from_parts(parts, Body::full(out))
                    }
                    Err(e) => {
                        tracing::error!(request_id = %id, template = %name, error = %e, "request mapping template failed");
                        return Ok(responses.respond(GatewayResponseKind::Default5xx));
                    }
                }
            }
        }
    } else {
        req.map(Body::new)
    };

    let res = inner.call(req).await?;
    let Some(rule) = mapping.select(res.status()) else {
        return Ok(res.map(Body::new));
    };
    let (mut parts, body) = res.into_parts();
    let backend_headers = if rule.headers.is_empty() {
        http::HeaderMap::new()
    } else {
        parts.headers.clone()
    };
    if let Some(s) = rule.status {
        parts.status = s;
    }
    for (name, source) in &rule.headers {
        match source {
            HeaderSource::Literal(v) => {
                parts.headers.insert(name.clone(), v.clone());
            }
            HeaderSource::Integration(from) => {
                if let Some(v) = backend_headers.get(from) {
                    parts.headers.insert(name.clone(), v.clone());
                }
            }
        }
    }
    if rule.templates.is_empty() {
        return Ok(Response::from_parts(parts, Body::new(body)));
    }
    let facts = facts.as_ref().expect("made when there are responses");
    let (ctype, name) = choose_response_template(&rule.templates, facts.accept.as_deref());
    let body = match read_body(body, &mapping.limits).await {
        Ok(b) => b,
        Err(_) => {
            tracing::error!(request_id = %id, "integration response body over the mapping limit or unreadable");
            return Ok(responses.respond(GatewayResponseKind::Default5xx));
        }
    };
    let input = Input {
        body: minijinja::Value::from(String::from_utf8_lossy(&body).into_owned()),
        raw: body,
        json: std::sync::OnceLock::new(),
        params: facts.params.clone(),
        limit: mapping.limits.max_output,
    };
    match template::render(
        &mapping.env,
        name,
        input,
        &facts.context,
        &facts.stage_variables,
        &mapping.limits,
    ) {
        Ok(out) => {
            parts.headers.remove(CONTENT_LENGTH);
            if let Ok(v) = HeaderValue::from_str(ctype) {
                parts.headers.insert(CONTENT_TYPE, v);
            }
            Ok(Response::from_parts(parts, Body::full(out)))
        }
        Err(e) => {
            tracing::error!(request_id = %id, template = %name, error = %e, "response mapping template failed");
            Ok(responses.respond(GatewayResponseKind::Default5xx))
        }
    }
}

/// The template the request's `Accept` names, else `application/json`, else the first.
///
/// `Accept` is read as a list of media types, in the client's order, with
/// their parameters (`q=`) ignored, each matched exactly against the
/// templates' content types. Returns (content type, template name).
fn choose_response_template<'a>(
    templates: &'a [(String, String)],
    accept: Option<&str>,
) -> (&'a str, &'a str) {
    let by = |t: &str| templates.iter().find(|(c, _)| c == t);
    let found = accept
        .into_iter()
        .flat_map(|a| a.split(','))
        .map(media_type)
        .find_map(|t| by(&t))
        .or_else(|| by("application/json"))
        .or_else(|| templates.first());
    found.map_or(("application/json", ""), |(c, n)| (c.as_str(), n.as_str()))
}
