//! The caching middleware: look up, coalesce misses, store what may be stored.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{FutureExt, Shared as SharedFuture, WeakShared};
use http::header::{AGE, CACHE_CONTROL, SET_COOKIE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use tower::{Layer, Service};

use super::store::{CacheKey, CacheStore, CachedResponse, MAX_ENTRY_BODY, push_part};
use super::{CacheKeyParam, CacheSettings};
use crate::auth::authorizer::AuthorizerContext;
use crate::auth::sigv4::SigV4Identity;
use crate::body::{Body, BoxError};
use crate::clock::{Clock, SystemClock};
use crate::context::{ApiKeyIdentity, RequestContext};
use crate::response::{GatewayResponseKind, GatewayResponses};
use crate::usage::IntegrationLatency;

/// The `x-cache` response header.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// What the cache did with a request; in the response extensions (for usage
/// metrics) and, unless turned off, the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Served from a fresh entry; the backend was not called.
    Hit,
    /// No fresh entry: the backend answered (once for all concurrent misses on the key).
    Miss,
    /// An expired entry stood in for a failing backend.
    Stale,
    /// Caching is on for the method but this request is not cacheable
    /// (its method, or no identity for a `per_key` cache).
    Bypass,
}

impl CacheStatus {
    /// The `x-cache` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "Hit",
            Self::Miss => "Miss",
            Self::Stale => "Stale",
            Self::Bypass => "Bypass",
        }
    }
}

/// Which statuses are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusFilter {
    /// 200 to 299 (the default).
    Success,
    /// Exactly these.
    Only(Vec<StatusCode>),
}

impl StatusFilter {
    fn allows(&self, status: StatusCode) -> bool {
        match self {
            Self::Success => status.is_success(),
            Self::Only(list) => list.contains(&status),
        }
    }
}

/// How the layer caches when it works alone, and the gateway's defaults for
/// what the config does not say.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CachePolicy {
    /// How long an entry is fresh. Default 300 s (API Gateway's).
    pub ttl: Duration,
    /// Methods cached standalone. Default GET and HEAD (HEAD is served from
    /// the GET entry). In a gateway, GET and HEAD of methods with caching on.
    pub methods: Vec<Method>,
    /// Statuses stored. Default 2xx.
    pub statuses: StatusFilter,
    /// Whether an upstream `Cache-Control: max-age` (or `s-maxage`) below the
    /// TTL shortens the entry. Default true.
    pub honor_max_age: bool,
    /// Whether responses carry `x-cache` and, on hits, `Age`. Default true.
    pub headers: bool,
    /// How long past its expiry an entry may answer instead of a failing
    /// backend (an error, or a 5xx response), marked [`CacheStatus::Stale`].
    /// Default zero: off. The store must keep entries that long past expiry
    /// ([`MokaCacheStore`](super::MokaCacheStore) keeps them two hours).
    pub stale_if_error: Duration,
    /// Whether a client's `Cache-Control: max-age=0` refreshes the entry only
    /// when the caller may invalidate (see [`CacheInvalidator`]). Default
    /// true, as API Gateway's "require authorization".
    pub require_authorization: bool,
    /// What an unauthorized `Cache-Control: max-age=0` gets.
    pub unauthorized: UnauthorizedStrategy,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            methods: vec![Method::GET, Method::HEAD],
            statuses: StatusFilter::Success,
            honor_max_age: true,
            headers: true,
            stale_if_error: Duration::ZERO,
            require_authorization: true,
            unauthorized: UnauthorizedStrategy::default(),
        }
    }
}

impl CachePolicy {
    /// The policy of one gateway method: GET and HEAD, plus the method itself
    /// when its own override turned caching on.
    pub(crate) fn from_settings(s: &CacheSettings, method: Option<&Method>) -> Self {
        let mut methods = vec![Method::GET, Method::HEAD];
        if s.method_override
            && let Some(m) = method
            && !methods.contains(m)
        {
            methods.push(m.clone());
        }
        Self {
            ttl: s.ttl,
            methods,
            statuses: if s.statuses.is_empty() {
                StatusFilter::Success
            } else {
                StatusFilter::Only(s.statuses.clone())
            },
            honor_max_age: s.honor_max_age,
            headers: s.headers,
            stale_if_error: s.stale_if_error,
            require_authorization: s.require_authorization,
            unauthorized: s.unauthorized,
        }
    }
}

