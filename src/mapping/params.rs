//! Parameter mapping: headers, query parameters and path parameters of the
//! integration request, from the method request, stage variables, the
//! request context or literals.
//!
//! The expressions are API Gateway's ("Map method request data to
//! integration request parameters", [`request-response-data-mappings`](https://docs.aws.amazon.com/apigateway/latest/developerguide/request-response-data-mappings.html)):
//! a target `integration.request.header|querystring|path.NAME` and a source
//! `method.request.path|querystring|header.NAME`, `stageVariables.NAME`, one
//! of seven `context.*` values, or a `'literal'`. The multi-value sources
//! (`method.request.multivalueheader.NAME`, `multivaluequerystring`) and the
//! body sources (`method.request.body`, `method.request.body.JSONPATH`) are
//! not supported and refused when compiled, as is a target without a name.
//!
//! [`ParamOps::apply`] reads every source before it changes anything, so
//! operations never see each other's results: `set` of `header.b` from
//! `method.request.header.a` reads the `a` the client sent, even when a
//! `rename` moves `a` away. Headers are changed in place. The query is
//! rebuilt only when an operation names a query parameter, and then only
//! what the operations changed is written anew: every other parameter goes
//! on as the client sent it (order, repeats, bare names, `+` and any
//! percent-encoding kept), which is where tollgate goes beyond API Gateway
//! (its REST APIs decode and re-encode). Mapped path parameters go to the
//! integration as an [`IntegrationPath`] request extension, the request's
//! own path untouched.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue, Request, Uri};
use ipnet::IpNet;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::context::{Caller, RequestContext};
use crate::throttle::ClientAddr;

/// Where a mapped value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `integration.request.header.NAME`.
    Header(HeaderName),
    /// `integration.request.querystring.NAME`, decoded.
    Query(String),
    /// `integration.request.path.NAME`: a parameter of the integration's
    /// URL template.
    Path(String),
}

/// A value of the request context: the `$context` variables API Gateway
/// offers that tollgate knows. Each is also a field of a template's
/// `context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextValue {
    /// `context.requestId`: the gateway's request id.
    RequestId,
    /// `context.stage`: the stage name.
    Stage,
    /// `context.resourcePath`: the matched resource (`/pets/{petId}`).
    ResourcePath,
    /// `context.httpMethod`: the request's method.
    HttpMethod,
    /// `context.identity.sourceIp`: the client address, past trusted proxies.
    SourceIp,
    /// `context.identity.apiKeyId`: the id (not the value) of the API key.
    ApiKeyId,
    /// `context.authorizer.principalId`: the SigV4 principal, else the
    /// authorizer's.
    PrincipalId,
}

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `method.request.path.NAME`: a path parameter the route matched.
    Path(String),
    /// `method.request.querystring.NAME`: its first value, decoded.
    Query(String),
    /// `method.request.header.NAME`: its first value, if it is visible ASCII.
    Header(HeaderName),
    /// `stageVariables.NAME`.
    StageVariable(String),
    /// `context.*`.
    Context(ContextValue),
    /// `'text'`, without its quotes; never missing.
    Literal(String),
}

/// `name` as a header name, or the message for the config issue.
fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

/// `name` when it is not empty; otherwise the message, quoting `whole`
/// (the expression it came from).
fn non_empty<'a>(name: &'a str, whole: &str) -> Result<&'a str, String> {
    if name.is_empty() {
        Err(format!("`{whole}` names no parameter"))
    } else {
        Ok(name)
    }
}

/// Reads a target expression; `Err` holds the config issue's message,
/// which lists the forms a target may take.
pub(crate) fn parse_target(s: &str) -> Result<Target, String> {
    let rest = s.strip_prefix("integration.request.").ok_or_else(|| {
        format!("`{s}` is not a target (integration.request.header|querystring|path.NAME)")
    })?;
    if let Some(n) = rest.strip_prefix("header.") {
        return header_name(non_empty(n, s)?).map(Target::Header);
    }
    if let Some(n) = rest.strip_prefix("querystring.") {
        return Ok(Target::Query(non_empty(n, s)?.to_owned()));
    }
    if let Some(n) = rest.strip_prefix("path.") {
        return Ok(Target::Path(non_empty(n, s)?.to_owned()));
    }
    Err(format!(
        "`{s}` is not a target (integration.request.header|querystring|path.NAME)"
    ))
}

