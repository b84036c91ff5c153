//! A mock integration: a fixed answer from config.

use std::convert::Infallible;
use std::fmt;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use tower::Service;

use crate::body::Body;

/// Answers every request with the same status, headers and body, without a
/// backend (API Gateway's `MOCK` integration). Put a mapping in front to
/// shape the answer per request.
#[derive(Clone)]
pub struct MockIntegration {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// Read the status from the request body's `statusCode`.
    status_from_body: bool,
}

impl fmt::Debug for MockIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockIntegration")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl MockIntegration {
    /// Answers `status` with no body.
    pub fn new(status: StatusCode) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            status_from_body: false,
        }
    }

    /// Whether the status is the request body's `statusCode` (API
    /// Gateway's mock: what the request mapping template wrote), the
    /// mock's own status when the body has none. Read from a body the
    /// gateway holds in memory (a rendered template), through a
    /// [`Gateway`](crate::Gateway)'s integration dispatch.
    pub fn status_from_body(mut self, yes: bool) -> Self {
        self.status_from_body = yes;
        self
    }

    /// With this header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// With this body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub(crate) fn respond(&self) -> Response<Body> {
        self.respond_to(None)
    }

    /// The answer to a request whose body (held in memory) is `request`.
    pub(crate) fn respond_to(&self, request: Option<&[u8]>) -> Response<Body> {
        let status = request
            .filter(|_| self.status_from_body)
            .and_then(status_code)
            .unwrap_or(self.status);
        let mut res = Response::new(Body::full(self.body.clone()));
        *res.status_mut() = status;
        *res.headers_mut() = self.headers.clone();
        res
    }
}

impl<B> Service<Request<B>> for MockIntegration {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(self.respond()))
    }
}

/// The `statusCode` of a JSON object body: an integer of 100 to 599.
fn status_code(body: &[u8]) -> Option<StatusCode> {
    #[derive(serde::Deserialize)]
    struct Code {
        #[serde(rename = "statusCode")]
        status_code: serde_json::Value,
    }
    let code: Code = serde_json::from_slice(body).ok()?;
    let n = code.status_code.as_u64()?;
    u16::try_from(n)
        .ok()
        .filter(|n| (100..=599).contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
}
