//! The Redis backends against a real redis-server (started here on a free
//! loopback port, `--save ''`, no AOF, stopped at the end): the same
//! behavioural suites as the in-memory stores, exact limits and quotas across
//! three gateways, clock skew, and Redis going away and coming back. Then
//! the same stores on a Redis Cluster of three masters started here
//! (`redis-server --cluster-enabled yes` three times, `redis-cli --cluster
//! create`): the suites, a quota shared exactly, state spread over every
//! master, an atomic multi-limit check, and a master killed under load.
#![cfg(feature = "redis")]

mod support;

use std::convert::Infallible;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use support::redis::{Cluster, Server};
use time::OffsetDateTime;
use tollgate::auth::sigv4::{Credential, CredentialStore, InMemoryCredentialStore};
use tollgate::clock::{ManualClock, SystemClock};
use tollgate::deployments::DeploymentStore;
use tollgate::gateway::Secret;
use tollgate::keys::{CachingKeyStore, InMemoryKeyStore, KeyDigest, KeyRecord, KeyStore};
use tollgate::plans::{CounterKey, CounterKind, CounterStore, InMemoryCounterStore};
use tollgate::redis::{
    RedisCacheStore, RedisConnection, RedisCounterStore, RedisCredentialStore,
    RedisDeploymentStore, RedisKeyStore, RedisOptions, RedisRateStore, RedisUsageSink,
};
use tollgate::store::StoreErrorKind;
use tollgate::throttle::{InMemoryRateStore, Limit, Rate, RateKey, RateStore};
use tollgate::usage::{Reporter, UsageCounts, UsageSink};
use tollgate::{Body, Config, Gateway};
use tower::{ServiceExt, service_fn};

async fn connect(server: &Server, namespace: &str) -> RedisConnection {
    let mut options = RedisOptions::namespace(namespace);
    options.timeout = Duration::from_millis(200);
    RedisConnection::connect(&server.url(), options)
        .await
        .unwrap()
}

// ---- behavioural suites, run against both twins ----

async fn rate_suite(store: &dyn RateStore) {
    let slow = Rate::new(1.0 / 3600.0, 3);
    let a = Limit {
        key: RateKey::Custom("a"),
        rate: slow,
    };
    let b = Limit {
        key: RateKey::Custom("b"),
        rate: Rate::new(1.0 / 3600.0, 1),
    };
    // A burst of 3, then refusals with a retry time.
    for left in [2, 1, 0] {
        let out = store.check(&[a]).await.unwrap();
        assert!(out.admitted);
        assert_eq!(out.remaining, left);
    }
    let out = store.check(&[a]).await.unwrap();
    assert!(!out.admitted);
    let retry = out.retry_after.unwrap();
    assert!(
        retry > Duration::from_secs(3500) && retry <= Duration::from_secs(3600),
        "{retry:?}"
    );
    // All or nothing: `b` admits, `a` refuses, so `b` is not charged.
    let out = store.check(&[b, a]).await.unwrap();
    assert!(!out.admitted);
    assert_eq!(out.binding, 1);
    let out = store.check(&[b]).await.unwrap();
    assert!(out.admitted, "b's token was not spent by the refused check");
    // The binding limit of an admitted check has the fewest tokens left.
    let c = Limit {
        key: RateKey::Custom("c"),
        rate: Rate::new(1.0 / 3600.0, 10),
    };
    let d = Limit {
        key: RateKey::Custom("d"),
        rate: Rate::new(1.0 / 3600.0, 2),
    };
    let out = store.check(&[c, d]).await.unwrap();
    assert!(out.admitted);
    assert_eq!((out.binding, out.remaining), (1, 1));
    // Rate 0, burst 0 blocks.
    let blocked = Limit {
        key: RateKey::Custom("e"),
        rate: Rate::new(0.0, 0),
    };
    assert!(!store.check(&[blocked]).await.unwrap().admitted);
}

