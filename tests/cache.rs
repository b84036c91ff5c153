//! Response caching: hits and misses, TTL, keys, what is never stored,
//! coalesced misses, capacity, and the gateway's per-method settings.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tollgate::cache::{
    CacheInvalidator, CacheKey, CacheLayer, CachePolicy, CacheStatus, CacheStore, CachedResponse,
    MokaCacheStore, UnauthorizedStrategy,
};
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::{BoxError, Layer, Service, ServiceExt};

const T0: u64 = 1_800_000_000;

/// A backend counting its calls; each response's body says which call it was.
#[derive(Clone)]
struct Backend {
    calls: Arc<AtomicUsize>,
    status: StatusCode,
    cache_control: Option<&'static str>,
    set_cookie: bool,
    body_len: Option<usize>,
    delay: Option<Duration>,
    /// The first call fails with an error (not a response).
    fail_first: bool,
    /// While set: every call fails with an error.
    erroring: Arc<AtomicBool>,
    /// While set: every call answers 503.
    unavailable: Arc<AtomicBool>,
}

impl Backend {
    fn new() -> Self {
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

    fn calls(&self) -> usize {
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

fn layer(clock: &ManualClock, ttl: u64) -> CacheLayer {
    CacheLayer::new(
        Arc::new(MokaCacheStore::default()),
        CachePolicy::with_ttl(Duration::from_secs(ttl)),
    )
    .with_clock(Arc::new(clock.clone()))
}

async fn send<S>(
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

#[tokio::test]
async fn a_second_get_is_a_hit_until_the_ttl_runs_out() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());

    let (_, s1, h1, b1) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s1, Some(CacheStatus::Miss));
    assert_eq!(h1["x-cache"], "Miss");
    clock.advance(Duration::from_secs(59));
    let (_, s2, h2, b2) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s2, Some(CacheStatus::Hit));
    assert_eq!(h2["x-cache"], "Hit");
    assert_eq!(h2["age"], "59");
    assert_eq!(h2["x-backend"], "yes", "stored headers are served");
    assert_eq!(b1, b2);
    assert_eq!(backend.calls(), 1);

    clock.advance(Duration::from_secs(1));
    let (_, s3, _, b3) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s3, Some(CacheStatus::Miss), "expired at exactly the TTL");
    assert_ne!(b3, b1);
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry_without_a_body() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    let (status, s, _, body) = send(&svc, Method::HEAD, "/pets").await;
    assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Hit)));
    assert!(body.is_empty());
    assert_eq!(backend.calls(), 1);
}

#[tokio::test]
async fn post_bypasses_the_cache() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    for _ in 0..2 {
        let (_, s, h, _) = send(&svc, Method::POST, "/pets").await;
        assert_eq!(s, Some(CacheStatus::Bypass));
        assert_eq!(h["x-cache"], "Bypass");
    }
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn standalone_keys_are_method_path_and_query() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets?type=dog").await;
    send(&svc, Method::GET, "/pets?type=cat").await;
    send(&svc, Method::GET, "/pets").await;
    let (_, s, _, _) = send(&svc, Method::GET, "/pets?type=dog").await;
    assert_eq!(s, Some(CacheStatus::Hit));
    assert_eq!(backend.calls(), 3);
}

#[tokio::test]
async fn what_is_never_stored() {
    let cases: [(&str, Backend); 5] = [
        (
            "5xx",
            Backend {
                status: StatusCode::BAD_GATEWAY,
                ..Backend::new()
            },
        ),
        (
            "no-store",
            Backend {
                cache_control: Some("no-store"),
                ..Backend::new()
            },
        ),
        (
            "private",
            Backend {
                cache_control: Some("public, Private"),
                ..Backend::new()
            },
        ),
        (
            "set-cookie",
            Backend {
                set_cookie: true,
                ..Backend::new()
            },
        ),
        (
            "over 1 MiB",
            Backend {
                body_len: Some(1024 * 1024 + 1),
                ..Backend::new()
            },
        ),
    ];
    for (name, backend) in cases {
        let clock = ManualClock::at_unix_secs(T0);
        let svc = layer(&clock, 60).layer(backend.clone());
        let (_, _, _, first) = send(&svc, Method::GET, "/pets").await;
        let (_, s, _, second) = send(&svc, Method::GET, "/pets").await;
        assert_eq!(s, Some(CacheStatus::Miss), "{name}");
        assert_eq!(backend.calls(), 2, "{name}: the backend is asked again");
        assert_eq!(first.len(), second.len(), "{name}: whole bodies pass");
    }
}

