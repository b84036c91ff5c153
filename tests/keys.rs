//! API keys: every way a key can be wrong, rotation, sources, the caching
//! wrapper, CSV import, and secrets kept out of Debug, logs and errors.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use support::{Captured, gateway};
use tollgate::clock::ManualClock;
use tollgate::keys::{
    ApiKeyLayer, CachingKeyStore, InMemoryKeyStore, KeyDigest, KeyHasher, KeyManager, KeyRecord,
    KeySource, KeyStore, NewKey,
};
use tollgate::store::StoreError;
use tollgate::{ApiKeyIdentity, Body, Config, Gateway, UsageIdentifierKey};
use tower::{Layer, Service, ServiceExt, service_fn};

const CONFIG: &str = r#"
routes: { /pets: [GET], /open: [GET] }
stages:
  prod:
    settings: { api_key_required: true }
    methods: { /open/GET: { api_key_required: false } }
  test: { settings: { api_key_required: true } }
plans:
  gold: { stages: [prod] }
keys:
  - { name: good, value: good-key-0123456789abcdef, plans: [gold] }
  - { name: off, value: off-key-00123456789abcdef, plans: [gold], enabled: false }
  - { name: old, value: old-key-00123456789abcdef, plans: [gold], expires: "2025-01-01T00:00:00Z" }
  - { name: lonely, value: lonely-key-0123456789abcd }
"#;

/// An inner service that says which key it was called with.
fn whoami()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        // Behind a gateway the key is in the request context; a key layer
        // alone inserts it as its own extension: `Caller` reads either.
        let who = tollgate::Caller::of(req.extensions())
            .api_key
            .map(|i| format!("{}:{}", i.key_id(), i.plan().unwrap_or("-")))
            .unwrap_or_else(|| "anonymous".into());
        Ok::<_, Infallible>(Response::new(Body::from(who)))
    })
}

/// GETs `uri` with `x-api-key: <key>` if given: the status and the body.
async fn call(
    svc: &mut (impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send),
    uri: &str,
    key: Option<&str>,
) -> (StatusCode, String) {
    support::get_text(svc, uri, key.map(|k| ("x-api-key", k))).await
}

#[tokio::test]
async fn every_bad_key_gets_the_same_403() {
    let clock = ManualClock::at_unix_secs(1_800_000_000); // 2027
    let mut svc = gateway(CONFIG, &clock).service(whoami());
    let forbidden = (
        StatusCode::FORBIDDEN,
        r#"{"message":"Forbidden"}"#.to_owned(),
    );
    for (why, uri, key) in [
        ("missing", "/prod/pets", None),
        ("unknown", "/prod/pets", Some("nobody-key-0123456789abc")),
        ("disabled", "/prod/pets", Some("off-key-00123456789abcdef")),
        ("expired", "/prod/pets", Some("old-key-00123456789abcdef")),
        (
            "no plan at all",
            "/prod/pets",
            Some("lonely-key-0123456789abcd"),
        ),
        (
            "no plan for this stage",
            "/test/pets",
            Some("good-key-0123456789abcdef"),
        ),
        ("empty", "/prod/pets", Some("")),
        (
            "case matters",
            "/prod/pets",
            Some("GOOD-KEY-0123456789ABCDEF"),
        ),
    ] {
        assert_eq!(call(&mut svc, uri, key).await, forbidden, "{why}");
    }
    let (status, who) = call(&mut svc, "/prod/pets", Some("good-key-0123456789abcdef")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(who.ends_with(":gold"), "{who}");
    // A method that does not ask for a key is open, and identifies nobody.
    assert_eq!(
        call(&mut svc, "/prod/open", None).await,
        (StatusCode::OK, "anonymous".into())
    );
}

#[tokio::test]
async fn an_expiry_takes_effect_at_its_instant() {
    let clock = ManualClock::at_unix_secs(1_735_689_599); // 2024-12-31T23:59:59Z
    let mut svc = gateway(CONFIG, &clock).service(whoami());
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("old-key-00123456789abcdef"))
            .await
            .0,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("old-key-00123456789abcdef"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn management_rotates_disables_attaches_and_deletes() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let gw = gateway(CONFIG, &clock);
    let mut svc = gw.service(whoami());
    let keys = gw.key_manager();
    let (record, value) = keys
        .create(NewKey::named("new").plan("gold"))
        .await
        .unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(value.expose())).await.0,
        StatusCode::OK
    );

    let rotated = keys.rotate(&record.id).await.unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(value.expose())).await.0,
        StatusCode::FORBIDDEN,
        "old value"
    );
    let (status, who) = call(&mut svc, "/prod/pets", Some(rotated.expose())).await;
    assert_eq!(
        (status, who),
        (StatusCode::OK, format!("{}:gold", record.id)),
        "same id after rotation"
    );

    keys.disable(&record.id).await.unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(rotated.expose())).await.0,
        StatusCode::FORBIDDEN
    );
    keys.enable(&record.id).await.unwrap();
    keys.detach(&record.id, "gold").await.unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(rotated.expose())).await.0,
        StatusCode::FORBIDDEN
    );
    keys.attach(&record.id, "gold").await.unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(rotated.expose())).await.0,
        StatusCode::OK
    );
    assert!(keys.delete(&record.id).await.unwrap());
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(rotated.expose())).await.0,
        StatusCode::FORBIDDEN
    );

    // A value that is already some key's is refused.
    let dup = keys
        .import(
            NewKey::named("dup").value(tollgate::gateway::Secret::new("good-key-0123456789abcdef")),
        )
        .await;
    assert!(dup.is_err());
}

