use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tower::Layer;

use super::service::ApiKey;
use super::{InMemoryKeyStore, KeyHasher, KeySource, KeyStore};
use crate::clock::{Clock, SystemClock};
use crate::plans::PlanBook;
use crate::response::GatewayResponses;
use crate::store::FailMode;

/// Requires an API key; see the [module docs](crate::keys).
#[derive(Clone)]
#[must_use]
pub struct ApiKeyLayer {
    pub(super) shared: Arc<Shared>,
}

#[derive(Clone)]
pub(super) struct Shared {
    pub(super) store: Arc<dyn KeyStore>,
    pub(super) hasher: KeyHasher,
    pub(super) source: KeySource,
    pub(super) responses: GatewayResponses,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) fail_mode: FailMode,
    /// Behind a gateway: plan name to the stages it covers, and only methods
    /// with `api_key_required` ask for a key. Alone: every request does.
    pub(super) plans: Option<PlanBook>,
    pub(super) store_errors: Arc<AtomicU64>,
}

impl fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("store", &self.shared.store)
            .field("hasher", &self.shared.hasher)
            .field("source", &self.shared.source)
            .field("fail_mode", &self.shared.fail_mode)
            .finish_non_exhaustive()
    }
}

impl ApiKeyLayer {
    /// The [`ApiKey`](super::ApiKey) service's decision without waiting
    /// (`None`: the store must be waited for; the service does that). An
    /// admitted identity is put in the request's
    /// [`RequestContext`](crate::RequestContext).
    pub(crate) fn decide_now<B>(
        &self,
        req: &mut http::Request<B>,
    ) -> Option<super::service::Decision> {
        self.shared.decide_now(req).ok()
    }

    /// Requires, on every request, a key found in `store` (from the
    /// `x-api-key` header, hashed with SHA-256, on the system clock).
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Self {
            shared: Arc::new(Shared {
                store,
                hasher: KeyHasher::sha256(),
                source: KeySource::default(),
                responses: GatewayResponses::default(),
                clock: Arc::new(SystemClock),
                fail_mode: FailMode::Closed,
                plans: None,
                store_errors: Arc::new(AtomicU64::new(0)),
            }),
        }
    }

    /// A layer over an empty in-memory store (fill it through [`KeyManager`](super::KeyManager)).
    pub fn in_memory() -> (Self, Arc<InMemoryKeyStore>) {
        let store = Arc::new(InMemoryKeyStore::new());
        (Self::new(store.clone()), store)
    }

    pub(crate) fn for_gateway(store: Arc<dyn KeyStore>, plans: PlanBook) -> Self {
        let mut layer = Self::new(store);
        Arc::make_mut(&mut layer.shared).plans = Some(plans);
        layer
    }

    fn edit(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        f(Arc::make_mut(&mut self.shared));
        self
    }

    /// Where keys are read from.
    pub fn source(self, source: KeySource) -> Self {
        self.edit(|s| s.source = source)
    }

    /// How key values become digests (must match how the store's keys were hashed).
    pub fn hasher(self, hasher: KeyHasher) -> Self {
        self.edit(|s| s.hasher = hasher)
    }

    /// The clock that decides expiry.
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.edit(|s| s.clock = clock)
    }

    /// What to do when the store fails. Default [`FailMode::Closed`]: 503.
    /// `Open` admits the request without an identity (no plan limits apply).
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.edit(|s| s.fail_mode = mode)
    }

    /// The gateway responses to answer with.
    pub fn responses(self, responses: GatewayResponses) -> Self {
        self.edit(|s| s.responses = responses)
    }

    /// How many store failures this layer (and its clones) has seen.
    pub fn store_errors(&self) -> u64 {
        self.shared.store_errors.load(Ordering::Relaxed)
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKey<S>;

    fn layer(&self, inner: S) -> ApiKey<S> {
        ApiKey::new(inner, self.shared.clone())
    }
}
