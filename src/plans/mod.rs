//! Usage plans: quotas per calendar period, counted per API key, and usage records.
//!
//! A plan (config `plans:`) names the stages its keys may call, a throttle
//! (see [`throttle`](crate::throttle)) and a [`Quota`]: at most `limit`
//! requests per key per period, periods calendar-aligned in UTC (a week
//! starts on Monday; `eternity` never resets). `offset`, as in API Gateway,
//! is subtracted from the limit in the key's first period (the one in which
//! the key was created).
//!
//! [`MeterLayer`] counts every request that reached it (after the key and
//! throttle layers: rejected requests do not count) in a [`CounterStore`];
//! one over quota gets 429 `QUOTA_EXCEEDED` `{"message":"Limit Exceeded"}`
//! with `Retry-After` to the end of the period and the RateLimit fields of
//! the quota (`"quota";q=LIMIT;w=PERIOD_SECONDS`). [`UsageRecords`] reads
//! what was counted the way API Gateway's GetUsage does, and grants or
//! resets quota (UpdateUsage).
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, StatusCode};
//! use tollgate::{ApiKeyIdentity, Body};
//! use tollgate::clock::ManualClock;
//! use tollgate::plans::{InMemoryCounterStore, MeterLayer, Period, Quota};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = MeterLayer::new(Quota::new(2, Period::Day), Arc::new(InMemoryCounterStore::new()))
//!     .clock(Arc::new(ManualClock::at_unix_secs(1_700_000_000)));
//! let mut svc = layer.layer(service_fn(|_req: Request<Body>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
//! }));
//! let req = || {
//!     let mut r = Request::get("/").body(Body::empty()).unwrap();
//!     r.extensions_mut().insert(ApiKeyIdentity::new("k1", Some(Arc::from("basic"))));
//!     r
//! };
//! assert_eq!(svc.ready().await?.call(req()).await?.status(), StatusCode::OK);
//! assert_eq!(svc.ready().await?.call(req()).await?.status(), StatusCode::OK);
//! let over = svc.ready().await?.call(req()).await?;
//! assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(over.headers()["x-tollgate-error-type"], "QUOTA_EXCEEDED");
//! # Ok(()) }
//! ```
//!
//! # Settings
//!
//! The root section `plans`, by name. A key joins plans through its own `plans`
//! list (see [`keys`](crate::keys)); a method counts against a plan only when
//! it has `api_key_required: true`.
//!
//! ```yaml
//! plans:
//!   basic:
//!     description: Free tier
//!     stages: [prod]
//!     throttle: { rate: 5, burst: 10 }                 # one bucket per key
//!     quota: { limit: 1000, period: day, offset: 0 }   # per key, per UTC day
//!     methods:
//!       /pets/POST: { throttle: { rate: 1, burst: 2 } } # per key and method
//! ```
//!
//! | field | unit | default | bounds |
//! |---|---|---|---|
//! | `stages` | stage names | `[]` | existing stages |
//! | `throttle` | `{ rate, burst }` | none | both required; as in [`throttle`](crate::throttle) |
//! | `quota.limit` | requests per period | required | at least 1 |
//! | `quota.period` | | required | `minute`, `hour`, `day`, `week`, `month`, `year` or `eternity` |
//! | `quota.offset` | requests | `0` | below `limit`; taken off the limit in the key's first period |
//! | `methods."RESOURCE/METHOD".throttle` | `{ rate, burst }` | none | both required; the method must be declared in `routes`; no `*` wildcards |
//! | `description` | | none | free text |
//!
//! Plan settings are not overlaid: each plan is whole. [`PlanManager`] changes
//! plans while the gateway serves, each change checked by the same rules.
//!
//! # Failure modes
//!
//! | case | answer |
//! |---|---|
//! | over quota | 429 `QUOTA_EXCEEDED` `{"message":"Limit Exceeded"}`, `Retry-After` to the period's end (at least 1 s), `RateLimit-Policy` and `RateLimit` for the quota, a [`QuotaRejection`] response extension |
//! | the counter store fails | admitted and not counted, the failure counted in [`MeterLayer::store_errors`] ([`FailMode::Open`](crate::store::FailMode::Open): the default, and a [`Gateway`](crate::Gateway)'s) |
//! | the same, on a [`MeterLayer`] set to [`FailMode::Closed`](crate::store::FailMode::Closed) | 503 `BACKEND_UNAVAILABLE` |
//!
//! The in-memory [`InMemoryCounterStore`] does not fail. A Redis counter store
//! (feature `redis`) fails when Redis does not answer within its call timeout;
//! a request admitted meanwhile is never counted afterwards. API Gateway's own
//! quotas are best effort, and answer 429 `QUOTA_EXCEEDED`
//! ([`api-gateway-api-usage-plans`](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-api-usage-plans.html), [`supported-gateway-response-types`](https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html)).
//!
//! # The usage endpoint
//!
//! With `usage_endpoint: /_usage` at the config's root, a `GET` of that
//! exact path (before any stage) answers the caller's own plans with the
//! API key it sends: each plan's throttle, and quota with `used` (requests
//! admitted in the current period, as GetUsage counts them) and
//! `remaining` (what is left, UpdateUsage grants included), a limit in
//! `mode: shadow` marked `"mode":"shadow"` (in a lifecycle of several APIs: on an
//! `{api_id}.execute-api` host or a mapped domain). No key, or an unknown, disabled or
//! expired one: 403 `INVALID_API_KEY`; a failing store: 503
//! `BACKEND_UNAVAILABLE`. The answer is `Cache-Control: no-store`. It is
//! no API's method, so no throttle or quota applies to it: each call reads
//! the key store and the counter store once per plan (put a front-door
//! limit before it if that matters with Redis). Beyond
//! API Gateway, whose usage only the account reads (GetUsage).
//!
//! ```text
//! $ curl -H 'x-api-key: demo-key-0123456789abcdef' http://127.0.0.1:8080/_usage
//! {"keyId":"3f9c2a1b7d","name":"demo","plans":[{"id":"basic",
//!  "throttle":{"rateLimit":5.0,"burstLimit":10},"quota":{"limit":50,"period":"DAY","used":3,"remaining":47}}]}
//! ```
//!
//! Config mistakes are refused when the config is read or built, and by
//! [`PlanManager`] for a change, each at its path:
//!
//! ```text
//! plans.p.stages[0]: unknown stage `nope`
//! plans.p.quota.offset: must be < limit (5)
//! plans.p.methods."/zz/GET": unknown route `/zz`
//! ```

