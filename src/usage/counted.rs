//! [`Counted`]: the request body the usage layer hands the inner service,
//! counting the bytes read when the length was not declared.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

pin_project_lite::pin_project! {
    /// A request body counted as it streams (when its length is not known
    /// up front).
    ///
    /// Counts the data bytes the inner service actually read, by the time
    /// the event is sent: a body the service never read counts 0. A body
    /// with a `Content-Length` (or an exact size hint) is not counted: the
    /// declared length is reported, and the wrapper costs one branch per
    /// frame. (Its `counter` is shared with the request's pending event;
    /// `None` when the length was declared or reporting is off.
    /// `pin_project_lite` takes no doc comments on fields.)
    pub struct Counted<B> {
        #[pin]
        inner: B,
        counter: Option<Arc<AtomicU64>>,
    }
}

impl<B: fmt::Debug> fmt::Debug for Counted<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counted")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Some(counter), Poll::Ready(Some(Ok(frame)))) = (this.counter.as_ref(), &polled)
            && let Some(data) = frame.data_ref()
        {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Counted<B> {
    /// `inner`, counted into `counter` when there is one.
    pub(super) fn new(inner: B, counter: Option<Arc<AtomicU64>>) -> Self {
        Self { inner, counter }
    }
}
