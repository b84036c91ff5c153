use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use tower::Service;

use super::client::{ClientAddr, client_ip};
use super::future::ResponseFuture;
use super::layer::{Shared, Source};
use super::store::{Limit, LimitScope, Outcome, RateKey};
use super::{Rate, ThrottleRejection, headers};
use crate::body::{Body, BoxError};
use crate::context::{ApiKeyIdentity, Endpoint, RequestContext};
use crate::response::GatewayResponseKind;
use crate::store::{FailMode, StoreError};

/// The most limits one request can meet: plan-method, plan, client, method, gateway.
pub(super) const MAX_LIMITS: usize = 5;

/// The throttle middleware; see the [module docs](crate::throttle).
#[derive(Clone)]
pub struct Throttle<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Throttle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Throttle<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

/// Which bucket a planned limit counts against; the borrowed parts (endpoint,
/// key id, custom key) are supplied when the check is made.
#[derive(Debug, Clone, Copy)]
pub(super) enum Which {
    Gateway,
    Method,
    ApiKey,
    ApiKeyMethod,
    Client(IpAddr),
    Custom,
}

/// The limits that cover one request, in the order they are checked: the
/// most specific first, so an abusive caller is named by its own bucket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Planned {
    items: [(Which, Rate); MAX_LIMITS],
    len: usize,
}

impl Planned {
    fn push(&mut self, which: Which, rate: Option<Rate>) {
        if let (Some(rate), Some(slot)) = (rate, self.items.get_mut(self.len)) {
            *slot = (which, rate);
            self.len += 1;
        }
    }

    pub(super) fn get(&self, i: usize) -> Option<(Which, Rate)> {
        self.items[..self.len].get(i).copied()
    }
}

/// What the checked keys borrow.
pub(super) struct Sources<'a> {
    pub(super) endpoint: Option<&'a Endpoint>,
    pub(super) key_id: Option<&'a str>,
    pub(super) custom: &'a str,
}

impl Planned {
    /// Fills `out` with the limits to check and returns how many.
    pub(super) fn limits<'a>(&self, src: &Sources<'a>, out: &mut [Limit<'a>; MAX_LIMITS]) -> usize {
        let mut n = 0;
        for &(which, rate) in &self.items[..self.len] {
            let key = match (which, src.endpoint, src.key_id) {
                (Which::Gateway, ..) => RateKey::Gateway,
                (Which::Method, Some(e), _) => RateKey::Method(e),
                (Which::ApiKey, _, Some(id)) => RateKey::ApiKey(id),
                (Which::ApiKeyMethod, Some(e), Some(id)) => RateKey::ApiKeyMethod(id, e),
                (Which::Client(ip), ..) => RateKey::Client(ip),
                (Which::Custom, ..) => RateKey::Custom(src.custom),
                // `plan` only adds these when the sources exist.
                _ => continue,
            };
            out[n] = Limit { key, rate };
            n += 1;
        }
        n
    }
}

const EMPTY: Limit<'static> = Limit {
    key: RateKey::Gateway,
    rate: Rate::new(0.0, 0),
};

/// The fields of the headers on an admitted response.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    scope: LimitScope,
    rate: Rate,
    remaining: u32,
    reset: Duration,
}

impl Stamp {
    pub(super) fn apply(&self, headers: &mut http::HeaderMap) {
        headers::insert(headers, self.scope, self.rate, self.remaining, self.reset);
    }
}

/// What to do with a request once its limits are decided.
pub(super) enum Decision {
    Admit(Option<Stamp>),
    Reject(Response<Body>),
}

