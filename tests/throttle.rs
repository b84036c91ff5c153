//! Throttling: exact token-bucket arithmetic, a reference model, concurrency,
//! layered gateway limits, headers, store failures.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderName, Request, Response, StatusCode};
use proptest::prelude::*;
use support::{gateway, ok, status};
use tollgate::clock::ManualClock;
use tollgate::store::{FailMode, StoreError};
use tollgate::throttle::{
    Admission, ClientAddr, InMemoryRateStore, KeyExtractor, Limit, LimitScope, Rate, RateKey,
    RateStore, ThrottleLayer, ThrottleRejection,
};
use tollgate::{ApiKeyIdentity, Body, Config, Gateway};
use tower::{Layer, Service, ServiceExt};

const SEC: u64 = 1_000_000_000;

fn admit(store: &InMemoryRateStore, key: &str, rate: Rate) -> bool {
    store
        .check_limits(&[Limit {
            key: RateKey::Custom(key),
            rate,
        }])
        .admitted
}

// ---------------------------------------------------------------- arithmetic

#[test]
fn burst_at_once_then_exactly_one_per_interval() {
    let clock = ManualClock::at_unix_secs(1_000);
    let store = InMemoryRateStore::new(clock.clone());
    let rate = Rate::new(10.0, 5);
    assert_eq!((0..20).filter(|_| admit(&store, "k", rate)).count(), 5);
    for _ in 0..50 {
        clock.advance(Duration::from_millis(100) - Duration::from_nanos(1));
        assert!(
            !admit(&store, "k", rate),
            "a token arrives only after a full interval"
        );
        clock.advance(Duration::from_nanos(1));
        assert!(admit(&store, "k", rate));
        assert!(!admit(&store, "k", rate));
    }
}

#[test]
fn fractional_rates() {
    let clock = ManualClock::at_unix_secs(1_000);
    let store = InMemoryRateStore::new(clock.clone());
    let rate = Rate::new(0.5, 1);
    assert!(admit(&store, "half", rate));
    clock.advance(Duration::from_millis(1999));
    assert!(!admit(&store, "half", rate));
    clock.advance(Duration::from_millis(1));
    assert!(admit(&store, "half", rate));
}

#[test]
fn idle_time_refills_to_burst_and_no_further() {
    let clock = ManualClock::at_unix_secs(1_000);
    let store = InMemoryRateStore::new(clock.clone());
    let rate = Rate::new(100.0, 7);
    assert_eq!((0..10).filter(|_| admit(&store, "k", rate)).count(), 7);
    clock.advance(Duration::from_secs(3600));
    assert_eq!((0..20).filter(|_| admit(&store, "k", rate)).count(), 7);
}

#[test]
fn zero_rate_and_zero_burst_block_everything() {
    let store = InMemoryRateStore::new(ManualClock::at_unix_secs(1_000));
    assert!(!admit(&store, "k", Rate::new(0.0, 0)));
}

// ------------------------------------------------------- reference model

/// A token bucket kept as a level of "debt" in nanoseconds, refilled lazily:
/// the textbook meter, written independently of GCRA's arrival time.
struct Model {
    interval: u64,
    capacity: u64,
    level: u64,
    last: u64,
}

impl Model {
    fn new(rate: f64, burst: u32) -> Self {
        let interval = (1e9 / rate).round().max(1.0) as u64;
        Self {
            interval,
            capacity: interval * u64::from(burst),
            level: 0,
            last: 0,
        }
    }

