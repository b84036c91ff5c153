use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::ALLOW;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use tower::Service;

use super::config::Routes;
use super::future::ResponseFuture;
use super::table::{Lookup, RouteTable};
use crate::body::{Body, BoxError};
use crate::context::{Endpoint, RequestContext, RequestId};
use crate::response::{GatewayResponseKind, GatewayResponses};

/// What every clone of a route service shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) table: RouteTable,
    pub(crate) responses: GatewayResponses,
    /// The most bytes a request body may have (`limits.max_body` behind a
    /// gateway): a body that streams past it ends in an error
    /// ([`http_body_util::LengthLimitError`]). `None`: no bound.
    pub(crate) max_body: Option<usize>,
}

impl Shared {
    pub(crate) fn new(routes: &Routes, responses: GatewayResponses) -> Self {
        Self {
            table: RouteTable::new(routes),
            responses,
            max_body: None,
        }
    }
}

/// The route middleware; see the [module docs](crate::route).
#[derive(Debug, Clone)]
pub struct Route<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Route<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Route<S>
where
    S: Service<Request<Body>, Response = Response<ResB>>,
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: http_body::Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self.shared.route(req) {
            Routing::Rejected {
                response,
                request_id,
            } => ResponseFuture::rejected(response, request_id),
            Routing::Routed {
                request,
                request_id,
                endpoint: _,
                span,
            } => {
                let future = {
                    let _entered = span.as_ref().map(|s| s.enter());
                    self.inner.call(request)
                };
                ResponseFuture::inner(future, request_id, span)
            }
        }
    }
}

/// Where [`Shared::route`] sent a request.
pub(crate) enum Routing {
    /// To an endpoint: the request carries its [`RequestContext`], its URI
    /// is stripped of the stage, and its body is a [`Body`].
    Routed {
        request: Request<Body>,
        request_id: RequestId,
        endpoint: Arc<Endpoint>,
        /// The request's debug span, when a subscriber wants debug.
        span: Option<Box<tracing::Span>>,
    },
    /// Nowhere: the gateway response that answers it.
    Rejected {
        response: Response<Body>,
        request_id: RequestId,
    },
}

impl Shared {
    /// Looks the request up, strips the stage from its URI and inserts its
    /// [`RequestContext`]; or answers 404, 405 or 400.
    pub(crate) fn route<ReqB>(&self, req: Request<ReqB>) -> Routing
    where
        ReqB: http_body::Body<Data = Bytes> + Send + 'static,
        ReqB::Error: Into<BoxError>,
    {
        let request_id = RequestId::new();
        let (mut parts, body) = req.into_parts();
        let responses = &self.responses;
        let rejected = |response| Routing::Rejected {
            response,
            request_id,
        };
        let host = if self.table.reads_host() {
            // The host picks the API: two `Host` fields are refused, as
            // RFC 9112 §3.2 asks, rather than one of them believed.
            if parts
                .headers
                .get_all(http::header::HOST)
                .iter()
                .nth(1)
                .is_some()
            {
                return rejected(responses.respond_with_message(
                    GatewayResponseKind::BadRequestParameters,
                    "A request carries one Host header",
                ));
            }
            request_host(&parts.headers, &parts.uri)
        } else {
            None
        };
        let found = self
            .table
            .lookup_request(&parts.method, host, parts.uri.path());
        let (endpoint, strip, values) = match found {
            Lookup::Found {
                endpoint,
                strip,
                values,
            } => (endpoint.clone(), strip, values),
            Lookup::NotFound => {
                return rejected(responses.respond(GatewayResponseKind::ResourceNotFound));
            }
            Lookup::Unmapped => {
                return rejected(responses.respond(GatewayResponseKind::UnmappedRequest));
            }
            Lookup::MethodNotAllowed(allow) => {
                let mut res = responses.respond(GatewayResponseKind::MethodNotAllowed);
                // API Gateway answers a 403 with no `Allow` (the `aws` profile).
                if responses.profile() == crate::response::ResponsesProfile::Http {
                    res.headers_mut().insert(ALLOW, allow.clone());
                }
                return rejected(res);
            }
            Lookup::BadParameter => {
                return rejected(responses.respond_with_message(
                    GatewayResponseKind::BadRequestParameters,
                    "A path parameter is not valid UTF-8 once percent-decoded",
                ));
            }
        };
        let Some(stripped) = strip_prefix(&parts.uri, strip) else {
            return rejected(responses.respond(GatewayResponseKind::BadRequestParameters));
        };
        // Only when a subscriber wants debug: every layer's decision then
        // logs inside the request's span, with its id.
        let span = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            let span = tracing::debug_span!(
                "request",
                id = %request_id,
                stage = endpoint.stage(),
                resource = endpoint.resource()
            );
            span.in_scope(|| tracing::debug!(layer = "route", "routed"));
            Box::new(span)
        });
        let original_uri = std::mem::replace(&mut parts.uri, stripped);
        parts.extensions.insert(RequestContext {
            request_id,
            endpoint: endpoint.clone(),
            path_values: values,
            original_uri,
            api_key: None,
        });
        // A body already at its end (a GET's) is not boxed: the layers below
        // and the inner service see an empty body either way.
        let body = if http_body::Body::is_end_stream(&body) {
            Body::empty()
        } else {
            match self.max_body {
                Some(max) => Body::new(http_body_util::Limited::new(body, max)),
                None => Body::new(body),
            }
        };
        Routing::Routed {
            request: Request::from_parts(parts, body),
            request_id,
            endpoint,
            span,
        }
    }
}

/// The host a request names: the URI's authority when it has one (an
/// absolute-form request target, HTTP/2's `:authority`), which RFC 9112
/// §3.2.2 and RFC 9113 §8.3.1 put before `Host`; else `Host`.
pub(crate) fn request_host<'a>(headers: &'a http::HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    uri.authority().map(|a| a.host()).or_else(|| {
        headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
    })
}

/// The URI with the first `strip` bytes of its path removed (the stage prefix).
fn strip_prefix(uri: &Uri, strip: usize) -> Option<Uri> {
    let path = uri.path().get(strip..)?;
    let path = if path.is_empty() { "/" } else { path };
    // An allocation of its own: a handler that keeps the URI keeps no more.
    let query = uri.query();
    let mut buf = BytesMut::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
    buf.put_slice(path.as_bytes());
    if let Some(q) = query {
        buf.put_u8(b'?');
        buf.put_slice(q.as_bytes());
    }
    let pq = PathAndQuery::from_maybe_shared(buf.freeze()).ok()?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = uri.scheme().cloned();
    parts.authority = uri.authority().cloned();
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_keeps_query_scheme_and_authority() {
        let uri: Uri = "https://api.example/prod/pets/1?type=dog".parse().unwrap();
        let s = strip_prefix(&uri, 5).unwrap();
        assert_eq!(s.to_string(), "https://api.example/pets/1?type=dog");
        let root: Uri = "/prod".parse().unwrap();
        assert_eq!(strip_prefix(&root, 5).unwrap().to_string(), "/");
        assert!(strip_prefix(&root, 9).is_none());
    }
}
