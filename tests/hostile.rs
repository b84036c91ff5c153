//! What a hostile client tried, as regression tests: bodies refused before
//! they are read, bodies bounded in size and time, templates bounded in
//! memory, a full throttle store that does not switch limits off, and
//! config errors that never echo a secret. (Heap peaks are measured in
//! `tests/hostile_memory.rs`, real sockets in `tests/hostile_tcp.rs`.)

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use proptest::prelude::*;
use tollgate::clock::ManualClock;
use tollgate::throttle::ClientAddr;
use tollgate::{Body, Config, Gateway};
use tower::{ServiceExt, service_fn};

const NOW: u64 = 1_800_000_000;
/// `NOW` as SigV4 writes it.
const AMZ_DATE: &str = "20270115T080000Z";

/// A body that has sent nothing yet and never will: it records whether it
/// was ever polled, and may announce a length.
struct Stalled {
    polled: Arc<AtomicBool>,
    declared: Option<u64>,
}

impl http_body::Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polled.store(true, Ordering::SeqCst);
        Poll::Pending
    }

    fn size_hint(&self) -> SizeHint {
        self.declared
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

fn stalled(declared: Option<u64>) -> (Body, Arc<AtomicBool>) {
    let polled = Arc::new(AtomicBool::new(false));
    let body = Body::new(Stalled {
        polled: polled.clone(),
        declared,
    });
    (body, polled)
}

const CONFIG: &str = r#"
routes:
  /signed: [POST]
  /mapped: [POST]
  /bomb: [GET]
stages:
  prod:
    methods:
      /signed/POST: { authorization: sigv4 }
      /mapped/POST:
        api_key_required: true
        mapping: { request: { templates: { application/json: '{"got": {{ input.json("$") }}}' } } }
      /bomb/GET:
        mapping:
          responses:
            - templates:
                application/json: '{% set ns = namespace(s="xxxxxxxxxx") %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}'
plans:
  p: { stages: [prod] }
keys:
  - { name: k, value: hostile-key-0123456789abc, plans: [p] }
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
sigv4: { region: us-east-1, max_body: 65536 }
limits: { body_timeout_ms: 200 }
"#;

/// A gateway of `yaml` whose clock stands at `NOW`.
fn gateway(yaml: &str) -> Gateway {
    support::gateway(yaml, &ManualClock::at_unix_secs(NOW))
}

/// Sends `req` through `gw` in front of a service that reads the body;
/// fails the test if no answer comes within 5 s.
async fn call(gw: &Gateway, req: Request<Body>) -> (StatusCode, String, String) {
    let inner = service_fn(|req: Request<Body>| async move {
        let body = req.into_body().collect().await.map(|c| c.to_bytes());
        Ok::<_, Infallible>(Response::new(Body::from(body.unwrap_or_default())))
    });
    let res = tokio::time::timeout(Duration::from_secs(5), gw.service(inner).oneshot(req))
        .await
        .expect("the gateway answers without waiting for the body")
        .unwrap();
    let (status, headers, body) = support::read(res).await;
    (
        status,
        support::error_type(&headers),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn signed_by(access_key_id: &str, body: Body) -> Request<Body> {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{}/us-east-1/execute-api/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}",
        &AMZ_DATE[..8],
        "0".repeat(64)
    );
    Request::post("/prod/signed")
        .header("host", "api.example.com")
        .header("x-amz-date", AMZ_DATE)
        .header("authorization", auth)
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn an_unknown_access_key_is_refused_before_a_body_byte_is_read() {
    let gw = gateway(CONFIG);
    let (body, polled) = stalled(Some(1000));
    let (status, kind, _) = call(&gw, signed_by("AKIDBOGUS", body)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::FORBIDDEN, "UNRECOGNIZED_CLIENT")
    );
    assert!(!polled.load(Ordering::SeqCst), "the body was read");
}

#[tokio::test]
async fn a_missing_or_invalid_api_key_is_refused_before_a_body_byte_is_read() {
    let gw = gateway(CONFIG);
    for key in [None, Some("not-a-key-of-this-gateway-0000")] {
        let (body, polled) = stalled(Some(1000));
        let mut req = Request::post("/prod/mapped").header("content-type", "application/json");
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let (status, kind, _) = call(&gw, req.body(body).unwrap()).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::FORBIDDEN, "INVALID_API_KEY")
        );
        assert!(
            !polled.load(Ordering::SeqCst),
            "the body was read ({key:?})"
        );
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_413_at_once() {
    let gw = gateway(CONFIG);
    // A known access key id: the signature needs the body, which is too long.
    let (body, polled) = stalled(Some(20_000_000));
    let (status, kind, msg) = call(&gw, signed_by("AKIDEXAMPLE", body)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_TOO_LARGE")
    );
    assert_eq!(msg, r#"{"message":"Request Too Long"}"#);
    assert!(!polled.load(Ordering::SeqCst), "the body was read");

    let big = r#"
routes: { /mapped: [POST] }
stages:
  prod:
    settings:
      mapping: { request: { templates: { application/json: '{{ input.body }}' } } }
mapping_limits: { max_body: 1MiB }
"#;
    let (body, polled) = stalled(Some(2 << 20));
    let req = Request::post("/prod/mapped")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let (status, kind, _) = call(&gateway(big), req).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "REQUEST_TOO_LARGE")
    );
    assert!(!polled.load(Ordering::SeqCst), "the body was read");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_within_the_body_timeout_is_408() {
    let gw = gateway(CONFIG);
    let (body, polled) = stalled(Some(1000));
    let (status, kind, msg) = call(&gw, signed_by("AKIDEXAMPLE", body)).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT")
    );
    assert_eq!(msg, r#"{"message":"Request Timeout"}"#);
    assert!(polled.load(Ordering::SeqCst));

    let (body, _) = stalled(None);
    let req = Request::post("/prod/mapped")
        .header("content-type", "application/json")
        .header("x-api-key", "hostile-key-0123456789abc")
        .body(body)
        .unwrap();
    let (status, kind, _) = call(&gw, req).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT")
    );
}

