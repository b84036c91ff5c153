//! Compression as API Gateway's `minimumCompressionSize` does it: gzip
//! and deflate responses by `Accept-Encoding`, compressed request bodies
//! decoded. The codings are tower-http's.

use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use futures_util::FutureExt;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};
use tower_http::compression::{CompressionLayer, Predicate};
use tower_http::decompression::RequestDecompression;

use super::Give;
use crate::body::Body;

/// A method's resolved compression settings (`minimum_compression_size`,
/// `compression_br`).
///
/// - **Responses** ([API Gateway's content encoding](https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-enable-compression.html)):
///   the client's most preferred coding by `Accept-Encoding` q-values
///   (`identity;q=0` and `*` included) is used when it is `gzip` or
///   `deflate` (or `br` with `compression_br: true`, beyond API Gateway)
///   and the body is at least `minimum_compression_size` bytes (a body of
///   unknown length is compressed). When the preferred coding is one the
///   gateway does not support, nothing is compressed, as API Gateway does.
///   A response that already has a `Content-Encoding` is left alone.
/// - **Requests**: a body with `Content-Encoding: gzip` or `deflate` is
///   decoded before the mapping and the inner service see it (its
///   `Content-Length` removed); `identity` passes; any other coding is 415
///   `UNSUPPORTED_MEDIA_TYPE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    pub(super) minimum: u64,
    pub(super) br: bool,
}

/// tower-http's predicate for the size: at least `minimum` bytes, or of
/// unknown length (its own `SizeAbove` stops at 64 KiB; API Gateway's
/// setting goes to 10 MiB).
#[derive(Debug, Clone, Copy)]
struct AtLeast(u64);

impl Predicate for AtLeast {
    fn should_compress<B: http_body::Body>(&self, response: &Response<B>) -> bool {
        let size = response.body().size_hint().exact().or_else(|| {
            response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        });
        size.is_none_or(|n| n >= self.0) && !response.headers().contains_key(CONTENT_ENCODING)
    }
}

impl Compression {
    /// The coding to answer a request with these `Accept-Encoding` values:
    /// the most preferred one if the gateway makes it, else `None`.
    pub(crate) fn choose(&self, accept: &HeaderMap) -> Option<&'static str> {
        // The coding as the gateway names it, or `None` for one it does not
        // make; `*` stands for gzip. Nothing here allocates.
        let made = |coding: &str| -> Option<&'static str> {
            if coding.eq_ignore_ascii_case("gzip") || coding == "*" {
                Some("gzip")
            } else if coding.eq_ignore_ascii_case("deflate") {
                Some("deflate")
            } else if self.br && coding.eq_ignore_ascii_case("br") {
                Some("br")
            } else {
                None
            }
        };
        let mut best: Option<(f32, Option<&'static str>)> = None;
        for value in accept.get_all(ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                if coding.is_empty() {
                    continue;
                }
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if q <= 0.0 {
                    continue;
                }
                let this = made(coding);
                // Ties go to a coding the gateway makes, gzip first.
                let better = match best {
                    None => true,
                    Some((bq, b)) => {
                        q > bq
                            || (q == bq
                                && this.is_some()
                                && (b.is_none() || (this == Some("gzip") && b != Some("gzip"))))
                    }
                };
                if better {
                    best = Some((q, this));
                }
            }
        }
        best?.1
    }

    /// `res` compressed with `coding` when big enough.
    pub(crate) fn compress(&self, coding: &'static str, res: &mut Response<Body>) {
        // Below the size (the common case for small answers): nothing to
        // build or move. tower-http's predicate would say the same, later.
        if !AtLeast(self.minimum).should_compress(res) {
            return;
        }
        let layer = CompressionLayer::new()
            .gzip(coding == "gzip")
            .deflate(coding == "deflate")
            .br(coding == "br")
            .compress_when(AtLeast(self.minimum));
        let mut svc = layer.layer(Give(Some(std::mem::take(res)), Arc::default()));
        let mut req = Request::new(Body::empty());
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static(coding));
        let _ =
            Service::<Request<Body>>::poll_ready(&mut svc, &mut Context::from_waker(Waker::noop()));
        *res = match svc.call(req).now_or_never() {
            Some(Ok(res)) => res.map(Body::new),
            _ => Response::new(Body::empty()),
        };
    }

    /// Decodes the request's body in place; `false` (the request left as
    /// it was) when its `Content-Encoding` is one the gateway does not
    /// decode: the caller answers 415.
    pub(crate) fn decode(req: &mut Request<Body>) -> bool {
        let canonical = match req.headers().get(CONTENT_ENCODING) {
            None => return true,
            Some(v) => match v.as_bytes().to_ascii_lowercase().as_slice() {
                b"identity" => return true,
                b"gzip" => "gzip",
                b"deflate" => "deflate",
                _ => return false,
            },
        };
        // Codings are case-insensitive; tower-http compares bytes.
        req.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static(canonical));
        let taken = std::mem::replace(req, Request::new(Body::empty()));
        let slot: Arc<Mutex<Option<Request<Body>>>> = Arc::default();
        let mut svc = RequestDecompression::new(Give(None, slot.clone()))
            .gzip(true)
            .deflate(true);
        let mut cx = Context::from_waker(Waker::noop());
        let _ = Service::<Request<Body>>::poll_ready(&mut svc, &mut cx);
        let _ = svc.call(taken).now_or_never();
        match slot.lock().ok().and_then(|mut s| s.take()) {
            Some(decoded) => {
                *req = decoded;
                true
            }
            // Both codings are on: tower-http always calls through.
            None => false,
        }
    }
}