/// Reads a source expression; `Err` holds the config issue's message, which
/// lists every source tollgate knows. A literal is anything between single
/// quotes, taken as it is (no escapes).
pub(crate) fn parse_source(s: &str) -> Result<Source, String> {
    if let Some(lit) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(Source::Literal(lit.to_owned()));
    }
    if let Some(rest) = s.strip_prefix("method.request.") {
        if let Some(n) = rest.strip_prefix("path.") {
            return Ok(Source::Path(non_empty(n, s)?.to_owned()));
        }
        if let Some(n) = rest.strip_prefix("querystring.") {
            return Ok(Source::Query(non_empty(n, s)?.to_owned()));
        }
        if let Some(n) = rest.strip_prefix("header.") {
            return header_name(non_empty(n, s)?).map(Source::Header);
        }
    }
    if let Some(n) = s.strip_prefix("stageVariables.") {
        return Ok(Source::StageVariable(non_empty(n, s)?.to_owned()));
    }
    let context = match s {
        "context.requestId" => Some(ContextValue::RequestId),
        "context.stage" => Some(ContextValue::Stage),
        "context.resourcePath" => Some(ContextValue::ResourcePath),
        "context.httpMethod" => Some(ContextValue::HttpMethod),
        "context.identity.sourceIp" => Some(ContextValue::SourceIp),
        "context.identity.apiKeyId" => Some(ContextValue::ApiKeyId),
        "context.authorizer.principalId" => Some(ContextValue::PrincipalId),
        _ => None,
    };
    context.map(Source::Context).ok_or_else(|| {
        format!(
            "`{s}` is not a source (method.request.path|querystring|header.NAME, stageVariables.NAME, context.requestId|stage|resourcePath|httpMethod|identity.sourceIp|identity.apiKeyId|authorizer.principalId, or 'literal')"
        )
    })
}

/// The path parameters of the integration request, when a mapping changed
/// them (an [`HttpIntegration`](crate::integration::HttpIntegration) fills its
/// URL from these first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrationPath(pub Vec<(String, String)>);

impl IntegrationPath {
    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A query mapping's result does not make a URI (longer than the `http`
/// crate takes): the request is refused rather than sent unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryTooLong;

/// The compiled parameter operations of one method.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParamOps {
    /// (from, to), both of one kind: a header renamed to a header, ...
    pub(crate) rename: Vec<(Target, Target)>,
    /// Targets removed, every value.
    pub(crate) remove: Vec<Target>,
    /// Targets replaced by their source's value.
    pub(crate) set: Vec<(Target, Source)>,
    /// Targets given one more value (a repeated header or query parameter);
    /// a path parameter has one value, so `add` replaces it.
    pub(crate) add: Vec<(Target, Source)>,
}

/// Query parameters of a request, decoded.
type Query = Vec<(String, String)>;

/// A query name or value decoded as a form would be: `+` is a space, then
/// percent escapes; invalid UTF-8 becomes U+FFFD.
pub(crate) fn decode(s: &str) -> String {
    // Most names and values have neither: one copy, no scan of escapes.
    if !s.bytes().any(|b| b == b'+' || b == b'%') {
        return s.to_owned();
    }
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

/// The query's parameters, decoded, in order, repeats kept; a parameter
/// without `=` has an empty value.
pub(crate) fn parse_query(q: Option<&str>) -> Query {
    let mut out = Vec::new();
    for_each_query_param(q, |k, v| out.push((k, v)));
    out
}

/// Hands each of the query's parameters to `f`, decoded, in order, as
/// [`parse_query`] lists them: what `parse_pieces` reads, without keeping
/// the pieces as sent.
pub(crate) fn for_each_query_param(q: Option<&str>, mut f: impl FnMut(String, String)) {
    let Some(q) = q else { return };
    for p in q.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        f(decode(name), decode(value));
    }
}

