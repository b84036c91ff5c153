use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower::Service;

use super::client::{ClientAddr, client_ip};
use super::future::ResponseFuture;
use super::headers::Spec;
use super::layer::{Shared, Source};
use super::store::{Admission, Limit, LimitScope, RateKey};
use super::{Rate, ThrottleRejection, headers};
use crate::body::{Body, BoxError};
use crate::context::RequestHead;
use crate::context::{ApiKeyIdentity, RequestContext};
use crate::gate::{self, Finish, GateFuture};
use crate::plans::Plans;
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
enum Which {
    Gateway,
    Method,
    ApiKey,
    ApiKeyMethod,
    Client(IpAddr),
    Custom,
}

/// Placeholder for unused slots of a plan.
static NO_SPEC: Spec = Spec {
    rate: Rate::new(0.0, 0),
    policy: http::HeaderValue::from_static(""),
};

/// The limits that cover one request, in the order they are checked: the
/// most specific first, so an abusive caller is named by its own bucket.
struct Planned<'s> {
    items: [(Which, &'s Spec); MAX_LIMITS],
    len: usize,
    /// A standalone layer's key for this request.
    custom: String,
}

impl<'s> Planned<'s> {
    fn push(&mut self, which: Which, spec: Option<&'s Spec>) {
        if let (Some(spec), Some(slot)) = (spec, self.items.get_mut(self.len)) {
            *slot = (which, spec);
            self.len += 1;
        }
    }

    /// The limits to check, keyed by what the request carries.
    fn limits<'a>(&'a self, head: RequestHead<'a>, out: &mut [Limit<'a>; MAX_LIMITS]) -> usize {
        let endpoint = head
            .extensions
            .get::<RequestContext>()
            .map(|c| &**c.endpoint());
        let key_id = crate::context::api_key_of(head.extensions).map(ApiKeyIdentity::key_id);
        let mut n = 0;
        for &(which, spec) in &self.items[..self.len] {
            let key = match (which, endpoint, key_id) {
                (Which::Gateway, ..) => RateKey::Gateway,
                (Which::Method, Some(e), _) => RateKey::Method(e),
                (Which::ApiKey, _, Some(id)) => RateKey::ApiKey(id),
                (Which::ApiKeyMethod, Some(e), Some(id)) => RateKey::ApiKeyMethod(id, e),
                (Which::Client(ip), ..) => RateKey::Client(ip),
                (Which::Custom, ..) => RateKey::Custom(&self.custom),
                // `plan` only adds these when the parts exist.
                _ => continue,
            };
            out[n] = Limit {
                key,
                rate: spec.rate,
            };
            n += 1;
        }
        n
    }
}

const EMPTY: Limit<'static> = Limit {
    key: RateKey::Gateway,
    rate: Rate::new(0.0, 0),
};

/// What an admitted response gets: the RateLimit fields (with headers
/// on), and the mark of a shadow limit that would have refused it.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    policy: HeaderValue,
    scope: LimitScope,
    remaining: u32,
    reset: Duration,
    /// Whether the RateLimit fields go on the response.
    headers: bool,
    /// A shadow limit would have refused the request.
    shadow: bool,
}

impl Stamp {
    pub(crate) fn apply(&self, headers: &mut http::HeaderMap) {
        if !self.headers {
            return;
        }
        headers::insert(
            headers,
            &self.policy,
            self.scope,
            self.remaining,
            self.reset,
        );
    }
}

impl Finish for Stamp {
    fn finish(self, res: &mut Response<Body>) {
        if self.shadow {
            res.extensions_mut().insert(crate::usage::ShadowRejection(
                GatewayResponseKind::Throttled,
            ));
        }
        // An inner layer that already described a limit (the quota's 429)
        // spoke more precisely: keep its fields.
        if !res.headers().contains_key(headers::RATELIMIT_POLICY) {
            self.apply(res.headers_mut());
        }
    }
}

pub(crate) type Decision = gate::Decision<Option<Stamp>>;

