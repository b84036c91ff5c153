//! `GatewayService`: the gateway's steps composed into one service.
//!
//! The steps are the layers' own: usage, route, the resource policy,
//! SigV4, custom authorizer, API key, throttle, meter (quota), cache,
//! mapping, integration, in that order. Each decision is the layer's (or,
//! for the policy, [`ResourcePolicy`](crate::edge::ResourcePolicy)'s) code;
//! what this service adds is how they are strung together.
//!
//! - **Inline** (the common case): an endpoint with no authorization, no
//!   cache, no mapping and no integration of its own, whose key, rate and
//!   counter stores answer without waiting (the in-memory ones always do).
//!   Usage, route, key, throttle and meter decide in `call`, one after the
//!   other, and the inner service's own future is polled directly. One
//!   request context, no boxed future, no clone of a layer per request.
//! - **Through the layers**: the first step that cannot decide at once (a
//!   Redis store, SigV4, an authorizer), and everything after it, runs as
//!   the layer services themselves, in one boxed future. So does the tail
//!   of an endpoint with a cache, a mapping or an integration. Steps
//!   already decided are not repeated.
//!
//! Both ways give the same responses, headers and usage events (the test
//! suite runs configs of both kinds). Behind a gateway the response does
//! not carry [`ApiKeyIdentity`](crate::ApiKeyIdentity) or
//! [`IntegrationLatency`] in its extensions: the usage event gets them
//! directly.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, CONTENT_LENGTH, ORIGIN, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::handle::{InFlight, Shared};
use crate::ApiKeyIdentity;
use crate::body::{Body, BoxError};
use crate::context::{Endpoint, RequestContext, RequestHead, RequestId};
use crate::edge::{Compression, Cors};
use crate::gate::{Decision, Finish};
use crate::integration::Integrations;
use crate::response::{GatewayResponseKind, GatewayResponses, ResponseFacts};
use crate::route::future::insert_request_id;
use crate::route::service::Routing;
use crate::route::table::Lookup;
use crate::throttle::ClientAddr;
use crate::throttle::service::Stamp;
use crate::usage::IntegrationLatency;
use crate::usage::layer::{Guard, Pending};

/// How an endpoint's requests go through the gateway; see the
/// [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// Every step inline; the inner service is called directly.
    Inline,
    /// Key, throttle and meter inline; the cache, mapping and integration
    /// layers after them.
    Tail,
    /// SigV4 or an authorizer first: every step after routing through the
    /// layers.
    Layered,
}

/// A service wrapped by a [`Gateway`](crate::Gateway). Clone it freely
/// (a pointer copy and a clone of the inner service): clones share every
/// limit and cache.
///
/// It runs the gateway's steps itself, inline in `call` while each decides
/// at once, and through the layer services from the first that must wait;
/// see [how a request goes through](crate::gateway#how-a-request-goes-through).
#[derive(Clone)]
pub struct GatewayService<S> {
    pub(super) shared: Arc<Shared>,
    pub(super) inner: S,
}

impl<S: fmt::Debug> fmt::Debug for GatewayService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// A boxed response future of the layers.
type Boxed<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

/// Where the layers take over.
#[derive(Clone, Copy)]
enum Takeover {
    SigV4,
    ApiKey,
    Throttle,
    Meter,
    Cache,
}

