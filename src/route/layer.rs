use std::sync::Arc;

use tower::Layer;

use super::Route;
use super::service::Shared;
use crate::gateway::{Config, ConfigError, validate};
use crate::response::GatewayResponses;

/// Routes `/{stage}/{resource}` requests to their endpoint; see the
/// [module docs](crate::route).
#[derive(Debug, Clone)]
#[must_use]
pub struct RouteLayer {
    shared: Arc<Shared>,
}

impl RouteLayer {
    /// A route layer for the routes and stages of `config`, validated first.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let resolved = validate::resolve(config)?;
        Ok(Self::from_resolved(&resolved))
    }

    pub(crate) fn from_resolved(resolved: &validate::Resolved) -> Self {
        Self::reporting(resolved, false)
    }

    /// With `report`, responses carry where the request went (for usage).
    pub(crate) fn reporting(resolved: &validate::Resolved, report: bool) -> Self {
        Self {
            shared: Arc::new(Shared::new(resolved, report)),
        }
    }

    pub(crate) fn table(&self) -> &super::table::RouteTable {
        &self.shared.table
    }

    /// The gateway responses this layer answers with.
    pub fn responses(&self) -> &GatewayResponses {
        &self.shared.responses
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route::new(inner, self.shared.clone())
    }
}
