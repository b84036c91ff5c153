//! Per-request facts shared between layers.
//!
//! The route layer inserts a [`RequestContext`] into the request extensions:
//! the request id, the matched [`Endpoint`] (stage, resource template, method
//! and its resolved settings, stage variables) and the decoded path
//! parameters. Every later layer and the inner service read it from there.
//!
//! ```
//! use http::Request;
//! use tollgate::{Body, Config, Gateway, RequestContext};
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), tollgate::body::BoxError> {
//! let config = Config::from_yaml_str(r#"
//! routes: { "/pets/{petId}": [GET] }
//! stages: { prod: { variables: { tier: gold } } }
//! "#)?;
//! let inner = service_fn(|req: Request<Body>| async move {
//!     let ctx = req.extensions().get::<RequestContext>().expect("set by the route layer");
//!     let text = format!(
//!         "{} {} {} pet={} tier={}",
//!         ctx.endpoint().stage(),
//!         ctx.endpoint().resource(),
//!         req.uri().path(),
//!         ctx.path_param("petId").unwrap_or("-"),
//!         ctx.endpoint().stage_variable("tier").unwrap_or("-"),
//!     );
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(text)))
//! });
//! let svc = Gateway::new(config)?.service(inner);
//! let res = svc.oneshot(Request::get("/prod/pets/7").body(Body::empty())?).await?;
//! # use http_body_util::BodyExt;
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], b"prod /pets/{petId} /pets/7 pet=7 tier=gold");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Request, Uri};
use uuid::Uuid;

use crate::auth::Authorization;
use crate::cache::CacheSettings;
use crate::integration::IntegrationConfig;
use crate::throttle::Rate;

/// A request's id: a random UUID, as API Gateway's `requestId`, returned to the
/// client in the `x-amzn-requestid` header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(Uuid);

impl RequestId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Writes the lower-case hyphenated form into `buf` and returns it.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 36]) -> &'b str {
        self.0.hyphenated().encode_lower(buf)
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// One method of one resource of one stage, with its settings resolved.
///
/// The gateway builds every endpoint once; a request carries a reference to
/// its own.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) index: usize,
    pub(crate) api: Arc<str>,
    pub(crate) stage: Arc<str>,
    pub(crate) resource: Arc<str>,
    pub(crate) method: Option<Method>,
    pub(crate) params: Arc<[Box<str>]>,
    pub(crate) variables: Arc<BTreeMap<String, String>>,
    pub(crate) settings: MethodSettings,
}

impl Endpoint {
    /// A dense number, unique within one gateway (`0 .. endpoint count`),
    /// for layers that keep a table per endpoint.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The API's name (the config's `name`, default `tollgate`): buckets
    /// and counters of two APIs with a stage of the same name stay apart.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The stage name (`prod`).
    pub fn stage(&self) -> &str {
        &self.stage
    }

    /// The resource template (`/pets/{petId}`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The method as declared: `None` for an `ANY` method.
    pub fn method(&self) -> Option<&Method> {
        self.method.as_ref()
    }

    /// The method as written in config keys (`GET`, `ANY`).
    pub fn method_name(&self) -> &str {
        self.method.as_ref().map_or("ANY", Method::as_str)
    }

    /// The resolved settings of this method in this stage.
    pub fn settings(&self) -> &MethodSettings {
        &self.settings
    }

    /// All stage variables.
    pub fn stage_variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// One stage variable.
    pub fn stage_variable(&self, name: &str) -> Option<&str> {
        self.variables.get(name).map(String::as_str)
    }

    /// Path parameter names in path order.
    pub fn param_names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.params.iter().map(|p| &**p)
    }
}

/// The API key a request presented, once it has been accepted: its id (never
/// the key itself) and the usage plan that covers this stage. The API key
/// layer inserts it into the request extensions; the throttle and quota
/// layers read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyIdentity {
    key_id: Arc<str>,
    plan: Option<Arc<str>>,
    created: Option<i64>,
    invalidate_cache: bool,
}

impl ApiKeyIdentity {
    /// An identity for key `key_id` in `plan`.
    pub fn new(key_id: impl Into<Arc<str>>, plan: Option<Arc<str>>) -> Self {
        Self {
            key_id: key_id.into(),
            plan,
            created: None,
            invalidate_cache: false,
        }
    }

    /// The same, noting whether the key may invalidate cache entries.
    pub fn allow_cache_invalidation(mut self, allowed: bool) -> Self {
        self.invalidate_cache = allowed;
        self
    }

    /// Whether the key may invalidate cache entries (`Cache-Control: max-age=0`).
    pub fn can_invalidate_cache(&self) -> bool {
        self.invalidate_cache
    }

    /// The same, noting when the key was created (Unix seconds): a quota's
    /// `offset` applies to the period that contains it.
    pub fn created_at(mut self, unix_secs: i64) -> Self {
        self.created = Some(unix_secs);
        self
    }

