//! Compression as API Gateway's `minimumCompressionSize`: the threshold,
//! `Accept-Encoding` q-values, no compression when the preferred coding is
//! not one the gateway makes (`br` only as an opt-in), compressed request
//! bodies decoded (through a mapped method too), any other coding 415.

mod support;

use std::convert::Infallible;
use std::io::{Read, Write};

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes: { /pets: [GET, POST], /brotli: [GET], /mapped: [POST] }
settings: { minimum_compression_size: 100 }
stages:
  prod:
    methods:
      /brotli/GET: { compression_br: true }
      /mapped/POST:
        mapping:
          request:
            templates:
              application/json: "type={{ input.path('$.type') }}"
"#;

/// An inner service answering `n` bytes for `GET ?n=N`, and echoing a
/// request body.
async fn call(gw: &Gateway, req: Request<Body>) -> (StatusCode, HeaderMap, bytes::Bytes) {
    let inner = tower::service_fn(|req: Request<Body>| async move {
        let n: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let out = if body.is_empty() {
            bytes::Bytes::from(vec![b'a'; n])
        } else {
            body
        };
        Ok::<_, Infallible>(Response::new(Body::from(out)))
    });
    let res = gw.service(inner).oneshot(req).await.unwrap();
    support::read(res).await
}

fn get(uri: &str, accept: &str) -> Request<Body> {
    Request::get(uri)
        .header("accept-encoding", accept)
        .body(Body::empty())
        .unwrap()
}

fn gateway() -> Gateway {
    Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn the_threshold_both_sides() {
    let gw = gateway();
    let (_, h, body) = call(&gw, get("/prod/pets?n=99", "gzip")).await;
    assert!(h.get("content-encoding").is_none());
    assert_eq!(body.len(), 99);
    let (_, h, body) = call(&gw, get("/prod/pets?n=100", "gzip")).await;
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(gunzip(&body), vec![b'a'; 100]);
}

#[tokio::test]
async fn q_values_pick_the_coding_and_identity_q0_still_compresses() {
    let gw = gateway();
    let coding = |h: &HeaderMap| {
        h.get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "gzip;q=0.5, deflate;q=0.8")).await;
    assert_eq!(coding(&h).as_deref(), Some("deflate"));
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "identity;q=0, gzip;q=0.1")).await;
    assert_eq!(coding(&h).as_deref(), Some("gzip"));
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "*;q=0.5")).await;
    assert_eq!(coding(&h).as_deref(), Some("gzip"));
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "identity")).await;
    assert_eq!(coding(&h), None);
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "gzip;q=0")).await;
    assert_eq!(coding(&h), None);
    // br preferred: not made without the opt-in, so nothing (API Gateway's
    // rule), even though gzip is acceptable too.
    let (_, h, _) = call(&gw, get("/prod/pets?n=500", "br, gzip;q=0.5")).await;
    assert_eq!(coding(&h), None);
    let (_, h, _) = call(&gw, get("/prod/brotli?n=500", "br, gzip;q=0.5")).await;
    assert_eq!(coding(&h).as_deref(), Some("br"));
}

#[tokio::test]
async fn gzip_request_bodies_are_decoded_and_other_codings_refused() {
    let gw = gateway();
    let post = |uri: &str, coding: &str, body: Vec<u8>| {
        Request::post(uri)
            .header("content-encoding", coding)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, _, body) = call(&gw, post("/prod/pets", "gzip", gzip(br#"{"type":"dog"}"#))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], br#"{"type":"dog"}"#);
    // Through a mapping template, which reads the decoded JSON.
    let (status, _, body) = call(
        &gw,
        post("/prod/mapped", "GZIP", gzip(br#"{"type":"cat"}"#)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"type=cat");
    let (status, h, _) = call(&gw, post("/prod/pets", "compress", b"x".to_vec())).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(support::error_type(&h), "UNSUPPORTED_MEDIA_TYPE");
}

#[test]
fn a_size_past_api_gateways_bound_is_a_config_error() {
    let yaml = "routes: { /a: [GET] }\nstages: { prod: {} }\nsettings: { minimum_compression_size: 10485761 }\n";
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(
        err.contains(
            "settings.minimum_compression_size: must be 0 to 10485760 bytes (got 10485761)"
        ),
        "{err}"
    );
}