#[tokio::test]
async fn a_body_of_exactly_1_mib_is_stored() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        body_len: Some(1024 * 1024),
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/big").await;
    let (_, s, _, body) = send(&svc, Method::GET, "/big").await;
    assert_eq!(s, Some(CacheStatus::Hit));
    assert_eq!(body.len(), 1024 * 1024);
}

#[tokio::test]
async fn upstream_max_age_shortens_the_entry() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        cache_control: Some("public, max-age=10"),
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    clock.advance(Duration::from_secs(9));
    assert_eq!(
        send(&svc, Method::GET, "/pets").await.1,
        Some(CacheStatus::Hit)
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        send(&svc, Method::GET, "/pets").await.1,
        Some(CacheStatus::Miss)
    );
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_misses_make_one_backend_call() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        delay: Some(Duration::from_millis(200)),
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            send(&svc, Method::GET, "/pets").await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, s, _, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(s, Some(CacheStatus::Miss));
        bodies.push(body);
    }
    assert_eq!(backend.calls(), 1);
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "100 equal responses"
    );
}

#[tokio::test]
async fn a_failed_call_is_not_cached_and_the_next_request_retries() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        fail_first: true,
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    let req = || Request::get("/pets").body(Body::empty()).unwrap();
    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down");
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Miss)
    );
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Hit)
    );
    assert_eq!(backend.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_a_failed_call_ask_the_backend_themselves() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        fail_first: true,
        delay: Some(Duration::from_millis(200)),
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get("/pets").body(Body::empty()).unwrap();
            svc.oneshot(req).await.is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    assert_eq!(ok, 9, "only the request whose call failed sees the error");
    assert!(backend.calls() >= 2, "waiters asked again");
}

#[tokio::test]
async fn the_store_stays_within_its_capacity() {
    let store = MokaCacheStore::new(100_000);
    let body = Bytes::from(vec![b'x'; 1000]);
    for i in 0..1000u32 {
        let key = CacheKey::from_parts([&i.to_be_bytes()[..]]);
        let entry = CachedResponse::new(
            StatusCode::OK,
            http::HeaderMap::new(),
            body.clone(),
            0,
            Duration::from_secs(60),
        );
        store.put(key, Arc::new(entry)).await.unwrap();
    }
    let size = store.weighted_size();
    assert!(size <= 100_000, "weighted size {size} within capacity");
    assert!(size > 50_000, "and the cache is used ({size})");
}

#[test]
fn keys_do_not_show_their_parts() {
    let key = CacheKey::from_parts([&b"Authorization: Bearer secret-token"[..]]);
    assert!(!format!("{key:?}").contains("secret"));
}

const GATEWAY: &str = r#"
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

