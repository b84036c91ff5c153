//! Lambda proxy integrations in process: a handler registered by name gets
//! API Gateway's event (payload format 1.0) and answers as a Lambda
//! function answers API Gateway
//! (set-up-lambda-proxy-integrations.md).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use aws_lambda_events::apigw::{
    ApiGatewayProxyRequest, ApiGatewayProxyRequestContext, ApiGatewayProxyResponse,
};
use aws_lambda_events::encodings::Body as LambdaBody;
use aws_lambda_events::query_map::QueryMap;
use base64::Engine;
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, Request, Response, StatusCode};
use ipnet::IpNet;

use super::invoke::InvokeError;
use crate::auth::authorizer::AuthorizerContext;
use crate::body::{Body, BodyLimits, BoxError, read_bounded};
use crate::context::RequestContext;
use crate::mapping::{BinaryMediaTypes, ContextValue, context_value};
use crate::response::{GatewayResponseKind, GatewayResponses};

/// What a handler's future resolves to.
pub type LambdaResult = Result<ApiGatewayProxyResponse, BoxError>;

type HandlerFuture = Pin<Box<dyn Future<Output = LambdaResult> + Send>>;

type PayloadFuture = Pin<Box<dyn Future<Output = Result<Bytes, BoxError>> + Send>>;

/// A function registered with
/// [`GatewayBuilder::lambda`](crate::gateway::GatewayBuilder::lambda): any
/// `Fn(ApiGatewayProxyRequest) -> impl Future<Output = Result<ApiGatewayProxyResponse, E>>`,
/// the signature of a Rust handler written for API Gateway (without the
/// runtime's context); or, with
/// [`GatewayBuilder::lambda_json`](crate::gateway::GatewayBuilder::lambda_json),
/// a function of any JSON, as a Lambda function behind a non-proxy
/// integration is.
///
/// Either serves either kind of integration: behind a proxy integration a
/// JSON function gets the event as JSON and must answer a proxy response;
/// behind a non-proxy one a proxy handler gets the mapped body read as an
/// event (missing fields empty) and its answer is written as JSON.
#[derive(Clone)]
pub struct LambdaFunction {
    call: Call,
}

#[derive(Clone)]
enum Call {
    /// API Gateway's proxy event and response, typed.
    Proxy(Arc<dyn Fn(ApiGatewayProxyRequest) -> HandlerFuture + Send + Sync>),
    /// A payload in, a payload out, as Lambda's `Invoke` API carries them;
    /// a [`FunctionError`] when the function threw.
    Payload(Arc<dyn Fn(Bytes) -> PayloadFuture + Send + Sync>),
}

/// A function that threw: Lambda's error document
/// (`{"errorMessage": ..., "errorType": ...}`), as the `Invoke` API
/// returns it with `X-Amz-Function-Error`.
#[derive(Debug)]
pub(crate) struct FunctionError {
    pub(crate) document: Bytes,
}

impl FunctionError {
    /// The document for an error of a function in process.
    pub(crate) fn of(e: &BoxError) -> Self {
        let doc = serde_json::json!({ "errorMessage": e.to_string(), "errorType": "Error" });
        Self {
            document: Bytes::from(doc.to_string()),
        }
    }

    /// Its `errorMessage`, as API Gateway matches selection patterns
    /// against it: empty when there is none (a `null` message).
    pub(crate) fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.document)
            .ok()
            .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// For logs: the message's first 200 characters, escaped (it is the
/// function's text, and may echo a caller's).
impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message: String = self.message().chars().take(200).collect();
        write!(f, "the function failed: {message:?}")
    }
}

impl std::error::Error for FunctionError {}

impl fmt::Debug for LambdaFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaFunction").finish_non_exhaustive()
    }
}

impl LambdaFunction {
    /// Wraps `handler`.
    pub fn new<F, Fut, E>(handler: F) -> Self
    where
        F: Fn(ApiGatewayProxyRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ApiGatewayProxyResponse, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        Self {
            call: Call::Proxy(Arc::new(move |event| {
                let fut = handler(event);
                Box::pin(async move { fut.await.map_err(Into::into) })
            })),
        }
    }

    /// Wraps a function of any JSON: `handler` gets the payload (the
    /// mapped body, `{}` when it is empty) and answers the result; an
    /// error is the function throwing (its `errorMessage` is the error's
    /// `Display`, its `errorType` `Error`; through a template it may reach
    /// the client, so return errors meant for callers). A payload that is
    /// not JSON is refused without a call, as Lambda's `Invoke` refuses it
    /// (`InvalidRequestContentException`): 500 `Internal server error`.
    pub fn json<F, Fut, E>(handler: F) -> Self
    where
        F: Fn(serde_json::Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<serde_json::Value, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let handler = Arc::new(handler);
        Self::payload(move |payload: Bytes| {
            let handler = handler.clone();
            async move {
                let input: serde_json::Value = serde_json::from_slice(&payload)
                    .map_err(|_| InvokeError::Failed("the payload is not JSON".into()))?;
                match handler(input).await {
                    Ok(v) => Ok(Bytes::from(serde_json::to_vec(&v)?)),
                    Err(e) => Err(FunctionError::of(&e.into()).into()),
                }
            }
        })
    }

