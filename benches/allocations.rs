//! Heap allocations per request: the bare service, the gateway with no
//! feature, and the full production stack (key, stage throttle, plan
//! throttle, quota, usage with the access log), counted with dhat as the
//! global allocator. `cargo bench --bench allocations`
//!
//! Each figure is the mean over many requests after a warm-up, so one-time
//! allocations (a key's first bucket, the reporter's buffers) do not count.
//! The reporter's task is stopped while counting, and its share (formatting
//! and writing the access log line) is counted apart, after it drains.

#[path = "common/stack.rs"]
mod stack;

use tower::{Service, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARM: u64 = 1_000;
const N: u64 = 10_000;

fn per_request<S>(svc: &mut S) -> f64
where
    S: Service<http::Request<tollgate::Body>, Response = http::Response<tollgate::Body>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..WARM {
        drop(stack::ready(svc.call(stack::request())).unwrap());
    }
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..N {
        let req = stack::request();
        drop(stack::ready(svc.call(req)).unwrap());
    }
    let after = dhat::HeapStats::get().total_blocks;
    // The request itself (built by the client here, by hyper on a server)
    // is counted in every row, the bare one too.
    (after - before) as f64 / N as f64
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let bare = per_request(&mut service_fn(stack::pet));
    let plain = per_request(&mut stack::no_features().service(service_fn(stack::pet)));
    let gateway = stack::full();
    let mut full = gateway.service(service_fn(stack::pet));
    let on_request_path = per_request(&mut full);
    // The reporter's task has not run (a current-thread runtime runs it only
    // when blocked on): let it drain what was queued, and count that apart.
    let before = dhat::HeapStats::get().total_blocks;
    rt.block_on(gateway.shutdown_reporters());
    let reporter = (dhat::HeapStats::get().total_blocks - before) as f64 / (WARM + N) as f64;
    println!("allocations per request (mean of {N}, after {WARM} warm-up requests)");
    println!("  bare service                      {bare:6.2}");
    println!(
        "  gateway, no feature               {plain:6.2}  (+{:.2})",
        plain - bare
    );
    println!(
        "  full stack, request path          {on_request_path:6.2}  (+{:.2})",
        on_request_path - bare
    );
    println!("  full stack, reporter's task       {reporter:6.2}  (access log line, per request)");
}