/// The layers from `from` on, around the inner instance that was polled
/// ready (a clone stays in its place, as tower advises), called with `req`
/// and boxed.
fn layers<S, ResB>(s: &Shared, inner: &mut S, from: Takeover, req: Request<Body>) -> Boxed<S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let clone = inner.clone();
    let inner = std::mem::replace(inner, clone);
    let timing = s.usage.is_on().then(|| s.clock.clone());
    let integrated = Integrations::new(inner, s.integrations.clone(), timing);
    let tail = s
        .validation
        .layer(s.cache.layer(s.mapping.layer(integrated)));
    match from {
        Takeover::Cache => Box::pin({ tail }.call(req)),
        Takeover::Meter => Box::pin(s.meter.layer(tail).call(req)),
        Takeover::Throttle => Box::pin(s.throttle.layer(s.meter.layer(tail)).call(req)),
        Takeover::ApiKey => Box::pin(
            s.keys
                .layer(s.throttle.layer(s.meter.layer(tail)))
                .call(req),
        ),
        Takeover::SigV4 => Box::pin(
            s.sigv4
                .layer(
                    s.authorizers
                        .layer(s.keys.layer(s.throttle.layer(s.meter.layer(tail)))),
                )
                .call(req),
        ),
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GatewayService<S>
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
        call_on(&self.shared, &mut self.inner, req, false)
    }
}

