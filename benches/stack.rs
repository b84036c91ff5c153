//! The whole production stack on a no-op service, against the bare service
//! in the same run (issue 15's budget: at most 500 ns; the gateway with no
//! feature at most 250 ns). `cargo bench --bench stack`
//!
//! The response is dropped whole in each iteration, so its usage event is
//! queued (and the access log line formatted by the reporter's task) as on
//! a server.

#[path = "common/stack.rs"]
mod stack;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tower::{Service, service_fn};

fn stack(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let mut bare = service_fn(stack::pet);
    let mut full = stack::full().service(service_fn(stack::pet));
    let mut plain = stack::no_features().service(service_fn(stack::pet));
    let mut with_headers =
        stack::full_with(stack::full_config(true)).service(service_fn(stack::pet));
    let mut edge = stack::full_edge().service(service_fn(stack::pet));
    let mut lifecycle = stack::full_lifecycle().service(service_fn(stack::pet));
    assert_eq!(
        stack::ready(lifecycle.call(stack::request()))
            .unwrap()
            .status(),
        200
    );
    let res = stack::ready(edge.call(stack::edge_request())).unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], stack::ORIGIN);
    // Both answer 200 before anything is measured.
    assert_eq!(
        stack::ready(full.call(stack::request())).unwrap().status(),
        200
    );
    assert_eq!(
        stack::ready(plain.call(stack::request())).unwrap().status(),
        200
    );

    let mut g = c.benchmark_group("stack");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(
            stack::request,
            |r| drop(stack::ready(bare.call(r))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("no_features", |b| {
        b.iter_batched(
            stack::request,
            |r| drop(stack::ready(plain.call(r))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("full", |b| {
        b.iter_batched(
            stack::request,
            |r| drop(stack::ready(full.call(r))),
            BatchSize::SmallInput,
        )
    });
    // The same stack with `RateLimit` headers on admitted responses
    // (`throttle_options.headers: true`): what they cost, which the README's
    // choice of default (off) rests on.
    g.bench_function("full_with_ratelimit_headers", |b| {
        b.iter_batched(
            stack::request,
            |r| drop(stack::ready(with_headers.call(r))),
            BatchSize::SmallInput,
        )
    });
    // The same stack with CORS and compression configured API-wide, the
    // request from an allowed origin accepting gzip, the answer below the
    // size (issue 16's bench).
    g.bench_function("full_edge", |b| {
        b.iter_batched(
            stack::edge_request,
            |r| drop(stack::ready(edge.call(r))),
            BatchSize::SmallInput,
        )
    });
    // The full stack through a lifecycle (issue 17): the table's atomic
    // load and stage pick, on stores shared by every stage gateway.
    g.bench_function("full_lifecycle", |b| {
        b.iter_batched(
            stack::request,
            |r| drop(stack::ready(lifecycle.call(r))),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // Two threads at once, each on its own clone (as two server workers
    // with a connection each): what sharing buckets, counters and reference
    // counts across cores costs. Time per request per thread, requests
    // built outside the timing.
    let mut g = c.benchmark_group("stack_two_threads");
    g.bench_function("bare_inner_service", |b| {
        b.iter_custom(|iters| two_threads(iters, || service_fn(stack::pet)))
    });
    let gateway = stack::full();
    g.bench_function("full", |b| {
        b.iter_custom(|iters| two_threads(iters, || gateway.service(service_fn(stack::pet))))
    });
    g.finish();
}

/// Runs `iters` requests on each of two threads, each with a service from
/// `make`, both started together; the longer thread's time.
fn two_threads<S>(iters: u64, make: impl Fn() -> S) -> Duration
where
    S: Service<http::Request<tollgate::Body>, Response = http::Response<tollgate::Body>>
        + Send
        + 'static,
    S::Error: std::fmt::Debug,
{
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let mut svc = make();
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(1024);
                    left -= n;
                    let requests: Vec<_> = (0..n).map(|_| stack::request()).collect();
                    // Benchmark timing, not the gateway's clock.
                    #[allow(clippy::disallowed_methods)]
                    let t = Instant::now();
                    for r in requests {
                        drop(stack::ready(svc.call(r)));
                    }
                    spent += t.elapsed();
                }
                spent
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap_or_default()
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = stack
}
criterion_main!(benches);
