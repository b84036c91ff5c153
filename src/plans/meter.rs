//! `MeterLayer`: counts requests against their key's quota.
//!
//! The meter reads the [`ApiKeyIdentity`] the API key layer left on the
//! request, so it goes inside that layer; a gateway also puts it inside the
//! throttle, so that only requests that got that far are counted. A request
//! without an identity, without a plan, or whose plan has no quota passes
//! uncounted.
//!
//! A counted request adds one to its quota period's counter if that is
//! below the limit ([`CounterStore::increment`]) and, when admitted, one to
//! the day's counter that [`UsageRecords`](super::UsageRecords) reads. The
//! window is fixed from the layer's clock when the request arrives, so a
//! request just before midnight counts in its own day however late the
//! store answers.
//!
//! Store failures follow [`FailMode`]: `Open` (the default) admits the
//! request uncounted and adds to [`MeterLayer::store_errors`]; `Closed`
//! answers 503 `BACKEND_UNAVAILABLE`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::{CounterKey, CounterKind, CounterStore, PlanBook, Quota, Window};
use crate::body::{Body, BoxError};
use crate::clock::{Clock, SystemClock};
use crate::context::ApiKeyIdentity;
use crate::gate::{self, GateFuture};
use crate::response::{GatewayResponseKind, GatewayResponses};
use crate::store::{FailMode, StoreError};
use crate::throttle::headers::{RATELIMIT, RATELIMIT_POLICY};
use crate::usage::ShadowRejection;

/// Daily usage counters are kept this long after their day, for usage records.
const RETENTION_SECS: i64 = 90 * 86_400;

/// Counts requests against quotas; see the [module docs](crate::plans).
#[derive(Clone)]
#[must_use]
pub struct MeterLayer {
    shared: Arc<Shared>,
}

/// What every clone of the layer and its services shares.
#[derive(Clone)]
struct Shared {
    store: Arc<dyn CounterStore>,
    quotas: Quotas,
    /// Decides the period a request falls in.
    clock: Arc<dyn Clock>,
    responses: GatewayResponses,
    fail_mode: FailMode,
    /// Store failures seen, shared with every clone (and kept when a
    /// builder method copies the settings).
    store_errors: Arc<AtomicU64>,
    /// Requests a shadow quota would have refused, shared likewise.
    shadow_rejections: Arc<AtomicU64>,
    /// Where quota alerts go (the gateway's reporters).
    notices: Arc<[crate::usage::Reporter]>,
}

/// Where a request's quota comes from.
#[derive(Clone)]
enum Quotas {
    /// One quota for every identified key.
    One(Quota),
    /// Each plan's quota, from the plan book.
    ByPlan(PlanBook),
}

/// Response extension of a 429 from the meter: the plan whose quota is used
/// up, and when it resets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRejection {
    /// The plan.
    pub plan: Arc<str>,
    /// The first second of the next period (Unix time).
    pub resets_at: i64,
}

impl fmt::Debug for MeterLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterLayer")
            .field("store", &self.shared.store)
            .field("fail_mode", &self.shared.fail_mode)
            .finish_non_exhaustive()
    }
}

impl MeterLayer {
    /// Applies `quota` to every request that carries an [`ApiKeyIdentity`]
    /// with a plan, counting in `store`.
    pub fn new(quota: Quota, store: Arc<dyn CounterStore>) -> Self {
        Self::with_quotas(Quotas::One(quota), store)
    }

    /// The gateway's meter: each key's quota is its plan's, read from the
    /// plan book on every request, so a plan change applies at once.
    pub(crate) fn for_gateway(plans: PlanBook, store: Arc<dyn CounterStore>) -> Self {
        Self::with_quotas(Quotas::ByPlan(plans), store)
    }

