//! The fault matrix: for every Redis store, a gateway with that store (and
//! only that one) on a redis-server of its own, under load from 16 tasks,
//! while the server is paused (SIGSTOP) for 5 s, resumed, then killed and
//! started again on the same port.
//!
//! For each store it checks what the README's table reports:
//! - no request waits past the store timeout (100 ms here) plus 10 ms at
//!   the 99th percentile while Redis is paused;
//! - the statuses are the layer's declared fail mode (200 where it fails
//!   open, 503 where it fails closed), and nothing else;
//! - the connection's error counters count;
//! - service resumes by itself after the restart, with no new error.
//!
//! `cargo test --features redis --test redis_faults -- --nocapture` prints
//! the table.
#![cfg(feature = "redis")]

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use support::redis::Server;
use tollgate::auth::sigv4::Credential;
use tollgate::clock::{Clock, SystemClock};
use tollgate::gateway::Secret;
use tollgate::redis::{
    RedisCacheStore, RedisConnection, RedisCounterStore, RedisCredentialStore,
    RedisDeploymentStore, RedisKeyStore, RedisOptions, RedisRateStore, RedisUsageSink,
};
use tollgate::usage::{Reporter, ReporterConfig};
use tollgate::{Body, Config, Gateway};
use tower::ServiceExt;

/// The store timeout of every connection here.
const TIMEOUT: Duration = Duration::from_millis(100);

const KEY: &str = "fault-key-0123456789abcdef";

/// One request through the store's gateway: its status.
type Send = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = StatusCode> + std::marker::Send>>
        + Sync
        + std::marker::Send,
>;

/// What one phase of load saw: statuses, and latencies in µs.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    latencies: Vec<u64>,
}

impl Seen {
    fn p99_ms(&mut self) -> f64 {
        self.latencies.sort_unstable();
        let i = (self.latencies.len() * 99 / 100).min(self.latencies.len().saturating_sub(1));
        self.latencies.get(i).copied().unwrap_or(0) as f64 / 1000.0
    }