    fn request(&mut self, now: u64) -> bool {
        self.level = self.level.saturating_sub(now - self.last);
        self.last = now;
        if self.level + self.interval <= self.capacity {
            self.level += self.interval;
            true
        } else {
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_store_agrees_with_the_model_on_every_decision(
        rate in prop_oneof![0.1f64..10.0, 10.0f64..10_000.0],
        burst in 1u32..50,
        gaps in proptest::collection::vec(0u64..(3 * SEC), 1..300),
    ) {
        let start = 1_000 * SEC;
        let clock = ManualClock::new();
        clock.set_unix_nanos(start);
        let store = InMemoryRateStore::new(clock.clone());
        let mut model = Model::new(rate, burst);
        model.last = start;
        let r = Rate::new(rate, burst);
        let mut now = start;
        for (i, gap) in gaps.iter().enumerate() {
            // Many arrivals share an instant: divide the gaps so bursts happen.
            now += if i % 3 == 0 { *gap } else { gap / 1000 };
            clock.set_unix_nanos(now);
            prop_assert_eq!(admit(&store, "k", r), model.request(now), "request {} at +{}ns", i, now - start);
        }
    }
}

// ------------------------------------------------------------- concurrency

#[test]
fn eight_threads_on_one_key_admit_exactly_what_the_model_admits() {
    // 8 threads contend for one key in 50 windows of manual-clock time. In
    // each window they all hammer the key until it rejects them (the clock
    // stands still, so the bucket stays empty); then the clock moves on by 20
    // tokens' worth. No update may be lost or double-counted: exactly the
    // burst plus 20 per later window is admitted.
    use std::sync::Barrier;
    const THREADS: usize = 8;
    const WINDOWS: usize = 50;
    let clock = ManualClock::at_unix_secs(1_000);
    let store = Arc::new(InMemoryRateStore::new(clock.clone()));
    let rate = Rate::new(1000.0, 100);
    let admitted = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (store, admitted, barrier) = (store.clone(), admitted.clone(), barrier.clone());
            std::thread::spawn(move || {
                for _ in 0..WINDOWS {
                    barrier.wait();
                    while admit(&store, "hot", rate) {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    barrier.wait();
                }
            })
        })
        .collect();
    for _ in 0..WINDOWS {
        barrier.wait(); // the window opens
        barrier.wait(); // every thread has been rejected
        clock.advance(Duration::from_millis(20));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        admitted.load(Ordering::Relaxed),
        100 + 20 * (WINDOWS as u64 - 1)
    );
}

// --------------------------------------------------------- through a gateway

const GATEWAY: &str = r#"
# Admitted responses name the binding limit (off by default): the tests read it.
throttle_options: { headers: true }
throttle: { rate: 1, burst: 6 }
routes:
  /pets: [GET, POST]
  /pets/{id}: [GET]
stages:
  prod:
    settings: { throttle: { rate: 1, burst: 3 } }
    methods:
      /pets/POST: { throttle: { burst: 1 } }
plans:
  basic:
    stages: [prod]
    throttle: { rate: 1, burst: 2 }
    methods:
      /pets/{id}/GET: { throttle: { rate: 1, burst: 5 } }
"#;

/// Sends `method uri`, as the API key `key` (plan `basic`) if given.
async fn send(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send),
    method: &str,
    uri: &str,
    key: Option<&str>,
) -> Response<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    if let Some(k) = key {
        req.extensions_mut()
            .insert(ApiKeyIdentity::new(k, Some(Arc::from("basic"))));
    }
    support::call(svc, req).await
}

