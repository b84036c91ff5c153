use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response};
use pin_project_lite::pin_project;

use crate::body::{Body, BoxError};
use crate::context::RequestId;

/// The header that carries the request id back to the client, as API Gateway's.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");

pin_project! {
    /// Response future of [`Route`](super::Route).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        request_id: RequestId,
        // The request's debug span (when debug logs are on): every layer's
        // decision logs inside it.
        span: Option<Box<tracing::Span>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<Body>> },
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn inner(
        future: F,
        request_id: RequestId,
        span: Option<Box<tracing::Span>>,
    ) -> Self {
        Self {
            kind: Kind::Inner { future },
            request_id,
            span,
        }
    }

    pub(super) fn rejected(response: Response<Body>, request_id: RequestId) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
            request_id,
            span: None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.kind.project() {
            KindProj::Inner { future } => {
                let _entered = this.span.as_ref().map(|s| s.enter());
                ready!(future.poll(cx))?.map(Body::new)
            }
            KindProj::Rejected { response } => match response.take() {
                Some(r) => r,
                None => return Poll::Pending, // polled after completion
            },
        };
        insert_request_id(response.headers_mut(), *this.request_id);
        Poll::Ready(Ok(response))
    }
}

/// Sets `x-amzn-requestid`, its value cut from the thread's chunk (no
/// allocation of its own).
pub(crate) fn insert_request_id(headers: &mut http::HeaderMap, id: RequestId) {
    let mut buf = [0u8; 36];
    let text = id.encode(&mut buf);
    if let Ok(v) = HeaderValue::from_maybe_shared(crate::slab::copy(&[text.as_bytes()])) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
}
