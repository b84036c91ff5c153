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
use crate::auth::authorizer::AuthorizerContext;
use crate::auth::sigv4::SigV4Identity;
use crate::body::{Body, BoxError};
use crate::clock::{Clock, SystemClock};
use crate::context::{ApiKeyIdentity, RequestContext};
use crate::gateway::{CacheKeyParam, CacheSettings};

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
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(300),
            methods: vec![Method::GET, Method::HEAD],
            statuses: StatusFilter::Success,
            honor_max_age: true,
            headers: true,
        }
    }
}

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

type Flight = SharedFuture<Pin<Box<dyn Future<Output = Option<Arc<CachedResponse>>> + Send>>>;
type WeakFlight = WeakShared<Pin<Box<dyn Future<Output = Option<Arc<CachedResponse>>> + Send>>>;

struct Shared {
    stores: Stores,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    inflight: Mutex<HashMap<CacheKey, WeakFlight>>,
}

#[derive(Clone)]
enum Stores {
    /// One store; every request's key is its method, path and query.
    Standalone(Arc<dyn CacheStore>),
    /// Each cached endpoint's stage store, by endpoint index (resolved when
    /// the gateway is built); keys and TTLs from each method's settings.
    Gateway(Arc<[Option<Arc<dyn CacheStore>>]>),
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
        Self::build(Stores::Standalone(store), policy, Arc::new(SystemClock))
    }

    /// `by_endpoint[i]` is the store of endpoint `i` when that method caches;
    /// when none does, a layer that only passes requests on.
    pub(crate) fn for_gateway(
        by_endpoint: Vec<Option<Arc<dyn CacheStore>>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let stores = if by_endpoint.iter().any(Option::is_some) {
            Stores::Gateway(by_endpoint.into())
        } else {
            Stores::Off
        };
        Self::build(stores, CachePolicy::default(), clock)
    }

    fn build(stores: Stores, policy: CachePolicy, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                stores,
                policy,
                clock,
                inflight: Mutex::default(),
            }),
        }
    }

    /// The same layer reading time from `clock` (tests use a manual clock).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self::build(
            self.shared.stores.clone(),
            self.shared.policy.clone(),
            clock,
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
    /// Caching is on, but not for this request.
    Bypass,
    /// Look up `key` in `store`; on a miss, store for `ttl`.
    Cache {
        store: Arc<dyn CacheStore>,
        key: CacheKey,
        ttl: Duration,
        head: bool,
    },
}

impl Shared {
    fn plan<B>(&self, req: &Request<B>) -> Plan {
        let method = req.method();
        match &self.stores {
            Stores::Standalone(store) => {
                if !self.policy.methods.contains(method) {
                    return Plan::Bypass;
                }
                let head = method == Method::HEAD;
                let shown = if head { &Method::GET } else { method };
                let mut buf = Vec::with_capacity(64);
                push_part(&mut buf, shown.as_str().as_bytes());
                push_part(&mut buf, req.uri().path().as_bytes());
                push_part(&mut buf, req.uri().query().unwrap_or("").as_bytes());
                Plan::Cache {
                    store: store.clone(),
                    key: buf.into(),
                    ttl: self.policy.ttl,
                    head,
                }
            }
            Stores::Off => Plan::Pass,
            Stores::Gateway(stores) => {
                let Some(ctx) = req.extensions().get::<RequestContext>() else {
                    return Plan::Pass;
                };
                let endpoint = ctx.endpoint();
                let Some(Some(store)) = stores.get(endpoint.index()) else {
                    return Plan::Pass;
                };
                let settings = &endpoint.settings().cache;
                let head = match *method {
                    Method::GET => false,
                    Method::HEAD => true,
                    _ => return Plan::Bypass,
                };
                match gateway_key(req, ctx, settings) {
                    Some(key) => Plan::Cache {
                        store: store.clone(),
                        key,
                        ttl: settings.ttl,
                        head,
                    },
                    None => Plan::Bypass,
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
) -> Option<CacheKey> {
    let endpoint = ctx.endpoint();
    let mut buf = Vec::with_capacity(128);
    push_part(&mut buf, endpoint.stage().as_bytes());
    push_part(&mut buf, b"GET");
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
    ttl: Duration,
) -> Option<Duration> {
    if !policy.statuses.allows(status) || headers.contains_key(SET_COOKIE) {
        return None;
    }
    let mut ttl = ttl;
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
        let headers = self.shared.policy.headers;
        let kind = match self.shared.plan(&req) {
            Plan::Pass => Kind::Pass {
                future: self.inner.call(req),
                status: None,
                headers,
            },
            Plan::Bypass => Kind::Pass {
                future: self.inner.call(req),
                status: Some(CacheStatus::Bypass),
                headers,
            },
            Plan::Cache {
                store,
                key,
                ttl,
                head,
            } => {
                // The instance polled ready goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let lookup = Lookup {
                    shared: self.shared.clone(),
                    store,
                    key,
                    ttl,
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
    ttl: Duration,
    head: bool,
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
        let headers = self.shared.policy.headers;
        let now = self.shared.clock.unix_nanos();
        match self.store.get(&self.key).await {
            Ok(Some(entry)) if entry.is_fresh(now) => {
                return Ok(from_entry(
                    &entry,
                    CacheStatus::Hit,
                    self.head,
                    now,
                    headers,
                ));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cache store failed; answering as a miss"),
        }
        if self.head {
            // HEAD is served from a GET entry; a HEAD miss only asks the backend.
            let res = inner.call(req).await?.map(Body::new);
            return Ok(mark(res, CacheStatus::Miss, headers));
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
                    let flight: Flight = self.fly(call, slot.clone(), now).boxed().shared();
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
            Some(entry) => Ok(from_entry(&entry, CacheStatus::Miss, false, now, headers)),
            None => {
                let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                match (taken, req) {
                    // The flight was ours: its error, or its unbuffered response.
                    (Some(Ok(res)), _) => Ok(mark(res, CacheStatus::Miss, headers)),
                    (Some(Err(e)), _) => Err(e),
                    // Another request's flight had nothing to share: ask ourselves.
                    (None, Some(req)) => {
                        let res = inner.call(req).await?.map(Body::new);
                        Ok(mark(res, CacheStatus::Miss, headers))
                    }
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

    /// The one backend call of a flight: buffer, store if allowed, share.
    fn fly<F, ResB, E>(
        &self,
        call: F,
        slot: LeaderSlot<E>,
        now: u64,
    ) -> impl Future<Output = Option<Arc<CachedResponse>>> + Send + 'static
    where
        F: Future<Output = Result<Response<ResB>, E>> + Send + 'static,
        E: Send + 'static,
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let shared = self.shared.clone();
        let store = self.store.clone();
        let key = self.key.clone();
        let ttl = self.ttl;
        async move {
            let outcome = match call.await {
                Err(e) => {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Err(e));
                    None
                }
                Ok(res) => {
                    let res = res.map(Body::new);
                    let keep = storable(&shared.policy, res.status(), res.headers(), ttl);
                    match buffer(res).await {
                        Err(res) => {
                            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(Ok(res));
                            None
                        }
                        Ok((parts, body)) => {
                            let entry = Arc::new(CachedResponse::new(
                                parts.status,
                                parts.headers,
                                body,
                                now,
                                keep.unwrap_or(Duration::ZERO),
                            ));
                            if keep.is_some()
                                && let Err(e) = store.put(key.clone(), entry.clone()).await
                            {
                                tracing::warn!(error = %e, "cache store failed to keep a response");
                            }
                            Some(entry)
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