/// One request through the gateway `s`, around `inner` (polled ready).
/// `canary`: the request was sent to a stage's canary (marked in its usage
/// event). [`GatewayService`] and the lifecycle's service both call this.
pub(super) fn call_on<S, ReqB, ResB>(
    s: &Shared,
    inner: &mut S,
    req: Request<ReqB>,
    canary: bool,
) -> ResponseFuture<S::Future, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let (req, mut pending) = s.usage.begin(req);
    if canary && let Some(p) = &mut pending {
        p.known.canary = true;
    }
    if s.refuse_all {
        let request_id = RequestId::new();
        if let Some(p) = &mut pending {
            p.known.request_id = Some(request_id);
        }
        let response = s
            .edge
            .responses
            .respond(GatewayResponseKind::UnmappedRequest);
        let kind = Kind::Ready {
            response: Some(response),
        };
        return ResponseFuture::new(kind, Post::new(request_id), pending);
    }
    // `usage_endpoint`: the caller's own plans, by its API key.
    if let Some(at) = s.config.usage_endpoint.as_deref()
        && req.method() == Method::GET
        && req.uri().path() == at
    {
        let request_id = RequestId::new();
        if let Some(p) = &mut pending {
            p.known.request_id = Some(request_id);
        }
        let header = s
            .config
            .api_key_options
            .header
            .as_deref()
            .unwrap_or("x-api-key");
        let value = req
            .headers()
            .get(header)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let own = crate::plans::OwnUsage {
            keys: s.key_store.clone(),
            hasher: s.hasher.clone(),
            plans: s.plans.clone(),
            records: crate::plans::UsageRecords::new(
                s.counter_store.clone(),
                s.key_store.clone(),
                s.plans.book.clone(),
                s.clock.clone(),
            ),
            clock: s.clock.clone(),
            responses: s.edge.responses.clone(),
        };
        let kind = Kind::Boxed {
            future: Box::pin(async move { Ok(own.answer(value).await) }),
        };
        return ResponseFuture::new(kind, Post::new(request_id), pending);
    }
    // A CORS preflight for a method with `cors` is the gateway's to
    // answer, before any credential is looked at.
    if req.method() == Method::OPTIONS
        && let Some((response, endpoint)) = preflight(s, &req)
    {
        let request_id = RequestId::new();
        if let Some(p) = &mut pending {
            p.known.request_id = Some(request_id);
            p.known.endpoint = Some(endpoint);
        }
        let kind = Kind::Ready {
            response: Some(response),
        };
        return ResponseFuture::new(kind, Post::new(request_id), pending);
    }
    // Gateway responses with references read the request as it came.
    let mut facts = s.edge.responses.has_templates().then(|| {
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
        let ip = crate::throttle::client_ip(peer, req.headers(), &s.edge.trusted);
        Box::new(ResponseFacts::capture(
            &req,
            ip,
            s.clock.unix_nanos() / 1_000_000,
        ))
    });
    let (req, request_id, endpoint, span) = match s.route.route(req) {
        Routing::Rejected {
            response,
            request_id,
        } => {
            if let Some(p) = &mut pending {
                p.known.request_id = Some(request_id);
            }
            let kind = Kind::Ready {
                response: Some(response),
            };
            let mut post = Post::new(request_id);
            if let Some(mut f) = facts {
                let stage = s.route.table().stage_of(f.host(), f.path()).cloned();
                f.refused(request_id, stage);
                post.templates = Some((f, s.edge.responses.clone()));
            }
            return ResponseFuture::new(kind, post, pending);
        }
        Routing::Routed {
            request,
            request_id,
            endpoint,
            span,
        } => (request, request_id, endpoint, span),
    };
    let index = endpoint.index();
    // The front door, before any credential is looked at: the
    // concurrency bound, the payload limit, the resource policy.
    let e = &s.edge;
    let mut in_flight = None;
    let refused = match &e.max_concurrency {
        Some((max, count)) => match InFlight::enter(*max, count) {
            Some(guard) => {
                in_flight = Some(guard);
                None
            }
            None => {
                let mut res = e.responses.respond(GatewayResponseKind::BackendUnavailable);
                res.headers_mut()
                    .insert(RETRY_AFTER, http::HeaderValue::from_static("1"));
                Some(res)
            }
        },
        None => None,
    };
    let refused = refused.or_else(|| {
        let declared = req.headers().get(CONTENT_LENGTH)?.to_str().ok()?;
        // An unparsable length is hyper's to refuse; a huge one is ours.
        (declared.parse::<u64>().ok()? > e.max_body)
            .then(|| e.responses.respond(GatewayResponseKind::RequestTooLarge))
    });
    // CORS headers go on whatever the method answers, refusals included.
    let cors = endpoint
        .settings()
        .cors
        .clone()
        .map(|c| (c, req.headers().get(ORIGIN).cloned()));
    let refused = refused.or_else(|| {
        let policy = endpoint.settings().policy.as_ref()?;
        let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.ip());
        policy.check(
            &endpoint,
            peer,
            req.headers(),
            &e.trusted,
            &e.api,
            &e.responses,
        )
    });
    // Compression: a compressed request body decoded (another coding
    // is a 415); the response's coding chosen now, from the request.
    let mut req = req;
    let mut refused = refused;
    let mut compress = None;
    if let (None, Some(c)) = (&refused, &endpoint.settings().compression) {
        compress = c.choose(req.headers()).map(|coding| (c.clone(), coding));
        if !Compression::decode(&mut req) {
            refused = Some(
                e.responses
                    .respond(GatewayResponseKind::UnsupportedMediaType),
            );
        }
    }
    if let Some(p) = &mut pending {
        p.known.request_id = Some(request_id);
        p.known.endpoint = Some(endpoint);
    }
    let mut post = Post::new(request_id);
    if let Some(mut f) = facts.take() {
        f.routed(request_id, req.extensions().get::<RequestContext>());
        post.templates = Some((f, e.responses.clone()));
    }
    post.in_flight = in_flight;
    post.cors = cors;
    post.compress = compress;
    if let Some(response) = refused {
        post.span = span;
        let kind = Kind::Ready {
            response: Some(response),
        };
        return ResponseFuture::new(kind, post, pending);
    }
    let _entered = span.as_deref().map(tracing::Span::enter);
    let kind = if let Some(p) = &mut pending {
        // Reported requests are answered even when a step or the inner
        // service's `call` panics: 500, and a `panicked` event.
        let stepped = catch_unwind(AssertUnwindSafe(|| {
            steps(s, inner, req, index, &mut post, Some(p))
        }));
        match stepped {
            Ok(kind) => kind,
            Err(_) => {
                let mut res = pending.take().map(Pending::panicked).unwrap_or_default();
                insert_request_id(res.headers_mut(), request_id);
                Kind::Ready {
                    response: Some(res),
                }
            }
        }
    } else {
        steps(s, inner, req, index, &mut post, None)
    };
    drop(_entered);
    post.layered = matches!(kind, Kind::Boxed { .. });
    post.span = span;
    ResponseFuture::new(kind, post, pending)
}

