//! Applying a mapping to one request and its response.
//!
//! The order is API Gateway's integration request and integration response
//! ([`how-to-integration-settings`](https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-integration-settings.html), [`integration-passthrough-behaviors`](https://docs.aws.amazon.com/apigateway/latest/developerguide/integration-passthrough-behaviors.html)):
//! what templates see is read from the method request first; then the
//! parameter mapping, then the body template (or passthrough), then the
//! call; then the integration response selected by the backend's status,
//! its headers and its body template. A body is read whole only when a
//! template will render it; any other body streams through.
//!
//! A body with a JSON content type that a template renders must parse (400
//! `BAD_REQUEST_BODY` with serde_json's line and column otherwise). For a
//! template that never selects from it, the check counts the values as they
//! are read and builds nothing ([`count_values`](super::json::count_values)). For one that selects
//! (`input.json`, `input.path`), the body is parsed into a document, but
//! only if its values, parsed, fit in four times `max_output`
//! ([`parse_bounded`](super::json::parse_bounded)): 10 MiB of `[[],[],...]` is small as text and not as
//! values.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use ipnet::IpNet;
use tower::Service;

use super::binary::{
    self, BinaryMediaTypes, ContentHandling, Conversion, request_conversion, response_conversion,
};
use super::compile::{CompiledMapping, HeaderSource, MappingLimits, media_type};
use super::config::Passthrough;
use super::json::{BodyJsonError, check_json_body, parse_json_body};
use super::layer::Shared;
use super::params::{ContextValue, context_value, parse_query};
use super::template::{self, Input, Params, TemplateContext};
use crate::auth::authorizer::AuthorizerContext;
use crate::body::{Body, BodyLimits, BoxError, ReadError, read_bounded};
use crate::context::RequestContext;
use crate::response::{GatewayResponseKind, GatewayResponses};

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
    /// VTL's `$context`, made when the mapping has VTL templates.
    vtl_context: Option<serde_json::Value>,
}

/// Reads what templates see from the method request, before the parameter
/// mapping changes it: as in API Gateway, `input.params()` and `context`
/// describe the request the client sent. Each parameter keeps its first
/// value; a header value that is not visible ASCII is left out. Made only
/// when the mapping has a template or an integration response.
pub(super) fn facts<B>(
    req: &Request<B>,
    trusted: &[IpNet],
    vtl: Option<&Option<Vec<String>>>,
) -> RequestFacts {
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
    let vtl_context = vtl.map(|names| vtl_context(req, &context, names.as_deref()));
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
        vtl_context,
    }
}

