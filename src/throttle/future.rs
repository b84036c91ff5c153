use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::service::{Decision, Stamp};
use crate::body::{Body, BoxError};

/// A decision that waits for the store, holding the request meanwhile.
pub(super) type Pending<ReqB> = Pin<Box<dyn Future<Output = (Decision, Request<ReqB>)> + Send>>;

pin_project! {
    /// Response future of [`Throttle`](super::Throttle).
    pub struct ResponseFuture<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        kind: Kind<S, ReqB>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqB>
    where
        S: Service<Request<ReqB>>,
    {
        Checking {
            decision: Pending<ReqB>,
            inner: Option<S>,
        },
        Inner {
            #[pin]
            future: S::Future,
            stamp: Option<Stamp>,
        },
        Done {
            response: Option<Box<Response<Body>>>,
        },
    }
}

impl<S, ReqB> fmt::Debug for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqB> ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>>,
{
    pub(super) fn inner(future: S::Future, stamp: Option<Stamp>) -> Self {
        Self {
            kind: Kind::Inner { future, stamp },
        }
    }

    pub(super) fn done(response: Box<Response<Body>>) -> Self {
        Self {
            kind: Kind::Done {
                response: Some(response),
            },
        }
    }

    pub(super) fn checking(decision: Pending<ReqB>, inner: S) -> Self {
        Self {
            kind: Kind::Checking {
                decision,
                inner: Some(inner),
            },
        }
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Checking { decision, inner } => {
                    let (decision, req) = ready!(decision.as_mut().poll(cx));
                    let next = match decision {
                        Decision::Admit(stamp) => match inner.take() {
                            Some(mut svc) => Kind::Inner {
                                future: svc.call(req),
                                stamp,
                            },
                            None => return Poll::Pending, // polled after completion
                        },
                        Decision::Reject(res) => Kind::Done {
                            response: Some(res),
                        },
                    };
                    kind.set(next);
                }
                KindProj::Inner { future, stamp } => {
                    let mut res = ready!(future.poll(cx))?.map(Body::new);
                    if let Some(stamp) = stamp {
                        stamp.apply(res.headers_mut());
                    }
                    return Poll::Ready(Ok(res));
                }
                KindProj::Done { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(*r)),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}