#[tokio::test]
async fn each_method_of_a_stage_has_its_own_bucket_and_the_gateway_bucket_is_shared() {
    let clock = ManualClock::at_unix_secs(10_000);
    let mut svc = gateway(GATEWAY, &clock).service(ok());
    // GET /pets: burst 3 from the stage settings.
    for _ in 0..3 {
        assert_eq!(
            send(&mut svc, "GET", "/prod/pets", None).await.status(),
            StatusCode::OK
        );
    }
    let res = send(&mut svc, "GET", "/prod/pets", None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.extensions().get::<ThrottleRejection>().unwrap().scope,
        LimitScope::Method
    );
    // POST /pets has its own bucket (burst overridden to 1, rate kept).
    assert_eq!(
        send(&mut svc, "POST", "/prod/pets", None).await.status(),
        StatusCode::OK
    );
    let res = send(&mut svc, "POST", "/prod/pets", None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["ratelimit-policy"], "\"method\";q=1;w=1");
    // GET /pets/{id} has a third bucket of 3, but the gateway bucket (6) is
    // shared by all: 4 admitted so far, so 2 more pass and the third is the
    // gateway's to reject.
    assert_eq!(
        send(&mut svc, "GET", "/prod/pets/1", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, "GET", "/prod/pets/2", None).await.status(),
        StatusCode::OK
    );
    let res = send(&mut svc, "GET", "/prod/pets/3", None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.extensions().get::<ThrottleRejection>().unwrap().scope,
        LimitScope::Gateway
    );
    assert_eq!(res.headers()["ratelimit-policy"], "\"gateway\";q=6;w=6");
    assert_eq!(res.headers()["retry-after"], "1");
}

#[tokio::test]
async fn a_rejection_by_one_limit_does_not_drain_the_other() {
    let clock = ManualClock::at_unix_secs(10_000);
    let mut svc = gateway(GATEWAY, &clock).service(ok());
    // The plan allows 2 per key; the method allows 3.
    assert_eq!(
        send(&mut svc, "GET", "/prod/pets", Some("k1"))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        send(&mut svc, "GET", "/prod/pets", Some("k1"))
            .await
            .status(),
        StatusCode::OK
    );
    for _ in 0..5 {
        let res = send(&mut svc, "GET", "/prod/pets", Some("k1")).await;
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.extensions().get::<ThrottleRejection>().unwrap().scope,
            LimitScope::ApiKey
        );
        assert_eq!(res.headers()["ratelimit-policy"], "\"plan\";q=2;w=2");
    }
    // Five plan rejections took nothing from the method bucket: it still has
    // its third token for another key.
    let res = send(&mut svc, "GET", "/prod/pets", Some("k2")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit"], "\"method\";r=0;t=3");
    let res = send(&mut svc, "GET", "/prod/pets", Some("k2")).await;
    assert_eq!(
        res.extensions().get::<ThrottleRejection>().unwrap().scope,
        LimitScope::Method
    );
}

#[tokio::test]
async fn headers_report_the_most_restrictive_limit() {
    let clock = ManualClock::at_unix_secs(10_000);
    let mut svc = gateway(GATEWAY, &clock).service(ok());
    // GET /pets/{id} with a key: plan-method 5, plan 2, method 3, gateway 8.
    let res = send(&mut svc, "GET", "/prod/pets/1", Some("k")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["ratelimit-policy"], "\"plan\";q=2;w=2");
    assert_eq!(res.headers()["ratelimit"], "\"plan\";r=1;t=1");
    let res = send(&mut svc, "GET", "/prod/pets/1", Some("k")).await;
    assert_eq!(res.headers()["ratelimit"], "\"plan\";r=0;t=2");
    let res = send(&mut svc, "GET", "/prod/pets/1", Some("k")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["x-tollgate-error-type"], "THROTTLED");
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"message":"Too Many Requests"}"#);
}

#[tokio::test]
async fn retry_after_rounds_up_and_is_never_zero() {
    let clock = ManualClock::at_unix_secs(10_000);
    let yaml = "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 0.4, burst: 1 } } } }\n";
    let mut svc = gateway(yaml, &clock).service(ok());
    assert_eq!(
        send(&mut svc, "GET", "/prod/a", None).await.status(),
        StatusCode::OK
    );
    let res = send(&mut svc, "GET", "/prod/a", None).await;
    assert_eq!(res.headers()["retry-after"], "3", "2.5 s rounds up to 3");
    clock.advance(Duration::from_millis(2499));
    let res = send(&mut svc, "GET", "/prod/a", None).await;
    assert_eq!(
        res.headers()["retry-after"],
        "1",
        "1 ms rounds up to 1, never 0"
    );
}