/// What a `Cache-Control: max-age=0` from a caller who may not invalidate
/// gets: API Gateway's `unauthorizedCacheControlHeaderStrategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[non_exhaustive]
pub enum UnauthorizedStrategy {
    /// Refused: 403 `ACCESS_DENIED`.
    #[serde(rename = "FAIL_WITH_403")]
    FailWith403,
    /// Served as if the header were absent, with a `Warning` header saying it
    /// was ignored (the default).
    #[default]
    #[serde(rename = "SUCCEED_WITH_RESPONSE_HEADER")]
    SucceedWithResponseHeader,
    /// Served as if the header were absent.
    #[serde(rename = "SUCCEED_WITHOUT_RESPONSE_HEADER")]
    SucceedWithoutResponseHeader,
}

/// A request extension that lets its request invalidate a cache entry with
/// `Cache-Control: max-age=0`. The API key layer and the SigV4 layer grant it
/// through [`ApiKeyIdentity::can_invalidate_cache`] and
/// [`SigV4Identity::can_invalidate_cache`]; insert this from your own layer
/// (after an authorizer, say) to grant it otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheInvalidator;

/// The `Warning` an ignored `Cache-Control: max-age=0` gets.
const IGNORED_WARNING: &str =
    "199 - \"Cache-Control max-age=0 ignored: the caller may not invalidate the cache\"";

impl CachePolicy {
    /// The default policy with `ttl`.
    pub fn with_ttl(ttl: Duration) -> Self {
        Self {
            ttl,
            ..Self::default()
        }
    }
}

/// Caches responses; see the [module docs](crate::cache).
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

/// What a flight shares: the entry, and how long the backend took (the
/// leader's to report).
type Landed = Option<(Arc<CachedResponse>, Option<IntegrationLatency>)>;
type Flight = SharedFuture<Pin<Box<dyn Future<Output = Landed> + Send>>>;
type WeakFlight = WeakShared<Pin<Box<dyn Future<Output = Landed> + Send>>>;

struct Shared {
    stores: Stores,
    policy: Arc<CachePolicy>,
    clock: Arc<dyn Clock>,
    responses: GatewayResponses,
    inflight: Mutex<HashMap<CacheKey, WeakFlight>>,
}

/// Where one gateway method's responses go, and how.
pub(crate) type EndpointCache = (Arc<dyn CacheStore>, Arc<CachePolicy>);

#[derive(Clone)]
enum Stores {
    /// One store; every request's key is its method, path and query.
    Standalone(Arc<dyn CacheStore>),
    /// Each cached endpoint's stage store and policy, by endpoint index
    /// (resolved when the gateway is built); keys from each method's settings.
    Gateway(Arc<[Option<EndpointCache>]>),
    /// A gateway whose config caches nothing: every request passes untouched.
    Off,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.shared.stores {
            Stores::Standalone(_) => "standalone",
            Stores::Gateway(_) => "gateway",
            Stores::Off => "off",
        };
        f.debug_struct("CacheLayer")
            .field("mode", &mode)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// Caches every request the policy allows in `store`, keyed by method, path and query.
    pub fn new(store: Arc<dyn CacheStore>, policy: CachePolicy) -> Self {
        Self::build(
            Stores::Standalone(store),
            Arc::new(policy),
            Arc::new(SystemClock),
            GatewayResponses::default(),
        )
    }

    /// `by_endpoint[i]` is the store and policy of endpoint `i` when that
    /// method caches; when none does, a layer that only passes requests on.
    pub(crate) fn for_gateway(
        by_endpoint: Vec<Option<EndpointCache>>,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> Self {
        let stores = if by_endpoint.iter().any(Option::is_some) {
            Stores::Gateway(by_endpoint.into())
        } else {
            Stores::Off
        };
        Self::build(stores, Arc::default(), clock, responses)
    }

    fn build(
        stores: Stores,
        policy: Arc<CachePolicy>,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                stores,
                policy,
                clock,
                responses,
                inflight: Mutex::default(),
            }),
        }
    }

    /// The same layer reading time from `clock` (tests use a manual clock).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let s = &self.shared;
        Self::build(
            s.stores.clone(),
            s.policy.clone(),
            clock,
            s.responses.clone(),
        )
    }

    /// The same layer answering with `responses` (the 403 of
    /// [`UnauthorizedStrategy::FailWith403`]).
    pub fn responses(self, responses: GatewayResponses) -> Self {
        let s = &self.shared;
        Self::build(
            s.stores.clone(),
            s.policy.clone(),
            s.clock.clone(),
            responses,
        )
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The caching middleware.
#[derive(Clone)]
pub struct Cache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What the layer does with one request.
enum Plan {
    /// Not cached here at all: straight through, no header.
    Pass,
    /// Caching is on, but not for this request; `true` for an `x-cache` header.
    Bypass(bool),
    /// Look up `key` in `store`; on a miss, store as `policy` says.
    Cache {
        store: Arc<dyn CacheStore>,
        key: CacheKey,
        policy: Arc<CachePolicy>,
        head: bool,
    },
}

/// The method an entry is stored under (HEAD is answered from GET's) and
/// whether the request is a HEAD; `None` when `policy` does not cache `method`.
fn keyed_method<'a>(policy: &CachePolicy, method: &'a Method) -> Option<(&'a Method, bool)> {
    if !policy.methods.contains(method) {
        return None;
    }
    if method == Method::HEAD {
        Some((&Method::GET, true))
    } else {
        Some((method, false))
    }
}