/// The first value of query parameter `name`, decoded; `None` without one.
pub(crate) fn first_query_value(q: Option<&str>, name: &str) -> Option<String> {
    parse_query(q)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// One `&`-separated piece of a query: decoded for reading and matching,
/// and as it was sent, so that what no operation changed is written back
/// byte for byte (`+` stays `+`, `%2a` stays `%2a`, a bare `flag` stays
/// bare).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Piece {
    /// The name, decoded.
    name: String,
    /// The value, decoded (empty for a bare name).
    value: String,
    /// The name as sent; `None` once renamed, or for a new parameter.
    raw_name: Option<String>,
    /// What followed the name as sent (`=v`, or nothing for a bare name);
    /// `None` for a new parameter, written `=` and its encoded value.
    raw_rest: Option<String>,
}

impl Piece {
    /// A new parameter, written encoded.
    fn new(name: String, value: String) -> Self {
        Self {
            name,
            value,
            raw_name: None,
            raw_rest: None,
        }
    }

    /// The empty piece between two `&` (`a=1&&b=2`): kept as sent, never
    /// a parameter.
    fn is_empty_piece(&self) -> bool {
        self.raw_name.as_deref() == Some("") && self.raw_rest.as_deref() == Some("")
    }

    /// Whether this piece is a parameter called `name`.
    fn is(&self, name: &str) -> bool {
        !self.is_empty_piece() && self.name == name
    }
}

/// The query's pieces in order, empty ones included.
fn parse_pieces(q: Option<&str>) -> Vec<Piece> {
    let Some(q) = q.filter(|q| !q.is_empty()) else {
        return Vec::new();
    };
    q.split('&')
        .map(|p| {
            let (raw_name, raw_rest) = match p.find('=') {
                Some(i) => p.split_at(i),
                None => (p, ""),
            };
            Piece {
                name: decode(raw_name),
                value: decode(raw_rest.strip_prefix('=').unwrap_or("")),
                raw_name: Some(raw_name.to_owned()),
                raw_rest: Some(raw_rest.to_owned()),
            }
        })
        .collect()
}

/// Characters left as they are in a new query name or value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The query written back: each piece as it was sent, except what an
/// operation changed. A renamed parameter's name, and a new parameter's
/// name and value, are percent-encoded (every byte but the unreserved ones
/// of RFC 3986; a space is `%20`).
fn encode_query(q: &[Piece]) -> String {
    let mut out = String::new();
    for (i, p) in q.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        match &p.raw_name {
            Some(raw) => out.push_str(raw),
            None => out.extend(utf8_percent_encode(&p.name, QUERY)),
        }
        match &p.raw_rest {
            Some(raw) => out.push_str(raw),
            None => {
                out.push('=');
                out.extend(utf8_percent_encode(&p.value, QUERY));
            }
        }
    }
    out
}

/// The client's address as the mapping sees it: the connection's peer
/// ([`ClientAddr`]), or, when the peer is one of the `trusted` proxies,
/// the address it forwarded for, as the throttle reads it.
pub(crate) fn source_ip<B>(req: &Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    crate::throttle::client_ip(peer, req.headers(), trusted)
}

/// Reads `source` from the method request; `None` when it has no value
/// (no such parameter, a header that is not visible ASCII, no
/// [`RequestContext`] for a path parameter or stage variable).
/// `query` is the method request's query, parsed once by the caller.
fn read<'a, B>(
    source: &'a Source,
    req: &'a Request<B>,
    query: &'a [Piece],
    trusted: &[IpNet],
) -> Option<Cow<'a, str>> {
    let ctx = req.extensions().get::<RequestContext>();
    match source {
        Source::Literal(s) => Some(Cow::Borrowed(s)),
        Source::Path(n) => ctx?.path_param(n).map(Cow::Borrowed),
        Source::Query(n) => query
            .iter()
            .find(|p| p.is(n))
            .map(|p| Cow::Borrowed(p.value.as_str())),
        Source::Header(n) => req
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        Source::StageVariable(n) => ctx?.endpoint().stage_variable(n).map(Cow::Borrowed),
        Source::Context(c) => context_value(*c, req, trusted),
    }
}

