//! Gateway response templates: API Gateway's non-VTL "simple variable
//! substitution" in a gateway response's body templates and header values
//! ([`api-gateway-gatewayResponse-definition`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-gatewayResponse-definition.html)).
//!
//! A template is text with references: `$context.NAME`, `$stageVariables.NAME`
//! and `$method.request.header|querystring|path.NAME`, each also written
//! `${...}` where text follows it directly. A reference ends at the first
//! character that is not a letter, digit, `_`, `-` or a `.` followed by one of
//! those. An unknown `$context` name is a config error; a `$` that starts no
//! reference is text. Values are inserted as they are, without escaping (as
//! API Gateway does): `$context.error.messageString` is the message as a
//! quoted JSON string, for JSON bodies.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::{HeaderMap, Method, Uri, Version};

use super::GatewayResponseKind;
use crate::context::{RequestContext, RequestId};

/// `$context` names a gateway response can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    RequestId,
    ExtendedRequestId,
    Stage,
    ResourcePath,
    HttpMethod,
    Path,
    Protocol,
    DomainName,
    SourceIp,
    UserAgent,
    RequestTimeEpoch,
    ErrorMessage,
    ErrorMessageString,
    ErrorResponseType,
    ErrorValidationErrorString,
}

/// Every `$context` name, as written.
pub(super) const CONTEXT_NAMES: &[(&str, Ctx)] = &[
    ("requestId", Ctx::RequestId),
    ("extendedRequestId", Ctx::ExtendedRequestId),
    ("stage", Ctx::Stage),
    ("resourcePath", Ctx::ResourcePath),
    ("httpMethod", Ctx::HttpMethod),
    ("path", Ctx::Path),
    ("protocol", Ctx::Protocol),
    ("domainName", Ctx::DomainName),
    ("identity.sourceIp", Ctx::SourceIp),
    ("identity.userAgent", Ctx::UserAgent),
    ("requestTimeEpoch", Ctx::RequestTimeEpoch),
    ("error.message", Ctx::ErrorMessage),
    ("error.messageString", Ctx::ErrorMessageString),
    ("error.responseType", Ctx::ErrorResponseType),
    (
        "error.validationErrorString",
        Ctx::ErrorValidationErrorString,
    ),
];

/// Request headers a gateway response may not read: each carries a
/// credential. (A key header configured under another name is the
/// config's to keep out of its templates.)
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-amz-security-token",
];

/// One reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Var {
    Context(Ctx),
    StageVariable(Box<str>),
    Header(Box<str>),
    Query(Box<str>),
    Path(Box<str>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    Var(Var),
}

/// A compiled template: text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template(Vec<Piece>);

/// A reference's name (`context.stage`, no `$`) resolved; `Ok(None)` for a
/// name in no namespace (kept as text), `Err` for an unknown `$context` name
/// or an empty parameter name.
fn resolve(name: &str) -> Result<Option<Var>, String> {
    if let Some(rest) = name.strip_prefix("context.") {
        return CONTEXT_NAMES
            .iter()
            .find(|(n, _)| *n == rest)
            .map(|(_, c)| Some(Var::Context(*c)))
            .ok_or_else(|| {
                let known: Vec<&str> = CONTEXT_NAMES.iter().map(|(n, _)| *n).collect();
                format!(
                    "`$context.{rest}` is not a variable gateway responses offer ({})",
                    known.join(", ")
                )
            });
    }
    let param = |p: &str, what: &str| {
        if p.is_empty() {
            Err(format!("`{name}` names no {what}"))
        } else {
            Ok(p.into())
        }
    };
    if let Some(v) = name.strip_prefix("stageVariables.") {
        return param(v, "stage variable").map(|v| Some(Var::StageVariable(v)));
    }
    if let Some(h) = name.strip_prefix("method.request.header.") {
        let h = h.to_ascii_lowercase();
        if CREDENTIAL_HEADERS.contains(&h.as_str()) {
            return Err(format!(
                "`{name}` would send the caller's credential back in a response (and one a \
                 trusted proxy added to the caller)"
            ));
        }
        return param(&h, "header").map(|h| Some(Var::Header(h)));
    }
    if let Some(q) = name.strip_prefix("method.request.querystring.") {
        return param(q, "query parameter").map(|q| Some(Var::Query(q)));
    }
    if let Some(p) = name.strip_prefix("method.request.path.") {
        return param(p, "path parameter").map(|p| Some(Var::Path(p)));
    }
    if name.starts_with("method.request.") {
        return Err(format!(
            "`{name}` is not a method request parameter (method.request.header|querystring|path.NAME)"
        ));
    }
    Ok(None)
}

