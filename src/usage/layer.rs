//! The usage layer: one event per request, built on the request path
//! without waiting, sent when the response body is done.
//!
//! Three places can end a request, and each reports it exactly once:
//!
//! - the response future, when the inner service fails, panics, or returns
//!   a body held whole in memory (reported at once: it goes out in one
//!   write);
//! - the [`Reporting`] body wrapper, when a streamed body ends, errors or
//!   is dropped unfinished (a client that left mid-body);
//! - the [`Guard`] in the future, when the future is dropped before the
//!   response head (a client that left early): status 499.
//!
//! The [`Pending`] facts move from one to the next with `Option::take`, so
//! a request cannot be reported twice.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, USER_AGENT};
use http::{Method, Request, Response};
use http_body::{Body as _, Frame, SizeHint};
use ipnet::IpNet;
use tower::{Layer, Service};

use super::counted::Counted;
use super::event::{CLIENT_CLOSED_REQUEST, Outcome, UsageEvent};
use super::reporter::Reporter;
use crate::body::{Body, BoxError};
use crate::cache::CacheStatus;
use crate::clock::{Clock, SystemClock};
use crate::context::{Caller, Endpoint, RequestId};
use crate::response::{ERROR_TYPE_HEADER, GatewayResponseKind, GatewayResponses};
use crate::throttle::ClientAddr;

/// How long the integration took to its response head, as a
/// [`UsageLayer`] reads it from the response extensions.
///
/// API Gateway's `IntegrationLatency` metric and
/// `$context.integrationLatency`. A service of your own below the usage
/// layer may insert it; it is read as it is. A
/// [`Gateway`](crate::Gateway) measures it itself, reports it in the usage
/// event, and takes it off the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrationLatency(pub Duration);

/// The layer's settings, shared by every service it made.
struct Shared {
    /// Never empty (an empty list makes the layer [`off`](UsageLayer::off)).
    reporters: Box<[Reporter]>,
    /// Arrival and latency times.
    clock: Arc<dyn Clock>,
    /// The API's name, copied into every event.
    api: Arc<str>,
    /// Proxies whose `X-Forwarded-For` is believed; empty: the peer address
    /// is the client.
    trusted: Arc<[IpNet]>,
    /// For the 500 that answers a panic.
    responses: GatewayResponses,
}

/// Reports every request to its [`Reporter`]s: outermost, so rejections,
/// panics (answered 500) and clients that leave are reported too. See the
/// [module docs](crate::usage).
#[derive(Clone)]
#[must_use]
pub struct UsageLayer {
    /// `None`: reporting is off and the service passes requests through
    /// (panics included: nothing is caught when nothing would report it).
    shared: Option<Arc<Shared>>,
}

impl fmt::Debug for UsageLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageLayer")
            .field(
                "reporters",
                &self.shared.as_ref().map_or(0, |s| s.reporters.len()),
            )
            .finish_non_exhaustive()
    }
}

impl UsageLayer {
    /// Reports to `reporter`, with the system clock, API name `tollgate`,
    /// no trusted proxies and the default gateway responses.
    pub fn new(reporter: Reporter) -> Self {
        Self::build(
            vec![reporter],
            Arc::new(SystemClock),
            Arc::from("tollgate"),
            Arc::from([]),
            GatewayResponses::default(),
        )
    }

    /// A layer that reports nothing and passes every request untouched.
    pub(crate) fn off() -> Self {
        Self { shared: None }
    }

    pub(crate) fn build(
        reporters: Vec<Reporter>,
        clock: Arc<dyn Clock>,
        api: Arc<str>,
        trusted: Arc<[IpNet]>,
        responses: GatewayResponses,
    ) -> Self {
        if reporters.is_empty() {
            return Self::off();
        }
        Self {
            shared: Some(Arc::new(Shared {
                reporters: reporters.into(),
                clock,
                api,
                trusted,
                responses,
            })),
        }
    }

    /// Copy-on-write edit of the settings: layers already handed out keep
    /// theirs. A layer that is off stays off.
    fn with(self, f: impl FnOnce(&mut Shared)) -> Self {
        let Some(shared) = self.shared else {
            return self;
        };
        let mut s = Shared {
            reporters: shared.reporters.clone(),
            clock: shared.clock.clone(),
            api: shared.api.clone(),
            trusted: shared.trusted.clone(),
            responses: shared.responses.clone(),
        };
        f(&mut s);
        Self {
            shared: Some(Arc::new(s)),
        }
    }

