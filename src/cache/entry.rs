//! Responses as entries: what may be stored, buffering a response, and
//! answering from an entry.
//!
//! What may be stored follows the response directives of RFC 9111 (HTTP
//! Caching, section 5.2.2) as a shared cache must: `no-store` and `private`
//! keep a response out; `max-age` and `s-maxage` may shorten the entry's
//! life below the policy's TTL, never lengthen it. `no-cache` is not
//! treated specially: the entry is stored and served without revalidation.
//! A response with `Set-Cookie` is never stored, although API Gateway
//! would store it: a cookie served from a shared cache goes to the wrong
//! client.
//!
//! A response is buffered whole before it is stored. One that cannot be
//! (too big, trailers, a body error) is not lost: it is rebuilt around the
//! bytes already read and passed to the client unstored.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AGE, CACHE_CONTROL, SET_COOKIE};
use http::{HeaderValue, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::status::*;
use super::store::{CachedResponse, MAX_ENTRY_BODY};
use crate::body::{Body, BoxError, Gather};

/// Whether a response belongs to the client it answers: it sets a cookie,
/// or says `Cache-Control: private` or `no-store` (RFC 9111 5.2.2). Never
/// stored, and never handed to another client waiting on the same miss.
pub(super) fn is_private(headers: &http::HeaderMap) -> bool {
    headers.contains_key(SET_COOKIE)
        || directives(headers).any(|(name, _)| {
            name.eq_ignore_ascii_case("private") || name.eq_ignore_ascii_case("no-store")
        })
}

/// Every `Cache-Control` directive of `headers` as `(name, argument)`, both
/// trimmed (the argument empty when there is none); values that are not
/// text are skipped.
pub(super) fn directives(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| {
            let (name, arg) = d.split_once('=').unwrap_or((d, ""));
            (name.trim(), arg.trim())
        })
}

/// Whether a response may be stored, and for how long: `None` when not
/// (status not allowed, a private answer, or a `max-age` of 0), else the
/// policy's TTL, shortened by the smallest `max-age` or `s-maxage` when the
/// policy honours them. Directive names are matched in any case.
pub(super) fn storable(
    policy: &CachePolicy,
    status: StatusCode,
    headers: &http::HeaderMap,
) -> Option<Duration> {
    if !policy.statuses.allows(status) || is_private(headers) {
        return None;
    }
    let mut ttl = policy.ttl;
    if policy.honor_max_age {
        for (name, arg) in directives(headers) {
            if (name.eq_ignore_ascii_case("max-age") || name.eq_ignore_ascii_case("s-maxage"))
                && let Ok(secs) = arg.trim_matches('"').parse::<u64>()
            {
                ttl = ttl.min(Duration::from_secs(secs));
            }
        }
    }
    (!ttl.is_zero()).then_some(ttl)
}

/// The response for a stored entry.
///
/// The entry's status and headers, and its body as a shared `Bytes` (no
/// copy; empty for HEAD). When `headers`, `x-cache` says `status` and, but
/// for a miss, `Age` gives the whole seconds since the entry was stored
/// (RFC 9111 section 5.1). The [`CacheStatus`] goes in the extensions
/// either way, for usage records.
pub(super) fn from_entry(
    entry: &CachedResponse,
    status: CacheStatus,
    head: bool,
    now: u64,
    headers: bool,
) -> Response<Body> {
    let body = if head {
        Body::empty()
    } else {
        Body::full(entry.body().clone())
    };
    tracing::debug!(
        layer = "cache",
        decision = status.as_str(),
        "cache answered"
    );
    let mut res = Response::new(body);
    *res.status_mut() = entry.status();
    *res.headers_mut() = entry.headers().clone();
    if headers {
        res.headers_mut()
            .insert(X_CACHE.clone(), HeaderValue::from_static(status.as_str()));
        if status != CacheStatus::Miss {
            let age = now.saturating_sub(entry.stored_at()) / 1_000_000_000;
            res.headers_mut().insert(AGE, HeaderValue::from(age));
        }
    }
    res.extensions_mut().insert(status);
    res
}

/// A response from the backend, passed on unchanged but for `x-cache`
/// (when `headers`) and the [`CacheStatus`] extension.
pub(super) fn mark(mut res: Response<Body>, status: CacheStatus, headers: bool) -> Response<Body> {
    tracing::debug!(
        layer = "cache",
        decision = status.as_str(),
        "cache passed the request on"
    );
    if headers {
        res.headers_mut()
            .insert(X_CACHE.clone(), HeaderValue::from_static(status.as_str()));
    }
    res.extensions_mut().insert(status);
    res
}

/// A body that first yields the frames already read, then the rest.
pub(super) struct Prefixed<B> {
    /// Frames taken from the body before buffering gave up, in order.
    read: std::collections::VecDeque<http_body::Frame<Bytes>>,
    /// The body they were taken from, or [`Failed`] carrying its error.
    rest: B,
}

impl<B> http_body::Body for Prefixed<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// The response rebuilt around the frames read so far and the rest of its body.
///
/// `chunks` is the data read, `held` a trailers frame that stopped the
/// buffering: the client gets every byte and trailer the backend sent, in
/// order, as if the cache had never looked.
pub(super) fn unbuffered<B>(
    parts: http::response::Parts,
    chunks: Vec<Bytes>,
    held: Option<http_body::Frame<Bytes>>,
    rest: B,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let read = chunks
        .into_iter()
        .map(http_body::Frame::data)
        .chain(held)
        .collect();
    Response::from_parts(parts, Body::new(Prefixed { read, rest }))
}

/// What a flight left for the request that started it when there is nothing
/// to share: the inner service's error, or a response too big to buffer.
pub(super) type LeaderSlot<E> = Arc<Mutex<Option<Result<Response<Body>, E>>>>;

/// Reads `res`'s body up to [`MAX_ENTRY_BODY`]: the whole response, or the
/// response rebuilt around what was read when it is bigger.
///
/// `Err` holds the response to pass on unstored: when its declared size is
/// over the limit (before a byte is read), when it turns out bigger, when
/// it has trailers, or when its body fails, the error then reaching the
/// client after the bytes before it.
pub(super) async fn buffer(
    res: Response<Body>,
) -> Result<(http::response::Parts, Bytes), Response<Body>> {
    let (parts, mut body) = res.into_parts();
    if body.size_hint().lower() > MAX_ENTRY_BODY as u64 {
        return Err(Response::from_parts(parts, body));
    }
    // Copied as it comes, never held: see `Gather`.
    let mut gathered = Gather::new(body.size_hint().lower());
    loop {
        match body.frame().await {
            // Kept for the entry's lifetime: in a buffer of its own.
            None => return Ok((parts, gathered.finish_owned())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if data.len() > MAX_ENTRY_BODY - gathered.len() {
                        let mut read = gathered.into_chunks();
                        read.push(data);
                        return Err(unbuffered(parts, read, None, body));
                    }
                    gathered.push(data);
                }
                // Trailers: not something an entry keeps; passed on, uncached.
                Err(trailers) => {
                    return Err(unbuffered(
                        parts,
                        gathered.into_chunks(),
                        Some(trailers),
                        body,
                    ));
                }
            },
            Some(Err(e)) => {
                return Err(unbuffered(
                    parts,
                    gathered.into_chunks(),
                    None,
                    Failed(Some(e)),
                ));
            }
        }
    }
}

/// A body that fails with the error another body failed with: the end of
/// a [`Prefixed`] body whose source failed while it was being buffered.
pub(super) struct Failed(Option<BoxError>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}
