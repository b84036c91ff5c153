//! Gateway responses: what tollgate answers when it rejects a request.
//!
//! Every rejection is a JSON body `{"message": "..."}` with
//! `content-type: application/json` and a header `x-tollgate-error-type`
//! naming the [`GatewayResponseKind`], as Amazon API Gateway's gateway
//! responses are. Status, message and extra headers can be overridden per kind
//! (`responses:` in the config), and `DEFAULT_4XX` / `DEFAULT_5XX` overrides
//! apply to every 4xx / 5xx kind that has no override of its own.
//!
//! ```
//! use http::StatusCode;
//! use tollgate::response::{GatewayResponseKind, GatewayResponses};
//!
//! let responses = GatewayResponses::default();
//! let res = responses.respond(GatewayResponseKind::Throttled);
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()["x-tollgate-error-type"], "THROTTLED");
//! ```
//!
//! Bodies for fixed messages are rendered once, when the responses are built;
//! answering a rejection copies a few header values and a reference-counted
//! buffer.
//!
//! # Overrides
//!
//! An override may set the status, the message and extra headers; what it
//! leaves out comes from `DEFAULT_4XX` / `DEFAULT_5XX`, then from the
//! built-in default. Which default applies goes by the kind's *built-in*
//! status class, as API Gateway's fallback does ("Gateway response types"
//! in its developer guide): overriding `INTEGRATION_FAILURE`'s status to 400
//! leaves it under `DEFAULT_5XX`. `content-type` (except by a body
//! template's own type, see [Templates](#templates)) and
//! `x-tollgate-error-type` cannot be overridden: they are what a client
//! and the usage layer rely on. Headers that depend on the request
//! (`Retry-After` and the rate-limit fields on 429, `Allow` on 405) are
//! added by the layer that answers, after these.
//!
//! ```
//! use std::collections::BTreeMap;
//! use tollgate::response::{GatewayResponseKind, GatewayResponses, ResponseOverride};
//!
//! let mut missing = ResponseOverride::default();
//! missing.status = Some(403);
//! missing.message = Some("Missing Authentication Token".to_owned());
//! let mut all_4xx = ResponseOverride::default();
//! all_4xx.headers.insert("access-control-allow-origin".to_owned(), "*".to_owned());
//!
//! let overrides = BTreeMap::from([
//!     (GatewayResponseKind::ResourceNotFound, missing),
//!     (GatewayResponseKind::Default4xx, all_4xx),
//! ]);
//! let responses = GatewayResponses::new(&overrides).expect("valid overrides");
//! let res = responses.respond(GatewayResponseKind::ResourceNotFound);
//! assert_eq!(res.status(), 403);
//! assert_eq!(res.headers()["access-control-allow-origin"], "*");
//! assert_eq!(res.headers()["x-tollgate-error-type"], "RESOURCE_NOT_FOUND");
//! ```
//!
//! # Templates
//!
//! Behind a [`Gateway`](crate::Gateway), an override's header values and
//! body `templates` may read the request, as API Gateway's gateway responses
//! do: simple substitution, not VTL
//! ([`api-gateway-gatewayResponse-definition`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-gatewayResponse-definition.html)).
//!
//! ```yaml
//! responses:
//!   MISSING_AUTHENTICATION_TOKEN:
//!     status: 404
//!     headers:
//!       access-control-allow-origin: "'*'"                 # a literal
//!       x-request-path: method.request.path.petId          # a whole source
//!       x-request: "id=$context.requestId"                 # a reference in text
//!     templates:
//!       application/json: '{"message": $context.error.messageString, "stage": "$context.stage", "a": "$stageVariables.a"}'
//! ```
//!
//! - References: `$context.NAME` for `requestId`, `extendedRequestId`,
//!   `stage`, `resourcePath`, `httpMethod`, `path` (as sent, stage
//!   included), `protocol`, `domainName` (`Host`), `identity.sourceIp`,
//!   `identity.userAgent`, `requestTimeEpoch` (ms), `error.message`,
//!   `error.messageString` (the message as a JSON string, quotes included),
//!   `error.responseType` and `error.validationErrorString` (what a request
//!   validator found, on its 400s; see [`validate`](crate::validate));
//!   `$stageVariables.NAME`;
//!   `$method.request.header.NAME`, `.querystring.NAME` (the first value,
//!   decoded) and `.path.NAME` (decoded). `${...}` delimits one where text
//!   follows. An unknown `$context` name is refused when the config is read;
//!   any other `$` is text. Values are inserted as they are, unescaped, as
//!   API Gateway does; in a JSON body, prefer `$context.error.messageString`.
//! - A reference without a value (a request without that header, a 404
//!   with no stage) renders empty; a header that renders empty, or to an
//!   invalid value, is left out.
//! - The body template is chosen by the request's `Accept` (its media types
//!   in order, exactly), then `application/json`, then the first; it sets
//!   `Content-Type`. A kind without templates of its own takes
//!   `DEFAULT_4XX`'s or `DEFAULT_5XX`'s, as with the message.
//! - A 404 whose path names a known stage has that stage (and its
//!   variables), not a resource path.
//! - An override cannot set `content-type` (a body template's type does),
//!   `content-length`, `transfer-encoding`, `connection` or
//!   `x-tollgate-error-type`, and cannot reference `authorization`,
//!   `proxy-authorization`, `cookie`, `x-api-key` or `x-amz-security-token`:
//!   a trusted proxy in front may have added the credential. (A key header
//!   configured under another name is the config's to keep out.)
//! - Only the gateway's own responses are rendered, never a backend's. The
//!   request is read (method, URI, headers, client address) only when some
//!   kind has templates or references; otherwise nothing is captured.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};

