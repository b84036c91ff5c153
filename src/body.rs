//! The body type of requests and responses that pass through tollgate.
//!
//! The [`Gateway`](crate::Gateway) hands the inner service a
//! `Request<tollgate::Body>` and answers with a `Response<tollgate::Body>`:
//! gateway responses (404, 429, ...) are small in-memory bodies, and whatever
//! the inner service streams is passed through unbuffered.
//!
//! A body the gateway must read whole (to hash it for SigV4, or to render a
//! mapping template) is read by one helper with two bounds: a size (a
//! declared `Content-Length` over it is refused before a byte is read) and a
//! time, [`DEFAULT_BODY_TIMEOUT`] unless `limits.body_timeout_ms` says
//! otherwise. Its frames are copied into one buffer as they arrive, so a
//! client writing one byte at a time cannot make the gateway hold a
//! transport buffer per byte.
//!
//! | fault | gateway response |
//! |---|---|
//! | declared or found longer than the limit | 413 `REQUEST_TOO_LARGE` |
//! | not all there within the timeout | 408 `REQUEST_TIMEOUT` |
//! | the body itself fails (client gone, broken chunk) | 400 `BAD_REQUEST_BODY` |
//!
//! The timeout needs Tokio's timer. Outside a Tokio runtime, or on one
//! built without `enable_time`, the body is read without a time limit
//! rather than panicking; on a runtime without timers a warning says so.
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
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use serde::Deserialize;

/// A boxed error, as tower and hyper use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request or response body: empty, a buffer in memory, or any other body,
/// boxed.
///
/// Gateway responses and bodies tollgate has read whole are held in memory
/// without a box or a vtable, so their size is exact and known without
/// polling; anything else is boxed once. The error type is [`BoxError`],
/// whatever the wrapped body's was.
pub struct Body {
    kind: Kind,
}

/// What a [`Body`] holds.
enum Kind {
    /// Bytes in memory, yielded as one frame; `None` once yielded, and for
    /// an empty body (which then is at its end from the start).
    Full(Option<Bytes>),
    /// Any other body. `UnsyncBoxBody`, not `BoxBody`: the body needs to be
    /// `Send` to cross threads with its request, but never `Sync`, and not
    /// requiring `Sync` admits bodies that are not.
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

    /// The bytes of a body held whole in memory (`None` for a streaming one).
    pub(crate) fn in_memory(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Full(b) => Some(b.as_deref().unwrap_or(&[])),
            Kind::Boxed(_) => None,
        }
    }

    /// A body held in memory; `Bytes` clones share the buffer. Its size hint
    /// is exact, and an empty buffer is the same as [`Body::empty`].
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }
}

/// `value` as a `T` when `K` is `T`, else `value` back; a runtime type
/// check, no `unsafe`. Lets [`Body::new`] take a `Body` as it is instead
/// of boxing it inside another.
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

/// The impossible branch of [`try_downcast`], kept out of line.
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

/// Bounds on what one client may make the gateway hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct LimitsConfig {
    /// Milliseconds a request body that the gateway reads whole (to hash it
    /// for SigV4, or to render a mapping template) may take to arrive,
    /// `1 ..= 600000`; past it the request gets 408 `REQUEST_TIMEOUT`.
    /// Default 10000. Bodies that stream through unread are not timed.
    #[serde(default)]
    pub body_timeout_ms: Option<u64>,
    /// The largest request body, `1B ..= 1GiB`. Default 10 MiB, API
    /// Gateway's payload limit. A request that declares more
    /// (`Content-Length`) gets 413 `REQUEST_TOO_LARGE` at once, its body
    /// never read; one that streams more (chunked) has its body end in an
    /// error at the limit, which the layers reading it whole answer 413 and
    /// an inner service sees as [`http_body_util::LengthLimitError`] (axum
    /// answers 413 for it).
    #[serde(default)]
    pub max_body: Option<crate::config::ByteSize>,
    /// The most requests in flight at once across the gateway (and its
    /// clones), from routing to the response head, `1 ..= 10000000`.
    /// Past it a request gets 503 `BACKEND_UNAVAILABLE` with `Retry-After:
    /// 1` at once, before any other step. Default: no bound.
    #[serde(default)]
    pub max_concurrency: Option<u64>,
}