/// VTL's `$context` for a request: the variables of API Gateway's
/// mapping-template reference that tollgate knows, the rest empty (a
/// template that reads one gets `""`, as it would get null there).
///
/// - `requestId` and `extendedRequestId`: the gateway's request id;
/// - `apiId`: the API's id (the config's `name` for a single-API config);
/// - `path`: the path as the client sent it, stage included;
///   `resourcePath`: the resource template; `resourceId`: the resource
///   template too (API Gateway's ids do not exist here);
/// - `requestTime` (CLF, UTC) and `requestTimeEpoch` (milliseconds), from
///   the system clock;
/// - `domainName` (the `Host` header, port dropped) and `domainPrefix`
///   (its first label); `protocol` (`HTTP/1.1`, `HTTP/2.0`);
/// - `identity`: `sourceIp` (behind trusted proxies, from
///   `X-Forwarded-For`), `userAgent`, `apiKeyId`, and `apiKey` (the key the
///   request was admitted with, read from its `x-api-key` header; empty for
///   a method that requires none, as API Gateway's is null);
/// - `authorizer`: `principalId` and every key of the authorizer's
///   context, as strings;
/// - `requestOverride` and `responseOverride`: empty maps a template
///   writes into; what it set is applied once it is done.
///
/// Only the names in `wanted` are made (`None`: every one).
fn vtl_context<B>(
    req: &Request<B>,
    t: &TemplateContext,
    wanted: Option<&[String]>,
) -> serde_json::Value {
    use serde_json::{Value as J, json};
    let ctx = req.extensions().get::<RequestContext>();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let domain = || {
        let host = header("host");
        // The port dropped; an IPv6 literal keeps its brackets.
        match host.find(']') {
            Some(end) if host.starts_with('[') => host[..=end].to_owned(),
            _ => host.split(':').next().unwrap_or("").to_owned(),
        }
    };
    let now_ms = || crate::clock::Clock::unix_nanos(&crate::clock::SystemClock) / 1_000_000;
    let value = |name: &str| -> J {
        match name {
            "accountId" => json!(""),
            "apiId" => json!(ctx.map_or("", |c| c.endpoint().api())),
            "authorizer" => {
                let mut a = serde_json::Map::new();
                a.insert("principalId".into(), json!(t.principal_id));
                for (k, v) in &t.authorizer {
                    a.insert(k.clone(), json!(v));
                }
                J::Object(a)
            }
            "domainName" => json!(domain()),
            "domainPrefix" => json!(domain().split('.').next().unwrap_or("")),
            "extendedRequestId" | "requestId" => json!(t.request_id),
            "httpMethod" => json!(t.http_method),
            "identity" => json!({
                "accountId": "",
                "apiKey": if t.api_key_id.is_empty() { String::new() } else { header("x-api-key") },
                "apiKeyId": t.api_key_id,
                "caller": "",
                "sourceIp": t.source_ip,
                "user": "",
                "userAgent": header("user-agent"),
                "userArn": "",
            }),
            "path" => json!(ctx.map_or_else(|| req.uri().path(), |c| c.original_uri().path())),
            "protocol" => json!(match req.version() {
                http::Version::HTTP_10 => "HTTP/1.0",
                http::Version::HTTP_2 => "HTTP/2.0",
                http::Version::HTTP_3 => "HTTP/3.0",
                _ => "HTTP/1.1",
            }),
            "requestOverride" => json!({"header": {}, "path": {}, "querystring": {}}),
            "requestTime" => {
                let mut time = String::new();
                crate::usage::clf_time(i64::try_from(now_ms() / 1000).unwrap_or(0), &mut time);
                json!(time)
            }
            "requestTimeEpoch" => json!(now_ms()),
            "resourceId" | "resourcePath" => json!(t.resource_path),
            "responseOverride" => json!({"header": {}}),
            "stage" => json!(t.stage),
            _ => J::Null,
        }
    };
    const ALL: &[&str] = &[
        "accountId",
        "apiId",
        "authorizer",
        "domainName",
        "domainPrefix",
        "extendedRequestId",
        "httpMethod",
        "identity",
        "path",
        "protocol",
        "requestId",
        "requestOverride",
        "requestTime",
        "requestTimeEpoch",
        "resourceId",
        "resourcePath",
        "responseOverride",
        "stage",
    ];
    let mut m = serde_json::Map::new();
    match wanted {
        Some(names) => {
            for n in names {
                let v = value(n);
                if !v.is_null() {
                    m.insert(n.clone(), v);
                }
            }
        }
        None => {
            for n in ALL {
                m.insert((*n).to_owned(), value(n));
            }
        }
    }
    J::Object(m)
}

/// A template's output, and a VTL template's overrides.
type Rendered = (Vec<u8>, Option<crate::vtl::Overrides>);

