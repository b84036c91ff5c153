//! CORS answered by the gateway: preflights before any credential is
//! looked at, and the headers on every response of a method, gateway
//! errors included. The decisions are tower-http's `CorsLayer`.

use std::sync::Arc;

use futures_util::FutureExt;
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use std::task::{Context, Waker};
use tower::{Layer, Service};
use tower_http::cors::CorsLayer;

use super::Give;
use super::config::CorsConfig;
use crate::body::Body;

/// The CORS headers of one answer, in order.
pub(super) type Headers = Vec<(HeaderName, HeaderValue)>;

/// A method's resolved `cors` setting ([`CorsConfig`]).
///
/// - **Preflight**: an `OPTIONS` request with `Access-Control-Request-Method`
///   to a path whose requested method has `cors` is answered by the
///   gateway right after routing, with 200 and the CORS headers: no
///   resource policy, signature, authorizer, key, throttle or backend is
///   involved (a browser sends no credentials on a preflight). This holds
///   even when the resource declares `OPTIONS` itself.
/// - **Every other response** of the method carries
///   `Access-Control-Allow-Origin` (and `-Credentials`, `-Expose-Headers`)
///   for an allowed origin: the backend's, and the gateway's own 403, 429
///   or 5xx too, which a browser could not read otherwise (API Gateway
///   does this only when "Enable CORS" also sets `DEFAULT_4XX` and
///   `DEFAULT_5XX`, which users forget).
/// - An origin not in `allow_origins` gets no CORS headers at all (a
///   preflight is still 200, without them: the browser refuses); every
///   answer carries `Vary: Origin` when the origins are a list.
/// - A path that matches no resource (404) has no method, so no CORS.
///
/// The headers are tower-http's [`CorsLayer`]'s, built once per method.
#[derive(Debug, Clone)]
pub struct Cors {
    pub(super) layer: CorsLayer,
    /// The allowed origins; `None`: any.
    pub(super) origins: Option<Arc<[HeaderValue]>>,
    /// What it was made from (the setting and the resource's methods): two
    /// are equal when these are.
    pub(super) source: (CorsConfig, Vec<Option<Method>>),
    /// The headers of a non-preflight answer, by allowed origin (one entry
    /// when any origin is allowed), as tower-http's layer made them but for
    /// `Vary`, which is `origin` alone: `Access-Control-Request-Method` and
    /// `-Headers` come only on preflights, so only a preflight's answer
    /// varies by them.
    pub(super) actual: Arc<[(HeaderValue, Headers)]>,
}

impl PartialEq for Cors {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Cors {
    /// The response tower-http's `Cors` makes of `req` around `res`: a
    /// preflight's for an `OPTIONS`, else `res` with the headers. Nothing
    /// here waits, so it is polled once.
    pub(super) fn run(&self, req: Request<Body>, res: Option<Response<Body>>) -> Response<Body> {
        let mut svc = self.layer.layer(Give(res, Default::default()));
        let mut cx = Context::from_waker(Waker::noop());
        // Ready at once (`Give` is), and the rules were checked with the config.
        let _ = Service::<Request<Body>>::poll_ready(&mut svc, &mut cx);
        match svc.call(req).now_or_never() {
            Some(Ok(res)) => res,
            _ => Response::new(Body::empty()),
        }
    }

    /// Whether `origin` may be answered with CORS headers.
    fn allows(&self, origin: Option<&HeaderValue>) -> bool {
        match (&self.origins, origin) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(list), Some(o)) => list.contains(o),
        }
    }

    /// `Vary: Origin` alone, for an origin not allowed (a list of origins
    /// makes the answer depend on it).
    fn vary(&self, headers: &mut HeaderMap) {
        if self.origins.is_some() {
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
    }

    /// The answer to a preflight with these request `headers`.
    pub(crate) fn preflight(&self, headers: &HeaderMap) -> Response<Body> {
        let origin = headers.get(ORIGIN);
        if !self.allows(origin) {
            let mut res = Response::new(Body::empty());
            self.vary(res.headers_mut());
            return res;
        }
        let mut req = Request::new(Body::empty());
        *req.method_mut() = Method::OPTIONS;
        for name in [
            ORIGIN,
            ACCESS_CONTROL_REQUEST_METHOD,
            ACCESS_CONTROL_REQUEST_HEADERS,
        ] {
            for v in headers.get_all(&name) {
                req.headers_mut().append(name.clone(), v.clone());
            }
        }
        // tower-http answers a preflight itself; the inner service is
        // never called.
        self.run(req, None)
    }

    /// `res` with the CORS headers for a request from `origin`: the ones
    /// tower-http's layer gave that origin when the gateway was built.
    pub(crate) fn decorate(&self, origin: Option<&HeaderValue>, res: &mut Response<Body>) {
        let found = match (&self.origins, origin) {
            (_, None) => None,
            (None, Some(_)) => self.actual.first(),
            (Some(_), Some(o)) => self.actual.iter().find(|(k, _)| k == o),
        };
        let Some((_, headers)) = found else {
            self.vary(res.headers_mut());
            return;
        };
        let out = res.headers_mut();
        out.reserve(headers.len());
        for (name, value) in headers.iter() {
            if name == VARY {
                out.append(name.clone(), value.clone());
            } else {
                out.insert(name.clone(), value.clone());
            }
        }
    }
}
