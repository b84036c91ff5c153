//! Mapping and integration costs. `cargo bench --bench mapping`
//!
//! - a typical pet request template (`input.json`, `input.path`, context,
//!   stage variables) through `MappingLayer`, against the bare inner service;
//! - parameter mapping of 5 headers;
//! - the pet store's summary response template (examples/petstore.yaml) in
//!   minijinja and the same template in VTL, through `MappingLayer` (the
//!   budget: VTL at or below minijinja), and the pet template in both;
//! - compiling a 200-line VTL template;
//! - importing examples/petstore-openapi.yaml into examples/petstore.yaml;
//! - `HttpIntegration` to an upstream on 127.0.0.1 against the same request
//!   sent with a hyper-util client directly (both read the whole response).

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tollgate::Body;
use tollgate::integration::HttpIntegration;
use tollgate::mapping::{CompiledMapping, MappingConfig, MappingLayer};
use tower::{Layer, Service, ServiceExt, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

const PETS: &str = r#"{"pets": [{"id": 1, "type": "dog", "price": 249.99}, {"id": 2, "type": "cat", "price": 124.99}, {"id": 3, "type": "fish", "price": 0.99}]}"#;

fn layer(config: serde_json::Value) -> MappingLayer {
    let config: MappingConfig = serde_json::from_value(config).unwrap();
    MappingLayer::new(Arc::new(CompiledMapping::new(&config).unwrap()))
}

fn mapping(c: &mut Criterion) {
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let template = layer(serde_json::json!({
        "request": { "templates": { "application/json":
            "{\"first\": {{ input.json('$.pets[0]') }}, \"types\": {{ input.json('$.pets[*].type') }}, \"count\": {{ input.path('$.pets') | length }}, \"method\": \"{{ context.http_method }}\", \"q\": \"{{ input.params('type') }}\"}"
        } }
    }));
    let headers = layer(serde_json::json!({
        "request": { "set": {
            "integration.request.header.x-a": "method.request.header.a",
            "integration.request.header.x-b": "method.request.header.b",
            "integration.request.header.x-c": "method.request.querystring.c",
            "integration.request.header.x-d": "'literal'",
            "integration.request.header.x-e": "context.httpMethod"
        } }
    }));
    let mut bare = inner;
    let mut templated = template.layer(inner);
    let mut mapped = headers.layer(inner);
    let post = || {
        Request::post("/pets?type=dog")
            .header("content-type", "application/json")
            .body(Body::from(PETS))
            .unwrap()
    };
    let get = || {
        Request::get("/pets?c=3")
            .header("a", "1")
            .header("b", "2")
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(ready(templated.call(post())).unwrap().status(), 200);

    let mut g = c.benchmark_group("mapping");
    g.bench_function("bare_inner_service", |b| {
        b.iter_batched(post, |r| ready(bare.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("pet_template", |b| {
        b.iter_batched(post, |r| ready(templated.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("five_header_parameters", |b| {
        b.iter_batched(get, |r| ready(mapped.call(r)), BatchSize::SmallInput)
    });
    g.finish();
}

/// One pet, as the pet store's backend answers `/pets/{petId}/summary`.
const PET: &str = r#"{"id": 1, "type": "dog", "price": 249.99}"#;

/// The pet store's summary template (examples/petstore.yaml), minijinja.
const SUMMARY_JINJA: &str = r#"{"pet": "{{ input.path('$.type') }} #{{ input.path('$.id') }}", "price": "${{ input.path('$.price') }}", "stage": "{{ context.stage }}"}"#;
/// The same template in VTL.
const SUMMARY_VTL: &str = r#"{"pet": "$input.path('$.type') #$input.path('$.id')", "price": "$$input.path('$.price')", "stage": "$context.stage"}"#;
/// The pet request template of `mapping`, in VTL.
const PETS_VTL: &str = r#"{"first": $input.json('$.pets[0]'), "types": $input.json('$.pets[*].type'), "count": $input.path('$.pets').size(), "method": "$context.httpMethod", "q": "$input.params('type')"}"#;

fn templates(c: &mut Criterion) {
    let backend = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(PET))
                .unwrap(),
        )
    });
    let response = |language: &str, template: &str| {
        layer(serde_json::json!({
            "language": language,
            "responses": [{ "templates": { "application/json": template } }]
        }))
        .layer(backend)
    };
    let mut jinja = response("jinja", SUMMARY_JINJA);
    let mut vtl = response("vtl", SUMMARY_VTL);
    let get = || Request::get("/pets/1/summary").body(Body::empty()).unwrap();
    let body = |res: Response<Body>| ready(res.into_body().collect()).unwrap().to_bytes();
    let (j, v) = (
        body(ready(jinja.call(get())).unwrap()),
        body(ready(vtl.call(get())).unwrap()),
    );
    assert_eq!(j, v, "both templates write the same summary");

    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let request = |language: &str, template: &str| {
        layer(serde_json::json!({
            "language": language,
            "request": { "templates": { "application/json": template } }
        }))
        .layer(inner)
    };
    let mut pets_jinja = request(
        "jinja",
        "{\"first\": {{ input.json('$.pets[0]') }}, \"types\": {{ input.json('$.pets[*].type') }}, \"count\": {{ input.path('$.pets') | length }}, \"method\": \"{{ context.http_method }}\", \"q\": \"{{ input.params('type') }}\"}",
    );
    let mut pets_vtl = request("vtl", PETS_VTL);
    let post = || {
        Request::post("/pets?type=dog")
            .header("content-type", "application/json")
            .body(Body::from(PETS))
            .unwrap()
    };

    let mut g = c.benchmark_group("templates");
    g.bench_function("summary_jinja", |b| {
        b.iter_batched(
            get,
            |r| body(ready(jinja.call(r)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("summary_vtl", |b| {
        b.iter_batched(
            get,
            |r| body(ready(vtl.call(r)).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("pet_request_jinja", |b| {
        b.iter_batched(post, |r| ready(pets_jinja.call(r)), BatchSize::SmallInput)
    });
    g.bench_function("pet_request_vtl", |b| {
        b.iter_batched(post, |r| ready(pets_vtl.call(r)), BatchSize::SmallInput)
    });
    // A 200-line template: the photos example's shape, repeated.
    let mut big = String::from("#set($root = $input.path('$'))\n");
    for i in 0..20 {
        big.push_str(&format!(
            "#foreach($e in $root.photos.photo)\n  {{\n    \"id{i}\": \"$e.id\",\n    \"farm\": $e.farm,\n    \"title\": \"$util.escapeJavaScript($e.title)\",\n#if($e.ispublic == 1)\n    \"public\": true\n#{{else}}\n    \"public\": false\n#end\n  }}#if($foreach.hasNext),#end\n#end\n"
        ));
    }
    assert!(big.lines().count() >= 200, "{} lines", big.lines().count());
    g.bench_function("compile_vtl_200_lines", |b| {
        b.iter(|| tollgate::vtl::Template::compile(&big).unwrap())
    });
    g.finish();

    let root = env!("CARGO_MANIFEST_DIR");
    let existing = tollgate::Config::from_path(format!("{root}/examples/petstore.yaml")).unwrap();
    let export = std::fs::read_to_string(format!("{root}/examples/petstore-openapi.yaml")).unwrap();
    let options = tollgate::openapi::ImportOptions::default();
    let mut g = c.benchmark_group("openapi");
    g.bench_function("import_petstore", |b| {
        b.iter(|| tollgate::openapi::import_into(&existing, &export, &options).unwrap())
    });
    g.finish();
}

/// An upstream on a free loopback port answering a small JSON body.
async fn upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        br#"{"id": 1, "type": "dog", "price": 249.99}"#,
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn proxy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(upstream());
    let direct: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let integration = HttpIntegration::forward_to(&format!("http://{addr}")).unwrap();
    let url = format!("http://{addr}/pets/1");

    let mut g = c.benchmark_group("http_integration_loopback");
    g.bench_function("hyper_client_direct", |b| {
        b.to_async(&rt).iter(|| async {
            let res = direct
                .request(
                    Request::get(url.as_str())
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            res.into_body().collect().await.unwrap().to_bytes()
        })
    });
    g.bench_function("http_integration", |b| {
        b.to_async(&rt).iter(|| async {
            let res = integration
                .clone()
                .oneshot(Request::get("/pets/1").body(Body::empty()).unwrap())
                .await
                .unwrap();
            res.into_body().collect().await.unwrap().to_bytes()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = mapping, templates, proxy
}
criterion_main!(benches);