/// Renders template `name`: VTL when the mapping is in VTL, else minijinja.
fn render_any(
    mapping: &CompiledMapping,
    facts: &RequestFacts,
    name: &str,
    body: Bytes,
    parsed: std::sync::OnceLock<Option<serde_json::Value>>,
) -> Result<Rendered, String> {
    if let Some(t) = mapping.vtl.get(name) {
        let empty = serde_json::Value::Null;
        let vars = crate::vtl::Variables {
            body: &body,
            params: crate::vtl::Params {
                path: &facts.params.path,
                querystring: &facts.params.querystring,
                header: &facts.params.header,
            },
            context: facts.vtl_context.as_ref().unwrap_or(&empty),
            stage_variables: &facts.stage_variables,
        };
        return t
            .render_with_overrides(&vars, &mapping.limits.vtl())
            .map(|r| (r.body.into_bytes(), Some(r.overrides)))
            .map_err(|e| e.to_string());
    }
    let input = Input {
        body: minijinja::Value::from(String::from_utf8_lossy(&body).into_owned()),
        raw: body,
        json: parsed,
        params: facts.params.clone(),
        limit: mapping.limits.max_output,
    };
    template::render(
        &mapping.env,
        name,
        input,
        &facts.context,
        &facts.stage_variables,
        &mapping.limits,
    )
    .map(|out| (out, None))
    .map_err(|e| e.to_string())
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
    binary: Option<Arc<BinaryMediaTypes>>,
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
    let facts =
        (!mapping.request_templates.is_empty() || !mapping.responses.is_empty()).then(|| {
            let vtl = (!mapping.vtl.is_empty()).then_some(&mapping.vtl_context);
            facts(&req, &shared.trusted, vtl)
        });
    // What the response's conversion reads from the request: whether it is
    // a HEAD (no body to convert) and whether the first media type of its
    // `Accept` is binary (API Gateway honours only the first).
    let asked = Asked {
        head: req.method() == http::Method::HEAD,
        binary: binary.as_deref().is_some_and(|b| {
            req.headers()
                .get(ACCEPT)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| a.split(',').next())
                .is_some_and(|first| b.matches(first))
        }),
    };
    if !mapping.params.is_empty() && mapping.params.apply(&mut req, &shared.trusted).is_err() {
        return Ok(responses.respond_with_message(
            GatewayResponseKind::BadRequestParameters,
            "The request URI is too long once its query is mapped",
        ));
    }
    // Formatted only when something is logged.
    let id_of = req
        .extensions()
        .get::<RequestContext>()
        .map(RequestContext::request_id);
    let id = LogId(id_of);

    let req_binary = binary.as_deref().is_some_and(|b| {
        req.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| b.matches(c))
    });
    let conversion = request_conversion(req_binary, mapping.request_handling);
    let req = match conversion {
        // Bytes: no template reads them, whatever the passthrough rule.
        Conversion::Binary => req.map(Body::new),
        Conversion::Decode => {
            let (mut parts, body) = req.into_parts();
            let body = match read_request_body(body, &mapping.limits, responses).await {
                Ok(b) => b,
                Err(refused) => return Ok(refused),
            };
            let Some(bytes) = binary::decode(&body) else {
                tracing::error!(request_id = %id, "request body is not base64 (content_handling: convert_to_binary)");
                return Ok(responses.respond(GatewayResponseKind::ApiConfigurationError));
            };
            set_length(&mut parts.headers, bytes.len());
            Request::from_parts(parts, Body::full(bytes))
        }
        Conversion::Text | Conversion::Encode
            if mapping.needs_request_body() || conversion == Conversion::Encode =>
        {
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
            if chosen.is_none() {
                let pass = match mapping.passthrough {
                    Passthrough::WhenNoMatch => true,
                    Passthrough::WhenNoTemplates => mapping.request_templates.is_empty(),
                    Passthrough::Never => false,
                };
                if !pass {
                    return Ok(responses.respond(GatewayResponseKind::UnsupportedMediaType));
                }
            }
            if chosen.is_none() && conversion == Conversion::Text {
                // Passed on, unread.
                req.map(Body::new)
            } else {
                let (mut parts, body) = req.into_parts();
                let body = match read_request_body(body, &mapping.limits, responses).await {
                    Ok(b) if conversion == Conversion::Encode => binary::encode(&b),
                    Ok(b) => b,
                    Err(refused) => return Ok(refused),
                };
                match chosen {
                    // Encoded, no template: the base64 text passes.
                    None => {
                        set_length(&mut parts.headers, body.len());
                        Request::from_parts(parts, Body::full(body))
                    }
                    Some(name) => {
                        match render_request(
                            &mapping,
                            facts.as_ref(),
                            responses,
                            &media,
                            &name,
                            body,
                            &id,
                            conversion,
                        ) {
                            Ok((out, overrides)) => {
                                set_length(&mut parts.headers, out.len());
                                if let Some(o) = overrides.filter(|o| !o.is_empty())
                                    && super::params::apply_overrides(&mut parts, &o).is_err()
                                {
                                    return Ok(responses.respond_with_message(
                                        GatewayResponseKind::BadRequestParameters,
                                        "The request URI is too long once its query is mapped",
                                    ));
                                }
                                Request::from_parts(parts, Body::full(out))
                            }
                            Err(refused) => return Ok(*refused),
                        }
                    }
                }
            }
        }
        Conversion::Text | Conversion::Encode => req.map(Body::new),
    };

    let res = inner.call(req).await?;
    Ok(respond(
        &mapping,
        binary.as_deref(),
        asked,
        facts.as_ref(),
        responses,
        &id,
        res,
    )
    .await)
}