#[tokio::test]
async fn the_body_timeout_is_checked_and_defaults_to_ten_seconds() {
    let base = "routes: { /a: [GET] }\nstages: { prod: {} }\n";
    for bad in ["0", "600001", "-1"] {
        let e = Config::from_yaml_str(&format!("{base}limits: {{ body_timeout_ms: {bad} }}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.body_timeout_ms"), "{bad}: {e}");
    }
    assert!(Config::from_yaml_str(&format!("{base}limits: {{ body_timeout_ms: 600000 }}")).is_ok());
    assert_eq!(
        tollgate::body::DEFAULT_BODY_TIMEOUT,
        Duration::from_secs(10)
    );
}

#[tokio::test]
async fn a_body_that_arrives_in_pieces_is_read_whole() {
    // The same request with the body in one-byte frames reaches the
    // template whole.
    let gw = gateway(CONFIG);
    let json = br#"{"a": [1, 2, 3], "b": "text"}"#;
    let frames = json
        .iter()
        .map(|b| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(&[*b]))));
    let body = Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let req = Request::post("/prod/mapped")
        .header("content-type", "application/json")
        .header("x-api-key", "hostile-key-0123456789abc")
        .body(body)
        .unwrap();
    let (status, _, body) = call(&gw, req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"got": {"a":[1,2,3],"b":"text"}}"#);
}

#[tokio::test]
async fn a_template_that_doubles_a_string_26_times_is_a_500() {
    let gw = gateway(CONFIG);
    let req = Request::get("/prod/bomb").body(Body::empty()).unwrap();
    let (status, kind, body) = call(&gw, req).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "DEFAULT_5XX")
    );
    assert_eq!(body, r#"{"message":"Internal server error"}"#);
}

#[test]
fn templates_that_cannot_be_bounded_are_config_errors() {
    let yaml = r#"
routes: { /a: [GET] }
stages:
  prod:
    settings:
      mapping: { request: { templates: { application/json: "{% set x %}{{ input.body }}{{ input.body }}{% endset %}{{ x }}" } } }
"#;
    let e = Config::from_yaml_str(yaml).unwrap_err().to_string();
    assert!(e.contains("block set"), "{e}");
    assert!(e.contains("cannot be bounded"), "{e}");
}

const PER_CLIENT: &str = r#"
routes: { /a: [GET] }
stages: { prod: {} }
throttle_options:
  max_tracked_keys: 64
  per_client: { rate: 0.001, burst: 5 }
"#;

async fn from(gw: &Gateway, ip: IpAddr) -> (StatusCode, Option<String>) {
    let mut req = Request::get("/prod/a").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ClientAddr(SocketAddr::new(ip, 40_000)));
    let res = gw.service(support::ok()).oneshot(req).await.unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status(), retry)
}

fn addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