    fn statuses(&self) -> String {
        self.statuses
            .iter()
            .map(|(s, n)| format!("{s} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Load from 16 tasks for `millis` milliseconds.
async fn load(send: &Send, millis: u64) -> Seen {
    let end = tokio::time::Instant::now() + Duration::from_millis(millis);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (send, stop) = (send.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = Seen::default();
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < end {
                    let before = tokio::time::Instant::now();
                    // A request that hangs is a failure in itself: bounded.
                    let status = tokio::time::timeout(Duration::from_secs(5), send())
                        .await
                        .unwrap_or(StatusCode::GATEWAY_TIMEOUT);
                    let took = before.elapsed().as_micros();
                    seen.latencies.push(u64::try_from(took).unwrap_or(u64::MAX));
                    *seen.statuses.entry(status.as_u16()).or_default() += 1;
                    // Keep the request rate in reach of a 2-core machine.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen
            })
        })
        .collect();
    let mut all = Seen::default();
    for t in tasks {
        let seen = t.await.unwrap();
        all.latencies.extend(seen.latencies);
        for (s, n) in seen.statuses {
            *all.statuses.entry(s).or_default() += n;
        }
    }
    all
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn connect(server: &Server) -> RedisConnection {
    let mut options = RedisOptions::namespace("faults");
    options.timeout = TIMEOUT;
    RedisConnection::connect(&server.url(), options)
        .await
        .unwrap()
}

/// A request with the API key.
fn keyed(path: &str) -> Request<Body> {
    Request::get(path)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap()
}

/// A GET signed with SigV4 by AWS's own signer (credentials AKIDFAULT).
fn signed(path: &str) -> Request<Body> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity = aws_credential_types::Credentials::new(
        "AKIDFAULT",
        "fault-secret-0123456789",
        None,
        None,
        "faults",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("execute-api")
        .time(SystemClock.system_time())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("http://faults.test{path}");
    let headers = [("host", "faults.test")];
    let signable =
        SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(b"")).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = Request::get(path)
        .header("host", "faults.test")
        .body(Body::empty())
        .unwrap();
    instructions.apply_to_request_http1x(&mut req);
    req
}

/// A sender through `gw` in front of an inner service that answers 200.
fn through(gw: Gateway, request: fn(&str) -> Request<Body>, path: &'static str) -> Send {
    let svc = gw.service(support::ok());
    Arc::new(move || {
        let svc = svc.clone();
        Box::pin(async move {
            let res = svc.oneshot(request(path)).await.unwrap();
            let status = res.status();
            let _ = res.into_body().collect().await;
            status
        })
    })
}

const BASE: &str = r#"
routes:
  /pets: [GET]
stages:
  prod:
    settings: { api_key_required: true }
plans:
  p: { stages: [prod] }
keys:
  - { name: k, value: fault-key-0123456789abcdef, plans: [p] }
"#;

/// The gateway with one store on `redis`: its sender, and the statuses
/// its fail mode allows while Redis is away.
/// What a gateway needs kept while it serves: a reporter to shut down, a
/// lifecycle whose poller must live.
#[derive(Default)]
struct Held {
    reporter: Option<Reporter>,
    _lifecycle: Option<tollgate::Lifecycle>,
}

async fn build(store: &str, redis: &RedisConnection) -> (Send, &'static [u16], Held) {
    let config = |yaml: &str| Config::from_yaml_str(yaml).unwrap();
    match store {
        "keys" => {
            let gw = Gateway::builder(config(BASE))
                .key_store(Arc::new(RedisKeyStore::new(redis.clone())))
                .build()
                .unwrap();
            gw.load_config_keys().await.unwrap();
            // Fails closed: 503 for a key it cannot look up.
            (
                through(gw, keyed, "/prod/pets"),
                &[200, 503],
                Held::default(),
            )
        }
        "credentials" => {
            let yaml = r#"
routes:
  /pets: [GET]
stages:
  prod:
    methods:
      /pets/GET: { authorization: sigv4 }
sigv4: { region: us-east-1, service: execute-api, max_skew: 300 }
"#;
            let creds = RedisCredentialStore::new(redis.clone());
            creds
                .put(&Credential::new(
                    "AKIDFAULT",
                    Secret::new("fault-secret-0123456789"),
                    "faults",
                ))
                .await
                .unwrap();
            let gw = Gateway::builder(config(yaml))
                .credential_store(Arc::new(creds))
                .build()
                .unwrap();
            (
                through(gw, signed, "/prod/pets"),
                &[200, 503],
                Held::default(),
            )
        }
        "rates" => {
            let yaml = BASE.replace(
                "settings: { api_key_required: true }",
                "settings: { api_key_required: true, throttle: { rate: 100000, burst: 100000 } }",
            );
            let gw = Gateway::builder(config(&yaml))
                .rate_store(Arc::new(RedisRateStore::new(redis.clone())))
                .build()
                .unwrap();
            // Fails open: admitted, not throttled.
            (through(gw, keyed, "/prod/pets"), &[200], Held::default())
        }
        "counters" => {
            let yaml = BASE.replace(
                "p: { stages: [prod] }",
                "p: { stages: [prod], quota: { limit: 100000000, period: day } }",
            );
            let gw = Gateway::builder(config(&yaml))
                .counter_store(Arc::new(RedisCounterStore::new(redis.clone())))
                .build()
                .unwrap();
            (through(gw, keyed, "/prod/pets"), &[200], Held::default())
        }
        "cache" => {
            let yaml = BASE.replace(
                "settings: { api_key_required: true }",
                "settings: { api_key_required: true, cache: { enabled: true, ttl: 1 } }",
            );
            let r = redis.clone();
            let gw = Gateway::builder(config(&yaml))
                .cache_tier(move |stage| {
                    Arc::new(RedisCacheStore::new(r.clone(), stage))
                        as Arc<dyn tollgate::cache::CacheStore>
                })
                .build()
                .unwrap();
            // A miss in the shared tier: the backend answers.
            (through(gw, keyed, "/prod/pets"), &[200], Held::default())
        }
        "usage" => {
            let mut rc = ReporterConfig::default();
            rc.retry_base = Duration::from_millis(50);
            let reporter = Reporter::with_config(Arc::new(RedisUsageSink::new(redis.clone())), rc);
            let gw = Gateway::builder(config(BASE))
                .reporter(reporter.clone())
                .build()
                .unwrap();
            // Requests never wait on the sink.
            (
                through(gw, keyed, "/prod/pets"),
                &[200],
                Held {
                    reporter: Some(reporter),
                    _lifecycle: None,
                },
            )
        }
        "deployments" => {
            let lifecycle = Gateway::builder(config(BASE)).build_lifecycle().unwrap();
            lifecycle
                .attach(Arc::new(
                    RedisDeploymentStore::new(redis.clone())
                        .poll_interval(Duration::from_millis(50)),
                ))
                .await
                .unwrap();
            lifecycle.load_config_keys().await.unwrap();
            let svc = lifecycle.service(support::ok());
            let send: Send = Arc::new(move || {
                let svc = svc.clone();
                Box::pin(async move {
                    let res = svc.oneshot(keyed("/prod/pets")).await.unwrap();
                    let status = res.status();
                    let _ = res.into_body().collect().await;
                    status
                })
            });
            // The last state polled keeps serving (plans included).
            (
                send,
                &[200],
                Held {
                    reporter: None,
                    _lifecycle: Some(lifecycle),
                },
            )
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_store_under_a_paused_and_a_killed_redis() {
    let mut table = vec![
        "| store | pause 5 s: p99 | pause: statuses | kill 1 s: statuses | errors counted | resumes |"
            .to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ];
    for store in [
        "keys",
        "credentials",
        "rates",
        "counters",
        "cache",
        "usage",
        "deployments",
    ] {
        let mut server = Server::start();
        let port = server.port;
        let redis = connect(&server).await;
        let (send, allowed, held) = build(store, &redis).await;
        let before = load(&send, 300).await;
        assert_eq!(
            before.statuses.keys().copied().collect::<Vec<_>>(),
            [200],
            "{store}: all served before the fault"
        );

        signal(server.pid(), "-STOP");
        let mut paused = load(&send, 5000).await;
        signal(server.pid(), "-CONT");
        let p99 = paused.p99_ms();
        let limit = TIMEOUT.as_secs_f64() * 1000.0 + 10.0;
        assert!(p99 <= limit, "{store}: p99 {p99:.1} ms while paused");
        for s in paused.statuses.keys() {
            assert!(allowed.contains(s), "{store}: {s} while paused");
        }
        let errors = redis.errors() + redis.fast_failures();

        server.stop();
        let killed = load(&send, 1000).await;
        for s in killed.statuses.keys() {
            assert!(allowed.contains(s), "{store}: {s} while killed");
        }
        let errors_after = redis.errors() + redis.fast_failures();
        // The usage sink is called once a second, so a pause of 5 s sees
        // at least one failed call; the others fail on every request.
        assert!(errors > 0, "{store}: no error counted while paused");
        assert!(errors_after >= errors);

        let server = Server::on(port);
        // Keys, credentials and the lifecycle were in the Redis that was
        // killed (no persistence): put them back, as an operator would.
        if matches!(store, "keys" | "credentials" | "deployments") {
            // Once the connection answers again (the circuit closes after a probe).
            let probe = RedisCounterStore::new(redis.clone());
            let key = tollgate::plans::CounterKey {
                key_id: "probe",
                plan: "probe",
                kind: tollgate::plans::CounterKind::Quota,
                start: 0,
            };
            let mut up = false;
            for _ in 0..100 {
                if tollgate::plans::CounterStore::get(&probe, &key)
                    .await
                    .is_ok()
                {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(up, "{store}: the connection did not come back");
            let (_, _, _) = build(store, &redis).await;
        }
        // Resumes by itself: a request served with no new error.
        let mut resumed = false;
        for _ in 0..60 {
            let (e, f) = (redis.errors(), redis.fast_failures());
            if send().await == StatusCode::OK && redis.errors() == e && redis.fast_failures() == f {
                resumed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(r) = &held.reporter {
            r.shutdown().await;
        }
        drop(held);
        assert!(resumed, "{store}: service did not resume");
        let name = if store == "deployments" {
            "deployments (and plans)"
        } else {
            store
        };
        table.push(format!(
            "| {name} | {p99:.1} ms | {} | {} | {} | yes |",
            paused.statuses(),
            killed.statuses(),
            errors_after
        ));
        drop(server);
    }
    println!("{}", table.join("\n"));
}