#[tokio::test]
async fn admitted_responses_carry_no_ratelimit_fields_by_default() {
    // As API Gateway's: `throttle_options.headers: true` turns them on.
    let clock = ManualClock::at_unix_secs(10_000);
    let yaml = "routes: { /a: [GET] }\nstages: { prod: { settings: { throttle: { rate: 1, burst: 1 } } } }\n";
    let mut svc = gateway(yaml, &clock).service(ok());
    let res = send(&mut svc, "GET", "/prod/a", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("ratelimit"));
    assert!(!res.headers().contains_key("ratelimit-policy"));
    let res = send(&mut svc, "GET", "/prod/a", None).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(
        res.headers().contains_key("ratelimit"),
        "a 429 always says why"
    );
}

#[tokio::test]
async fn per_client_limits_believe_forwarded_for_only_from_trusted_proxies() {
    let clock = ManualClock::at_unix_secs(10_000);
    let yaml = "throttle_options: { per_client: { rate: 1, burst: 1 }, trusted_proxies: [10.0.0.0/8] }\nroutes: { /a: [GET] }\nstages: { prod: {} }\n";
    let mut svc = gateway(yaml, &clock).service(ok());
    let req = |peer: &str, xff: Option<&str>| {
        let mut b = Request::get("/prod/a");
        if let Some(x) = xff {
            b = b.header("x-forwarded-for", x);
        }
        let mut r = b.body(Body::empty()).unwrap();
        r.extensions_mut()
            .insert(ClientAddr(format!("{peer}:5000").parse().unwrap()));
        r
    };
    // Two clients behind one trusted proxy get a bucket each.
    assert_eq!(
        status(&mut svc, req("10.0.0.1", Some("198.51.100.1"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&mut svc, req("10.0.0.1", Some("198.51.100.2"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&mut svc, req("10.0.0.1", Some("198.51.100.1"))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // An untrusted peer cannot pick an address by sending the header.
    assert_eq!(
        status(&mut svc, req("203.0.113.5", Some("198.51.100.3"))).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&mut svc, req("203.0.113.5", Some("198.51.100.4"))).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ------------------------------------------------------------- standalone

#[tokio::test]
async fn standalone_layer_by_header_by_ip_and_by_closure() {
    let by_header = ThrottleLayer::new(Rate::new(1.0, 1))
        .key(KeyExtractor::header(HeaderName::from_static("x-user")));
    let mut svc = by_header.layer(ok());
    let req = |user: &str| {
        Request::get("/")
            .header("x-user", user)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(status(&mut svc, req("a")).await, StatusCode::OK);
    assert_eq!(status(&mut svc, req("b")).await, StatusCode::OK);
    let res = svc.ready().await.unwrap().call(req("a")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        res.extensions().get::<ThrottleRejection>().unwrap().scope,
        LimitScope::Custom
    );

    let by_ip = ThrottleLayer::new(Rate::new(1.0, 1)).key(KeyExtractor::client_ip([]));
    let mut svc = by_ip.layer(ok());
    let req = |ip: &str| {
        let mut r = Request::get("/").body(Body::empty()).unwrap();
        r.extensions_mut()
            .insert(ClientAddr(format!("{ip}:1").parse().unwrap()));
        r
    };
    assert_eq!(status(&mut svc, req("192.0.2.1")).await, StatusCode::OK);
    assert_eq!(status(&mut svc, req("192.0.2.2")).await, StatusCode::OK);
    let third = svc
        .ready()
        .await
        .unwrap()
        .call(req("192.0.2.1"))
        .await
        .unwrap();
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);

    let by_fn = ThrottleLayer::new(Rate::new(1.0, 2)).key(KeyExtractor::from_fn(|head| {
        head.uri.path().split('/').nth(1).map(str::to_owned)
    }));
    let mut svc = by_fn.layer(ok());
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    for p in ["/t1/a", "/t1/b", "/t2/a", "/t2/b"] {
        assert_eq!(
            svc.ready()
                .await
                .unwrap()
                .call(get(p))
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "{p}"
        );
    }
    let res = svc.ready().await.unwrap().call(get("/t1/c")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A store that always fails, and answers only through the async path.
#[derive(Debug)]
struct Broken;

#[async_trait]
impl RateStore for Broken {
    async fn check(&self, _: &[Limit<'_>]) -> Result<Admission, StoreError> {
        Err(StoreError::unavailable("test store is down"))
    }
}

/// An in-memory store that answers only through the async path, as a remote store does.
#[derive(Debug)]
struct Remote(InMemoryRateStore);

#[async_trait]
impl RateStore for Remote {
    async fn check(&self, limits: &[Limit<'_>]) -> Result<Admission, StoreError> {
        tokio::task::yield_now().await;
        Ok(self.0.check_limits(limits))
    }
}

#[tokio::test]
async fn store_failures_follow_the_fail_mode_and_are_counted() {
    let open = ThrottleLayer::new(Rate::new(1.0, 1)).store(Arc::new(Broken));
    let mut svc = open.layer(ok());
    for _ in 0..3 {
        let res = svc
            .ready()
            .await
            .unwrap()
            .call(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(open.store_errors(), 3);

    let closed = ThrottleLayer::new(Rate::new(1.0, 1))
        .store(Arc::new(Broken))
        .fail_mode(FailMode::Closed);
    let mut svc = closed.layer(ok());
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()["x-tollgate-error-type"],
        "BACKEND_UNAVAILABLE"
    );
    assert_eq!(closed.store_errors(), 1);
}

#[tokio::test]
async fn a_store_that_waits_gives_the_same_answers() {
    let clock = ManualClock::at_unix_secs(10_000);
    let remote = Arc::new(Remote(InMemoryRateStore::new(clock.clone())));
    let gw = Gateway::builder(Config::from_yaml_str(GATEWAY).unwrap())
        .clock(clock)
        .rate_store(remote)
        .build()
        .unwrap();
    let mut svc = gw.service(ok());
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(
                send(&mut svc, "GET", "/prod/pets", None)
                    .await
                    .status()
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, [200, 200, 200, 429]);
    let res = send(&mut svc, "POST", "/prod/pets", None).await;
    assert_eq!(res.headers()["ratelimit"], "\"method\";r=0;t=1");
}

/// Two gateways built from different configs may share one in-memory rate
/// store (`GatewayBuilder::rate_store`), as they would share a Redis one:
/// a method's bucket is that stage, method and resource's, never whichever
/// endpoint happens to have the same index in the other gateway.
#[tokio::test]
async fn gateways_sharing_an_in_memory_store_keep_each_methods_bucket_apart() {
    let clock = ManualClock::at_unix_secs(1_000);
    let store: Arc<dyn RateStore> = Arc::new(InMemoryRateStore::new(clock.clone()));
    let build = |resource: &str| {
        let yaml = format!(
            "routes: {{ {resource}: [GET] }}\nstages: {{ prod: {{ settings: {{ throttle: {{ rate: 0.001, burst: 1 }} }} }} }}\n"
        );
        Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
            .clock(clock.clone())
            .rate_store(store.clone())
            .build()
            .unwrap()
    };
    // Both methods are endpoint 0 of their gateway.
    let (a, b, a_again) = (build("/a"), build("/b"), build("/a"));
    let mut a = a.service(ok());
    let mut b = b.service(ok());
    let mut a_again = a_again.service(ok());
    let get = |p: &str| Request::get(p).body(Body::empty()).unwrap();
    assert_eq!(status(&mut a, get("/prod/a")).await, StatusCode::OK);
    assert_eq!(
        status(&mut a, get("/prod/a")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // /b has its own bucket.
    assert_eq!(status(&mut b, get("/prod/b")).await, StatusCode::OK);
    // The same method in another gateway on the store is the same bucket.
    assert_eq!(
        status(&mut a_again, get("/prod/a")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