fn gateway(clock: &ManualClock) -> (Gateway, Backend) {
    let gw = Gateway::builder(Config::from_yaml_str(GATEWAY).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    (gw, Backend::new())
}

async fn get<S>(
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

#[tokio::test]
async fn listed_parameters_split_entries_and_unlisted_ones_do_not() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    assert_eq!(
        get(&svc, "/prod/pets?type=dog&page=1", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    // `page` is not in the key: same entry.
    assert_eq!(
        get(&svc, "/prod/pets?page=2&type=dog", &[]).await.0,
        Some(CacheStatus::Hit)
    );
    // `type` is.
    assert_eq!(
        get(&svc, "/prod/pets?type=cat", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    // So is the Accept header.
    assert_eq!(
        get(&svc, "/prod/pets?type=dog", &[("accept", "text/plain")])
            .await
            .0,
        Some(CacheStatus::Miss)
    );
    // Path parameters always are.
    assert_eq!(
        get(&svc, "/prod/pets/1", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(
        get(&svc, "/prod/pets/2", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(
        get(&svc, "/prod/pets/1?x=1", &[]).await.0,
        Some(CacheStatus::Hit)
    );
    assert_eq!(backend.calls(), 5);
}

#[tokio::test]
async fn method_ttl_overrides_the_stage_and_ttl_0_turns_caching_off() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    get(&svc, "/prod/pets", &[]).await;
    get(&svc, "/prod/pets/1", &[]).await;
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        get(&svc, "/prod/pets", &[]).await.0,
        Some(CacheStatus::Miss),
        "60 s override"
    );
    assert_eq!(
        get(&svc, "/prod/pets/1", &[]).await.0,
        Some(CacheStatus::Hit),
        "300 s stage TTL"
    );
    // dev: ttl 0, nothing cached, no header.
    let (s, _) = get(&svc, "/dev/pets", &[]).await;
    assert_eq!(s, None);
    let (s, _) = get(&svc, "/dev/pets", &[]).await;
    assert_eq!(s, None);
    assert_eq!(backend.calls(), 5);
}

#[tokio::test]
async fn per_key_separates_tenants() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    let alice = [("x-api-key", "alice-key-0123456789abcdef")];
    let bob = [("x-api-key", "bob-key-0123456789abcdefgh")];
    let (s, a1) = get(&svc, "/prod/mine", &alice).await;
    assert_eq!(s, Some(CacheStatus::Miss));
    let (s, b1) = get(&svc, "/prod/mine", &bob).await;
    assert_eq!(s, Some(CacheStatus::Miss), "bob never gets alice's entry");
    assert_ne!(a1, b1);
    let (s, a2) = get(&svc, "/prod/mine", &alice).await;
    assert_eq!(s, Some(CacheStatus::Hit));
    assert_eq!(a1, a2);
    assert_eq!(backend.calls(), 2);
}

#[tokio::test]
async fn post_in_a_cached_stage_bypasses_and_flush_empties_the_stage() {
    let clock = ManualClock::at_unix_secs(T0);
    let (gw, backend) = gateway(&clock);
    let svc = gw.service(backend.clone());
    let req = Request::post("/prod/pets").body(Body::empty()).unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Bypass)
    );

    get(&svc, "/prod/pets/1", &[]).await;
    assert_eq!(
        get(&svc, "/prod/pets/1", &[]).await.0,
        Some(CacheStatus::Hit)
    );
    assert!(gw.flush_cache("prod").await.unwrap());
    assert!(!gw.flush_cache("nope").await.unwrap());
    assert_eq!(
        get(&svc, "/prod/pets/1", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(backend.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_finishes_the_call_of_a_caller_that_went_away() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        delay: Some(Duration::from_millis(300)),
        ..Backend::new()
    };
    let svc = layer(&clock, 60).layer(backend.clone());
    let first = svc.clone();
    let leader = tokio::spawn(async move {
        tokio::time::timeout(
            Duration::from_millis(100),
            send(&first, Method::GET, "/pets"),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, s, _, _) = send(&svc, Method::GET, "/pets").await;
    assert!(leader.await.unwrap().is_err(), "the first caller gave up");
    assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Miss)));
    assert_eq!(backend.calls(), 1, "the waiter did not start a second call");
    assert_eq!(
        send(&svc, Method::GET, "/pets").await.1,
        Some(CacheStatus::Hit)
    );
}

/// A backend answering with the frames `frames()` gives, counting calls.
fn framed(
    calls: Arc<AtomicUsize>,
    frames: fn() -> Vec<http_body::Frame<Bytes>>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(move |_req: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let stream = futures_util::stream::iter(frames().into_iter().map(Ok::<_, Infallible>));
        async move {
            Ok(Response::new(Body::new(http_body_util::StreamBody::new(
                stream,
            ))))
        }
    })
}

#[tokio::test]
async fn a_body_in_several_chunks_is_stored_whole() {
    let clock = ManualClock::at_unix_secs(T0);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer(&clock, 60).layer(framed(calls.clone(), || {
        vec![
            http_body::Frame::data(Bytes::from_static(b"one ")),
            http_body::Frame::data(Bytes::from_static(b"two")),
        ]
    }));
    assert_eq!(send(&svc, Method::GET, "/pets").await.3, "one two");
    let (_, s, _, body) = send(&svc, Method::GET, "/pets").await;
    assert_eq!((s, &body[..]), (Some(CacheStatus::Hit), &b"one two"[..]));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn trailers_pass_through_and_are_not_stored() {
    let clock = ManualClock::at_unix_secs(T0);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer(&clock, 60).layer(framed(calls.clone(), || {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        vec![
            http_body::Frame::data(Bytes::from_static(b"data")),
            http_body::Frame::trailers(trailers),
        ]
    }));
    for _ in 0..2 {
        let req = Request::get("/pets").body(Body::empty()).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.extensions().get::<CacheStatus>(),
            Some(&CacheStatus::Miss)
        );
        let collected = res.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        assert_eq!(collected.to_bytes(), "data");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn stale_layer(clock: &ManualClock, ttl: u64, grace: u64) -> CacheLayer {
    let mut policy = CachePolicy::with_ttl(Duration::from_secs(ttl));
    policy.stale_if_error = Duration::from_secs(grace);
    CacheLayer::new(Arc::new(MokaCacheStore::default()), policy).with_clock(Arc::new(clock.clone()))
}

#[tokio::test]
async fn stale_if_error_stands_in_within_the_grace_and_not_past_it() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = stale_layer(&clock, 60, 30).layer(backend.clone());
    let (_, s, _, first) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s, Some(CacheStatus::Miss));

    // Expired 10 s ago, backend erroring: the old entry answers, marked stale.
    clock.advance(Duration::from_secs(70));
    backend.erroring.store(true, Ordering::SeqCst);
    let (status, s, headers, body) = send(&svc, Method::GET, "/pets").await;
    assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Stale)));
    assert_eq!(body, first);
    assert_eq!(headers["x-cache"], "Stale");
    assert_eq!(headers["age"], "70");
    // A HEAD gets the stale entry's headers and no body.
    let (_, s, _, body) = send(&svc, Method::HEAD, "/pets").await;
    assert_eq!(s, Some(CacheStatus::Stale));
    assert!(body.is_empty());

    // A 5xx is a failure too.
    backend.erroring.store(false, Ordering::SeqCst);
    backend.unavailable.store(true, Ordering::SeqCst);
    let (status, s, _, body) = send(&svc, Method::GET, "/pets").await;
    assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Stale)));
    assert_eq!(body, first);

    // Past expiry + grace (60 + 30 s): the failure goes through.
    clock.advance(Duration::from_secs(21));
    let (status, s, _, _) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(
        (status, s),
        (StatusCode::SERVICE_UNAVAILABLE, Some(CacheStatus::Miss))
    );
    backend.unavailable.store(false, Ordering::SeqCst);
    backend.erroring.store(true, Ordering::SeqCst);
    let req = Request::get("/pets").body(Body::empty()).unwrap();
    let err = svc.clone().oneshot(req).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down");

    // Backend back: a fresh entry, and a healthy backend is never masked.
    backend.erroring.store(false, Ordering::SeqCst);
    let (_, s, _, fresh) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s, Some(CacheStatus::Miss));
    assert_ne!(fresh, first);
}

