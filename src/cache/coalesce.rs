//! One cacheable request: the lookup, the refresh rules and the coalesced
//! miss that every concurrent request on the key shares.

use std::future::Future;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{FutureExt, WeakShared};
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, Response, StatusCode};
use tower::Service;

use super::entry::*;
use super::layer::*;
use super::status::*;
use super::store::{CacheKey, CacheStore, CachedResponse};
use crate::auth::sigv4::SigV4Identity;
use crate::body::{Body, BoxError};
use crate::clock::Clock;
use crate::context::ApiKeyIdentity;
use crate::response::GatewayResponseKind;
use crate::usage::IntegrationLatency;

/// In-flight misses tracked before abandoned ones are swept out.
pub(super) const PRUNE_INFLIGHT_AT: usize = 1024;

/// One cacheable request.
pub(super) struct Lookup {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Arc<dyn CacheStore>,
    pub(super) key: CacheKey,
    pub(super) policy: Arc<CachePolicy>,
    pub(super) head: bool,
}

/// Whether the request's `Cache-Control` says `max-age=0`.
pub(super) fn asks_refresh(headers: &http::HeaderMap) -> bool {
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
pub(super) fn may_invalidate(ext: &http::Extensions) -> bool {
    ext.get::<ApiKeyIdentity>()
        .is_some_and(ApiKeyIdentity::can_invalidate_cache)
        || ext
            .get::<SigV4Identity>()
            .is_some_and(|s| s.can_invalidate_cache)
        || ext.get::<CacheInvalidator>().is_some()
}

/// Whether a backend answer counts as a failure for stale-if-error.
pub(super) fn failed(status: StatusCode) -> bool {
    status.is_server_error()
}

impl Lookup {
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

pub(super) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
