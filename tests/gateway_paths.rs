//! The gateway decides inline while its stores answer at once, and hands
//! over to the layers from the first step that must wait (src/gateway/
//! service.rs). Both ways must answer alike: the same statuses, headers,
//! bodies and usage events. Each test runs one script of requests through a
//! gateway on the in-memory stores (inline) and through gateways whose key,
//! rate or counter store (or all three) only answers by waiting (the
//! layers), and compares what comes out.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use http::{HeaderMap, Request};
use tollgate::auth::authorizer::{AuthorizerRequest, Verdict};
use tollgate::clock::ManualClock;
use tollgate::keys::{InMemoryKeyStore, KeyDigest, KeyRecord, KeyStore};
use tollgate::plans::{Count, CounterKey, CounterStore, InMemoryCounterStore};
use tollgate::store::StoreError;
use tollgate::throttle::{Admission, InMemoryRateStore, Limit, RateStore};
use tollgate::usage::{IntegrationLatency, Outcome, Reporter, SinkError, UsageEvent, UsageSink};
use tollgate::{ApiKeyIdentity, Body, Config, Gateway};

const CONFIG: &str = r#"
name: paths
throttle_options: { headers: true }
throttle: { rate: 1, burst: 40 }
routes:
  /pets: [GET]
  /pets/{id}: [GET]
  /mocked: [GET]
  /me: [GET]
stages:
  prod:
    settings: { api_key_required: true, throttle: { rate: 1, burst: 3 } }
    methods:
      /mocked/GET:
        integration: { type: mock, status: 202, headers: { x-mock: "1" }, body: "mocked" }
      /me/GET: { authorization: authorizer, authorizer: who }
  open: {}
plans:
  gold:
    stages: [prod]
    throttle: { rate: 1, burst: 5 }
    quota: { limit: 3, period: day }
  free: { stages: [open] }
keys:
  - { name: a, value: paths-key-a-0123456789abcd, plans: [gold] }
  - { name: b, value: paths-key-b-0123456789abcd, plans: [gold] }
authorizers:
  who: { identity_sources: [header.Authorization], ttl: 0 }
"#;

const A: &str = "paths-key-a-0123456789abcd";
const B: &str = "paths-key-b-0123456789abcd";

/// Forwards to an in-memory store, but only by waiting: the gateway's
/// inline path cannot use it and hands over to the layer.
#[derive(Debug)]
struct Waiting<T>(T);

#[async_trait]
impl RateStore for Waiting<InMemoryRateStore> {
    async fn check(&self, limits: &[Limit<'_>]) -> Result<Admission, StoreError> {
        tokio::task::yield_now().await;
        self.0.check(limits).await
    }
}

#[async_trait]
impl KeyStore for Waiting<Arc<InMemoryKeyStore>> {
    async fn get(&self, digest: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        tokio::task::yield_now().await;
        self.0.get(digest).await
    }
    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        self.0.get_by_id(id).await
    }
    async fn put(&self, digest: KeyDigest, record: KeyRecord) -> Result<(), StoreError> {
        self.0.put(digest, record).await
    }
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.0.delete(id).await
    }
    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.0.list().await
    }
}

#[async_trait]
impl CounterStore for Waiting<InMemoryCounterStore> {
    async fn increment(
        &self,
        key: &CounterKey<'_>,
        limit: i64,
        expires: i64,
    ) -> Result<Count, StoreError> {
        tokio::task::yield_now().await;
        self.0.increment(key, limit, expires).await
    }
    async fn add(&self, key: &CounterKey<'_>, delta: i64, expires: i64) -> Result<i64, StoreError> {
        tokio::task::yield_now().await;
        self.0.add(key, delta, expires).await
    }
    async fn get(&self, key: &CounterKey<'_>) -> Result<i64, StoreError> {
        self.0.get(key).await
    }
}

/// Keeps every usage event.
#[derive(Default)]
struct Collect(Mutex<Vec<UsageEvent>>);

