use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use tower::Layer;

use super::headers::Spec;
use super::service::Throttle;
use super::{InMemoryRateStore, KeyExtractor, LimitScope, Rate, RateStore};
use crate::clock::SystemClock;
use crate::context::PerEndpoint;
use crate::plans::PlanBook;
use crate::response::GatewayResponses;
use crate::store::FailMode;

/// Applies token-bucket limits; see the [module docs](crate::throttle).
#[derive(Clone)]
#[must_use]
pub struct ThrottleLayer {
    pub(super) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) store: Arc<dyn RateStore>,
    pub(super) source: Source,
    pub(super) responses: GatewayResponses,
    pub(super) fail_mode: FailMode,
    pub(super) headers: bool,
    pub(super) store_errors: Arc<AtomicU64>,
    /// Requests a limit in shadow mode would have refused.
    pub(super) shadow_rejections: Arc<AtomicU64>,
}

/// Where a request's limits come from.
#[derive(Clone)]
pub(super) enum Source {
    /// One limit, one bucket per extracted key.
    Standalone { spec: Spec, key: KeyExtractor },
    /// Every level the gateway config defines; plan limits from the plan book.
    Gateway(Arc<GatewayLimits>, PlanBook),
}

/// The limits of a gateway, resolved at build.
#[derive(Debug, Default)]
pub(crate) struct GatewayLimits {
    pub(crate) gateway: Option<Spec>,
    pub(crate) per_client: Option<Spec>,
    pub(crate) trusted_proxies: Vec<IpNet>,
    /// Each endpoint's own limit.
    pub(crate) methods: PerEndpoint<Spec>,
}

impl fmt::Debug for ThrottleLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        let mut d = f.debug_struct("ThrottleLayer");
        match &s.source {
            Source::Standalone { spec, key } => d.field("rate", &spec.rate).field("key", key),
            Source::Gateway(limits, _) => d.field("limits", limits),
        };
        d.field("store", &s.store)
            .field("fail_mode", &s.fail_mode)
            .field("headers", &s.headers)
            .finish()
    }
}

impl ThrottleLayer {
    /// The [`Throttle`](super::Throttle) service's decision without
    /// waiting (`None`: the store must be waited for): the buckets are
    /// charged, and an admission carries the `RateLimit` fields to stamp.
    pub(crate) fn decide_now(
        &self,
        head: crate::context::RequestHead<'_>,
    ) -> Option<super::service::Decision> {
        self.shared.decide_now(head)
    }

    /// One bucket of `rate` shared by every request, in memory on the system
    /// clock. Change the key with [`key`](Self::key) and the store with
    /// [`store`](Self::store).
    pub fn new(rate: Rate) -> Self {
        Self::with_source(
            Source::Standalone {
                spec: Spec::new(LimitScope::Custom, rate),
                key: KeyExtractor::global(),
            },
            Arc::new(InMemoryRateStore::new(SystemClock)),
        )
    }

    pub(crate) fn for_gateway(
        limits: GatewayLimits,
        plans: PlanBook,
        store: Arc<dyn RateStore>,
    ) -> Self {
        Self::with_source(Source::Gateway(Arc::new(limits), plans), store)
    }

    fn with_source(source: Source, store: Arc<dyn RateStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                source,
                responses: GatewayResponses::default(),
                fail_mode: FailMode::Open,
                headers: false,
                store_errors: Arc::new(AtomicU64::new(0)),
                shadow_rejections: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Picks each request's bucket (standalone layers only; a gateway's
    /// buckets follow its config).
    pub fn key(self, key: KeyExtractor) -> Self {
        self.edit(|s| {
            if let Source::Standalone { key: k, .. } = &mut s.source {
                *k = key;
            }
        })
    }

    /// Keeps buckets in `store` (for example one shared through Redis).
    pub fn store(self, store: Arc<dyn RateStore>) -> Self {
        self.edit(|s| s.store = store)
    }

    /// What to do when the store fails. Default [`FailMode::Open`]: admit and count.
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.edit(|s| s.fail_mode = mode)
    }

    /// Whether admitted responses carry `RateLimit-Policy` and `RateLimit`
    /// (429s always do). Default false, as API Gateway: see the
    /// [module docs](super) for why.
    pub fn headers(self, on: bool) -> Self {
        self.edit(|s| s.headers = on)
    }

    /// The gateway responses to answer 429 and 503 with.
    pub fn responses(self, responses: GatewayResponses) -> Self {
        self.edit(|s| s.responses = responses)
    }

    /// How many requests a limit in `mode: shadow` would have refused
    /// (each admitted, its usage event marked `THROTTLED`).
    pub fn shadow_rejections(&self) -> u64 {
        self.shared.shadow_rejections.load(Ordering::Relaxed)
    }

    /// How many store failures this layer (and its clones) has seen.
    pub fn store_errors(&self) -> u64 {
        self.shared.store_errors.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttle<S>;

    fn layer(&self, inner: S) -> Throttle<S> {
        Throttle::new(inner, self.shared.clone())
    }
}