/// The gateway's answer to a CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) for a method with `cors`, and that
/// method's endpoint; `None` for any other request.
fn preflight<B>(s: &Shared, req: &Request<B>) -> Option<(Response<Body>, Arc<Endpoint>)> {
    let asked = req.headers().get(ACCESS_CONTROL_REQUEST_METHOD)?;
    let method = Method::from_bytes(asked.as_bytes()).ok()?;
    let table = s.route.table();
    let host = if table.reads_host() {
        crate::route::service::request_host(req.headers(), req.uri())
    } else {
        None
    };
    let Lookup::Found { endpoint, .. } = table.lookup_request(&method, host, req.uri().path())
    else {
        return None;
    };
    let cors = endpoint.settings().cors.as_ref()?;
    Some((cors.preflight(req.headers()), endpoint.clone()))
}

/// The steps after routing: inline as long as each decides at once.
fn steps<S, ResB>(
    s: &Shared,
    inner: &mut S,
    mut req: Request<Body>,
    index: usize,
    post: &mut Post,
    mut pending: Option<&mut Pending>,
) -> Kind<S::Future, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let boxed = |from, req, inner: &mut S| Kind::Boxed {
        future: layers(s, inner, from, req),
    };
    let path = s.paths.get(index).copied();
    if path == Some(Path::Layered) {
        return boxed(Takeover::SigV4, req, inner);
    }
    match s.keys.decide_now(&mut req) {
        None => return boxed(Takeover::ApiKey, req, inner),
        Some(Decision::Reject(res)) => {
            return Kind::Ready {
                response: Some(*res),
            };
        }
        Some(Decision::Admit(identity)) => {
            if let Some(p) = pending.as_deref_mut() {
                p.known.api_key_id = identity.map(|i| i.key_id_arc());
            }
        }
    }
    match s.throttle.decide_now(RequestHead::of(&req)) {
        None => return boxed(Takeover::Throttle, req, inner),
        Some(Decision::Reject(res)) => {
            return Kind::Ready {
                response: Some(*res),
            };
        }
        Some(Decision::Admit(stamp)) => post.stamp = stamp,
    }
    match s.meter.decide_now(req.extensions()) {
        None => return boxed(Takeover::Meter, req, inner),
        Some(Decision::Reject(res)) => {
            return Kind::Ready {
                response: Some(*res),
            };
        }
        Some(Decision::Admit(shadow)) => {
            if let (Some(s), Some(p)) = (shadow, pending.as_deref_mut()) {
                p.known.shadow_rejection = Some(s.0);
            }
        }
    }
    if path != Some(Path::Inline) {
        return boxed(Takeover::Cache, req, inner);
    }
    if pending.is_some() {
        post.integration_start = Some(s.clock.unix_nanos());
    }
    Kind::Inner {
        future: inner.call(req),
    }
}

/// What is done to the response on its way out.
struct Post {
    request_id: RequestId,
    /// Whether the layers answered (from some step on).
    layered: bool,
    /// The throttle's `RateLimit` fields for an admitted request.
    stamp: Option<Stamp>,
    /// When the inner service was called here (the gateway clock's Unix
    /// nanoseconds): its latency to the response head is the integration's.
    integration_start: Option<u64>,
    /// The request's debug span, entered while the inner future is polled.
    span: Option<Box<tracing::Span>>,
    /// Counted in `limits.max_concurrency` while the response is on its way.
    in_flight: Option<InFlight>,
    /// The method's CORS setting and the request's `Origin`.
    cors: Option<(Arc<Cors>, Option<HeaderValue>)>,
    /// The method's compression and the coding the client prefers.
    compress: Option<(Arc<Compression>, &'static str)>,
    /// What gateway response templates read, when some have references.
    templates: Option<(Box<ResponseFacts>, GatewayResponses)>,
}

impl Post {
    fn new(request_id: RequestId) -> Self {
        Self {
            request_id,
            layered: false,
            stamp: None,
            integration_start: None,
            span: None,
            in_flight: None,
            cors: None,
            compress: None,
            templates: None,
        }
    }

