//! Route lookup over 200 routes, and the Gateway with no features against the
//! bare inner service. `cargo bench --bench route`

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response};
use std::hint::black_box;
use tollgate::{Body, Config, Gateway};
use tower::{Service, service_fn};

/// 200 routes in four shapes: static, one parameter, nested parameters, greedy.
fn config_200() -> Config {
    let mut yaml = String::from("routes:\n");
    for i in 0..50 {
        yaml.push_str(&format!("  /r{i}: [GET, POST]\n"));
        yaml.push_str(&format!("  /r{i}/{{id}}: [GET, PUT, DELETE]\n"));
        yaml.push_str(&format!("  /r{i}/{{id}}/items/{{item}}: [GET]\n"));
        yaml.push_str(&format!("  /files{i}/{{proxy+}}: [ANY]\n"));
    }
    yaml.push_str("stages:\n  prod: {}\n  dev: {}\n");
    // Custom domains, for the lookups that read a `Host`.
    yaml.push_str("domains:\n");
    for i in 0..20 {
        yaml.push_str(&format!(
            "  api{i}.example.test: {{ base_paths: {{ \"\": {{ stage: prod }}, v1/orders: {{ stage: dev }} }} }}\n"
        ));
    }
    Config::from_yaml_str(&yaml).expect("valid bench config")
}

/// Polls a future that is ready at once (every future here is).
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("a no-op service answers at once"),
    }
}

fn lookup(c: &mut Criterion) {
    let gateway = Gateway::new(config_200()).unwrap();
    assert_eq!(gateway.endpoints().count(), 2 * 50 * 7);
    let mut g = c.benchmark_group("route_lookup_200_routes");
    for (name, method, path) in [
        ("static", Method::GET, "/prod/r37"),
        ("param", Method::PUT, "/prod/r37/12345"),
        ("nested_params", Method::GET, "/dev/r49/abc/items/xyz"),
        ("greedy", Method::DELETE, "/prod/files25/a/b/c/d.txt"),
        ("miss", Method::GET, "/prod/r99/1"),
    ] {
        assert_eq!(
            gateway.find_endpoint(&method, path).is_some(),
            name != "miss"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                gateway
                    .find_endpoint(black_box(&method), black_box(path))
                    .is_some()
            })
        });
    }
    // The same resources through a custom domain (one of 20), its `Host`
    // with a port and in mixed case: the domain's cost over the lookups
    // above (issue 17's budget: at most 30 ns).
    for (name, method, host, path) in [
        (
            "domain_static",
            Method::GET,
            "Api7.example.test:443",
            "/r37",
        ),
        (
            "domain_base_path_param",
            Method::PUT,
            "api7.example.test",
            "/v1/orders/r37/12345",
        ),
        (
            "execute_api_with_domains_static",
            Method::GET,
            "10.0.0.1:8080",
            "/prod/r37",
        ),
    ] {
        assert!(
            gateway
                .find_endpoint_on(&method, Some(host), path)
                .is_some(),
            "{name}"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                gateway
                    .find_endpoint_on(black_box(&method), black_box(Some(host)), black_box(path))
                    .is_some()
            })
        });
    }
    // The same lookups through a lifecycle built from the same config:
    // the table's atomic load, its domain or `/{stage}` pick, then the
    // stage gateway's own lookup (issue 17's budget: at most 30 ns over
    // the gateway's).
    let lifecycle = Gateway::builder(config_200()).build_lifecycle().unwrap();
    for (name, method, host, path) in [
        ("lifecycle_static", Method::GET, None, "/prod/r37"),
        (
            "lifecycle_domain_static",
            Method::GET,
            Some("Api7.example.test:443"),
            "/r37",
        ),
        (
            "lifecycle_domain_base_path_param",
            Method::PUT,
            Some("api7.example.test"),
            "/v1/orders/r37/12345",
        ),
        (
            "lifecycle_execute_api_with_domains_static",
            Method::GET,
            Some("10.0.0.1:8080"),
            "/prod/r37",
        ),
    ] {
        assert!(
            lifecycle.find_endpoint_on(&method, host, path).is_some(),
            "{name}"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                lifecycle
                    .find_endpoint_on(black_box(&method), black_box(host), black_box(path))
                    .is_some()
            })
        });
    }
    g.finish();
}

fn stack(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let gateway = Gateway::new(config_200()).unwrap();
    let mut with_gateway = gateway.service(inner);
    let mut bare = inner;
    let mut with_lifecycle = Gateway::builder(config_200())
        .build_lifecycle()
        .unwrap()
        .service(inner);
    let request = || {
        Request::get("/prod/r37/12345?type=dog")
            .body(Body::empty())
            .unwrap()
    };

    let mut g = c.benchmark_group("gateway_no_features");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(request, |req| ready(bare.call(req)), BatchSize::SmallInput)
    });
    g.bench_function("gateway", |b| {
        b.iter_batched(
            request,
            |req| ready(with_gateway.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("lifecycle", |b| {
        b.iter_batched(
            request,
            |req| ready(with_lifecycle.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("gateway_404", |b| {
        b.iter_batched(
            || Request::get("/prod/nope").body(Body::empty()).unwrap(),
            |req| ready(with_gateway.call(req)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = lookup, stack
}
criterion_main!(benches);
