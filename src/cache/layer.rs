//! The caching middleware: look up, coalesce misses, store what may be stored.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{Shared as SharedFuture, WeakShared};
use http::{Method, Request, Response};
use tower::{Layer, Service};

use super::coalesce::*;
use super::entry::*;
use super::status::*;
use super::store::{CacheKey, CacheStore, CachedResponse, push_part};
use super::{CacheKeyParam, CacheSettings};
use crate::body::{Body, BoxError};
use crate::clock::{Clock, SystemClock};
use crate::context::{Caller, PerEndpoint, RequestContext};
use crate::response::GatewayResponses;
use crate::usage::IntegrationLatency;

/// Caches responses; see the [module docs](crate::cache).
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

/// What a flight shares: the entry, and how long the backend took (the
/// leader's to report).
pub(super) type Landed = Option<(Arc<CachedResponse>, Option<IntegrationLatency>)>;
pub(super) type Flight = SharedFuture<Pin<Box<dyn Future<Output = Landed> + Send>>>;
pub(super) type WeakFlight = WeakShared<Pin<Box<dyn Future<Output = Landed> + Send>>>;

pub(super) struct Shared {
    pub(super) stores: Stores,
    pub(super) policy: Arc<CachePolicy>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) responses: GatewayResponses,
    pub(super) inflight: Mutex<HashMap<CacheKey, WeakFlight>>,
}

/// Where one gateway method's responses go, and how.
pub(crate) type EndpointCache = (Arc<dyn CacheStore>, Arc<CachePolicy>);

#[derive(Clone)]
pub(super) enum Stores {
    /// One store; every request's key is its method, path and query.
    Standalone(Arc<dyn CacheStore>),
    /// Each cached endpoint's stage store and policy, by endpoint index
    /// (resolved when the gateway is built); keys from each method's settings.
    Gateway(PerEndpoint<EndpointCache>),
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

    /// The store and policy of each endpoint whose method caches; when none
    /// does, a layer that only passes requests on.
    pub(crate) fn for_gateway(
        by_endpoint: PerEndpoint<EndpointCache>,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> Self {
        let stores = if by_endpoint.is_empty() {
            Stores::Off
        } else {
            Stores::Gateway(by_endpoint)
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
pub(super) enum Treatment {
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
pub(super) fn keyed_method<'a>(
    policy: &CachePolicy,
    method: &'a Method,
) -> Option<(&'a Method, bool)> {
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
    fn treatment<B>(&self, req: &Request<B>) -> Treatment {
        let method = req.method();
        match &self.stores {
            Stores::Standalone(store) => {
                let Some((shown, head)) = keyed_method(&self.policy, method) else {
                    return Treatment::Bypass(self.policy.headers);
                };
                let mut buf = Vec::with_capacity(64);
                push_part(&mut buf, shown.as_str().as_bytes());
                push_part(&mut buf, req.uri().path().as_bytes());
                push_part(&mut buf, req.uri().query().unwrap_or("").as_bytes());
                Treatment::Cache {
                    store: store.clone(),
                    key: buf.into(),
                    policy: self.policy.clone(),
                    head,
                }
            }
            Stores::Off => Treatment::Pass,
            Stores::Gateway(stores) => {
                let Some(ctx) = req.extensions().get::<RequestContext>() else {
                    return Treatment::Pass;
                };
                let endpoint = ctx.endpoint();
                let Some((store, policy)) = stores.at(endpoint.index()) else {
                    return Treatment::Pass;
                };
                let Some((shown, head)) = keyed_method(policy, method) else {
                    return Treatment::Bypass(policy.headers);
                };
                match gateway_key(req, ctx, &endpoint.settings().cache, shown) {
                    Some(key) => Treatment::Cache {
                        store: store.clone(),
                        key,
                        policy: policy.clone(),
                        head,
                    },
                    None => Treatment::Bypass(policy.headers),
                }
            }
        }
    }
}

/// Stage, method, resource, path parameters, the listed parameters and, with
/// `per_key`, the caller. `None` when `per_key` is set and the caller is unknown.
pub(super) fn gateway_key<B>(
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
        let who = Caller::of(req.extensions()).partition()?;
        push_part(&mut buf, who.0.as_bytes());
        push_part(&mut buf, who.1.as_bytes());
    }
    Some(buf.into())
}

pub(super) type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

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
        let kind = match self.shared.treatment(&req) {
            Treatment::Pass => Kind::Pass {
                future: self.inner.call(req),
                status: None,
                headers: false,
            },
            Treatment::Bypass(headers) => Kind::Pass {
                future: self.inner.call(req),
                status: Some(CacheStatus::Bypass),
                headers,
            },
            Treatment::Cache {
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
