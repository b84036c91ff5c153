//! The cache's response future: a pass-through (marking `x-cache` when
//! asked) or the boxed lookup-and-fill of a cached method.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Response;

use super::entry::mark;
use super::status::CacheStatus;
use crate::body::{Body, BoxError};

pub(super) type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Cache`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        pub(super) kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    pub(super) enum Kind<F, E> {
        Pass { #[pin] future: F, status: Option<CacheStatus>, headers: bool },
        Cache { future: BoxedFuture<E> },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass {
                future,
                status,
                headers,
            } => {
                let res = std::task::ready!(future.poll(cx))?.map(Body::new);
                Poll::Ready(Ok(match status.take() {
                    Some(s) => mark(res, s, *headers),
                    None => res,
                }))
            }
            KindProj::Cache { future } => future.as_mut().poll(cx),
        }
    }
}
