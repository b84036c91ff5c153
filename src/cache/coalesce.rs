//! One cacheable request: the lookup, the refresh rules and the coalesced
//! miss that every concurrent request on the key shares.
//!
//! A miss does not go straight to the backend. The first request to miss a
//! key starts a *flight*: one backend call whose response is buffered,
//! stored if allowed, and shared. The flight is a shared future, entered in
//! the layer's in-flight map under the key; a request that misses the same
//! key while it is in the air finds it there and awaits it instead of
//! calling the backend. So a popular entry that expires under load costs
//! one backend call, not one per request waiting on it (no thundering
//! herd). The map holds each flight weakly: when every request awaiting it
//! has gone (their clients disconnected), the flight is dropped with them
//! and the backend call cancelled.
//!
//! A flight lands with the entry, shared by every waiter whatever its
//! status (stored or not), or with nothing when there is nothing to share:
//! the inner service returned an error, or the response had trailers or a
//! body over [`MAX_ENTRY_BODY`](super::MAX_ENTRY_BODY). Then the request
//! that started the flight takes its own result from its [`LeaderSlot`],
//! and each other waiter calls the backend itself. An error is never
//! shared, so one failure is not multiplied into many.
//!
//! Stale-if-error: an entry past its freshness by less than
//! `stale_if_error` is kept aside during the lookup; if the backend then
//! errs or answers 5xx, the entry answers instead, marked `Stale`.

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{FutureExt, WeakShared};
use http::{HeaderValue, Request, Response, StatusCode};
use tower::Service;

use super::entry::*;
use super::layer::*;
use super::status::*;
use super::store::{CacheKey, CacheStore, CachedResponse};
use crate::body::{Body, BoxError};
use crate::clock::Clock;
use crate::context::Caller;
use crate::response::GatewayResponseKind;
use crate::usage::IntegrationLatency;

/// In-flight misses tracked before abandoned ones are swept out. A flight
/// removes itself from the map when it lands; one whose every waiter was
/// dropped first never does, and is swept when the map reaches this size.
pub(super) const PRUNE_INFLIGHT_AT: usize = 1024;

/// One cacheable request.
pub(super) struct Lookup {
    /// The layer's clock, gateway responses and in-flight map.
    pub(super) shared: Arc<Shared>,
    /// Where this request's entry lives (the stage's cache, behind a gateway).
    pub(super) store: Arc<dyn CacheStore>,
    pub(super) key: CacheKey,
    /// The method's policy: TTL, statuses, stale grace, refresh rules.
    pub(super) policy: Arc<CachePolicy>,
    /// A HEAD request: answered from the GET entry, without its body. A HEAD
    /// miss goes to the backend alone, neither coalesced nor stored.
    pub(super) head: bool,
}

/// Whether the request's `Cache-Control` says `max-age=0`, in any of its
/// values, the directive in any case, the `0` quoted or not.
pub(super) fn asks_refresh(headers: &http::HeaderMap) -> bool {
    directives(headers).any(|(name, arg)| {
        name.eq_ignore_ascii_case("max-age") && arg.trim_matches('"').parse::<u64>() == Ok(0)
    })
}

/// Whether the request's caller may invalidate cache entries.
pub(super) fn may_invalidate(ext: &http::Extensions) -> bool {
    Caller::of(ext).can_invalidate_cache() || ext.get::<CacheInvalidator>().is_some()
}

/// Whether a backend answer counts as a failure for stale-if-error: any
/// 5xx (RFC 5861 names 500, 502, 503 and 504). A 4xx is the client's
/// answer, not the backend's failure.
pub(super) fn failed(status: StatusCode) -> bool {
    status.is_server_error()
}

impl Lookup {
    /// Answers the request: first the refresh rules of API Gateway's cache
    /// invalidation ("Invalidate an API Gateway cache entry",
    /// [`api-gateway-caching`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-caching.html)), then [`answer`](Self::answer).
    ///
    /// `Cache-Control: max-age=0` from a caller who may invalidate (or from
    /// anyone, when the policy does not require authorization) refreshes
    /// the entry. From anyone else, the policy's [`UnauthorizedStrategy`]
    /// decides: 403, or served as if absent, with a `Warning` or without.
    pub(super) async fn run<S, ReqB, ResB>(
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

    /// A hit, a coalesced miss, or a stale entry standing in for a failing
    /// backend. `refresh` passes over a fresh entry and replaces it (or,
    /// when the new response may not be stored, removes it). A store that
    /// fails to answer is a miss; one that fails to store is logged.
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
                    // One client's own answer (a cookie, `private`,
                    // `no-store`) is the leader's alone, like one too big
                    // to buffer: waiters ask the backend themselves.
                    let buffered = if keep.is_none() && is_private(res.headers()) {
                        if refresh && let Err(e) = store.invalidate(&key).await {
                            tracing::warn!(error = %e, "cache store failed to update an entry");
                        }
                        Err(res)
                    } else {
                        buffer(res).await
                    };
                    match buffered {
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
                                // A refresh replaces the entry: invalidated
                                // first, so that a shared tier tells the
                                // other processes to drop their copies.
                                Some(_) if refresh => {
                                    let dropped = store.invalidate(&key).await;
                                    let put = store.put(key.clone(), entry.clone()).await;
                                    put.and(dropped)
                                }
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

/// `d` in nanoseconds, saturating (at about 584 years).
pub(super) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