    /// Also reports to `reporter`.
    pub fn reporter(self, reporter: Reporter) -> Self {
        self.with(|s| {
            let mut all = s.reporters.to_vec();
            all.push(reporter);
            s.reporters = all.into();
        })
    }

    /// Reads time from `clock`.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// Names the API in events (`api` label of metrics).
    pub fn api_name(self, name: &str) -> Self {
        self.with(|s| s.api = Arc::from(name))
    }

    /// Takes the client address from `X-Forwarded-For` behind these proxies.
    ///
    /// The peer address comes from the [`ClientAddr`] request extension,
    /// which the server must insert; without it the source IP is unknown
    /// (`-` in access logs). `X-Forwarded-For` is believed only from a peer
    /// in these networks, as the throttle layer does.
    pub fn trusted_proxies(self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        let list: Arc<[IpNet]> = proxies.into_iter().collect();
        self.with(|s| s.trusted = list)
    }

    /// Answers a panic with these responses' `DEFAULT_5XX`.
    pub fn responses(self, responses: GatewayResponses) -> Self {
        self.with(|s| s.responses = responses)
    }

    pub(crate) fn is_on(&self) -> bool {
        self.shared.is_some()
    }

    pub(crate) fn reporters(&self) -> &[Reporter] {
        self.shared.as_ref().map_or(&[], |s| &s.reporters)
    }
}

impl<S> Layer<S> for UsageLayer {
    type Service = Usage<S>;

    fn layer(&self, inner: S) -> Usage<S> {
        Usage {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The usage middleware; see [`UsageLayer`].
///
/// The inner service receives the request body wrapped in [`Counted`], and
/// the response body comes back as [`Body`], wrapped in a counting body
/// when it streams.
#[derive(Clone)]
pub struct Usage<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S: fmt::Debug> fmt::Debug for Usage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Usage")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// What is known of a request before its response.
pub(crate) struct Pending {
    shared: Arc<Shared>,
    /// Arrival, the clock's Unix nanoseconds.
    start: u64,
    method: Method,
    /// The declared length, or 0 when the body is counted instead.
    request_bytes: u64,
    /// The streamed body's count, read when the event is made.
    counter: Option<Arc<AtomicU64>>,
    source_ip: Option<std::net::IpAddr>,
    user_agent: Option<http::HeaderValue>,
    /// What a gateway that composes the steps itself learned on the way
    /// (request id, endpoint, key): in the event however the request ends.
    pub(crate) known: Known,
}

impl Pending {
    /// An event with what is known now; the caller fills in what the
    /// response tells (route, key, latency, response bytes). Takes the
    /// [`Known`] facts: called once, by whichever end reports.
    fn event(&mut self, status: u16, outcome: Outcome) -> UsageEvent {
        let known = std::mem::take(&mut self.known);
        UsageEvent {
            time_unix_nanos: self.start,
            request_id: known.request_id,
            api: self.shared.api.clone(),
            endpoint: known.endpoint,
            method: self.method.clone(),
            status,
            rejection: None,
            latency: Duration::ZERO,
            integration_latency: known.integration_latency,
            request_bytes: self.request_bytes
                + self
                    .counter
                    .as_ref()
                    .map_or(0, |c| c.load(Ordering::Relaxed)),
            response_bytes: 0,
            api_key_id: known.api_key_id,
            principal: None,
            cache: None,
            source_ip: self.source_ip,
            user_agent: self.user_agent.clone(),
            outcome,
            canary: known.canary,
            shadow_rejection: known.shadow_rejection,
        }
    }

    /// The layer clock's time, Unix nanoseconds.
    pub(crate) fn now(&self) -> u64 {
        self.shared.clock.unix_nanos()
    }

    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.shared.clock.unix_nanos().saturating_sub(self.start))
    }
}

/// Hands `event` to every reporter: moved to the only one, cloned for
/// several. Never waits.
fn emit(shared: &Shared, event: UsageEvent) {
    match &*shared.reporters {
        [one] => one.record(event),
        many => {
            for r in many {
                r.record(event.clone());
            }
        }
    }
}

/// Reports a request whose response never came (its future was dropped).
/// Holds the pending facts while the future is pending; every other end
/// takes them out first, so dropping a finished future reports nothing.
pub(crate) struct Guard(pub(crate) Option<Pending>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut p) = self.0.take() {
            let mut event = p.event(CLIENT_CLOSED_REQUEST, Outcome::ClientDisconnected);
            event.latency = p.elapsed();
            emit(&p.shared, event);
        }
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`Usage`].
    ///
    /// Polls the inner future inside `catch_unwind` when reporting is on:
    /// a panic below becomes a 500 `DEFAULT_5XX` response and a `panicked`
    /// event, and the connection is not torn down. A panic in the inner
    /// service's `call` itself (before any future exists) is not caught.
    /// An `Err` from the inner service is reported as status 500 (the
    /// server answers or closes without a response of ours) and passed on.
    /// Once the output is returned (`done`), polling again stays pending
    /// rather than poll a finished or panicked inner future.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        guard: Guard,
        done: bool,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
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
        let mut future = this.future;
        let Some(pending) = this.guard.0.take() else {
            // Reporting is off: pass through, panics included.
            return future.poll(cx).map(|r| r.map(|r| r.map(Body::new)));
        };
        let polled = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => {
                this.guard.0 = Some(pending);
                Poll::Pending
            }
            Ok(Poll::Ready(Ok(res))) => {
                *this.done = true;
                Poll::Ready(Ok(pending.complete(res)))
            }
            Ok(Poll::Ready(Err(e))) => {
                *this.done = true;
                pending.failed();
                Poll::Ready(Err(e))
            }
            Err(_) => {
                *this.done = true;
                Poll::Ready(Ok(pending.panicked()))
            }
        }
    }
}

