//! CORS answered by the gateway: a preflight needs no key or signature and
//! reaches no backend; gateway refusals carry the headers; a disallowed
//! origin gets none.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const APP: &str = "https://app.example.test";

const CONFIG: &str = r#"
routes: { /pets: [GET, POST], /limited: [GET], /nocors: [GET] }
settings:
  cors:
    allow_origins: ["https://app.example.test"]
    expose_headers: [x-request-cost]
    max_age: 600
stages:
  prod:
    settings: { api_key_required: true }
    methods:
      /pets/POST: { authorization: sigv4 }
      /limited/GET: { api_key_required: false, throttle: { rate: 0.001, burst: 1 } }
      /nocors/GET: { cors: { allow_origins: [] }, api_key_required: false }
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
sigv4: { region: us-east-1 }
plans: { p: { stages: [prod] } }
keys:
  - { name: k, value: key-0123456789abcdef0123, plans: [p] }
"#;

/// The gateway in front of a service that counts its calls.
async fn call(
    gw: &Gateway,
    calls: &Arc<AtomicUsize>,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap) {
    let calls = calls.clone();
    let inner = tower::service_fn(move |_req: Request<Body>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            let mut res = Response::new(Body::from("pets"));
            res.headers_mut()
                .insert("x-request-cost", "1".parse().unwrap());
            Ok::<_, Infallible>(res)
        }
    });
    let mut req = Request::builder().method(method).uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let res = gw
        .service(inner)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers, _) = support::read(res).await;
    (status, headers)
}

fn gateway() -> Gateway {
    Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap()
}

#[tokio::test]
async fn a_preflight_needs_no_key_or_signature_and_reaches_no_backend() {
    let (gw, calls) = (gateway(), Arc::new(AtomicUsize::new(0)));
    // POST /pets needs a key and a SigV4 signature; the preflight has neither.
    let (status, h) = call(
        &gw,
        &calls,
        Method::OPTIONS,
        "/prod/pets",
        &[
            ("origin", APP),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-api-key"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], APP);
    // The resource's declared methods, and API Gateway's default headers.
    assert_eq!(h["access-control-allow-methods"], "GET,POST");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    for name in ["content-type", "x-api-key", "authorization", "x-amz-date"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert_eq!(h["access-control-max-age"], "600");
    assert!(h.get("x-amzn-requestid").is_some(), "a gateway answer");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "no backend call");
}

#[tokio::test]
async fn gateway_refusals_carry_the_cors_headers() {
    let (gw, calls) = (gateway(), Arc::new(AtomicUsize::new(0)));
    let origin = [("origin", APP)];
    // 403: no key.
    let (status, h) = call(&gw, &calls, Method::GET, "/prod/pets", &origin).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(support::error_type(&h), "INVALID_API_KEY");
    assert_eq!(h["access-control-allow-origin"], APP);
    assert!(
        h.get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin"))
    );
    // 429: the second request in a bucket of one.
    let (status, h) = call(&gw, &calls, Method::GET, "/prod/limited", &origin).await;
    assert_eq!(status, StatusCode::OK, "{h:?}");
    let (status, h) = call(&gw, &calls, Method::GET, "/prod/limited", &origin).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["access-control-allow-origin"], APP);
    // The backend's own answer too, with what it exposes.
    let key = [("origin", APP), ("x-api-key", "key-0123456789abcdef0123")];
    let (status, h) = call(&gw, &calls, Method::GET, "/prod/pets", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-expose-headers"], "x-request-cost");
    // Only a preflight's answer varies by the preflight's request headers.
    let vary: Vec<_> = h.get_all("vary").iter().collect();
    assert_eq!(vary, ["origin"], "{h:?}");
}

#[tokio::test]
async fn a_disallowed_origin_or_a_method_without_cors_gets_no_cors_headers() {
    let (gw, calls) = (gateway(), Arc::new(AtomicUsize::new(0)));
    let evil = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "GET"),
    ];
    let (status, h) = call(&gw, &calls, Method::OPTIONS, "/prod/pets", &evil).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{h:?}"
    );
    let (_, h) = call(&gw, &calls, Method::GET, "/prod/pets", &evil[..1]).await;
    assert!(
        h.keys().all(|k| !k.as_str().starts_with("access-control-")),
        "{h:?}"
    );
    // `allow_origins: []` on a method: no CORS there, and its OPTIONS is
    // routed as any request (405: the resource does not declare it).
    let ok = [("origin", APP), ("access-control-request-method", "GET")];
    let (status, h) = call(&gw, &calls, Method::OPTIONS, "/prod/nocors", &ok).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.get("access-control-allow-origin").is_none());
    let (status, h) = call(&gw, &calls, Method::GET, "/prod/nocors", &ok[..1]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.get("access-control-allow-origin").is_none());
}

#[test]
fn unusable_cors_settings_are_config_errors() {
    let yaml = r#"
routes: { /a: [GET] }
settings:
  cors: { allow_origins: ["*", "app.example", "https://a.test/x", "HTTPS://B.TEST", "https://c.test:443", "https://d.test:8443"], allow_credentials: true, allow_methods: ["GE T"], max_age: 100000 }
stages: { prod: {} }
"#;
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(
        !err.contains("allow_origins[5]"),
        "a non-default port is an origin: {err}"
    );
    for expected in [
        "settings.cors.allow_origins[1]: `app.example` is not an origin",
        "settings.cors.allow_origins[2]: `https://a.test/x` is not an origin",
        "settings.cors.allow_origins[3]: `HTTPS://B.TEST` is not an origin",
        "settings.cors.allow_origins[4]: `https://c.test:443` is not an origin",
        "settings.cors.allow_methods[0]: `GE T` is not a method",
        "settings.cors.allow_credentials: cannot be true with a \"*\" origin or header",
        "settings.cors.max_age: must be 0 to 86400 seconds (got 100000)",
    ] {
        assert!(err.contains(expected), "`{expected}` in:\n{err}");
    }
}
