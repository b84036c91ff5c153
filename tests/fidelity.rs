//! Proxy fidelity: what a client sends reaches an HTTP integration's
//! upstream as sent, except what a mapping changes (the edge design's
//! "bytes as sent"; beyond API Gateway, whose REST APIs decode URL-encoded
//! parameters first). The three faults of issue 16 as written, then a
//! property test over random paths and queries.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proptest::prelude::*;
use serde_json::json;
use support::json_of;
use tokio::net::TcpListener;
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

/// An upstream on a free loopback port that answers with the request
/// target exactly as it arrived, and the `X-Forwarded-For` it got.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<Incoming>| async move {
                    let xff = req
                        .headers()
                        .get("x-forwarded-for")
                        .map(|v| v.to_str().unwrap_or("?").to_owned());
                    let user = req
                        .headers()
                        .get("x-user")
                        .map(|v| v.to_str().unwrap_or("?").to_owned());
                    let v = json!({ "target": req.uri().to_string(), "xff": xff, "user": user });
                    Ok::<_, Infallible>(Response::new(Body::from(v.to_string())))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Every integration form, and a method with one query parameter mapping.
fn gateway(up: SocketAddr) -> Gateway {
    let yaml = format!(
        r#"
routes:
  /g/{{proxy+}}: [GET]
  /i/{{id}}: [GET]
  /b/{{proxy+}}: [GET]
  /m/{{proxy+}}: [GET]
  /s/{{proxy+}}: [GET]
stages:
  prod:
    methods:
      /g/{{proxy+}}/GET: {{ integration: {{ type: http, url: "http://{up}/store/{{proxy}}" }} }}
      /i/{{id}}/GET: {{ integration: {{ type: http, url: "http://{up}/item/{{id}}" }} }}
      /b/{{proxy+}}/GET: {{ integration: {{ type: http, base: "http://{up}" }} }}
      /m/{{proxy+}}/GET:
        integration: {{ type: http, url: "http://{up}/mapped/{{proxy}}" }}
        mapping:
          request:
            add: {{ integration.request.querystring.userType: "'gold'" }}
      /s/{{proxy+}}/GET:
        integration: {{ type: http, url: "http://{up}/fixed" }}
        mapping:
          request:
            set:
              integration.request.querystring.role: "'restricted-user'"
              integration.request.header.x-user: method.request.querystring.user
"#
    );
    Gateway::new(Config::from_yaml_str(&yaml).unwrap()).unwrap()
}

/// What the upstream saw for `req`: its request target and X-Forwarded-For.
async fn seen(gw: &Gateway, req: Request<Body>) -> (String, Option<String>) {
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("not proxied")))
    });
    let res = gw.service(ok).oneshot(req).await.unwrap();
    let (status, _, bytes) = support::read(res).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let v = json_of(&bytes);
    (
        v["target"].as_str().unwrap().to_owned(),
        v["xff"].as_str().map(str::to_owned),
    )
}

async fn target(gw: &Gateway, uri: &str) -> String {
    seen(gw, Request::get(uri).body(Body::empty()).unwrap())
        .await
        .0
}

#[tokio::test]
async fn an_encoded_slash_stays_encoded_in_every_integration_form() {
    let gw = gateway(upstream().await);
    // Fault 1: a greedy parameter turned `%2F` into `/`.
    assert_eq!(target(&gw, "/prod/g/x%2Fy/z").await, "/store/x%2Fy/z");
    // The other forms kept it already; they still do.
    assert_eq!(target(&gw, "/prod/i/x%2Fy").await, "/item/x%2Fy");
    assert_eq!(target(&gw, "/prod/b/x%2Fy/z").await, "/b/x%2Fy/z");
    // Any escape goes on as sent, case included: `%41` is not turned
    // into `A`, `%e2%82%ac` not into `%E2%82%AC`.
    assert_eq!(
        target(&gw, "/prod/g/%41/%e2%82%ac/a+b").await,
        "/store/%41/%e2%82%ac/a+b"
    );
    assert_eq!(target(&gw, "/prod/i/%41b%20c").await, "/item/%41b%20c");
    // Dot segments still cannot climb out of the template's path, nor out
    // of a base's (found by the hostile review: `base:` sent them as is).
    assert_eq!(target(&gw, "/prod/g/a/../b").await, "/store/a/%2E%2E/b");
    assert_eq!(
        target(&gw, "/prod/b/../../admin").await,
        "/b/%2E%2E/%2E%2E/admin"
    );
    assert_eq!(target(&gw, "/prod/b/./x").await, "/b/%2E/x");
}

