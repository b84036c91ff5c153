use std::sync::Arc;

use tower::Layer;

use super::Route;
use super::config::Routes;
use super::service::Shared;
use crate::response::GatewayResponses;

/// Routes `/{stage}/{resource}` requests to their endpoint; see the
/// [module docs](crate::route).
#[derive(Debug, Clone)]
#[must_use]
pub struct RouteLayer {
    shared: Arc<Shared>,
}

impl RouteLayer {
    /// A route layer for resolved routes ([`RouteLayer::new`] builds one
    /// from a whole config).
    pub(crate) fn resolved(routes: &Routes, responses: GatewayResponses) -> Self {
        Self {
            shared: Arc::new(Shared::new(routes, responses)),
        }
    }

    /// The same, bounding request bodies to `max_body` bytes.
    pub(crate) fn with_max_body(
        routes: &Routes,
        responses: GatewayResponses,
        max_body: usize,
    ) -> Self {
        let mut shared = Shared::new(routes, responses);
        shared.max_body = Some(max_body);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Routes a request as the [`Route`] service does, for a gateway that
    /// composes the steps itself.
    pub(crate) fn route<B>(&self, req: http::Request<B>) -> super::service::Routing
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<crate::body::BoxError>,
    {
        self.shared.route(req)
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
