//! The machinery every deciding layer shares: decide now or after a store
//! answers, then call the inner service or answer for it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::body::{Body, BoxError};

/// What an admitting layer does to the response on its way out.
pub(crate) trait Finish: Send + 'static {
    fn finish(self, res: &mut Response<Body>);
}

impl Finish for () {
    fn finish(self, _: &mut Response<Body>) {}
}

impl<P: Finish> Finish for Option<P> {
    fn finish(self, res: &mut Response<Body>) {
        if let Some(p) = self {
            p.finish(res);
        }
    }
}

/// A layer's verdict. A rejection is boxed: it is the rare path, and it
/// keeps the common one small to move.
pub(crate) enum Decision<P> {
    Admit(P),
    Reject(Box<Response<Body>>),
}

/// A decision that waits for a store, holding the request meanwhile.
pub(crate) type Pending<ReqB, P> =
    Pin<Box<dyn Future<Output = (Decision<P>, Request<ReqB>)> + Send>>;

pin_project! {
    pub(crate) struct GateFuture<S, ReqB, P>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        kind: Kind<S, ReqB, P>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqB, P>
    where
        S: Service<Request<ReqB>>,
    {
        Waiting { decision: Pending<ReqB, P>, inner: Option<S> },
        Inner { #[pin] future: S::Future, post: Option<P> },
        Done { response: Option<Box<Response<Body>>> },
    }
}

impl<S, ReqB, P> GateFuture<S, ReqB, P>
where
    S: Service<Request<ReqB>>,
{
    /// Calls `inner` with `req` now, or answers for it.
    pub(crate) fn now(decision: Decision<P>, inner: &mut S, req: Request<ReqB>) -> Self {
        let kind = match decision {
            Decision::Admit(post) => Kind::Inner {
                future: inner.call(req),
                post: Some(post),
            },
            Decision::Reject(res) => Kind::Done {
                response: Some(res),
            },
        };
        Self { kind }
    }

    /// Waits for `decision`, then calls `inner` or answers. The instance
    /// that was polled ready is the one kept for the call; a clone stays
    /// behind in its place (tower's "be careful when cloning inner services").
    pub(crate) fn wait(decision: Pending<ReqB, P>, inner: &mut S) -> Self
    where
        S: Clone,
    {
        let clone = inner.clone();
        let ready = std::mem::replace(inner, clone);
        Self {
            kind: Kind::Waiting {
                decision,
                inner: Some(ready),
            },
        }
    }
}

impl<S, ReqB, ResB, P> Future for GateFuture<S, ReqB, P>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
    P: Finish,
{
    type Output = Result<Response<Body>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        loop {
            match kind.as_mut().project() {
                KindProj::Waiting { decision, inner } => {
                    let (decision, req) = ready!(decision.as_mut().poll(cx));
                    let next = match (decision, inner.take()) {
                        (Decision::Admit(post), Some(mut svc)) => Kind::Inner {
                            future: svc.call(req),
                            post: Some(post),
                        },
                        (Decision::Reject(res), _) => Kind::Done {
                            response: Some(res),
                        },
                        (Decision::Admit(_), None) => return Poll::Pending, // polled after completion
                    };
                    kind.set(next);
                }
                KindProj::Inner { future, post } => {
                    let mut res = ready!(future.poll(cx))?.map(Body::new);
                    if let Some(post) = post.take() {
                        post.finish(&mut res);
                    }
                    return Poll::Ready(Ok(res));
                }
                KindProj::Done { response } => {
                    return match response.take() {
                        Some(r) => Poll::Ready(Ok(*r)),
                        None => Poll::Pending, // polled after completion
                    };
                }
            }
        }
    }
}

/// The public response future of a deciding layer: an opaque wrapper, so the
/// machinery can change freely.
macro_rules! response_future {
    ($(#[$doc:meta])* $post:ty) => {
        pin_project_lite::pin_project! {
            $(#[$doc])*
            pub struct ResponseFuture<S, ReqB>
            where
                S: tower::Service<http::Request<ReqB>>,
            {
                #[pin]
                inner: crate::gate::GateFuture<S, ReqB, $post>,
            }
        }

        impl<S, ReqB> ResponseFuture<S, ReqB>
        where
            S: tower::Service<http::Request<ReqB>>,
        {
            pub(super) fn new(inner: crate::gate::GateFuture<S, ReqB, $post>) -> Self {
                Self { inner }
            }
        }

        impl<S, ReqB> std::fmt::Debug for ResponseFuture<S, ReqB>
        where
            S: tower::Service<http::Request<ReqB>>,
        {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("ResponseFuture").finish_non_exhaustive()
            }
        }

        impl<S, ReqB, ResB> std::future::Future for ResponseFuture<S, ReqB>
        where
            S: tower::Service<http::Request<ReqB>, Response = http::Response<ResB>>,
            ResB: http_body::Body<Data = bytes::Bytes> + Send + 'static,
            ResB::Error: Into<crate::body::BoxError>,
        {
            type Output = Result<http::Response<crate::body::Body>, S::Error>;

            fn poll(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Self::Output> {
                self.project().inner.poll(cx)
            }
        }
    };
}
pub(crate) use response_future;