use crate::body::Body;

mod template;

pub(crate) use template::ResponseFacts;
use template::Template;

/// Headers an override may not set: the gateway frames the body and names
/// the kind itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "x-tollgate-error-type",
];

/// Whether `m` (lower-cased, trimmed) is `type/subtype` of token characters.
fn is_media_type(m: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    m.split_once('/').is_some_and(|(t, s)| token(t) && token(s))
}

/// What a request validator found, on its 400 response: the detail
/// `$context.error.validationErrorString` renders in a gateway response
/// template (API Gateway's variable; [`validate`](crate::validate) says
/// what it holds).
#[derive(Debug, Clone)]
pub struct ValidationErrorString(pub Arc<str>);

/// Marks every gateway response: its kind, and, when the kind has
/// templates, its message (for `$context.error.message`). An extension, so
/// that a backend's response is never taken for one (a header could be
/// forged): integration responses skip what carries it, and only it is
/// rendered.
#[derive(Clone)]
pub(crate) struct GatewayAnswer {
    kind: GatewayResponseKind,
    message: Option<Arc<str>>,
}

/// The header that names the kind of a gateway response.
///
/// Set on every gateway response, so a client (or a test) can tell "the
/// gateway refused" from "the backend answered 403". The usage layer reads
/// the kind back from it (access logs' `$context.error.responseType`).
pub const ERROR_TYPE_HEADER: HeaderName = HeaderName::from_static("x-tollgate-error-type");

/// API Gateway's `x-amzn-ErrorType`, sent under `responses_profile: aws`
/// (see [`ResponsesProfile::aws_error_type`]).
pub const AWS_ERROR_TYPE_HEADER: HeaderName = HeaderName::from_static("x-amzn-errortype");

/// Defines [`GatewayResponseKind`] from one table (variant, name, default
/// status, default message), so the name, status and message of a kind
/// cannot drift apart. The declaration order is the index into
/// [`GatewayResponses`]'s rendered table (`kind as usize`).
macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, $status:literal, $message:literal; )*) => {
        /// Why the gateway answered instead of the integration.
        ///
        /// The names are API Gateway's gateway response types.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum GatewayResponseKind {
            $( $(#[$doc])* $variant, )*
        }

        impl GatewayResponseKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [GatewayResponseKind] = &[$(GatewayResponseKind::$variant),*];

            /// The kind's name, as in `x-tollgate-error-type` and the config.
            pub const fn as_str(self) -> &'static str {
                match self { $(GatewayResponseKind::$variant => $name,)* }
            }

            /// The status answered unless the config overrides it.
            pub const fn default_status(self) -> StatusCode {
                match self {
                    $(GatewayResponseKind::$variant => match StatusCode::from_u16($status) {
                        Ok(s) => s,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    },)*
                }
            }

            /// The message answered unless the config overrides it.
            pub const fn default_message(self) -> &'static str {
                match self { $(GatewayResponseKind::$variant => $message,)* }
            }
        }

        impl FromStr for GatewayResponseKind {
            type Err = UnknownKind;
            fn from_str(s: &str) -> Result<Self, UnknownKind> {
                match s {
                    $($name => Ok(GatewayResponseKind::$variant),)*
                    _ => Err(UnknownKind),
                }
            }
        }
    };
}