/// Reads one context value from the request and the extensions the layers
/// before the mapping left on it; `None` when the layer that would know it
/// did not run (no API key layer, no authorizer) or found nothing.
pub(crate) fn context_value<'a, B>(
    c: ContextValue,
    req: &'a Request<B>,
    trusted: &[IpNet],
) -> Option<Cow<'a, str>> {
    let ext = req.extensions();
    let ctx = ext.get::<RequestContext>();
    match c {
        ContextValue::RequestId => ctx.map(|c| {
            let mut buf = [0; 36];
            Cow::Owned(c.request_id().encode(&mut buf).to_owned())
        }),
        ContextValue::Stage => ctx.map(|c| Cow::Borrowed(c.endpoint().stage())),
        ContextValue::ResourcePath => ctx.map(|c| Cow::Borrowed(c.endpoint().resource())),
        ContextValue::HttpMethod => Some(Cow::Borrowed(req.method().as_str())),
        ContextValue::SourceIp => source_ip(req, trusted).map(|ip| Cow::Owned(ip.to_string())),
        ContextValue::ApiKeyId => Caller::of(ext).api_key.map(|k| Cow::Borrowed(k.key_id())),
        ContextValue::PrincipalId => Caller::of(ext).principal().map(Cow::Borrowed),
    }
}

impl ParamOps {
    /// Compiles the four operation lists of `request`, reporting each bad
    /// expression to `issue` as (`set.TARGET`, message), `remove[INDEX]` or
    /// `rename.FROM`, and leaving it out. A rename between kinds (a header
    /// to a query parameter) is refused.
    pub(crate) fn compile(
        set: &BTreeMap<String, String>,
        add: &BTreeMap<String, String>,
        remove: &[String],
        rename: &BTreeMap<String, String>,
        issue: &mut dyn FnMut(String, String),
    ) -> Self {
        let mut ops = Self::default();
        let mut pairs = |map: &BTreeMap<String, String>, field: &str| {
            let mut out = Vec::new();
            for (t, s) in map {
                match (parse_target(t), parse_source(s)) {
                    (Ok(t), Ok(s)) => out.push((t, s)),
                    (Err(e), _) | (_, Err(e)) => issue(format!("{field}.{t}"), e),
                }
            }
            out
        };
        ops.set = pairs(set, "set");
        ops.add = pairs(add, "add");
        for (i, t) in remove.iter().enumerate() {
            match parse_target(t) {
                Ok(t) => ops.remove.push(t),
                Err(e) => issue(format!("remove[{i}]"), e),
            }
        }
        for (from, to) in rename {
            match (parse_target(from), parse_target(to)) {
                (Ok(f), Ok(t)) if std::mem::discriminant(&f) == std::mem::discriminant(&t) => {
                    ops.rename.push((f, t));
                }
                (Ok(_), Ok(_)) => issue(
                    format!("rename.{from}"),
                    "renames within one kind (header to header, ...)".to_owned(),
                ),
                (Err(e), _) | (_, Err(e)) => issue(format!("rename.{from}"), e),
            }
        }
        ops
    }