    /// A payload function (a remote one): Lambda's `Invoke` as a function.
    pub(crate) fn payload<F, Fut>(call: F) -> Self
    where
        F: Fn(Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Bytes, BoxError>> + Send + 'static,
    {
        Self {
            call: Call::Payload(Arc::new(move |payload| Box::pin(call(payload)))),
        }
    }

    /// Calls it with a proxy event; a proxy response back. A typed
    /// handler's own future is returned as it is, so the event moves once
    /// more (into it), not through a future of this call too.
    fn call_event(&self, event: ApiGatewayProxyRequest) -> HandlerFuture {
        match &self.call {
            Call::Proxy(f) => f(event),
            Call::Payload(f) => {
                let payload = serde_json::to_vec(&event);
                let f = f.clone();
                Box::pin(async move {
                    let out = f(Bytes::from(payload?)).await?;
                    serde_json::from_slice(&out).map_err(|e| {
                        InvokeError::Function(format!(
                            "a payload that is not a proxy response: {e}"
                        ))
                        .into()
                    })
                })
            }
        }
    }

    /// Calls it with a payload; a payload back, or a [`FunctionError`].
    async fn call_payload(&self, payload: Bytes) -> Result<Bytes, BoxError> {
        match &self.call {
            Call::Payload(f) => f(payload).await,
            Call::Proxy(f) => {
                let event = payload_event(&payload).ok_or_else(|| {
                    InvokeError::Failed("the payload is not a JSON object".into())
                })?;
                match f(event).await {
                    Ok(answer) => Ok(Bytes::from(serde_json::to_vec(&answer)?)),
                    Err(e) if e.is::<InvokeError>() => Err(e),
                    Err(e) => Err(FunctionError::of(&e).into()),
                }
            }
        }
    }
}

/// The bounds of a Lambda integration: API Gateway's payload limit for the
/// body read whole (10 MiB), and how the event is filled.
#[derive(Clone)]
pub(crate) struct LambdaIntegration {
    pub(crate) name: Arc<str>,
    pub(crate) function: LambdaFunction,
    pub(crate) binary: Option<Arc<BinaryMediaTypes>>,
    pub(crate) trusted: Arc<[IpNet]>,
    pub(crate) responses: GatewayResponses,
    pub(crate) limits: BodyLimits,
    pub(crate) api: Arc<str>,
    /// A proxy integration (`AWS_PROXY`), or a custom one (`AWS`: the
    /// mapped body is the payload, integration responses select on the
    /// error message).
    pub(crate) proxy: bool,
    /// The method's mapping: a custom integration's error that none of
    /// its integration responses takes is 502, API Gateway's invalid
    /// configuration.
    pub(crate) mapping: Option<Arc<crate::mapping::CompiledMapping>>,
}

/// What a non-proxy Lambda integration selects its integration response
/// by: the function's `errorMessage`, empty when it did not throw (API
/// Gateway matches a null message as empty: `.*` matches a success too).
/// In the response's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IntegrationSelection {
    pub(crate) text: String,
    /// The function threw.
    pub(crate) error: bool,
}

impl fmt::Debug for LambdaIntegration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LambdaIntegration")
            .field("function", &self.name)
            .finish_non_exhaustive()
    }
}

impl LambdaIntegration {
    /// Calls the function with the request's event and maps its answer.
    /// A handler error, a panic, or an answer API Gateway would not take
    /// (a status outside 100 to 599, a header that is not one, a body
    /// marked base64 that is not) is 502 `{"message": "Internal server
    /// error"}`, the detail logged.
    pub(crate) async fn call(self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = match read_bounded(body, self.limits).await {
            Ok(b) => b,
            Err(e) => return self.responses.respond(e.kind()),
        };
        if !self.proxy {
            return self.call_custom(bytes).await;
        }
        let event = event(&mut Request::from_parts(parts, ()), &bytes, &self);
        // A handler may panic when called (before its future), or in it.
        let called = std::panic::catch_unwind(AssertUnwindSafe(|| self.function.call_event(event)));
        let outcome = match called {
            Ok(answer) => AssertUnwindSafe(answer).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        let answer = match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return self.failed(&e),
            Err(_) => {
                tracing::error!(function = %self.name, "Lambda function panicked");
                return self.bad_gateway();
            }
        };
        match response(answer) {
            Ok(res) => res,
            Err(why) => {
                tracing::warn!(function = %self.name, why, "malformed Lambda proxy response");
                self.bad_gateway()
            }
        }
    }

