//! Response caching, what is stored and for how long: a hit until the TTL
//! runs out, HEAD answered from the GET entry, POST bypassing, what is never
//! stored, bodies of 1 MiB and in chunks, trailers, upstream `max-age`, and
//! the store's capacity.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::cache::{Backend, T0, layer, send};
use tollgate::Body;
use tollgate::cache::{CacheKey, CacheStatus, CacheStore, CachedResponse, MokaCacheStore};
use tollgate::clock::ManualClock;
use tower::{Layer, Service, ServiceExt};

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