    /// Stamps the response: a gateway response's templates rendered, the
    /// throttle's fields, the request id, compression, the CORS headers.
    fn finish(&mut self, res: &mut Response<Body>) {
        if let Some((facts, responses)) = self.templates.take() {
            responses.render_templates(res, &facts);
        }
        if let Some(stamp) = self.stamp.take() {
            Some(stamp).finish(res);
        }
        insert_request_id(res.headers_mut(), self.request_id);
        if let Some((compression, coding)) = self.compress.take() {
            compression.compress(coding, res);
        }
        if let Some((cors, origin)) = self.cors.take() {
            cors.decorate(origin.as_ref(), res);
        }
    }

    /// Takes off what the layers left for a usage layer (read by now),
    /// so a response carries the same whichever way it went.
    fn clean(&self, res: &mut Response<Body>) {
        if self.layered {
            res.extensions_mut().remove::<ApiKeyIdentity>();
            res.extensions_mut().remove::<IntegrationLatency>();
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        // The inner service's own future.
        Inner { #[pin] future: F },
        // The layers from some step on.
        Boxed { future: Boxed<E> },
        // A gateway response.
        Ready { response: Option<Response<Body>> },
    }
}

pin_project! {
    /// Response future of [`GatewayService`].
    ///
    /// When usage is reported, the inner service's `call` and its future are
    /// run inside `catch_unwind`: a panic below becomes a 500 `DEFAULT_5XX`
    /// response with its `x-amzn-requestid`, and a `panicked` event with
    /// the request id, the endpoint and (decided inline) the key. Polled
    /// again after its output, it stays pending.
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
        post: Post,
        guard: Guard,
        done: bool,
    }
}

impl<F, E> ResponseFuture<F, E> {
    fn new(kind: Kind<F, E>, post: Post, pending: Option<Pending>) -> Self {
        Self {
            kind,
            post,
            guard: Guard(pending),
            done: false,
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E, ResB> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.done {
            return Poll::Pending;
        }
        let post = this.post;
        let mut kind = this.kind;
        let mut poll = || {
            let _entered = post.span.as_deref().map(tracing::Span::enter);
            match kind.as_mut().project() {
                KindProj::Inner { future } => future.poll(cx).map(|r| r.map(|r| r.map(Body::new))),
                KindProj::Boxed { future } => future.as_mut().poll(cx),
                KindProj::Ready { response } => match response.take() {
                    Some(r) => Poll::Ready(Ok(r)),
                    None => Poll::Pending,
                },
            }
        };
        let Some(mut pending) = this.guard.0.take() else {
            // Reporting is off: nothing is caught.
            let mut res = ready!(poll())?;
            *this.done = true;
            post.finish(&mut res);
            post.clean(&mut res);
            return Poll::Ready(Ok(res));
        };
        match catch_unwind(AssertUnwindSafe(poll)) {
            Ok(Poll::Pending) => {
                this.guard.0 = Some(pending);
                Poll::Pending
            }
            Ok(Poll::Ready(Ok(mut res))) => {
                *this.done = true;
                post.finish(&mut res);
                if let Some(start) = post.integration_start {
                    let took = Duration::from_nanos(pending.now().saturating_sub(start));
                    pending.known.integration_latency = Some(took);
                }
                let mut res = pending.complete(res);
                post.clean(&mut res);
                Poll::Ready(Ok(res))
            }
            Ok(Poll::Ready(Err(e))) => {
                *this.done = true;
                pending.failed();
                Poll::Ready(Err(e))
            }
            Err(_) => {
                *this.done = true;
                let mut res = pending.panicked();
                insert_request_id(res.headers_mut(), post.request_id);
                Poll::Ready(Ok(res))
            }
        }
    }
}