#[tokio::test]
async fn without_stale_if_error_an_expired_entry_never_answers() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    clock.advance(Duration::from_secs(61));
    backend.unavailable.store(true, Ordering::SeqCst);
    let (status, s, _, _) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(
        (status, s),
        (StatusCode::SERVICE_UNAVAILABLE, Some(CacheStatus::Miss))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_waiters_on_a_failing_refill_all_get_the_stale_entry() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend {
        delay: Some(Duration::from_millis(50)),
        ..Backend::new()
    };
    let svc = stale_layer(&clock, 60, 600).layer(backend.clone());
    let (_, _, _, first) = send(&svc, Method::GET, "/pets").await;
    clock.advance(Duration::from_secs(120));
    backend.unavailable.store(true, Ordering::SeqCst);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(async move { send(&svc, Method::GET, "/pets").await })
        })
        .collect();
    for t in tasks {
        let (status, s, _, body) = t.await.unwrap();
        assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Stale)));
        assert_eq!(body, first);
    }
    assert!(backend.calls() < 1 + 20, "the failing refill was shared");
}

/// A request with `Cache-Control: max-age=0`, optionally allowed to invalidate.
async fn refresh<S>(
    svc: &S,
    allowed: bool,
) -> (StatusCode, Option<CacheStatus>, http::HeaderMap, Bytes)
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::get("/pets")
        .header("cache-control", "no-transform, max-age=0")
        .body(Body::empty())
        .unwrap();
    if allowed {
        req.extensions_mut().insert(CacheInvalidator);
    }
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let cache = res.extensions().get::<CacheStatus>().copied();
    let headers = res.headers().clone();
    (
        status,
        cache,
        headers,
        res.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn max_age_0_refreshes_only_for_callers_allowed_to_invalidate() {
    for strategy in [
        UnauthorizedStrategy::FailWith403,
        UnauthorizedStrategy::SucceedWithResponseHeader,
        UnauthorizedStrategy::SucceedWithoutResponseHeader,
    ] {
        let clock = ManualClock::at_unix_secs(T0);
        let backend = Backend::new();
        let mut policy = CachePolicy::default();
        policy.unauthorized = strategy;
        let svc = CacheLayer::new(Arc::new(MokaCacheStore::default()), policy)
            .with_clock(Arc::new(clock.clone()))
            .layer(backend.clone());
        let (_, _, _, first) = send(&svc, Method::GET, "/pets").await;

        let (status, s, headers, body) = refresh(&svc, false).await;
        match strategy {
            UnauthorizedStrategy::FailWith403 => {
                assert_eq!(status, StatusCode::FORBIDDEN);
                assert_eq!(headers["x-tollgate-error-type"], "ACCESS_DENIED");
                assert_eq!(s, None);
            }
            UnauthorizedStrategy::SucceedWithResponseHeader => {
                assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Hit)));
                assert_eq!(body, first);
                let warning = headers["warning"].to_str().unwrap();
                assert!(warning.starts_with("199 "), "{warning}");
                assert!(warning.contains("ignored"), "{warning}");
            }
            _ => {
                assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Hit)));
                assert_eq!(body, first);
                assert!(!headers.contains_key("warning"));
            }
        }
        assert_eq!(
            backend.calls(),
            1,
            "{strategy:?}: the backend was not asked"
        );

        // Allowed: the backend answers and its response replaces the entry.
        let (status, s, headers, second) = refresh(&svc, true).await;
        assert_eq!((status, s), (StatusCode::OK, Some(CacheStatus::Miss)));
        assert!(!headers.contains_key("warning"));
        assert_ne!(second, first);
        assert_eq!(backend.calls(), 2);
        let (_, s, _, body) = send(&svc, Method::GET, "/pets").await;
        assert_eq!(s, Some(CacheStatus::Hit));
        assert_eq!(body, second, "{strategy:?}: the refreshed entry is served");
    }
}