kinds! {
    /// No route matches the path, or the stage does not exist.
    ResourceNotFound => "RESOURCE_NOT_FOUND", 404, "Not Found";
    /// The path exists but not with this method (answered with `Allow`).
    MethodNotAllowed => "METHOD_NOT_ALLOWED", 405, "Method Not Allowed";
    /// An authorized route was called without credentials.
    MissingAuthenticationToken => "MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token";
    /// The API key is missing, unknown, disabled, expired or not in a plan for this stage.
    InvalidApiKey => "INVALID_API_KEY", 403, "Forbidden";
    /// The SigV4 signature does not match.
    InvalidSignature => "INVALID_SIGNATURE", 403, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";
    /// The SigV4 signature is outside the allowed clock skew or past its expiry.
    ExpiredToken => "EXPIRED_TOKEN", 403, "Signature expired";
    /// The SigV4 access key id or session token is unknown.
    UnrecognizedClient => "UNRECOGNIZED_CLIENT", 403, "The security token included in the request is invalid.";
    /// The authorizer could not identify the caller.
    Unauthorized => "UNAUTHORIZED", 401, "Unauthorized";
    /// The caller is known but not allowed to call this resource.
    AccessDenied => "ACCESS_DENIED", 403, "User is not authorized to access this resource";
    /// The method's resource `policy` refuses the client's address (the
    /// message names the method, and ends " with an explicit deny" for a
    /// `deny` entry; see [`ResourcePolicy`](crate::edge::ResourcePolicy)).
    ResourcePolicyDenied => "RESOURCE_POLICY_DENIED", 403, "User: anonymous is not authorized to perform: execute-api:Invoke on resource";
    /// A throttle limit rejected the request.
    Throttled => "THROTTLED", 429, "Too Many Requests";
    /// The API key's usage plan quota is used up for this period.
    QuotaExceeded => "QUOTA_EXCEEDED", 429, "Limit Exceeded";
    /// A request parameter cannot be read (for example a path parameter that
    /// does not decode to UTF-8).
    BadRequestParameters => "BAD_REQUEST_PARAMETERS", 400, "Invalid request parameters";
    /// The request body cannot be read as the route requires.
    BadRequestBody => "BAD_REQUEST_BODY", 400, "Invalid request body";
    /// The request body is over the configured limit.
    RequestTooLarge => "REQUEST_TOO_LARGE", 413, "Request Too Long";
    /// The request body did not arrive within the body timeout (tollgate's;
    /// API Gateway's front door cuts such a client off without a kind of its own).
    RequestTimeout => "REQUEST_TIMEOUT", 408, "Request Timeout";
    /// No mapping template handles the request's content type.
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type";
    /// The integration failed.
    IntegrationFailure => "INTEGRATION_FAILURE", 502, "Bad Gateway";
    /// The integration did not answer in time.
    IntegrationTimeout => "INTEGRATION_TIMEOUT", 504, "Endpoint request timed out";
    /// A store the request depends on is unreachable and the layer fails closed.
    BackendUnavailable => "BACKEND_UNAVAILABLE", 503, "Service Unavailable";
    /// The request names no API: its host is a custom domain none of whose
    /// base paths takes its path, or it uses the execute-api form of an API
    /// that disables it (`disable_execute_api_endpoint`). API Gateway's
    /// answer, which has no response type there (it comes before any API).
    UnmappedRequest => "UNMAPPED_REQUEST", 403, "Forbidden";
    /// The API's configuration cannot serve the request: a body that
    /// `content_handling` (or a binary `Accept`) must base64-decode is not
    /// base64 (API Gateway's `API_CONFIGURATION_ERROR`).
    ApiConfigurationError => "API_CONFIGURATION_ERROR", 500, "Internal server error";
    /// A custom authorizer failed (an error, or out of reach) and the layer
    /// fails closed. Under `responses_profile: http` (the default) this is
    /// answered as `BACKEND_UNAVAILABLE` 503; under `aws` as API Gateway does,
    /// 500 `{"message":null}`.
    AuthorizerConfigurationError => "AUTHORIZER_CONFIGURATION_ERROR", 500, "Internal server error";
    /// Overrides for every 4xx kind without an override of its own (config only).
    Default4xx => "DEFAULT_4XX", 400, "Bad Request";
    /// Overrides for every 5xx kind without an override of its own (config only).
    Default5xx => "DEFAULT_5XX", 500, "Internal server error";
}

impl fmt::Display for GatewayResponseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an unknown gateway response kind name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown gateway response kind")]
pub struct UnknownKind;

/// An override of one gateway response kind, as written in the config:
///
/// ```yaml
/// responses:
///   THROTTLED:
///     status: 503
///     message: Slow down
///     headers: { x-retry-policy: backoff }
/// ```
///
/// Every field is optional; what is left out falls back to `DEFAULT_4XX` or
/// `DEFAULT_5XX`, then to the kind's built-in default.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct ResponseOverride {
    /// The status code to answer with (100 to 599).
    pub status: Option<u16>,
    /// The message in the JSON body.
    pub message: Option<String>,
    /// Extra headers to add to the response (a kind's own replace the
    /// `DEFAULT_4XX`/`DEFAULT_5XX` ones of the same name). A value may be
    /// `'literal'`, a whole source as API Gateway's `responseParameters`
    /// write it (`method.request.header.Origin`, `context.requestId`,
    /// `stageVariables.NAME`), or text with `$` references (see
    /// [templates](self#templates)); plain text is itself.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body templates by content type (API Gateway's `responseTemplates`),
    /// with `$` references; chosen by the request's `Accept`, then
    /// `application/json`, then the first. They replace the `{"message":
    /// ...}` body and set `Content-Type`. A kind without its own takes
    /// `DEFAULT_4XX`'s or `DEFAULT_5XX`'s.
    #[serde(default)]
    pub templates: BTreeMap<String, String>,
}

impl ResponseOverride {
    /// The body templates as API Gateway's `responseTemplates` say them:
    /// the override's own, or, when it has none but a message, the JSON
    /// body that message answers with (`application/json`).
    pub(crate) fn aws_templates(&self) -> BTreeMap<String, String> {
        let mut templates = self.templates.clone();
        if let Some(m) = &self.message
            && templates.is_empty()
        {
            templates.insert(
                "application/json".into(),
                serde_json::to_string(&serde_json::json!({ "message": m })).unwrap_or_default(),
            );
        }
        templates
    }
}

