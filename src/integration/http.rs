//! The HTTP integration: a reverse proxy to an upstream URL.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use tower::Service;

use crate::body::{Body, BoxError};
use crate::context::RequestContext;
use crate::mapping::IntegrationPath;
use crate::response::{GatewayResponseKind, GatewayResponses};
use crate::throttle::ClientAddr;

use super::tls::{HttpClient, TlsConfig, TlsError, chain, client};

/// API Gateway's default integration timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(29);

/// Why an integration URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlTemplateError(String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    StageVariable(String),
    Param(String),
}

/// An upstream URL with `{NAME}` (a path parameter: the mapped one first,
/// then the method request's), `{stageVariables.NAME}` and, for a base URL,
/// the request path appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    parts: Vec<Part>,
    append_path: bool,
}

/// Characters escaped in a path parameter put into a URL (`/` too, except
/// in a greedy parameter).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/');
const GREEDY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Appends one path segment to `url`: percent-encoded with `set`, or as it
/// is (`None`: already encoded, as the client sent it). A `.` or `..`
/// segment would climb out of the template's path on the upstream: it is
/// sent escaped.
fn push_segment(url: &mut String, segment: &str, set: Option<&'static AsciiSet>) {
    match (segment, set) {
        (".", _) => url.push_str("%2E"),
        ("..", _) => url.push_str("%2E%2E"),
        (s, Some(set)) => url.extend(utf8_percent_encode(s, set)),
        (s, None) => url.push_str(s),
    }
}

/// `url` as errors quote it: a user-info part (`user:password@`) before the
/// host is replaced by `****@`, so a config error never echoes a password.
pub(crate) fn shown(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://****@{}", &rest[at + 1..]).into(),
        None => url.into(),
    }
}

impl UrlTemplate {
    /// The template of a config's `url` (the whole URL) or `base` (the
    /// request path is appended): exactly one of them must be given.
    pub(crate) fn from_config(
        url: Option<&str>,
        base: Option<&str>,
    ) -> Result<Self, UrlTemplateError> {
        match (url, base) {
            (Some(u), None) => UrlTemplate::parse(u, false),
            (None, Some(b)) => UrlTemplate::parse(b, true),
            _ => Err(UrlTemplateError(
                "give exactly one of `url` and `base`".to_owned(),
            )),
        }
    }

    fn parse(url: &str, append_path: bool) -> Result<Self, UrlTemplateError> {
        // What errors quote: the URL without a password it may carry.
        let shown = shown(url);
        let s = &*shown;
        Self::parse_shown(url, s, append_path)
    }