/// What a gateway that composes the steps itself knows of a request
/// without reading the response's extensions.
#[derive(Default)]
pub(crate) struct Known {
    pub(crate) request_id: Option<RequestId>,
    pub(crate) endpoint: Option<Arc<Endpoint>>,
    pub(crate) api_key_id: Option<Arc<str>>,
    pub(crate) integration_latency: Option<Duration>,
    /// Sent to a stage's canary.
    pub(crate) canary: bool,
    /// What a shadow limit would have answered.
    pub(crate) shadow_rejection: Option<GatewayResponseKind>,
}

impl Pending {
    /// Reports a response: now when its body is held whole in memory (it
    /// goes out in one write), else when the body ends or is dropped.
    pub(crate) fn complete<ResB>(mut self, res: Response<ResB>) -> Response<Body>
    where
        ResB: http_body::Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let mut event = self.event(res.status().as_u16(), Outcome::Completed);
        read_response(&mut event, res.headers(), res.extensions());
        let (parts, body) = res.into_parts();
        let body = Body::new(body);
        if let Some(len) = body.in_memory_len() {
            // A body held whole in memory goes out in one write:
            // reported now, its length as sent, with no wrapper.
            event.response_bytes = len;
            event.latency = self.elapsed();
            emit(&self.shared, event);
            return Response::from_parts(parts, body);
        }
        let body = Reporting {
            inner: body,
            pending: Some((self, event)),
            sent: 0,
        };
        Response::from_parts(parts, Body::new(body))
    }

    /// Reports an `Err` from the inner service as status 500.
    pub(crate) fn failed(mut self) {
        let mut event = self.event(500, Outcome::Completed);
        event.latency = self.elapsed();
        emit(&self.shared, event);
    }

    /// Reports a panic below and answers it: 500 `DEFAULT_5XX`.
    pub(crate) fn panicked(mut self) -> Response<Body> {
        tracing::error!("a request panicked in the stack; answered 500");
        let res = self
            .shared
            .responses
            .respond(GatewayResponseKind::Default5xx);
        let mut event = self.event(res.status().as_u16(), Outcome::Panicked);
        event.rejection = Some(GatewayResponseKind::Default5xx);
        event.response_bytes = res.body().size_hint().exact().unwrap_or(0);
        event.latency = self.elapsed();
        emit(&self.shared, event);
        res
    }
}