/// A gateway response's `statusCode` as API Gateway's documents write it
/// (a string, or a number): `None` unless a status from 100 to 599.
pub(crate) fn aws_status(v: &serde_json::Value) -> Option<u16> {
    v.as_str()
        .and_then(|s| s.parse::<u16>().ok())
        .or_else(|| v.as_u64().and_then(|n| u16::try_from(n).ok()))
        .filter(|n| (100..=599).contains(n))
}

/// One `responseParameters` entry of a gateway response: the header name
/// of a `gatewayresponse.header.NAME` key with a string source, else
/// `None`.
pub(crate) fn aws_header_parameter<'a>(
    key: &'a str,
    value: &'a serde_json::Value,
) -> Option<(&'a str, &'a str)> {
    let name = key.strip_prefix("gatewayresponse.header.")?;
    HeaderName::from_bytes(name.as_bytes()).ok()?;
    Some((name, value.as_str()?))
}

/// The rendered gateway responses of one gateway: status, body and headers
/// for each kind, overrides applied. Cheap to clone.
///
/// Every layer of a gateway holds a clone of the same table; a layer used
/// alone has [`GatewayResponses::default`], the built-in answers.
#[derive(Clone)]
pub struct GatewayResponses {
    /// One entry per kind, indexed by `kind as usize` (declaration order).
    inner: Arc<[Rendered]>,
    /// Whose defaults these are.
    profile: ResponsesProfile,
    /// By kind, as `inner`: what is rendered per request; `None` when no
    /// kind has a reference or a body template.
    templated: Option<Arc<[Option<Templated>]>>,
}

/// What one kind renders per request.
struct Templated {
    /// Header values with references, after the static ones.
    headers: Vec<(HeaderName, Template)>,
    /// (content type, template); empty: the `{"message": ...}` body.
    bodies: Vec<(String, Template)>,
}

/// Whose defaults the gateway responses follow (`responses_profile` in the
/// config). Overrides under `responses:` apply on top of either.
///
/// - `http` (the default): plain HTTP semantics where they and API Gateway
///   differ: an unknown path is 404 `RESOURCE_NOT_FOUND`, a known path with
///   another method 405 `METHOD_NOT_ALLOWED` with `Allow`, a failed
///   integration 502.
/// - `aws`: API Gateway's answers, for clients that expect its bytes
///   ([`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)):
///   an unknown path or method is 403 `MISSING_AUTHENTICATION_TOKEN`
///   `{"message":"Missing Authentication Token"}` without `Allow` (override
///   that kind to change it); `INTEGRATION_FAILURE` is 504 `{"message":
///   "Internal server error"}`. Kinds API
///   Gateway has no counterpart for (`REQUEST_TIMEOUT`,
///   `BACKEND_UNAVAILABLE`, `RESOURCE_POLICY_DENIED`) keep tollgate's. A
///   failed authorizer is 500 `AUTHORIZER_CONFIGURATION_ERROR`
///   `{"message":null}` (under `http`, 503 `BACKEND_UNAVAILABLE`). Each
///   refusal API Gateway names carries its `x-amzn-ErrorType`
///   ([`ResponsesProfile::aws_error_type`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ResponsesProfile {
    /// HTTP's answers where they differ from API Gateway's.
    #[default]
    Http,
    /// API Gateway's answers.
    Aws,
}

impl ResponsesProfile {
    /// The status `kind` answers before any override.
    pub const fn default_status(self, kind: GatewayResponseKind) -> StatusCode {
        match (self, kind) {
            (Self::Aws, GatewayResponseKind::IntegrationFailure) => StatusCode::GATEWAY_TIMEOUT,
            _ => kind.default_status(),
        }
    }

    /// The message `kind` answers before any override: under `aws`,
    /// `INTEGRATION_FAILURE` says API Gateway's 5xx default, "Internal
    /// server error" (its 502 "Bad Gateway" would contradict the 504).
    pub const fn default_message(self, kind: GatewayResponseKind) -> &'static str {
        match (self, kind) {
            (Self::Aws, GatewayResponseKind::IntegrationFailure) => "Internal server error",
            _ => kind.default_message(),
        }
    }

    /// The kind a request gets for what `kind` names: under `aws`, an
    /// unknown path or method is `MISSING_AUTHENTICATION_TOKEN`; under
    /// `http`, a failed authorizer is `BACKEND_UNAVAILABLE`.
    pub const fn answer(self, kind: GatewayResponseKind) -> GatewayResponseKind {
        match (self, kind) {
            (
                Self::Aws,
                GatewayResponseKind::ResourceNotFound | GatewayResponseKind::MethodNotAllowed,
            ) => GatewayResponseKind::MissingAuthenticationToken,
            (Self::Http, GatewayResponseKind::AuthorizerConfigurationError) => {
                GatewayResponseKind::BackendUnavailable
            }
            _ => kind,
        }
    }

    /// API Gateway's `x-amzn-ErrorType` for `kind`, sent under `aws`: the
    /// exception names its clients (and the AWS SDKs) read. `None` for a
    /// kind without one.
    pub const fn aws_error_type(self, kind: GatewayResponseKind) -> Option<&'static str> {
        use GatewayResponseKind as K;
        if !matches!(self, Self::Aws) {
            return None;
        }
        Some(match kind {
            K::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            K::InvalidApiKey | K::UnmappedRequest => "ForbiddenException",
            K::InvalidSignature | K::ExpiredToken => "InvalidSignatureException",
            K::UnrecognizedClient => "UnrecognizedClientException",
            K::Unauthorized => "UnauthorizedException",
            K::AccessDenied | K::ResourcePolicyDenied => "AccessDeniedException",
            K::Throttled => "TooManyRequestsException",
            K::QuotaExceeded => "LimitExceededException",
            K::BadRequestParameters | K::BadRequestBody => "BadRequestException",
            K::AuthorizerConfigurationError => "AuthorizerConfigurationException",
            _ => return None,
        })
    }
}