#[tokio::test]
async fn one_service_follows_stages_plans_and_other_keys() {
    // The same service, request after request: each key decided afresh
    // against the stage, the plans and the store as they are now.
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let gw = gateway(CONFIG, &clock);
    let mut svc = gw.service(whoami());
    let good = Some("good-key-0123456789abcdef");
    let (status, good_id) = call(&mut svc, "/prod/pets", good).await;
    assert_eq!(status, StatusCode::OK);
    assert!(good_id.ends_with(":gold"), "{good_id}");
    // `gold` covers prod, not test: the same key on another stage is no key.
    assert_eq!(
        call(&mut svc, "/test/pets", good).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&mut svc, "/prod/pets", good).await.1, good_id);
    // Another key on the same connection is itself, and a bad one is refused.
    let (record, value) = gw
        .key_manager()
        .create(NewKey::named("second").plan("gold"))
        .await
        .unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", Some(value.expose())).await.1,
        format!("{}:gold", record.id)
    );
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("good-key-0123456789abcdeX"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&mut svc, "/prod/pets", good).await.1, good_id);
    // A plan change alone (no key changed): gold moves to test.
    let mut gold = tollgate::gateway::PlanConfig::default();
    gold.stages = vec!["test".into()];
    gw.plans().put("gold", gold).unwrap();
    assert_eq!(
        call(&mut svc, "/prod/pets", good).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(call(&mut svc, "/test/pets", good).await.1, good_id);
}

