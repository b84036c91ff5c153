//! Lambda proxy integration in process. `cargo bench --bench lambda`
//!
//! One gateway, two methods, the same work behind each: a handler that
//! answers 200 with a short body. `lambda_1k` reaches it as a Lambda
//! function (the event built from a request with a 1 KiB body and eight
//! headers, the answer mapped back); `service_1k` reaches it as the plain
//! tower service the gateway wraps (the body read whole too). The
//! difference is the event mapping (issue 21's budget: at most 2 µs).
//!
//! Requests are built as hyper hands them over: header values are slices
//! of one buffer. `lambda_1k_copied_values` builds each value on its own
//! (`HeaderValue::from_str`), so the event's copy of the headers pays an
//! allocation per value that a served request does not.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body as LambdaBody;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::BodyExt;
use tollgate::{Body, Config, Gateway};
use tower::{Service, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

async fn handler(event: ApiGatewayProxyRequest) -> Result<ApiGatewayProxyResponse, Infallible> {
    let mut res = ApiGatewayProxyResponse::default();
    res.status_code = 200;
    let n = event.body.as_ref().map_or(0, String::len);
    res.body = Some(LambdaBody::Text(format!("{{\"bytes\": {n}}}")));
    Ok(res)
}

fn bench(c: &mut Criterion) {
    let config = Config::from_yaml_str(
        r#"
routes: { /fn: [POST], /svc: [POST], /mock: [POST] }
stages:
  prod:
    methods:
      /fn/POST: { integration: { type: lambda, function: f } }
      /mock/POST: { integration: { type: mock, body: '{"bytes": 1024}' } }
"#,
    )
    .unwrap();
    let gateway = Gateway::builder(config)
        .lambda("f", handler)
        .build()
        .unwrap();
    // The same work as a tower service: the body read whole, a short answer.
    let mut svc = gateway.service(service_fn(|req: Request<Body>| async move {
        let n = req
            .into_body()
            .collect()
            .await
            .map_or(0, |b| b.to_bytes().len());
        Ok::<_, Infallible>(Response::new(Body::from(format!("{{\"bytes\": {n}}}"))))
    }));
    let body = Bytes::from(vec![b'x'; 1024]);
    const HEADERS: [(&str, &str); 8] = [
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", "bench/1.0"),
        ("x-request-id", "0123456789"),
        ("x-forwarded-for", "203.0.113.7"),
        ("authorization", "Bearer abc"),
        ("x-tenant", "t1"),
        ("host", "api.example.test"),
    ];
    // The request as hyper hands it over: each header value a slice of the
    // one buffer the head was read into, so cloning a value counts a
    // reference. (`copied` builds each value with `HeaderValue::from_str`,
    // its own copy: the first clone of each moves it to a shared
    // allocation, which a served request never pays.)
    let req = |path: &str, copied: bool| {
        let block = Bytes::from(HEADERS.map(|(_, v)| v).concat());
        let mut at = 0;
        let mut r = Request::post(path);
        for (k, v) in HEADERS {
            let value = if copied {
                http::HeaderValue::from_str(v).unwrap()
            } else {
                http::HeaderValue::from_maybe_shared(block.slice(at..at + v.len())).unwrap()
            };
            at += v.len();
            r = r.header(k, value);
        }
        r.body(Body::full(body.clone())).unwrap()
    };
    let mut g = c.benchmark_group("lambda");
    g.bench_function("lambda_1k", |b| {
        b.iter_batched(
            || req("/prod/fn?a=1&b=2", false),
            |r| ready(svc.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("service_1k", |b| {
        b.iter_batched(
            || req("/prod/svc?a=1&b=2", false),
            |r| ready(svc.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("lambda_1k_copied_values", |b| {
        b.iter_batched(
            || req("/prod/fn?a=1&b=2", true),
            |r| ready(svc.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // The tail every integration of its own goes through (a mock: no
    // event, no body read), for where the time goes.
    g.bench_function("mock_1k", |b| {
        b.iter_batched(
            || req("/prod/mock?a=1&b=2", false),
            |r| ready(svc.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
