//! HttpIntegration against a real hyper server on 127.0.0.1, and the mock
//! integration, through a gateway.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::json_of;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

/// Released by the test to let the slow upstream finish its body.
type Gate = Arc<Mutex<Option<oneshot::Receiver<()>>>>;

/// An upstream on a free loopback port: `/slow` never answers, `/stream` sends
/// one chunk then waits for the test, anything else echoes the request.
async fn upstream(gate: Gate) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gate = gate.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let gate = gate.clone();
                    async move { Ok::<_, Infallible>(answer(req, gate).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn answer(req: Request<Incoming>, gate: Gate) -> Response<Body> {
    match req.uri().path() {
        "/slow" => {
            // Never answers: only the gateway's timeout ends the call.
            std::future::pending::<()>().await;
            Response::new(Body::from("never"))
        }
        "/stream" => {
            let rx = gate.lock().unwrap().take();
            let first = futures_util::stream::once(async {
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(vec![b'a'; 64 << 10])))
            });
            let rest = futures_util::stream::once(async move {
                if let Some(rx) = rx {
                    let _ = rx.await;
                }
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"end")))
            });
            use futures_util::StreamExt as _;
            Response::new(Body::new(StreamBody::new(first.chain(rest))))
        }
        _ => {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                .collect();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v = json!({ "method": method, "uri": uri, "headers": headers, "body_len": body.len(), "body": String::from_utf8_lossy(&body) });
            let mut res = Response::new(Body::from(v.to_string()));
            res.headers_mut()
                .insert("x-upstream", "yes".parse().unwrap());
            res.headers_mut()
                .insert("connection", "x-hop-res".parse().unwrap());
            res.headers_mut().insert("x-hop-res", "1".parse().unwrap());
            res
        }
    }
}

