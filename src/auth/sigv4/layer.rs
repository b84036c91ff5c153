//! `SigV4Layer`: requires a valid AWS Signature Version 4.
//!
//! The layer is the I/O around [`Verifier`]: it picks the URI the client
//! signed (the original one, stage prefix included, when the route layer
//! has stripped it), runs the header checks, reads the body only if the
//! signature covers it, and turns a [`Refusal`](super::Refusal) into the
//! gateway response. The body read for hashing is passed on to the inner
//! service as one in-memory buffer, so it is read once.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::{SigV4Identity, Verifier};
use crate::auth::Authorization;
use crate::body::{Body, BodyLimits, BoxError, DEFAULT_BODY_TIMEOUT, read_bounded};
use crate::context::RequestContext;
use crate::gate::{self, Finish, GateFuture};
use crate::response::{GatewayResponseKind, GatewayResponses};

/// The default limit on a body hashed for verification: 10 MiB.
pub const DEFAULT_MAX_BODY: usize = 10 << 20;

/// Requires a valid SigV4 signature; see the [module docs](super).
#[derive(Clone)]
#[must_use]
pub struct SigV4Layer {
    shared: Arc<Shared>,
}

/// What every clone of the layer and its services shares.
#[derive(Clone)]
struct Shared {
    /// `None` behind a gateway without a `sigv4` section: a request that
    /// would need SigV4 is then refused with `MISSING_AUTHENTICATION_TOKEN`
    /// (config validation keeps such a gateway from being built).
    verifier: Option<Verifier>,
    responses: GatewayResponses,
    /// The largest body hashed, bytes: 413 beyond.
    max_body: usize,
    /// How long that body may take to arrive: 408 beyond; `None`, no limit.
    body_timeout: Option<Duration>,
    /// Behind a gateway only methods with `authorization: sigv4` are checked.
    gateway: bool,
}

impl fmt::Debug for SigV4Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Layer")
            .field("verifier", &self.shared.verifier)
            .field("max_body", &self.shared.max_body)
            .field("body_timeout", &self.shared.body_timeout)
            .finish_non_exhaustive()
    }
}

impl SigV4Layer {
    /// Verifies every request with `verifier`, hashing bodies up to 10 MiB
    /// that arrive within 10 seconds.
    pub fn new(verifier: Verifier) -> Self {
        Self::with(
            Some(verifier),
            GatewayResponses::default(),
            DEFAULT_MAX_BODY,
            false,
        )
    }

    /// The layer a gateway builds: it checks only the methods whose
    /// `authorization` is `sigv4`, and passes the rest untouched.
    pub(crate) fn for_gateway(
        verifier: Option<Verifier>,
        responses: GatewayResponses,
        max_body: usize,
        body_timeout: Option<Duration>,
    ) -> Self {
        Self::with(verifier, responses, max_body, true).body_timeout(body_timeout)
    }

    fn with(
        verifier: Option<Verifier>,
        responses: GatewayResponses,
        max_body: usize,
        gateway: bool,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                verifier,
                responses,
                max_body,
                body_timeout: Some(DEFAULT_BODY_TIMEOUT),
                gateway,
            }),
        }
    }

    /// The largest body hashed; a larger one gets 413 `REQUEST_TOO_LARGE`.
    pub fn max_body(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.shared).max_body = bytes;
        self
    }

    /// How long a body that must be hashed may take to arrive; past it the
    /// request gets 408 `REQUEST_TIMEOUT`. `None` waits as long as the
    /// client takes (the server's own timeouts still apply). Default 10 s.
    pub fn body_timeout(mut self, timeout: Option<Duration>) -> Self {
        Arc::make_mut(&mut self.shared).body_timeout = timeout;
        self
    }

    /// The gateway responses to answer with.
    pub fn responses(mut self, responses: GatewayResponses) -> Self {
        Arc::make_mut(&mut self.shared).responses = responses;
        self
    }
}