mod book;
mod config;
mod counter;
mod meter;
mod own_usage;
mod period;
mod usage;

pub use self::book::PlanManager;
pub(crate) use self::book::{PlanBook, PlanChange, PlanSource, Plans};
pub use self::config::{PlanConfig, PlanMethodConfig, QuotaConfig};
pub(crate) use self::config::{check_plans, resolve_plans};
pub use self::counter::{Count, CounterKey, CounterKind, CounterStore, InMemoryCounterStore};
pub use self::meter::{Meter, MeterLayer, QuotaRejection, ResponseFuture};
pub(crate) use self::own_usage::OwnUsage;
pub use self::period::{Period, Window};
pub use self::usage::{PlanUsage, UsageRecords};

/// Checks `usage_endpoint`: an absolute path of 2 to 256 visible ASCII
/// characters, no query or fragment.
pub(crate) fn check_usage_endpoint(
    at: &str,
    path: &crate::config::PathBuf,
    issues: &mut crate::config::Issues,
) {
    let ok = at.starts_with('/')
        && (2..=256).contains(&at.len())
        && at
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    if !ok {
        issues.push(
            path,
            "a path: `/` then 1 to 255 visible ASCII characters, no `?` or `#` (`/_usage`)",
        );
    }
}

/// A quota: at most `limit` requests per key per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quota {
    /// Requests per period.
    pub limit: u64,
    /// The calendar period.
    pub period: Period,
    /// Requests subtracted from the limit in the key's first period.
    pub offset: u64,
    /// Alert thresholds: bit `p` set for `p` percent of the limit (1 to
    /// 100). Default none.
    pub alerts: u128,
    /// Evaluated and counted but not enforced: a request over it is
    /// admitted and reported as a would-be `QUOTA_EXCEEDED`.
    pub shadow: bool,
}

impl Quota {
    /// `limit` requests per `period`, no offset.
    pub const fn new(limit: u64, period: Period) -> Self {
        Self {
            limit,
            period,
            offset: 0,
            alerts: 0,
            shadow: false,
        }
    }

    /// With alerts at these percentages of the limit (1 to 100; others
    /// are ignored).
    pub fn with_alerts(mut self, percents: &[u8]) -> Self {
        for &p in percents {
            if (1..=100).contains(&p) {
                self.alerts |= 1u128 << p;
            }
        }
        self
    }

    /// The thresholds `used` reaches exactly, in percent, when the limit is
    /// `limit`: the count at which a threshold `p` fires is the smallest
    /// at or over `p` percent of the limit (at least 1).
    pub(crate) fn alerts_at(&self, used: i64, limit: i64) -> impl Iterator<Item = u8> + '_ {
        (1u8..=100)
            .filter(move |p| self.alerts & (1u128 << p) != 0)
            .filter(move |p| {
                let at = ((i128::from(limit) * i128::from(*p) + 99) / 100).max(1);
                i128::from(used) == at
            })
    }

    /// With an offset for the first period.
    pub const fn with_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// The limit in `window` for a key created at `created` (Unix seconds).
    pub fn limit_in(&self, window: Window, created: Option<i64>) -> i64 {
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        let first = created.is_some_and(|c| window.start <= c && c < window.end);
        if first {
            limit
                .saturating_sub(i64::try_from(self.offset).unwrap_or(i64::MAX))
                .max(0)
        } else {
            limit
        }
    }
}

impl From<QuotaConfig> for Quota {
    fn from(q: QuotaConfig) -> Self {
        Self {
            limit: q.limit,
            period: q.period,
            offset: q.offset,
            alerts: 0,
            shadow: q.mode == crate::throttle::LimitMode::Shadow,
        }
    }
}