    /// When the key was created, if known.
    pub fn created(&self) -> Option<i64> {
        self.created
    }

    /// The key's id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The key's id, shared (a usage event keeps it without a copy).
    pub(crate) fn key_id_arc(&self) -> Arc<str> {
        self.key_id.clone()
    }

    /// The plan covering this request's stage.
    pub fn plan(&self) -> Option<&str> {
        self.plan.as_deref()
    }
}

/// What the route layer learned about a request, and behind a gateway the
/// API key it accepted: one request extension, allocated once. Read it with
/// `req.extensions().get::<RequestContext>()`.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub(crate) request_id: RequestId,
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) path_values: crate::route::table::PathValues,
    pub(crate) original_uri: Uri,
    /// Set by the API key layer when it admits a key.
    pub(crate) api_key: Option<ApiKeyIdentity>,
}

impl RequestContext {
    /// The request id.
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// The matched endpoint: stage, resource, method and settings.
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// A decoded path parameter (`petId` for `/pets/{petId}`; `proxy` for `{proxy+}`).
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.endpoint
            .params
            .iter()
            .position(|p| &**p == name)
            .and_then(|i| self.path_values.get(i, self.original_uri.path()))
    }

    /// A path parameter as the client sent it, still percent-encoded
    /// (`x%2Fy` where [`path_param`](Self::path_param) gives `x/y`): what
    /// an HTTP integration puts in its URL, so that the upstream gets the
    /// client's bytes. `None` when there is no such parameter.
    pub fn raw_path_param(&self, name: &str) -> Option<&str> {
        self.endpoint
            .params
            .iter()
            .position(|p| &**p == name)
            .and_then(|i| self.path_values.raw(i, self.original_uri.path()))
    }

    /// Every decoded path parameter as `(name, value)`, in path order.
    pub fn path_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.endpoint
            .params
            .iter()
            .map(|p| &**p)
            .enumerate()
            .filter_map(|(i, name)| {
                Some((name, self.path_values.get(i, self.original_uri.path())?))
            })
    }

    /// The URI as the client sent it, stage prefix included (what a SigV4
    /// signature covers).
    pub fn original_uri(&self) -> &Uri {
        &self.original_uri
    }

    /// The API key the gateway accepted for this request (`None`: the
    /// method asks for none, or the store failed open). The
    /// [`ApiKey`](crate::keys::ApiKey) layer puts it here when the request
    /// has a context, and in the extensions as an [`ApiKeyIdentity`] of its
    /// own when it works alone; [`Caller::of`] reads either.
    pub fn api_key(&self) -> Option<&ApiKeyIdentity> {
        self.api_key.as_ref()
    }
}

/// The accepted API key in `ext`: the request context's (behind a gateway),
/// or an [`ApiKeyIdentity`] extension of its own (a key layer used alone, or
/// a response).
pub(crate) fn api_key_of(ext: &Extensions) -> Option<&ApiKeyIdentity> {
    ext.get::<RequestContext>()
        .and_then(|c| c.api_key.as_ref())
        .or_else(|| ext.get::<ApiKeyIdentity>())
}

/// What a key extractor or key source sees of a request: its head, borrowed.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (behind a gateway: with the stage prefix stripped).
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions ([`RequestContext`],
    /// [`ClientAddr`](crate::throttle::ClientAddr), ...).
    pub extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `req`.
    pub fn of<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

/// The API key an authorizer found for a request (API Gateway's
/// `usageIdentifierKey`): with `api_key_options.source: authorizer`, the API
/// key layer takes the key from here instead of a header.
#[derive(Clone)]
pub struct UsageIdentifierKey(pub crate::secret::Secret);

impl fmt::Debug for UsageIdentifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UsageIdentifierKey(****)")
    }
}

/// Effective settings of one method of one stage: the stage's `settings`,
/// then `RESOURCE/*`, then `RESOURCE/METHOD`, each replacing the fields it names.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MethodSettings {
    /// This method's own bucket, if limited.
    pub throttle: Option<Rate>,
    /// Response caching.
    pub cache: CacheSettings,
    /// Whether an API key is required.
    pub api_key_required: bool,
    /// How callers are authorized.
    pub authorization: Authorization,
    /// The custom authorizer, with [`Authorization::Authorizer`].
    pub authorizer: Option<std::sync::Arc<str>>,
    /// Where requests go.
    pub integration: IntegrationConfig,
    /// The compiled mapping, if any.
    pub mapping: Option<std::sync::Arc<crate::mapping::CompiledMapping>>,
    /// The resource policy on source addresses, if any.
    pub policy: Option<std::sync::Arc<crate::edge::ResourcePolicy>>,
    /// CORS, if any.
    pub cors: Option<std::sync::Arc<crate::edge::Cors>>,
    /// Compression, if any.
    pub compression: Option<std::sync::Arc<crate::edge::Compression>>,
    /// The media types a mapped method treats as binary; `None` for none.
    pub binary_media_types: Option<std::sync::Arc<crate::mapping::BinaryMediaTypes>>,
    /// The request validation, if the method's validator checks anything.
    pub validation: Option<std::sync::Arc<crate::validate::MethodValidation>>,
}

