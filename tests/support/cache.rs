//! The response cache tests' backend, layer and requests (tests/cache_*.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tollgate::cache::{CacheLayer, CachePolicy, CacheStatus, MokaCacheStore};
use tollgate::clock::ManualClock;
use tollgate::{Body, Gateway};
use tower::{BoxError, Service, ServiceExt};

/// The instant the cache tests' clocks start at (2027-01-15T08:00:00Z).
pub(crate) const T0: u64 = 1_800_000_000;

/// A backend counting its calls; each response's body says which call it was.
#[derive(Clone)]
pub(crate) struct Backend {
    pub(crate) calls: Arc<AtomicUsize>,
    pub(crate) status: StatusCode,
    pub(crate) cache_control: Option<&'static str>,
    pub(crate) set_cookie: bool,
    pub(crate) body_len: Option<usize>,
    pub(crate) delay: Option<Duration>,
    /// The first call fails with an error (not a response).
    pub(crate) fail_first: bool,
    /// While set: every call fails with an error.
    pub(crate) erroring: Arc<AtomicBool>,
    /// While set: every call answers 503.
    pub(crate) unavailable: Arc<AtomicBool>,
}

impl Backend {
    /// A backend answering `200` at once, with no cache headers.
    pub(crate) fn new() -> Self {
        Self {
            calls: Arc::default(),
            status: StatusCode::OK,
            cache_control: None,
            set_cookie: false,
            body_len: None,
            delay: None,
            fail_first: false,
            erroring: Arc::default(),
            unavailable: Arc::default(),
        }
    }

    /// How many calls it has had.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Request<Body>> for Backend {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let this = self.clone();
        Box::pin(async move {
            if let Some(d) = this.delay {
                tokio::time::sleep(d).await;
            }
            if (this.fail_first && n == 1) || this.erroring.load(Ordering::SeqCst) {
                return Err("backend down".into());
            }
            if this.unavailable.load(Ordering::SeqCst) {
                let mut res = Response::new(Body::from("unavailable"));
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return Ok(res);
            }
            let body = match this.body_len {
                Some(len) => Body::full(vec![b'x'; len]),
                None => Body::from(format!("call {n} {}", req.uri())),
            };
            let mut res = Response::new(body);
            *res.status_mut() = this.status;
            res.headers_mut()
                .insert("x-backend", HeaderValue::from_static("yes"));
            if let Some(cc) = this.cache_control {
                res.headers_mut()
                    .insert(http::header::CACHE_CONTROL, HeaderValue::from_static(cc));
            }
            if this.set_cookie {
                res.headers_mut()
                    .insert(http::header::SET_COOKIE, HeaderValue::from_static("s=1"));
            }
            Ok(res)
        })
    }
}

/// A cache layer with its own store, `ttl` seconds, and time from `clock`.
pub(crate) fn layer(clock: &ManualClock, ttl: u64) -> CacheLayer {
    CacheLayer::new(
        Arc::new(MokaCacheStore::default()),
        CachePolicy::with_ttl(Duration::from_secs(ttl)),
    )
    .with_clock(Arc::new(clock.clone()))
}

/// Sends `method uri` through `svc`: status, cache status, headers, body.
pub(crate) async fn send<S>(
    svc: &S,
    method: Method,
    uri: &str,
) -> (StatusCode, Option<CacheStatus>, http::HeaderMap, Bytes)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache = res.extensions().get::<CacheStatus>().copied();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, cache, headers, body)
}

/// A gateway config with the cache on: per-method TTLs and keys, a
/// per-key method, and a `dev` stage with TTL 0.
pub(crate) const GATEWAY: &str = r#"
routes:
  /pets: [GET, POST]
  /pets/{petId}: [GET]
  /mine: [GET]
stages:
  prod:
    settings:
      cache: { enabled: true, ttl: 300 }
    methods:
      /pets/GET: { cache: { ttl: 60, key: [querystring.type, header.Accept] } }
      /mine/GET: { api_key_required: true, cache: { per_key: true } }
  dev:
    settings:
      cache: { enabled: true, ttl: 0 }
plans:
  tenants: { stages: [prod] }
keys:
  - { name: alice, value: alice-key-0123456789abcdef, plans: [tenants] }
  - { name: bob, value: bob-key-0123456789abcdefgh, plans: [tenants] }
"#;

/// A gateway of [`GATEWAY`] reading time from `clock`, and a fresh backend.
pub(crate) fn gateway(clock: &ManualClock) -> (Gateway, Backend) {
    (super::gateway(GATEWAY, clock), Backend::new())
}

/// GETs `uri` through `svc` with `headers`: the cache status and the body.
pub(crate) async fn get<S>(
    svc: &S,
    uri: &str,
    headers: &[(&'static str, &str)],
) -> (Option<CacheStatus>, Bytes)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::get(uri).body(Body::empty()).unwrap();
    for (n, v) in headers {
        req.headers_mut().insert(*n, v.parse().unwrap());
    }
    let res = svc.clone().oneshot(req).await.unwrap();
    let s = res.extensions().get::<CacheStatus>().copied();
    (s, res.into_body().collect().await.unwrap().to_bytes())
}
