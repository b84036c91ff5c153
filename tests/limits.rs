//! The front door's limits: `limits.max_body` (413 at once for a declared
//! length, a slow sender cut off; a streamed body ends in an error at the
//! limit) and `limits.max_concurrency` (503 with Retry-After past it).

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

const CONFIG: &str = r#"
routes: { /upload: [POST], /slow: [GET] }
limits: { max_body: 1KiB, max_concurrency: 3 }
stages: { prod: {} }
"#;

/// An inner service that reads the whole body and says how long it was,
/// or 413 when the body ended in the gateway's length error.
async fn read_all(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    match req.into_body().collect().await {
        Ok(b) => Ok(Response::new(Body::from(b.to_bytes().len().to_string()))),
        Err(e) => {
            let limit = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let mut res = Response::new(Body::from(format!("body error, limit: {limit}")));
            if limit {
                *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            }
            Ok(res)
        }
    }
}

/// The gateway of `CONFIG` in front of `read_all` on a real socket.
async fn serve(gw: Gateway) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = gw.service(tower::service_fn(read_all));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper_util::service::TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Writes `head` (and `body`) on a new connection and reads what comes back
/// within 5 s, until the server closes or 5 s pass.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[tokio::test]
async fn a_declared_body_one_byte_over_is_413_at_once_and_the_sender_cut_off() {
    let addr = serve(Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap()).await;
    // Exactly the limit: read whole.
    let (reply, _) = exchange(
        addr,
        "POST /prod/upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1024\r\nconnection: close\r\n\r\n",
        &[b'a'; 1024],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n1024"), "{reply}");
    // One byte over, and only 10 of its 1025 bytes sent: answered at once,
    // the connection closed rather than waiting for the rest.
    let started = tokio::time::Instant::now();
    let (reply, closed) = exchange(
        addr,
        "POST /prod/upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1025\r\n\r\n",
        &[b'a'; 10],
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(
        reply.contains("x-tollgate-error-type: REQUEST_TOO_LARGE"),
        "{reply}"
    );
    assert!(closed, "the slow sender is cut off");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_streamed_body_ends_in_the_length_error_at_the_limit() {
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    let chunks: Vec<_> = (0..2)
        .map(|_| Ok::<_, Infallible>(http_body::Frame::data(bytes::Bytes::from(vec![b'a'; 600]))))
        .collect();
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        chunks,
    )));
    let req = Request::post("/prod/upload").body(body).unwrap();
    let res = gw
        .service(tower::service_fn(read_all))
        .oneshot(req)
        .await
        .unwrap();
    let (status, _, body) = support::read(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body:?}");
    assert_eq!(body, "body error, limit: true");
}

#[tokio::test]
async fn past_max_concurrency_requests_get_503_with_retry_after_at_once() {
    let gw = Gateway::new(Config::from_yaml_str(CONFIG).unwrap()).unwrap();
    // The inner service holds each request until the test lets it go.
    let gate = Arc::new(Semaphore::new(0));
    let inner = {
        let gate = gate.clone();
        tower::service_fn(move |_req: Request<Body>| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, Infallible>(Response::new(Body::from("done")))
            }
        })
    };
    let get = || Request::get("/prod/slow").body(Body::empty()).unwrap();
    // Six at once against a bound of three.
    let mut slow = Vec::new();
    for _ in 0..3 {
        let svc = gw.service(inner.clone());
        slow.push(tokio::spawn(
            async move { svc.oneshot(get()).await.unwrap() },
        ));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let res = tokio::time::timeout(
            Duration::from_secs(1),
            gw.service(inner.clone()).oneshot(get()),
        )
        .await
        .expect("the excess is answered at once")
        .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
        assert_eq!(support::error_type(res.headers()), "BACKEND_UNAVAILABLE");
    }
    gate.add_permits(3);
    for t in slow {
        assert_eq!(t.await.unwrap().status(), StatusCode::OK);
    }
    // Their slots are free again.
    gate.add_permits(1);
    let res = gw.service(inner).oneshot(get()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[test]
fn limits_out_of_bounds_are_config_errors() {
    let yaml = "routes: { /a: [GET] }\nstages: { prod: {} }\nlimits: { max_body: 2GiB, max_concurrency: 0 }\n";
    let err = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(
        err.contains("limits.max_body: must be 1 byte to 1 GiB"),
        "{err}"
    );
    assert!(
        err.contains("limits.max_concurrency: must be 1 to 10000000"),
        "{err}"
    );
}
