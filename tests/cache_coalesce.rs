//! Coalesced cache misses: concurrent misses make one backend call, a failed
//! call is not cached and its waiters ask the backend themselves, and a
//! waiter finishes the call of a caller that went away.

mod support;

use std::time::Duration;

use http::{Method, Request, StatusCode};
use support::cache::{Backend, T0, layer, send};
use tollgate::Body;
use tollgate::cache::CacheStatus;
use tollgate::clock::ManualClock;
use tower::{Layer, ServiceExt};

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

/// A response that belongs to its client (a cookie, `private`, `no-store`)
/// is not stored, and not handed to a client waiting on the same miss
/// either: the waiter gets its own answer from the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_answer_is_not_shared_with_waiters() {
    use http::{HeaderValue, Response};
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::service_fn;

    let clock = ManualClock::at_unix_secs(T0);
    let calls = Arc::new(AtomicUsize::new(0));
    let backend = {
        let calls = calls.clone();
        service_fn(move |req: Request<Body>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let who = req.headers()["authorization"].to_str().unwrap().to_owned();
                tokio::time::sleep(Duration::from_millis(200)).await;
                let mut res = Response::new(Body::from(format!("hello {who}")));
                let cookie = HeaderValue::from_str(&format!("session={who}")).unwrap();
                res.headers_mut().insert("set-cookie", cookie);
                res.headers_mut()
                    .insert("cache-control", HeaderValue::from_static("private"));
                Ok::<_, Infallible>(res)
            }
        })
    };
    let svc = layer(&clock, 60).layer(backend);
    let send = |who: &'static str| {
        let svc = svc.clone();
        async move {
            let req = Request::get("/session")
                .header("authorization", who)
                .body(Body::empty())
                .unwrap();
            let (status, headers, body) = support::read(svc.oneshot(req).await.unwrap()).await;
            assert_eq!(status, StatusCode::OK);
            (headers["set-cookie"].clone(), body)
        }
    };
    let alice = tokio::spawn(send("alice"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bob = tokio::spawn(send("bob"));
    let (alice, bob) = (alice.await.unwrap(), bob.await.unwrap());
    assert_eq!(
        alice,
        (
            HeaderValue::from_static("session=alice"),
            "hello alice".into()
        )
    );
    assert_eq!(
        bob,
        (HeaderValue::from_static("session=bob"), "hello bob".into())
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each asked the backend");
}