    /// [`parse`](Self::parse) of `url`, quoting it as `s` in errors.
    fn parse_shown(url: &str, s: &str, append_path: bool) -> Result<Self, UrlTemplateError> {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(UrlTemplateError(format!(
                "`{s}`: an integration URL starts with http:// or https://"
            )));
        }
        let mut parts = Vec::new();
        let mut rest = url;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| UrlTemplateError(format!("`{s}`: `{{` without `}}`")))?;
            let name = &after[..close];
            if name.is_empty() || name.contains('{') {
                return Err(UrlTemplateError(format!(
                    "`{s}`: an empty or nested placeholder"
                )));
            }
            parts.push(match name.strip_prefix("stageVariables.") {
                Some(v) => Part::StageVariable(v.to_owned()),
                None => Part::Param(name.trim_end_matches('+').to_owned()),
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        if append_path && url.contains('?') {
            return Err(UrlTemplateError(format!("`{s}`: a base URL has no query")));
        }
        // A request must never choose the host: parameters go after it.
        let mut in_host = true;
        for part in &parts {
            match part {
                Part::Literal(l) if in_host => {
                    let after_scheme = l
                        .strip_prefix("http://")
                        .or_else(|| l.strip_prefix("https://"))
                        .unwrap_or(l);
                    in_host = !after_scheme.contains('/');
                }
                Part::Param(_) if in_host => {
                    return Err(UrlTemplateError(format!(
                        "`{s}`: a path parameter cannot be in the host (stage variables can)"
                    )));
                }
                _ => {}
            }
        }
        Ok(Self { parts, append_path })
    }

    /// Path parameters the template names.
    /// The path parameters the template names (`{petId}`), in order.
    pub(crate) fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(n) => Some(n.as_str()),
            _ => None,
        })
    }

    fn render<B>(&self, req: &Request<B>) -> String {
        let ctx = req.extensions().get::<RequestContext>();
        let mapped = req.extensions().get::<IntegrationPath>();
        let mut url = String::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Literal(s) => url.push_str(s),
                Part::StageVariable(n) => {
                    if let Some(v) = ctx.and_then(|c| c.endpoint().stage_variable(n)) {
                        url.push_str(v);
                    }
                }
                Part::Param(n) => {
                    let decoded = ctx.and_then(|c| c.path_param(n));
                    let value = match mapped {
                        Some(m) => m.get(n),
                        None => decoded,
                    };
                    let Some(v) = value else { continue };
                    let greedy =
                        ctx.is_some_and(|c| c.endpoint().resource().contains(&format!("{{{n}+}}")));
                    // The client's bytes when the value is the method
                    // request's own (mapped or not): `%2F` stays `%2F`,
                    // `%41` stays `%41`, whatever the parameter's kind.
                    let raw = ctx
                        .filter(|_| decoded == Some(v))
                        .and_then(|c| c.raw_path_param(n));
                    match raw {
                        Some(raw) => {
                            for (i, segment) in raw.split('/').enumerate() {
                                if i > 0 {
                                    url.push('/');
                                }
                                push_segment(&mut url, segment, None);
                            }
                        }
                        None if greedy => {
                            for (i, segment) in v.split('/').enumerate() {
                                if i > 0 {
                                    url.push('/');
                                }
                                push_segment(&mut url, segment, Some(GREEDY));
                            }
                        }
                        None => push_segment(&mut url, v, Some(SEGMENT)),
                    }
                }
            }
        }
        if self.append_path {
            let trimmed = url.trim_end_matches('/').len();
            url.truncate(trimmed);
            // As sent, but a `.` or `..` segment cannot climb out of the
            // base's path either (found by the hostile review).
            let path = req.uri().path();
            for (i, segment) in path.split('/').enumerate() {
                if i > 0 {
                    url.push('/');
                }
                push_segment(&mut url, segment, None);
            }
        }
        if let Some(q) = req.uri().query() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(q);
        }
        url
    }
}

/// Proxies requests to an upstream HTTP server (API Gateway's HTTP
/// integration): the URL from a template, headers forwarded minus hop-by-hop
/// ones, `X-Forwarded-For`/`-Proto`/`-Host` added, bodies streamed both ways,
/// connections pooled. No answer within the timeout (29 s by default, to
/// the response head) is a 504 `INTEGRATION_TIMEOUT`; a connection that
/// fails is a 502 `INTEGRATION_FAILURE`, and so is an `https://` server
/// whose certificate does not verify (the reason logged at `warn`).
/// `http://` and `https://`: rustls with the bundled Mozilla roots by
/// default, a private CA and a client certificate with
/// [`tls`](Self::tls); HTTP/2 when the server offers it by ALPN.
///
/// What the client sent goes upstream as sent unless a mapping changes it
/// (beyond API Gateway, whose REST APIs decode URL-encoded
/// parameters first, a documented known issue):
/// - a path parameter that is the method request's own is put in the URL
///   still percent-encoded, as the client wrote it: `/g/x%2Fy/z` through
///   `/g/{proxy+}` and `http://up/store/{proxy}` reaches `/store/x%2Fy/z`,
///   and `%2F` never becomes a `/`. A value a mapping set is encoded: `/`
///   as `%2F`, except in a greedy (`{name+}`) parameter. A `.` or `..`
///   segment is sent as `%2E` or `%2E%2E`;
/// - the query is appended as the client sent it (a query mapping keeps
///   every parameter it does not change byte for byte);
/// - header values pass untouched. `X-Forwarded-For` gets the connection's
///   peer address appended, from the [`ClientAddr`] the server puts on the
///   request; without one the hop is written `unknown` (a client's
///   `X-Forwarded-For: 9.9.9.9` goes on as `9.9.9.9, unknown`), never
///   passed on as if the gateway had seen it.
#[derive(Clone)]
pub struct HttpIntegration {
    client: HttpClient<Body>,
    url: Arc<UrlTemplate>,
    timeout: Duration,
    responses: GatewayResponses,
    /// The upstream's method; `None`: the request's.
    method: Option<http::Method>,
}