/// One kind's response, ready to send: answering clones the header map and
/// the body's reference-counted buffer.
struct Rendered {
    status: StatusCode,
    /// The message, for `$context.error.message`.
    message: Arc<str>,
    /// Whether the config overrides the message (a request-specific message
    /// is then not used).
    overridden_message: bool,
    /// `{"message":"..."}`, JSON-escaped.
    body: Bytes,
    /// Override headers, then `content-type` and `x-tollgate-error-type`.
    headers: HeaderMap,
}

/// An override that cannot be applied; the config validator reports these
/// with their path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// The status is not a valid HTTP status code.
    #[error("status must be between 100 and 599")]
    Status,
    /// A header name is not a valid HTTP header name.
    #[error("`{0}` is not a valid header name")]
    HeaderName(String),
    /// A header value is not a valid HTTP header value.
    #[error("the value of `{0}` is not a valid header value")]
    HeaderValue(String),
    /// The header is the gateway's to set: `content-type` (a body
    /// template's type sets it), `content-length`, `transfer-encoding`,
    /// `connection`, `x-tollgate-error-type`.
    #[error(
        "`{0}` is set by the gateway, not by an override (a body template's content type sets `content-type`)"
    )]
    ReservedHeader(String),
    /// A header value's or a body template's reference is wrong.
    #[error("{message}")]
    Template {
        /// `headers.NAME` or `templates."TYPE"`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl Default for GatewayResponses {
    fn default() -> Self {
        match Self::new(&BTreeMap::new()) {
            Ok(r) => r,
            // No overrides cannot fail; keep the fallback total anyway.
            Err(_) => Self {
                inner: Arc::from(Vec::new()),
                profile: ResponsesProfile::Http,
                templated: None,
            },
        }
    }
}

impl fmt::Debug for GatewayResponses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (kind, r) in GatewayResponseKind::ALL.iter().zip(self.inner.iter()) {
            m.entry(&kind.as_str(), &r.status.as_u16());
        }
        m.finish()
    }
}

impl GatewayResponses {
    /// Renders every kind with the given overrides applied.
    ///
    /// Every bad override is reported, not just the first, each with its
    /// kind; then nothing is rendered. A status must be 100 to 599; header
    /// names and values must be valid HTTP.
    pub fn new(
        overrides: &BTreeMap<GatewayResponseKind, ResponseOverride>,
    ) -> Result<Self, Vec<(GatewayResponseKind, OverrideError)>> {
        Self::with_profile(overrides, ResponsesProfile::Http)
    }