#[tokio::test]
async fn csv_import_reads_api_gateway_columns() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let gw = gateway(CONFIG, &clock);
    let csv = "Name,key,description,Enabled,usageplanIds\n\
               csv-one,csv-key-one-0123456789abc,first,true,gold\n\
               csv-two,csv-key-two-0123456789abc,,false,gold\n";
    let imported = gw.key_manager().import_csv(csv).await.unwrap();
    assert_eq!(imported.len(), 2);
    let mut svc = gw.service(whoami());
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("csv-key-one-0123456789abc"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("csv-key-two-0123456789abc"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // A bad line stores nothing.
    let bad = "Name,key\nfine,fine-key-0123456789abcdef\nbroken,short\n";
    assert!(gw.key_manager().import_csv(bad).await.is_err());
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("fine-key-0123456789abcdef"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

/// Where the inner service finds the key: (in the request context, as an
/// extension of its own).
fn where_is_the_key()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    service_fn(|req: Request<Body>| async move {
        let ext = req.extensions();
        let in_context = ext
            .get::<tollgate::RequestContext>()
            .and_then(|c| c.api_key())
            .map(|k| k.key_id().to_owned());
        let alone = ext.get::<ApiKeyIdentity>().map(|k| k.key_id().to_owned());
        Ok::<_, Infallible>(Response::new(Body::from(format!(
            "{in_context:?} {alone:?}"
        ))))
    })
}

#[tokio::test]
async fn behind_a_gateway_the_key_is_in_the_request_context_alone_an_extension() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let gw = gateway(CONFIG, &clock);
    let mut svc = gw.service(where_is_the_key());
    let (status, text) = call(&mut svc, "/prod/pets", Some("good-key-0123456789abcdef")).await;
    assert_eq!(status, StatusCode::OK);
    let id = gw
        .key_manager()
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "good")
        .unwrap()
        .id
        .clone();
    // One request extension for both: no ApiKeyIdentity of its own.
    assert_eq!(text, format!("Some({id:?}) None"));

    let (layer, store) = ApiKeyLayer::in_memory();
    let keys = KeyManager::new(store, KeyHasher::sha256(), clock);
    let (record, value) = keys.create(NewKey::named("alone")).await.unwrap();
    let mut alone = layer.layer(where_is_the_key());
    let (status, text) = call(&mut alone, "/x", Some(value.expose())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, format!("None Some({:?})", record.id));
}

