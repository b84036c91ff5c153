//! CORS answered by the gateway: preflights before any credential is
//! looked at, and the headers on every response of a method, gateway
//! errors included. The decisions are tower-http's `CorsLayer`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use serde::Deserialize;
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::body::Body;
use crate::config::{Issues, PathBuf};

/// The longest `max_age` taken: a day (browsers cap it lower still).
const MAX_AGE_LIMIT: u64 = 86_400;

/// A method's `cors` setting: which browser origins may call it.
///
/// ```yaml
/// cors:
///   allow_origins: ["https://app.example.test"]   # or ["*"]; [] turns CORS off
///   allow_methods: [GET, POST]       # default: the resource's declared methods
///   allow_headers: [content-type, x-api-key, authorization, x-amz-date, x-amz-security-token]
///   expose_headers: []
///   allow_credentials: false
///   max_age: 600                     # seconds, 0 to 86400; absent: not sent
/// ```
///
/// What the gateway does with it is [`Cors`]'s docs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Origins allowed (`scheme://host[:port]`, compared exactly), or
    /// `["*"]` for any. Empty: no CORS for this method (how a method turns
    /// off what its stage or API sets).
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for; default the resource's declared
    /// methods (`ANY`: every method).
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for (`["*"]` for any); default
    /// the ones API Gateway's "Enable CORS" allows: `content-type`,
    /// `x-amz-date`, `authorization`, `x-api-key`, `x-amz-security-token`.
    #[serde(default)]
    pub allow_headers: Option<Vec<String>>,
    /// Response headers the browser may read besides the safe ones.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`; not with any `*`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Seconds a browser may keep a preflight's answer.
    #[serde(default)]
    pub max_age: Option<u64>,
}

impl crate::config::Overlay for CorsConfig {}

/// API Gateway's "Enable CORS" default for `Access-Control-Allow-Headers`.
const DEFAULT_HEADERS: [&str; 5] = [
    "content-type",
    "x-amz-date",
    "authorization",
    "x-api-key",
    "x-amz-security-token",
];

impl CorsConfig {
    /// Reports what tower-http's layer would refuse or a browser could not
    /// use: no origin, an origin or header that is not a header value, a
    /// method that is not one, a `*` with credentials, a `max_age` over a
    /// day.
    pub(crate) fn check(&self, path: &PathBuf, issues: &mut Issues) {
        for (i, o) in self.allow_origins.iter().enumerate() {
            let valid = o == "*"
                || (o.contains("://") && !o.ends_with('/') && HeaderValue::from_str(o).is_ok());
            if !valid {
                issues.push(
                    &path.field("allow_origins").index(i),
                    format!("`{o}` is not an origin (scheme://host[:port], no path) or \"*\""),
                );
            }
        }
        for (i, m) in self.allow_methods.iter().flatten().enumerate() {
            if Method::from_bytes(m.as_bytes()).is_err() {
                issues.push(
                    &path.field("allow_methods").index(i),
                    format!("`{m}` is not a method"),
                );
            }
        }
        for (field, list) in [
            (
                "allow_headers",
                self.allow_headers.as_deref().unwrap_or(&[]),
            ),
            ("expose_headers", &self.expose_headers[..]),
        ] {
            for (i, h) in list.iter().enumerate() {
                if h != "*" && HeaderName::from_bytes(h.as_bytes()).is_err() {
                    issues.push(
                        &path.field(field).index(i),
                        format!("`{h}` is not a header name"),
                    );
                }
            }
        }
        let wildcard = self.allow_origins.iter().any(|o| o == "*")
            || self.allow_headers.iter().flatten().any(|h| h == "*")
            || self.expose_headers.iter().any(|h| h == "*");
        if self.allow_credentials && wildcard {
            issues.push(
                &path.field("allow_credentials"),
                "cannot be true with a \"*\" origin or header (browsers refuse it)",
            );
        }
        if let Some(age) = self.max_age
            && age > MAX_AGE_LIMIT
        {
            issues.push(
                &path.field("max_age"),
                format!("must be 0 to {MAX_AGE_LIMIT} seconds (got {age})"),
            );
        }
    }

