//! `RUST_LOG=tollgate=debug` says which layer decided and why. Alone in its
//! test binary: tracing's per-callsite interest cache is global, and tests on
//! other threads without a subscriber would race it.

mod support;

use http::Request;
use support::{Captured, ok};
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::{Body, Config, Gateway};

const CONFIG: &str = r#"
routes:
  /pets: [GET]
  /pets/{id}: [GET]
  /me: [GET]
stages:
  prod:
    methods:
      /pets/GET: { api_key_required: true, cache: { enabled: true } }
      /pets/{id}/GET: { throttle: { rate: 1, burst: 1 } }
      /me/GET: { authorization: authorizer, authorizer: who }
plans:
  p: { stages: [prod] }
keys:
  - { name: k, value: key-0123456789abcdefghij, plans: [p] }
authorizers:
  who: { identity_sources: [header.Authorization], ttl: 0 }
"#;

/// Sends `req` through `gw` in front of an `ok` service, reading the whole answer.
async fn run(gw: &Gateway, req: Request<Body>) {
    support::send(gw.service(ok()), req).await;
}

#[tokio::test]
async fn debug_logs_say_which_layer_decided_and_why() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .authorizer("who", |_req: AuthorizerRequest| async {
            Ok(Verdict::deny("nobody"))
        })
        .build()
        .unwrap();
    let get = |path: &str| Request::get(path);

    run(
        &gw,
        get("/prod/pets")
            .header("x-api-key", "wrong-0123456789abcdefgh")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let t = logs.take();
    assert!(
        t.contains("layer=\"api_key\"") && t.contains("reason=\"unknown key\""),
        "{t}"
    );
    assert!(t.contains("kind=\"INVALID_API_KEY\""), "{t}");
    assert!(
        !t.contains("wrong-0123456789abcdefgh"),
        "the key never reaches a log"
    );

    run(&gw, get("/prod/pets/1").body(Body::empty()).unwrap()).await;
    run(&gw, get("/prod/pets/1").body(Body::empty()).unwrap()).await;
    let t = logs.take();
    assert!(
        t.contains("layer=\"route\"") && t.contains("resource=\"/pets/{id}\""),
        "{t}"
    );
    assert!(
        t.contains("layer=\"throttle\"") && t.contains("decision=\"reject\""),
        "{t}"
    );
    // Each decision is logged inside the request's span, with its id.
    let throttled = t
        .lines()
        .find(|l| l.contains("layer=\"throttle\""))
        .unwrap_or_default();
    assert!(throttled.contains("request{id="), "{throttled}");

    run(
        &gw,
        get("/prod/me")
            .header("authorization", "bob")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let t = logs.take();
    assert!(
        t.contains("layer=\"authorizer\"") && t.contains("kind=\"ACCESS_DENIED\""),
        "{t}"
    );

    run(
        &gw,
        get("/prod/pets")
            .header("x-api-key", "key-0123456789abcdefghij")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let t = logs.take();
    assert!(
        t.contains("layer=\"api_key\"") && t.contains("decision=\"admit\""),
        "{t}"
    );
    assert!(
        t.contains("layer=\"cache\"") && t.contains("decision=\"Miss\""),
        "{t}"
    );
}