fn gateway(upstream: SocketAddr, dead: SocketAddr) -> Gateway {
    let yaml = format!(
        r#"
routes:
  /items/{{id}}: [GET, POST, PUT, DELETE]
  /files/{{proxy+}}: [ANY]
  /slow: [GET]
  /stream: [GET]
  /dead: [GET]
  /mock: [GET]
  /local: [GET]
stages:
  prod:
    variables: {{ upstream: "{upstream}" }}
    settings:
      integration: {{ type: http, base: "http://{{stageVariables.upstream}}" }}
    methods:
      /items/{{id}}/*: {{ integration: {{ type: http, url: "http://{{stageVariables.upstream}}/v1/things/{{id}}?from=gw" }} }}
      /files/{{proxy+}}/ANY: {{ integration: {{ type: http, url: "http://{upstream}/store/{{proxy}}" }} }}
      /slow/GET: {{ integration: {{ type: http, base: "http://{upstream}", timeout_ms: 200 }} }}
      /dead/GET: {{ integration: {{ type: http, base: "http://{dead}" }} }}
      /mock/GET: {{ integration: {{ type: mock, status: 202, headers: {{ x-mock: "1" }}, body: "mocked" }} }}
      /local/GET: {{ integration: {{ type: service }} }}
"#
    );
    Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap()
}

async fn setup() -> (Gateway, oneshot::Sender<()>) {
    let (tx, rx) = oneshot::channel();
    let up = upstream(Arc::new(Mutex::new(Some(rx)))).await;
    // A port nothing listens on.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    (gateway(up, dead), tx)
}

fn local()
-> impl tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("local")))
    })
}

/// Sends `req` through `gw` in front of `local()`; the answer must start within 10 s.
async fn call(gw: &Gateway, req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let res = tokio::time::timeout(Duration::from_secs(10), gw.service(local()).oneshot(req))
        .await
        .expect("answered within 10 s")
        .unwrap();
    support::read(res).await
}

#[tokio::test]
async fn methods_bodies_query_and_headers_go_both_ways() {
    let (gw, _tx) = setup().await;
    for method in ["GET", "POST", "PUT", "DELETE"] {
        let body = if method == "GET" {
            ""
        } else {
            "{\"name\":\"rex\"}"
        };
        let mut req = Request::builder()
            .method(method)
            .uri("http://api.example.com/prod/items/a%20b?x=1&y=two")
            .header("host", "api.example.com")
            .header("x-custom", "kept")
            .header("proxy-authorization", "secret")
            .header("connection", "x-hop-req")
            .header("x-hop-req", "1")
            .header("x-forwarded-for", "203.0.113.9")
            .body(Body::from(body))
            .unwrap();
        req.extensions_mut()
            .insert(ClientAddr(SocketAddr::from(([192, 0, 2, 1], 4000))));
        let (status, headers, bytes) = call(&gw, req).await;
        assert_eq!(status, StatusCode::OK, "{method}");
        let v = json_of(&bytes);
        assert_eq!(v["method"], method);
        assert_eq!(v["uri"], "/v1/things/a%20b?from=gw&x=1&y=two");
        assert_eq!(v["body"], body);
        let h = &v["headers"];
        assert_eq!(h["x-custom"], "kept");
        assert!(
            h.get("proxy-authorization").is_none(),
            "hop-by-hop stripped"
        );
        assert!(
            h.get("x-hop-req").is_none(),
            "headers named by Connection stripped"
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 192.0.2.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        // Back: the upstream's headers, minus hop-by-hop ones.
        assert_eq!(headers["x-upstream"], "yes");
        assert!(headers.get("x-hop-res").is_none());
        assert!(headers.get("connection").is_none());
    }
}

#[tokio::test]
async fn base_urls_and_greedy_parameters_carry_the_path() {
    let (gw, _tx) = setup().await;
    let req = Request::get("/prod/files/a/b%20c.txt?v=2")
        .body(Body::empty())
        .unwrap();
    let (status, _, bytes) = call(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&bytes)["uri"], "/store/a/b%20c.txt?v=2");
    // Dot segments in a greedy parameter cannot climb out of `/store/`.
    let req = Request::get("/prod/files/a/../../secret")
        .body(Body::empty())
        .unwrap();
    let (status, _, bytes) = call(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&bytes)["uri"], "/store/a/%2E%2E/%2E%2E/secret");
}

#[tokio::test]
async fn a_slow_upstream_is_a_504_and_a_dead_one_a_502() {
    let (gw, _tx) = setup().await;
    let (status, headers, _) =
        call(&gw, Request::get("/prod/slow").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["x-tollgate-error-type"], "INTEGRATION_TIMEOUT");
    let (status, headers, body) =
        call(&gw, Request::get("/prod/dead").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["x-tollgate-error-type"], "INTEGRATION_FAILURE");
    assert_eq!(
        body, r#"{"message":"Bad Gateway"}"#,
        "no internals in the body"
    );
}

#[tokio::test]
async fn a_streaming_upstream_is_not_buffered() {
    let (gw, tx) = setup().await;
    let res = gw
        .service(local())
        .oneshot(Request::get("/prod/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let mut body = res.into_body();
    // The first chunk arrives while the upstream still holds the rest back:
    // a gateway that buffered would wait here forever (bounded by the timeout).
    let mut got = 0;
    while got < 64 << 10 {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first chunk streams through")
            .unwrap()
            .unwrap();
        got += frame.into_data().map(|d| d.len()).unwrap_or(0);
    }
    tx.send(()).unwrap();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "end");
}

#[tokio::test]
async fn mock_and_service_integrations() {
    let (gw, _tx) = setup().await;
    let (status, headers, body) =
        call(&gw, Request::get("/prod/mock").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-mock"], "1");
    assert_eq!(body, "mocked");
    let (status, _, body) = call(
        &gw,
        Request::get("/prod/local").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "local");
}

#[test]
fn bad_integrations_are_config_errors() {
    let yaml = r#"
routes:
  /x/{id}: [GET]
stages:
  prod:
    settings: { integration: { type: http, url: "https://secure/{id}" } }
    methods:
      /x/{id}/GET: { integration: { type: http, url: "http://up/{nope}", timeout_ms: 10 } }
  dev:
    settings: { integration: { type: mock, status: 99 } }
"#;
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    for expected in [
        r#"stages.prod.methods."/x/{id}/GET".integration.url: `/x/{id}` has no path parameter `nope`"#,
        r#"stages.prod.methods."/x/{id}/GET".integration.timeout_ms: must be 50 to 300000 (got 10)"#,
        "stages.dev.settings.integration.status: must be an HTTP status, 100 to 599 (got 99)",
    ] {
        assert!(err.contains(expected), "`{expected}` in:\n{err}");
    }
    // https:// is served (tests/tls.rs); another scheme is not.
    let ftp = r#"
routes: { /x: [GET] }
stages:
  prod:
    settings: { integration: { type: http, url: "ftp://files/" } }
"#;
    let err = Config::from_yaml_str(ftp).unwrap_err().to_string();
    assert!(
        err.contains("stages.prod.settings.integration: `ftp://files/`: an integration URL starts with http:// or https://"),
        "{err}"
    );
    let https = ftp.replace("ftp://files/", "https://secure/");
    assert!(Config::from_yaml_str(&https).is_ok());
}