fn name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Template {
    /// Compiles a body template.
    ///
    /// # Errors
    ///
    /// An unknown `$context` name, an empty parameter name or an unclosed
    /// `${`.
    pub(crate) fn body(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let Some(at) = source[i..].find('$').map(|p| i + p) else {
                text.push_str(&source[i..]);
                break;
            };
            text.push_str(&source[i..at]);
            let (name, end) = if bytes.get(at + 1) == Some(&b'{') {
                let Some(close) = source[at + 2..].find('}') else {
                    return Err("`${` without its `}`".to_owned());
                };
                (&source[at + 2..at + 2 + close], at + 3 + close)
            } else {
                let mut j = at + 1;
                loop {
                    while j < bytes.len() && name_char(bytes[j]) {
                        j += 1;
                    }
                    if j + 1 < bytes.len() && bytes[j] == b'.' && name_char(bytes[j + 1]) {
                        j += 1;
                    } else {
                        break;
                    }
                }
                (&source[at + 1..j], j)
            };
            match resolve(name)? {
                Some(var) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text).into()));
                    }
                    pieces.push(Piece::Var(var));
                }
                None => text.push_str(&source[at..end]),
            }
            i = end;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Ok(Self(pieces))
    }

    /// Compiles a header value, in API Gateway's `responseParameters` forms
    /// as well: `'literal'` (the text between the quotes, nothing
    /// substituted), or a whole source written without `$`
    /// (`method.request.header.Origin`, `context.requestId`,
    /// `stageVariables.x`). Anything else is a template as [`Template::body`]
    /// reads it, so a plain value stays as it is.
    pub(crate) fn header(source: &str) -> Result<Self, String> {
        if let Some(lit) = source.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            return Ok(Self(vec![Piece::Text(lit.into())]));
        }
        if !source.contains('$')
            && (source.starts_with("context.")
                || source.starts_with("stageVariables.")
                || source.starts_with("method.request."))
            && source.bytes().all(|b| name_char(b) || b == b'.')
            && let Some(var) = resolve(source)?
        {
            return Ok(Self(vec![Piece::Var(var)]));
        }
        Self::body(source)
    }

    /// The text, when the template has no reference.
    pub(crate) fn as_static(&self) -> Option<&str> {
        match &self.0[..] {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders the template for one request; a reference without a value
    /// renders empty.
    pub(super) fn render(&self, facts: &ResponseFacts, error: &ErrorFacts<'_>) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => facts.write(v, error, &mut out),
            }
        }
        out
    }
}

/// What a gateway response's references read from the request, captured
/// when the request comes in (only when some gateway response has
/// references). Behind a [`Gateway`](crate::Gateway) only.
///
/// `Debug` shows the method and path only: the headers may hold the
/// caller's key or credentials.
#[derive(Clone)]
pub(crate) struct ResponseFacts {
    request_id: Option<RequestId>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    source_ip: Option<IpAddr>,
    /// Milliseconds since the Unix epoch.
    time_ms: u64,
    /// Set once the request is routed.
    context: Option<RequestContext>,
    /// For a request routing refused: an endpoint of the stage its path
    /// names, if that stage exists (for `$context.stage` and stage
    /// variables).
    stage: Option<std::sync::Arc<crate::context::Endpoint>>,
}

impl std::fmt::Debug for ResponseFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFacts")
            .field("method", &self.method)
            .field("path", &self.uri.path())
            .finish_non_exhaustive()
    }
}

/// The gateway response being rendered.
pub(super) struct ErrorFacts<'a> {
    pub(super) kind: GatewayResponseKind,
    pub(super) message: &'a str,
    /// What a request validator found (`$context.error.validationErrorString`).
    pub(super) validation: &'a str,
}

impl ResponseFacts {
    /// The facts of a request as it arrived, `unix_ms` being the gateway
    /// clock's time.
    pub(crate) fn capture<B>(
        req: &http::Request<B>,
        source_ip: Option<IpAddr>,
        unix_ms: u64,
    ) -> Self {
        Self {
            request_id: None,
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            source_ip,
            time_ms: unix_ms,
            context: None,
            stage: None,
        }
    }

    /// Adds what routing found.
    pub(crate) fn routed(&mut self, request_id: RequestId, context: Option<&RequestContext>) {
        self.request_id = Some(request_id);
        self.context = context.cloned();
    }

    /// Adds what routing knew of a request it refused: its id, and an
    /// endpoint of the stage its path names.
    pub(crate) fn refused(
        &mut self,
        request_id: RequestId,
        stage: Option<std::sync::Arc<crate::context::Endpoint>>,
    ) {
        self.request_id = Some(request_id);
        self.stage = stage;
    }

