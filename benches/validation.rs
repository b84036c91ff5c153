//! Request validation costs. `cargo bench --bench validation`
//!
//! - a 1 KiB JSON body against a compiled 10-property model (issue 19's
//!   budget: at most 2 µs), the body already parsed and parsed from bytes
//!   (serde_json alone on the same bytes, measured in the same run, is
//!   the floor of the second);
//! - the `ValidationLayer` on that body through a no-op service, against
//!   the no-op service alone;
//! - required parameters only (three present).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use serde_json::{Value, json};
use tollgate::Body;
use tollgate::validate::{MethodValidation, Models, RequestValidatorConfig, ValidationLayer};
use tower::{Layer, Service, service_fn};

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => unreachable!("everything here answers at once"),
    }
}

/// A 10-property model.
fn model() -> Value {
    json!({
        "type": "object",
        "required": ["id", "name", "kind", "price"],
        "additionalProperties": false,
        "properties": {
            "id": { "type": "integer", "minimum": 1 },
            "name": { "type": "string", "minLength": 1, "maxLength": 200 },
            "kind": { "enum": ["dog", "cat", "fish", "bird"] },
            "price": { "type": "number", "minimum": 0 },
            "tags": { "type": "array", "items": { "type": "string", "maxLength": 40 } },
            "owner": { "type": "object", "properties": { "email": { "type": "string" } } },
            "born": { "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" },
            "vaccinated": { "type": "boolean" },
            "weight": { "type": "number" },
            "notes": { "type": "string" }
        }
    })
}

/// A body of about 1 KiB that satisfies [`model`].
fn body() -> Bytes {
    let v = json!({
        "id": 42, "name": "Rex the very good dog of the whole neighbourhood",
        "kind": "dog", "price": 249.99,
        "tags": ["friendly", "trained", "vaccinated", "microchipped", "house-broken", "calm", "loyal", "playful"],
        "owner": { "email": "owner@example.test" },
        "born": "2019-04-01", "vaccinated": true, "weight": 31.5,
        "notes": "x".repeat(740),
    });
    Bytes::from(v.to_string())
}

fn bench(c: &mut Criterion) {
    let mut source = BTreeMap::new();
    source.insert("Pet".to_owned(), model());
    let models = Models::compile(&source).unwrap();
    let pet = models.get("Pet").unwrap().clone();
    let bytes = body();
    assert!((1000..1200).contains(&bytes.len()), "{}", bytes.len());
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(pet.is_valid(&parsed));

    let mut g = c.benchmark_group("validate");
    g.bench_function("model_1k_parsed", |b| b.iter(|| pet.is_valid(&parsed)));
    g.bench_function("model_1k_from_bytes", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            pet.is_valid(&v)
        })
    });
    g.bench_function("serde_json_parse_1k", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&bytes).unwrap())
    });

    let noop = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    });
    let mut params = BTreeMap::new();
    let mut by_type = BTreeMap::new();
    by_type.insert("application/json".to_owned(), "Pet".to_owned());
    let body_only = RequestValidatorConfig {
        validate_request_body: true,
        validate_request_parameters: false,
    };
    let validation = MethodValidation::new("body", body_only, &params, &by_type, &models).unwrap();
    let mut layered = ValidationLayer::new(Arc::new(validation)).layer(noop);
    let mut bare = noop;
    let req = || {
        Request::post("/pets")
            .header("content-type", "application/json")
            .body(Body::full(bytes.clone()))
            .unwrap()
    };
    g.bench_function("layer_1k_body", |b| {
        b.iter_batched(
            req,
            |r| ready(layered.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("bare_1k_body", |b| {
        b.iter_batched(req, |r| ready(bare.call(r)).unwrap(), BatchSize::SmallInput)
    });

    for key in [
        "method.request.querystring.type",
        "method.request.header.x-client",
        "method.request.querystring.page",
    ] {
        params.insert(key.to_owned(), true);
    }
    let params_only = RequestValidatorConfig {
        validate_request_body: false,
        validate_request_parameters: true,
    };
    let validation =
        MethodValidation::new("params", params_only, &params, &BTreeMap::new(), &models).unwrap();
    let mut layered = ValidationLayer::new(Arc::new(validation)).layer(noop);
    let get = || {
        Request::get("/pets?type=dog&page=2")
            .header("x-client", "cli")
            .body(Body::empty())
            .unwrap()
    };
    g.bench_function("layer_three_parameters", |b| {
        b.iter_batched(
            get,
            |r| ready(layered.call(r)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("bare_three_parameters", |b| {
        b.iter_batched(get, |r| ready(bare.call(r)).unwrap(), BatchSize::SmallInput)
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