    /// The same on `profile`'s defaults.
    pub fn with_profile(
        overrides: &BTreeMap<GatewayResponseKind, ResponseOverride>,
        profile: ResponsesProfile,
    ) -> Result<Self, Vec<(GatewayResponseKind, OverrideError)>> {
        let mut errors = Vec::new();
        let mut rendered = Vec::with_capacity(GatewayResponseKind::ALL.len());
        let mut templated = Vec::with_capacity(GatewayResponseKind::ALL.len());
        for &kind in GatewayResponseKind::ALL {
            let status = profile.default_status(kind);
            let fallback = if kind == GatewayResponseKind::Default4xx
                || kind == GatewayResponseKind::Default5xx
            {
                None
            } else if status.is_client_error() {
                overrides.get(&GatewayResponseKind::Default4xx)
            } else if status.is_server_error() {
                overrides.get(&GatewayResponseKind::Default5xx)
            } else {
                None
            };
            let own = overrides.get(&kind);
            let status_override = own
                .and_then(|o| o.status)
                .or_else(|| fallback.and_then(|o| o.status));
            let status = match status_override.as_ref() {
                Some(&code) => match StatusCode::from_u16(code) {
                    Ok(s) if (100..600).contains(&code) => s,
                    _ => {
                        errors.push((kind, OverrideError::Status));
                        status
                    }
                },
                None => status,
            };
            let message = own
                .and_then(|o| o.message.as_ref())
                .or_else(|| fallback.and_then(|o| o.message.as_ref()));
            // Own headers replace the fallback's of the same name. A problem
            // is reported once, under the kind whose override holds it
            // (a `DEFAULT_4XX` header under `DEFAULT_4XX`, not under every
            // 4xx kind that inherits it).
            let mut merged: BTreeMap<String, (&String, &String, bool)> = BTreeMap::new();
            for (o, is_own) in fallback
                .map(|o| (o, false))
                .into_iter()
                .chain(own.map(|o| (o, true)))
            {
                for (name, value) in &o.headers {
                    merged.insert(name.to_ascii_lowercase(), (name, value, is_own));
                }
            }
            let mut headers = HeaderMap::new();
            let mut dynamic = Vec::new();
            for (name, value, is_own) in merged.into_values() {
                let mut report = |e: OverrideError| {
                    if is_own {
                        errors.push((kind, e));
                    }
                };
                let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
                    report(OverrideError::HeaderName(name.clone()));
                    continue;
                };
                if RESERVED_HEADERS.contains(&n.as_str()) {
                    report(OverrideError::ReservedHeader(name.clone()));
                    continue;
                }
                let template = match Template::header(value) {
                    Ok(t) => t,
                    Err(message) => {
                        report(OverrideError::Template {
                            field: format!("headers.{name}"),
                            message,
                        });
                        continue;
                    }
                };
                match template.as_static() {
                    Some(text) => match HeaderValue::from_str(text) {
                        Ok(v) => {
                            headers.insert(n, v);
                        }
                        Err(_) => report(OverrideError::HeaderValue(name.clone())),
                    },
                    None => dynamic.push((n, template)),
                }
            }
            let (sources, own_templates) = match own.filter(|o| !o.templates.is_empty()) {
                Some(o) => (Some(&o.templates), true),
                None => (fallback.map(|o| &o.templates), false),
            };
            let mut bodies: Vec<(String, Template)> = Vec::new();
            for (ctype, source) in sources.into_iter().flatten() {
                let field = format!("templates.\"{ctype}\"");
                let mut report = |message: String| {
                    if own_templates {
                        errors.push((
                            kind,
                            OverrideError::Template {
                                field: field.clone(),
                                message,
                            },
                        ));
                    }
                };
                let media = ctype.trim().to_ascii_lowercase();
                if !is_media_type(&media) {
                    report(format!(
                        "`{ctype}` is not a media type (type/subtype, as `application/json`)"
                    ));
                    continue;
                }
                if bodies.iter().any(|(m, _)| *m == media) {
                    report(format!(
                        "`{ctype}` is given twice (media types are case-insensitive)"
                    ));
                    continue;
                }
                match Template::body(source) {
                    Ok(t) => bodies.push((media, t)),
                    Err(message) => report(message),
                }
            }
            templated.push(
                (!dynamic.is_empty() || !bodies.is_empty()).then_some(Templated {
                    headers: dynamic,
                    bodies,
                }),
            );
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert(ERROR_TYPE_HEADER, HeaderValue::from_static(kind.as_str()));
            if let Some(t) = profile.aws_error_type(kind)
                && !headers.contains_key(AWS_ERROR_TYPE_HEADER)
            {
                headers.insert(AWS_ERROR_TYPE_HEADER, HeaderValue::from_static(t));
            }
            let text = message.map_or(profile.default_message(kind), String::as_str);
            // API Gateway's failed authorizer says `{"message":null}`.
            let body = if message.is_none()
                && profile == ResponsesProfile::Aws
                && kind == GatewayResponseKind::AuthorizerConfigurationError
            {
                Bytes::from_static(b"{\"message\":null}")
            } else {
                json_message(text)
            };
            rendered.push(Rendered {
                status,
                message: Arc::from(text),
                overridden_message: message.is_some(),
                body,
                headers,
            });
        }
        if errors.is_empty() {
            let templated = templated
                .iter()
                .any(Option::is_some)
                .then(|| Arc::from(templated));
            Ok(Self {
                inner: Arc::from(rendered),
                profile,
                templated,
            })
        } else {
            Err(errors)
        }
    }

    /// `None` only for the empty fallback table that `Default` keeps for
    /// totality; callers then answer with the built-in default.
    fn rendered(&self, kind: GatewayResponseKind) -> Option<&Rendered> {
        self.inner.get(kind as usize)
    }

    /// Whose defaults these are.
    pub fn profile(&self) -> ResponsesProfile {
        self.profile
    }

    /// The status this gateway answers for `kind` (what the profile
    /// answers it with: under `aws`, `RESOURCE_NOT_FOUND` is 403).
    pub fn status(&self, kind: GatewayResponseKind) -> StatusCode {
        let kind = self.profile.answer(kind);
        self.rendered(kind)
            .map_or_else(|| self.profile.default_status(kind), |r| r.status)
    }

    /// The response for `kind` with its configured (or default) message;
    /// the profile may answer another kind for it
    /// ([`ResponsesProfile::answer`]).
    pub fn respond(&self, kind: GatewayResponseKind) -> Response<Body> {
        let kind = self.profile.answer(kind);
        let res = match self.rendered(kind) {
            Some(r) => build(r.status, r.headers.clone(), r.body.clone()),
            None => fallback(kind, kind.default_message()),
        };
        let message = self
            .rendered(kind)
            .filter(|_| self.is_templated(kind))
            .map(|r| r.message.clone());
        mark(res, kind, message)
    }

    /// The response for `kind` with a message that depends on the request
    /// (an expired signature's times, what is wrong with a body). A message
    /// overridden in the config takes precedence.
    pub fn respond_with_message(&self, kind: GatewayResponseKind, message: &str) -> Response<Body> {
        let kind = self.profile.answer(kind);
        let res = match self.rendered(kind) {
            Some(r) if r.overridden_message => build(r.status, r.headers.clone(), r.body.clone()),
            Some(r) => build(r.status, r.headers.clone(), json_message(message)),
            None => fallback(kind, message),
        };
        let text = self
            .rendered(kind)
            .filter(|_| self.is_templated(kind))
            .map(|r| {
                if r.overridden_message {
                    r.message.clone()
                } else {
                    Arc::from(message)
                }
            });
        mark(res, kind, text)
    }

    /// Whether `kind` is rendered per request.
    fn is_templated(&self, kind: GatewayResponseKind) -> bool {
        self.templated
            .as_ref()
            .is_some_and(|t| t.get(kind as usize).is_some_and(Option::is_some))
    }

    /// Whether any kind has a reference or a body template: a gateway then
    /// captures [`ResponseFacts`] for each request.
    pub(crate) fn has_templates(&self) -> bool {
        self.templated.is_some()
    }

    /// Renders the templates of the gateway response `res` (one this table
    /// answered, marked so) for the request `facts` describe: the body
    /// template the `Accept` picks, with its `Content-Type`, and the
    /// headers with references. Anything else is left as it is; a header
    /// that renders empty, or to anything but visible ASCII and spaces, is
    /// left out.
    pub(crate) fn render_templates(&self, res: &mut Response<Body>, facts: &ResponseFacts) {
        let Some(all) = &self.templated else { return };
        let Some(GatewayAnswer {
            kind,
            message: Some(message),
        }) = res.extensions().get::<GatewayAnswer>().cloned()
        else {
            return;
        };
        let Some(Some(t)) = all.get(kind as usize) else {
            return;
        };
        let validation = res
            .extensions()
            .get::<ValidationErrorString>()
            .map(|v| v.0.clone());
        let error = template::ErrorFacts {
            kind,
            message: &message,
            validation: validation.as_deref().unwrap_or(""),
        };
        for (name, template) in &t.headers {
            let value = template.render(facts, &error);
            // Visible ASCII only: a decoded query value may hold anything.
            if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                continue;
            }
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(name.clone(), v);
            }
        }
        if t.bodies.is_empty() {
            return;
        }
        let accept = facts.accept();
        let by = |m: &str| t.bodies.iter().find(|(c, _)| c == m);
        let chosen = accept
            .into_iter()
            .flat_map(|a| a.split(','))
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .find_map(|m| by(&m))
            .or_else(|| by("application/json"))
            .or_else(|| t.bodies.first());
        if let Some((ctype, template)) = chosen {
            let body = template.render(facts, &error);
            if let Ok(v) = HeaderValue::from_str(ctype) {
                res.headers_mut().insert(CONTENT_TYPE, v);
            }
            res.headers_mut().remove(http::header::CONTENT_LENGTH);
            *res.body_mut() = Body::full(Bytes::from(body));
        }
    }
}