    /// A non-proxy call: the payload is the (mapped) body; the answer, or
    /// the function's error document, is the integration response, with
    /// what selects its mapping.
    async fn call_custom(&self, body: Bytes) -> Response<Body> {
        let payload = if body.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            body
        };
        let outcome = AssertUnwindSafe(self.function.call_payload(payload))
            .catch_unwind()
            .await;
        let (document, selection) = match outcome {
            Ok(Ok(out)) => (
                out,
                IntegrationSelection {
                    text: String::new(),
                    error: false,
                },
            ),
            Ok(Err(e)) => match e.downcast::<FunctionError>() {
                Ok(thrown) => {
                    let text = thrown.message();
                    let taken = self.mapping.as_ref().is_some_and(|m| m.takes_error(&text));
                    if !taken {
                        tracing::warn!(function = %self.name, error = %thrown, "Lambda function failed; no integration response takes its error");
                        return self.bad_gateway();
                    }
                    (thrown.document, IntegrationSelection { text, error: true })
                }
                Err(e) => return self.failed(&e),
            },
            Err(_) => {
                tracing::error!(function = %self.name, "Lambda function panicked");
                return self.bad_gateway();
            }
        };
        let mut res = Response::new(Body::full(document));
        res.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        res.extensions_mut().insert(selection);
        res
    }

    /// The gateway's answer to an invocation that gave no answer.
    fn failed(&self, e: &BoxError) -> Response<Body> {
        tracing::warn!(function = %self.name, error = %e, "Lambda function failed");
        match e.downcast_ref::<InvokeError>() {
            Some(InvokeError::Timeout) => self
                .responses
                .respond(GatewayResponseKind::IntegrationTimeout),
            Some(InvokeError::Throttled | InvokeError::Failed(_)) => {
                let mut res = self.bad_gateway();
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                res
            }
            Some(InvokeError::Function(_)) | None => self.bad_gateway(),
        }
    }

    fn bad_gateway(&self) -> Response<Body> {
        let mut res = self.responses.respond_with_message(
            GatewayResponseKind::IntegrationFailure,
            "Internal server error",
        );
        *res.status_mut() = StatusCode::BAD_GATEWAY;
        res
    }
}