#[tokio::test]
async fn a_mapping_that_cannot_apply_never_lets_the_clients_value_through() {
    let gw = gateway(upstream().await);
    let (target, _) = seen(
        &gw,
        Request::get("/prod/s/p?role=admin&user=bob")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(target, "/fixed?user=bob&role=restricted-user");
    // A query rewrite past the longest URI `http` takes: refused, not sent
    // with the client's `role` (found by the hostile review).
    let tail = "?role=admin";
    let uri = format!("/prod/s/{}{tail}", "a".repeat(65534 - 8 - tail.len()));
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("not proxied")))
    });
    let res = gw
        .service(ok)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers, _) = support::read(res).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(support::error_type(&headers), "BAD_REQUEST_PARAMETERS");
    // A header `set` whose value cannot be a header (a line break) leaves
    // the header out rather than passing the client's own.
    let req = Request::get("/prod/s/p?user=a%0Ab")
        .header("x-user", "admin")
        .body(Body::empty())
        .unwrap();
    let ok = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("not proxied")))
    });
    let res = gw.service(ok).oneshot(req).await.unwrap();
    let (status, _, bytes) = support::read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&bytes)["user"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_query_mapping_keeps_every_other_parameter_as_sent() {
    let gw = gateway(upstream().await);
    let query = "test=1&test=2&q=a+b&s=x*y&flag";
    // Fault 2: one added parameter re-encoded all the others.
    assert_eq!(
        target(&gw, &format!("/prod/m/p?{query}")).await,
        format!("/mapped/p?{query}&userType=gold")
    );
    // Without the mapping it passes byte for byte.
    assert_eq!(
        target(&gw, &format!("/prod/g/p?{query}")).await,
        format!("/store/p?{query}")
    );
    // Odd encodings and empty pieces too; no query gets only the new one.
    assert_eq!(
        target(&gw, "/prod/m/p?a=%2a%2B&&b==c&%7E").await,
        "/mapped/p?a=%2a%2B&&b==c&%7E&userType=gold"
    );
    assert_eq!(target(&gw, "/prod/m/p").await, "/mapped/p?userType=gold");
}

#[tokio::test]
async fn x_forwarded_for_gets_the_peer_or_unknown_never_only_the_clients_value() {
    let gw = gateway(upstream().await);
    let req = |xff: Option<&str>, peer: bool| {
        let mut r = Request::get("/prod/g/p");
        if let Some(x) = xff {
            r = r.header("x-forwarded-for", x);
        }
        let mut r = r.body(Body::empty()).unwrap();
        if peer {
            r.extensions_mut()
                .insert(ClientAddr(SocketAddr::from(([127, 0, 0, 1], 5000))));
        }
        r
    };
    // Fault 3: with the peer known, it is appended.
    assert_eq!(
        seen(&gw, req(Some("9.9.9.9"), true)).await.1.as_deref(),
        Some("9.9.9.9, 127.0.0.1")
    );
    assert_eq!(
        seen(&gw, req(None, true)).await.1.as_deref(),
        Some("127.0.0.1")
    );
    // Without a peer address the hop is `unknown`: the client's value is
    // never passed on as if the gateway had seen it.
    assert_eq!(
        seen(&gw, req(Some("9.9.9.9"), false)).await.1.as_deref(),
        Some("9.9.9.9, unknown")
    );
    assert_eq!(seen(&gw, req(None, false)).await.1, None);
}

/// One path segment: pchar literals (RFC 3986) and percent escapes of
/// ASCII bytes (`%2F`, `%2E`, `%25`, `%00`) and of the UTF-8 of non-ASCII
/// characters, either case; never `.` or `..` (sent escaped on purpose)
/// and never empty. (A parameter that is not UTF-8 once decoded is a 400
/// before any integration.)
fn segment() -> impl Strategy<Value = String> {
    let literal = prop::sample::select(
        "ABCXYZabcxyz0189-._~!$&'()*+,;=:@"
            .chars()
            .collect::<Vec<_>>(),
    )
    .prop_map(String::from);
    let escape = (0u8..0x80, any::<bool>()).prop_map(|(b, lower)| {
        if lower {
            format!("%{b:02x}")
        } else {
            format!("%{b:02X}")
        }
    });
    let non_ascii = prop::sample::select(vec!['é', '€', '漢', '🦀']).prop_map(|c| {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect()
    });
    prop::collection::vec(prop_oneof![4 => literal, 2 => escape, 1 => non_ascii], 1..6)
        .prop_map(|parts| parts.concat())
        .prop_filter("dot segments are escaped on purpose", |s| {
            s != "." && s != ".."
        })
}

/// A query: names from a small pool (so some repeat), values or none
/// (bare names), `+`, escapes, `=` inside values, and empty pieces.
fn query() -> impl Strategy<Value = String> {
    let token = prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select("abcxyz019-._~!$'()*+,;:@/?".chars().collect::<Vec<_>>())
                .prop_map(String::from),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(b, lower)| if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }),
        ],
        0..5,
    )
    .prop_map(|t| t.concat());
    let name = prop_oneof![
        prop::sample::select(vec!["a", "q", "test", "flag"]).prop_map(str::to_owned),
        token.clone().prop_filter("a name", |t| !t.is_empty()),
    ];
    let piece = prop_oneof![
        4 => (name.clone(), token.clone(), prop::bool::ANY).prop_map(|(n, v, eq_inside)| {
            if eq_inside { format!("{n}={v}={v}") } else { format!("{n}={v}") }
        }),
        2 => name,
        1 => Just(String::new()),
    ];
    prop::collection::vec(piece, 1..6)
        .prop_map(|p| p.join("&"))
        .prop_filter("a query", |q| !q.is_empty())
}

#[test]
fn random_paths_and_queries_arrive_byte_identical_except_the_mapped_part() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gw = rt.block_on(async { gateway(upstream().await) });
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(segments in prop::collection::vec(segment(), 1..4), q in query())| {
        let path = segments.join("/");
        let (pass, mapped, single) = rt.block_on(async {
            (
                target(&gw, &format!("/prod/g/{path}?{q}")).await,
                target(&gw, &format!("/prod/m/{path}?{q}")).await,
                target(&gw, &format!("/prod/i/{}", segments[0])).await,
            )
        });
        // A pass-through method: path and query exactly as sent.
        prop_assert_eq!(pass, format!("/store/{path}?{q}"));
        // One added query parameter: everything else exactly as sent.
        prop_assert_eq!(mapped, format!("/mapped/{path}?{q}&userType=gold"));
        prop_assert_eq!(single, format!("/item/{}", segments[0]));
    });
}