impl fmt::Debug for HttpIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpIntegration")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The shared client of integrations without a `tls` setting: `http://`
/// and `https://` with the bundled roots.
pub(crate) fn new_client() -> HttpClient<Body> {
    match client(&TlsConfig::default()) {
        Ok(c) => c,
        // The default reads no file; only a TLS library unable to offer its
        // own default versions could fail it.
        Err(e) => unreachable!("the default TLS config is always valid: {e}"),
    }
}

impl HttpIntegration {
    /// Proxies to `url`: `http://{stageVariables.host}/pets/{petId}`; the
    /// request's query is appended.
    pub fn new(url: &str) -> Result<Self, UrlTemplateError> {
        Ok(Self::with_client(
            new_client(),
            UrlTemplate::parse(url, false)?,
        ))
    }

    /// Proxies to `base` with the request's path (after the stage, in a
    /// gateway) and query appended: `http://10.0.0.5:8080` sends
    /// `/prod/pets/1?x=1` to `http://10.0.0.5:8080/pets/1?x=1`.
    pub fn forward_to(base: &str) -> Result<Self, UrlTemplateError> {
        Ok(Self::with_client(
            new_client(),
            UrlTemplate::parse(base, true)?,
        ))
    }

    /// An integration for a config's `url` or `base` (exactly one of them),
    /// sending through the gateway's shared `client`.
    pub(crate) fn from_config(
        client: HttpClient<Body>,
        url: Option<&str>,
        base: Option<&str>,
    ) -> Result<Self, UrlTemplateError> {
        Ok(Self::with_client(
            client,
            UrlTemplate::from_config(url, base)?,
        ))
    }

    fn with_client(client: HttpClient<Body>, url: UrlTemplate) -> Self {
        Self {
            client,
            url: Arc::new(url),
            timeout: DEFAULT_TIMEOUT,
            responses: GatewayResponses::default(),
            method: None,
        }
    }

    /// Calls the upstream with `method` whatever the request's (API
    /// Gateway's integration `httpMethod`).
    pub fn method(mut self, method: http::Method) -> Self {
        self.method = Some(method);
        self
    }

    /// With its own pool of connections made with `tls` (a private CA, a
    /// client certificate; see [`TlsConfig`]) instead of the shared
    /// default one.
    ///
    /// # Errors
    ///
    /// A file of `tls` that cannot be read or used.
    pub fn tls(mut self, tls: &TlsConfig) -> Result<Self, TlsError> {
        self.client = client(tls)?;
        Ok(self)
    }

