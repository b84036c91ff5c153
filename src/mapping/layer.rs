//! The compiled mapping of a method and the layer that applies it.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use ipnet::IpNet;
use minijinja::Environment;
use regex::Regex;
use tower::{Layer, Service};

use super::bound::{self, Rewritten, Unbounded};
use super::config::{MappingConfig, Passthrough};
use super::params::{ContextValue, ParamOps, context_value, parse_query};
use super::template::{self, Input, Params, TemplateContext};
use crate::auth::authorizer::AuthorizerContext;
use crate::body::{Body, BodyLimits, BoxError, ReadError, read_bounded};
use crate::context::RequestContext;
use crate::response::{GatewayResponseKind, GatewayResponses};

/// Bounds on what one mapped request may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MappingLimits {
    /// The largest body a template reads, request or response (413 beyond
    /// on the request side, a 500 on the response side). Default 10 MiB, API
    /// Gateway's payload limit.
    pub max_body: usize,
    /// The largest output a template may write. Default 10 MiB.
    pub max_output: usize,
    /// minijinja fuel: the instructions one render may run (a template
    /// looping forever stops here). Default 1,000,000.
    pub fuel: u64,
    /// How long a request body a template reads may take to arrive (408
    /// `REQUEST_TIMEOUT` past it), and a response body the time to be read
    /// (a 500). `None`: no limit. Default 10 s (`limits.body_timeout_ms`).
    pub body_timeout: Option<std::time::Duration>,
}

impl Default for MappingLimits {
    fn default() -> Self {
        Self {
            max_body: 10 << 20,
            max_output: 10 << 20,
            fuel: 1_000_000,
            body_timeout: Some(crate::body::DEFAULT_BODY_TIMEOUT),
        }
    }
}

/// A problem in a mapping config: where (relative to the mapping) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingIssue {
    /// The field (`request.templates."application/json"`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for MappingIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem of a mapping config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mapping: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct MappingError(pub Vec<MappingIssue>);

enum HeaderSource {
    Integration(HeaderName),
    Literal(HeaderValue),
}

struct ResponseRule {
    pattern: Option<Regex>,
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, HeaderSource)>,
    /// (content type, template name)
    templates: Vec<(String, String)>,
}

/// A method's mapping, compiled: parameter operations, templates compiled
/// once, integration responses with their patterns.
pub struct Mapping {
    config: MappingConfig,
    params: ParamOps,
    request_templates: Vec<(String, String)>,
    passthrough: Passthrough,
    responses: Vec<ResponseRule>,
    env: Environment<'static>,
    limits: MappingLimits,
    /// The templates that select from the body as JSON: only for these is
    /// the body parsed (once, before rendering).
    selecting: std::collections::HashSet<String>,
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("config", &self.config)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Mapping {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config && self.limits == other.limits
    }
}

/// A media type without parameters, lower-cased.
fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

impl Mapping {
    /// Compiles `config` with the default limits.
    pub fn new(config: &MappingConfig) -> Result<Self, MappingError> {
        Self::with_limits(config, MappingLimits::default())
    }

    /// Compiles `config`: every target, source, pattern and template checked.
    pub fn with_limits(
        config: &MappingConfig,
        limits: MappingLimits,
    ) -> Result<Self, MappingError> {
        let mut issues = Vec::new();
        let mapping = Self::compile(config, limits, &mut |path, message| {
            issues.push(MappingIssue { path, message });
        });
        if issues.is_empty() {
            Ok(mapping)
        } else {
            Err(MappingError(issues))
        }
    }