impl Shared {
    /// The limits that cover a request.
    fn plan<'s>(&'s self, plans: Option<&'s Plans>, head: RequestHead<'_>) -> Planned<'s> {
        let mut p = Planned {
            items: [(Which::Gateway, &NO_SPEC); MAX_LIMITS],
            len: 0,
            custom: String::new(),
        };
        match &self.source {
            Source::Standalone { spec, key } => {
                p.push(Which::Custom, Some(spec));
                p.custom = key.extract(head).unwrap_or_default();
            }
            Source::Gateway(limits, _) => {
                let endpoint = head
                    .extensions
                    .get::<RequestContext>()
                    .map(|c| c.endpoint().index());
                let identity = crate::context::api_key_of(head.extensions);
                if let Some(plan) = identity.and_then(|i| i.plan()).and_then(|p| plans?.get(p)) {
                    let method = endpoint.and_then(|e| plan.methods.at(e));
                    p.push(Which::ApiKeyMethod, method);
                    p.push(Which::ApiKey, plan.throttle.as_ref());
                }
                if let Some(spec) = &limits.per_client {
                    let peer = head.extensions.get::<ClientAddr>().map(|a| a.0.ip());
                    if let Some(ip) = client_ip(peer, head.headers, &limits.trusted_proxies) {
                        p.push(Which::Client(ip), Some(spec));
                    }
                }
                p.push(Which::Method, endpoint.and_then(|e| limits.methods.at(e)));
                p.push(Which::Gateway, limits.gateway.as_ref());
            }
        }
        p
    }

    /// Turns a store's answer into a decision.
    fn decide(&self, planned: &Planned<'_>, result: Result<Admission, StoreError>) -> Decision {
        let binding = result.as_ref().map_or(0, |o| o.binding);
        match planned.items[..planned.len].get(binding) {
            Some(&(which, spec)) => self.decide_for(scope_of(which), spec, result),
            None => self.decide_for(LimitScope::Gateway, &NO_SPEC, result),
        }
    }

    /// The decision, given the limit that speaks for the response.
    fn decide_for(
        &self,
        scope: LimitScope,
        spec: &Spec,
        result: Result<Admission, StoreError>,
    ) -> Decision {
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, fail_mode = ?self.fail_mode, "throttle store failed");
                return match self.fail_mode {
                    FailMode::Closed => Decision::Reject(Box::new(
                        self.responses
                            .respond(GatewayResponseKind::BackendUnavailable),
                    )),
                    _ => Decision::Admit(None),
                };
            }
        };
        if outcome.admitted {
            return Decision::Admit(self.headers.then(|| Stamp {
                policy: spec.policy.clone(),
                scope,
                remaining: outcome.remaining,
                reset: outcome.reset,
                headers: true,
                shadow: false,
            }));
        }
        let wait = outcome.retry_after.unwrap_or(outcome.reset);
        tracing::debug!(layer = "throttle", decision = "reject", scope = ?scope, retry_after = ?wait, "rate limit reached");
        let mut res = self.responses.respond(GatewayResponseKind::Throttled);
        headers::insert(
            res.headers_mut(),
            &spec.policy,
            scope,
            outcome.remaining,
            outcome.reset,
        );
        headers::retry_after(res.headers_mut(), wait);
        res.extensions_mut().insert(ThrottleRejection {
            scope,
            retry_after: wait,
        });
        Decision::Reject(Box::new(res))
    }

    /// Plans, checks and decides without waiting, if the store can.
    pub(crate) fn decide_now(&self, head: RequestHead<'_>) -> Option<Decision> {
        if let Source::Standalone { spec, key } = &self.source {
            // One limit: no plan to build.
            let custom = key.extract(head);
            let limit = [Limit {
                key: RateKey::Custom(custom.as_deref().unwrap_or("")),
                rate: spec.rate,
            }];
            let result = self.store.check_now(&limit)?;
            if self.refused_by_shadow(&limit, &result) {
                return Some(self.shadowed(Decision::Admit(None)));
            }
            return Some(self.decide_for(LimitScope::Custom, spec, result));
        }
        let book = match &self.source {
            Source::Gateway(_, book) => Some(book.load()),
            Source::Standalone { .. } => None,
        };
        let planned = self.plan(book.as_deref().map(|p| &**p), head);
        if planned.len == 0 {
            return Some(Decision::Admit(None));
        }
        let mut limits = [EMPTY; MAX_LIMITS];
        let n = planned.limits(head, &mut limits);
        let result = self.store.check_now(&limits[..n])?;
        if self.refused_by_shadow(&limits[..n], &result) {
            // Counted as a would-be rejection; the enforced limits decide,
            // charged without the shadow ones.
            let (enforced, m) = without_shadow(&limits[..n]);
            if m == 0 {
                return Some(self.shadowed(Decision::Admit(None)));
            }
            let result = self.store.check_now(&enforced[..m])?;
            return Some(self.shadowed(self.decide_enforced(&planned, &enforced[..m], result)));
        }
        Some(self.decide(&planned, result))
    }

    /// Whether the store refused the request on a limit in shadow mode.
    fn refused_by_shadow(
        &self,
        limits: &[Limit<'_>],
        result: &Result<Admission, StoreError>,
    ) -> bool {
        match result {
            Ok(a) if !a.admitted => limits.get(a.binding).is_some_and(|l| l.rate.is_shadow()),
            _ => false,
        }
    }

    /// The decision on the enforced limits: the binding one is found by
    /// its place among them.
    fn decide_enforced(
        &self,
        planned: &Planned<'_>,
        enforced: &[Limit<'_>],
        result: Result<Admission, StoreError>,
    ) -> Decision {
        let Some(binding) = result.as_ref().ok().and_then(|a| enforced.get(a.binding)) else {
            return self.decide_for(LimitScope::Gateway, &NO_SPEC, result);
        };
        let found = planned.items[..planned.len].iter().find(|(which, spec)| {
            scope_of(*which) == binding.key.scope() && !spec.rate.is_shadow()
        });
        match found {
            Some(&(which, spec)) => self.decide_for(scope_of(which), spec, result),
            None => self.decide_for(LimitScope::Gateway, &NO_SPEC, result),
        }
    }

    /// An admitted decision marked as one a shadow limit would have
    /// refused (a refusal by an enforced limit stays a refusal).
    fn shadowed(&self, decision: Decision) -> Decision {
        self.shadow_rejections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            layer = "throttle",
            decision = "shadow",
            "rate limit reached (shadow: admitted)"
        );
        match decision {
            Decision::Admit(stamp) => Decision::Admit(Some(match stamp {
                Some(s) => Stamp { shadow: true, ..s },
                None => Stamp {
                    policy: NO_SPEC.policy.clone(),
                    scope: LimitScope::Gateway,
                    remaining: 0,
                    reset: Duration::ZERO,
                    headers: false,
                    shadow: true,
                },
            })),
            reject => reject,
        }
    }

    /// The same, waiting for the store.
    async fn decide_later(&self, head: RequestHead<'_>) -> Decision {
        let book = match &self.source {
            Source::Gateway(_, book) => Some(book.load_full()),
            Source::Standalone { .. } => None,
        };
        let planned = self.plan(book.as_deref(), head);
        let mut limits = [EMPTY; MAX_LIMITS];
        let n = planned.limits(head, &mut limits);
        let result = self.store.check(&limits[..n]).await;
        if self.refused_by_shadow(&limits[..n], &result) {
            let (enforced, m) = without_shadow(&limits[..n]);
            if m == 0 {
                return self.shadowed(Decision::Admit(None));
            }
            let result = self.store.check(&enforced[..m]).await;
            return self.shadowed(self.decide_enforced(&planned, &enforced[..m], result));
        }
        self.decide(&planned, result)
    }
}

/// The limits not in shadow mode, in their order.
fn without_shadow<'a>(limits: &[Limit<'a>]) -> ([Limit<'a>; MAX_LIMITS], usize) {
    let mut out = [EMPTY; MAX_LIMITS];
    let mut n = 0;
    for l in limits.iter().filter(|l| !l.rate.is_shadow()) {
        out[n] = *l;
        n += 1;
    }
    (out, n)
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
        let gate = match self.shared.decide_now(RequestHead::of(&req)) {
            Some(decision) => GateFuture::now(decision, &mut self.inner, req),
            None => {
                // A store that waits (Redis): decide in a future that owns
                // the request, then call the inner service that was polled ready.
                let shared = self.shared.clone();
                let decision: gate::Pending<ReqB, Option<Stamp>> = Box::pin(async move {
                    let decision = shared.decide_later(RequestHead::of(&req)).await;
                    (decision, req)
                });
                GateFuture::wait(decision, &mut self.inner)
            }
        };
        ResponseFuture::new(gate)
    }
}