    /// With this timeout to the response head.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Answering failures with `responses` (502, 504).
    pub fn responses(mut self, responses: GatewayResponses) -> Self {
        self.responses = responses;
        self
    }
}

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Appends the hop to `X-Forwarded-For`, as proxies do: the peer address
/// after what the client sent (`9.9.9.9, 127.0.0.1`); every value the
/// client sent is kept, joined in one header. Without a peer address (the
/// server put no [`ClientAddr`] on the request) the hop is written
/// `unknown`, so the last entry is never a value the client chose; with
/// neither, no header is added. A client value that is not visible ASCII
/// is dropped rather than forwarded.
fn forwarded_for(headers: &mut HeaderMap, peer: Option<std::net::IpAddr>) {
    let prior: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let hop = match peer {
        Some(ip) => ip.to_string(),
        None if prior.is_empty() => {
            headers.remove(&X_FORWARDED_FOR);
            return;
        }
        None => "unknown".to_owned(),
    };
    let mut value = prior.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    value.push_str(&hop);
    match HeaderValue::from_str(&value) {
        Ok(v) => {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        Err(_) => {
            headers.remove(&X_FORWARDED_FOR);
        }
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

impl<B> Service<Request<B>> for HttpIntegration
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let url = self.url.render(&req);
        let this = self.clone();
        let original = req
            .extensions()
            .get::<RequestContext>()
            .map(|c| c.original_uri().clone());
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
        let (mut parts, body) = req.into_parts();
        Box::pin(async move {
            let Ok(uri) = url.parse::<Uri>() else {
                tracing::error!("integration URL does not parse after substitution");
                return Ok(this
                    .responses
                    .respond(GatewayResponseKind::IntegrationFailure));
            };
            let host = parts.headers.get(HOST).cloned().or_else(|| {
                original
                    .as_ref()
                    .and_then(|u| u.authority())
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            });
            let https = original
                .as_ref()
                .and_then(Uri::scheme_str)
                .is_some_and(|s| s == "https");
            strip_hop_by_hop(&mut parts.headers);
            parts.headers.remove(HOST);
            forwarded_for(&mut parts.headers, peer);
            parts.headers.insert(
                X_FORWARDED_PROTO.clone(),
                HeaderValue::from_static(if https { "https" } else { "http" }),
            );
            if let Some(h) = host {
                parts.headers.insert(X_FORWARDED_HOST.clone(), h);
            }
            parts.uri = uri;
            parts.version = http::Version::HTTP_11;
            if let Some(m) = &this.method {
                parts.method = m.clone();
            }
            let upstream = Request::from_parts(parts, Body::new(body));
            match tokio::time::timeout(this.timeout, this.client.request(upstream)).await {
                Err(_) => Ok(this
                    .responses
                    .respond(GatewayResponseKind::IntegrationTimeout)),
                Ok(Err(e)) => {
                    // The whole chain: a certificate that does not verify
                    // is only named by the innermost error.
                    tracing::warn!(error = %chain(&e), connect = e.is_connect(), "integration request failed");
                    Ok(this
                        .responses
                        .respond(GatewayResponseKind::IntegrationFailure))
                }
                Ok(Ok(res)) => {
                    let (mut parts, body) = res.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    Ok(Response::from_parts(parts, Body::new(body)))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_refuse_what_they_cannot_serve() {
        let t = UrlTemplate::parse("http://{stageVariables.host}/pets/{petId}/x", false).unwrap();
        assert_eq!(
            t.parts,
            [
                Part::Literal("http://".into()),
                Part::StageVariable("host".into()),
                Part::Literal("/pets/".into()),
                Part::Param("petId".into()),
                Part::Literal("/x".into()),
            ]
        );
        assert!(UrlTemplate::parse("https://x", false).is_ok());
        assert!(UrlTemplate::parse("ftp://x", false).is_err());
        assert!(UrlTemplate::parse("https://{id}/x", false).is_err());
        assert!(UrlTemplate::parse("http://x/{a", false).is_err());
        assert!(UrlTemplate::parse("http://x/{}", false).is_err());
        assert!(UrlTemplate::parse("http://x/?a=1", true).is_err());
        assert!(UrlTemplate::parse("http://{id}/x", false).is_err());
        assert!(UrlTemplate::parse("http://up.{id}.internal/x", false).is_err());
        assert!(UrlTemplate::parse("http://{stageVariables.h}:8080/{id}", false).is_ok());
    }

    #[test]
    fn a_url_is_filled_with_parameters_and_the_query() {
        let t = UrlTemplate::parse("http://up/items?src=gw", false).unwrap();
        let req = Request::get("/pets?type=dog").body(()).unwrap();
        assert_eq!(t.render(&req), "http://up/items?src=gw&type=dog");
        let base = UrlTemplate::parse("http://up:81/", true).unwrap();
        assert_eq!(base.render(&req), "http://up:81/pets?type=dog");
        let mut req = Request::get("/x").body(()).unwrap();
        req.extensions_mut()
            .insert(IntegrationPath(vec![("id".into(), "a b/c".into())]));
        let t = UrlTemplate::parse("http://up/{id}", false).unwrap();
        assert_eq!(t.render(&req), "http://up/a%20b%2Fc");
        // Dot segments cannot climb out of the template's path.
        for (value, sent) in [
            ("..", "http://up/%2E%2E"),
            (".", "http://up/%2E"),
            ("..a", "http://up/..a"),
        ] {
            let mut req = Request::get("/x").body(()).unwrap();
            req.extensions_mut()
                .insert(IntegrationPath(vec![("id".into(), value.into())]));
            assert_eq!(t.render(&req), sent);
        }
    }
}
