//! The production stack of issue 15, shared by `benches/stack.rs` (time)
//! and `benches/allocations.rs` (heap allocations): an API key, a stage
//! throttle, a plan throttle and a daily quota, all generous so nothing is
//! rejected, and usage reporting with the access log on. The same set
//! `benches/load.sh`'s `full` profile runs end to end.

// Each bench uses a part of this file.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response};
use tollgate::usage::{AccessLogSink, CLF, Reporter, ReporterConfig};
use tollgate::{Body, Config, Gateway, Lifecycle};

/// The key of the `production` plan.
pub(crate) const KEY: &str = "load-key-0123456789abcdef0";

/// Key, stage throttle, plan throttle and quota.
pub(crate) const FULL: &str = r#"
routes: { "/pets/{petId}": [GET] }
stages:
  prod:
    settings: { api_key_required: true, throttle: { rate: 1000000000, burst: 1000000 } }
plans:
  production:
    stages: [prod]
    throttle: { rate: 1000000000, burst: 1000000 }
    quota: { limit: 1000000000000, period: day }
keys:
  - { name: load, value: load-key-0123456789abcdef0, plans: [production] }
"#;

/// The full stack's config, with or without `RateLimit` headers on
/// admitted responses (`throttle_options.headers`; off by default, as API
/// Gateway; 429s carry them either way).
pub(crate) fn full_config(ratelimit_headers: bool) -> Config {
    let mut config = Config::from_yaml_str(FULL).unwrap();
    config.throttle_options.headers = Some(ratelimit_headers);
    config
}

/// The full stack with the front door's CORS and compression configured
/// API-wide (issue 16's bench: the pet is below the size, so nothing is
/// compressed; the `Origin` is allowed, so the CORS headers are added).
pub(crate) fn full_edge() -> Gateway {
    let yaml = format!(
        "{FULL}settings: {{ cors: {{ allow_origins: [\"{ORIGIN}\"] }}, minimum_compression_size: 1024 }}\n"
    );
    full_with(Config::from_yaml_str(&yaml).unwrap())
}

/// The origin [`edge_request`] comes from.
pub(crate) const ORIGIN: &str = "https://app.example.test";

/// [`request`] from a browser page: with an `Origin` and `Accept-Encoding: gzip`.
pub(crate) fn edge_request() -> Request<Body> {
    let mut req = request();
    req.headers_mut()
        .insert(http::header::ORIGIN, HeaderValue::from_static(ORIGIN));
    req.headers_mut().insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("gzip"),
    );
    req
}

/// No feature configured: routing only.
pub(crate) const NO_FEATURES: &str = r#"
routes: { "/pets/{petId}": [GET] }
stages: { prod: {} }
"#;

/// A writer that keeps nothing: the line is formatted and written, the
/// bytes go nowhere (a file's cost is the kernel's, measured by load.sh).
struct Discard;

impl Write for Discard {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The full stack's gateway, reporting to an access log (needs a Tokio
/// runtime entered: the reporter's task runs on it).
pub(crate) fn full() -> Gateway {
    full_with(Config::from_yaml_str(FULL).unwrap())
}

/// `config` reporting to an access log, as [`full`].
pub(crate) fn full_with(config: Config) -> Gateway {
    let log = AccessLogSink::template(CLF).unwrap().to_writer(Discard);
    let mut reporting = ReporterConfig::default();
    reporting.queue = 1 << 20;
    let reporter = Reporter::with_config(Arc::new(log), reporting);
    Gateway::builder(config).reporter(reporter).build().unwrap()
}

/// The full stack served through a [`Lifecycle`] (one API, its stage's
/// gateway picked per request from the swappable table).
pub(crate) fn full_lifecycle() -> Lifecycle {
    let log = AccessLogSink::template(CLF).unwrap().to_writer(Discard);
    let mut reporting = ReporterConfig::default();
    reporting.queue = 1 << 20;
    let reporter = Reporter::with_config(Arc::new(log), reporting);
    Gateway::builder(Config::from_yaml_str(FULL).unwrap())
        .reporter(reporter)
        .build_lifecycle()
        .unwrap()
}

/// A gateway with no feature configured.
pub(crate) fn no_features() -> Gateway {
    Gateway::new(Config::from_yaml_str(NO_FEATURES).unwrap()).unwrap()
}

/// A request as a client sends it to the full stack.
///
/// Its header values are what hyper hands a service: slices of the
/// connection's read buffer, so cloning one copies a pointer.
pub(crate) fn request() -> Request<Body> {
    let mut read = BytesMut::with_capacity(64);
    read.extend_from_slice(KEY.as_bytes());
    let key = read.split().freeze();
    read.extend_from_slice(b"wrk");
    let agent = read.split().freeze();
    let value = |b: Bytes| HeaderValue::from_maybe_shared(b).unwrap();
    Request::get("/prod/pets/1")
        .header("x-api-key", value(key))
        .header("user-agent", value(agent))
        .body(Body::empty())
        .unwrap()
}

/// The no-op service: a small JSON pet, as the pet store answers.
pub(crate) async fn pet(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let mut res = Response::new(Body::from(r#"{"id":1,"type":"dog","price":249.99}"#));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

/// Polls a future that is ready at once (every future here is).
pub(crate) fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a no-op service answers at once"),
    }
}
