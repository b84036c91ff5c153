//! `Cache<S>`: the caching middleware's service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::coalesce::Lookup;
use super::future::{Kind, ResponseFuture};
use super::key::Treatment;
use super::layer::Shared;
use super::status::CacheStatus;
use crate::body::{Body, BoxError};

/// The caching middleware.
#[derive(Clone)]
pub struct Cache<S> {
    pub(super) inner: S,
    pub(super) shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Cache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Cache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: Send + 'static,
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
        let kind = match self.shared.treatment(&req) {
            Treatment::Pass => Kind::Pass {
                future: self.inner.call(req),
                status: None,
                headers: false,
            },
            Treatment::Bypass(headers) => Kind::Pass {
                future: self.inner.call(req),
                status: Some(CacheStatus::Bypass),
                headers,
            },
            Treatment::Cache {
                store,
                key,
                policy,
                head,
            } => {
                // The instance polled ready goes with the request.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let lookup = Lookup {
                    shared: self.shared.clone(),
                    store,
                    key,
                    policy,
                    head,
                };
                Kind::Cache {
                    future: Box::pin(lookup.run(inner, req)),
                }
            }
        };
        ResponseFuture { kind }
    }
}