/// Marks `res` as the gateway's answer ([`GatewayAnswer`]) and says at
/// debug level which one a request got. (Usage events read the kind back
/// from the `x-tollgate-error-type` header.)
fn mark(
    mut res: Response<Body>,
    kind: GatewayResponseKind,
    message: Option<Arc<str>>,
) -> Response<Body> {
    tracing::debug!(
        kind = kind.as_str(),
        status = res.status().as_u16(),
        "gateway response"
    );
    res.extensions_mut().insert(GatewayAnswer { kind, message });
    res
}

/// Whether `res` is a gateway response (marked by [`GatewayResponses`]),
/// not a backend's.
pub(crate) fn is_gateway_answer<B>(res: &Response<B>) -> bool {
    res.extensions().get::<GatewayAnswer>().is_some()
}

/// A response with a full body, its length known up front.
fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// The built-in response of `kind`, rendered on the spot (only reached
/// with a table that failed to render).
fn fallback(kind: GatewayResponseKind, message: &str) -> Response<Body> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ERROR_TYPE_HEADER, HeaderValue::from_static(kind.as_str()));
    build(kind.default_status(), headers, json_message(message))
}

/// `{"message":"..."}` with the message JSON-escaped (quotes, control
/// characters), whatever it holds.
fn json_message(message: &str) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 16);
    out.extend_from_slice(b"{\"message\":");
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, message);
    out.push(b'}');
    Bytes::from(out)
}