/// API Gateway's event for `req`, whose body is `body`.
fn event(req: &mut Request<()>, body: &[u8], l: &LambdaIntegration) -> ApiGatewayProxyRequest {
    let mut event = ApiGatewayProxyRequest::default();
    event.request_context = context(req, l);
    let ctx = req.extensions().get::<RequestContext>();
    // `headers` keeps each name's last value (a copy of the request's,
    // fixed up where a name repeats), `multiValueHeaders` every one (the
    // request's own, moved in last).
    let mut headers = req.headers().clone();
    if headers.len() != headers.keys_len() {
        for (name, last) in last_values(req.headers()) {
            headers.insert(name, last);
        }
    }
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    let mut repeated = false;
    crate::mapping::for_each_query_param(req.uri().query(), |k, v| {
        let values = query.entry(k).or_default();
        repeated |= !values.is_empty();
        values.push(v);
    });
    // `QueryMap` holds a list per name behind an `Arc`: when no name
    // repeats (nearly always), the single-value map is the multi-value one,
    // shared; else each name's last value.
    let last: Option<HashMap<String, Vec<String>>> = repeated.then(|| {
        query
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), vec![v.last()?.clone()])))
            .collect()
    });
    let multi = QueryMap::from(query);
    let single = last.map_or_else(|| multi.clone(), QueryMap::from);
    let binary = l.binary.as_ref().is_some_and(|b| {
        req.headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| b.matches(t))
    });
    let body = (!body.is_empty()).then(|| {
        if binary {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            // Valid UTF-8 (nearly every text body) is copied as it is.
            std::str::from_utf8(body).map_or_else(
                |_| String::from_utf8_lossy(body).into_owned(),
                str::to_owned,
            )
        }
    });
    event.resource = event.request_context.resource_path.clone();
    event.path = Some(req.uri().path().to_owned());
    event.http_method = req.method().clone();
    event.headers = headers;
    event.query_string_parameters = single;
    event.multi_value_query_string_parameters = multi;
    event.path_parameters = ctx
        .map(|c| {
            c.path_params()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    event.stage_variables = ctx
        .map(|c| {
            c.endpoint()
                .stage_variables()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    event.body = body;
    event.is_base64_encoded = binary;
    event.multi_value_headers = std::mem::take(req.headers_mut());
    event
}

/// Each repeated header's last value.
fn last_values(headers: &HeaderMap) -> Vec<(http::HeaderName, http::HeaderValue)> {
    headers
        .keys()
        .filter_map(|name| {
            let mut all = headers.get_all(name).iter();
            let last = all.next_back()?;
            all.next().is_some().then(|| (name.clone(), last.clone()))
        })
        .collect()
}

/// The event's `requestContext`.
fn context(req: &Request<()>, l: &LambdaIntegration) -> ApiGatewayProxyRequestContext {
    let ctx = req.extensions().get::<RequestContext>();
    let value = |c| context_value(c, req, &l.trusted).map(|v| v.into_owned());
    let mut rc = ApiGatewayProxyRequestContext::default();
    rc.resource_path = ctx.map(|c| c.endpoint().resource().to_owned());
    rc.resource_id = rc.resource_path.clone();
    rc.path = Some(
        ctx.map(|c| c.original_uri().path().to_owned())
            .unwrap_or_else(|| req.uri().path().to_owned()),
    );
    rc.http_method = req.method().clone();
    rc.stage = value(ContextValue::Stage);
    rc.request_id = value(ContextValue::RequestId);
    rc.apiid = Some(String::from(&*l.api));
    rc.protocol = Some(
        match req.version() {
            http::Version::HTTP_09 => "HTTP/0.9",
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            http::Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/1.1",
        }
        .to_owned(),
    );
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h).to_owned());
    rc.domain_prefix = host
        .as_deref()
        .map(|h| h.split('.').next().unwrap_or(h).to_owned());
    rc.domain_name = host;
    let now = crate::clock::Clock::unix_nanos(&crate::clock::SystemClock) / 1_000_000;
    rc.request_time_epoch = i64::try_from(now).unwrap_or(i64::MAX);
    rc.request_time = Some(request_time(now / 1000));
    rc.identity.source_ip = value(ContextValue::SourceIp);
    rc.identity.user_agent = req
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    rc.identity.api_key_id = value(ContextValue::ApiKeyId);
    rc.identity.api_key = rc.identity.api_key_id.as_ref().and_then(|_| {
        req.headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if let Some(principal) = value(ContextValue::PrincipalId) {
        rc.authorizer
            .fields
            .insert("principalId".into(), principal.into());
    }
    if let Some(a) = req.extensions().get::<AuthorizerContext>() {
        for (k, v) in &a.context {
            rc.authorizer.fields.insert(k.clone(), v.clone().into());
        }
    }
    rc
}

/// A payload read as a proxy event: its members over an empty event's,
/// so a payload with only some of them is one. `None` for a payload that
/// is not a JSON object, or whose members do not fit.
fn payload_event(payload: &[u8]) -> Option<ApiGatewayProxyRequest> {
    let serde_json::Value::Object(given) = serde_json::from_slice(payload).ok()? else {
        return None;
    };
    let mut event = serde_json::to_value(ApiGatewayProxyRequest::default()).ok()?;
    let serde_json::Value::Object(fields) = &mut event else {
        return None;
    };
    fields.extend(given);
    serde_json::from_value(event).ok()
}

/// `requestTime` for Unix second `secs`, in the access log's CLF form;
/// formatted once a second per thread.
fn request_time(secs: u64) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> =
            const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            last.1.clear();
            crate::usage::clf_time(i64::try_from(secs).unwrap_or(0), &mut last.1);
            last.0 = secs;
        }
        last.1.clone()
    })
}

/// The HTTP response for a function's answer, as API Gateway maps it:
/// `multiValueHeaders`, then each of `headers` whose name they lack; a
/// base64 body decoded.
fn response(answer: ApiGatewayProxyResponse) -> Result<Response<Body>, &'static str> {
    let status = u16::try_from(answer.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .ok_or("statusCode is not an HTTP status")?;
    let mut headers = answer.multi_value_headers;
    for (name, v) in &answer.headers {
        if !headers.contains_key(name) {
            headers.insert(name.clone(), v.clone());
        }
    }
    let body = match answer.body {
        None | Some(LambdaBody::Empty) => bytes::Bytes::new(),
        Some(LambdaBody::Binary(b)) => bytes::Bytes::from(b),
        Some(LambdaBody::Text(t)) if answer.is_base64_encoded => {
            base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map(bytes::Bytes::from)
                .map_err(|_| "isBase64Encoded with a body that is not base64")?
        }
        Some(LambdaBody::Text(t)) => bytes::Bytes::from(t),
        Some(_) => return Err("a body of an unknown kind"),
    };
    headers.remove(http::header::CONTENT_LENGTH);
    headers.remove(http::header::TRANSFER_ENCODING);
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    Ok(res)
}
