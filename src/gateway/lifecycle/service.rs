//! `LifecycleService`: one atomic load of the table, then the picked
//! stage's gateway.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::table::Table;
use crate::body::{Body, BoxError};
use crate::gateway::ResponseFuture;
use crate::gateway::service::call_on;

/// A service wrapped by a [`Lifecycle`](super::Lifecycle): each request
/// goes to the gateway of the stage it is for (by custom domain, then
/// `/{stage}` or `{api_id}.execute-api` host), or to that stage's canary.
///
/// The table of gateways is read with one atomic load per request; a change
/// to the lifecycle replaces it whole, so a request is served by one
/// deployment from its first step to its last, and requests in flight
/// finish on the deployment they started on. Clone it freely (a pointer
/// copy and a clone of the inner service).
#[derive(Clone)]
pub struct LifecycleService<S> {
    pub(super) table: Arc<ArcSwap<Table>>,
    pub(super) inner: S,
}

impl<S: fmt::Debug> fmt::Debug for LifecycleService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for LifecycleService<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let table = self.table.load();
        let (gateway, canary) = table.pick(&req);
        call_on(&gateway.shared, &mut self.inner, req, canary)
    }
}