    /// The checked setting of a method of a resource that declares
    /// `methods` (`None` in it: `ANY`); `None` with no origin (CORS off).
    pub(crate) fn resolve(&self, methods: &[Option<Method>]) -> Option<Cors> {
        let wildcard = self.allow_origins.iter().any(|o| o == "*")
            || self.allow_headers.iter().flatten().any(|h| h == "*")
            || self.expose_headers.iter().any(|h| h == "*");
        // Empty: CORS off. With credentials and a `*` the config check has
        // refused it already (and tower-http's layer would panic).
        if self.allow_origins.is_empty() || (self.allow_credentials && wildcard) {
            return None;
        }
        let headers = |list: &[String]| -> Vec<HeaderName> {
            list.iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect()
        };
        let any_origin = self.allow_origins.iter().any(|o| o == "*");
        let origins: Vec<HeaderValue> = self
            .allow_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        let mut layer = CorsLayer::new()
            .allow_origin(if any_origin {
                AllowOrigin::any()
            } else {
                AllowOrigin::list(origins.clone())
            })
            .allow_credentials(self.allow_credentials);
        layer = match &self.allow_methods {
            Some(list) => layer.allow_methods(AllowMethods::list(
                list.iter()
                    .filter_map(|m| Method::from_bytes(m.as_bytes()).ok()),
            )),
            None if methods.iter().any(Option::is_none) => {
                layer.allow_methods(AllowMethods::mirror_request())
            }
            None => layer.allow_methods(AllowMethods::list(methods.iter().flatten().cloned())),
        };
        layer = match &self.allow_headers {
            Some(list) if list.iter().any(|h| h == "*") => layer.allow_headers(AllowHeaders::any()),
            Some(list) => layer.allow_headers(AllowHeaders::list(headers(list))),
            None => layer.allow_headers(AllowHeaders::list(
                DEFAULT_HEADERS.map(HeaderName::from_static),
            )),
        };
        layer = if self.expose_headers.iter().any(|h| h == "*") {
            layer.expose_headers(ExposeHeaders::any())
        } else {
            layer.expose_headers(ExposeHeaders::list(headers(&self.expose_headers)))
        };
        if let Some(age) = self.max_age {
            layer = layer.max_age(Duration::from_secs(age.min(MAX_AGE_LIMIT)));
        }
        let mut cors = Cors {
            layer,
            origins: (!any_origin).then(|| Arc::from(origins.clone())),
            source: (self.clone(), methods.to_vec()),
            actual: Arc::from(Vec::new()),
        };
        // The headers of a non-preflight answer depend only on the origin:
        // tower-http's, computed once per allowed origin (one for any).
        let keys: Vec<HeaderValue> = if any_origin {
            vec![HeaderValue::from_static("null")]
        } else {
            origins
        };
        let actual: Vec<(HeaderValue, HeaderMap)> = keys
            .into_iter()
            .map(|origin| {
                let mut req = Request::new(());
                req.headers_mut().insert(ORIGIN, origin.clone());
                let headers = cors
                    .run(req, Some(Response::new(Body::empty())))
                    .into_parts()
                    .0
                    .headers;
                (origin, headers)
            })
            .collect();
        cors.actual = Arc::from(actual);
        Some(cors)
    }
}

/// The inner service tower-http's `Cors` wraps here: it hands back the
/// response the gateway already has (or an empty one, for a preflight,
/// which never calls it).
struct Give(Option<Response<Body>>);

impl Service<Request<()>> for Give {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<()>) -> Self::Future {
        std::future::ready(Ok(self.0.take().unwrap_or_default()))
    }
}

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
    layer: CorsLayer,
    /// The allowed origins; `None`: any.
    origins: Option<Arc<[HeaderValue]>>,
    /// What it was made from (the setting and the resource's methods): two
    /// are equal when these are.
    source: (CorsConfig, Vec<Option<Method>>),
    /// The headers of a non-preflight answer, by allowed origin (one entry
    /// when any origin is allowed), as tower-http's layer made them.
    actual: Arc<[(HeaderValue, HeaderMap)]>,
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
    fn run(&self, req: Request<()>, res: Option<Response<Body>>) -> Response<Body> {
        let mut svc = self.layer.layer(Give(res));
        let mut cx = Context::from_waker(Waker::noop());
        // Ready at once (`Give` is), and the rules were checked with the config.
        let _ = svc.poll_ready(&mut cx);
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
        let mut req = Request::new(());
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
    pub(crate) fn decorate(
        &self,
        origin: Option<&HeaderValue>,
        mut res: Response<Body>,
    ) -> Response<Body> {
        let found = match (&self.origins, origin) {
            (_, None) => None,
            (None, Some(_)) => self.actual.first(),
            (Some(_), Some(o)) => self.actual.iter().find(|(k, _)| k == o),
        };
        let Some((_, headers)) = found else {
            self.vary(res.headers_mut());
            return res;
        };
        let out = res.headers_mut();
        for (name, value) in headers {
            if name == VARY {
                out.append(name, value.clone());
            } else {
                out.insert(name, value.clone());
            }
        }
        res
    }
}