/// What the request says about converting its response.
#[derive(Clone, Copy)]
struct Asked {
    head: bool,
    /// The first `Accept` media type is a binary one.
    binary: bool,
}

/// Renders request template `name` over `body`: a JSON body checked (or
/// parsed, for a template that selects from it) first; a base64-encoded
/// body is text, not JSON, whatever its type. `Err` is the refusal: 400
/// `BAD_REQUEST_BODY` naming what is wrong with the JSON, 500 for a template
/// that fails (the detail logged under the request id).
#[allow(clippy::too_many_arguments)]
fn render_request(
    mapping: &CompiledMapping,
    facts: Option<&RequestFacts>,
    responses: &GatewayResponses,
    media: &str,
    name: &str,
    body: Bytes,
    id: &LogId,
    conversion: Conversion,
) -> Result<Rendered, Box<Response<Body>>> {
    let parsed = std::sync::OnceLock::new();
    let checked = if conversion == Conversion::Encode {
        Ok(())
    } else if mapping.selecting.contains(name) {
        parse_json_body(media, &body, mapping.limits.max_output).map(|json| {
            let _ = parsed.set(json);
        })
    } else {
        check_json_body(media, &body).map_err(BodyJsonError::Syntax)
    };
    if let Err(e) = checked {
        let refused =
            responses.respond_with_message(GatewayResponseKind::BadRequestBody, &e.to_string());
        return Err(Box::new(refused));
    }
    let facts = facts.expect("made when there are templates");
    render_any(mapping, facts, name, body, parsed).map_err(|e| {
        tracing::error!(request_id = %id, template = %name, error = %e, "request mapping template failed");
        Box::new(responses.respond(GatewayResponseKind::Default5xx))
    })
}

/// Replaces a body's framing with `Content-Length: len` (a chunked
/// request's `Transfer-Encoding` goes: the body is whole now).
fn set_length(headers: &mut http::HeaderMap, len: usize) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
}

/// Takes off what described the integration's bytes once they are
/// converted: their length and their coding.
fn converted(headers: &mut http::HeaderMap) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(http::header::CONTENT_ENCODING);
}

/// Reads a request body a template or a conversion needs, within the
/// mapping's limits; a refusal is the gateway response to send.
async fn read_request_body<B>(
    body: B,
    limits: &MappingLimits,
    responses: &GatewayResponses,
) -> Result<Bytes, Response<Body>>
where
    B: http_body::Body<Data = Bytes>,
{
    match read_body(body, limits).await {
        Ok(b) => Ok(b),
        Err(ReadError::Failed) => Err(responses.respond_with_message(
            GatewayResponseKind::BadRequestBody,
            "The request body could not be read",
        )),
        Err(e) => Err(responses.respond(e.kind())),
    }
}