    /// Whether there is nothing to apply: the layer then skips the step.
    pub(crate) fn is_empty(&self) -> bool {
        self.rename.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    /// Whether an operation changes a query parameter: only then is the
    /// query decoded and the URI rebuilt.
    fn touches_query(&self) -> bool {
        let q = |t: &Target| matches!(t, Target::Query(_));
        self.rename.iter().any(|(f, _)| q(f))
            || self.remove.iter().any(q)
            || self.set.iter().any(|(t, _)| q(t))
            || self.add.iter().any(|(t, _)| q(t))
    }

    /// Whether an operation changes a path parameter: only then does the
    /// request get an [`IntegrationPath`].
    fn touches_path(&self) -> bool {
        let p = |t: &Target| matches!(t, Target::Path(_));
        self.rename.iter().any(|(f, _)| p(f))
            || self.remove.iter().any(p)
            || self.set.iter().any(|(t, _)| p(t))
            || self.add.iter().any(|(t, _)| p(t))
    }

    /// Applies the operations: every source is read from the request as it
    /// came (the method request); then renames, removals, sets and adds, in
    /// that order. A source with no value leaves its target alone.
    ///
    /// A value that cannot be a header value (a line break, say) is dropped
    /// rather than failing the request (a `set` then leaves the header
    /// absent). A rebuilt query that does not make a valid URI (too long)
    /// is [`QueryTooLong`]: the caller refuses the request.
    pub(crate) fn apply<B>(
        &self,
        req: &mut Request<B>,
        trusted: &[IpNet],
    ) -> Result<(), QueryTooLong> {
        let reads_query = self
            .set
            .iter()
            .chain(&self.add)
            .any(|(_, s)| matches!(s, Source::Query(_)));
        let method_query = if reads_query || self.touches_query() {
            parse_pieces(req.uri().query())
        } else {
            Vec::new()
        };
        let read_all =
            |list: &[(Target, Source)], req: &Request<B>| -> Vec<(Target, Option<String>)> {
                list.iter()
                    .map(|(t, s)| {
                        let v = read(s, req, &method_query, trusted).map(Cow::into_owned);
                        (t.clone(), v)
                    })
                    .collect()
            };
        let sets = read_all(&self.set, req);
        let adds = read_all(&self.add, req);

        let mut query = self.touches_query().then(|| method_query.clone());
        let mut path = self.touches_path().then(|| {
            let params = req
                .extensions()
                .get::<RequestContext>()
                .map(|c| {
                    c.path_params()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            IntegrationPath(params)
        });
        let headers = req.headers_mut();

        for (from, to) in &self.rename {
            match (from, to) {
                (Target::Header(f), Target::Header(t)) => {
                    let values: Vec<HeaderValue> = headers.get_all(f).iter().cloned().collect();
                    headers.remove(f);
                    for v in values {
                        headers.append(t.clone(), v);
                    }
                }
                (Target::Query(f), Target::Query(t)) => {
                    if let Some(q) = &mut query {
                        for p in q.iter_mut().filter(|p| p.is(f)) {
                            p.name.clone_from(t);
                            p.raw_name = None;
                        }
                    }
                }
                (Target::Path(f), Target::Path(t)) => {
                    if let Some(p) = &mut path {
                        for (k, _) in p.0.iter_mut().filter(|(k, _)| k == f) {
                            k.clone_from(t);
                        }
                    }
                }
                _ => {}
            }
        }
        for t in &self.remove {
            match t {
                Target::Header(n) => {
                    headers.remove(n);
                }
                Target::Query(n) => {
                    if let Some(q) = &mut query {
                        q.retain(|p| !p.is(n));
                    }
                }
                Target::Path(n) => {
                    if let Some(p) = &mut path {
                        p.0.retain(|(k, _)| k != n);
                    }
                }
            }
        }
        let mut put = |t: &Target, v: String, replace: bool| match t {
            Target::Header(n) => {
                // A value that cannot be a header value (a newline, say) is
                // dropped; a `set` still removes what the client sent, so
                // the client's own value never stands in for the mapped one.
                match HeaderValue::from_str(&v) {
                    Ok(v) if replace => {
                        headers.insert(n.clone(), v);
                    }
                    Ok(v) => {
                        headers.append(n.clone(), v);
                    }
                    Err(_) if replace => {
                        headers.remove(n);
                    }
                    Err(_) => {}
                }
            }
            Target::Query(n) => {
                if let Some(q) = &mut query {
                    if replace {
                        q.retain(|p| !p.is(n));
                    }
                    q.push(Piece::new(n.clone(), v));
                }
            }
            Target::Path(n) => {
                if let Some(p) = &mut path {
                    if replace || p.get(n).is_some() {
                        p.0.retain(|(k, _)| k != n);
                    }
                    p.0.push((n.clone(), v));
                }
            }
        };
        for (t, v) in sets {
            if let Some(v) = v {
                put(&t, v, true);
            }
        }
        for (t, v) in adds {
            if let Some(v) = v {
                put(&t, v, false);
            }
        }

        if let Some(q) = query {
            let encoded = encode_query(&q);
            let pq = if encoded.is_empty() {
                req.uri().path().to_owned()
            } else {
                format!("{}?{encoded}", req.uri().path())
            };
            let mut parts = req.uri().clone().into_parts();
            // A rewrite that makes no URI (past the longest `http` takes)
            // refuses the request: passing it on unmapped would let the
            // client's query stand in for the mapped one.
            parts.path_and_query = Some(pq.parse().map_err(|_| QueryTooLong)?);
            *req.uri_mut() = Uri::from_parts(parts).map_err(|_| QueryTooLong)?;
        }
        if let Some(p) = path {
            req.extensions_mut().insert(p);
        }
        Ok(())
    }
}

/// Applies a VTL request template's overrides
/// (`$context.requestOverride.header|querystring|path.NAME`) to the
/// integration request, after the template and the parameter mapping: each
/// replaces what the request had under that name. A header value that
/// cannot be one is dropped; a query that makes no URI is [`QueryTooLong`].
pub(crate) fn apply_overrides(
    parts: &mut http::request::Parts,
    o: &crate::vtl::Overrides,
) -> Result<(), QueryTooLong> {
    for (name, value) in &o.request_header {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            parts.headers.insert(n, v);
        }
    }
    if !o.request_querystring.is_empty() {
        let mut q = parse_pieces(parts.uri.query());
        for (name, value) in &o.request_querystring {
            q.retain(|p| !p.is(name));
            q.push(Piece::new(name.clone(), value.clone()));
        }
        let encoded = encode_query(&q);
        let pq = if encoded.is_empty() {
            parts.uri.path().to_owned()
        } else {
            format!("{}?{encoded}", parts.uri.path())
        };
        let mut uri = parts.uri.clone().into_parts();
        uri.path_and_query = Some(pq.parse().map_err(|_| QueryTooLong)?);
        parts.uri = Uri::from_parts(uri).map_err(|_| QueryTooLong)?;
    }
    if !o.request_path.is_empty() {
        let mut path = parts
            .extensions
            .remove::<IntegrationPath>()
            .unwrap_or_else(|| {
                IntegrationPath(
                    parts
                        .extensions
                        .get::<RequestContext>()
                        .map(|c| {
                            c.path_params()
                                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            });
        for (name, value) in &o.request_path {
            path.0.retain(|(k, _)| k != name);
            path.0.push((name.clone(), value.clone()));
        }
        parts.extensions.insert(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `decode` was before its fast path: every string through the
    /// `+` and escape pass.
    fn decode_slowly(s: &str) -> String {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    }

    #[test]
    fn parse_query_decodes_names_and_values_and_skips_empty_pieces() {
        assert_eq!(
            parse_query(Some("a=1&&b=x+y%2Fz&flag&=v&c=%ZZ&d=%C3%A9&e=%FF")),
            [
                ("a", "1"),
                ("b", "x y/z"),
                ("flag", ""),
                ("", "v"),
                ("c", "%ZZ"),
                ("d", "é"),
                ("e", "\u{fffd}"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(parse_query(None).is_empty());
        assert!(parse_query(Some("")).is_empty());
        assert!(parse_query(Some("&&")).is_empty());
    }

    proptest! {
        /// The parameters are the pieces' parameters: the mapping's
        /// rewrite and the Lambda event read one query alike.
        #[test]
        fn parse_query_reads_what_the_pieces_hold(q in "[a=&+%2Fé0-9 ]{0,24}") {
            let pieces: Vec<(String, String)> = parse_pieces(Some(&q))
                .into_iter()
                .filter(|p| !p.is_empty_piece())
                .map(|p| (p.name, p.value))
                .collect();
            prop_assert_eq!(parse_query(Some(&q)), pieces);
        }

        #[test]
        fn decode_with_or_without_escapes_is_the_full_pass(s in "[a+%2Fé0-9 ]{0,16}") {
            prop_assert_eq!(decode(&s), decode_slowly(&s));
        }
    }
}
