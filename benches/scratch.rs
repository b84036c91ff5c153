use criterion::{Criterion, criterion_group, criterion_main, BatchSize};
use std::hint::black_box;
use tollgate::clock::SystemClock;
use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey, ThrottleLayer};
use tollgate::Body;
use tower::{Layer, Service, service_fn};
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) { Poll::Ready(v) => v, Poll::Pending => unreachable!() }
}
fn b(c: &mut Criterion) {
    let store = InMemoryRateStore::new(SystemClock);
    let rate = Rate::new(1e6, 1000);
    c.bench_function("store_custom_empty", |b| b.iter(|| black_box(store.check_limits(&[Limit { key: RateKey::Custom(black_box("")), rate }]).admitted)));
    let inner = service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
    let mut quiet = ThrottleLayer::new(rate).headers(false).layer(inner);
    let mut bare = inner;
    c.bench_function("bare_with_req", |b| b.iter(|| black_box(ready(bare.call(Request::get("/pets").body(Body::empty()).unwrap())))));
    c.bench_function("quiet_with_req", |b| b.iter(|| black_box(ready(quiet.call(Request::get("/pets").body(Body::empty()).unwrap())))));
    c.bench_function("quiet_batched", |b| b.iter_batched(|| Request::get("/pets").body(Body::empty()).unwrap(), |r| ready(quiet.call(r)), BatchSize::SmallInput));
    c.bench_function("bare_batched", |b| b.iter_batched(|| Request::get("/pets").body(Body::empty()).unwrap(), |r| ready(bare.call(r)), BatchSize::SmallInput));
}
criterion_group!{name=benches; config=Criterion::default().warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1)); targets=b}
criterion_main!(benches);
