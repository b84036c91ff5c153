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
    // A binary built without `redis` says so at once when asked for Redis
    // (one that has it fails to reach port 1 as fast): then it is rebuilt.
    let lacks_redis = || {
        let probe = std::process::Command::new(&bin)
            .args(["--redis", "redis://127.0.0.1:1", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .output();
        probe
            .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("needs the `redis` feature"))
    };
    if !bin.exists() || (features.contains(&"redis") && lacks_redis()) {
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

/// A directory of a test's own under the system's temp dir, empty when
/// made, removed when dropped (a failing test leaves nothing behind).
pub(crate) struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// `tollgate-NAME-PID`, emptied first.
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tollgate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for ScratchDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A petstore example process (killed by its own PID and reaped when
/// dropped), its address, and its stderr lines as they come.
pub(crate) struct Petstore {
    child: std::process::Child,
    /// Where it listens (`127.0.0.1:PORT`).
    pub(crate) addr: String,
    /// Its stderr, a line at a time.
    pub(crate) stderr: std::sync::mpsc::Receiver<String>,
}

impl Petstore {
    /// Starts the example (built with `features` if it must be built) with
    /// `args` and `--listen 127.0.0.1:0`, and waits for its address.
    pub(crate) fn start(features: &[&str], args: &[&std::ffi::OsStr]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(petstore_binary(features))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (errors, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("petstore: {line}");
                let _ = errors.send(line);
            }
        });
        let mut this = Self {
            child,
            addr: String::new(),
            stderr: seen,
        };
        let mut lines = BufReader::new(stdout).lines();
        this.addr = loop {
            let line = lines
                .next()
                .expect("the example printed its address (its stderr is above)")
                .unwrap();
            if let Some(a) = line.strip_prefix("listening on http://") {
                break a.to_owned();
            }
        };
        // Drain stdout so the example never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        this
    }

    /// `GET /prod/pets` with no key: its `x-petstore-stage-variables`.
    pub(crate) async fn stage_variables(&self) -> String {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let client =
            Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
        let res = client
            .get(format!("http://{}/prod/pets", self.addr).parse().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.headers()["x-petstore-stage-variables"]
            .to_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Petstore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `svc` over HTTP/1.1 on a free port of 127.0.0.1, each
/// connection on a task of its own; the server task ends with the runtime.
pub(crate) async fn serve_tcp<S>(svc: S) -> std::net::SocketAddr
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = svc.map_request(|req: Request<hyper::body::Incoming>| req.map(Body::new));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}