    /// The defaults: the system clock, the default gateway responses,
    /// [`FailMode::Open`].
    fn with_quotas(quotas: Quotas, store: Arc<dyn CounterStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                quotas,
                clock: Arc::new(SystemClock),
                responses: GatewayResponses::default(),
                fail_mode: FailMode::Open,
                store_errors: Arc::new(AtomicU64::new(0)),
                shadow_rejections: Arc::new(AtomicU64::new(0)),
                notices: Arc::new([]),
            }),
        }
    }

    /// Changes this layer's settings. Clones made earlier keep theirs
    /// (`Arc::make_mut` copies shared settings first).
    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// The clock that decides periods.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.edit(|s| s.clock = clock)
    }

    /// What a store failure does. Default [`FailMode::Open`]: admit, uncounted, and count the failure.
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.edit(|s| s.fail_mode = mode)
    }

    /// The gateway responses to answer with.
    pub fn responses(self, responses: GatewayResponses) -> Self {
        self.edit(|s| s.responses = responses)
    }

    /// Sends each plan's quota alerts (`alerts` thresholds) to these
    /// reporters' sinks as [`QuotaAlert`](crate::usage::QuotaAlert)
    /// notices. Default: none.
    pub fn alerts_to(self, reporters: Vec<crate::usage::Reporter>) -> Self {
        self.edit(|s| s.notices = reporters.into())
    }

    /// The [`Meter`] service's decision without waiting (`None`: the
    /// store must be waited for; nothing was counted).
    pub(crate) fn decide_now(&self, ext: &http::Extensions) -> Option<Decision> {
        match self.shared.charge(ext) {
            None => Some(gate::Decision::Admit(None)),
            Some(charge) => self.shared.now(&charge),
        }
    }

    /// How many store failures this layer (and its clones) has seen.
    pub fn store_errors(&self) -> u64 {
        self.shared.store_errors.load(Ordering::Relaxed)
    }

    /// How many requests a quota in `mode: shadow` would have refused
    /// (each admitted, its usage event marked `QUOTA_EXCEEDED`).
    pub fn shadow_rejections(&self) -> u64 {
        self.shared.shadow_rejections.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for MeterLayer {
    type Service = Meter<S>;

    fn layer(&self, inner: S) -> Meter<S> {
        Meter {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The meter middleware; see the [module docs](crate::plans).
#[derive(Clone)]
pub struct Meter<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Meter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

crate::gate::response_future! {
    /// Response future of [`Meter`].
    Option<ShadowRejection>
}

pub(crate) type Decision = gate::Decision<Option<ShadowRejection>>;

/// What one request is counted against (borrowing the request's identity,
/// or owning a copy on the path that waits for the store).
struct Charge<I> {
    identity: I,
    quota: Quota,
    /// The quota period that holds `now`.
    window: Window,
    /// The UTC day that holds `now`.
    day: Window,
    /// The request's time, Unix seconds.
    now: i64,
}

impl<I: std::ops::Deref<Target = ApiKeyIdentity>> Charge<I> {
    /// The quota period's counter.
    fn key(&self) -> CounterKey<'_> {
        CounterKey {
            key_id: self.identity.key_id(),
            plan: self.identity.plan().unwrap_or(""),
            kind: CounterKind::Quota,
            start: self.window.start,
        }
    }

    /// The day's counter, for usage records.
    fn day_key(&self) -> CounterKey<'_> {
        CounterKey {
            kind: CounterKind::Day,
            start: self.day.start,
            ..self.key()
        }
    }

    /// The limit in this window: the quota's, less its offset in the
    /// period in which the key was created.
    fn limit(&self) -> i64 {
        self.quota.limit_in(self.window, self.identity.created())
    }
}

impl Shared {
    /// What a request is counted against; `None` passes it uncounted (no
    /// identity, no plan, or a plan without a quota).
    fn charge<'a>(&self, req: &'a http::Extensions) -> Option<Charge<&'a ApiKeyIdentity>> {
        let identity = crate::context::api_key_of(req)?;
        let quota = match &self.quotas {
            Quotas::One(q) => *q,
            Quotas::ByPlan(book) => book.load().get(identity.plan()?)?.quota?,
        };
        identity.plan()?;
        let now = i64::try_from(self.clock.unix_nanos() / 1_000_000_000).unwrap_or(i64::MAX);
        Some(Charge {
            identity,
            quota,
            window: quota.period.window_at(now),
            day: super::Period::Day.window_at(now),
            now,
        })
    }

    /// The decision once the period's counter has answered.
    fn decide<I: std::ops::Deref<Target = ApiKeyIdentity>>(
        &self,
        charge: &Charge<I>,
        counted: Result<super::Count, StoreError>,
    ) -> Decision {
        match counted {
            Ok(c) if c.admitted => {
                if charge.quota.alerts != 0 {
                    self.alert(charge, c.used);
                }
                gate::Decision::Admit(None)
            }
            Ok(_) if charge.quota.shadow => {
                self.shadow_rejections.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    layer = "meter",
                    decision = "shadow",
                    key_id = charge.identity.key_id(),
                    "quota exceeded (shadow: admitted)"
                );
                gate::Decision::Admit(Some(ShadowRejection(GatewayResponseKind::QuotaExceeded)))
            }
            Ok(_) => gate::Decision::Reject(Box::new(self.over_quota(charge))),
            Err(e) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, fail_mode = ?self.fail_mode, "counter store failed");
                match self.fail_mode {
                    FailMode::Closed => gate::Decision::Reject(Box::new(
                        self.responses
                            .respond(GatewayResponseKind::BackendUnavailable),
                    )),
                    _ => gate::Decision::Admit(None),
                }
            }
        }
    }

    /// Notifies the thresholds `used` reaches. A count is reached by one
    /// request only (counters are atomic), so each fires once per key,
    /// plan and period; a grant (UpdateUsage) that lowers the count may
    /// let one fire again.
    fn alert<I: std::ops::Deref<Target = ApiKeyIdentity>>(&self, charge: &Charge<I>, used: i64) {
        if self.notices.is_empty() {
            return;
        }
        let limit = charge.limit();
        for p in charge.quota.alerts_at(used, limit) {
            let alert = crate::usage::QuotaAlert {
                time_unix_nanos: self.clock.unix_nanos(),
                key_id: Arc::from(charge.identity.key_id()),
                plan: Arc::from(charge.identity.plan().unwrap_or("")),
                threshold_percent: p,
                used,
                limit,
                period_start: charge.window.start,
            };
            for r in self.notices.iter() {
                r.notify(crate::usage::Notice::QuotaAlert(alert.clone()));
            }
        }
    }

    /// The 429 `QUOTA_EXCEEDED`: `Retry-After` to the end of the period (at
    /// least 1 s), `RateLimit-Policy: "quota";q=LIMIT;w=PERIOD_SECONDS`,
    /// `RateLimit: "quota";r=0;t=SECONDS_LEFT`, and a [`QuotaRejection`].
    fn over_quota<I: std::ops::Deref<Target = ApiKeyIdentity>>(
        &self,
        charge: &Charge<I>,
    ) -> Response<Body> {
        tracing::debug!(
            layer = "meter",
            decision = "reject",
            key_id = charge.identity.key_id(),
            "quota exceeded"
        );
        let mut res = self.responses.respond(GatewayResponseKind::QuotaExceeded);
        let wait = u64::try_from(charge.window.end.saturating_sub(charge.now))
            .unwrap_or(u64::MAX)
            .max(1);
        let period = u64::try_from(charge.window.end.saturating_sub(charge.window.start))
            .unwrap_or(u64::MAX);
        let h = res.headers_mut();
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(wait));
        if let Ok(v) = HeaderValue::try_from(format!("\"quota\";q={};w={period}", charge.limit())) {
            h.insert(RATELIMIT_POLICY, v);
        }
        if let Ok(v) = HeaderValue::try_from(format!("\"quota\";r=0;t={wait}")) {
            h.insert(RATELIMIT, v);
        }
        let plan = charge
            .identity
            .plan()
            .map(Arc::from)
            .unwrap_or_else(|| Arc::from(""));
        res.extensions_mut().insert(QuotaRejection {
            plan,
            resets_at: charge.window.end,
        });
        res
    }

    /// Counts a request now, if the store can; `None` sends it to `later`.
    /// The day's count is best effort: its failure only costs a usage
    /// record, so it is not a store error.
    fn now(&self, charge: &Charge<&ApiKeyIdentity>) -> Option<Decision> {
        let counted = self
            .store
            .increment_now(&charge.key(), charge.limit(), charge.window.end)?;
        if matches!(counted, Ok(c) if c.admitted) {
            let _ = self
                .store
                .add_now(&charge.day_key(), 1, charge.day.end + RETENTION_SECS);
        }
        Some(self.decide(charge, counted))
    }

    /// Counts a request on a store that must be awaited. The identity is
    /// owned, boxed, as the future outlives the request's borrow.
    async fn later(&self, charge: &Charge<Box<ApiKeyIdentity>>) -> Decision {
        let counted = self
            .store
            .increment(&charge.key(), charge.limit(), charge.window.end)
            .await;
        if matches!(counted, Ok(c) if c.admitted) {
            let _ = self
                .store
                .add(&charge.day_key(), 1, charge.day.end + RETENTION_SECS)
                .await;
        }
        self.decide(charge, counted)
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Meter<S>
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
        // Decide without waiting when the store can, borrowing the identity;
        // otherwise take an owned copy into a future that waits.
        let waiting = match self.shared.charge(req.extensions()) {
            None => Err(gate::Decision::Admit(None)),
            Some(charge) => match self.shared.now(&charge) {
                Some(decision) => Err(decision),
                None => {
                    let Charge {
                        identity,
                        quota,
                        window,
                        day,
                        now,
                    } = charge;
                    Ok(Charge {
                        identity: Box::new(identity.clone()),
                        quota,
                        window,
                        day,
                        now,
                    })
                }
            },
        };
        let gate = match waiting {
            Err(decision) => GateFuture::now(decision, &mut self.inner, req),
            Ok(charge) => {
                let shared = self.shared.clone();
                let decision: gate::Pending<ReqB, Option<ShadowRejection>> =
                    Box::pin(async move { (shared.later(&charge).await, req) });
                GateFuture::wait(decision, &mut self.inner)
            }
        };
        ResponseFuture::new(gate)
    }
}