#[tokio::test]
async fn a_full_throttle_store_does_not_switch_per_client_limits_off() {
    let gw = gateway(PER_CLIENT);
    // An attacker rotating addresses fills the store...
    for i in 0..5_000 {
        from(&gw, addr(i)).await;
    }
    // ...and a new client still gets no more than its burst of 5: at
    // capacity a new key is refused (429, retry after a second), not
    // admitted untracked.
    let newcomer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77));
    let mut admitted = 0;
    for _ in 0..7 {
        let (status, retry) = from(&gw, newcomer).await;
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert!(retry.is_some()),
            other => panic!("{other}"),
        }
    }
    assert!(admitted <= 5, "{admitted} of 7 admitted at burst 5");
    assert_eq!(
        from(&gw, addr(1_000_000)).await,
        (StatusCode::TOO_MANY_REQUESTS, Some("1".to_owned()))
    );

    // `on_capacity: admit` is the declared opposite choice.
    let admit = gateway(&PER_CLIENT.replace(
        "max_tracked_keys: 64",
        "max_tracked_keys: 64\n  on_capacity: admit",
    ));
    for i in 0..5_000 {
        from(&admit, addr(i)).await;
    }
    assert_eq!(from(&admit, addr(1_000_000)).await.0, StatusCode::OK);
}

// ---- config errors never echo what they reject ----