#[async_trait]
impl UsageSink for Collect {
    async fn send(&self, batch: &[UsageEvent]) -> Result<(), SinkError> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stores {
    InMemory,
    WaitingKeys,
    WaitingRates,
    WaitingCounters,
    AllWaiting,
}

/// A gateway on `stores`, at a fixed time, reporting to a fresh sink.
async fn gateway(stores: Stores) -> (Gateway, Arc<Collect>) {
    let clock = ManualClock::at_unix_secs(1_750_000_000);
    let sink = Arc::new(Collect::default());
    let mut b = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(clock.clone())
        .reporter(Reporter::new(sink.clone()))
        .authorizer("who", |req: AuthorizerRequest| async move {
            Ok(match req.identity("header.Authorization") {
                Some("alice") => Verdict::allow("alice"),
                _ => Verdict::deny("nobody"),
            })
        });
    let waiting_keys = matches!(stores, Stores::WaitingKeys | Stores::AllWaiting);
    if waiting_keys {
        b = b.key_store(Arc::new(Waiting(Arc::new(InMemoryKeyStore::new()))));
    }
    if matches!(stores, Stores::WaitingRates | Stores::AllWaiting) {
        b = b.rate_store(Arc::new(Waiting(InMemoryRateStore::new(clock.clone()))));
    }
    if matches!(stores, Stores::WaitingCounters | Stores::AllWaiting) {
        b = b.counter_store(Arc::new(Waiting(InMemoryCounterStore::new())));
    }
    let gw = b.build().unwrap();
    if waiting_keys {
        gw.load_config_keys().await.unwrap();
    }
    (gw, sink)
}

/// What a client and the usage sink see of one request, the request id
/// left out (it is random) but checked to be present and the same in both.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    /// Whether the response extensions carry what the layers leave for a
    /// usage layer (they must not, either way).
    identity: bool,
    latency: bool,
}

fn seen(status: u16, headers: &HeaderMap, body: &[u8]) -> Seen {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| *n != "x-amzn-requestid")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    h.sort();
    Seen {
        status,
        headers: h,
        body: String::from_utf8_lossy(body).into_owned(),
        identity: false,
        latency: false,
    }
}

/// The usage facts compared across paths.
#[derive(Debug, PartialEq)]
struct Reported {
    status: u16,
    endpoint: Option<String>,
    api_key_id: bool,
    principal: Option<String>,
    rejection: Option<String>,
    response_bytes: u64,
    integration_latency: bool,
}

/// The script: keys good and bad, an unknown stage and path, a stage
/// without keys, an authorizer that allows and one that denies (the layers
/// from the start), a mock integration (the tail); then each key until its
/// quota (3 a day) and its method's bucket (3) refuse it.
fn script() -> Vec<(&'static str, Option<&'static str>, Option<&'static str>)> {
    let mut s = vec![
        ("/prod/pets", None, None),
        ("/prod/pets", Some("wrong-key-0123456789abcdef"), None),
        ("/nowhere/pets", Some(A), None),
        ("/prod/zebras", Some(A), None),
        ("/open/pets", None, None),
        ("/prod/me", Some(A), Some("alice")),
        ("/prod/me", Some(A), Some("mallory")),
        ("/prod/mocked", Some(B), None),
    ];
    for i in 0..5 {
        s.push((["/prod/pets/1", "/prod/pets/2"][i % 2], Some(A), None));
    }
    for _ in 0..5 {
        s.push(("/prod/pets", Some(B), None));
    }
    s
}

async fn run(stores: Stores) -> (Vec<Seen>, Vec<Reported>) {
    let (gw, sink) = gateway(stores).await;
    let mut svc = gw.service(support::ok());
    let mut out = Vec::new();
    let mut ids = Vec::new();
    for (path, key, auth) in script() {
        let mut req = Request::get(path);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = support::call(&mut svc, req.body(Body::empty()).unwrap()).await;
        let id = res.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_owned();
        let identity = res.extensions().get::<ApiKeyIdentity>().is_some();
        let latency = res.extensions().get::<IntegrationLatency>().is_some();
        let (status, headers, body) = support::read(res).await;
        let mut s = seen(status.as_u16(), &headers, &body);
        (s.identity, s.latency) = (identity, latency);
        out.push(s);
        ids.push(id);
    }
    gw.shutdown_reporters().await;
    let events = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(events.len(), ids.len(), "{stores:?}: one event per request");
    let reported = events
        .iter()
        .zip(&ids)
        .map(|(e, id)| {
            assert_eq!(
                e.request_id.map(|r| r.to_string()).as_deref(),
                Some(id.as_str()),
                "{stores:?}: the event carries the response's request id"
            );
            Reported {
                status: e.status,
                endpoint: e.resource().map(str::to_owned),
                api_key_id: e.api_key_id.is_some(),
                principal: e.principal.clone(),
                rejection: e.rejection.map(|k| k.as_str().to_owned()),
                response_bytes: e.response_bytes,
                integration_latency: e.integration_latency.is_some(),
            }
        })
        .collect();
    (out, reported)
}