impl Shared {
    fn plan<B>(&self, req: &Request<B>) -> Plan {
        let method = req.method();
        match &self.stores {
            Stores::Standalone(store) => {
                let Some((shown, head)) = keyed_method(&self.policy, method) else {
                    return Plan::Bypass(self.policy.headers);
                };
                let mut buf = Vec::with_capacity(64);
                push_part(&mut buf, shown.as_str().as_bytes());
                push_part(&mut buf, req.uri().path().as_bytes());
                push_part(&mut buf, req.uri().query().unwrap_or("").as_bytes());
                Plan::Cache {
                    store: store.clone(),
                    key: buf.into(),
                    policy: self.policy.clone(),
                    head,
                }
            }
            Stores::Off => Plan::Pass,
            Stores::Gateway(stores) => {
                let Some(ctx) = req.extensions().get::<RequestContext>() else {
                    return Plan::Pass;
                };
                let endpoint = ctx.endpoint();
                let Some(Some((store, policy))) = stores.get(endpoint.index()) else {
                    return Plan::Pass;
                };
                let Some((shown, head)) = keyed_method(policy, method) else {
                    return Plan::Bypass(policy.headers);
                };
                match gateway_key(req, ctx, &endpoint.settings().cache, shown) {
                    Some(key) => Plan::Cache {
                        store: store.clone(),
                        key,
                        policy: policy.clone(),
                        head,
                    },
                    None => Plan::Bypass(policy.headers),
                }
            }
        }
    }
}

/// Stage, method, resource, path parameters, the listed parameters and, with
/// `per_key`, the caller. `None` when `per_key` is set and the caller is unknown.
fn gateway_key<B>(
    req: &Request<B>,
    ctx: &RequestContext,
    settings: &CacheSettings,
    method: &Method,
) -> Option<CacheKey> {
    let endpoint = ctx.endpoint();
    let mut buf = Vec::with_capacity(128);
    push_part(&mut buf, endpoint.stage().as_bytes());
    push_part(&mut buf, method.as_str().as_bytes());
    push_part(&mut buf, endpoint.resource().as_bytes());
    for (name, value) in ctx.path_params() {
        push_part(&mut buf, name.as_bytes());
        push_part(&mut buf, value.as_bytes());
    }
    for param in &settings.key {
        match param {
            CacheKeyParam::Query(name) => {
                push_part(&mut buf, b"q");
                push_part(&mut buf, name.as_bytes());
                let query = ctx.original_uri().query().unwrap_or("");
                for pair in query.split('&') {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    if percent_encoding::percent_decode_str(k).eq(name.bytes()) {
                        push_part(&mut buf, v.as_bytes());
                    }
                }
            }
            CacheKeyParam::Header(name) => {
                push_part(&mut buf, b"h");
                push_part(&mut buf, name.as_str().as_bytes());
                for v in req.headers().get_all(name) {
                    push_part(&mut buf, v.as_bytes());
                }
            }
            CacheKeyParam::Path(name) => {
                push_part(&mut buf, b"p");
                push_part(&mut buf, name.as_bytes());
                push_part(&mut buf, ctx.path_param(name).unwrap_or("").as_bytes());
            }
        }
    }
    if settings.per_key {
        let ext = req.extensions();
        let who = if let Some(k) = ext.get::<ApiKeyIdentity>() {
            ("k", k.key_id())
        } else if let Some(s) = ext.get::<SigV4Identity>() {
            ("s", s.principal.as_str())
        } else if let Some(a) = ext.get::<AuthorizerContext>() {
            ("a", a.principal_id.as_str())
        } else {
            return None;
        };
        push_part(&mut buf, who.0.as_bytes());
        push_part(&mut buf, who.1.as_bytes());
    }
    Some(buf.into())
}