/// What the layers below said about the request: the gateway response
/// kind, the caller, the cache, the integration's latency (a gateway gives
/// the request id and endpoint in [`Known`]).
///
/// Each comes from a small typed value a layer put in the response
/// extensions (a layer that decides something says so there); the
/// kind comes from the `x-tollgate-error-type` header that every gateway
/// response carries. A SigV4 principal wins over an authorizer's.
fn read_response(event: &mut UsageEvent, headers: &http::HeaderMap, ext: &http::Extensions) {
    // What is there overrides what was known; what is not keeps it.
    event.rejection = headers
        .get(&ERROR_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let caller = Caller::of(ext);
    if let Some(key) = caller.api_key {
        event.api_key_id = Some(key.key_id_arc());
    }
    event.principal = caller.principal().map(str::to_owned);
    event.cache = ext.get::<CacheStatus>().copied();
    if let Some(s) = ext.get::<super::ShadowRejection>() {
        event.shadow_rejection = Some(s.0);
    }
    if let Some(l) = ext.get::<IntegrationLatency>() {
        event.integration_latency = Some(l.0);
    }
}

/// A response body that reports its request when it is done or dropped.
struct Reporting {
    inner: Body,
    /// The event, filled in but for bytes and latency; taken when sent.
    pending: Option<(Pending, UsageEvent)>,
    /// Data bytes handed to the server so far.
    sent: u64,
}

impl Reporting {
    /// Sends the event once, with the bytes sent and the latency to now.
    /// An error from the inner body counts as completed: the response
    /// was whole as far as the gateway could make it.
    fn finish(&mut self, outcome: Outcome) {
        if let Some((pending, mut event)) = self.pending.take() {
            event.response_bytes = self.sent;
            event.latency = pending.elapsed();
            if outcome != Outcome::Completed {
                event.outcome = outcome;
            }
            emit(&pending.shared, event);
        }
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // Dropped before its end: the client went away (or the server
            // stopped reading). An empty body is done without a poll.
            let outcome = if self.inner.is_end_stream() {
                Outcome::Completed
            } else {
                Outcome::ClientDisconnected
            };
            self.finish(outcome);
        }
    }
}

impl http_body::Body for Reporting {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.sent += d.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(Outcome::Completed);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(Outcome::Completed),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Usage<S>
where
    S: Service<Request<Counted<ReqB>>, Response = Response<ResB>>,
    ReqB: http_body::Body<Data = Bytes>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let Some(shared) = &self.shared else {
            let req = req.map(|inner| Counted::new(inner, None));
            return ResponseFuture {
                future: self.inner.call(req),
                guard: Guard(None),
                done: false,
            };
        };
        let (req, pending) = begin(shared, req);
        ResponseFuture {
            future: self.inner.call(req),
            guard: Guard(Some(pending)),
            done: false,
        }
    }
}

/// Takes what a request's report needs before it goes on: arrival time,
/// method, declared length (or a counter on its body), client address and
/// user agent.
fn begin<B: http_body::Body>(
    shared: &Arc<Shared>,
    req: Request<B>,
) -> (Request<Counted<B>>, Pending) {
    let start = shared.clock.unix_nanos();
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| body.size_hint().exact());
    let counter = match declared {
        Some(_) => None,
        None => Some(Arc::new(AtomicU64::new(0))),
    };
    let peer = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
    let pending = Pending {
        shared: shared.clone(),
        start,
        method: parts.method.clone(),
        request_bytes: declared.unwrap_or(0),
        counter: counter.clone(),
        source_ip: crate::throttle::client_ip(peer, &parts.headers, &shared.trusted),
        // A shared-buffer clone, not a copy.
        user_agent: parts.headers.get(USER_AGENT).cloned(),
        known: Known::default(),
    };
    (
        Request::from_parts(parts, Counted::new(body, counter)),
        pending,
    )
}

impl UsageLayer {
    /// Begins a request's report, as the [`Usage`] service does: `None`
    /// when reporting is off (the body is still wrapped, uncounted).
    pub(crate) fn begin<B: http_body::Body>(
        &self,
        req: Request<B>,
    ) -> (Request<Counted<B>>, Option<Pending>) {
        match &self.shared {
            Some(shared) => {
                let (req, pending) = begin(shared, req);
                (req, Some(pending))
            }
            None => (req.map(|b| Counted::new(b, None)), None),
        }
    }
}