impl<S> Layer<S> for SigV4Layer {
    type Service = SigV4<S>;

    fn layer(&self, inner: S) -> SigV4<S> {
        SigV4 {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The SigV4 middleware.
#[derive(Clone)]
pub struct SigV4<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for SigV4<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Finish for SigV4Identity {
    fn finish(self, res: &mut Response<Body>) {
        res.extensions_mut().insert(self);
    }
}

crate::gate::response_future! {
    /// Response future of [`SigV4`].
    Option<SigV4Identity>
}

type Decision = gate::Decision<Option<SigV4Identity>>;

impl Shared {
    /// Logs the refusal at debug level (kind and reason) and answers with
    /// the gateway response, AWS's message in its body where there is one.
    fn refuse(&self, kind: GatewayResponseKind, message: Option<&str>) -> Decision {
        tracing::debug!(
            layer = "sigv4",
            decision = "reject",
            kind = kind.as_str(),
            reason = message.unwrap_or(kind.default_message()),
            "signature refused"
        );
        let res = match message {
            Some(m) => self.responses.respond_with_message(kind, m),
            None => self.responses.respond(kind),
        };
        gate::Decision::Reject(Box::new(res))
    }

    /// Headers first: a request refused on its headers (an unknown access
    /// key id, a bad scope, an expired date, a declared hash whose signature
    /// does not match) is refused before a byte of its body is read. Only
    /// then is the body read, within `max_body` and `body_timeout`.
    async fn decide(&self, req: Request<Body>) -> (Decision, Request<Body>) {
        let (mut parts, body) = req.into_parts();
        let Some(verifier) = &self.verifier else {
            // Validation makes sure a gateway that requires SigV4 has settings.
            let refused = self.refuse(GatewayResponseKind::MissingAuthenticationToken, None);
            return (refused, Request::from_parts(parts, Body::empty()));
        };
        let uri = parts
            .extensions
            .get::<RequestContext>()
            .map_or_else(|| parts.uri.clone(), |c| c.original_uri().clone());
        let method = parts.method.as_str();
        let prepared = match verifier.prepare(method, &uri, &parts.headers).await {
            Ok(p) => p,
            Err(refusal) => {
                let refused = self.refuse(refusal.kind, refusal.message.as_deref());
                return (refused, Request::from_parts(parts, Body::empty()));
            }
        };
        let (result, body) = if prepared.needs_body() {
            let limits = BodyLimits {
                max: self.max_body,
                timeout: self.body_timeout,
            };
            let bytes = match read_bounded(body, limits).await {
                Ok(b) => b,
                Err(e) => {
                    let refused = self.refuse(e.kind(), None);
                    return (refused, Request::from_parts(parts, Body::empty()));
                }
            };
            let result = verifier.finish(prepared, method, &uri, &parts.headers, &bytes);
            (result, Body::full(bytes))
        } else {
            (
                verifier.finish(prepared, method, &uri, &parts.headers, &[]),
                body,
            )
        };
        let decision = match result {
            Ok(identity) => {
                parts.extensions.insert(identity.clone());
                gate::Decision::Admit(Some(identity))
            }
            Err(refusal) => self.refuse(refusal.kind, refusal.message.as_deref()),
        };
        (decision, Request::from_parts(parts, body))
    }
}

impl<S, ResB> Service<Request<Body>> for SigV4<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Body>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let required = !self.shared.gateway
            || req
                .extensions()
                .get::<RequestContext>()
                .is_some_and(|c| c.endpoint().settings().authorization == Authorization::Sigv4);
        if !required {
            return ResponseFuture::new(GateFuture::now(
                gate::Decision::Admit(None),
                &mut self.inner,
                req,
            ));
        }
        let shared = self.shared.clone();
        let pending: gate::Pending<Body, Option<SigV4Identity>> =
            Box::pin(async move { shared.decide(req).await });
        ResponseFuture::new(GateFuture::wait(pending, &mut self.inner))
    }
}
