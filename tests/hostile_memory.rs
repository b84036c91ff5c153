//! Heap peaks under hostile input, measured with a heap profiler (dhat):
//! a body sent in 100,000 one-byte frames, each pinning an 8 KiB read
//! buffer as hyper's frames do, and a template that doubles a string 26
//! times. One test in this binary: dhat's peak is process-wide.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tollgate::clock::ManualClock;
use tollgate::{Body, Config, Gateway};
use tower::{ServiceExt, service_fn};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const FRAMES: usize = 100_000;

const CONFIG: &str = r#"
routes:
  /signed: [POST]
  /mapped: [POST]
  /bomb: [GET]
  /lazy: [POST]
  /cached: [GET]
  /sliced/{n}: [GET]
  /kept/{n}: [GET]
  /validated: [POST]
models:
  Things:
    type: array
    items: { oneOf: [{ type: object, required: [a] }, { type: object, required: [b] }, { type: object, required: [c] }, { type: object, required: [d] }] }
validators: { body: { validate_request_body: true } }
stages:
  prod:
    methods:
      /signed/POST: { authorization: sigv4 }
      /mapped/POST:
        mapping: { request: { templates: { text/plain: '{{ input.body|length }}' } } }
      /cached/GET:
        cache: { enabled: true }
      /sliced/{n}/GET:
        cache: { enabled: true, key: [path.n] }
      /validated/POST: { request_validator: body, request_models: { application/json: Things } }
      /lazy/POST:
        mapping: { request: { templates: { application/json: 'ok' } } }
      /bomb/GET:
        mapping:
          responses:
            - templates:
                application/json: '{% set ns = namespace(s="xxxxxxxxxx") %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}'
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
sigv4: { region: us-east-1, max_body: 1MiB }
limits: { body_timeout_ms: 60000 }
"#;

/// `FRAMES` one-byte frames, each a one-byte slice of its own 8 KiB buffer,
/// made only when polled (so the body itself holds nothing).
fn one_byte_frames() -> Body {
    let frames = (0..FRAMES).map(|i| {
        let buffer = Bytes::from(vec![b'a' + (i % 26) as u8; 8192]);
        Ok::<_, Infallible>(Frame::data(buffer.slice(0..1)))
    });
    Body::new(StreamBody::new(futures_util::stream::iter(frames)))
}