async fn counter_suite(store: &dyn CounterStore) {
    let key = CounterKey {
        key_id: "k1",
        plan: "p",
        kind: CounterKind::Quota,
        start: 1_800_000_000,
    };
    let other = CounterKey {
        key_id: "k2",
        ..key
    };
    let far = 4_000_000_000;
    for used in 1..=3 {
        let c = store.increment(&key, 3, far).await.unwrap();
        assert!(c.admitted);
        assert_eq!(c.used, used);
    }
    let c = store.increment(&key, 3, far).await.unwrap();
    assert!(!c.admitted);
    assert_eq!(c.used, 3);
    assert_eq!(store.get(&other).await.unwrap(), 0, "keys are separate");
    // A grant gives quota back.
    assert_eq!(store.add(&key, -2, far).await.unwrap(), 1);
    assert!(store.increment(&key, 3, far).await.unwrap().admitted);
    assert_eq!(store.get(&key).await.unwrap(), 2);
    store.reset(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), 0);
    assert_eq!(store.add(&other, 5, i64::MAX).await.unwrap(), 5);
}

fn record(name: &str) -> KeyRecord {
    let mut r = KeyRecord::new(
        name,
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
    );
    r.plans = vec![Arc::from("basic")];
    r.tags.insert("team".into(), "zoo".into());
    r.can_invalidate_cache = true;
    r.expires = Some(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
    r
}

async fn key_suite(store: &dyn KeyStore) {
    let d1 = KeyDigest([1; 32]);
    let d2 = KeyDigest([2; 32]);
    let a = record("alice");
    store.put(d1, a.clone()).await.unwrap();
    store.put(KeyDigest([3; 32]), record("bob")).await.unwrap();
    // A value that belongs to another key is refused, and bob keeps his record.
    let mallory = record("mallory");
    let err = store
        .put(KeyDigest([3; 32]), mallory.clone())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let bob = store.get(&KeyDigest([3; 32])).await.unwrap().unwrap();
    assert_eq!(bob.name, "bob");
    assert!(store.get_by_id(&mallory.id).await.unwrap().is_none());
    let got = store.get(&d1).await.unwrap().unwrap();
    assert_eq!(*got, a, "every field survives the trip");
    let (digest, by_id) = store.get_by_id(&a.id).await.unwrap().unwrap();
    assert_eq!((digest, &*by_id), (d1, &a));
    assert!(store.get(&d2).await.unwrap().is_none());
    // Rotation: the same id under a new digest; the old digest is gone.
    store.put(d2, a.clone()).await.unwrap();
    assert!(store.get(&d1).await.unwrap().is_none());
    assert_eq!(store.get_by_id(&a.id).await.unwrap().unwrap().0, d2);
    let mut names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(|r| r.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
    assert!(store.delete(&a.id).await.unwrap());
    assert!(!store.delete(&a.id).await.unwrap());
    assert!(store.get(&d2).await.unwrap().is_none());
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn each_store_behaves_as_its_in_memory_twin() {
    rate_suite(&InMemoryRateStore::new(SystemClock)).await;
    counter_suite(&InMemoryCounterStore::new()).await;
    key_suite(&InMemoryKeyStore::new()).await;

    let server = Server::start();
    let redis = connect(&server, "suite").await;
    rate_suite(&RedisRateStore::new(redis.clone())).await;
    counter_suite(&RedisCounterStore::new(redis.clone())).await;
    key_suite(&RedisKeyStore::new(redis.clone())).await;

    // Credentials: what goes in comes out, in both.
    let cred = Credential::new("AKIDTEST", Secret::new("s3cr3t"), "carol")
        .with_session_token(Secret::new("tok"))
        .allow_cache_invalidation(true);
    let memory = InMemoryCredentialStore::new();
    memory.insert(cred.clone());
    let redis_creds = RedisCredentialStore::new(redis.clone());
    redis_creds.put(&cred).await.unwrap();
    for store in [&memory as &dyn CredentialStore, &redis_creds] {
        let got = store.get("AKIDTEST").await.unwrap().unwrap();
        assert_eq!(got.secret.expose(), "s3cr3t");
        assert_eq!(got.principal, "carol");
        assert_eq!(got.session_token.as_ref().unwrap().expose(), "tok");
        assert!(got.can_invalidate_cache);
        assert!(store.get("AKIDNONE").await.unwrap().is_none());
    }
    assert!(redis_creds.delete("AKIDTEST").await.unwrap());
    assert_eq!(redis.errors(), 0);
}

// ---- several gateways, one Redis ----

const SHARED: &str = r#"
routes:
  /limited: [GET]
  /metered: [GET]
stages:
  prod:
    settings: { api_key_required: true }
    methods:
      /limited/GET: { throttle: { rate: 0.0003, burst: 50 } }
plans:
  p:
    stages: [prod]
    throttle: { rate: 1000000, burst: 1000000 }
    quota: { limit: 10000, period: day }
keys:
  - { name: k, value: shared-key-0123456789abcd, plans: [p] }
"#;

async fn shared_gateway(server: &Server, clock: ManualClock) -> (Gateway, RedisConnection) {
    let redis = connect(server, "shared").await;
    let gw = Gateway::builder(Config::from_yaml_str(SHARED).unwrap())
        .clock(clock)
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .key_store(Arc::new(RedisKeyStore::new(redis.clone())))
        .build()
        .unwrap();
    (gw, redis)
}

async fn hit(gw: &Gateway, path: &str) -> StatusCode {
    hit_with(gw, path, "shared-key-0123456789abcd").await
}

/// GET `path` through `gw` with API key `key`, bounded at 5 s: the status.
async fn hit_with(gw: &Gateway, path: &str, key: &str) -> StatusCode {
    let req = Request::get(path)
        .header("x-api-key", key)
        .body(Body::empty())
        .unwrap();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        gw.service(support::ok()).oneshot(req),
    )
    .await
    .expect("no request hangs")
    .unwrap();
    let status = res.status();
    res.into_body().collect().await.unwrap();
    status
}

/// Sends `total` requests spread over `gateways` from 24 tasks; counts 200s.
async fn spread(gateways: &[Gateway], path: &'static str, total: usize) -> usize {
    let sent = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..24)
        .map(|t| {
            let gw = gateways[t % gateways.len()].clone();
            let (sent, ok) = (sent.clone(), ok.clone());
            tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::SeqCst) < total {
                    if hit(&gw, path).await == StatusCode::OK {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    ok.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_share_exact_limits_and_quotas() {
    let server = Server::start();
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let (a, _) = shared_gateway(&server, clock.clone()).await;
    a.load_config_keys().await.unwrap();
    let (b, _) = shared_gateway(&server, clock.clone()).await;
    let (c, _) = shared_gateway(&server, clock.clone()).await;
    // Every process loads the config's keys; the first one's id stands.
    let id = a.key_manager().list().await.unwrap()[0].id.clone();
    b.load_config_keys().await.unwrap();
    c.load_config_keys().await.unwrap();
    let listed = c.key_manager().list().await.unwrap();
    assert_eq!((listed.len(), &listed[0].id), (1, &id));
    let all = [a, b, c];
    // A limit of 50 (its refill is one token an hour): exactly 50 of 150.
    assert_eq!(spread(&all, "/prod/limited", 150).await, 50);
    // A quota of 10,000 a day, 50 already spent above: 9,950 more of 10,500.
    assert_eq!(spread(&all, "/prod/metered", 10_500).await, 9_950);
}

#[tokio::test]
async fn gateways_with_skewed_clocks_agree_on_limits() {
    let server = Server::start();
    // Two hours apart (two tokens' worth of refill at this rate): the
    // buckets follow Redis's clock, not theirs.
    let (a, _) = shared_gateway(&server, ManualClock::at_unix_secs(1_800_000_000)).await;
    a.load_config_keys().await.unwrap();
    let (b, _) = shared_gateway(&server, ManualClock::at_unix_secs(1_800_007_200)).await;
    let mut ok = 0;
    for i in 0..120 {
        let gw = if i % 2 == 0 { &a } else { &b };
        if hit(gw, "/prod/limited").await == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 50, "the later clock did not refill the bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_follows_each_fail_mode_and_recovery_needs_no_restart() {
    let mut server = Server::start();
    let redis = connect(&server, "faults").await;
    let keys = Arc::new(
        CachingKeyStore::new(Arc::new(RedisKeyStore::new(redis.clone())), SystemClock)
            .resilient(true),
    );
    let gw = Gateway::builder(Config::from_yaml_str(SHARED).unwrap())
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .key_store(keys)
        .build()
        .unwrap();
    gw.load_config_keys().await.unwrap();
    let id = gw.key_manager().list().await.unwrap()[0].id.to_string();
    assert_eq!(hit(&gw, "/prod/metered").await, StatusCode::OK);

    server.stop();
    // Throttle and quota fail open; the key is served from the cache.
    for _ in 0..20 {
        assert_eq!(hit(&gw, "/prod/metered").await, StatusCode::OK);
    }
    assert!(redis.errors() > 0, "failures are counted");
    // A key the cache has never seen: closed, 503.
    let inner = service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    });
    let req = Request::get("/prod/metered")
        .header("x-api-key", "unknown-key-0123456789abc")
        .body(Body::empty())
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), gw.service(inner).oneshot(req))
        .await
        .expect("no request hangs")
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.headers()["x-tollgate-error-type"],
        "BACKEND_UNAVAILABLE"
    );

    // Redis back on the same port: counting resumes without a restart.
    let _server = Server::on(server.port);
    let errors_before = redis.errors();
    let mut recovered = false;
    for _ in 0..100 {
        let fast_before = redis.fast_failures();
        if hit(&gw, "/prod/metered").await == StatusCode::OK
            && redis.errors() == errors_before
            && redis.fast_failures() == fast_before
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(recovered, "the connection came back");
    // The restarted Redis kept nothing (no persistence): the count starts over there.
    let left = gw.usage().remaining(&id, "p").await.unwrap();
    assert!(
        left < 10_000,
        "the quota is counted in Redis again ({left} left)"
    );
}

/// Sends a signal to the redis-server process.
fn signal(server: &Server, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_a_request_one_timeout_not_one_per_store() {
    let server = Server::start();
    let mut options = RedisOptions::namespace("paused");
    options.timeout = Duration::from_millis(100);
    let redis = RedisConnection::connect(&server.url(), options)
        .await
        .unwrap();
    // Throttle and quota on Redis; keys in memory.
    let gw = Gateway::builder(Config::from_yaml_str(SHARED).unwrap())
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .build()
        .unwrap();
    assert_eq!(hit(&gw, "/prod/metered").await, StatusCode::OK);

    signal(&server, "-STOP");
    for round in 0..4 {
        let (errors, fast) = (redis.errors(), redis.fast_failures());
        // Both stores fail open: the request is served.
        assert_eq!(hit(&gw, "/prod/metered").await, StatusCode::OK);
        let timeouts = redis.errors() - errors;
        assert!(
            timeouts <= 1,
            "round {round}: {timeouts} timeouts in one request"
        );
        assert!(
            redis.fast_failures() > fast,
            "round {round}: the quota check waited out a timeout of its own"
        );
        // Past the circuit's window (500 ms), the next request probes.
        if round % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    signal(&server, "-CONT");
    let mut recovered = false;
    for _ in 0..40 {
        let (errors, fast) = (redis.errors(), redis.fast_failures());
        if hit(&gw, "/prod/metered").await == StatusCode::OK
            && redis.errors() == errors
            && redis.fast_failures() == fast
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "calls reach Redis again once it answers");
}

#[tokio::test]
async fn the_usage_sink_counts_per_key_and_feeds_usage_records() {
    let server = Server::start();
    let redis = connect(&server, "usage").await;
    let sink = Arc::new(RedisUsageSink::new(redis.clone()));
    let reporter = Reporter::new(sink.clone());
    let clock = ManualClock::at_unix_secs(1_800_000_000);
    let config = SHARED.replace("    quota: { limit: 10000, period: day }\n", "");
    let gw = Gateway::builder(Config::from_yaml_str(&config).unwrap())
        .clock(clock)
        .reporter(reporter.clone())
        .usage_records_from(sink.clone())
        .build()
        .unwrap();
    for _ in 0..7 {
        assert_eq!(hit(&gw, "/prod/metered").await, StatusCode::OK);
    }
    reporter.shutdown().await;
    let id = gw.key_manager().list().await.unwrap()[0].id.to_string();
    let day = OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .unwrap()
        .date();
    assert_eq!(sink.key_day(&id, day).await.unwrap(), 7);
    assert_eq!(
        sink.key_minute(&id, 1_800_000_000 / 60 * 60).await.unwrap(),
        7
    );
    let usage = gw.usage().get_usage("p", day, day, None).await.unwrap();
    assert_eq!(usage.items[&id], vec![[7, -1]]);
}

async fn cache_suite(store: &dyn tollgate::cache::CacheStore) {
    use bytes::Bytes;
    use tollgate::cache::{CacheKey, CachedResponse};
    let key = CacheKey::from_parts([&b"GET"[..], b"/pets"]);
    let other = CacheKey::from_parts([&b"GET"[..], b"/cats"]);
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let entry = Arc::new(CachedResponse::new(
        StatusCode::OK,
        headers,
        Bytes::from_static(b"[1,2,3]"),
        1_800_000_000_000_000_000,
        Duration::from_secs(60),
    ));
    assert!(store.get(&key).await.unwrap().is_none());
    store.put(key.clone(), entry.clone()).await.unwrap();
    store.put(other.clone(), entry.clone()).await.unwrap();
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        (got.status(), got.body(), got.headers(), got.expires_at()),
        (
            entry.status(),
            entry.body(),
            entry.headers(),
            entry.expires_at()
        )
    );
    store.invalidate(&key).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(store.get(&other).await.unwrap().is_some());
    store.flush().await.unwrap();
    assert!(store.get(&other).await.unwrap().is_none());
}

#[tokio::test]
async fn the_cache_store_behaves_as_its_in_memory_twin_and_tiers_share_entries() {
    use tollgate::cache::{CacheStore, MokaCacheStore};
    use tollgate::redis::RedisCacheStore;
    cache_suite(&MokaCacheStore::default()).await;
    let server = Server::start();
    let redis = connect(&server, "cache").await;
    cache_suite(&RedisCacheStore::new(redis.clone(), "prod")).await;

    // Two gateways, each with its own memory, one Redis tier: what one
    // fetched, the other serves.
    let config = r#"
routes:
  /pets: [GET]
stages:
  prod:
    settings: { cache: { enabled: true, ttl: 60 } }
"#;
    let calls = Arc::new(AtomicUsize::new(0));
    let gateway = |redis: RedisConnection| {
        Gateway::builder(Config::from_yaml_str(config).unwrap())
            .cache_tier(move |stage| {
                Arc::new(RedisCacheStore::new(redis.clone(), stage)) as Arc<dyn CacheStore>
            })
            .build()
            .unwrap()
    };
    let a = gateway(connect(&server, "cache").await);
    let b = gateway(connect(&server, "cache").await);
    let mut seen = Vec::new();
    for gw in [&a, &b, &b] {
        let calls = calls.clone();
        let inner = service_fn(move |_req: Request<Body>| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { Ok::<_, Infallible>(Response::new(Body::from(format!("call {n}")))) }
        });
        let res = gw
            .service(inner)
            .oneshot(Request::get("/prod/pets").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let cache = res.headers()["x-cache"].to_str().unwrap().to_owned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        seen.push((cache, body));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one backend call for both processes"
    );
    assert_eq!(seen[0].0, "Miss");
    assert_eq!((seen[1].0.as_str(), &seen[1].1), ("Hit", &seen[0].1));
    assert_eq!(seen[2].0, "Hit");
    // Stages are scoped: flushing one leaves another.
    let dev = RedisCacheStore::new(redis.clone(), "dev");
    let key = tollgate::cache::CacheKey::from_parts([&b"k"[..]]);
    let entry = Arc::new(tollgate::cache::CachedResponse::new(
        StatusCode::OK,
        http::HeaderMap::new(),
        bytes::Bytes::from_static(b"x"),
        1,
        Duration::from_secs(60),
    ));
    dev.put(key.clone(), entry).await.unwrap();
    assert!(b.flush_cache("prod").await.unwrap());
    assert!(dev.get(&key).await.unwrap().is_some());
}

/// A petstore process on `file` and Redis at `url`, its lifecycle in Redis
/// (`--redis URL --watch`).
fn petstore_on_redis(file: &std::path::Path, url: &str) -> support::Petstore {
    let args = ["--quiet", "--watch", "--redis", url, "--config"].map(std::ffi::OsStr::new);
    support::Petstore::start(&["redis"], &[&args[..], &[file.as_os_str()]].concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_made_in_one_process_is_served_by_another_within_a_second() {
    let server = Server::start();
    let dir = support::ScratchDir::new("two");
    let config = |color: &str| {
        format!(
            "name: petstore\nroutes: {{ /pets: [GET] }}\nstages:\n  prod: {{ variables: {{ color: {color} }} }}\n"
        )
    };
    let (a_file, b_file) = (dir.join("a.yaml"), dir.join("b.yaml"));
    std::fs::write(&a_file, config("blue")).unwrap();
    std::fs::write(&b_file, config("blue")).unwrap();
    let a = petstore_on_redis(&a_file, &server.url());
    let b = petstore_on_redis(&b_file, &server.url());
    assert_eq!(a.stage_variables().await, "color=blue");
    assert_eq!(b.stage_variables().await, "color=blue");
    // A's file changes: A deploys (into Redis); B serves it within 1 s of A.
    std::fs::write(&a_file, config("red")).unwrap();
    let start = tokio::time::Instant::now();
    while a.stage_variables().await != "color=red" {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "A did not reload its file"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let served = tokio::time::Instant::now();
    while b.stage_variables().await != "color=red" {
        assert!(
            served.elapsed() < Duration::from_secs(1),
            "B did not serve A's deployment within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---- a Redis Cluster of three masters ----

async fn connect_cluster(cluster: &Cluster, namespace: &str) -> RedisConnection {
    let mut options = RedisOptions::namespace(namespace);
    options.timeout = Duration::from_millis(300);
    let urls = cluster.urls();
    let redis = RedisConnection::connect_cluster(urls.iter().map(String::as_str), options)
        .await
        .unwrap();
    assert!(redis.is_cluster());
    redis
}

const CLUSTER_QUOTA: &str = r#"
routes:
  /metered: [GET]
stages:
  prod:
    settings: { api_key_required: true }
plans:
  p:
    stages: [prod]
    throttle: { rate: 1000000, burst: 1000000 }
    quota: { limit: 300, period: day }
keys:
  - { name: k, value: cluster-key-0123456789abcd, plans: [p] }
"#;

async fn cluster_gateway(cluster: &Cluster) -> Gateway {
    let redis = connect_cluster(cluster, "q").await;
    Gateway::builder(Config::from_yaml_str(CLUSTER_QUOTA).unwrap())
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .key_store(Arc::new(RedisKeyStore::new(redis)))
        .build()
        .unwrap()
}

async fn cluster_hit(gw: &Gateway) -> StatusCode {
    hit_with(gw, "/prod/metered", "cluster-key-0123456789abcd").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_a_quota_exactly_on_a_cluster() {
    let cluster = Cluster::start(3);
    let (a, b) = (
        cluster_gateway(&cluster).await,
        cluster_gateway(&cluster).await,
    );
    a.load_config_keys().await.unwrap();
    b.load_config_keys().await.unwrap();
    // 600 requests at once over both (24 tasks): exactly the quota of 300.
    let sent = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..24)
        .map(|t| {
            let gw = if t % 2 == 0 { a.clone() } else { b.clone() };
            let (sent, ok) = (sent.clone(), ok.clone());
            tokio::spawn(async move {
                while sent.fetch_add(1, Ordering::SeqCst) < 600 {
                    match cluster_hit(&gw).await {
                        StatusCode::OK => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        StatusCode::TOO_MANY_REQUESTS => {}
                        other => panic!("{other}"),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_keys_state_lands_on_every_master() {
    let cluster = Cluster::start(3);
    let redis = connect_cluster(&cluster, "spread").await;
    let rates = RedisRateStore::new(redis.clone());
    let counters = RedisCounterStore::new(redis.clone());
    let key_rate = Rate::new(10.0, 10);
    let gateway_rate = Rate::new(100_000.0, 100_000);
    for i in 0..40 {
        let id = format!("key{i:02}");
        // A key's bucket with the gateway-wide one (a share of it), and its quota.
        let limits = [
            Limit {
                key: RateKey::ApiKey(&id),
                rate: key_rate,
            },
            Limit {
                key: RateKey::Gateway,
                rate: gateway_rate,
            },
        ];
        assert!(rates.check(&limits).await.unwrap().admitted);
        let counter = CounterKey {
            key_id: &id,
            plan: "plan",
            kind: CounterKind::Quota,
            start: 1_800_000_000,
        };
        assert!(
            counters
                .increment(&counter, 10, 1_900_000_000)
                .await
                .unwrap()
                .admitted
        );
    }
    let held: Vec<u64> = (0..3).map(|i| cluster.keys_on(i)).collect();
    // 40 quota counters + 40 key buckets + up to 16 gateway shares.
    assert!(held.iter().sum::<u64>() >= 80, "{held:?}");
    for (i, n) in held.iter().enumerate() {
        assert!(*n >= 10, "master {i} holds {n} keys of {held:?}");
    }
    assert_eq!(redis.errors(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_limit_check_stays_atomic_on_a_cluster() {
    let cluster = Cluster::start(3);
    let redis = connect_cluster(&cluster, "atomic").await;
    let store = Arc::new(RedisRateStore::new(redis.clone()));
    let routes = "routes:\n  /pets: [GET]\nstages:\n  prod: {}\n";
    let gw = Gateway::builder(Config::from_yaml_str(routes).unwrap())
        .build()
        .unwrap();
    let endpoint = gw.endpoints().next().unwrap().clone();
    // The key's limit: 3, refilled once an hour. Its per-method one: 1,000.
    let tight = Rate::new(1.0 / 3600.0, 3);
    let wide = Rate::new(1.0 / 3600.0, 1000);
    let admitted = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, admitted, endpoint) = (store.clone(), admitted.clone(), endpoint.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    let limits = [
                        Limit {
                            key: RateKey::ApiKeyMethod("k1", &endpoint),
                            rate: wide,
                        },
                        Limit {
                            key: RateKey::ApiKey("k1"),
                            rate: tight,
                        },
                    ];
                    if store.check(&limits).await.unwrap().admitted {
                        admitted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::SeqCst), 3);
    // The 77 refused checks charged nothing: the wide bucket gave 3 of 1,000.
    let alone = store
        .check(&[Limit {
            key: RateKey::ApiKeyMethod("k1", &endpoint),
            rate: wide,
        }])
        .await
        .unwrap();
    assert!(alone.admitted);
    assert_eq!(alone.remaining, 1000 - 3 - 1);
}

const CLUSTER_OPEN: &str = r#"
routes:
  /metered: [GET]
stages:
  prod:
    settings: { api_key_required: true }
plans:
  p:
    stages: [prod]
    throttle: { rate: 1000000, burst: 1000000 }
    quota: { limit: 1000000, period: day }
keys:
  - { name: k, value: cluster-key-0123456789abcd, plans: [p] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_fails_open_then_recovers() {
    let mut cluster = Cluster::start(3);
    let redis = connect_cluster(&cluster, "killed").await;
    // Keys in memory: the throttle and the quota are on the cluster, and
    // both fail open (their default).
    let gw = Gateway::builder(Config::from_yaml_str(CLUSTER_OPEN).unwrap())
        .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
        .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
        .build()
        .unwrap();
    assert_eq!(cluster_hit(&gw).await, StatusCode::OK);
    assert_eq!(redis.errors(), 0);
    // Kill the master of the key's quota counter (its slot's third).
    let id = gw.key_manager().list().await.unwrap()[0].id.clone();
    let key = format!("{{killed:quota:{id}}}");
    let slot = cluster.cli(0, &["cluster", "keyslot", &key]);
    let slot: usize = slot.trim().parse().unwrap();
    let victim = slot * 3 / 16_384;
    cluster.kill(victim);
    // Under load, every request is answered 200 (fail open), none waits
    // past the timeout by much, and the failures are counted.
    for _ in 0..50 {
        let status = tokio::time::timeout(Duration::from_millis(1500), cluster_hit(&gw))
            .await
            .expect("no request waits past the store timeout");
        assert_eq!(status, StatusCode::OK);
    }
    assert!(redis.errors() + redis.fast_failures() > 0);
    cluster.restart(victim);
    cluster.wait_ok();
    // Recovery by itself: calls succeed again, with no new error.
    let mut recovered = false;
    for _ in 0..100 {
        let (errors, fast) = (redis.errors(), redis.fast_failures());
        if cluster_hit(&gw).await == StatusCode::OK
            && redis.errors() == errors
            && redis.fast_failures() == fast
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the cluster connection recovers by itself");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_behaves_as_its_in_memory_twin_on_a_cluster() {
    let cluster = Cluster::start(3);
    let redis = connect_cluster(&cluster, "suite").await;
    // Two callers in one check (`b` and `a`) sit in different shares here:
    // the refusal gives back what the first share charged.
    rate_suite(&RedisRateStore::new(redis.clone())).await;
    counter_suite(&RedisCounterStore::new(redis.clone())).await;
    key_suite(&RedisKeyStore::new(redis.clone())).await;
    cache_suite(&RedisCacheStore::new(redis.clone(), "prod")).await;
    // Credentials.
    let creds = RedisCredentialStore::new(redis.clone());
    creds
        .put(&Credential::new(
            "AKIDCLUSTER",
            Secret::new("s3cr3t"),
            "carol",
        ))
        .await
        .unwrap();
    let got = creds.get("AKIDCLUSTER").await.unwrap().unwrap();
    assert_eq!(got.secret.expose(), "s3cr3t");
    // Usage counts: one pipeline per batch.
    let sink = RedisUsageSink::new(redis.clone());
    let mut event = tollgate::usage::UsageEvent::new("api", 200);
    event.api_key_id = Some("k1".into());
    event.time_unix_nanos = 1_800_000_000_000_000_000;
    sink.send(&[event.clone(), event]).await.unwrap();
    let day = OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .unwrap()
        .date();
    assert_eq!(sink.key_day("k1", day).await.unwrap(), 2);
    // The lifecycle's document: compare and set, then one MGET.
    let deployments = RedisDeploymentStore::new(redis.clone());
    assert!(deployments.save(0, "{\"v\":1}").await.unwrap());
    assert!(!deployments.save(0, "{\"v\":2}").await.unwrap());
    assert_eq!(
        deployments.load().await.unwrap(),
        Some((1, "{\"v\":1}".to_owned()))
    );
    assert_eq!(deployments.version().await.unwrap(), 1);
    assert_eq!(redis.errors(), 0);
}

// ---- cache coherence across processes ----

const COHERENT: &str = r#"
routes:
  /pets: [GET]
stages:
  prod:
    settings: { api_key_required: true, cache: { enabled: true, ttl: 300 } }
plans:
  p: { stages: [prod] }
keys:
  - { name: admin, value: admin-key-0123456789abcdef, plans: [p], can_invalidate_cache: true }
"#;

/// A connection of its own (a "process": its own subscriber).
async fn coherent_connection(url: &str) -> RedisConnection {
    let mut options = RedisOptions::namespace("coherent");
    options.timeout = Duration::from_millis(500);
    RedisConnection::connect(url, options).await.unwrap()
}

/// A gateway with a memory cache in front of the shared Redis tier.
fn coherent_gateway(redis: RedisConnection) -> Gateway {
    use tollgate::cache::CacheStore;
    Gateway::builder(Config::from_yaml_str(COHERENT).unwrap())
        .cache_tier(move |stage| {
            Arc::new(RedisCacheStore::new(redis.clone(), stage)) as Arc<dyn CacheStore>
        })
        .build()
        .unwrap()
}

/// GET /prod/pets through `gw` (optionally `max-age=0`): `x-cache` and body.
async fn pets(gw: &Gateway, calls: &Arc<AtomicUsize>, refresh: bool) -> (String, String) {
    let calls = calls.clone();
    let inner = service_fn(move |_req: Request<Body>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, Infallible>(Response::new(Body::from(format!("call {n}")))) }
    });
    let mut req = Request::get("/prod/pets").header("x-api-key", "admin-key-0123456789abcdef");
    if refresh {
        req = req.header("cache-control", "max-age=0");
    }
    let res = gw
        .service(inner)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cache = res.headers()["x-cache"].to_str().unwrap().to_owned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (cache, String::from_utf8(body.to_vec()).unwrap())
}

/// Asks `gw` every 50 ms, for at most 1 s, until it answers `want`.
async fn within_a_second(gw: &Gateway, calls: &Arc<AtomicUsize>, want: &str) -> bool {
    for _ in 0..20 {
        if pets(gw, calls, false).await.1 == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_or_a_flush_on_one_process_reaches_the_others_within_a_second() {
    let server = Server::start();
    let here = coherent_connection(&server.url()).await;
    let a = coherent_gateway(here.clone());
    let b = coherent_gateway(coherent_connection(&server.url()).await);
    // C shares A's connection (one process, two gateways): A's messages
    // reach C's memory as well.
    let c = coherent_gateway(here);
    // Both subscribe as they are built; give the subscriptions a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    assert_eq!(
        pets(&a, &calls, false).await,
        ("Miss".into(), "call 1".into())
    );
    // B and C take A's entry from Redis into their memory, then serve it
    // from there.
    for gw in [&b, &b, &c, &c] {
        assert_eq!(
            pets(gw, &calls, false).await,
            ("Hit".into(), "call 1".into())
        );
    }
    // An authorized max-age=0 on A: A refreshes; B and C drop their copies
    // and serve the new entry (from Redis) within a second, not in 300 s.
    assert_eq!(pets(&a, &calls, true).await.1, "call 2");
    for (name, gw) in [("B", &b), ("C", &c)] {
        assert!(
            within_a_second(gw, &calls, "call 2").await,
            "{name} still serves its old copy"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // A flush on A: B misses within a second (and asks the backend).
    assert!(a.flush_cache("prod").await.unwrap());
    assert!(
        within_a_second(&b, &calls, "call 3").await,
        "B kept its copy"
    );
}