/// The integration response: the rule the backend's status selects, its
/// status and headers, the conversion the binary media types and
/// `content_handling` call for, and its body template.
async fn respond<ResB>(
    mapping: &CompiledMapping,
    binary: Option<&BinaryMediaTypes>,
    asked: Asked,
    facts: Option<&RequestFacts>,
    responses: &GatewayResponses,
    id: &LogId,
    res: Response<ResB>,
) -> Response<Body>
where
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    // The gateway's own answer (an integration that failed or timed out) is
    // not an integration response: API Gateway maps neither its status nor
    // its body, and neither is converted.
    if crate::response::is_gateway_answer(&res) {
        return res.map(Body::new);
    }
    let selection = res
        .extensions()
        .get::<crate::integration::IntegrationSelection>()
        .cloned();
    let rule = mapping.select(res.status(), selection.as_ref().map(|s| s.text.as_str()));
    let conversion = match binary {
        // A HEAD answer has no body to convert.
        _ if asked.head => Conversion::Text,
        None => match rule.and_then(|r| r.handling) {
            Some(ContentHandling::ConvertToBinary) => Conversion::Decode,
            _ => Conversion::Text,
        },
        Some(types) => {
            let is_binary = res
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| types.matches(c));
            response_conversion(is_binary, asked.binary, rule.and_then(|r| r.handling))
        }
    };
    let Some(rule) = rule else {
        if matches!(conversion, Conversion::Text | Conversion::Binary) {
            return res.map(Body::new);
        }
        let (mut parts, body) = res.into_parts();
        return match convert(body, conversion, mapping, id).await {
            Ok(body) => {
                converted(&mut parts.headers);
                Response::from_parts(parts, Body::full(body))
            }
            Err(kind) => responses.respond(kind),
        };
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
    // Bytes are never rendered by a text template.
    let render =
        !rule.templates.is_empty() && matches!(conversion, Conversion::Text | Conversion::Encode);
    if !render {
        if matches!(conversion, Conversion::Text | Conversion::Binary) {
            return Response::from_parts(parts, Body::new(body));
        }
        return match convert(body, conversion, mapping, id).await {
            Ok(body) => {
                converted(&mut parts.headers);
                Response::from_parts(parts, Body::full(body))
            }
            Err(kind) => responses.respond(kind),
        };
    }
    let facts = facts.expect("made when there are responses");
    let (ctype, name) = choose_response_template(&rule.templates, facts.accept.as_deref());
    let body = match convert(body, conversion, mapping, id).await {
        Ok(b) => b,
        Err(kind) => return responses.respond(kind),
    };
    match render_any(mapping, facts, name, body, std::sync::OnceLock::new()) {
        Ok((out, overrides)) => {
            // The template wrote new bytes: the backend's length and
            // coding describe its own.
            converted(&mut parts.headers);
            if let Ok(v) = HeaderValue::from_str(ctype) {
                parts.headers.insert(CONTENT_TYPE, v);
            }
            // A VTL template's `$context.responseOverride`, applied last.
            if let Some(o) = overrides {
                for (name, value) in &o.response_header {
                    if let (Ok(n), Ok(v)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(value),
                    ) {
                        parts.headers.insert(n, v);
                    }
                }
                if let Some(status) = o
                    .response_status
                    .and_then(|s| http::StatusCode::from_u16(s).ok())
                {
                    parts.status = status;
                }
            }
            Response::from_parts(parts, Body::full(out))
        }
        Err(e) => {
            tracing::error!(request_id = %id, template = %name, error = %e, "response mapping template failed");
            responses.respond(GatewayResponseKind::Default5xx)
        }
    }
}

/// Reads an integration response body within the mapping's limits and
/// applies `conversion` (`Text` and `Binary` leave it as read). `Err` is
/// the 500 to answer: `DEFAULT_5XX` when the body is over the limit or
/// fails, `API_CONFIGURATION_ERROR` when it is not base64 to decode; the
/// reason is logged under the request id.
async fn convert<B>(
    body: B,
    conversion: Conversion,
    mapping: &CompiledMapping,
    id: &LogId,
) -> Result<Bytes, GatewayResponseKind>
where
    B: http_body::Body<Data = Bytes>,
{
    let Ok(body) = read_body(body, &mapping.limits).await else {
        tracing::error!(request_id = %id, "integration response body over the mapping limit or unreadable");
        return Err(GatewayResponseKind::Default5xx);
    };
    match conversion {
        Conversion::Encode => Ok(binary::encode(&body)),
        Conversion::Decode => binary::decode(&body).ok_or_else(|| {
            tracing::error!(request_id = %id, "integration response body is not base64, and content_handling: convert_to_binary or a binary Accept asks for its bytes");
            GatewayResponseKind::ApiConfigurationError
        }),
        Conversion::Text | Conversion::Binary => Ok(body),
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