/// Config documents with `secret` (a string) placed where a secret-holding
/// field or its neighbours expect something else.
fn misplaced(secret: &str, number: u64) -> Vec<String> {
    let base = r#""routes": {"/a": ["GET"]}, "stages": {"prod": {}}"#;
    let s = serde_json::to_string(secret).unwrap();
    [
        format!(r#"{{{base}, "keys": [{s}]}}"#),
        format!(r#"{{{base}, "keys": [{{"name": "k", "value": [{s}]}}]}}"#),
        format!(r#"{{{base}, "keys": [{{"name": "k", "value": {s}, "enabled": {s}}}]}}"#),
        format!(r#"{{{base}, "keys": [{{"name": "k", "value": {number}}}]}}"#),
        format!(r#"{{{base}, "keys": [{{"name": "k", "value": {s}, "plans": {s}}}]}}"#),
        format!(r#"{{{base}, "keys": [{{"name": "k", "value_sha256": {s}}}]}}"#),
        format!(r#"{{{base}, "credentials": [{s}]}}"#),
        format!(r#"{{{base}, "credentials": [{{"access_key_id": "AKID", "secret_access_key": {number}}}]}}"#),
        format!(r#"{{{base}, "credentials": [{{"access_key_id": "AKID", "secret_access_key": [{s}]}}]}}"#),
        format!(r#"{{{base}, "api_key_options": {{"pepper": {number}}}}}"#),
        format!(r#"{{{base}, "api_key_options": {{"pepper": {{"x": {s}}}}}}}"#),
        format!(r#"{{{base}, "api_key_options": {{"source": {s}}}}}"#),
        format!(r#"{{{base}, "sigv4": {{"region": "r", "max_body": {s}}}}}"#),
        format!(r#"{{{base}, "throttle_options": {{"on_capacity": {s}}}}}"#),
        format!(r#"{{{base}, "keys": {{"a": {s}}}}}"#),
        format!(r#"{{{base}, "limits": {{"body_timeout_ms": {s}}}}}"#),
        // The integration block is a tagged enum: serde's own messages pass.
        format!(r#"{{"routes": {{"/a": ["GET"]}}, "stages": {{"prod": {{"settings": {{"integration": {{"type": "mock", "status": {s}}}}}}}}}}}"#),
        format!(r#"{{"routes": {{"/a": ["GET"]}}, "stages": {{"prod": {{"settings": {{"integration": {{"type": "mock", "status": {number}}}}}}}}}}}"#),
        format!(r#"{{"routes": {{"/a": ["GET"]}}, "stages": {{"prod": {{"settings": {{"integration": {s}}}}}}}}}"#),
        format!(r#"{{"routes": {{"/a": ["GET"]}}, "stages": {{"prod": {{"settings": {{"integration": {{"type": "http", "url": "http://x/", "timeout_ms": {s}}}}}}}}}}}"#),
    ]
    .into()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_config_error_contains_the_value_it_rejected(
        secret in "[A-Za-z0-9/+=_-]{20,60}",
        number in 100_000_000u64..u64::MAX,
    ) {
        for json in misplaced(&secret, number) {
            let err = Config::from_json_str(&json).expect_err(&json);
            let shown = format!("{err} {err:?}");
            prop_assert!(!shown.contains(&secret), "{json}\n{shown}");
            prop_assert!(!shown.contains(&number.to_string()), "{json}\n{shown}");
            // YAML reads the same document (JSON is YAML) with the same rule.
            if let Err(err) = Config::from_yaml_str(&json) {
                let shown = format!("{err} {err:?}");
                prop_assert!(!shown.contains(&secret), "yaml: {json}\n{shown}");
                prop_assert!(!shown.contains(&number.to_string()), "yaml: {json}\n{shown}");
            }
        }
    }
}

#[test]
fn a_json_type_error_names_its_path_and_the_kind_of_value_found() {
    let json = r#"{"routes": {"/a": ["GET"]}, "stages": {"prod": {}}, "keys": ["demo-key-0123456789abcdef"]}"#;
    let e = Config::from_json_str(json).unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("keys[0]"), "{shown}");
    assert!(shown.contains("invalid type: a string"), "{shown}");
    assert!(!shown.contains("demo-key"), "{shown}");
    // A syntax error names its line and column.
    let e = Config::from_json_str("{\n  \"routes\": [\n}")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3"), "{e}");
}

#[tokio::test]
async fn util_helpers_measure_what_they_would_build() {
    // escape_javascript writes six bytes for each control character: a
    // megabyte of them would be six, over a 2 MiB limit.
    let yaml = r#"
routes: { /e: [POST] }
stages:
  prod:
    settings:
      mapping: { request: { templates: { text/plain: '{{ util.escape_javascript(input.body)|length }}' } } }
mapping_limits: { max_output: 2MiB, max_body: 4MiB }
"#;
    let gw = gateway(yaml);
    let send = |body: Vec<u8>| {
        Request::post("/prod/e")
            .header("content-type", "text/plain")
            .body(Body::from(body))
            .unwrap()
    };
    let (status, kind, _) = call(&gw, send(vec![1u8; 1 << 20])).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "DEFAULT_5XX")
    );
    // The same length of plain text is escaped as it is.
    let (status, _, body) = call(&gw, send(vec![b'a'; 1 << 20])).await;
    assert_eq!((status, body), (StatusCode::OK, (1 << 20).to_string()));
}

/// A gateway with one mapped POST method whose request template is `template`.
fn mapped(template: &str) -> Gateway {
    let yaml = format!(
        r#"
routes: {{ /m: [POST] }}
stages:
  prod:
    settings:
      mapping: {{ request: {{ templates: {{ application/json: {} }} }} }}
mapping_limits: {{ max_output: 1MiB, max_render_ms: 200 }}
"#,
        serde_json::to_string(template).unwrap()
    );
    gateway(&yaml)
}

#[tokio::test]
async fn what_a_render_holds_produces_and_spends_is_bounded() {
    // Found by the second hostile review: copies that no single value check
    // sees (slices, `reverse`, many small strings), and work that fuel does
    // not count (a cheap instruction on a long string, many times over).
    let twenty = |item: &str| {
        (0..20)
            .map(|i| item.replace('N', &(i + 1).to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let many_small: String = (0..30)
        .map(|i| format!("{{% set a{i} = ([s] * 16)|map('upper')|list %}}"))
        .collect();
    for template in [
        format!("{{% set s = 'x' * 1000000 %}}{{% set a = [{}] %}}ok", twenty("s[N:]")),
        format!("{{% set s = 'x' * 1000000 %}}{{% set a = [{}] %}}ok", twenty("(s ~ 'N')|reverse")),
        format!("{{% set s = 'x' * 60000 %}}{many_small}ok"),
        "{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{% if 'y' in s %}{% endif %}{% endfor %}ok".to_owned(),
    ] {
        let req = Request::post("/prod/m")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, kind, _) = call(&mapped(&template), req).await;
        assert_eq!(
            (status, kind.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, "DEFAULT_5XX"),
            "{template}"
        );
        // The same template on small values renders: the 500 is the bound's.
        let small = template
            .replace("1000000", "10")
            .replace("60000", "10")
            .replace("100000", "10");
        let req = Request::post("/prod/m")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, _, body) = call(&mapped(&small), req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"), "{small}");
    }
}

#[tokio::test]
async fn a_json_body_too_many_values_to_hold_parsed_is_refused() {
    // `[[],[],...]`: small as text, about 48 bytes a value once parsed.
    let body = format!("[{}[]]", "[],".repeat(200_000));
    let gw = mapped("{{ input.path('$')|length }}");
    let req = Request::post("/prod/m")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, kind, msg) = call(&gw, req).await;
    assert_eq!(
        (status, kind.as_str()),
        (StatusCode::BAD_REQUEST, "BAD_REQUEST_BODY")
    );
    assert!(msg.contains("more values"), "{msg}");
    // A template that never selects from the body does not parse it.
    let gw = mapped("ok");
    let body = format!("[{}[]]", "[],".repeat(200_000));
    let req = Request::post("/prod/m")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(call(&gw, req).await.0, StatusCode::OK);
}