/// API Gateway's payload limit: 10 MiB, the default `limits.max_body`.
pub const DEFAULT_MAX_BODY: u64 = 10 << 20;

/// The front door's limits, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EdgeLimits {
    pub(crate) max_body: u64,
    pub(crate) max_concurrency: Option<usize>,
}

impl LimitsConfig {
    /// Checks `max_body` and `max_concurrency` and resolves them.
    pub(crate) fn resolve_edge(
        &self,
        path: &crate::config::PathBuf,
        issues: &mut crate::config::Issues,
    ) -> EdgeLimits {
        let max_body = match self.max_body {
            Some(b) if (1..=1 << 30).contains(&b.0) => b.0,
            Some(_) => {
                issues.push(&path.field("max_body"), "must be 1 byte to 1 GiB");
                DEFAULT_MAX_BODY
            }
            None => DEFAULT_MAX_BODY,
        };
        let max_concurrency = match self.max_concurrency {
            Some(n @ 1..=10_000_000) => usize::try_from(n).ok(),
            Some(_) => {
                issues.push(&path.field("max_concurrency"), "must be 1 to 10000000");
                None
            }
            None => None,
        };
        EdgeLimits {
            max_body,
            max_concurrency,
        }
    }

    /// Checks the section and resolves the body timeout.
    pub(crate) fn resolve(
        &self,
        path: &crate::config::PathBuf,
        issues: &mut crate::config::Issues,
    ) -> Duration {
        match self.body_timeout_ms {
            Some(ms @ 1..=600_000) => Duration::from_millis(ms),
            Some(_) => {
                issues.push(&path.field("body_timeout_ms"), "must be 1 to 600000");
                DEFAULT_BODY_TIMEOUT
            }
            None => DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// The default time a request body that the gateway reads whole may take to
/// arrive: 10 seconds (`limits.body_timeout_ms`); past it the request gets
/// 408 `REQUEST_TIMEOUT`.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The bounds on a body that is read whole before a decision (SigV4's hash,
/// a mapping template): at most `max` bytes, arriving within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyLimits {
    /// The most bytes read; one more is [`ReadError::TooLarge`].
    pub(crate) max: usize,
    /// The longest the whole read may take; `None` waits as long as the
    /// client takes.
    pub(crate) timeout: Option<Duration>,
}

/// Why a body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Declared or found larger than the limit (413).
    TooLarge,
    /// Not all there before the timeout (408).
    TimedOut,
    /// The body failed (the client went away, a broken chunk): 400.
    Failed,
}

impl ReadError {
    /// The gateway response this fault is answered with.
    pub(crate) fn kind(self) -> crate::response::GatewayResponseKind {
        use crate::response::GatewayResponseKind as K;
        match self {
            Self::TooLarge => K::RequestTooLarge,
            Self::TimedOut => K::RequestTimeout,
            Self::Failed => K::BadRequestBody,
        }
    }
}

/// The most reserved up front from a declared length: an announced size is
/// only a claim, so memory follows what arrives.
const INITIAL_RESERVE: usize = 16 << 10;

/// Reads a whole body within `limits`: the one bounded-buffering helper.
///
/// - A declared length over the limit (the body's size hint, which is
///   `Content-Length` for hyper's bodies) is refused before a byte is read.
/// - Frames are copied into one growing buffer and dropped at once, never
///   held: a client writing one-byte frames must not pin a transport read
///   buffer per byte. A body of one frame is kept as it is, without a copy.
/// - The whole read is bounded by `limits.timeout`.
pub(crate) async fn read_bounded<B>(body: B, limits: BodyLimits) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
{
    if body.size_hint().lower() > limits.max as u64 {
        return Err(ReadError::TooLarge);
    }
    let Some(deadline) = limits.timeout.and_then(timer) else {
        return read_all(body, limits.max).await;
    };
    let mut read = std::pin::pin!(read_all(body, limits.max));
    let mut deadline = std::pin::pin!(deadline);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = read.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        deadline
            .as_mut()
            .poll(cx)
            .map(|()| Err(ReadError::TimedOut))
    })
    .await
}