/// Whether a response may be stored, and for how long.
fn storable(
    policy: &CachePolicy,
    status: StatusCode,
    headers: &http::HeaderMap,
) -> Option<Duration> {
    if !policy.statuses.allows(status) || headers.contains_key(SET_COOKIE) {
        return None;
    }
    let mut ttl = policy.ttl;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            let name = name.trim();
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("private") {
                return None;
            }
            if policy.honor_max_age
                && (name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage"))
                && let Ok(secs) = arg.trim().trim_matches('"').parse::<u64>()
            {
                ttl = ttl.min(Duration::from_secs(secs));
            }
        }
    }
    (!ttl.is_zero()).then_some(ttl)
}

/// The response for a stored entry.
fn from_entry(
    entry: &CachedResponse,
    status: CacheStatus,
    head: bool,
    now: u64,
    headers: bool,
) -> Response<Body> {
    let body = if head {
        Body::empty()
    } else {
        Body::full(entry.body().clone())
    };
    tracing::debug!(
        layer = "cache",
        decision = status.as_str(),
        "cache answered"
    );
    let mut res = Response::new(body);
    *res.status_mut() = entry.status();
    *res.headers_mut() = entry.headers().clone();
    if headers {
        res.headers_mut()
            .insert(X_CACHE.clone(), HeaderValue::from_static(status.as_str()));
        if status != CacheStatus::Miss {
            let age = now.saturating_sub(entry.stored_at()) / 1_000_000_000;
            res.headers_mut().insert(AGE, HeaderValue::from(age));
        }
    }
    res.extensions_mut().insert(status);
    res
}

fn mark(mut res: Response<Body>, status: CacheStatus, headers: bool) -> Response<Body> {
    tracing::debug!(
        layer = "cache",
        decision = status.as_str(),
        "cache passed the request on"
    );
    if headers {
        res.headers_mut()
            .insert(X_CACHE.clone(), HeaderValue::from_static(status.as_str()));
    }
    res.extensions_mut().insert(status);
    res
}

/// A body that first yields the frames already read, then the rest.
struct Prefixed<B> {
    read: std::collections::VecDeque<http_body::Frame<Bytes>>,
    rest: B,
}

impl<B> http_body::Body for Prefixed<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// The response rebuilt around the frames read so far and the rest of its body.
fn unbuffered<B>(
    parts: http::response::Parts,
    chunks: Vec<Bytes>,
    held: Option<http_body::Frame<Bytes>>,
    rest: B,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let read = chunks
        .into_iter()
        .map(http_body::Frame::data)
        .chain(held)
        .collect();
    Response::from_parts(parts, Body::new(Prefixed { read, rest }))
}

/// What a flight left for the request that started it when there is nothing
/// to share: the inner service's error, or a response too big to buffer.
type LeaderSlot<E> = Arc<Mutex<Option<Result<Response<Body>, E>>>>;

/// Reads `res`'s body up to [`MAX_ENTRY_BODY`]: the whole response, or the
/// response rebuilt around what was read when it is bigger.
async fn buffer(res: Response<Body>) -> Result<(http::response::Parts, Bytes), Response<Body>> {
    let (parts, mut body) = res.into_parts();
    if body.size_hint().lower() > MAX_ENTRY_BODY as u64 {
        return Err(Response::from_parts(parts, body));
    }
    // Chunks are kept as they come: a one-chunk body is stored without a copy.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    loop {
        match body.frame().await {
            None if chunks.len() <= 1 => return Ok((parts, chunks.pop().unwrap_or_default())),
            None => return Ok((parts, chunks.concat().into())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    len += data.len();
                    chunks.push(data);
                    if len > MAX_ENTRY_BODY {
                        return Err(unbuffered(parts, chunks, None, body));
                    }
                }
                // Trailers: not something an entry keeps; passed on, uncached.
                Err(trailers) => return Err(unbuffered(parts, chunks, Some(trailers), body)),
            },
            Some(Err(e)) => return Err(unbuffered(parts, chunks, None, Failed(Some(e)))),
        }
    }
}

