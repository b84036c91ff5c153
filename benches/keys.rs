//! API key and quota costs. `cargo bench --bench keys`
//!
//! - `ApiKeyLayer` call, SHA-256 of the presented key included, with the key
//!   in the in-memory store and behind a warm `CachingKeyStore`;
//! - `MeterLayer` call (quota check-and-increment plus the daily usage count).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tollgate::clock::SystemClock;
use tollgate::gateway::Secret;
use tollgate::keys::{
    ApiKeyLayer, CachingKeyStore, InMemoryKeyStore, KeyHasher, KeyManager, NewKey,
};
use tollgate::plans::{InMemoryCounterStore, MeterLayer, Period, Quota};
use tollgate::{ApiKeyIdentity, Body};
use tower::{Layer, Service, service_fn};

const KEY: &str = "bench-key-0123456789abcdefghijklmnopqrst";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

fn keys(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let store = Arc::new(InMemoryKeyStore::new());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        KeyManager::new(store.clone(), KeyHasher::sha256(), SystemClock)
            .import(NewKey::named("b").value(Secret::new(KEY))),
    )
    .unwrap();
    let cached = Arc::new(CachingKeyStore::new(store.clone(), SystemClock));

    let mut bare = inner;
    let mut in_memory = ApiKeyLayer::new(store).layer(inner);
    let mut behind_cache = ApiKeyLayer::new(cached).layer(inner);
    // Warm the cache.
    let _ = rt.block_on(
        behind_cache.call(
            Request::get("/")
                .header("x-api-key", KEY)
                .body(Body::empty())
                .unwrap(),
        ),
    );

    let request = || {
        Request::get("/pets")
            .header("x-api-key", KEY)
            .body(Body::empty())
            .unwrap()
    };
    let mut g = c.benchmark_group("api_key_layer_call");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(request, |r| ready(bare.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("in_memory_store", |b| {
        b.iter_batched(request, |r| ready(in_memory.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("caching_store_hit", |b| {
        b.iter_batched(
            request,
            |r| ready(behind_cache.call(r)),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("sha256");
    g.bench_function("40_byte_key", |b| {
        b.iter(|| KeyHasher::sha256().digest(std::hint::black_box(KEY)))
    });
    g.finish();
}

fn meter(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let quota = Quota::new(u64::MAX / 2, Period::Month);
    let mut metered = MeterLayer::new(quota, Arc::new(InMemoryCounterStore::new())).layer(inner);
    let mut bare = inner;
    let identity = ApiKeyIdentity::new("key-id-1", Some(Arc::from("basic")));
    let request = || {
        let mut r = Request::get("/pets").body(Body::empty()).unwrap();
        r.extensions_mut().insert(identity.clone());
        r
    };
    let mut g = c.benchmark_group("meter_layer_call");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(request, |r| ready(bare.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("meter_layer", |b| {
        b.iter_batched(request, |r| ready(metered.call(r)), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = keys, meter
}
criterion_main!(benches);
