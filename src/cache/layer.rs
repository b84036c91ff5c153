//! `CacheLayer`: where each endpoint's responses are cached (one store for
//! a standalone layer, each stage's store and each method's policy in a
//! gateway), and what every clone of the middleware shares.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::future::{Shared as SharedFuture, WeakShared};
use tower::Layer;

use super::CachePolicy;
use super::service::Cache;
use super::store::{CacheKey, CacheStore, CachedResponse};
use crate::clock::{Clock, SystemClock};
use crate::context::PerEndpoint;
use crate::response::GatewayResponses;
use crate::usage::IntegrationLatency;

/// Caches responses; see the [module docs](crate::cache).
#[derive(Clone)]
#[must_use]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

/// What a flight shares: the entry, and how long the backend took (the
/// leader's to report).
pub(super) type Landed = Option<(Arc<CachedResponse>, Option<IntegrationLatency>)>;
pub(super) type Flight = SharedFuture<Pin<Box<dyn Future<Output = Landed> + Send>>>;
pub(super) type WeakFlight = WeakShared<Pin<Box<dyn Future<Output = Landed> + Send>>>;

pub(super) struct Shared {
    pub(super) stores: Stores,
    pub(super) policy: Arc<CachePolicy>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) responses: GatewayResponses,
    pub(super) inflight: Mutex<HashMap<CacheKey, WeakFlight>>,
}

/// Where one gateway method's responses go, and how.
pub(crate) type EndpointCache = (Arc<dyn CacheStore>, Arc<CachePolicy>);

#[derive(Clone)]
pub(super) enum Stores {
    /// One store; every request's key is its method, path and query.
    Standalone(Arc<dyn CacheStore>),
    /// Each cached endpoint's stage store and policy, by endpoint index
    /// (resolved when the gateway is built); keys from each method's settings.
    Gateway(PerEndpoint<EndpointCache>),
    /// A gateway whose config caches nothing: every request passes untouched.
    Off,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.shared.stores {
            Stores::Standalone(_) => "standalone",
            Stores::Gateway(_) => "gateway",
            Stores::Off => "off",
        };
        f.debug_struct("CacheLayer")
            .field("mode", &mode)
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

impl CacheLayer {
    /// Whether requests to endpoint `index` can be cached (or bypass a
    /// cache): `false` when the layer passes them through untouched.
    pub(crate) fn covers(&self, index: usize) -> bool {
        match &self.shared.stores {
            Stores::Standalone(_) => true,
            Stores::Gateway(all) => all.at(index).is_some(),
            Stores::Off => false,
        }
    }

    /// Caches every request the policy allows in `store`, keyed by method, path and query.
    pub fn new(store: Arc<dyn CacheStore>, policy: CachePolicy) -> Self {
        Self::build(
            Stores::Standalone(store),
            Arc::new(policy),
            Arc::new(SystemClock),
            GatewayResponses::default(),
        )
    }

    /// The store and policy of each endpoint whose method caches; when none
    /// does, a layer that only passes requests on.
    pub(crate) fn for_gateway(
        by_endpoint: PerEndpoint<EndpointCache>,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> Self {
        let stores = if by_endpoint.is_empty() {
            Stores::Off
        } else {
            Stores::Gateway(by_endpoint)
        };
        Self::build(stores, Arc::default(), clock, responses)
    }

    fn build(
        stores: Stores,
        policy: Arc<CachePolicy>,
        clock: Arc<dyn Clock>,
        responses: GatewayResponses,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                stores,
                policy,
                clock,
                responses,
                inflight: Mutex::default(),
            }),
        }
    }

    /// The same layer reading time from `clock` (tests use a manual clock).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let s = &self.shared;
        Self::build(
            s.stores.clone(),
            s.policy.clone(),
            clock,
            s.responses.clone(),
        )
    }

    /// The same layer answering with `responses` (the 403 of
    /// [`UnauthorizedStrategy::FailWith403`](super::UnauthorizedStrategy::FailWith403)).
    pub fn responses(self, responses: GatewayResponses) -> Self {
        let s = &self.shared;
        Self::build(
            s.stores.clone(),
            s.policy.clone(),
            s.clock.clone(),
            responses,
        )
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            shared: self.shared.clone(),
        }
    }
}