    pub(crate) fn compile(
        config: &MappingConfig,
        limits: MappingLimits,
        issue: &mut dyn FnMut(String, String),
    ) -> Self {
        let mut env = template::environment(limits.fuel);
        bound::register(&mut env, limits.max_output);
        let req = &config.request;
        let params =
            ParamOps::compile(&req.set, &req.add, &req.remove, &req.rename, &mut |p, m| {
                issue(format!("request.{p}"), m);
            });
        let mut selecting = std::collections::HashSet::new();
        let mut add_template =
            |path: String, source: &str, issue: &mut dyn FnMut(String, String)| {
                let bounded = match bound::rewrite(source) {
                    Ok(Rewritten {
                        source,
                        selects_json,
                    }) => {
                        if selects_json {
                            selecting.insert(path.clone());
                        }
                        source
                    }
                    // minijinja reports the syntax error itself, below.
                    Err(Unbounded::Syntax) => source.to_owned(),
                    Err(Unbounded::Unsupported { line, what }) => {
                        issue(
                            path.clone(),
                            format!(
                                "line {line}: {what} is not supported in mapping templates \
                                 (what it builds cannot be bounded)"
                            ),
                        );
                        return path;
                    }
                };
                if let Err(e) = env.add_template_owned(path.clone(), bounded) {
                    let detail = e.detail().unwrap_or("syntax error");
                    let line = e.line().map_or(String::new(), |l| format!("line {l}: "));
                    issue(path.clone(), format!("{line}{detail}"));
                }
                path
            };
        let mut request_templates = Vec::new();
        for (ctype, source) in &req.templates {
            let path = format!("request.templates.{}", quoted(ctype));
            let name = add_template(path, source, issue);
            request_templates.push((media_type(ctype), name));
        }
        let mut responses = Vec::new();
        for (i, r) in config.responses.iter().enumerate() {
            let base = format!("responses[{i}]");
            let pattern = r.selection_pattern.as_ref().and_then(|p| {
                match Regex::new(&format!("^(?:{p})$")) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        issue(
                            format!("{base}.selection_pattern"),
                            format!("invalid regex: {e}"),
                        );
                        None
                    }
                }
            });
            let status = r.status.and_then(|s| match StatusCode::from_u16(s) {
                Ok(s) if (100..=599).contains(&s.as_u16()) => Some(s),
                _ => {
                    issue(
                        format!("{base}.status"),
                        format!("must be an HTTP status, 100 to 599 (got {s})"),
                    );
                    None
                }
            });
            let mut headers = Vec::new();
            for (name, source) in &r.headers {
                let Ok(hn) = HeaderName::from_bytes(name.as_bytes()) else {
                    issue(
                        format!("{base}.headers.{name}"),
                        format!("`{name}` is not a valid header name"),
                    );
                    continue;
                };
                let src = if let Some(lit) =
                    source.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
                {
                    HeaderValue::from_str(lit).ok().map(HeaderSource::Literal)
                } else {
                    source
                        .strip_prefix("integration.response.header.")
                        .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                        .map(HeaderSource::Integration)
                };
                match src {
                    Some(s) => headers.push((hn, s)),
                    None => issue(
                        format!("{base}.headers.{name}"),
                        format!(
                            "`{source}` is not a source (integration.response.header.NAME or 'literal')"
                        ),
                    ),
                }
            }
            let mut templates = Vec::new();
            for (ctype, source) in &r.templates {
                let path = format!("{base}.templates.{}", quoted(ctype));
                let name = add_template(path, source, issue);
                templates.push((media_type(ctype), name));
            }
            responses.push(ResponseRule {
                pattern,
                status,
                headers,
                templates,
            });
        }
        if config
            .responses
            .iter()
            .filter(|r| r.selection_pattern.is_none())
            .count()
            > 1
        {
            issue(
                "responses".to_owned(),
                "at most one response without `selection_pattern` (the default)".to_owned(),
            );
        }
        Self {
            config: config.clone(),
            params,
            request_templates,
            passthrough: req.passthrough,
            responses,
            env,
            limits,
            selecting,
        }
    }

    /// The config this mapping was compiled from.
    pub fn config(&self) -> &MappingConfig {
        &self.config
    }

    fn needs_request_body(&self) -> bool {
        !self.request_templates.is_empty() || self.passthrough == Passthrough::Never
    }

    /// The integration response for a backend status: the first whose
    /// pattern matches, else the default.
    fn select(&self, status: StatusCode) -> Option<&ResponseRule> {
        let code = status.as_str();
        self.responses
            .iter()
            .find(|r| r.pattern.as_ref().is_some_and(|p| p.is_match(code)))
            .or_else(|| self.responses.iter().find(|r| r.pattern.is_none()))
    }
}

/// Applies mappings; see the [module docs](crate::mapping).
#[derive(Clone)]
#[must_use]
pub struct MappingLayer {
    shared: Arc<Shared>,
}

struct Shared {
    mappings: Mappings,
    responses: GatewayResponses,
    trusted: Arc<[IpNet]>,
}

enum Mappings {
    One(Arc<Mapping>),
    ByEndpoint(Arc<[Option<Arc<Mapping>>]>),
    Off,
}

