//! Parameter mapping: headers, query parameters and path parameters of the
//! integration request, from the method request, stage variables, the
//! request context or literals.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue, Request, Uri};
use ipnet::IpNet;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::auth::authorizer::AuthorizerContext;
use crate::auth::sigv4::SigV4Identity;
use crate::context::{ApiKeyIdentity, RequestContext};
use crate::throttle::ClientAddr;

/// Where a mapped value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Header(HeaderName),
    Query(String),
    Path(String),
}

/// A value of the request context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContextValue {
    RequestId,
    Stage,
    ResourcePath,
    HttpMethod,
    SourceIp,
    ApiKeyId,
    PrincipalId,
}

/// Where a mapped value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Path(String),
    Query(String),
    Header(HeaderName),
    StageVariable(String),
    Context(ContextValue),
    Literal(String),
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))
}

fn non_empty<'a>(name: &'a str, whole: &str) -> Result<&'a str, String> {
    if name.is_empty() {
        Err(format!("`{whole}` names no parameter"))
    } else {
        Ok(name)
    }
}

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

/// The compiled parameter operations of one method.
#[derive(Debug, Clone, Default)]
pub(crate) struct ParamOps {
    pub(crate) rename: Vec<(Target, Target)>,
    pub(crate) remove: Vec<Target>,
    pub(crate) set: Vec<(Target, Source)>,
    pub(crate) add: Vec<(Target, Source)>,
}

/// Query parameters of a request, decoded.
type Query = Vec<(String, String)>;

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_decode_str(&plus).decode_utf8_lossy().into_owned()
}

pub(crate) fn parse_query(q: Option<&str>) -> Query {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Characters left as they are in a query name or value.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode_query(q: &Query) -> String {
    let mut out = String::new();
    for (k, v) in q {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(k, QUERY));
        out.push('=');
        out.extend(utf8_percent_encode(v, QUERY));
    }
    out
}

/// The client's address as the mapping sees it.
pub(crate) fn source_ip<B>(req: &Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    crate::throttle::client_ip(peer, req.headers(), trusted)
}

/// Reads `source` from the method request.
pub(crate) fn read<'a, B>(
    source: &'a Source,
    req: &'a Request<B>,
    query: &'a Query,
    trusted: &[IpNet],
) -> Option<Cow<'a, str>> {
    let ctx = req.extensions().get::<RequestContext>();
    match source {
        Source::Literal(s) => Some(Cow::Borrowed(s)),
        Source::Path(n) => ctx?.path_param(n).map(Cow::Borrowed),
        Source::Query(n) => query
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| Cow::Borrowed(v.as_str())),
        Source::Header(n) => req
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        Source::StageVariable(n) => ctx?.endpoint().stage_variable(n).map(Cow::Borrowed),
        Source::Context(c) => context_value(*c, req, trusted),
    }
}

pub(crate) fn context_value<'a, B>(
    c: ContextValue,
    req: &'a Request<B>,
    trusted: &[IpNet],
) -> Option<Cow<'a, str>> {
    let ext = req.extensions();
    let ctx = ext.get::<RequestContext>();
    match c {
        ContextValue::RequestId => ctx.map(|c| Cow::Owned(c.request_id().to_string())),
        ContextValue::Stage => ctx.map(|c| Cow::Borrowed(c.endpoint().stage())),
        ContextValue::ResourcePath => ctx.map(|c| Cow::Borrowed(c.endpoint().resource())),
        ContextValue::HttpMethod => Some(Cow::Borrowed(req.method().as_str())),
        ContextValue::SourceIp => source_ip(req, trusted).map(|ip| Cow::Owned(ip.to_string())),
        ContextValue::ApiKeyId => ext
            .get::<ApiKeyIdentity>()
            .map(|k| Cow::Borrowed(k.key_id())),
        ContextValue::PrincipalId => ext
            .get::<SigV4Identity>()
            .map(|s| Cow::Borrowed(s.principal.as_str()))
            .or_else(|| {
                ext.get::<AuthorizerContext>()
                    .map(|a| Cow::Borrowed(a.principal_id.as_str()))
            }),
    }
}

impl ParamOps {
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

    pub(crate) fn is_empty(&self) -> bool {
        self.rename.is_empty()
            && self.remove.is_empty()
            && self.set.is_empty()
            && self.add.is_empty()
    }

    fn touches_query(&self) -> bool {
        let q = |t: &Target| matches!(t, Target::Query(_));
        self.rename.iter().any(|(f, _)| q(f))
            || self.remove.iter().any(q)
            || self.set.iter().any(|(t, _)| q(t))
            || self.add.iter().any(|(t, _)| q(t))
    }

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
    pub(crate) fn apply<B>(&self, req: &mut Request<B>, trusted: &[IpNet]) {
        let reads_query = self
            .set
            .iter()
            .chain(&self.add)
            .any(|(_, s)| matches!(s, Source::Query(_)));
        let method_query = if reads_query || self.touches_query() {
            parse_query(req.uri().query())
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
                        for (k, _) in q.iter_mut().filter(|(k, _)| k == f) {
                            k.clone_from(t);
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
                        q.retain(|(k, _)| k != n);
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
                // A value that cannot be a header value (a newline, say) is dropped.
                if let Ok(v) = HeaderValue::from_str(&v) {
                    if replace {
                        headers.insert(n.clone(), v);
                    } else {
                        headers.append(n.clone(), v);
                    }
                }
            }
            Target::Query(n) => {
                if let Some(q) = &mut query {
                    if replace {
                        q.retain(|(k, _)| k != n);
                    }
                    q.push((n.clone(), v));
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
            if let Ok(pq) = pq.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        if let Some(p) = path {
            req.extensions_mut().insert(p);
        }
    }
}
