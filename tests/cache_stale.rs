//! `stale_if_error`: an expired entry stands in for a failing backend within
//! the grace and not past it, never without the setting, and for every
//! waiter on a failing refill.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use support::cache::{Backend, T0, layer, send};
use tollgate::Body;
use tollgate::cache::{CacheLayer, CachePolicy, CacheStatus, MokaCacheStore};
use tollgate::clock::ManualClock;
use tower::{Layer, ServiceExt};

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
