//! Usage reporting costs. `cargo bench --bench usage`
//!
//! - `UsageLayer` on the request path (event built, body wrapped, event
//!   queued when the body is done) against the bare service;
//! - `AggregatingSink` throughput, in events per second.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use tollgate::usage::{
    AggregatingSink, Counted, Reporter, ReporterConfig, SinkError, UsageEvent, UsageLayer,
    UsageSink,
};
use tollgate::{Body, Config, Gateway};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

/// Takes every batch and does nothing with it.
struct Null;

#[async_trait]
impl UsageSink for Null {
    async fn send(&self, _: &[UsageEvent]) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps what it gets.
#[derive(Default)]
struct Keep(Mutex<Vec<UsageEvent>>);

#[async_trait]
impl UsageSink for Keep {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

fn layer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    let mut config = ReporterConfig::default();
    config.queue = 1 << 20;
    let reporter = Reporter::with_config(Arc::new(Null), config);
    let inner = service_fn(|_req: Request<Counted<Body>>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    });
    let bare_inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    });
    let mut reported = UsageLayer::new(reporter.clone()).layer(inner);
    let mut bare = bare_inner;
    let request = || Request::get("/pets").body(Body::empty()).unwrap();

    let mut g = c.benchmark_group("usage_layer");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(
            request,
            |r| drop(ready(bare.call(r))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("record", |b| {
        // The response (and its body) is dropped in the timed part: that is
        // when the event is queued.
        b.iter_batched(
            request,
            |r| drop(ready(reported.call(r))),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    assert_eq!(reporter.dropped(), 0, "the queue kept up");
}

fn aggregate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Realistic events: from requests through a gateway.
    let events = rt.block_on(async {
        let keep = Arc::new(Keep::default());
        let reporter = Reporter::new(keep.clone());
        let config = Config::from_yaml_str(
            "routes:\n  /pets: [GET]\n  /pets/{id}: [GET]\nstages: { prod: { settings: { api_key_required: true } } }\nplans: { p: { stages: [prod] } }\nkeys:\n  - { name: a, value: a-key-0123456789abcdefghij, plans: [p] }\n  - { name: b, value: b-key-0123456789abcdefghij, plans: [p] }\n",
        )
        .unwrap();
        let gw = Gateway::builder(config).reporter(reporter.clone()).build().unwrap();
        let svc = gw.service(service_fn(|_req: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        }));
        for i in 0..1000 {
            let key = if i % 2 == 0 { "a" } else { "b" };
            let path = if i % 3 == 0 { "/prod/pets".to_owned() } else { format!("/prod/pets/{i}") };
            let req = Request::get(path)
                .header("x-api-key", format!("{key}-key-0123456789abcdefghij"))
                .body(Body::empty())
                .unwrap();
            drop(svc.clone().oneshot(req).await.unwrap());
        }
        reporter.shutdown().await;
        std::mem::take(&mut *keep.0.lock().unwrap())
    });
    assert_eq!(events.len(), 1000);
    let agg = AggregatingSink::new();
    let mut g = c.benchmark_group("aggregating_sink");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("add_1000_events", |b| b.iter(|| agg.add(&events)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = layer, aggregate
}
criterion_main!(benches);
