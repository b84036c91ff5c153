//! Usage reporting: one event per request for every outcome, a stalled sink
//! never slows requests, shutdown flushes, retries do not duplicate, and each
//! sink writes what it should.

mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::Captured;
use tokio::sync::Notify;
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::cache::CacheStatus;
use tollgate::throttle::ClientAddr;
use tollgate::usage::{
    AccessLogSink, AggregatingSink, EmfSink, HttpSink, MetricsSink, Outcome, Reporter,
    ReporterConfig, SinkError, UsageEvent, UsageSink,
};
use tollgate::{Body, Config, Gateway, GatewayResponseKind};
use tower::{Service, ServiceExt, service_fn};

/// Keeps every event it is given.
#[derive(Default)]
struct Collect {
    events: Mutex<Vec<UsageEvent>>,
    calls: AtomicUsize,
    /// Calls that fail before one succeeds.
    fail_first: usize,
}

#[async_trait]
impl UsageSink for Collect {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n < self.fail_first {
            return Err(SinkError::new("collector down"));
        }
        self.events.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

impl Collect {
    fn take(&self) -> Vec<UsageEvent> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

const CONFIG: &str = r#"
name: zoo
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET]
  /boom: [GET]
  /sick: [GET]
  /stream: [GET]
  /me: [GET]
  /signed: [GET]
stages:
  prod:
    settings: { throttle: { rate: 1000, burst: 1000 } }
    methods:
      /pets/GET: { api_key_required: true, cache: { enabled: true } }
      /pets/{id}/GET: { throttle: { rate: 1, burst: 1 } }
      /pets/POST:
        mapping: { request: { templates: { application/json: "x" }, passthrough: never } }
      /me/GET: { authorization: authorizer, authorizer: who }
      /signed/GET: { authorization: sigv4 }
  quota:
    settings: { api_key_required: true }
plans:
  p: { stages: [prod] }
  q: { stages: [quota], quota: { limit: 1, period: day } }
keys:
  - { name: k, value: key-0123456789abcdefghij, plans: [p] }
  - { name: small, value: small-0123456789abcdefgh, plans: [q] }
authorizers:
  who: { identity_sources: [header.Authorization], ttl: 0 }
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
sigv4: { region: us-east-1 }
"#;

fn gateway(reporter: Reporter) -> Gateway {
    Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .authorizer("who", |req: AuthorizerRequest| async move {
            Ok(match req.identity("header.Authorization") {
                Some("alice") => Verdict::allow("alice"),
                _ => Verdict::deny("nobody"),
            })
        })
        .reporter(reporter)
        .build()
        .unwrap()
}

/// The backend: `/boom` panics, `/sick` answers 503, `/stream` streams
/// until the test stops reading.
fn backend()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        match req.uri().path() {
            "/boom" => panic!("the backend fell over"),
            "/sick" => {
                let mut res = Response::new(Body::from("down"));
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                Ok(res)
            }
            "/stream" => {
                let chunks = futures_util::stream::iter([Bytes::from_static(b"first")])
                    .map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)))
                    .chain(futures_util::stream::pending());
                Ok(Response::new(Body::new(http_body_util::StreamBody::new(
                    chunks,
                ))))
            }
            _ => Ok(Response::new(Body::from("pets!"))),
        }
    })
}

use futures_util::StreamExt as _;

/// Sends `req` through `gw` in front of `backend()`, reading the whole answer.
async fn run(gw: &Gateway, req: Request<Body>) -> (StatusCode, http::HeaderMap) {
    let (status, headers, _) = support::send(gw.service(backend()), req).await;
    (status, headers)
}

fn get(path: &str) -> http::request::Builder {
    Request::get(path)
        .header("user-agent", "test/1")
        .extension(ClientAddr(SocketAddr::from(([198, 51, 100, 4], 999))))
}