async fn status(gw: &Gateway, req: Request<Body>) -> (StatusCode, Bytes) {
    let inner = service_fn(|req: Request<Body>| async move {
        // The cached method's backend streams one-byte frames.
        if req.uri().path().ends_with("/cached") {
            return Ok::<_, Infallible>(Response::new(one_byte_frames()));
        }
        // One frame: 100 bytes sliced from a megabyte buffer of its own.
        if req.uri().path().starts_with("/sliced") {
            let buffer = Bytes::from(vec![b's'; 1 << 20]);
            return Ok(Response::new(Body::from(buffer.slice(0..100))));
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        Ok::<_, Infallible>(Response::new(Body::from(body)))
    });
    let res = tokio::time::timeout(Duration::from_secs(60), gw.service(inner).oneshot(req))
        .await
        .unwrap()
        .unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[test]
fn hostile_bodies_and_templates_stay_within_a_small_heap() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
            .clock(ManualClock::at_unix_secs(1_800_000_000))
            .build()
            .unwrap();

        // 1. SigV4 hashes the body: 100,000 one-byte frames are copied into
        //    one buffer, not held (held, they would pin 800 MB).
        let baseline = dhat::HeapStats::get().curr_bytes;
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20270115/us-east-1/execute-api/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature={}",
            "0".repeat(64)
        );
        let req = Request::post("/prod/signed")
            .header("host", "api.example.com")
            .header("x-amz-date", "20270115T080000Z")
            .header("authorization", auth)
            .body(one_byte_frames())
            .unwrap();
        // The body is read whole, then the (made-up) signature is refused.
        assert_eq!(status(&gw, req).await.0, StatusCode::FORBIDDEN);
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(baseline);
        eprintln!("SigV4, {FRAMES} one-byte frames: heap peak {peak} bytes");
        assert!(
            peak < 10 * FRAMES,
            "SigV4: peak {peak} bytes for a {FRAMES}-byte body"
        );

        // 2. A mapped method reads its body the same way.
        let req = Request::post("/prod/mapped")
            .header("content-type", "text/plain")
            .body(one_byte_frames())
            .unwrap();
        let (code, body) = status(&gw, req).await;
        assert_eq!(
            (code, &body[..]),
            (StatusCode::OK, FRAMES.to_string().as_bytes())
        );
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(baseline);
        eprintln!("mapping, {FRAMES} one-byte frames: heap peak {peak} bytes");
        assert!(
            peak < 10 * FRAMES,
            "mapping: peak {peak} bytes for a {FRAMES}-byte body"
        );

        // 3. The cache buffers a response sent as one-byte frames the same
        //    way before it stores it.
        let before = dhat::HeapStats::get().curr_bytes;
        let req = Request::get("/prod/cached").body(Body::empty()).unwrap();
        let (code, body) = status(&gw, req).await;
        assert_eq!((code, body.len()), (StatusCode::OK, FRAMES));
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(before);
        eprintln!("cache, {FRAMES} one-byte frames from the backend: heap peak {peak} bytes");
        assert!(peak < 10 * FRAMES, "cache: peak {peak} bytes");

        // 3b. A cache entry made of one frame sliced from a large buffer
        //     keeps its 100 bytes, not the megabyte around them.
        let before = dhat::HeapStats::get().curr_bytes;
        for n in 0..20 {
            let req = Request::get(format!("/prod/sliced/{n}"))
                .body(Body::empty())
                .unwrap();
            let (code, body) = status(&gw, req).await;
            assert_eq!((code, body.len()), (StatusCode::OK, 100));
        }
        let kept = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        eprintln!("20 cached one-frame slices of 1 MiB buffers: {kept} bytes kept");
        assert!(kept < 1 << 20, "cache entries keep {kept} bytes");

        // 4. A template that never selects from a JSON body does not pay
        //    for its parse: a megabyte of `["","",...]` parsed is 13 MB.
        let json = format!("[{}\"\"]", "\"\",".repeat(333_000));
        let req = Request::post("/prod/lazy")
            .header("content-type", "application/json")
            .body(Body::from(json))
            .unwrap();
        let before = dhat::HeapStats::get().curr_bytes;
        assert_eq!(status(&gw, req).await.0, StatusCode::OK);
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(before);
        eprintln!("unread 1 MB JSON body: heap peak {peak} bytes");
        assert!(peak < 6 << 20, "unread JSON body: peak {peak} bytes");

        // 5. The doubling template stops at the size limit (10 MiB by
        //    default) with a 500; unbounded it peaked at 1.67 GB.
        let req = Request::get("/prod/bomb").body(Body::empty()).unwrap();
        assert_eq!(status(&gw, req).await.0, StatusCode::INTERNAL_SERVER_ERROR);
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(baseline);
        eprintln!("doubling template: heap peak {peak} bytes");
        assert!(peak < 32 << 20, "template: peak {peak} bytes");

        // 6. A handler that keeps some of the URIs it is given (as an SSE
        //    or websocket handler may) keeps those URIs, not a buffer they
        //    were cut from: 100 kept of 6,400 requests.
        let kept: Arc<Mutex<Vec<http::Uri>>> = Arc::new(Mutex::new(Vec::with_capacity(100)));
        let keep = kept.clone();
        let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let svc = gw.service(service_fn(move |req: Request<Body>| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(64) {
                keep.lock().unwrap().push(req.uri().clone());
            }
            async { Ok::<_, Infallible>(Response::new(Body::empty())) }
        }));
        let before = dhat::HeapStats::get().curr_bytes;
        for i in 0..6400 {
            let req = Request::get(format!("/prod/kept/{i}"))
                .body(Body::empty())
                .unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        assert_eq!(kept.lock().unwrap().len(), 100);
        eprintln!("100 kept URIs: {held} bytes held");
        // A URI and its path: about 100 bytes each. Cut from shared 8 KiB
        // chunks they held 800 KB.
        assert!(held < 64 << 10, "kept URIs hold {held} bytes");

        // 7. A 2 MB body of 700,000 objects, each failing every branch of
        //    its model's `oneOf`: 400 with the first problem only. Every
        //    problem collected peaked at 1.64 GB (the hostile review).
        let body = format!("[{}{{}}]", "{},".repeat(699_999));
        let req = Request::post("/prod/validated")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let before = dhat::HeapStats::get().curr_bytes;
        assert_eq!(status(&gw, req).await.0, StatusCode::BAD_REQUEST);
        let peak = dhat::HeapStats::get().max_bytes.saturating_sub(before);
        eprintln!("an invalid 2 MB validated body: heap peak {peak} bytes");
        assert!(peak < 128 << 20, "validated body: peak {peak} bytes");
    });
}
