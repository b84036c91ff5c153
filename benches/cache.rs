//! Response cache costs. `cargo bench --bench cache`
//!
//! - `CacheLayer` hit with a 1 KiB body, against the bare inner service;
//! - a miss (lookup, one backend call, buffering, store) on a new key each time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tollgate::Body;
use tollgate::cache::{CacheLayer, CachePolicy, CacheStatus, MokaCacheStore};
use tower::{Layer, Service, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

fn cache(c: &mut Criterion) {
    let body = Bytes::from(vec![b'x'; 1024]);
    let inner = service_fn(move |_req: Request<Body>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(Body::full(body))) }
    });
    let layer = CacheLayer::new(Arc::new(MokaCacheStore::default()), CachePolicy::default());
    let mut bare = inner.clone();
    let mut cached = layer.layer(inner.clone());
    let request = || Request::get("/pets?type=dog").body(Body::empty()).unwrap();
    let warm = ready(cached.call(request())).unwrap();
    assert_eq!(
        warm.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Miss)
    );
    let hit = ready(cached.call(request())).unwrap();
    assert_eq!(
        hit.extensions().get::<CacheStatus>(),
        Some(&CacheStatus::Hit)
    );

    let mut g = c.benchmark_group("cache_layer_1kib");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(request, |r| ready(bare.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("hit", |b| {
        b.iter_batched(request, |r| ready(cached.call(r)), BatchSize::SmallInput)
    });
    let mut n = 0u64;
    let mut missing = layer.layer(inner);
    g.bench_function("miss_new_key", |b| {
        b.iter_batched(
            || {
                n += 1;
                Request::get(format!("/pets?page={n}"))
                    .body(Body::empty())
                    .unwrap()
            },
            |r| ready(missing.call(r)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = cache
}
criterion_main!(benches);