impl GatewayResponses {
    /// Renders the `responses` section, reporting unknown kinds and invalid
    /// overrides with their paths (and rendering the defaults if any is bad).
    /// The paths are `responses.KIND.status` and `responses.KIND.headers.NAME`;
    /// a header value is never quoted in a message.
    pub(crate) fn from_config(
        config: &BTreeMap<String, ResponseOverride>,
        profile: ResponsesProfile,
        issues: &mut crate::config::Issues,
    ) -> Self {
        let root = crate::config::PathBuf::root().field("responses");
        let mut overrides = BTreeMap::new();
        for (name, o) in config {
            match name.parse::<GatewayResponseKind>() {
                Ok(kind)
                    if profile.answer(kind) != kind
                        && kind == GatewayResponseKind::AuthorizerConfigurationError =>
                {
                    issues.push(
                        &root.field(name),
                        "under responses_profile http a failed authorizer is answered as \
                         BACKEND_UNAVAILABLE: override that, or use responses_profile aws",
                    );
                }
                Ok(kind) => {
                    overrides.insert(kind, o.clone());
                }
                Err(_) => issues.push(
                    &root.field(name),
                    "unknown gateway response kind (RESOURCE_NOT_FOUND, THROTTLED, DEFAULT_4XX, ...)",
                ),
            }
        }
        match Self::with_profile(&overrides, profile) {
            Ok(r) => r,
            Err(errors) => {
                for (kind, e) in errors {
                    let path = root.field(kind.as_str());
                    let path = match &e {
                        OverrideError::Template { field, .. } => path.join(field),
                        OverrideError::Status => path.field("status"),
                        OverrideError::HeaderName(n)
                        | OverrideError::HeaderValue(n)
                        | OverrideError::ReservedHeader(n) => path.field("headers").field(n),
                    };
                    issues.push(&path, e.to_string());
                }
                Self::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(status: Option<u16>, message: Option<&str>) -> ResponseOverride {
        ResponseOverride {
            status,
            message: message.map(str::to_owned),
            headers: BTreeMap::new(),
            templates: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults_follow_the_design_table() {
        let r = GatewayResponses::default();
        for &(kind, status, message) in &[
            (GatewayResponseKind::ResourceNotFound, 404, "Not Found"),
            (
                GatewayResponseKind::MethodNotAllowed,
                405,
                "Method Not Allowed",
            ),
            (GatewayResponseKind::InvalidApiKey, 403, "Forbidden"),
            (GatewayResponseKind::Throttled, 429, "Too Many Requests"),
            (GatewayResponseKind::QuotaExceeded, 429, "Limit Exceeded"),
            (GatewayResponseKind::Unauthorized, 401, "Unauthorized"),
            (
                GatewayResponseKind::RequestTooLarge,
                413,
                "Request Too Long",
            ),
            (
                GatewayResponseKind::IntegrationTimeout,
                504,
                "Endpoint request timed out",
            ),
            (
                GatewayResponseKind::BackendUnavailable,
                503,
                "Service Unavailable",
            ),
        ] {
            assert_eq!(r.status(kind).as_u16(), status, "{kind}");
            assert_eq!(kind.default_message(), message);
            assert_eq!(kind.as_str().parse::<GatewayResponseKind>(), Ok(kind));
        }
    }

    #[test]
    fn kind_override_beats_default_4xx_and_messages_are_json_escaped() {
        let mut o = BTreeMap::new();
        o.insert(GatewayResponseKind::Default4xx, ov(Some(418), None));
        o.insert(
            GatewayResponseKind::ResourceNotFound,
            ov(Some(403), Some("Missing \"Authentication\" Token")),
        );
        let r = GatewayResponses::new(&o).unwrap();
        assert_eq!(
            r.status(GatewayResponseKind::ResourceNotFound).as_u16(),
            403
        );
        assert_eq!(r.status(GatewayResponseKind::Throttled).as_u16(), 418);
        assert_eq!(
            r.status(GatewayResponseKind::IntegrationFailure).as_u16(),
            502
        );
        let res = r.respond(GatewayResponseKind::ResourceNotFound);
        let body = r.rendered(GatewayResponseKind::ResourceNotFound).unwrap();
        assert_eq!(
            &body.body[..],
            br#"{"message":"Missing \"Authentication\" Token"}"#
        );
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn dynamic_message_unless_overridden() {
        let r = GatewayResponses::default();
        let res = r.respond_with_message(GatewayResponseKind::BadRequestBody, "bad \u{1} json");
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let mut o = BTreeMap::new();
        o.insert(GatewayResponseKind::BadRequestBody, ov(None, Some("nope")));
        let r = GatewayResponses::new(&o).unwrap();
        let rendered = r.rendered(GatewayResponseKind::BadRequestBody).unwrap();
        assert!(rendered.overridden_message);
        assert_eq!(&rendered.body[..], br#"{"message":"nope"}"#);
    }

    #[test]
    fn bad_overrides_are_reported_per_kind() {
        let mut o = BTreeMap::new();
        let mut bad = ov(Some(99), None);
        bad.headers.insert("bad name".into(), "v".into());
        o.insert(GatewayResponseKind::Throttled, bad);
        let errs = GatewayResponses::new(&o).unwrap_err();
        assert!(errs.contains(&(GatewayResponseKind::Throttled, OverrideError::Status)));
        assert!(errs.contains(&(
            GatewayResponseKind::Throttled,
            OverrideError::HeaderName("bad name".into())
        )));
    }
}