impl Shared {
    /// The limits that cover a request, and a standalone layer's key.
    fn plan(&self, parts: &Parts) -> (Planned, Option<String>) {
        let mut p = Planned {
            items: [(Which::Gateway, Rate::new(0.0, 0)); MAX_LIMITS],
            len: 0,
        };
        match &self.source {
            Source::Standalone { rate, key } => {
                p.push(Which::Custom, Some(*rate));
                (p, key.extract(parts))
            }
            Source::Gateway(limits) => {
                let endpoint = parts
                    .extensions
                    .get::<RequestContext>()
                    .map(|c| c.endpoint());
                let identity = parts.extensions.get::<ApiKeyIdentity>();
                if let Some(plan) = identity
                    .and_then(|i| i.plan())
                    .and_then(|p| limits.plans.get(p))
                {
                    let method =
                        endpoint.and_then(|e| plan.methods.get(e.index()).copied().flatten());
                    p.push(Which::ApiKeyMethod, method);
                    p.push(Which::ApiKey, plan.throttle);
                }
                if let Some(rate) = limits.per_client {
                    let peer = parts.extensions.get::<ClientAddr>().map(|a| a.0.ip());
                    if let Some(ip) = client_ip(peer, &parts.headers, &limits.trusted_proxies) {
                        p.push(Which::Client(ip), Some(rate));
                    }
                }
                p.push(Which::Method, endpoint.and_then(|e| e.settings().throttle));
                p.push(Which::Gateway, limits.gateway);
                (p, None)
            }
        }
    }

    /// Turns a store's answer into a decision.
    pub(super) fn decide(
        &self,
        planned: &Planned,
        result: Result<Outcome, StoreError>,
    ) -> Decision {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, fail_mode = ?self.fail_mode, "throttle store failed");
                return match self.fail_mode {
                    FailMode::Closed => Decision::Reject(
                        self.responses
                            .respond(GatewayResponseKind::BackendUnavailable),
                    ),
                    _ => Decision::Admit(None),
                };
            }
        };
        let Some((which, rate)) = planned.get(outcome.binding) else {
            return Decision::Admit(None);
        };
        let scope = scope_of(which);
        let stamp = Stamp {
            scope,
            rate,
            remaining: outcome.remaining,
            reset: outcome.reset,
        };
        if outcome.admitted {
            return Decision::Admit(self.headers.then_some(stamp));
        }
        let wait = outcome.retry_after.unwrap_or(outcome.reset);
        let mut res = self.responses.respond(GatewayResponseKind::Throttled);
        stamp.apply(res.headers_mut());
        headers::retry_after(res.headers_mut(), wait);
        res.extensions_mut().insert(ThrottleRejection {
            scope,
            retry_after: wait,
        });
        Decision::Reject(res)
    }
}

fn scope_of(which: Which) -> LimitScope {
    match which {
        Which::Gateway => LimitScope::Gateway,
        Which::Method => LimitScope::Method,
        Which::ApiKey => LimitScope::ApiKey,
        Which::ApiKeyMethod => LimitScope::ApiKeyMethod,
        Which::Client(_) => LimitScope::Client,
        Which::Custom => LimitScope::Custom,
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Throttle<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ReqB: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (parts, body) = req.into_parts();
        let (planned, custom) = self.shared.plan(&parts);
        if planned.len == 0 {
            return ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)), None);
        }
        let endpoint = parts
            .extensions
            .get::<RequestContext>()
            .map(|c| c.endpoint());
        let key_id = parts
            .extensions
            .get::<ApiKeyIdentity>()
            .map(|i| i.key_id_arc());
        let custom = custom.unwrap_or_default();
        let checked = {
            let src = Sources {
                endpoint: endpoint.map(|e| &**e),
                key_id: key_id.map(|k| &**k),
                custom: &custom,
            };
            let mut limits = [EMPTY; MAX_LIMITS];
            let n = planned.limits(&src, &mut limits);
            self.shared.store.check_now(&limits[..n])
        };
        match checked {
            Some(result) => match self.shared.decide(&planned, result) {
                Decision::Admit(stamp) => {
                    ResponseFuture::inner(self.inner.call(Request::from_parts(parts, body)), stamp)
                }
                Decision::Reject(res) => ResponseFuture::done(res),
            },
            None => {
                // A store that waits (Redis): check in a future that owns
                // what the keys borrow, then call the inner service that
                // was polled ready.
                let owned = (endpoint.cloned(), key_id.cloned(), custom);
                let store = self.shared.store.clone();
                let check = Box::pin(async move {
                    let (endpoint, key_id, custom) = owned;
                    let src = Sources {
                        endpoint: endpoint.as_deref(),
                        key_id: key_id.as_deref(),
                        custom: &custom,
                    };
                    let mut limits = [EMPTY; MAX_LIMITS];
                    let n = planned.limits(&src, &mut limits);
                    store.check(&limits[..n]).await
                });
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::checking(
                    check,
                    inner,
                    Request::from_parts(parts, body),
                    self.shared.clone(),
                    planned,
                )
            }
        }
    }
}
