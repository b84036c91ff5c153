//! The body type of requests and responses that pass through tollgate.
//!
//! The [`Gateway`](crate::Gateway) hands the inner service a
//! `Request<tollgate::Body>` and answers with a `Response<tollgate::Body>`:
//! gateway responses (404, 429, ...) are small in-memory bodies, and whatever
//! the inner service streams is passed through unbuffered.
//!
//! ```
//! use http_body_util::BodyExt;
//! use tollgate::Body;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let body = Body::from("hello");
//! let bytes = body.collect().await.unwrap().to_bytes();
//! assert_eq!(&bytes[..], b"hello");
//! # }
//! ```

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// A boxed error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body: empty, a buffer in memory, or any other body,
/// boxed.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Full(Option<Bytes>),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// An empty body.
    pub const fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    /// Wraps any body whose data is [`Bytes`]. A `tollgate::Body` is taken as
    /// it is, not boxed a second time.
    pub fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        match try_downcast::<Body, B>(body) {
            Ok(body) => body,
            Err(body) => Self {
                kind: Kind::Boxed(body.map_err(Into::into).boxed_unsync()),
            },
        }
    }

    /// The length of a body held whole in memory (`None` for a streaming one).
    pub(crate) fn in_memory_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Full(b) => Some(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(_) => None,
        }
    }

    /// A body held in memory; `Bytes` clones share the buffer.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

fn try_downcast<T: 'static, K: 'static>(value: K) -> Result<T, K> {
    let mut slot = Some(value);
    if let Some(target) = (&mut slot as &mut dyn Any).downcast_mut::<Option<T>>()
        && let Some(found) = target.take()
    {
        return Ok(found);
    }
    match slot {
        Some(value) => Err(value),
        // Unreachable: the slot is only emptied on the Ok path above.
        None => unreachable_slot(),
    }
}

#[cold]
fn unreachable_slot<T>() -> T {
    unreachable!("downcast slot emptied without a match")
}

impl Default for Body {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full(b) => f
                .debug_struct("Body")
                .field("len", &b.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Boxed(_) => f.debug_struct("Body").field("streaming", &true).finish(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Self::full(b)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::full(s)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Self {
        Self::full(v)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Self::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Self::full(Bytes::from_static(s))
    }
}

impl From<()> for Body {
    fn from(_: ()) -> Self {
        Self::empty()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::Full;

    #[test]
    fn full_body_reports_exact_size_and_end() {
        let b = Body::from("abc");
        assert_eq!(b.size_hint().exact(), Some(3));
        assert!(!b.is_end_stream());
        assert!(Body::empty().is_end_stream());
        assert!(Body::full(Bytes::new()).is_end_stream());
    }

    #[test]
    fn a_tollgate_body_is_not_boxed_twice() {
        let b = Body::new(Body::from("abc"));
        assert!(matches!(b.kind, Kind::Full(Some(_))));
        let other = Body::new(Full::new(Bytes::from_static(b"x")));
        assert!(matches!(other.kind, Kind::Boxed(_)));
    }

    #[tokio::test]
    async fn boxed_body_streams_its_data() {
        let b = Body::new(Full::new(Bytes::from_static(b"streamed")));
        let out = b.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..], b"streamed");
    }
}
