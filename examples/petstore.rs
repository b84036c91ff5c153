//! The Pet Store API behind tollgate.
//!
//! ```text
//! cargo run --release --example petstore [-- --config PATH --listen ADDR --bare --upstream URL]
//! ```
//!
//! Serves stages `dev` and `prod` at `/dev/...` and `/prod/...` with the
//! in-memory stores; nothing else needs installing. `--bare` serves the same
//! pet store with no gateway in front, for `benches/load.sh`. `--upstream URL`
//! proxies to another HTTP server instead of the in-memory store: the path
//! after the stage is appended to `URL`, the query kept (`--upstream
//! http://127.0.0.1:9090/prod` in front of a `--bare` pet store on port 9090).
//! Each request is logged on stdout in API Gateway's CLF-like access log
//! format (`--quiet` to stop it); `--metrics-listen ADDR` serves Prometheus
//! metrics (API Gateway's CloudWatch names, prefixed `apigateway_`) at
//! `http://ADDR/metrics`. Ctrl-C delivers every queued usage event, then exits.
//! `RUST_LOG=debug` prints each layer's decision (and why) on stderr.

#[path = "common/petstore.rs"]
mod petstore;

use petstore::{Options, PetStore};
use std::sync::Arc;
use tokio::net::TcpListener;

use metrics_exporter_prometheus::PrometheusBuilder;
use tollgate::Gateway;
use tollgate::integration::HttpIntegration;
use tollgate::usage::{AccessLogSink, CLF, MetricsSink, Reporter};

#[tokio::main]
async fn main() {
    // Decision logs and warnings on stderr: RUST_LOG=debug shows why each
    // request was admitted or refused (default: warnings only).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // Usage: one access log line per request on stdout, and Prometheus
    // metrics with --metrics-listen.
    let mut reporters = Vec::new();
    if !opts.bare {
        if !opts.quiet {
            let log = AccessLogSink::template(CLF).unwrap_or_else(|e| {
                eprintln!("{e}");
                std::process::exit(1);
            });
            reporters.push(Reporter::new(Arc::new(log)));
        }
        if let Some(addr) = opts.metrics_listen {
            if let Err(e) = PrometheusBuilder::new().with_http_listener(addr).install() {
                eprintln!("cannot serve metrics on {addr}: {e}");
                std::process::exit(1);
            }
            // Prometheus names may not start with a digit: `apigateway_4XXError`.
            let sink = MetricsSink::new().prefix("apigateway_");
            reporters.push(Reporter::new(Arc::new(sink)));
        }
    }
    let gateway = if opts.bare {
        None
    } else {
        let built = match &opts.redis {
            None => petstore::build_gateway_with(&opts.config, reporters).map_err(|e| e.to_string()),
            #[cfg(feature = "redis")]
            Some(url) => {
                petstore::build_redis_gateway(&opts.config, url, reporters).await
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err("--redis needs the `redis` feature: cargo run --release --features redis --example petstore -- --redis URL".to_owned()),
        };
        match built {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
    };
    let listener = match TcpListener::bind(opts.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", opts.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().unwrap_or(opts.listen);
    let store = PetStore::new();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // The first line once ready, as DESIGN.md says; then the extras.
    println!("listening on http://{addr}");
    if !opts.bare {
        if let Some(m) = opts.metrics_listen {
            println!("metrics on http://{m}/metrics");
        }
        if let Some(url) = &opts.redis {
            println!("stores: redis at {url}");
        }
    }
    match gateway {
        None => {
            println!("mode: bare (no gateway)");
            petstore::serve(listener, petstore::bare_service(store), false, shutdown).await;
        }
        Some(gateway) => {
            print_welcome(&gateway, &addr.to_string());
            // Per-client limits need the peer address on each request.
            // (and access logs, for the client address).
            let per_client = gateway.config().throttle_options.per_client.is_some() || !opts.quiet;
            match &opts.upstream {
                Some(url) => {
                    let upstream = match HttpIntegration::forward_to(url) {
                        Ok(u) => u.responses(gateway.responses().clone()),
                        Err(e) => {
                            eprintln!("--upstream {url}: {e}");
                            std::process::exit(2);
                        }
                    };
                    println!("mode: proxying to {url}");
                    let svc = gateway.service(upstream);
                    petstore::serve(listener, svc, true, shutdown).await;
                }
                None => {
                    let svc = petstore::gateway_service(&gateway, store);
                    petstore::serve(listener, svc, per_client, shutdown).await;
                }
            }
            // Ctrl-C: every queued usage event is delivered before exit.
            gateway.shutdown_reporters().await;
        }
    }
}

fn print_welcome(gateway: &Gateway, addr: &str) {
    let config = gateway.config();
    for key in &config.keys {
        if let Some(value) = &key.value {
            // The demo key is printed on purpose: this is a local demo.
            println!("demo API key ({}): {}", key.name, value.expose());
        }
    }
    for c in &config.credentials {
        println!(
            "SigV4 credentials ({}): access key id {}, secret {}",
            c.principal.as_deref().unwrap_or(&c.access_key_id),
            c.access_key_id,
            c.secret_access_key.expose()
        );
    }
    let key = config
        .keys
        .iter()
        .find_map(|k| k.value.as_ref())
        .map_or("YOUR-KEY", |v| v.expose());
    let k = format!("-H 'x-api-key: {key}'");
    println!("try:");
    println!("  curl -i http://{addr}/prod/pets                  # 403: prod asks for an API key");
    println!("  curl -i {k} http://{addr}/prod/pets");
    println!("  curl -i {k} 'http://{addr}/prod/pets?type=dog'");
    if let Some(c) = config.credentials.first() {
        println!(
            "  curl -i {k} --aws-sigv4 aws:amz:us-east-1:execute-api --user '{}:{}' -H 'content-type: application/json' -X POST http://{addr}/prod/pets -d '{{\"type\":\"bird\",\"price\":12.5}}'",
            c.access_key_id,
            c.secret_access_key.expose()
        );
    }
    println!("  curl -i {k} http://{addr}/prod/pets/1");
    println!("  curl -i {k} http://{addr}/prod/pets/1/summary   # a response mapping template");
    println!(
        "  curl -i {k} -X PUT http://{addr}/prod/pets/1 -d '{{\"type\":\"dog\",\"price\":199}}'"
    );
    println!("  curl -i {k} -X DELETE http://{addr}/prod/pets/1");
    println!("  curl -i http://{addr}/dev/pets                   # dev needs no key");
    println!(
        "  curl -i -H 'authorization: Bearer letmein' http://{addr}/dev/whoami   # a toy authorizer"
    );
    println!("  curl -i http://{addr}/prod/cats      # 404 RESOURCE_NOT_FOUND");
    println!("  curl -i -X PATCH http://{addr}/prod/pets   # 405 METHOD_NOT_ALLOWED");
    println!(
        "  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' http://{addr}/dev/pets; done   # 429 after 5 (stage limit)"
    );
    println!(
        "  for i in $(seq 14); do curl -s -o /dev/null -w '%{{http_code}} ' {k} http://{addr}/prod/pets; done   # 429 after 10 (plan limit)"
    );
}