#[tokio::test]
async fn keys_from_a_query_parameter_a_custom_header_or_an_authorizer() {
    let (layer, store) = ApiKeyLayer::in_memory();
    let keys = KeyManager::new(
        store,
        KeyHasher::sha256(),
        ManualClock::at_unix_secs(1_800_000_000),
    );
    let (_, value) = keys.create(NewKey::named("q")).await.unwrap();
    let v = value.expose().to_owned();

    let mut by_query = layer
        .clone()
        .source(KeySource::query("api_key"))
        .layer(whoami());
    assert_eq!(
        call(&mut by_query, &format!("/x?a=1&api_key={v}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&mut by_query, "/x?a=1", Some(&v)).await.0,
        StatusCode::FORBIDDEN
    );

    let mut by_header = layer
        .clone()
        .source(KeySource::header(http::HeaderName::from_static("x-key")))
        .layer(whoami());
    let req = Request::get("/")
        .header("X-Key", &v)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        by_header
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let mut by_authorizer = layer.source(KeySource::authorizer()).layer(whoami());
    let mut req = Request::get("/").body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(UsageIdentifierKey(tollgate::gateway::Secret::new(
            v.clone(),
        )));
    assert_eq!(
        by_authorizer
            .ready()
            .await
            .unwrap()
            .call(req)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_pepper_changes_the_digests_and_still_admits() {
    let yaml = CONFIG.replace(
        "routes:",
        "api_key_options: { pepper: a-long-enough-pepper-value }\nroutes:",
    );
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let gw = Gateway::builder(Config::from_yaml_str(&yaml).unwrap())
        .clock(clock)
        .build()
        .unwrap();
    let mut svc = gw.service(whoami());
    assert_eq!(
        call(&mut svc, "/prod/pets", Some("good-key-0123456789abcdef"))
            .await
            .0,
        StatusCode::OK
    );
}

/// A "remote" store: an in-memory one that can be switched off, counting calls.
#[derive(Debug, Default)]
struct Remote {
    inner: InMemoryKeyStore,
    down: AtomicBool,
    calls: AtomicUsize,
}

impl Remote {
    fn check(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::unavailable("remote is down"))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl KeyStore for Remote {
    async fn get(&self, d: &KeyDigest) -> Result<Option<Arc<KeyRecord>>, StoreError> {
        self.check()?;
        self.inner.get(d).await
    }
    async fn get_by_id(&self, id: &str) -> Result<Option<(KeyDigest, Arc<KeyRecord>)>, StoreError> {
        self.check()?;
        self.inner.get_by_id(id).await
    }
    async fn put(&self, d: KeyDigest, r: KeyRecord) -> Result<(), StoreError> {
        self.inner.put(d, r).await
    }
    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.delete(id).await
    }
    async fn list(&self) -> Result<Vec<Arc<KeyRecord>>, StoreError> {
        self.inner.list().await
    }
}

#[tokio::test]
async fn the_cache_expires_remembers_misses_and_rides_out_an_outage() {
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let remote = Arc::new(Remote::default());
    let cache = Arc::new(
        CachingKeyStore::new(remote.clone(), clock.clone())
            .ttl(Duration::from_secs(300))
            .negative_ttl(Duration::from_secs(10))
            .resilient(true),
    );
    let keys = KeyManager::new(remote.clone(), KeyHasher::sha256(), clock.clone());
    let (_, value) = keys.create(NewKey::named("r")).await.unwrap();
    let v = value.expose().to_owned();
    let mut svc = ApiKeyLayer::new(cache.clone())
        .clock(Arc::new(clock.clone()))
        .layer(whoami());

    // TTL: one backend call for many requests, another after 300 s.
    for _ in 0..5 {
        assert_eq!(call(&mut svc, "/", Some(&v)).await.0, StatusCode::OK);
    }
    assert_eq!(remote.calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(301));
    call(&mut svc, "/", Some(&v)).await;
    assert_eq!(remote.calls.load(Ordering::SeqCst), 2);

    // Negative caching: a guess reaches the backend once per 10 s.
    for _ in 0..5 {
        assert_eq!(
            call(&mut svc, "/", Some("guess-key-0123456789abcd"))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(remote.calls.load(Ordering::SeqCst), 3);

    // Resilient: the backend goes down after the entry expired; the last known record serves.
    clock.advance(Duration::from_secs(301));
    remote.down.store(true, Ordering::SeqCst);
    assert_eq!(call(&mut svc, "/", Some(&v)).await.0, StatusCode::OK);
    // A key never seen cannot be vouched for: 503, as the store failed.
    assert_eq!(
        call(&mut svc, "/", Some("unseen-key-0123456789abc"))
            .await
            .0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Recovery: the backend answers again and its answer is used.
    remote.down.store(false, Ordering::SeqCst);
    keys.disable(&keys.list().await.unwrap()[0].id)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(301));
    assert_eq!(call(&mut svc, "/", Some(&v)).await.0, StatusCode::FORBIDDEN);

    // Without resilience, an outage is a 503.
    let plain = Arc::new(CachingKeyStore::new(remote.clone(), clock.clone()));
    let mut svc = ApiKeyLayer::new(plain)
        .clock(Arc::new(clock.clone()))
        .layer(whoami());
    remote.down.store(true, Ordering::SeqCst);
    let (status, body) = call(&mut svc, "/", Some(&v)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body.contains("remote is down"),
        "no internals in the answer: {body}"
    );
}

#[tokio::test]
async fn key_values_never_appear_in_debug_logs_or_errors() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let secret = "very-secret-key-0123456789";
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let remote = Arc::new(Remote::default());
    let keys = KeyManager::new(remote.clone(), KeyHasher::sha256(), clock.clone());
    let record = keys
        .import(NewKey::named("s").value(tollgate::gateway::Secret::new(secret)))
        .await
        .unwrap();
    remote.down.store(true, Ordering::SeqCst);
    let mut svc = ApiKeyLayer::new(remote.clone()).layer(whoami());
    let (status, body) = call(&mut svc, "/", Some(secret)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let dup = keys
        .import(NewKey::named("t").value(tollgate::gateway::Secret::new(secret)))
        .await
        .unwrap_err();
    let shown = format!(
        "{body} {dup} {dup:?} {record:?} {:?} {:?} {:?}",
        NewKey::named("x").value(tollgate::gateway::Secret::new(secret)),
        keys,
        UsageIdentifierKey(tollgate::gateway::Secret::new(secret)),
    );
    let logged = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logged.contains("key store failed"),
        "the failure was logged: {logged}"
    );
    assert!(!logged.contains(secret), "{logged}");
    assert!(!shown.contains(secret), "{shown}");
}