    /// The host the request names (`Host`, else the URI's authority).
    pub(crate) fn host(&self) -> Option<&str> {
        crate::route::service::request_host(&self.headers, &self.uri)
    }

    /// The path of the request as sent.
    pub(crate) fn path(&self) -> &str {
        self.uri.path()
    }

    /// The request's `Accept`.
    pub(super) fn accept(&self) -> Option<&str> {
        self.headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
    }

    fn write(&self, var: &Var, error: &ErrorFacts<'_>, out: &mut String) {
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let endpoint = self.context.as_ref().map(RequestContext::endpoint);
        // The stage is known for a refused request whose path names one;
        // its resource is not.
        let stage = endpoint.or(self.stage.as_ref());
        match var {
            Var::Context(c) => match c {
                Ctx::RequestId | Ctx::ExtendedRequestId => {
                    if let Some(id) = self.request_id {
                        let _ = write!(out, "{id}");
                    }
                }
                Ctx::Stage => out.push_str(stage.map_or("", |e| e.stage())),
                Ctx::ResourcePath => out.push_str(endpoint.map_or("", |e| e.resource())),
                Ctx::HttpMethod => out.push_str(self.method.as_str()),
                Ctx::Path => out.push_str(self.uri.path()),
                Ctx::Protocol => {
                    let _ = write!(out, "{:?}", self.version);
                }
                Ctx::DomainName => out.push_str(&header("host")),
                Ctx::SourceIp => {
                    if let Some(ip) = self.source_ip {
                        let _ = write!(out, "{ip}");
                    }
                }
                Ctx::UserAgent => out.push_str(&header("user-agent")),
                Ctx::RequestTimeEpoch => {
                    let _ = write!(out, "{}", self.time_ms);
                }
                Ctx::ErrorMessage => out.push_str(error.message),
                Ctx::ErrorMessageString => {
                    // Writing a &str as JSON into a String cannot fail.
                    out.push_str(&serde_json::to_string(error.message).unwrap_or_default());
                }
                Ctx::ErrorResponseType => out.push_str(error.kind.as_str()),
                Ctx::ErrorValidationErrorString => out.push_str(error.validation),
            },
            Var::StageVariable(n) => {
                out.push_str(stage.and_then(|e| e.stage_variable(n)).unwrap_or(""));
            }
            Var::Header(n) => out.push_str(&header(n)),
            Var::Query(n) => {
                let first = crate::mapping::first_query_value(self.uri.query(), n);
                out.push_str(first.as_deref().unwrap_or(""));
            }
            Var::Path(n) => out.push_str(
                self.context
                    .as_ref()
                    .and_then(|c| c.path_param(n))
                    .unwrap_or(""),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Template) -> Vec<String> {
        t.0.iter()
            .map(|p| match p {
                Piece::Text(t) => format!("T:{t}"),
                Piece::Var(v) => format!("V:{v:?}"),
            })
            .collect()
    }

    #[test]
    fn references_end_where_names_end() {
        let t = Template::body(r#"{"m": $context.error.messageString, "s": "$context.stage."}"#)
            .unwrap();
        assert_eq!(
            names(&t),
            [
                r#"T:{"m": "#,
                "V:Context(ErrorMessageString)",
                r#"T:, "s": ""#,
                "V:Context(Stage)",
                r#"T:."}"#
            ]
        );
        let t = Template::body("${context.stage}x and $5 and $other.thing").unwrap();
        assert_eq!(
            names(&t),
            ["V:Context(Stage)", "T:x and $5 and $other.thing"]
        );
        let t = Template::body("$method.request.header.X-Trace-Id!").unwrap();
        assert_eq!(names(&t), ["V:Header(\"x-trace-id\")", "T:!"]);
        assert!(Template::body("$context.nope").is_err());
        assert!(Template::body("${context.stage").is_err());
        assert!(
            Template::body("$method.request.path.").is_err(),
            "a parameter without its name"
        );
    }

    #[test]
    fn header_forms() {
        assert_eq!(Template::header("'*'").unwrap().as_static(), Some("*"));
        assert_eq!(
            Template::header("plain").unwrap().as_static(),
            Some("plain")
        );
        assert_eq!(
            names(&Template::header("method.request.header.Origin").unwrap()),
            ["V:Header(\"origin\")"]
        );
        assert_eq!(
            names(&Template::header("context.requestId").unwrap()),
            ["V:Context(RequestId)"]
        );
        assert!(Template::header("context.bogus").is_err());
        assert_eq!(
            names(&Template::header("id=$context.requestId").unwrap()),
            ["T:id=", "V:Context(RequestId)"]
        );
    }
}