/// A body that fails with the error another body failed with.
struct Failed(Option<BoxError>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Cache`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Pass { #[pin] future: F, status: Option<CacheStatus>, headers: bool },
        Cache { future: BoxedFuture<E> },
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
            KindProj::Pass {
                future,
                status,
                headers,
            } => {
                let res = std::task::ready!(future.poll(cx))?.map(Body::new);
                Poll::Ready(Ok(match status.take() {
                    Some(s) => mark(res, s, *headers),
                    None => res,
                }))
            }
            KindProj::Cache { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Cache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
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
        let kind = match self.shared.plan(&req) {
            Plan::Pass => Kind::Pass {
                future: self.inner.call(req),
                status: None,
                headers: false,
            },
            Plan::Bypass(headers) => Kind::Pass {
                future: self.inner.call(req),
                status: Some(CacheStatus::Bypass),
                headers,
            },
            Plan::Cache {
                store,
                key,
                policy,
                head,
            } => {
                // The instance polled ready goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let lookup = Lookup {
                    shared: self.shared.clone(),
                    store,
                    key,
                    policy,
                    head,
                };
                Kind::Cache {
                    future: Box::pin(lookup.run(inner, req)),
                }
            }
        };
        ResponseFuture { kind }
    }
}

/// In-flight misses tracked before abandoned ones are swept out.
const PRUNE_INFLIGHT_AT: usize = 1024;

/// One cacheable request.
struct Lookup {
    shared: Arc<Shared>,
    store: Arc<dyn CacheStore>,
    key: CacheKey,
    policy: Arc<CachePolicy>,
    head: bool,
}

/// Whether the request's `Cache-Control` says `max-age=0`.
fn asks_refresh(headers: &http::HeaderMap) -> bool {
    headers.get_all(CACHE_CONTROL).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value.split(',').any(|directive| {
                let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
                name.trim().eq_ignore_ascii_case("max-age")
                    && arg.trim().trim_matches('"').parse::<u64>() == Ok(0)
            })
        })
    })
}

/// Whether the request's caller may invalidate cache entries.
fn may_invalidate(ext: &http::Extensions) -> bool {
    ext.get::<ApiKeyIdentity>()
        .is_some_and(ApiKeyIdentity::can_invalidate_cache)
        || ext
            .get::<SigV4Identity>()
            .is_some_and(|s| s.can_invalidate_cache)
        || ext.get::<CacheInvalidator>().is_some()
}

/// Whether a backend answer counts as a failure for stale-if-error.
fn failed(status: StatusCode) -> bool {
    status.is_server_error()
}

impl Lookup {
    async fn run<S, ReqB, ResB>(
        self,
        mut inner: S,
        req: Request<ReqB>,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let now = self.shared.clock.unix_nanos();
        let mut refresh = false;
        let mut ignored = false;
        if asks_refresh(req.headers()) {
            if !self.policy.require_authorization || may_invalidate(req.extensions()) {
                refresh = true;
            } else {
                match self.policy.unauthorized {
                    UnauthorizedStrategy::FailWith403 => {
                        return Ok(self.shared.responses.respond_with_message(
                            GatewayResponseKind::AccessDenied,
                            "User is not authorized to invalidate the cache",
                        ));
                    }
                    UnauthorizedStrategy::SucceedWithResponseHeader => ignored = true,
                    UnauthorizedStrategy::SucceedWithoutResponseHeader => {}
                }
            }
        }
        let res = self.answer(&mut inner, req, now, refresh).await?;
        Ok(if ignored {
            let mut res = res;
            res.headers_mut().append(
                http::header::WARNING,
                HeaderValue::from_static(IGNORED_WARNING),
            );
            res
        } else {
            res
        })
    }

    async fn answer<S, ReqB, ResB>(
        &self,
        inner: &mut S,
        req: Request<ReqB>,
        now: u64,
        refresh: bool,
    ) -> Result<Response<Body>, S::Error>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ReqB: Send + 'static,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let headers = self.policy.headers;
        let grace = self.policy.stale_if_error;
        // An entry that may stand in for a failing backend.
        let mut stale = None;
        match self.store.get(&self.key).await {
            Ok(Some(entry)) => {
                if !refresh && entry.is_fresh(now) {
                    return Ok(from_entry(
                        &entry,
                        CacheStatus::Hit,
                        self.head,
                        now,
                        headers,
                    ));
                }
                if !grace.is_zero() && entry.is_fresh(now.saturating_sub(duration_nanos(grace))) {
                    stale = Some(entry);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cache store failed; answering as a miss"),
        }
        let stand_in = |stale: &Option<Arc<CachedResponse>>| {
            stale
                .as_ref()
                .map(|e| from_entry(e, CacheStatus::Stale, self.head, now, headers))
        };
        // A response this request got from the backend itself.
        let direct = |res: Result<Response<Body>, S::Error>| match res {
            Err(e) => stand_in(&stale).ok_or(e),
            Ok(res) if failed(res.status()) => {
                Ok(stand_in(&stale).unwrap_or_else(|| mark(res, CacheStatus::Miss, headers)))
            }
            Ok(res) => Ok(mark(res, CacheStatus::Miss, headers)),
        };
        if self.head {
            // HEAD is served from a GET entry; a HEAD miss only asks the backend.
            return direct(inner.call(req).await.map(|r| r.map(Body::new)));
        }
        let slot: LeaderSlot<S::Error> = Arc::default();
        let mut req = Some(req);
        let flight = {
            let mut map = self
                .shared
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match map.get(&self.key).and_then(WeakShared::upgrade) {
                Some(flight) => flight,
                None => {
                    let call = inner.call(req.take().expect("taken only here"));
                    let flight: Flight =
                        self.fly(call, slot.clone(), now, refresh).boxed().shared();
                    if map.len() >= PRUNE_INFLIGHT_AT {
                        // Flights whose every caller went away never removed themselves.
                        map.retain(|_, weak| weak.upgrade().is_some());
                    }
                    if let Some(weak) = flight.downgrade() {
                        map.insert(self.key.clone(), weak);
                    }
                    flight
                }
            }
        };
        match flight.await {
            Some((entry, _)) if failed(entry.status()) && stale.is_some() => {
                Ok(stand_in(&stale).expect("checked"))
            }
            Some((entry, took)) => {
                let mut res = from_entry(&entry, CacheStatus::Miss, false, now, headers);
                // The request that made the call reports its latency.
                if let (Some(took), None) = (took, &req) {
                    res.extensions_mut().insert(took);
                }
                Ok(res)
            }
            None => {
                let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                match (taken, req) {
                    // The flight was ours: its error, or its unbuffered response.
                    (Some(res), _) => direct(res),
                    // Another request's flight had nothing to share: ask ourselves.
                    (None, Some(req)) => direct(inner.call(req).await.map(|r| r.map(Body::new))),
                    // Not reached: a flight that shares nothing fills its leader's slot.
                    (None, None) => {
                        let mut res = Response::new(Body::empty());
                        *res.status_mut() = StatusCode::BAD_GATEWAY;
                        Ok(res)
                    }
                }
            }
        }
    }

    /// The one backend call of a flight: buffer, store if allowed, share. A
    /// refresh whose response may not be stored removes the old entry.
    fn fly<F, ResB, E>(
        &self,
        call: F,
        slot: LeaderSlot<E>,
        now: u64,
        refresh: bool,
    ) -> impl Future<Output = Landed> + Send + 'static
    where
        F: Future<Output = Result<Response<ResB>, E>> + Send + 'static,
        E: Send + 'static,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let shared = self.shared.clone();
        let policy = self.policy.clone();
        let store = self.store.clone();
        let key = self.key.clone();
        async move {
            let outcome = match call.await {
                Err(e) => {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(e));
                    None
                }
                Ok(res) => {
                    let res = res.map(Body::new);
                    let keep = storable(&policy, res.status(), res.headers());
                    match buffer(res).await {
                        Err(res) => {
                            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ok(res));
                            None
                        }
                        Ok((parts, body)) => {
                            let took = parts.extensions.get::<IntegrationLatency>().copied();
                            let entry = Arc::new(CachedResponse::new(
                                parts.status,
                                parts.headers,
                                body,
                                now,
                                keep.unwrap_or(Duration::ZERO),
                            ));
                            let stored = match keep {
                                Some(_) => store.put(key.clone(), entry.clone()).await,
                                None if refresh => store.invalidate(&key).await,
                                None => Ok(()),
                            };
                            if let Err(e) = stored {
                                tracing::warn!(error = %e, "cache store failed to update an entry");
                            }
                            Some((entry, took))
                        }
                    }
                }
            };
            shared
                .inflight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
            outcome
        }
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