#[tokio::test]
async fn a_refresh_that_cannot_be_stored_removes_the_old_entry() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let svc = layer(&clock, 60).layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    backend.unavailable.store(true, Ordering::SeqCst);
    let (status, s, _, _) = refresh(&svc, true).await;
    assert_eq!(
        (status, s),
        (StatusCode::SERVICE_UNAVAILABLE, Some(CacheStatus::Miss))
    );
    backend.unavailable.store(false, Ordering::SeqCst);
    let (_, s, _, _) = send(&svc, Method::GET, "/pets").await;
    assert_eq!(s, Some(CacheStatus::Miss), "the invalidated entry is gone");
}

#[tokio::test]
async fn without_require_authorization_anyone_may_refresh() {
    let clock = ManualClock::at_unix_secs(T0);
    let backend = Backend::new();
    let mut policy = CachePolicy::default();
    policy.require_authorization = false;
    let svc = CacheLayer::new(Arc::new(MokaCacheStore::default()), policy)
        .with_clock(Arc::new(clock.clone()))
        .layer(backend.clone());
    send(&svc, Method::GET, "/pets").await;
    let (_, s, _, _) = refresh(&svc, false).await;
    assert_eq!(s, Some(CacheStatus::Miss));
    assert_eq!(backend.calls(), 2);
}

const INVALIDATION: &str = r#"
routes:
  /fail: [GET]
  /warn: [GET]
  /quiet: [GET]
stages:
  prod:
    settings: { api_key_required: true, cache: { enabled: true } }
    methods:
      /fail/GET: { cache: { unauthorized: FAIL_WITH_403 } }
      /warn/GET: { cache: { unauthorized: SUCCEED_WITH_RESPONSE_HEADER } }
      /quiet/GET: { cache: { unauthorized: SUCCEED_WITHOUT_RESPONSE_HEADER } }
plans:
  p: { stages: [prod] }
keys:
  - { name: admin, value: admin-key-0123456789abcdef, plans: [p], can_invalidate_cache: true }
  - { name: user, value: user-key-0123456789abcdefg, plans: [p] }
"#;

