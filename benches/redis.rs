//! Throttle checks through `RedisRateStore`, 64 concurrent tasks each:
//!
//! 1. against raw `EVALSHA` of the same script with redis-rs, on a
//!    redis-server this harness starts on a free loopback port (and stops);
//! 2. on a Redis Cluster of three masters (started here too) against that
//!    one server: the same load, a key's bucket and a share of the
//!    gateway-wide one per check, 1,024 keys.
//!
//! `cargo bench --features redis --bench redis [-- SECONDS]` (default 5 s per
//! side, sides alternated A B A B).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::redis::{Cluster, Server};
use tollgate::clock::{Clock, SystemClock};
use tollgate::redis::{GCRA_SCRIPT, RedisConnection, RedisOptions, RedisRateStore};
use tollgate::throttle::{Limit, Rate, RateKey, RateStore};

const TASKS: usize = 64;

/// Runs `check` from 64 tasks for `secs`; checks per second, p50 and p99 (µs).
async fn drive<F, Fut>(secs: u64, check: F) -> (f64, u64, u64)
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let clock = Arc::new(SystemClock);
    let end = clock.unix_nanos() + secs * 1_000_000_000;
    let start = clock.unix_nanos();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let check = check.clone();
            let clock = clock.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0;
                loop {
                    let before = clock.unix_nanos();
                    if before >= end {
                        break;
                    }
                    check(t * 1_000_000 + i).await;
                    lat.push((clock.unix_nanos() - before) / 1000);
                    i += 1;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let took = (clock.unix_nanos() - start) as f64 / 1e9;
    all.sort_unstable();
    let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    (all.len() as f64 / took, p(0.50), p(0.99))
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    // Stopped when dropped, at the end of `main` or on a panic.
    let server = Server::start();
    let url = server.url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut options = RedisOptions::namespace("bench");
        options.timeout = Duration::from_secs(1);
        let redis = RedisConnection::connect(&url, options).await.unwrap();
        let store = Arc::new(RedisRateStore::new(redis));
        // Raw: the same script, the same arguments, one multiplexed connection.
        let client = redis::Client::open(url.as_str()).unwrap();
        let raw = redis::aio::ConnectionManager::new(client).await.unwrap();
        let script = Arc::new(redis::Script::new(GCRA_SCRIPT));
        let rate = Rate::new(1_000_000.0, 1_000_000);
        let interval = rate.interval_nanos().div_ceil(1000);
        let spare = u64::from(rate.burst() - 1);
        let tolerance = interval * spare;

        let via_store = {
            let store = store.clone();
            move |i: usize| {
                let store = store.clone();
                async move {
                    let key = format!("k{}", i % 1024);
                    let limit = Limit { key: RateKey::Custom(&key), rate };
                    let out = store.check(&[limit]).await.unwrap();
                    assert!(out.admitted);
                }
            }
        };
        let via_raw = {
            let raw = raw.clone();
            let script = script.clone();
            move |i: usize| {
                let mut conn = raw.clone();
                let script = script.clone();
                async move {
                    let key = format!("{{bench}}:rate:custom:k{}", i % 1024);
                    let out: (i64, i64, i64, i64, i64) = script
                        .key(key)
                        .arg(interval)
                        .arg(tolerance)
                        .arg(spare)
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                    assert_eq!(out.0, 1);
                }
            }
        };
        let mut store_runs = Vec::new();
        let mut raw_runs = Vec::new();
        for round in 0..2 {
            let s = drive(secs, via_store.clone()).await;
            let r = drive(secs, via_raw.clone()).await;
            println!(
                "round {round}: RedisRateStore {:.0}/s (p50 {} µs, p99 {} µs); raw EVALSHA {:.0}/s (p50 {} µs, p99 {} µs)",
                s.0, s.1, s.2, r.0, r.1, r.2
            );
            store_runs.push(s.0);
            raw_runs.push(r.0);
        }
        let store_best = store_runs.iter().cloned().fold(0.0, f64::max);
        let raw_best = raw_runs.iter().cloned().fold(0.0, f64::max);
        println!(
            "best: RedisRateStore {store_best:.0}/s, raw {raw_best:.0}/s, ratio {:.2} (goal >= 0.80)",
            store_best / raw_best
        );

        // 2. Three masters against one, the same checks.
        let cluster = Cluster::start(3);
        let mut options = RedisOptions::namespace("bench-cluster");
        options.timeout = Duration::from_secs(1);
        let urls = cluster.urls();
        let on_cluster = RedisConnection::connect_cluster(urls.iter().map(String::as_str), options)
            .await
            .unwrap();
        let mut options = RedisOptions::namespace("bench-single");
        options.timeout = Duration::from_secs(1);
        let on_one = RedisConnection::connect(&url, options).await.unwrap();
        let checks = |store: Arc<RedisRateStore>| {
            move |i: usize| {
                let store = store.clone();
                async move {
                    let key = format!("key{}", i % 1024);
                    let limits = [
                        Limit {
                            key: RateKey::ApiKey(&key),
                            rate,
                        },
                        Limit {
                            key: RateKey::Gateway,
                            rate: Rate::new(1_000_000.0, 1_000_000),
                        },
                    ];
                    let out = store.check(&limits).await.unwrap();
                    assert!(out.admitted);
                }
            }
        };
        let cluster_check = checks(Arc::new(RedisRateStore::new(on_cluster)));
        let single_check = checks(Arc::new(RedisRateStore::new(on_one)));
        let (mut c_runs, mut s_runs) = (Vec::new(), Vec::new());
        for round in 0..2 {
            let s = drive(secs, single_check.clone()).await;
            let c = drive(secs, cluster_check.clone()).await;
            println!(
                "round {round}: one master {:.0}/s (p50 {} µs, p99 {} µs); cluster of 3 {:.0}/s (p50 {} µs, p99 {} µs)",
                s.0, s.1, s.2, c.0, c.1, c.2
            );
            s_runs.push(s.0);
            c_runs.push(c.0);
        }
        let s_best = s_runs.iter().cloned().fold(0.0, f64::max);
        let c_best = c_runs.iter().cloned().fold(0.0, f64::max);
        println!(
            "best: one master {s_best:.0}/s, cluster of 3 {c_best:.0}/s, ratio {:.2} (goal >= 2.5)",
            c_best / s_best
        );
        let held: Vec<u64> = (0..3).map(|i| cluster.keys_on(i)).collect();
        println!("keys per master after the cluster runs: {held:?}");
        // How the checks spread: each master's EVALSHA calls and their
        // server-side time (what a master spends is what caps it).
        for i in 0..3 {
            let stats = cluster.cli(i, &["info", "commandstats"]);
            let line = stats
                .lines()
                .find(|l| l.starts_with("cmdstat_evalsha:"))
                .unwrap_or("cmdstat_evalsha: none");
            println!("master {i}: {}", line.trim());
        }
        drop(cluster);
    });
    drop(server);
}