/// One value per endpoint, indexed by [`Endpoint::index`]: the table every
/// layer keeps its per-method policy in (the cache's store and policy, a
/// mapping, an integration, a method's or a plan's method throttle).
///
/// An endpoint without a value (the method is not cached, has no mapping)
/// holds `None`; a lookup is one bounds-checked index. Cloning is a pointer
/// copy.
#[derive(Debug)]
pub(crate) struct PerEndpoint<T>(Arc<[Option<T>]>);

impl<T> Clone for PerEndpoint<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for PerEndpoint<T> {
    fn default() -> Self {
        Self(Arc::from(Vec::new()))
    }
}

impl<T> PerEndpoint<T> {
    /// A table with `f(endpoint)` for each of `endpoints` (at its index).
    pub(crate) fn build<'a>(
        endpoints: impl IntoIterator<Item = &'a Arc<Endpoint>>,
        mut f: impl FnMut(&Endpoint) -> Option<T>,
    ) -> Self {
        let mut table: Vec<Option<T>> = Vec::new();
        for e in endpoints {
            if table.len() <= e.index {
                table.resize_with(e.index + 1, || None);
            }
            table[e.index] = f(e);
        }
        Self(table.into())
    }

    /// A table of `len` endpoints, with `values` at their indexes.
    pub(crate) fn from_values(values: Vec<Option<T>>) -> Self {
        Self(values.into())
    }

    /// The value of the endpoint with `index`.
    pub(crate) fn at(&self, index: usize) -> Option<&T> {
        self.0.get(index)?.as_ref()
    }

    /// The value of the request's endpoint, from its [`RequestContext`].
    pub(crate) fn of(&self, ext: &Extensions) -> Option<&T> {
        self.at(ext.get::<RequestContext>()?.endpoint.index)
    }

    /// Whether no endpoint has a value (the layer can pass every request
    /// through without a lookup).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// Who made a request, as the layers that authenticate it found: the API key
/// it presented, the SigV4 credential it was signed with, the custom
/// authorizer's verdict. Any, several or none may be present.
///
/// Read with [`Caller::of`] from the request (or response) extensions; the
/// layers that partition or record by caller (the cache's `per_key`, cache
/// invalidation, mapping's `$context` values, usage events) all read it here.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The accepted API key.
    pub api_key: Option<&'a ApiKeyIdentity>,
    /// The verified SigV4 signer.
    pub sigv4: Option<&'a crate::auth::sigv4::SigV4Identity>,
    /// The custom authorizer's verdict.
    pub authorizer: Option<&'a crate::auth::authorizer::AuthorizerContext>,
}

impl<'a> Caller<'a> {
    /// The caller recorded in `ext` (the API key from the
    /// [`RequestContext`] or an [`ApiKeyIdentity`] extension).
    pub fn of(ext: &'a Extensions) -> Self {
        Self {
            api_key: api_key_of(ext),
            sigv4: ext.get(),
            authorizer: ext.get(),
        }
    }

    /// The principal (API Gateway's `$context.authorizer.principalId`): the
    /// SigV4 principal, else the authorizer's. `None` for API keys alone.
    pub fn principal(&self) -> Option<&'a str> {
        self.sigv4
            .map(|s| s.principal.as_str())
            .or_else(|| self.authorizer.map(|a| a.principal_id.as_str()))
    }

    /// Every identity the request carries, for partitioning (the cache's
    /// `per_key`): the API key id, the SigV4 principal and the authorizer's
    /// principal, those present, in that order, each tagged with its kind
    /// (`k`, `s`, `a`) so an API key id never collides with a principal of
    /// the same text. All of them, not the first: users of one app's API key
    /// told apart by an authorizer are different callers. Empty: anonymous.
    pub fn partition(&self) -> impl Iterator<Item = (&'static str, &'a str)> + use<'a> {
        let key = self.api_key.map(|k| ("k", k.key_id()));
        let sigv4 = self.sigv4.map(|s| ("s", s.principal.as_str()));
        let authorizer = self.authorizer.map(|a| ("a", a.principal_id.as_str()));
        key.into_iter().chain(sigv4).chain(authorizer)
    }

    /// Whether the API key or SigV4 credential may invalidate cache entries
    /// (API Gateway's `execute-api:InvalidateCache`).
    pub fn can_invalidate_cache(&self) -> bool {
        self.api_key
            .is_some_and(ApiKeyIdentity::can_invalidate_cache)
            || self.sigv4.is_some_and(|s| s.can_invalidate_cache)
    }
}