#[tokio::test]
async fn gateway_invalidation_follows_the_key_permission_and_each_strategy() {
    let clock = ManualClock::at_unix_secs(T0);
    let gw = Gateway::builder(Config::from_yaml_str(INVALIDATION).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let backend = Backend::new();
    let svc = gw.service(backend.clone());
    let call = |path: &'static str, key: &'static str, refresh: bool| {
        let svc = svc.clone();
        async move {
            let mut req = Request::get(path).header("x-api-key", key);
            if refresh {
                req = req.header("cache-control", "max-age=0");
            }
            let res = svc.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            (
                res.status(),
                res.headers().get("x-cache").cloned(),
                res.headers().contains_key("warning"),
            )
        }
    };
    let user = "user-key-0123456789abcdefg";
    let admin = "admin-key-0123456789abcdef";
    let hit = Some(HeaderValue::from_static("Hit"));
    let miss = Some(HeaderValue::from_static("Miss"));
    for path in ["/prod/fail", "/prod/warn", "/prod/quiet"] {
        assert_eq!(call(path, user, false).await.1, miss);
    }
    assert_eq!(backend.calls(), 3);

    assert_eq!(
        call("/prod/fail", user, true).await,
        (StatusCode::FORBIDDEN, None, false)
    );
    assert_eq!(
        call("/prod/warn", user, true).await,
        (StatusCode::OK, hit.clone(), true)
    );
    assert_eq!(
        call("/prod/quiet", user, true).await,
        (StatusCode::OK, hit.clone(), false)
    );
    assert_eq!(
        backend.calls(),
        3,
        "no unauthorized refresh reached the backend"
    );

    for path in ["/prod/fail", "/prod/warn", "/prod/quiet"] {
        assert_eq!(
            call(path, admin, true).await,
            (StatusCode::OK, miss.clone(), false)
        );
    }
    assert_eq!(backend.calls(), 6);

    // The permission is on the key record: granting it at run time works.
    let keys = gw.key_manager();
    let id = keys
        .list()
        .await
        .unwrap()
        .iter()
        .find(|r| r.name == "user")
        .unwrap()
        .id
        .clone();
    assert!(
        keys.allow_cache_invalidation(&id, true)
            .await
            .unwrap()
            .can_invalidate_cache
    );
    assert_eq!(
        call("/prod/fail", user, true).await,
        (StatusCode::OK, miss.clone(), false)
    );
    assert_eq!(backend.calls(), 7);
}

const METHODS: &str = r#"
routes:
  /search: [GET, POST]
  /orders: [POST]
  /missing: [GET]
  /quiet: [GET]
stages:
  prod:
    settings: { cache: { enabled: true } }
    methods:
      /search/POST: { cache: { enabled: true, key: [header.x-query] } }
      /missing/GET: { cache: { statuses: [200, 404] } }
      /quiet/GET: { cache: { headers: false } }
"#;

#[tokio::test]
async fn other_methods_are_cached_only_by_their_own_override() {
    let clock = ManualClock::at_unix_secs(T0);
    let gw = Gateway::builder(Config::from_yaml_str(METHODS).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let backend = Backend::new();
    let svc = gw.service(backend.clone());
    let post = |path: &'static str, query: &'static str| {
        let svc = svc.clone();
        async move {
            let req = Request::post(path)
                .header("x-query", query)
                .body(Body::empty())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            res.extensions().get::<CacheStatus>().copied()
        }
    };
    assert_eq!(post("/prod/search", "a").await, Some(CacheStatus::Miss));
    assert_eq!(post("/prod/search", "a").await, Some(CacheStatus::Hit));
    assert_eq!(post("/prod/search", "b").await, Some(CacheStatus::Miss));
    // The stage-wide setting does not cache a POST.
    assert_eq!(post("/prod/orders", "a").await, Some(CacheStatus::Bypass));
    assert_eq!(post("/prod/orders", "a").await, Some(CacheStatus::Bypass));
    // GET and POST of one resource have separate entries.
    assert_eq!(
        get(&svc, "/prod/search", &[("x-query", "a")]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(backend.calls(), 5);
}

#[tokio::test]
async fn listed_statuses_are_stored_and_headers_can_be_turned_off() {
    let clock = ManualClock::at_unix_secs(T0);
    let gw = Gateway::builder(Config::from_yaml_str(METHODS).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    let backend = Backend {
        status: StatusCode::NOT_FOUND,
        ..Backend::new()
    };
    let svc = gw.service(backend.clone());
    assert_eq!(
        get(&svc, "/prod/missing", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    assert_eq!(
        get(&svc, "/prod/missing", &[]).await.0,
        Some(CacheStatus::Hit),
        "404 listed"
    );
    // Not listed elsewhere: a 404 is not stored.
    assert_eq!(
        get(&svc, "/prod/quiet", &[]).await.0,
        Some(CacheStatus::Miss)
    );
    let req = Request::get("/prod/quiet").body(Body::empty()).unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(
        res.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Miss)
    );
    assert!(!res.headers().contains_key("x-cache"), "headers: false");
    assert_eq!(backend.calls(), 3);
}
