//! Helpers shared by the integration tests (each test file declares
//! `mod support;`) and by benches that need them (through
//! `#[path = "../tests/support/mod.rs"] mod support;`).
//!
//! - a [`Gateway`] built from YAML with a [`ManualClock`];
//! - requests sent through a service, read back as status, headers and
//!   body ([`send`], [`read`], [`call`], [`status`], [`get_text`]);
//! - bodies and headers read as JSON or text ([`json_of`], [`json_or_null`],
//!   [`error_type`]);
//! - an inner service answering `ok` ([`ok`]);
//! - a writer tests read back ([`Captured`]), and config issues ([`issues`]);
//! - the cache tests' backend and requests ([`cache`]);
//! - a redis-server of a test's own ([`redis`]).

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

pub(crate) mod cache;
pub(crate) mod redis;

use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::{Service, ServiceExt, service_fn};

/// A gateway built from `yaml` that reads the time from `clock`.
pub(crate) fn gateway(yaml: &str, clock: &ManualClock) -> Gateway {
    Gateway::builder(Config::from_yaml_str(yaml).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Every issue `Config::from_yaml_str` finds in `yaml`, as `path: message`
/// (none if it parses).
pub(crate) fn issues(yaml: &str) -> Vec<String> {
    match Config::from_yaml_str(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.issues().iter().map(ToString::to_string).collect(),
    }
}

/// An inner service that answers every request `200 ok`.
pub(crate) fn ok()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::from("ok"))) })
}

/// Waits until `svc` is ready and calls it with `req`; the test fails if
/// the service fails.
pub(crate) async fn call<S>(svc: &mut S, req: Request<Body>) -> Response<Body>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

/// The status `svc` answers `req` with (the body is not read).
pub(crate) async fn status<S>(svc: &mut S, req: Request<Body>) -> StatusCode
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    call(svc, req).await.status()
}

/// GETs `uri` through `svc`, with the `(name, value)` header if given: the
/// status, and the body as text.
pub(crate) async fn get_text<S>(
    svc: &mut S,
    uri: &str,
    header: Option<(&str, &str)>,
) -> (StatusCode, String)
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    let mut req = Request::get(uri);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let res = call(svc, req.body(Body::empty()).unwrap()).await;
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A response's status, headers and whole body.
pub(crate) async fn read(res: Response<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let (parts, body) = res.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

/// Sends `req` through `svc` (once) and reads the whole answer; the test
/// fails if the service fails.
pub(crate) async fn send<S>(svc: S, req: Request<Body>) -> (StatusCode, HeaderMap, Bytes)
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Error: Debug,
{
    read(svc.oneshot(req).await.unwrap()).await
}

/// `b` as JSON; the test fails, showing `b`, if it is not JSON.
pub(crate) fn json_of(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

/// `b` as JSON, or `null` if it is not JSON.
pub(crate) fn json_or_null(b: &Bytes) -> Value {
    serde_json::from_slice(b).unwrap_or(Value::Null)
}

/// The gateway's `x-tollgate-error-type` header, or `""` without one.
pub(crate) fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("x-tollgate-error-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A writer that keeps what is written to it (logs, access log lines), for
/// the test to read back.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub(crate) Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// What was written since the last `take`, as text.
    pub(crate) fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// A loopback address nothing listens on (bound, read, released): an
/// integration pointed at it fails to connect.
pub(crate) async fn dead_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// The petstore example's binary, built beside this test (`cargo test`
/// builds the examples with the tests, with the same features); when it
/// is missing (a test run alone), built here with `features`.
pub(crate) fn petstore_binary(features: &[&str]) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir
        .join("examples")
        .join(format!("petstore{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build
            .args(["build", "--example", "petstore"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if !features.is_empty() {
            build.args(["--features", &features.join(",")]);
        }
        let status = build.status().unwrap();
        assert!(status.success(), "building the petstore example failed");
    }
    bin
}
