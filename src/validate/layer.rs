//! `ValidationLayer` and its service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use tower::{Layer, Service};

use super::method::MethodValidation;
use crate::body::{
    Body, BodyLimits, BoxError, DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY, read_bounded,
};
use crate::context::PerEndpoint;
use crate::response::{GatewayResponseKind, GatewayResponses, ValidationErrorString};

/// Validates requests before they go on; see the [module docs](crate::validate).
#[derive(Clone)]
#[must_use]
pub struct ValidationLayer {
    shared: Arc<Shared>,
}

struct Shared {
    validations: Validations,
    responses: GatewayResponses,
    limits: BodyLimits,
    /// The most bytes a parsed body may take (4 × `mapping_limits.max_output`).
    value_limit: usize,
}

#[derive(Clone)]
enum Validations {
    One(Arc<MethodValidation>),
    ByEndpoint(PerEndpoint<Arc<MethodValidation>>),
    Off,
}

impl fmt::Debug for ValidationLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.shared.validations {
            Validations::One(_) => "one",
            Validations::ByEndpoint(_) => "gateway",
            Validations::Off => "off",
        };
        f.debug_struct("ValidationLayer")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

impl ValidationLayer {
    /// Validates every request with `validation`; bodies up to 10 MiB
    /// ([`DEFAULT_MAX_BODY`]; larger is 413), arriving within 10 s (408).
    pub fn new(validation: Arc<MethodValidation>) -> Self {
        Self::build(
            Validations::One(validation),
            GatewayResponses::default(),
            BodyLimits {
                max: DEFAULT_MAX_BODY as usize,
                timeout: Some(DEFAULT_BODY_TIMEOUT),
            },
            4 * (10 << 20),
        )
    }

    /// The same layer answering with `responses` (400, 408, 413).
    pub fn responses(self, responses: GatewayResponses) -> Self {
        let s = &self.shared;
        Self::build(s.validations.clone(), responses, s.limits, s.value_limit)
    }

    /// The same layer reading bodies of at most `max_body` bytes within
    /// `timeout`.
    pub fn body_limits(self, max_body: usize, timeout: Duration) -> Self {
        let s = &self.shared;
        Self::build(
            s.validations.clone(),
            s.responses.clone(),
            BodyLimits {
                max: max_body,
                timeout: Some(timeout),
            },
            s.value_limit,
        )
    }

    pub(crate) fn for_gateway(
        by_endpoint: PerEndpoint<Arc<MethodValidation>>,
        responses: GatewayResponses,
        limits: BodyLimits,
        value_limit: usize,
    ) -> Self {
        let validations = if by_endpoint.is_empty() {
            Validations::Off
        } else {
            Validations::ByEndpoint(by_endpoint)
        };
        Self::build(validations, responses, limits, value_limit)
    }

    /// Whether requests to endpoint `index` are validated.
    pub(crate) fn covers(&self, index: usize) -> bool {
        match &self.shared.validations {
            Validations::One(_) => true,
            Validations::ByEndpoint(all) => all.at(index).is_some(),
            Validations::Off => false,
        }
    }

    fn build(
        validations: Validations,
        responses: GatewayResponses,
        limits: BodyLimits,
        value_limit: usize,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                validations,
                responses,
                limits,
                value_limit,
            }),
        }
    }
}

impl<S> Layer<S> for ValidationLayer {
    type Service = Validation<S>;

    fn layer(&self, inner: S) -> Validation<S> {
        Validation {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The validation middleware.
#[derive(Clone)]
pub struct Validation<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for Validation<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validation")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type BoxedFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    /// Response future of [`Validation`].
    pub struct ResponseFuture<F, E> {
        #[pin]
        kind: Kind<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F, E> {
        Pass { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
        Body { future: BoxedFuture<E> },
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, ResB, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response<ResB>, E>>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { future } => future.poll(cx).map(|r| r.map(|r| r.map(Body::new))),
            KindProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| Response::new(Body::empty())))),
            KindProj::Body { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Validation<S>
where
    S: Service<Request<Body>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let validation = match &self.shared.validations {
            Validations::Off => None,
            Validations::One(v) => Some(v.clone()),
            Validations::ByEndpoint(all) => all.of(req.extensions()).cloned(),
        };
        let Some(validation) = validation else {
            return pass(&mut self.inner, req.map(Body::new));
        };
        let missing = validation.missing_parameters(&req);
        if !missing.is_empty() {
            let message = format!(
                "Missing required request parameters: [{}]",
                missing.join(", ")
            );
            tracing::debug!(validator = validation.validator(), %message, "request refused");
            let mut response = self
                .shared
                .responses
                .respond_with_message(GatewayResponseKind::BadRequestParameters, &message);
            response
                .extensions_mut()
                .insert(ValidationErrorString(Arc::from(message.as_str())));
            return ResponseFuture {
                kind: Kind::Refused {
                    response: Some(response),
                },
            };
        }
        if validation.body_model(&req).is_none() {
            return pass(&mut self.inner, req.map(Body::new));
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture {
            kind: Kind::Body {
                future: Box::pin(validate_body(validation, shared, inner, req)),
            },
        }
    }
}

fn pass<S, ResB>(inner: &mut S, req: Request<Body>) -> ResponseFuture<S::Future, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>>,
{
    ResponseFuture {
        kind: Kind::Pass {
            future: inner.call(req),
        },
    }
}

/// Reads the body whole, validates it against the method's model, and
/// calls `inner` with the same bytes (or answers 400, 408, 413).
async fn validate_body<S, ReqB, ResB>(
    validation: Arc<MethodValidation>,
    shared: Arc<Shared>,
    mut inner: S,
    req: Request<ReqB>,
) -> Result<Response<Body>, S::Error>
where
    S: Service<Request<Body>, Response = Response<ResB>>,
    ReqB: http_body::Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let bytes = match read_bounded(body, shared.limits).await {
        Ok(b) => b,
        Err(e) => return Ok(shared.responses.respond(e.kind())),
    };
    let req = Request::from_parts(parts, ());
    let Some(model) = validation.body_model(&req) else {
        return inner
            .call(req.map(|()| Body::full(bytes)))
            .await
            .map(|r| r.map(Body::new));
    };
    // API Gateway validates an empty body as `{}`; a UTF-8 byte order
    // mark is not part of the document (Jackson skips it too).
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let parsed = if text.iter().all(u8::is_ascii_whitespace) {
        Ok(serde_json::Value::Object(serde_json::Map::new()))
    } else {
        crate::mapping::json::parse_bounded(text, shared.value_limit)
    };
    let detail = match &parsed {
        Err(crate::mapping::json::BodyJsonError::Syntax(e)) => Some(format!(
            "[Invalid JSON at line {}, column {}]",
            e.line(),
            e.column()
        )),
        Err(crate::mapping::json::BodyJsonError::TooManyValues) => {
            Some("[The body holds more values than may be validated]".to_owned())
        }
        Ok(value) => model.first_error(value).map(|e| format!("[{e}]")),
    };
    if let Some(detail) = detail {
        tracing::debug!(
            validator = validation.validator(),
            model = model.name(),
            detail = %detail,
            "request body refused"
        );
        let mut response = shared
            .responses
            .respond(GatewayResponseKind::BadRequestBody);
        response
            .extensions_mut()
            .insert(ValidationErrorString(Arc::from(detail)));
        return Ok(response);
    }
    inner
        .call(req.map(|()| Body::full(bytes)))
        .await
        .map(|r| r.map(Body::new))
}
