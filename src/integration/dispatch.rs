//! The gateway's last step: each method's integration, or the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use tower::Service;

use super::{HttpIntegration, MockIntegration};
use crate::body::{Body, BoxError};
use crate::clock::Clock;
use crate::context::PerEndpoint;
use crate::usage::IntegrationLatency;
use std::time::Duration;

/// A configured integration.
#[derive(Debug, Clone)]
pub(crate) enum Integration {
    Http(Box<HttpIntegration>),
    Mock(MockIntegration),
    Lambda(Box<super::lambda::LambdaIntegration>),
}

/// Sends each request to its method's integration; methods without one (the
/// `service` integration) go to the inner service.
#[derive(Clone)]
pub struct Integrations<S> {
    inner: S,
    /// `None` when no method has an integration of its own.
    by_endpoint: Option<PerEndpoint<Integration>>,
    /// Set when usage is reported: integration latency is measured.
    clock: Option<Arc<dyn Clock>>,
}

impl<S: fmt::Debug> fmt::Debug for Integrations<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integrations")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Integrations<S> {
    pub(crate) fn new(
        inner: S,
        by_endpoint: Option<PerEndpoint<Integration>>,
        clock: Option<Arc<dyn Clock>>,
    ) -> Self {
        Self {
            inner,
            by_endpoint,
            clock,
        }
    }
}

type Boxed = Pin<Box<dyn Future<Output = Result<Response<Body>, std::convert::Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Integrations`].
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        timing: Option<(Arc<dyn Clock>, u64)>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Ready { response: Option<Response<Body>> },
        Boxed { future: Boxed },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.kind.project() {
            KindProj::Inner { future } => future.poll(cx).map(|r| r.map(|r| r.map(Body::new))),
            KindProj::Ready { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| Response::new(Body::empty())))),
            KindProj::Boxed { future } => future
                .as_mut()
                .poll(cx)
                .map(|r| Ok(r.unwrap_or_else(|never| match never {}))),
        };
        match (polled, this.timing.take()) {
            (Poll::Ready(Ok(mut res)), Some((clock, start))) => {
                let took = clock.unix_nanos().saturating_sub(start);
                res.extensions_mut()
                    .insert(IntegrationLatency(Duration::from_nanos(took)));
                Poll::Ready(Ok(res))
            }
            (Poll::Pending, timing) => {
                *this.timing = timing;
                Poll::Pending
            }
            (ready, _) => ready,
        }
    }
}

impl<S, ResB> Service<Request<Body>> for Integrations<S>
where
    S: Service<Request<Body>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let integration = self
            .by_endpoint
            .as_ref()
            .and_then(|all| all.of(req.extensions()));
        let kind = match integration {
            None => Kind::Inner {
                future: self.inner.call(req),
            },
            Some(Integration::Mock(m)) => Kind::Ready {
                response: Some(m.respond_to(req.body().in_memory())),
            },
            Some(Integration::Http(h)) => Kind::Boxed {
                future: h.clone().call(req),
            },
            Some(Integration::Lambda(l)) => {
                let l = (**l).clone();
                Kind::Boxed {
                    future: Box::pin(async move { Ok(l.call(req).await) }),
                }
            }
        };
        let timing = self.clock.as_ref().map(|c| (c.clone(), c.unix_nanos()));
        ResponseFuture { kind, timing }
    }
}
