//! Binary media types and `content_handling`, as API Gateway's "Content type
//! conversions" tables: a binary body is never rendered by a text template,
//! base64 conversion each way on the request and the response, the first
//! `Accept` media type deciding, a body that is not base64 a 500, and an
//! unmapped method passing every byte.

mod support;

use std::convert::Infallible;

use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes:
  /upload: [POST]
  /text: [POST]
  /encoded: [POST]
  /decode: [POST]
  /echo: [POST]
  /plain: [POST]
  /proxy: [POST]
  /tobin: [POST]
settings: { binary_media_types: ["image/png", "application/octet-stream"] }
stages:
  prod:
    methods:
      /upload/POST:
        mapping:
          request: { templates: { application/json: "never rendered" }, passthrough: never }
      /text/POST:
        mapping:
          request:
            content_handling: convert_to_text
            templates: { image/png: '{"data": "{{ input.body }}"}' }
      /encoded/POST:
        mapping: { request: { content_handling: CONVERT_TO_TEXT } }
      /decode/POST:
        mapping: { request: { content_handling: convert_to_binary } }
      /echo/POST:
        mapping:
          responses:
            - templates: { application/json: '{"body": "{{ input.body }}"}' }
      /plain/POST:
        mapping: { request: { set: { integration.request.header.x-mapped: "'yes'" } } }
      /tobin/POST:
        binary_media_types: []
        mapping: { responses: [ { content_handling: convert_to_binary } ] }
"#;

/// Bytes that are not UTF-8, and their base64.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\xff\xfe";
const PNG_B64: &str = "iVBORw0KGgoA//4=";

/// What the inner service saw: the body and its `Content-Length`.
type Seen = Arc<Mutex<Option<(bytes::Bytes, Option<String>)>>>;

/// Calls the gateway with an inner service that records the request body
/// and answers it back, with the `Content-Type` named by `x-reply-type`.
async fn call(req: Request<Body>) -> (StatusCode, HeaderMap, bytes::Bytes, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let inner = tower::service_fn(move |req: Request<Body>| {
        let s = s.clone();
        async move {
            let reply = req.headers().get("x-reply-type").cloned();
            let length = req
                .headers()
                .get("content-length")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            *s.lock().unwrap() = Some((body.clone(), length));
            let mut res = Response::new(Body::from(body));
            if let Some(t) = reply {
                res.headers_mut().insert("content-type", t);
            }
            Ok::<_, Infallible>(res)
        }
    });
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let res = gw.service(inner).oneshot(req).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    (status, headers, body, seen)
}

fn post(path: &str, ctype: &str) -> http::request::Builder {
    Request::post(format!("/prod{path}")).header("content-type", ctype)
}

fn seen(s: &Seen) -> (bytes::Bytes, Option<String>) {
    s.lock()
        .unwrap()
        .clone()
        .expect("the integration was called")
}