impl fmt::Debug for MappingLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.shared.mappings {
            Mappings::One(_) => "one",
            Mappings::ByEndpoint(_) => "gateway",
            Mappings::Off => "off",
        };
        f.debug_struct("MappingLayer")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl MappingLayer {
    /// Applies `mapping` to every request.
    pub fn new(mapping: Arc<Mapping>) -> Self {
        Self::build(
            Mappings::One(mapping),
            GatewayResponses::default(),
            Arc::from([]),
        )
    }

    pub(crate) fn for_gateway(
        by_endpoint: Vec<Option<Arc<Mapping>>>,
        responses: GatewayResponses,
        trusted: Arc<[IpNet]>,
    ) -> Self {
        let mappings = if by_endpoint.iter().any(Option::is_some) {
            Mappings::ByEndpoint(by_endpoint.into())
        } else {
            Mappings::Off
        };
        Self::build(mappings, responses, trusted)
    }

    fn build(mappings: Mappings, responses: GatewayResponses, trusted: Arc<[IpNet]>) -> Self {
        Self {
            shared: Arc::new(Shared {
                mappings,
                responses,
                trusted,
            }),
        }
    }

    /// The same layer answering with `responses` (413, 415, 400, 500).
    pub fn responses(self, responses: GatewayResponses) -> Self {
        let mappings = match &self.shared.mappings {
            Mappings::One(m) => Mappings::One(m.clone()),
            Mappings::ByEndpoint(m) => Mappings::ByEndpoint(m.clone()),
            Mappings::Off => Mappings::Off,
        };
        Self::build(mappings, responses, self.shared.trusted.clone())
    }
}

impl<S> Layer<S> for MappingLayer {
    type Service = MappingService<S>;

    fn layer(&self, inner: S) -> MappingService<S> {
        MappingService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The mapping middleware.
#[derive(Clone)]
pub struct MappingService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for MappingService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappingService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`MappingService`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Pass { #[pin] future: F },
        Mapped { future: BoxedFuture<E> },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => future.poll(cx).map(|r| r.map(|r| r.map(Body::new))),
            KindProj::Mapped { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MappingService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let mapping = match &self.shared.mappings {
            Mappings::Off => None,
            Mappings::One(m) => Some(m.clone()),
            Mappings::ByEndpoint(all) => req
                .extensions()
                .get::<RequestContext>()
                .and_then(|c| all.get(c.endpoint().index()))
                .and_then(Option::clone),
        };
        let Some(mapping) = mapping else {
            return ResponseFuture {
                kind: Kind::Pass {
                    future: self.inner.call(req.map(Body::new)),
                },
            };
        };
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture {
            kind: Kind::Mapped {
                future: Box::pin(run(mapping, shared, inner, req)),
            },
        }
    }
}

/// Everything a template needs from the method request.
struct RequestFacts {
    context: TemplateContext,
    stage_variables: BTreeMap<String, String>,
    params: Arc<Params>,
    accept: Option<String>,
}

fn facts<B>(req: &Request<B>, trusted: &[IpNet]) -> RequestFacts {
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

fn is_json(media: &str) -> bool {
    media == "application/json" || media.ends_with("+json")
}

/// The body parsed for a template that selects from it: an empty body is
/// `null` (a GET's template still renders); a JSON content type that does
/// not parse is an error; anything else is JSON only if it parses.
fn parse_json_body(
    media: &str,
    body: &Bytes,
) -> Result<Option<serde_json::Value>, serde_json::Error> {
    if body.is_empty() {
        return Ok(Some(serde_json::Value::Null));
    }
    if !is_json(media) {
        return Ok(serde_json::from_slice(body).ok());
    }
    serde_json::from_slice(body).map(Some)
}

/// Checks that a body whose content type is JSON parses, before a template
/// renders (400 otherwise), without building it: it is parsed for real
/// only when a template selects from it.
fn check_json_body(media: &str, body: &Bytes) -> Result<(), serde_json::Error> {
    if body.is_empty() || !is_json(media) {
        return Ok(());
    }
    serde_json::from_slice::<Skip>(body).map(|_| ())
}

/// Any JSON value, read and dropped as it is read. Unlike serde's
/// `IgnoredAny` it goes through `deserialize_any`, so serde_json's nesting
/// limit (128) applies as it does to a parse.
struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> serde::de::Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

async fn run<S, ReqB, ResB>(
    mapping: Arc<Mapping>,
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
                    parse_json_body(&media, &body).map(|json| {
                        let _ = parsed.set(json);
                    })
                } else {
                    check_json_body(&media, &body)
                };
                match checked {
                    Ok(()) => {}
                    Err(e) => {
                        return Ok(responses.respond_with_message(
                            GatewayResponseKind::BadRequestBody,
                            &format!("Invalid JSON in request body: {e}"),
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
                    mapping.limits.max_output,
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
        mapping.limits.max_output,
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
