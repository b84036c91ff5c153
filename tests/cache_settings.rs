//! The gateway's per-method cache settings: a method's TTL over the stage's,
//! TTL 0, a POST in a cached stage, flushing a stage, other methods cached
//! only by their own override, listed statuses, and the cache headers
//! turned off.

mod support;

use std::time::Duration;

use http::{Request, StatusCode};
use support::cache::{Backend, T0, gateway, get};
use tollgate::cache::CacheStatus;
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

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