#[tokio::test]
async fn a_binary_body_passes_as_bytes_and_no_template_reads_it() {
    // `never` would refuse a content type without a template; a binary one
    // is passed as it is instead, and the JSON template is not rendered.
    let req = post("/upload", "image/png").body(Body::from(PNG)).unwrap();
    let (status, _, _, s) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&seen(&s).0[..], PNG);
    // A text type still follows the passthrough rule.
    let req = post("/upload", "text/plain")
        .body(Body::from("hi"))
        .unwrap();
    let (status, _, _, _) = call(req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn convert_to_text_base64_encodes_a_binary_request_for_its_template() {
    let req = post("/text", "image/png").body(Body::from(PNG)).unwrap();
    let (status, _, _, s) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    let (body, length) = seen(&s);
    let want = format!(r#"{{"data": "{PNG_B64}"}}"#);
    assert_eq!(body, want.as_bytes());
    assert_eq!(length, Some(want.len().to_string()));

    // Without a template the encoded text itself passes.
    let req = post("/encoded", "application/octet-stream")
        .body(Body::from(PNG))
        .unwrap();
    let (_, _, _, s) = call(req).await;
    let (body, length) = seen(&s);
    assert_eq!(body, PNG_B64.as_bytes());
    assert_eq!(length, Some(PNG_B64.len().to_string()));

    // A text request is left alone by convert_to_text.
    let req = post("/encoded", "text/plain")
        .body(Body::from("words"))
        .unwrap();
    let (_, _, _, s) = call(req).await;
    assert_eq!(seen(&s).0, "words");
}

#[tokio::test]
async fn convert_to_binary_decodes_a_text_request_and_refuses_one_that_is_not_base64() {
    let req = post("/decode", "text/plain")
        .body(Body::from(format!("{PNG_B64}\n")))
        .unwrap();
    let (status, _, _, s) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    let (body, length) = seen(&s);
    assert_eq!(&body[..], PNG);
    assert_eq!(length, Some(PNG.len().to_string()));

    let req = post("/decode", "text/plain")
        .body(Body::from("not base64!"))
        .unwrap();
    let (status, headers, body, s) = call(req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    assert_eq!(support::error_type(&headers), "API_CONFIGURATION_ERROR");
    assert!(
        s.lock().unwrap().is_none(),
        "the integration was not called"
    );

    // A binary request is already bytes: passed unchanged.
    let req = post("/decode", "image/png").body(Body::from(PNG)).unwrap();
    let (_, _, _, s) = call(req).await;
    assert_eq!(&seen(&s).0[..], PNG);
}

#[tokio::test]
async fn a_binary_response_is_encoded_for_a_text_accept_and_kept_for_a_binary_one() {
    // The integration answers image/png bytes.
    let ask = |accept: &'static str| {
        post("/plain", "image/png")
            .header("x-reply-type", "image/png")
            .header("accept", accept)
            .body(Body::from(PNG))
            .unwrap()
    };
    let (status, _, body, s) = call(ask("application/json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, PNG_B64.as_bytes());
    assert_eq!(&seen(&s).0[..], PNG, "the request passed as bytes");

    let (_, _, body, _) = call(ask("image/png")).await;
    assert_eq!(&body[..], PNG);

    // Only the first Accept media type counts.
    let (_, _, body, _) = call(ask("text/html, image/png")).await;
    assert_eq!(body, PNG_B64.as_bytes());
    let (_, _, body, _) = call(ask("image/png;q=0.5, text/html")).await;
    assert_eq!(&body[..], PNG);
}

#[tokio::test]
async fn a_text_response_is_decoded_for_a_binary_accept() {
    let req = post("/plain", "text/plain")
        .header("x-reply-type", "text/plain")
        .header("accept", "image/png")
        .body(Body::from(PNG_B64))
        .unwrap();
    let (status, headers, body, _) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], PNG);
    assert!(headers.get("content-length").is_none_or(|v| v == "11"));

    // Not base64: API Gateway's configuration error, a 500.
    let req = post("/plain", "text/plain")
        .header("x-reply-type", "text/plain")
        .header("accept", "image/png")
        .body(Body::from("plain words"))
        .unwrap();
    let (status, headers, body, _) = call(req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
    assert_eq!(support::error_type(&headers), "API_CONFIGURATION_ERROR");
}

#[tokio::test]
async fn a_response_template_reads_the_encoded_text_and_never_the_bytes() {
    let ask = |accept: &'static str| {
        post("/echo", "image/png")
            .header("x-reply-type", "image/png")
            .header("accept", accept)
            .body(Body::from(PNG))
            .unwrap()
    };
    let (_, headers, body, _) = call(ask("application/json")).await;
    assert_eq!(body, format!(r#"{{"body": "{PNG_B64}"}}"#).as_bytes());
    assert_eq!(headers["content-type"], "application/json");
    // A binary Accept: bytes, the template not rendered.
    let (_, headers, body, _) = call(ask("image/png")).await;
    assert_eq!(&body[..], PNG);
    assert_eq!(headers["content-type"], "image/png");
}

#[tokio::test]
async fn convert_to_binary_on_a_response_decodes_without_binary_media_types() {
    let req = post("/tobin", "text/plain")
        .header("x-reply-type", "text/plain")
        .body(Body::from(PNG_B64))
        .unwrap();
    let (status, _, body, s) = call(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], PNG);
    // The method's own empty list replaced the API's: the request is text.
    assert_eq!(seen(&s).0, PNG_B64.as_bytes());
}

#[tokio::test]
async fn an_unmapped_method_passes_every_byte_both_ways() {
    for accept in ["application/json", "image/png"] {
        let req = post("/proxy", "image/png")
            .header("x-reply-type", "image/png")
            .header("accept", accept)
            .body(Body::from(PNG))
            .unwrap();
        let (status, _, body, s) = call(req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], PNG);
        assert_eq!(&seen(&s).0[..], PNG);
    }
    let req = post("/proxy", "text/plain")
        .header("x-reply-type", "text/plain")
        .header("accept", "image/png")
        .body(Body::from(PNG_B64))
        .unwrap();
    let (_, _, body, _) = call(req).await;
    assert_eq!(body, PNG_B64.as_bytes());
}

#[test]
fn bad_settings_are_refused_with_their_path() {
    let yaml = "routes: { /a: [POST] }\nstages: { prod: { methods: { /a/POST: { binary_media_types: [png] } } } }\n";
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(
        err.contains("binary_media_types: `png` is not a media type"),
        "{err}"
    );
    let yaml = "routes: { /a: [POST] }\nstages: { prod: { settings: { mapping: { request: { content_handling: CONVERT_TO_JSON } } } } }\n";
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(err.contains("content_handling"), "{err}");
}

#[tokio::test]
async fn the_gateways_own_answer_is_neither_mapped_nor_converted() {
    // An integration that fails: its 502 is the gateway's, not a backend
    // response the mapping's rules or the conversions apply to.
    let dead = support::dead_port().await;
    let yaml = format!(
        r#"
routes: {{ /dead: [GET] }}
settings: {{ binary_media_types: ["*/*"] }}
stages:
  prod:
    methods:
      /dead/GET:
        integration: {{ type: http, base: "http://{dead}" }}
        mapping:
          responses:
            - {{ selection_pattern: "5\\d\\d", status: 200, headers: {{ x-rule: "'hit'" }}, content_handling: convert_to_text }}
"#
    );
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    for accept in ["image/png", "application/json"] {
        let req = Request::get("/prod/dead")
            .header("accept", accept)
            .body(Body::empty())
            .unwrap();
        let res = gw.service(support::ok()).oneshot(req).await.unwrap();
        let (status, headers, body) = support::read(res).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{accept}");
        assert_eq!(support::error_type(&headers), "INTEGRATION_FAILURE");
        assert!(headers.get("x-rule").is_none());
        assert_eq!(body, r#"{"message":"Bad Gateway"}"#);
    }
}

#[tokio::test]
async fn a_converted_body_loses_the_framing_and_coding_of_the_old_one() {
    // The backend's gzip label described its bytes, not their base64.
    let inner = tower::service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::from(PNG));
        res.headers_mut()
            .insert("content-type", "image/png".parse().unwrap());
        res.headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let req = post("/plain", "text/plain")
        .header("accept", "text/plain")
        .body(Body::from("x"))
        .unwrap();
    let res = gw.service(inner).oneshot(req).await.unwrap();
    let (_, headers, body) = support::read(res).await;
    assert_eq!(body, PNG_B64.as_bytes());
    assert!(headers.get("content-encoding").is_none(), "{headers:?}");

    // A chunked request converted whole reaches the integration with a
    // length and no `Transfer-Encoding`.
    let req = post("/encoded", "image/png")
        .header("transfer-encoding", "chunked")
        .body(Body::from(PNG))
        .unwrap();
    let seen_te: Arc<Mutex<Option<bool>>> = Arc::default();
    let s = seen_te.clone();
    let inner = tower::service_fn(move |req: Request<Body>| {
        *s.lock().unwrap() = Some(req.headers().contains_key("transfer-encoding"));
        async { Ok::<_, Infallible>(Response::new(Body::empty())) }
    });
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let _ = gw.service(inner).oneshot(req).await.unwrap();
    assert_eq!(*seen_te.lock().unwrap(), Some(false));
}

#[tokio::test]
async fn a_head_request_is_not_converted() {
    let req = Request::head("/prod/plain")
        .header("x-reply-type", "image/png")
        .header("accept", "text/plain")
        .body(Body::empty())
        .unwrap();
    let inner = tower::service_fn(|_req: Request<Body>| async {
        let mut res = Response::new(Body::empty());
        res.headers_mut()
            .insert("content-type", "image/png".parse().unwrap());
        res.headers_mut()
            .insert("content-length", "11".parse().unwrap());
        Ok::<_, Infallible>(res)
    });
    let yaml = CONFIG
        .replace("/plain: [POST]", "/plain: [POST, HEAD]")
        .replace("/plain/POST:", "/plain/*:");
    let gw = Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap();
    let res = gw.service(inner).oneshot(req).await.unwrap();
    let (status, headers, body) = support::read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], "11");
    assert!(body.is_empty());
}
