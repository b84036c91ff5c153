//! The API key service: find the key, decide, then call the inner service
//! or answer for it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use super::{KeyDigest, KeyRecord};
use crate::body::{Body, BoxError};
use crate::context::{ApiKeyIdentity, RequestContext, RequestHead};
use crate::gate::{self, Finish, GateFuture};
use crate::response::GatewayResponseKind;
use crate::store::{FailMode, StoreError};

/// The API key middleware; see the [module docs](crate::keys).
///
/// For each request that must present a key, in order:
///
/// 1. read the key from the [`KeySource`](super::KeySource); none: 403;
/// 2. hash it and look the digest up, without waiting when the store can
///    ([`KeyStore::get_now`](super::KeyStore::get_now)), else in a boxed
///    future that holds the request;
/// 3. unknown: 403; store failed: 503 `BACKEND_UNAVAILABLE` (fail closed,
///    the default) or admitted without an identity (fail open);
/// 4. disabled or expired at the layer's clock: 403;
/// 5. behind a gateway, the first of the key's plans that covers the
///    request's stage; none: 403.
///
/// Every 403 is the same `INVALID_API_KEY` response, so a caller cannot
/// tell a wrong key from a disabled one; the reason is logged at debug
/// level (never the key). An admitted request carries an
/// [`ApiKeyIdentity`]: in its [`RequestContext`] when it has one (behind a
/// [`Gateway`](crate::Gateway)), else as an extension of its own, and so
/// does its response (a gateway's does not: its usage event gets the
/// identity directly). [`Caller::of`](crate::Caller::of) reads either.
#[derive(Clone)]
pub struct ApiKey<S> {
    inner: S,
    /// The layer's settings, shared by every clone of the service.
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ApiKey<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> ApiKey<S> {
    pub(super) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }
}

/// The accepted key goes on the response too, for the usage layer.
impl Finish for ApiKeyIdentity {
    fn finish(self, res: &mut Response<Body>) {
        res.extensions_mut().insert(self);
    }
}

/// Admit (with the identity, or `None` when fail-open let the request
/// through unidentified), or reject with a ready response.
pub(crate) type Decision = gate::Decision<Option<ApiKeyIdentity>>;

/// A lookup's result.
type Found = Result<Option<Arc<KeyRecord>>, StoreError>;

impl Shared {
    /// Whether this request must present a key. Alone, every request must;
    /// behind a gateway, only those routed to a method with
    /// `api_key_required` (a request with no [`RequestContext`] is not
    /// asked: routing has answered it already).
    fn required(&self, head: RequestHead<'_>) -> bool {
        match &self.plans {
            None => true,
            Some(_) => head
                .extensions
                .get::<RequestContext>()
                .is_some_and(|c| c.endpoint().settings().api_key_required),
        }
    }

    /// The one refusal: 403 `INVALID_API_KEY`, the reason only in the log.
    fn forbidden(&self, reason: &'static str) -> Decision {
        tracing::debug!(
            layer = "api_key",
            decision = "reject",
            reason,
            "API key refused"
        );
        // One answer for every way a key can be wrong: no oracle.
        gate::Decision::Reject(Box::new(
            self.responses.respond(GatewayResponseKind::InvalidApiKey),
        ))
    }

    /// Steps 3 to 5 of the [`ApiKey`] docs, on a lookup's result. Expiry is
    /// compared in Unix nanoseconds: no calendar arithmetic per request.
    /// A store failure is counted in `store_errors` whichever the fail
    /// mode.
    fn decide(&self, found: Found, head: RequestHead<'_>) -> Decision {
        let record = match found {
            Ok(Some(r)) => r,
            Ok(None) => return self.forbidden("unknown key"),
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, fail_mode = ?self.fail_mode, "key store failed");
                return match self.fail_mode {
                    FailMode::Closed => gate::Decision::Reject(Box::new(
                        self.responses
                            .respond(GatewayResponseKind::BackendUnavailable),
                    )),
                    _ => gate::Decision::Admit(None),
                };
            }
        };
        if !record.usable_at_nanos(i128::from(self.clock.unix_nanos())) {
            return self.forbidden("disabled or expired key");
        }
        let plan = match &self.plans {
            None => record.plans.first().cloned(),
            Some(book) => {
                let plans = book.load();
                let Some(stage) = head
                    .extensions
                    .get::<RequestContext>()
                    .map(|c| c.endpoint().stage())
                else {
                    return self.forbidden("no stage");
                };
                let covering = record.plans.iter().find(|p| {
                    plans
                        .get(*p)
                        .is_some_and(|def| def.stages.iter().any(|s| &**s == stage))
                });
                match covering {
                    Some(p) => Some(p.clone()),
                    // A key outside every plan of this stage is not a key here.
                    None => return self.forbidden("no plan of the key covers this stage"),
                }
            }
        };
        tracing::debug!(layer = "api_key", decision = "admit", key_id = %record.id, plan = ?plan, "API key accepted");
        gate::Decision::Admit(Some(
            ApiKeyIdentity::new(record.id.clone(), plan)
                .created_at(record.created.unix_timestamp())
                .allow_cache_invalidation(record.can_invalidate_cache),
        ))
    }
}

impl Shared {
    /// Steps 1 to 5 without waiting: the decision (an admitted identity is
    /// in the request's context, or its extensions without one), or the
    /// key's digest when the store must be waited for.
    pub(crate) fn decide_now<B>(&self, req: &mut Request<B>) -> Result<Decision, KeyDigest> {
        let head = RequestHead::of(req);
        if !self.required(head) {
            return Ok(gate::Decision::Admit(None));
        }
        let Some(digest) = self
            .source
            .extract(head)
            .map(|value| self.hasher.digest(&value))
        else {
            return Ok(self.forbidden("no key in the request"));
        };
        match self.store.get_now(&digest) {
            Some(found) => {
                let decision = self.decide(found, RequestHead::of(req));
                Ok(admit(decision, req))
            }
            None => Err(digest),
        }
    }
}

/// Puts an admitted key's identity in the request extensions, for the
/// throttle and quota layers below, and passes the decision on.
fn admit<ReqB>(decision: Decision, req: &mut Request<ReqB>) -> Decision {
    if let gate::Decision::Admit(Some(identity)) = &decision {
        // Behind a gateway, in the request's one context (no extension of
        // its own to allocate); alone, as its own extension.
        match req.extensions_mut().get_mut::<RequestContext>() {
            Some(ctx) => ctx.api_key = Some(identity.clone()),
            None => {
                req.extensions_mut().insert(identity.clone());
            }
        }
    }
    decision
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ApiKey<S>
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

    /// Decides in `call` when no lookup has to wait (no key required, no
    /// key presented, or a store that answers at once): the future is then
    /// the inner service's, unboxed. Otherwise the lookup is boxed and the
    /// inner service that was polled ready goes with it, a clone staying
    /// here (tower's advice on cloning inner services).
    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let gate = match self.shared.decide_now(&mut req) {
            Ok(decision) => GateFuture::now(decision, &mut self.inner, req),
            Err(digest) => {
                let shared = self.shared.clone();
                let decision: gate::Pending<ReqB, Option<ApiKeyIdentity>> = Box::pin(async move {
                    let found = shared.store.get(&digest).await;
                    let decision = shared.decide(found, RequestHead::of(&req));
                    (admit(decision, &mut req), req)
                });
                GateFuture::wait(decision, &mut self.inner)
            }
        };
        ResponseFuture::new(gate)
    }
}
