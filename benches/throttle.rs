//! Throttle costs. `cargo bench --bench throttle`
//!
//! - the in-memory store over 10,000 keys against governor's keyed
//!   `check_key` on the same keys, in the same run;
//! - a `ThrottleLayer` call on a ready no-op service, against the bare service;
//! - two threads on one key and on distinct keys (contention).
//!
//! Bytes per tracked key: `cargo bench --bench throttle_memory`.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use http::{Request, Response};
use std::hint::black_box;
use tollgate::Body;
use tollgate::clock::SystemClock;
use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey, ThrottleLayer};
use tower::{Layer, Service, service_fn};

const KEYS: u32 = 10_000;

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i))
}

/// A limit no benchmark loop can reach, so every check admits (the common
/// case) in both crates.
const RATE: Rate = Rate::new(1e9, 1_000);

fn store_vs_governor(c: &mut Criterion) {
    let keys: Vec<IpAddr> = (0..KEYS).map(ip).collect();
    let mut g = c.benchmark_group("check_10k_keys");

    let store = InMemoryRateStore::new(SystemClock);
    for k in &keys {
        store.check_limits(&[Limit {
            key: RateKey::Client(*k),
            rate: RATE,
        }]);
    }
    let mut i = 0usize;
    g.bench_function("tollgate_in_memory", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(
                store
                    .check_limits(&[Limit {
                        key: RateKey::Client(keys[i]),
                        rate: RATE,
                    }])
                    .admitted,
            )
        })
    });

    let quota = Quota::per_second(NonZeroU32::new(1_000_000_000).unwrap())
        .allow_burst(NonZeroU32::new(1_000).unwrap());
    let governor = RateLimiter::keyed(quota);
    for k in &keys {
        let _ = governor.check_key(k);
    }
    let mut i = 0usize;
    g.bench_function("governor_check_key", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(governor.check_key(&keys[i]).is_ok())
        })
    });
    g.finish();
}

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

fn layer_call(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let mut bare = inner;
    // RateLimit headers on admitted responses (off by default): the
    // heavier case, against `quiet` without them.
    let mut throttled = ThrottleLayer::new(RATE).headers(true).layer(inner);
    let mut quiet = ThrottleLayer::new(RATE).headers(false).layer(inner);
    let request = || Request::get("/pets").body(Body::empty()).unwrap();
    let mut g = c.benchmark_group("throttle_layer_call");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(request, |req| ready(bare.call(req)), BatchSize::SmallInput)
    });
    g.bench_function("throttle_layer", |b| {
        b.iter_batched(
            request,
            |req| ready(throttled.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("throttle_layer_no_headers", |b| {
        b.iter_batched(request, |req| ready(quiet.call(req)), BatchSize::SmallInput)
    });
    // A response that already has a header (as real ones do) does not pay
    // for the header map's first allocation.
    let typed = service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::empty());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok::<_, Infallible>(res)
    });
    let mut bare_typed = typed;
    let mut throttled_typed = ThrottleLayer::new(RATE).headers(true).layer(typed);
    g.bench_function("bare_service_with_a_header", |b| {
        b.iter_batched(
            request,
            |req| ready(bare_typed.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("throttle_layer_response_with_a_header", |b| {
        b.iter_batched(
            request,
            |req| ready(throttled_typed.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Two threads doing `iters` checks each; the time per check.
fn two_threads(store: &Arc<InMemoryRateStore>, iters: u64, same_key: bool) -> Duration {
    let barrier = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2u32)
        .map(|t| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                #[allow(clippy::disallowed_methods)] // a benchmark measures wall time
                let start = Instant::now();
                for i in 0..iters {
                    let k = if same_key {
                        ip(0)
                    } else {
                        ip(t * KEYS + (i % u64::from(KEYS)) as u32)
                    };
                    black_box(store.check_limits(&[Limit {
                        key: RateKey::Client(k),
                        rate: RATE,
                    }]));
                }
                start.elapsed()
            })
        })
        .collect();
    let total: Duration = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .sum();
    total / 2
}

fn contention(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    let store = Arc::new(InMemoryRateStore::new(SystemClock));
    g.bench_function("one_key", |b| {
        b.iter_custom(|iters| two_threads(&store, iters, true))
    });
    g.bench_function("distinct_keys", |b| {
        b.iter_custom(|iters| two_threads(&store, iters, false))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = store_vs_governor, layer_call, contention
}
criterion_main!(benches);