#[tokio::test]
async fn inline_and_layered_paths_answer_and_report_alike() {
    let (inline, inline_events) = run(Stores::InMemory).await;
    // The script covers what it claims to: each way of answering.
    let got: Vec<(u16, String)> = inline
        .iter()
        .map(|s| {
            let kind = s
                .headers
                .iter()
                .find(|(n, _)| n == "x-tollgate-error-type")
                .map_or("", |(_, v)| v.as_str());
            (s.status, kind.to_owned())
        })
        .collect();
    let want: Vec<(u16, String)> = [
        (403, "INVALID_API_KEY"),
        (403, "INVALID_API_KEY"),
        (404, "RESOURCE_NOT_FOUND"),
        (404, "RESOURCE_NOT_FOUND"),
        (200, ""),
        (200, ""), // alice: quota 1 of key a
        (403, "ACCESS_DENIED"),
        (202, ""), // the mock: quota 1 of key b
        // Key a on /pets/{id}: quota 2 and 3, then over quota (its method
        // token taken), then the method's bucket of 3 is empty.
        (200, ""),
        (200, ""),
        (429, "QUOTA_EXCEEDED"),
        (429, "THROTTLED"),
        (429, "THROTTLED"),
        // Key b on /pets: the same on that method's own bucket.
        (200, ""),
        (200, ""),
        (429, "QUOTA_EXCEEDED"),
        (429, "THROTTLED"),
        (429, "THROTTLED"),
    ]
    .into_iter()
    .map(|(s, k)| (s, k.to_owned()))
    .collect();
    assert_eq!(got, want);
    assert!(
        inline.iter().all(|s| !s.identity && !s.latency),
        "a gateway's responses carry no identity or latency extension"
    );
    // Admitted responses name the binding limit (headers are on here).
    assert!(
        inline[8]
            .headers
            .iter()
            .any(|(n, v)| n == "ratelimit" && v.starts_with("\"method\";r=")),
        "{:?}",
        inline[8]
    );
    for stores in [
        Stores::WaitingKeys,
        Stores::WaitingRates,
        Stores::WaitingCounters,
        Stores::AllWaiting,
    ] {
        let (layered, layered_events) = run(stores).await;
        assert_eq!(inline, layered, "{stores:?}: responses");
        assert_eq!(inline_events, layered_events, "{stores:?}: usage events");
    }
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[tokio::test]
async fn a_panic_or_an_error_is_answered_and_reported_alike_with_what_the_gateway_knew() {
    for stores in [Stores::InMemory, Stores::AllWaiting] {
        let (gw, sink) = gateway(stores).await;
        // /pets/1 panics in `call`, /pets/2 in its future, /pets/3 fails.
        let inner = tower::service_fn(|req: Request<Body>| {
            let path = req.uri().path().to_owned();
            if path == "/pets/1" {
                panic!("boom in call");
            }
            async move {
                match path.as_str() {
                    "/pets/2" => panic!("boom in the future"),
                    "/pets/3" => Err(Refused),
                    _ => Ok(http::Response::new(Body::from("ok"))),
                }
            }
        });
        let svc = gw.service(inner);
        let mut ids = Vec::new();
        for path in ["/prod/pets/1", "/prod/pets/2"] {
            let req = Request::get(path)
                .header("x-api-key", A)
                .body(Body::empty())
                .unwrap();
            let res = tower::ServiceExt::oneshot(svc.clone(), req).await.unwrap();
            assert_eq!(res.status(), 500, "{stores:?} {path}");
            assert_eq!(
                res.headers()["x-tollgate-error-type"],
                "DEFAULT_5XX",
                "{stores:?} {path}"
            );
            ids.push(Some(
                res.headers()["x-amzn-requestid"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
        let req = Request::get("/prod/pets/3")
            .header("x-api-key", A)
            .body(Body::empty())
            .unwrap();
        let err = tower::ServiceExt::oneshot(svc.clone(), req).await;
        assert!(err.is_err(), "{stores:?}: the error passes on");
        ids.push(None);
        gw.shutdown_reporters().await;
        let events = std::mem::take(&mut *sink.0.lock().unwrap());
        assert_eq!(events.len(), 3, "{stores:?}: one event each");
        for (e, id) in events.iter().zip(&ids) {
            assert!(e.request_id.is_some(), "{stores:?}: {e:?}");
            if let Some(id) = id {
                assert_eq!(e.request_id.unwrap().to_string(), *id, "{stores:?}");
            }
            assert_eq!(e.resource(), Some("/pets/{id}"), "{stores:?}");
            // Decided inline, the key is known however the request ends;
            // decided by the layers (a store that waits), only a response
            // brings it back.
            assert_eq!(
                e.api_key_id.is_some(),
                stores == Stores::InMemory,
                "{stores:?}: {e:?}"
            );
            assert_eq!(e.status, 500, "{stores:?}");
        }
        assert_eq!(events[0].outcome, Outcome::Panicked, "{stores:?}");
        assert_eq!(events[1].outcome, Outcome::Panicked, "{stores:?}");
        assert_eq!(events[2].outcome, Outcome::Completed, "{stores:?}");
    }
}