/// A Tokio sleep of `t`, or `None` outside a Tokio runtime or on one
/// without timers (built without `enable_time`), where Tokio would panic:
/// the body is then read without a time limit (and, for a runtime without
/// timers, a warning says so once per thread).
fn timer(t: Duration) -> Option<tokio::time::Sleep> {
    thread_local!(static NO_TIMER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    if NO_TIMER.get() || tokio::runtime::Handle::try_current().is_err() {
        return None;
    }
    match std::panic::catch_unwind(|| tokio::time::sleep(t)) {
        Ok(sleep) => Some(sleep),
        Err(_) => {
            NO_TIMER.set(true);
            tracing::warn!(
                "the Tokio runtime has no timers (enable_time): bodies are read without a time limit"
            );
            None
        }
    }
}

/// [`read_bounded`] without the timer: reads until the body ends, at most
/// `max` bytes. Trailers are skipped; the buffer grows by what arrives,
/// reserving at most [`INITIAL_RESERVE`] ahead on the strength of the
/// size hint.
async fn read_all<B>(body: B, max: usize) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut gathered = Gather::new(body.size_hint().lower());
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(frame) = frame else {
            return Err(ReadError::Failed);
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not part of the content
        };
        if data.len() > max - gathered.len() {
            return Err(ReadError::TooLarge);
        }
        gathered.push(data);
    }
    Ok(gathered.finish())
}

/// What has been read of a body, gathered into one buffer: the copying
/// discipline of every bounded read (request bodies here, a backend's
/// response in the cache).
///
/// The first data frame is kept as it is (a body of one frame is never
/// copied); a second one starts one growing buffer that every later frame
/// is copied into and then dropped. Frames are never held: a peer writing
/// one-byte frames must not pin a transport read buffer per byte. The
/// buffer reserves at most [`INITIAL_RESERVE`] ahead on the strength of a
/// declared length (only a claim), then grows by what arrives.
#[derive(Debug, Default)]
pub(crate) struct Gather {
    /// The first frame, until a second one arrives.
    first: Option<Bytes>,
    /// Every frame from the second on, the first copied in ahead of them.
    copied: BytesMut,
    /// The declared length (size hint), capped when reserving.
    hint: usize,
}

impl Gather {
    /// Nothing gathered yet, for a body declaring `hint` bytes.
    pub(crate) fn new(hint: u64) -> Self {
        Self {
            first: None,
            copied: BytesMut::new(),
            hint: usize::try_from(hint).unwrap_or(usize::MAX),
        }
    }

    /// Bytes gathered so far.
    pub(crate) fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.copied.len()
    }

    /// Adds one data frame (an empty one is dropped).
    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match self.first.take() {
            None if self.copied.is_empty() => self.first = Some(data),
            taken => {
                if let Some(head) = taken {
                    let both = head.len() + data.len();
                    self.copied
                        .reserve(self.hint.min(INITIAL_RESERVE).max(both));
                    self.copied.extend_from_slice(&head);
                }
                self.copied.extend_from_slice(&data);
            }
        }
    }

    /// Everything gathered, as one buffer.
    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| self.copied.freeze())
    }

    /// Everything gathered, in a buffer of its own: a body of one frame is
    /// copied too, since that frame may be a slice of a much larger buffer
    /// (a transport's read buffer) that would stay alive with it. For what
    /// is kept long (a cache entry), so its memory is what it weighs.
    pub(crate) fn finish_owned(self) -> Bytes {
        match self.first {
            Some(one) => Bytes::copy_from_slice(&one),
            None => self.copied.freeze(),
        }
    }

    /// Everything gathered, as the chunks to replay ahead of the rest of the
    /// body (none, or one).
    pub(crate) fn into_chunks(self) -> Vec<Bytes> {
        let all = self.finish();
        if all.is_empty() {
            Vec::new()
        } else {
            vec![all]
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