#[tokio::test]
async fn one_event_per_request_for_every_outcome() {
    let sink = Arc::new(Collect::default());
    let reporter = Reporter::new(sink.clone());
    let gw = gateway(reporter.clone());
    let key = "key-0123456789abcdefghij";
    let key_id = gw
        .key_manager()
        .list()
        .await
        .unwrap()
        .iter()
        .find(|k| k.name == "k")
        .unwrap()
        .id
        .to_string();

    // 2xx, a miss then a hit.
    let (_, h) = run(
        &gw,
        get("/prod/pets")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let request_id = h["x-amzn-requestid"].to_str().unwrap().to_owned();
    run(
        &gw,
        get("/prod/pets")
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    // A rejection from each deciding layer.
    run(&gw, get("/prod/cats").body(Body::empty()).unwrap()).await; // route
    run(
        &gw,
        Request::delete("/prod/pets").body(Body::empty()).unwrap(),
    )
    .await; // 405
    run(&gw, get("/prod/pets").body(Body::empty()).unwrap()).await; // no key
    run(&gw, get("/prod/pets/1").body(Body::empty()).unwrap()).await;
    run(&gw, get("/prod/pets/1").body(Body::empty()).unwrap()).await; // throttled
    let small = "small-0123456789abcdefgh";
    run(
        &gw,
        get("/quota/pets")
            .header("x-api-key", small)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    run(
        &gw,
        get("/quota/pets")
            .header("x-api-key", small)
            .body(Body::empty())
            .unwrap(),
    )
    .await; // quota
    run(&gw, get("/prod/me").body(Body::empty()).unwrap()).await; // authorizer: no identity
    run(
        &gw,
        get("/prod/me")
            .header("authorization", "bob")
            .body(Body::empty())
            .unwrap(),
    )
    .await; // deny
    run(&gw, get("/prod/signed").body(Body::empty()).unwrap()).await; // no signature
    run(
        &gw,
        Request::post("/prod/pets")
            .header("content-type", "text/plain")
            .body(Body::from("12345"))
            .unwrap(),
    )
    .await; // 415
    // 5xx from the backend, and a panic.
    run(&gw, get("/prod/sick").body(Body::empty()).unwrap()).await;
    let (status, h) = run(&gw, get("/prod/boom").body(Body::empty()).unwrap()).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "a panic is answered"
    );
    assert_eq!(h["x-tollgate-error-type"], "DEFAULT_5XX");
    // A client that leaves mid-body, and one that leaves before any response.
    let res = gw
        .service(backend())
        .oneshot(get("/prod/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    drop(body);
    let slow = service_fn(|_req: Request<Body>| async {
        std::future::pending::<()>().await;
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let call = gw
        .service(slow)
        .oneshot(get("/prod/sick").body(Body::empty()).unwrap());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), call)
            .await
            .is_err()
    );

    reporter.shutdown().await;
    let events = sink.take();
    let seen: Vec<(u16, Option<GatewayResponseKind>, Outcome)> = events
        .iter()
        .map(|e| (e.status, e.rejection, e.outcome))
        .collect();
    use GatewayResponseKind as K;
    assert_eq!(
        seen,
        [
            (200, None, Outcome::Completed),
            (200, None, Outcome::Completed),
            (404, Some(K::ResourceNotFound), Outcome::Completed),
            (405, Some(K::MethodNotAllowed), Outcome::Completed),
            (403, Some(K::InvalidApiKey), Outcome::Completed),
            (200, None, Outcome::Completed),
            (429, Some(K::Throttled), Outcome::Completed),
            (200, None, Outcome::Completed),
            (429, Some(K::QuotaExceeded), Outcome::Completed),
            (401, Some(K::Unauthorized), Outcome::Completed),
            (403, Some(K::AccessDenied), Outcome::Completed),
            (403, Some(K::MissingAuthenticationToken), Outcome::Completed),
            (415, Some(K::UnsupportedMediaType), Outcome::Completed),
            (503, None, Outcome::Completed),
            (500, Some(K::Default5xx), Outcome::Panicked),
            (200, None, Outcome::ClientDisconnected),
            (499, None, Outcome::ClientDisconnected),
        ]
    );
    let first = &events[0];
    assert_eq!(first.request_id.unwrap().to_string(), request_id);
    assert_eq!(&*first.api, "zoo");
    assert_eq!(
        (first.stage(), first.resource()),
        (Some("prod"), Some("/pets"))
    );
    assert_eq!(first.method, Method::GET);
    assert_eq!(first.api_key_id.as_deref(), Some(key_id.as_str()));
    assert_eq!(first.cache, Some(CacheStatus::Miss));
    assert_eq!(events[1].cache, Some(CacheStatus::Hit));
    assert!(
        first.integration_latency.is_some(),
        "the backend was called"
    );
    assert!(
        events[1].integration_latency.is_none(),
        "a hit calls nothing"
    );
    assert_eq!(first.response_bytes, 5);
    assert_eq!(first.source_ip, Some("198.51.100.4".parse().unwrap()));
    assert_eq!(first.user_agent.as_ref().unwrap(), "test/1");
    assert!(first.latency >= first.integration_latency.unwrap());
    assert_eq!(events[2].stage(), None, "no route, no stage");
    assert_eq!(events[12].request_bytes, 5);
    assert_eq!(
        events[15].response_bytes, 5,
        "what was sent before the client left"
    );
    assert_eq!(reporter.dropped(), 0);
}

/// A sink that holds its first call until released.
struct Stalled {
    entered: Notify,
    release: Notify,
    got: AtomicUsize,
}

#[async_trait]
impl UsageSink for Stalled {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        if self.got.load(Ordering::SeqCst) == 0 {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.got.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_never_holds_a_request_and_drops_only_beyond_the_queue() {
    let sink = Arc::new(Stalled {
        entered: Notify::new(),
        release: Notify::new(),
        got: AtomicUsize::new(0),
    });
    let mut config = ReporterConfig::default();
    config.queue = 100;
    config.batch_size = 1;
    let reporter = Reporter::with_config(sink.clone(), config);
    let gw = gateway(reporter.clone());
    let svc = gw.service(backend());
    run(&gw, get("/prod/sick").body(Body::empty()).unwrap()).await;
    sink.entered.notified().await;
    // The sink is stuck on the first event; 500 more requests all complete.
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let res = svc
                    .oneshot(get("/prod/sick").body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                res.into_body().collect().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("a request waited on the sink")
            .unwrap();
    }
    assert_eq!(
        reporter.dropped(),
        400,
        "the events beyond the queue of 100"
    );
    sink.release.notify_one();
    reporter.shutdown().await;
    assert_eq!(
        sink.got.load(Ordering::SeqCst),
        101,
        "nothing under the bound lost"
    );
    assert_eq!(reporter.delivered(), 101);
}

#[tokio::test]
async fn shutdown_flushes_and_retries_do_not_duplicate() {
    let sink = Arc::new(Collect {
        fail_first: 2,
        ..Collect::default()
    });
    let mut config = ReporterConfig::default();
    config.flush_interval = Duration::from_secs(3600);
    config.batch_size = 1000;
    config.retry_base = Duration::from_millis(1);
    let reporter = Reporter::with_config(sink.clone(), config);
    let gw = gateway(reporter.clone());
    for i in 0..10 {
        run(
            &gw,
            get(&format!("/prod/pets/{i}?n={i}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    }
    // Nothing has gone out yet: the batch is neither full nor due.
    assert_eq!(sink.calls.load(Ordering::SeqCst), 0);
    gw.shutdown_reporters().await;
    let events = sink.take();
    assert_eq!(
        sink.calls.load(Ordering::SeqCst),
        3,
        "two failures, then the one that took it"
    );
    assert_eq!(reporter.retries(), 2);
    assert_eq!(events.len(), 10, "each event once");
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e.request_id.unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    // After shutdown, events are dropped and counted, never queued.
    run(&gw, get("/prod/pets/1").body(Body::empty()).unwrap()).await;
    assert_eq!(reporter.dropped(), 1);
}

async fn sample_events() -> Vec<UsageEvent> {
    let sink = Arc::new(Collect::default());
    let reporter = Reporter::new(sink.clone());
    let gw = gateway(reporter.clone());
    // A miss, a hit, an authorized call, a 404, a 503.
    let key = ("x-api-key", "key-0123456789abcdefghij");
    let requests = [
        ("/prod/pets", Some(key)),
        ("/prod/pets", Some(key)),
        ("/prod/me", Some(("authorization", "alice"))),
        ("/prod/nope", None),
        ("/prod/sick", None),
    ];
    for (path, header) in requests {
        let mut req = get(path);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        run(&gw, req.body(Body::empty()).unwrap()).await;
    }
    reporter.shutdown().await;
    sink.take()
}

#[tokio::test]
async fn the_metrics_sink_emits_cloudwatch_names_and_labels() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let events = sample_events().await;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        for e in &events {
            MetricsSink::new().emit(e);
        }
    });
    let mut counters: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut histograms: BTreeMap<String, usize> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        let label = |n: &str| {
            k.labels()
                .find(|l| l.key() == n)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(label("api"), "zoo");
        assert!(!label("method").is_empty());
        match value {
            DebugValue::Counter(n) => {
                counters.insert((k.name().to_owned(), label("stage"), label("resource")), n);
            }
            DebugValue::Histogram(v) => {
                *histograms.entry(k.name().to_owned()).or_default() += v.len()
            }
            DebugValue::Gauge(_) => {}
        }
    }
    let c = |name: &str, stage: &str, resource: &str| {
        counters
            .get(&(name.to_owned(), stage.to_owned(), resource.to_owned()))
            .copied()
    };
    assert_eq!(c("Count", "prod", "/pets"), Some(2));
    assert_eq!(c("CacheMissCount", "prod", "/pets"), Some(1));
    assert_eq!(c("CacheHitCount", "prod", "/pets"), Some(1));
    assert_eq!(c("Count", "-", "-"), Some(1), "unrouted requests count too");
    assert_eq!(c("4XXError", "-", "-"), Some(1));
    assert_eq!(c("5XXError", "prod", "/sick"), Some(1));
    assert_eq!(c("4XXError", "prod", "/pets"), None);
    assert_eq!(histograms.get("Latency"), Some(&5));
    // Backend calls: the miss, /me and /sick.
    assert_eq!(histograms.get("IntegrationLatency"), Some(&3));
}

#[tokio::test]
async fn the_access_log_renders_each_variable() {
    let events = sample_events().await;
    let format = "$context.requestId|$context.extendedRequestId|$context.identity.sourceIp|$context.identity.userAgent|$context.identity.apiKeyId|$context.httpMethod|$context.resourcePath|$context.stage|$context.apiId|$context.status|$context.responseLength|$context.responseLatency|$context.integrationLatency|$context.requestTime|$context.requestTimeEpoch|$context.error.responseType|$context.authorizer.principalId";
    let out = Captured::default();
    let sink = AccessLogSink::template(format)
        .unwrap()
        .to_writer(out.clone());
    sink.send(&events).await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(lines.len(), 5);
    let e = &events[0];
    let miss = &lines[0];
    let id = e.request_id.unwrap().to_string();
    assert_eq!(miss[0], id);
    assert_eq!(miss[1], id);
    assert_eq!(miss[2], "198.51.100.4");
    assert_eq!(miss[3], "test/1");
    assert_eq!(miss[4], &**e.api_key_id.as_ref().unwrap());
    assert_eq!(&miss[5..11], ["GET", "/pets", "prod", "zoo", "200", "5"]);
    assert_eq!(miss[11], e.latency.as_millis().to_string());
    assert_eq!(
        miss[12],
        e.integration_latency.unwrap().as_millis().to_string()
    );
    let t = time::OffsetDateTime::from_unix_timestamp((e.time_unix_nanos / 1_000_000_000) as i64)
        .unwrap();
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    assert_eq!(
        miss[13],
        format!(
            "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
            t.day(),
            months[t.month() as usize - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        )
    );
    assert_eq!(miss[14], (e.time_unix_nanos / 1_000_000).to_string());
    assert_eq!((miss[15], miss[16]), ("-", "-"));
    assert_eq!(lines[1][12], "-", "a hit has no integration latency");
    assert_eq!(lines[2][16], "alice");
    assert_eq!(
        (lines[3][6], lines[3][9], lines[3][15]),
        ("-", "404", "RESOURCE_NOT_FOUND")
    );
    assert!(AccessLogSink::template("$context.bogus").is_err());

    let out = Captured::default();
    AccessLogSink::json_lines()
        .to_writer(out.clone())
        .send(&events)
        .await
        .unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["requestId"], id);
    assert_eq!(first["resourcePath"], "/pets");
    assert_eq!(first["cache"], "Miss");
    assert_eq!(first["outcome"], "completed");
}

#[tokio::test]
async fn the_http_sink_posts_json_batches() {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    let events = sample_events().await;
    let posted = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let status = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    {
        let posted = posted.clone();
        let status = status.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let posted = posted.clone();
                let status = status.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let posted = posted.clone();
                            let status = status.clone();
                            async move {
                                assert_eq!(req.uri().path(), "/report");
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                posted
                                    .lock()
                                    .unwrap()
                                    .push(serde_json::from_slice(&body).unwrap());
                                let mut res =
                                    Response::new(http_body_util::Full::new(Bytes::new()));
                                *res.status_mut() =
                                    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
                                Ok::<_, Infallible>(res)
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }
    let sink = HttpSink::new(&format!("http://{addr}/report")).unwrap();
    sink.send(&events).await.unwrap();
    {
        let posted = posted.lock().unwrap();
        let batch = posted[0]["events"].as_array().unwrap();
        assert_eq!(batch.len(), 5);
        assert_eq!(batch[0]["stage"], "prod");
        assert_eq!(batch[3]["status"], 404);
    }
    status.store(503, Ordering::SeqCst);
    let err = sink.send(&events).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    // https:// is served (tests/tls.rs); another scheme or no host is not.
    assert!(HttpSink::new("https://x/report").is_ok());
    assert!(HttpSink::new("ftp://x/report").is_err());
    assert!(HttpSink::new("/report").is_err());
}

#[tokio::test]
async fn the_aggregate_counts_and_answers_usage_records_without_a_quota() {
    let agg = Arc::new(AggregatingSink::new());
    let reporter = Reporter::new(agg.clone());
    let clock = tollgate::clock::ManualClock::at_unix_secs(1_800_000_000);
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock)
        .authorizer("who", |_req: AuthorizerRequest| async {
            Ok(Verdict::deny("x"))
        })
        .reporter(reporter.clone())
        .usage_records_from(agg.clone())
        .build()
        .unwrap();
    let key = "key-0123456789abcdefghij";
    for _ in 0..3 {
        run(
            &gw,
            get("/prod/pets")
                .header("x-api-key", key)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    }
    run(&gw, get("/prod/sick").body(Body::empty()).unwrap()).await;
    run(&gw, get("/prod/nope").body(Body::empty()).unwrap()).await;
    reporter.shutdown().await;

    let key_id = gw
        .key_manager()
        .list()
        .await
        .unwrap()
        .iter()
        .find(|k| k.name == "k")
        .unwrap()
        .id
        .to_string();
    let today = time::OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .unwrap()
        .date();
    assert_eq!(agg.key_day(&key_id, today), 3);
    let pets = agg.endpoint("prod", "/pets", &Method::GET);
    assert_eq!((pets.count, pets.cache_misses, pets.cache_hits), (3, 1, 2));
    assert_eq!(agg.endpoint("prod", "/sick", &Method::GET).server_errors, 1);
    assert_eq!(
        (
            agg.status_class(2),
            agg.status_class(4),
            agg.status_class(5)
        ),
        (3, 1, 1)
    );
    assert_eq!(agg.day(today), 5);
    assert_eq!(agg.total(), 5);

    // Plan `p` has no quota: usage comes from the aggregate.
    let usage = gw.usage().get_usage("p", today, today, None).await.unwrap();
    assert_eq!(usage.items[&key_id], vec![[3, -1]]);
}

#[tokio::test]
async fn a_reporter_dropped_everywhere_delivers_what_it_held_and_ends() {
    let sink = Arc::new(Collect::default());
    let mut config = ReporterConfig::default();
    config.flush_interval = Duration::from_millis(10);
    let gw = gateway(Reporter::with_config(sink.clone(), config));
    for _ in 0..3 {
        run(&gw, get("/prod/sick").body(Body::empty()).unwrap()).await;
    }
    drop(gw);
    // The task holds the last other reference to the sink until it ends.
    for _ in 0..500 {
        if Arc::strong_count(&sink) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Arc::strong_count(&sink), 1, "the task ended");
    assert_eq!(sink.take().len(), 3, "after delivering what it held");
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_emf_sink_writes_lines_whose_counts_add_up_to_the_requests_sent() {
    let out = Shared::default();
    let sink = Arc::new(
        EmfSink::stdout()
            .namespace("petstore")
            .to_writer(out.clone()),
    );
    // Batches of 128, so the 230 requests make several flushes, and one
    // dimension set gets more than 100 latencies in a batch.
    let mut config = ReporterConfig::default();
    config.batch_size = 128;
    config.flush_interval = Duration::from_secs(3600);
    let reporter = Reporter::with_config(sink, config);
    let gw = gateway(reporter.clone());
    let key = ("x-api-key", "key-0123456789abcdefghij");
    // 180 to a cached method (1 miss, 179 hits), 30 to no route (404),
    // 20 answered 503 by the backend.
    let plan = [
        ("/prod/pets", Some(key), 180),
        ("/prod/nope", None, 30),
        ("/prod/sick", None, 20),
    ];
    for (path, header, n) in plan {
        for _ in 0..n {
            let mut req = get(path);
            if let Some((name, value)) = header {
                req = req.header(name, value);
            }
            run(&gw, req.body(Body::empty()).unwrap()).await;
        }
    }
    reporter.shutdown().await;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();

    let mut totals: BTreeMap<(String, String, String, String), [u64; 7]> = BTreeMap::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let root = doc.as_object().unwrap();
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "{line}");
        let d = &directives[0];
        assert_eq!(d["Namespace"], "petstore");
        // Every dimension and metric a directive names is a member of the
        // line, and every metric member is named by the directive.
        for set in d["Dimensions"].as_array().unwrap() {
            for name in set.as_array().unwrap() {
                let v = &root[name.as_str().unwrap()];
                assert!(v.is_string(), "dimension {name} in {line}");
            }
        }
        let metrics = d["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty(), "{line}");
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(root.contains_key(name), "metric {name} missing in {line}");
            let unit = m["Unit"].as_str().unwrap();
            match name {
                "Latency" | "IntegrationLatency" => {
                    assert_eq!(unit, "Milliseconds");
                    assert!(root[name].as_array().unwrap().len() <= 100, "{line}");
                }
                _ => assert_eq!(unit, "Count"),
            }
        }
        let named: Vec<&str> = metrics
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        let dims = ["ApiName", "Stage", "Resource", "Method"];
        for member in root.keys() {
            assert!(
                member == "_aws"
                    || dims.contains(&member.as_str())
                    || named.contains(&member.as_str()),
                "{member} not named in {line}"
            );
        }
        let key = (
            root["ApiName"].as_str().unwrap().to_owned(),
            root["Stage"].as_str().unwrap().to_owned(),
            root["Resource"].as_str().unwrap().to_owned(),
            root["Method"].as_str().unwrap().to_owned(),
        );
        let t = totals.entry(key).or_default();
        for (i, name) in [
            "Count",
            "4XXError",
            "5XXError",
            "CacheHitCount",
            "CacheMissCount",
        ]
        .into_iter()
        .enumerate()
        {
            t[i] += root.get(name).map_or(0, |v| v.as_u64().unwrap());
        }
        t[5] += root
            .get("Latency")
            .map_or(0, |v| v.as_array().unwrap().len() as u64);
        t[6] += root
            .get("IntegrationLatency")
            .map_or(0, |v| v.as_array().unwrap().len() as u64);
    }
    // More lines than dimension sets: several flushes, and a batch with
    // more than 100 latencies for /pets split.
    assert!(lines > 3, "{text}");
    let at = |stage: &str, resource: &str| {
        let k = (
            "zoo".to_owned(),
            stage.to_owned(),
            resource.to_owned(),
            "GET".to_owned(),
        );
        totals
            .get(&k)
            .copied()
            .unwrap_or_else(|| panic!("no {resource}: {totals:?}"))
    };
    let pets = at("prod", "/pets");
    assert_eq!(pets[..5], [180, 0, 0, 179, 1]);
    assert_eq!(pets[5], 180, "one latency per request");
    assert_eq!(pets[6], 1, "only the miss reached the integration");
    let nope = at("-", "-");
    assert_eq!(nope[..3], [30, 30, 0]);
    assert_eq!(nope[5], 30);
    let sick = at("prod", "/sick");
    assert_eq!(sick[..3], [20, 0, 20]);
    assert_eq!(sick[6], 20);
    let sum: u64 = totals.values().map(|t| t[0]).sum();
    assert_eq!(sum, 230, "every request counted once");
}

/// Fails its first write after `budget` bytes, as a full disk does.
#[derive(Clone)]
struct Torn(Arc<Mutex<(Vec<u8>, Option<usize>)>>);

impl std::io::Write for Torn {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        match s.1 {
            Some(0) => {
                s.1 = None;
                Err(std::io::Error::other("disk full"))
            }
            Some(left) => {
                let n = left.min(b.len());
                s.0.extend_from_slice(&b[..n]);
                s.1 = Some(left - n);
                Ok(n)
            }
            None => {
                s.0.extend_from_slice(b);
                Ok(b.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_emf_batch_retried_after_a_torn_write_keeps_every_line_whole() {
    let out = Torn(Arc::new(Mutex::new((Vec::new(), Some(30)))));
    let sink = EmfSink::stdout().to_writer(out.clone());
    let batch: Vec<UsageEvent> = (0..3).map(|_| UsageEvent::new("api", 200)).collect();
    assert!(sink.send(&batch).await.is_err(), "the write fails part way");
    sink.send(&batch).await.unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().0.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        serde_json::from_str::<serde_json::Value>(lines[0]).is_err(),
        "the torn fragment"
    );
    let whole: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(whole["Count"], 3);
    let sets = &whole["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert_eq!(
        sets,
        &serde_json::json!([
            ["ApiName"],
            ["ApiName", "Stage"],
            ["ApiName", "Stage", "Resource", "Method"]
        ])
    );
}
