//! `GatewayService`: the composed stack around an inner service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::auth::authorizer::Authorize;
use crate::auth::sigv4::{self, SigV4};
use crate::body::{Body, BoxError};
use crate::cache::Cache;
use crate::integration::Integrations;
use crate::keys::ApiKey;
use crate::mapping::Mapping;
use crate::plans::Meter;
use crate::route::{self, Route};
use crate::throttle::Throttle;
use crate::usage::Usage;

/// The layers below routing and SigV4, innermost last.
type Stack<S> = Authorize<ApiKey<Throttle<Meter<Cache<Mapping<Integrations<S>>>>>>>;

/// A service wrapped by a [`Gateway`](crate::Gateway). Clone it freely: clones share every limit and cache.
#[derive(Debug, Clone)]
pub struct GatewayService<S> {
    pub(super) inner: Usage<Route<SigV4<Stack<S>>>>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GatewayService<S>
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
    type Future = ResponseFuture<S, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Service::<Request<ReqB>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// Response future of [`GatewayService`].
    pub struct ResponseFuture<S, ResB>
    where
        S: Service<Request<Body>, Response = Response<ResB>>,
        S: Clone,
        S: Send,
        S: 'static,
        S::Future: Send,
        S::Future: 'static,
        S::Error: Send,
        S::Error: 'static,
        ResB: http_body::Body<Data = Bytes>,
        ResB: Send,
        ResB: 'static,
        ResB::Error: Into<BoxError>,
    {
        #[pin]
        inner: crate::usage::ResponseFuture<route::ResponseFuture<sigv4::ResponseFuture<Stack<S>, Body>>>,
    }
}

impl<S, ResB> Future for ResponseFuture<S, ResB>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
